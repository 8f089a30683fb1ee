/* The local engine: each attempt a process group on this machine, output through pipes into log
 * files, exit seen through a pidfd, memory limits by cgroup or watchdog; one poll() loop. What
 * to start when (parallel, GPU slots, retries, timeouts, stop) is the scheduler's (sched.c). */
#include "backend.h"
#include "local_impl.h"
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/util.h"

extern char **environ;

#define LINE_CHUNK EXPT_LINE_PIECE /* a line without a newline is delivered in pieces */
#define WATCH_MS 100		   /* memory watchdog period */
#define DRAIN_MAX_MS 3000	   /* how long a finished attempt waits for the rest of its group */
#define DRAIN_READS 16		   /* reads of leftover output once the group is gone */

/* What the child tells the parent through its close-on-exec pipe (nothing when exec works). */
enum { ST_CGROUP = 1, ST_SETUP, ST_CHDIR, ST_EXEC };

struct stream {
	int fd;		/* pipe read end, -1 after EOF */
	int file;	/* log file, -1 if none */
	int file_errno; /* first write error on the log file */
	const char *path;
	char *buf; /* partial line (LINE_CHUNK + 1), allocated on first use */
	size_t len;
};

/* The engine's part of an attempt (expt_sched_attempt.eng). */
struct proc {
	struct expt_sched_attempt *a;
	pid_t pid; /* leader, and id of its process group */
	int pidfd; /* readable when the leader exits; -1 where the kernel has no pidfd */
	int64_t start_mono;
	int64_t eof_at;	   /* when both pipes reached EOF, 0 before */
	int64_t reaped_at; /* when the leader was reaped, 0 while it runs */
	int status;	   /* wait status of the leader */
	struct stream out, err;
	int comb;	/* output.log: both streams in arrival order, -1 if none */
	char *paths[3]; /* stdout.log, stderr.log, output.log under the job's log_dir */
	int oom;
	int lost;	/* someone else reaped the leader: its status is unknown */
	int watch;	/* memory watched by the watchdog */
	int unenforced; /* memory limit asked for but not enforceable here (warned once started) */
	int64_t peak;	/* watchdog's highest reading */
	char *cg;	/* the attempt's cgroup, NULL if none */
};

struct pollref {
	struct proc *p;
	int which; /* 1 stdout, 2 stderr, 0 pidfd */
};

/* The handle's state: at most one batch (submit), driven by watch. */
struct local {
	struct expt_sched *sched; /* NULL when nothing was submitted or all has finished */
	struct expt_sched *cur;	  /* the scheduler calling into the engine right now */
	int failed;
	char *db_path;	     /* the store the runs report to */
	struct expt_strv io; /* the spec's inputs and outputs as host paths */
	int devnull;
	struct expt_memlimit ml;
	int ml_probed;
	struct expt_strv cg_left; /* cgroups still busy when their attempt ended */
	char node[64];		  /* this machine's name, for the runs' node */
	unsigned seq;
	int64_t next_watch;
	struct sigaction old_pipe, old_chld;
	int old_reaper;
	struct pollfd *pfd;
	struct pollref *ref;
	size_t cap;
};

/* Everything the child needs, prepared before fork: the child only makes system calls. */
struct plan {
	char *const *argv;
	char *const *envp;
	char *const *cands; /* paths to try, in PATH order */
	char **sh_argv;	    /* "/bin/sh", <slot>, argv[1..]: execvp's fallback for ENOEXEC */
	const char *cwd;
	int devnull, out_w, err_w, report, procs_fd;
};

static int64_t now_mono(void)
{
	return expt_mono_ms();
}

/* ---- the child ---- */

static void child_report(int fd, int stage, int e)
{
	int rec[2] = {stage, e};
	ssize_t w = write(fd, rec, sizeof(rec));
	(void)w;
}

static size_t fmt_uint(unsigned v, char *out)
{
	char tmp[16];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static void child_exec(const struct plan *p) __attribute__((noreturn));
static void child_exec(const struct plan *p)
{
	struct sigaction sa;
	sigset_t none;
	int eacces = 0, last = ENOENT;

	setpgid(0, 0);
	/* Join the cgroup before exec so that everything the program allocates is charged. */
	if (p->procs_fd >= 0) {
		char num[16];
		size_t len = fmt_uint((unsigned)getpid(), num);
		if (write(p->procs_fd, num, len) < 0)
			child_report(p->report, ST_CGROUP, errno);
	}
	/* Ignored signals survive exec: a run must start with the defaults (a supervisor that
	 * ignores SIGPIPE or SIGINT must not pass that on). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(p->devnull, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_w, 2) < 0) {
		child_report(p->report, ST_SETUP, errno);
		_exit(127);
	}
	if (p->cwd && *p->cwd && chdir(p->cwd)) {
		child_report(p->report, ST_CHDIR, errno);
		_exit(127);
	}
	/* Whatever the caller left open without FD_CLOEXEC (a database, a socket) stays out. */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	for (size_t i = 0; p->cands[i]; i++) {
		execve(p->cands[i], p->argv, p->envp);
		if (errno == ENOEXEC) {
			p->sh_argv[1] = p->cands[i];
			execve("/bin/sh", p->sh_argv, p->envp);
		}
		last = errno;
		if (errno == EACCES)
			eacces = 1;
		else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE && errno != ELOOP)
			break;
	}
	child_report(p->report, ST_EXEC, eacces ? EACCES : last);
	_exit(127);
}

/* ---- preparing an attempt ---- */

static int key_eq(const char *a, const char *b)
{
	while (*a && *a != '=' && *a == *b) {
		a++;
		b++;
	}
	return (*a == '=' || !*a) && (*b == '=' || !*b);
}

static int env_find(const struct expt_strv *env, const char *key)
{
	for (size_t i = env->n; i-- > 0;)
		if (key_eq(env->v[i], key))
			return (int)i;
	return -1;
}

/* The inherited environment, overridden by job->env, then by what the backend itself sets. */
static void build_env(const struct expt_job *job, const char *gpus, struct expt_strv *out)
{
	for (char **e = environ; e && *e; e++) {
		if (!strchr(*e, '=') || env_find(&job->env, *e) >= 0)
			continue;
		if (*gpus && key_eq(*e, "CUDA_VISIBLE_DEVICES="))
			continue;
		expt_strv_push(out, *e);
	}
	for (size_t i = 0; i < job->env.n; i++) {
		int later = 0;
		if (!strchr(job->env.v[i], '='))
			continue;
		for (size_t j = i + 1; j < job->env.n && !later; j++)
			later = key_eq(job->env.v[i], job->env.v[j]);
		if (*gpus && key_eq(job->env.v[i], "CUDA_VISIBLE_DEVICES="))
			continue;
		if (!later)
			expt_strv_push(out, job->env.v[i]);
	}
	if (*gpus) {
		expt_strv_pushf(out, "CUDA_VISIBLE_DEVICES=%s", gpus);
		/* nvidia-smi numbers GPUs in PCI bus order, CUDA by default fastest first: without
		 * this, "0" would not always be the GPU that nvidia-smi calls 0. */
		if (env_find(out, "CUDA_DEVICE_ORDER=") < 0)
			expt_strv_push(out, "CUDA_DEVICE_ORDER=PCI_BUS_ID");
	}
}

/* execvp's search, done before fork, with the PATH the program will see. */
static void build_cands(const char *name, const struct expt_strv *env, struct expt_strv *out)
{
	const char *path;
	int i;

	if (strchr(name, '/')) {
		expt_strv_push(out, name);
		return;
	}
	i = env_find(env, "PATH=");
	path = i >= 0 ? strchr(env->v[i], '=') + 1 : "/bin:/usr/bin";
	for (;;) {
		const char *c = strchr(path, ':');
		size_t len = c ? (size_t)(c - path) : strlen(path);
		expt_strv_pushf(out, "%.*s/%s", (int)len, len ? path : ".", name);
		if (!c)
			break;
		path = c + 1;
	}
}

static int open_log(const char *path, int *fd, struct expt_err *err)
{
	const char *slash = strrchr(path, '/');

	*fd = -1;
	if (slash && slash != path) {
		char *dir = expt_xstrndup(path, (size_t)(slash - path));
		int rc = expt_mkdirs(dir, err);
		free(dir);
		if (rc)
			return rc;
	}
	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*fd < 0)
		return expt_err_errno(err, EXPT_EBACKEND, "cannot open log file %s", path);
	return 0;
}

/* A pipe whose ends are close-on-exec and above the standard descriptors (a caller that closed
 * stdout must not have its pipe ends taken for fd 1 and then dup2'ed onto themselves). */
static int make_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC))
		return -1;
	for (int i = 0; i < 2; i++) {
		if (p[i] < 3) {
			int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
			if (fd < 0) {
				close(p[0]);
				close(p[1]);
				return -1;
			}
			close(p[i]);
			p[i] = fd;
		}
	}
	return 0;
}

static void write_all(struct stream *st, const char *p, size_t n)
{
	while (n && st->file >= 0 && !st->file_errno) {
		ssize_t w = write(st->file, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			st->file_errno = errno;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
}

/* ---- output ---- */

static void deliver(struct local *l, struct proc *a, int which, const char *line, size_t len)
{
	if (a->comb >= 0) {
		/* Best effort: the per-stream files are authoritative. Only the last piece of a
		 * line longer than LINE_CHUNK ends it. */
		struct stream c = {.fd = -1, .file = a->comb};
		write_all(&c, line, len);
		if (len != LINE_CHUNK)
			write_all(&c, "\n", 1);
		if (c.file_errno) {
			close(a->comb);
			a->comb = -1;
		}
	}
	expt_sched_line(l->cur, a->a, which, line, len);
}

static void append(struct stream *st, const char *p, size_t n)
{
	if (!st->buf)
		st->buf = expt_xmalloc(LINE_CHUNK + 1);
	memcpy(st->buf + st->len, p, n);
	st->len += n;
	st->buf[st->len] = '\0';
}

/* Splits output into lines; p is the caller's scratch copy and may be modified. */
static void feed(struct local *l, struct proc *a, struct stream *st, int which, char *p, size_t n)
{
	while (n) {
		char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (st->len + take > LINE_CHUNK) {
			size_t room = LINE_CHUNK - st->len;
			append(st, p, room);
			deliver(l, a, which, st->buf, st->len);
			st->len = 0;
			p += room;
			n -= room;
			continue;
		}
		if (!nl) {
			append(st, p, take);
			return;
		}
		if (st->len) {
			append(st, p, take);
			deliver(l, a, which, st->buf, st->len);
			st->len = 0;
		} else {
			*nl = '\0';
			deliver(l, a, which, p, take);
		}
		p += take + 1;
		n -= take + 1;
	}
}

static void close_stream(struct local *l, struct proc *a, struct stream *st, int which)
{
	if (st->len) {
		deliver(l, a, which, st->buf, st->len);
		st->len = 0;
	}
	if (st->fd >= 0) {
		close(st->fd);
		st->fd = -1;
	}
}

/* One read; returns 1 when more may follow, 0 at EOF (stream closed) or when nothing is there. */
static int read_stream(struct local *l, struct proc *a, struct stream *st, int which)
{
	char chunk[LINE_CHUNK + 1];
	ssize_t n;

	if (st->fd < 0)
		return 0;
	do
		n = read(st->fd, chunk, LINE_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n <= 0) {
		close_stream(l, a, st, which);
		if (a->out.fd < 0 && a->err.fd < 0 && !a->eof_at)
			a->eof_at = now_mono();
		return 0;
	}
	write_all(st, chunk, (size_t)n);
	feed(l, a, st, which, chunk, (size_t)n);
	return 1;
}

/* A line from expt itself, to the run's stderr callback and file. */
static void notice(struct local *l, struct proc *a, const char *text)
{
	write_all(&a->err, text, strlen(text));
	write_all(&a->err, "\n", 1);
	deliver(l, a, 2, text, strlen(text));
}

static void setup_memory(struct local *s, struct expt_job *job, struct proc *a, int *procs_fd)
{
	struct expt_err e = EXPT_ERR_INIT;
	char name[64];

	*procs_fd = -1;
	if (job->memory_bytes <= 0)
		return;
	if (!s->ml_probed) {
		expt_memlimit_probe(&s->ml);
		s->ml_probed = 1;
	}
	switch (s->ml.method) {
	case EXPT_MEM_CGROUP1:
	case EXPT_MEM_CGROUP2:
		snprintf(name, sizeof(name), "expt-%d-%u", (int)getpid(), ++s->seq);
		if (!expt_memcg_create(&s->ml, name, job->memory_bytes, &a->cg, procs_fd, &e))
			return;
		a->watch = 1; /* still enforced, by the watchdog */
		return;
	case EXPT_MEM_WATCHDOG:
		a->watch = 1;
		return;
	default:
		a->unenforced = 1;
	}
}

static void exec_message(int stage, int e, const struct expt_job *job, char *out, size_t n)
{
	const char *name = job->argv.v[0];

	if (stage == ST_CHDIR)
		snprintf(out, n, "cannot change directory to %s: %s", job->cwd, strerror(e));
	else if (stage == ST_SETUP)
		snprintf(out, n, "cannot set up the process: %s", strerror(e));
	else if (e == ENOENT && !strchr(name, '/'))
		snprintf(out, n, "command not found: %s", name);
	else if (e == ENOENT)
		snprintf(out, n, "no such file: %s", name);
	else if (e == EACCES)
		snprintf(out, n, "permission denied: %s", name);
	else
		snprintf(out, n, "cannot execute %s: %s", name, strerror(e));
}

/* Forks and execs; returns the pid, or -1 with msg filled. */
static pid_t fork_exec(struct local *s, struct expt_job *job, struct proc *a, int procs_fd,
		       char *msg, size_t n)
{
	struct expt_strv env = EXPT_STRV_INIT, cands = EXPT_STRV_INIT;
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, pr[2] = {-1, -1};
	int rec[2], stage = 0, e = 0;
	struct plan p;
	pid_t pid = -1;
	ssize_t r;

	build_env(job, a->a->gpus, &env);
	build_cands(job->argv.v[0], &env, &cands);
	memset(&p, 0, sizeof(p));
	p.sh_argv = expt_xcalloc(job->argv.n + 2, sizeof(char *));
	p.sh_argv[0] = "/bin/sh";
	for (size_t i = 1; i < job->argv.n; i++)
		p.sh_argv[i + 1] = job->argv.v[i];
	if (make_pipe(po) || make_pipe(pe) || make_pipe(pr)) {
		snprintf(msg, n, "cannot start: %s", strerror(errno));
		goto out;
	}
	p.argv = expt_strv_argv(&job->argv);
	p.envp = expt_strv_argv(&env);
	p.cands = expt_strv_argv(&cands);
	p.cwd = job->cwd;
	p.devnull = s->devnull;
	p.out_w = po[1];
	p.err_w = pe[1];
	p.report = pr[1];
	p.procs_fd = procs_fd;
	pid = fork();
	if (pid == 0)
		child_exec(&p);
	if (pid < 0) {
		snprintf(msg, n, "cannot start: %s", strerror(errno));
		goto out;
	}
	setpgid(pid, pid); /* also here, so that no signal to the group can miss it */
	close(pr[1]);
	pr[1] = -1;
	/* EOF when exec succeeds (close-on-exec); records when something failed. */
	while ((r = read(pr[0], rec, sizeof(rec))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(rec))
			break;
		if (rec[0] == ST_CGROUP) {
			a->watch = 1; /* could not join: the watchdog enforces the limit */
		} else {
			stage = rec[0];
			e = rec[1];
		}
	}
	if (stage) {
		int st;
		exec_message(stage, e, job, msg, n);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		pid = -1;
		goto out;
	}
	a->out.fd = po[0];
	a->err.fd = pe[0];
	po[0] = pe[0] = -1;
	fcntl(a->out.fd, F_SETFL, O_NONBLOCK);
	fcntl(a->err.fd, F_SETFL, O_NONBLOCK);
out:
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
		if (pr[i] >= 0)
			close(pr[i]);
	}
	free(p.sh_argv);
	expt_strv_release(&env);
	expt_strv_release(&cands);
	return pid;
}

/* ---- starting ---- */

static void release_proc(struct local *l, struct proc *a)
{
	close_stream(l, a, &a->out, 1);
	close_stream(l, a, &a->err, 2);
	if (a->out.file >= 0)
		close(a->out.file);
	if (a->err.file >= 0)
		close(a->err.file);
	if (a->comb >= 0)
		close(a->comb);
	for (int i = 0; i < 3; i++)
		free(a->paths[i]);
	if (a->pidfd >= 0)
		close(a->pidfd);
	if (a->cg && expt_memcg_remove(a->cg))
		expt_strv_push(&l->cg_left, a->cg);
	free(a->cg);
	free(a->out.buf);
	free(a->err.buf);
	free(a);
}

static void engine_release(void *eng, struct expt_sched_attempt *sa)
{
	struct local *l = eng;
	struct proc *a = sa->eng;

	if (!a)
		return;
	if (a->pid > 0 && !a->reaped_at) {
		/* Never started properly, or abandoned: nothing of it may stay behind. */
		kill(-a->pid, SIGKILL);
		while (waitpid(a->pid, &a->status, 0) < 0 && errno == EINTR)
			;
	}
	release_proc(l, a);
	sa->eng = NULL;
}

static int engine_start(void *eng, struct expt_sched *s, struct expt_job *job,
			struct expt_sched_attempt *sa, char *msg, size_t n)
{
	struct local *l = eng;
	struct proc *a = expt_xcalloc(1, sizeof(*a));
	struct expt_err e = EXPT_ERR_INIT;
	int procs_fd = -1;
	pid_t pid;

	(void)s;
	a->a = sa;
	sa->eng = a;
	sa->node = l->node;
	a->pid = -1;
	a->pidfd = a->out.fd = a->err.fd = a->out.file = a->err.file = a->comb = -1;
	if (job->log_dir) {
		a->paths[0] = expt_xasprintf("%s/stdout.log", job->log_dir);
		a->paths[1] = expt_xasprintf("%s/stderr.log", job->log_dir);
		a->paths[2] = expt_xasprintf("%s/output.log", job->log_dir);
	}
	a->out.path = a->paths[0];
	a->err.path = a->paths[1];
	if (job->output_dir && expt_mkdirs(job->output_dir, &e))
		goto fail;
	/* Its own copy of the project, as it was when `expt run` started: taken now, not when
	 * the run was queued, from the snapshot, so that edits meanwhile do not reach it. */
	if (job->copy_from && sa->num == 1 && job->cwd && !expt_path_exists(job->cwd) &&
	    expt_copy_tree(job->copy_from, job->cwd, &e))
		goto fail;
	if (job->log_dir && job->params_json && sa->num == 1) {
		char *pf = expt_xasprintf("%s/params.json", job->log_dir);
		int bad = expt_mkdirs(job->log_dir, &e) ||
			  expt_write_file(pf, job->params_json, strlen(job->params_json), &e);
		free(pf);
		if (bad)
			goto fail;
	}
	if (job->log_dir &&
	    (open_log(a->paths[0], &a->out.file, &e) || open_log(a->paths[1], &a->err.file, &e) ||
	     open_log(a->paths[2], &a->comb, &e)))
		goto fail;
	setup_memory(l, job, a, &procs_fd);
	a->start_mono = now_mono();
	pid = fork_exec(l, job, a, procs_fd, msg, n);
	if (procs_fd >= 0)
		close(procs_fd);
	if (pid < 0)
		return -1;
	if (a->watch && a->cg) { /* the child could not join its cgroup */
		expt_memcg_remove(a->cg);
		free(a->cg);
		a->cg = NULL;
	}
	a->pid = pid;
	a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	sa->pid = pid;
	snprintf(sa->ref, sizeof(sa->ref), "pid:%d", (int)pid);
	return 0;
fail:
	snprintf(msg, n, "%s", e.msg);
	return -1;
}

static void engine_signal(void *eng, struct expt_sched_attempt *sa, int hard)
{
	struct proc *a = sa->eng;

	(void)eng;
	if (!a || a->pid <= 0 || a->reaped_at)
		return;
	if (hard) {
		kill(-a->pid, SIGKILL);
		return;
	}
	kill(-a->pid, SIGTERM);
	kill(-a->pid, SIGCONT); /* a stopped process acts on SIGTERM only once continued */
}

/* The leader is reaped and its group gone: say how it ended. */
static void finish_proc(struct local *l, struct proc *a)
{
	struct expt_sched_attempt *sa = a->a;
	struct expt_job *job = expt_sched_job(l->cur, sa);
	struct expt_observed o;
	char lim[32], peak[32], sig[32];
	int failed;

	memset(&o, 0, sizeof(o));
	o.phase = EXPT_OBS_EXITED;
	o.start_ms = sa->start_ms;
	o.end_ms = sa->start_ms + (a->reaped_at - a->start_mono);
	snprintf(o.node, sizeof(o.node), "%s", l->node);
	if (a->lost) {
		o.exit_code = -1;
	} else if (WIFEXITED(a->status)) {
		o.exit_code = WEXITSTATUS(a->status);
	} else {
		o.exit_code = -1;
		o.signal = WIFSIGNALED(a->status) ? WTERMSIG(a->status) : 0;
	}
	failed = o.exit_code != 0;
	if (a->cg) {
		int64_t kills, pk;
		expt_memcg_result(&l->ml, a->cg, &kills, &pk);
		/* A program may survive the OOM kill of a helper process and succeed. */
		if (kills > 0 && failed) {
			a->oom = 1;
			a->peak = pk;
		}
	}
	o.oom = a->oom;
	expt_fmt_mem(job->memory_bytes, lim, sizeof(lim));
	expt_fmt_mem(a->peak, peak, sizeof(peak));
	if (o.oom && a->peak > 0)
		snprintf(o.message, sizeof(o.message), "exceeded memory limit %s (peak %s)", lim,
			 peak);
	else if (o.oom)
		snprintf(o.message, sizeof(o.message), "exceeded memory limit %s", lim);
	else if (a->lost)
		snprintf(o.message, sizeof(o.message),
			 "exit status unknown: another part of the program reaped the process");
	else if (o.signal)
		snprintf(o.message, sizeof(o.message), "killed by %s%s",
			 expt_signal_name(o.signal, sig, sizeof(sig)),
			 WCOREDUMP(a->status) ? " (core dumped)" : "");
	else
		snprintf(o.message, sizeof(o.message), "exited with code %d", o.exit_code);
	for (int w = 0; w < 2; w++) {
		struct stream *st = w ? &a->err : &a->out;
		size_t len = strlen(o.message);
		if (st->file_errno && len + 8 < sizeof(o.message))
			snprintf(o.message + len, sizeof(o.message) - len, " (cannot write %s: %s)",
				 st->path, strerror(st->file_errno));
	}
	expt_sched_ended(l->cur, sa, &o); /* releases a */
}

static void check_exit(struct proc *a, int64_t now)
{
	pid_t r;

	do
		r = waitpid(a->pid, &a->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == ECHILD) {
		/* A SIGCHLD handler of the caller's that waits for any child took it. */
		a->lost = 1;
		a->status = 0;
	} else if (r != a->pid) {
		return;
	}
	a->reaped_at = now;
	/* A run ends when its main process does: what it left behind in its group goes too. */
	kill(-a->pid, SIGKILL);
	if (a->pidfd >= 0) {
		close(a->pidfd);
		a->pidfd = -1;
	}
}

static void watchdog(struct local *l)
{
	size_t nrun;
	struct expt_sched_attempt *const *run = expt_sched_running(l->cur, &nrun);
	struct expt_pgrp_usage *g = expt_xcalloc(nrun ? nrun : 1, sizeof(*g));
	size_t n = 0;

	for (size_t i = 0; i < nrun; i++) {
		struct proc *a = run[i]->eng;
		if (a && a->watch && !a->reaped_at && !a->oom)
			g[n++].pgid = a->pid;
	}
	if (!n || expt_proc_scan(g, n))
		goto out;
	for (size_t i = 0, k = 0; i < nrun && k < n; i++) {
		struct proc *a = run[i]->eng;
		int64_t use, limit;
		if (!a)
			continue;
		limit = expt_sched_job(l->cur, run[i])->memory_bytes;
		if (g[k].pgid != a->pid)
			continue;
		use = g[k].rss;
		/* RSS counts pages shared between processes (forked data loaders) once per process;
		 * before killing a group of several, measure the shares instead. */
		if (use > limit && g[k].nlive > 1) {
			int64_t pss = expt_pgrp_pss(a->pid);
			if (pss >= 0)
				use = pss;
		}
		if (use > a->peak)
			a->peak = use;
		if (use > limit) {
			kill(-a->pid, SIGKILL);
			a->oom = 1;
		}
		k++;
	}
out:
	free(g);
}

/* After the leader: reap what the group left, wait (boundedly) for it to vanish, read the last
 * output. Returns 1 when the attempt can be reported. */
static int group_done(struct local *l, struct proc *a, int64_t now)
{
	siginfo_t si;
	int gone = 0;

	/* Orphans of the group are re-parented to us (child subreaper): reap them. */
	for (;;) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PGID, (id_t)a->pid, &si, WEXITED | WNOHANG) || !si.si_pid)
			break;
	}
	if (kill(-a->pid, 0) && errno == ESRCH) {
		gone = 1;
	} else if (now - a->reaped_at >= 20) {
		/* Zombies that another parent does not reap do not count. */
		struct expt_pgrp_usage g = {a->pid, 0, 0};
		gone = !expt_proc_scan(&g, 1) && !g.nlive;
	}
	if (!gone && now - a->reaped_at < DRAIN_MAX_MS)
		return 0;
	for (int i = 0; i < DRAIN_READS && read_stream(l, a, &a->out, 1); i++)
		;
	for (int i = 0; i < DRAIN_READS && read_stream(l, a, &a->err, 2); i++)
		;
	return 1;
}

/* ---- the loop ---- */

/* Waits up to ms for output, exits and the watchdog's period, and acts on them. */
static int engine_wait(void *eng, struct expt_sched *s, int64_t ms, struct expt_err *err)
{
	struct local *l = eng;
	size_t nrun, np = 0;
	struct expt_sched_attempt *const *run;
	int64_t now = now_mono(), t = ms;
	int r;

	l->cur = s;
	run = expt_sched_running(s, &nrun);
	EXPT_ALLOC_GROW(l->pfd, 3 * nrun + 1, l->cap);
	l->ref = expt_xrealloc(l->ref, l->cap * sizeof(*l->ref));
	for (size_t i = 0; i < nrun; i++) {
		struct proc *a = run[i]->eng;
		int fds[3];
		if (!a)
			continue;
		if (a->unenforced == 1) {
			/* Said once the run has started, so that it is the run's first line. */
			char lim[32], *warn;
			expt_fmt_mem(expt_sched_job(s, run[i])->memory_bytes, lim, sizeof(lim));
			warn = expt_xasprintf("[expt] warning: memory limit %s is not enforced on "
					      "this machine: %s",
					      lim, l->ml.why);
			notice(l, a, warn);
			free(warn);
			a->unenforced = 2;
		}
		if (a->reaped_at && t > 5)
			t = 5;
		/* Without a pidfd, a closed output is the best sign that an exit is near. */
		if (!a->reaped_at && a->pidfd < 0 && a->eof_at && now - a->eof_at < 100 && t > 1)
			t = 1;
		if (!a->reaped_at && a->watch && l->next_watch - now < t)
			t = l->next_watch - now;
		fds[0] = a->reaped_at ? -1 : a->pidfd;
		fds[1] = a->out.fd;
		fds[2] = a->err.fd;
		for (int w = 0; w < 3; w++) {
			if (fds[w] < 0)
				continue;
			l->pfd[np].fd = fds[w];
			l->pfd[np].events = POLLIN;
			l->pfd[np].revents = 0;
			l->ref[np].p = a;
			l->ref[np].which = w;
			np++;
		}
	}
	r = poll(l->pfd, np, (int)(t < 0 ? 0 : t));
	if (r < 0 && errno != EINTR)
		return expt_err_errno(err, EXPT_EBACKEND, "local backend: poll failed"), -1;
	for (size_t k = 0; r > 0 && k < np; k++) {
		struct proc *a = l->ref[k].p;
		if (!l->pfd[k].revents || l->ref[k].which == 0)
			continue;
		read_stream(l, a, l->ref[k].which == 1 ? &a->out : &a->err, l->ref[k].which);
	}
	now = now_mono();
	run = expt_sched_running(s, &nrun);
	for (size_t i = 0; i < nrun; i++) {
		struct proc *a = run[i]->eng;
		if (a && !a->reaped_at) {
			check_exit(a, now);
			if (a->reaped_at)
				run[i]->ending = 1;
		}
	}
	if (now >= l->next_watch) {
		watchdog(l);
		l->next_watch = now + WATCH_MS;
	}
	for (size_t i = 0; i < nrun;) {
		struct proc *a = run[i]->eng;
		if (a && a->reaped_at && group_done(l, a, now)) {
			finish_proc(l, a); /* removes it from the running list */
			run = expt_sched_running(s, &nrun);
		} else {
			i++;
		}
	}
	return 0;
}

static const struct expt_sched_engine engine = {engine_start, engine_signal, engine_wait,
						engine_release, 0};

int expt_local_open(void **state, const struct expt_backend_conf *conf, struct expt_err *err)
{
	struct local *l = expt_xcalloc(1, sizeof(*l));
	int rc;

	l->devnull = -1;
	l->db_path = conf && conf->db_path ? expt_xstrdup(conf->db_path) : NULL;
	if (conf && conf->spec && (rc = expt_local_mounts(conf->spec, &l->io, err))) {
		expt_strv_release(&l->io);
		free(l->db_path);
		free(l);
		return rc;
	}
	*state = l;
	return 0;
}

/* Undoes what submit set up, once every job has finished. */
static void teardown(struct local *l)
{
	for (size_t i = 0; i < l->cg_left.n; i++) {
		/* Killed processes may take a moment to leave the cgroup. */
		for (int t = 0; t < 50 && expt_memcg_remove(l->cg_left.v[i]); t++)
			poll(NULL, 0, 20);
	}
	expt_strv_release(&l->cg_left);
	if (!l->old_reaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	sigaction(SIGPIPE, &l->old_pipe, NULL);
	if (l->old_chld.sa_handler == SIG_IGN)
		sigaction(SIGCHLD, &l->old_chld, NULL);
	if (l->devnull >= 0)
		close(l->devnull);
	l->devnull = -1;
	expt_sched_free(l->sched);
	l->sched = l->cur = NULL;
	free(l->pfd);
	free(l->ref);
	l->pfd = NULL;
	l->ref = NULL;
	l->cap = 0;
}

int expt_local_submit(void *state, struct expt_job **jobs, size_t n,
		      const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		      void *payload, struct expt_err *err)
{
	struct local *l = state;
	struct sigaction ign, dfl;

	if (l->sched)
		return expt_err_set(err, EXPT_EBACKEND, "local backend: one submit per handle");
	expt_hostname(l->node, sizeof(l->node));
	l->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (l->devnull < 0)
		return expt_err_errno(err, EXPT_EBACKEND, "cannot open /dev/null");
	/* Output goes to pipes the supervisor reads and files it writes; a closed reader of the
	 * caller's own output must not kill the supervisor in the middle of a sweep. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &l->old_pipe);
	/* With SIGCHLD ignored the kernel reaps children itself and no exit status is left. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGCHLD, NULL, &l->old_chld);
	if (l->old_chld.sa_handler == SIG_IGN)
		sigaction(SIGCHLD, &dfl, NULL);
	/* Processes a run leaves behind are re-parented to the supervisor, which reaps them; on a
	 * machine whose init does not reap, they would otherwise stay zombies in the group. */
	l->old_reaper = 0;
	prctl(PR_GET_CHILD_SUBREAPER, &l->old_reaper, 0, 0, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	l->next_watch = now_mono() + WATCH_MS;
	l->failed = 0;
	l->sched = l->cur = expt_sched_new(jobs, n, opts, ev, payload, &engine, l);
	return 0;
}

int expt_local_watch(void *state, int64_t timeout_ms, struct expt_err *err)
{
	struct local *l = state;
	int r;

	if (!l->sched)
		return 1;
	l->cur = l->sched;
	if ((r = expt_sched_watch(l->sched, timeout_ms, err)))
		teardown(l);
	return r;
}

void expt_local_close(void *state)
{
	struct local *l = state;

	if (!l)
		return;
	if (l->sched) {
		/* Closed while runs go on: stop them all and wait for the end. */
		struct expt_err e = EXPT_ERR_INIT;
		expt_sched_stop_all(l->sched, 1);
		while (!expt_local_watch(l, 1000, &e))
			;
	}
	free(l->db_path);
	expt_strv_release(&l->io);
	free(l);
}

int expt_local_stop_job(void *state, const char *run_id)
{
	struct local *l = state;

	return l && l->sched && expt_sched_stop_job(l->sched, run_id);
}

/* Is any member of the group still alive (zombies do not count)? */
int expt_local_group_alive(int pgid)
{
	struct expt_pgrp_usage g = {pgid, 0, 0};

	if (kill(-pgid, 0) && errno == ESRCH)
		return 0;
	return expt_proc_scan(&g, 1) || g.nlive > 0;
}

/* Stops a process group this process does not supervise. */
static int stop_group(int pid, int64_t grace_ms, struct expt_err *err)
{
	int64_t deadline;

	/* kill(-1) would signal every process we may signal. */
	if (pid <= 1)
		return expt_err_set(err, EXPT_EUSAGE, "refusing to signal process group %d", pid);
	if (kill(-pid, grace_ms > 0 ? SIGTERM : SIGKILL)) {
		if (errno == ESRCH)
			return 0;
		return expt_err_errno(err, EXPT_EBACKEND, "cannot signal process group %d", pid);
	}
	if (grace_ms <= 0)
		return 0;
	kill(-pid, SIGCONT);
	deadline = now_mono() + grace_ms;
	while (expt_local_group_alive(pid)) {
		if (now_mono() >= deadline) {
			kill(-pid, SIGKILL);
			break;
		}
		poll(NULL, 0, 20);
	}
	return 0;
}

const char *expt_local_memory_method(void)
{
	struct expt_memlimit ml;

	expt_memlimit_probe(&ml);
	return expt_mem_method_name(ml.method);
}

int expt_local_stop_group(int pid, int64_t grace_ms, struct expt_err *err)
{
	return stop_group(pid, grace_ms, err);
}

const char *expt_local_db_path(void *state)
{
	return state ? ((struct local *)state)->db_path : NULL;
}

const struct expt_strv *expt_local_io(void *state)
{
	return state ? &((struct local *)state)->io : NULL;
}
