/* Running a helper program and reading what it prints (nvidia-smi, git): spawned with stdin and
 * stderr on /dev/null, bounded in time and in output; or one whose output goes straight to a
 * file descriptor (an image builder). */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "parse.h"

#include <string.h>

extern char **environ;

int expt_spawn_to_fd(const char *const *argv, char *const *envp, int fd)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, status;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fd, 1);
	posix_spawn_file_actions_adddup2(&fa, fd, 2);
	st = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	if (st)
		return -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int expt_spawn_capture(const char *const *argv, int64_t timeout_ms, struct expt_buf *out)
{
	return expt_spawn_capture_in(argv, NULL, timeout_ms, out);
}

int expt_spawn_capture_in(const char *const *argv, const char *input, int64_t timeout_ms,
			  struct expt_buf *out)
{
	posix_spawn_file_actions_t fa;
	int p[2] = {-1, -1}, in[2] = {-1, -1}, rc = -1, status, st;
	pid_t pid = -1;
	int64_t deadline = expt_mono_ms() + timeout_ms;

	if (pipe2(p, O_CLOEXEC))
		return -1;
	if (input && pipe2(in, O_CLOEXEC)) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	if (input)
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	else
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	st = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (input) {
		/* Small inputs (a server URL): written whole before reading; a helper that does
		 * not read gets EPIPE, not a hang (SIGPIPE ignored for the write). */
		struct sigaction ign = {0}, old;
		close(in[0]);
		ign.sa_handler = SIG_IGN;
		sigaction(SIGPIPE, &ign, &old);
		if (!st)
			(void)expt_write_all(in[1], input, strlen(input));
		sigaction(SIGPIPE, &old, NULL);
		close(in[1]);
	}
	if (st) {
		close(p[0]);
		return -1;
	}
	for (;;) {
		char chunk[4096];
		struct pollfd pfd = {p[0], POLLIN, 0};
		int64_t left = deadline - expt_mono_ms();
		ssize_t n;

		if (left <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (!pfd.revents)
			continue;
		n = read(p[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n == 0 ? 0 : -1;
			break;
		}
		if (expt_buf_add(out, chunk, (size_t)n))
			break;
	}
	close(p[0]);
	if (rc)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!rc && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		rc = -1;
	return rc;
}
