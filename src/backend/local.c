/* The local backend: runs jobs as process groups on this machine from one poll() loop, with
 * bounded concurrency, exclusive GPU slots, memory limits, timeouts, retries and stop. */
#include "backend.h"
#include "local_impl.h"

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
#define POLL_MS 50		   /* upper bound on a wait: the stop flag is seen this fast */
#define TICK_MS 200		   /* ev->tick period */
#define WATCH_MS 100		   /* memory watchdog period */
#define DRAIN_MAX_MS 3000	   /* how long a finished attempt waits for the rest of its group */
#define DEFAULT_GRACE_MS 5000
#define DRAIN_READS 16 /* reads of leftover output once the group is gone */

enum { J_PENDING, J_RUNNING, J_DONE };

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

struct attempt {
	size_t job;
	int num;   /* 1-based attempt number */
	pid_t pid; /* leader, and id of its process group */
	int pidfd; /* readable when the leader exits; -1 where the kernel has no pidfd */
	int64_t start_ms, start_mono;
	int64_t deadline;  /* monotonic ms of the timeout, 0 = none */
	int64_t kill_at;   /* monotonic ms of the SIGKILL that follows a SIGTERM, 0 = none */
	int64_t eof_at;	   /* when both pipes reached EOF, 0 before */
	int64_t reaped_at; /* when the leader was reaped, 0 while it runs */
	int status;	   /* wait status of the leader */
	struct stream out, err;
	int comb;	/* output.log: both streams in arrival order, -1 if none */
	char *paths[3]; /* stdout.log, stderr.log, output.log under the job's log_dir */
	int *gpu;	/* indices into sup.gpu_ids */
	char *gpus;	/* "0,1" or "" */
	int ngpu;
	int timed_out, stopped, oom, killed;
	int lost;	/* someone else reaped the leader: its status is unknown */
	int watch;	/* memory watched by the watchdog */
	int unenforced; /* memory limit asked for but not enforceable here */
	int64_t peak;	/* watchdog's highest reading */
	char *cg;	/* the attempt's cgroup, NULL if none */
};

struct sup {
	struct expt_job **jobs;
	size_t n;
	const struct expt_exec_opts *opts;
	const struct expt_job_events *ev;
	void *payload;
	int *jstate;   /* J_* per job */
	int *jattempt; /* attempts started per job */
	size_t lo;     /* no pending job below this index */
	size_t ndone;
	struct attempt **run;
	size_t nrun, caprun;
	size_t parallel;
	int64_t grace;
	int stopping, dirty;
	int devnull;
	struct expt_strv gpu_ids;
	char *gpu_busy;
	struct expt_memlimit ml;
	int ml_probed;
	struct expt_strv cg_left; /* cgroups still busy when their attempt ended */
	char node[64];		  /* this machine's name, for the runs' node */
	unsigned seq;
	int64_t next_tick, next_watch;
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

static void deliver(struct sup *s, struct attempt *a, int which, const char *line, size_t len)
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
	if (s->ev->line)
		s->ev->line(s->jobs[a->job], which, line, len, s->payload);
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
static void feed(struct sup *s, struct attempt *a, struct stream *st, int which, char *p, size_t n)
{
	while (n) {
		char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (st->len + take > LINE_CHUNK) {
			size_t room = LINE_CHUNK - st->len;
			append(st, p, room);
			deliver(s, a, which, st->buf, st->len);
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
			deliver(s, a, which, st->buf, st->len);
			st->len = 0;
		} else {
			*nl = '\0';
			deliver(s, a, which, p, take);
		}
		p += take + 1;
		n -= take + 1;
	}
}

static void close_stream(struct sup *s, struct attempt *a, struct stream *st, int which)
{
	if (st->len) {
		deliver(s, a, which, st->buf, st->len);
		st->len = 0;
	}
	if (st->fd >= 0) {
		close(st->fd);
		st->fd = -1;
	}
}

/* One read; returns 1 when more may follow, 0 at EOF (stream closed) or when nothing is there. */
static int read_stream(struct sup *s, struct attempt *a, struct stream *st, int which)
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
		close_stream(s, a, st, which);
		if (a->out.fd < 0 && a->err.fd < 0 && !a->eof_at)
			a->eof_at = now_mono();
		return 0;
	}
	write_all(st, chunk, (size_t)n);
	feed(s, a, st, which, chunk, (size_t)n);
	return 1;
}

/* A line from expt itself, to the run's stderr callback and file. */
static void notice(struct sup *s, struct attempt *a, const char *text)
{
	write_all(&a->err, text, strlen(text));
	write_all(&a->err, "\n", 1);
	deliver(s, a, 2, text, strlen(text));
}

/* ---- bookkeeping ---- */

static void release_attempt(struct sup *s, struct attempt *a)
{
	for (int i = 0; i < a->ngpu; i++)
		s->gpu_busy[a->gpu[i]] = 0;
	close_stream(s, a, &a->out, 1);
	close_stream(s, a, &a->err, 2);
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
		expt_strv_push(&s->cg_left, a->cg);
	free(a->cg);
	free(a->out.buf);
	free(a->err.buf);
	free(a->gpu);
	free(a->gpus);
	free(a);
}

/* Reports the end of an attempt and frees it; ex is complete but for final. */
static void conclude(struct sup *s, struct attempt *a, struct expt_observed *ex, int failed)
{
	struct expt_job *job = s->jobs[a->job];
	int retry =
	    failed && !ex->stopped && !ex->spawn_failed && !s->stopping && a->num <= job->retries;
	size_t i = a->job;

	for (int w = 0; w < 2; w++) {
		struct stream *st = w ? &a->err : &a->out;
		size_t l = strlen(ex->message);
		if (st->file_errno && l + 8 < sizeof(ex->message))
			snprintf(ex->message + l, sizeof(ex->message) - l, " (cannot write %s: %s)",
				 st->path, strerror(st->file_errno));
	}
	ex->final = !retry;
	release_attempt(s, a);
	if (retry) {
		s->jstate[i] = J_PENDING;
		if (i < s->lo)
			s->lo = i;
	} else {
		s->jstate[i] = J_DONE;
		s->ndone++;
	}
	s->dirty = 1;
	if (s->ev->finished)
		s->ev->finished(job, ex, s->payload);
}

static void remove_running(struct sup *s, struct attempt *a)
{
	for (size_t i = 0; i < s->nrun; i++) {
		if (s->run[i] == a) {
			memmove(s->run + i, s->run + i + 1, (s->nrun - i - 1) * sizeof(*s->run));
			s->nrun--;
			return;
		}
	}
}

/* A job that ends without running: it cannot (spawn_failed) or it was stopped while queued. */
static void finish_unstarted(struct sup *s, size_t i, int stopped, const char *msg)
{
	struct expt_observed ex;

	memset(&ex, 0, sizeof(ex));
	ex.phase = EXPT_OBS_EXITED;
	ex.exit_code = -1;
	ex.stopped = stopped;
	ex.spawn_failed = !stopped;
	ex.attempt = s->jattempt[i] + 1;
	ex.final = 1;
	ex.start_ms = ex.end_ms = expt_now_ms();
	snprintf(ex.message, sizeof(ex.message), "%s", msg);
	s->jstate[i] = J_DONE;
	s->ndone++;
	if (s->ev->finished)
		s->ev->finished(s->jobs[i], &ex, s->payload);
}

static void spawn_failed(struct sup *s, struct attempt *a, const char *msg)
{
	struct expt_observed ex;

	memset(&ex, 0, sizeof(ex));
	ex.phase = EXPT_OBS_EXITED;
	ex.exit_code = -1;
	ex.spawn_failed = 1;
	ex.attempt = a->num;
	ex.start_ms = ex.end_ms = expt_now_ms();
	snprintf(ex.message, sizeof(ex.message), "%s", msg);
	conclude(s, a, &ex, 1);
}

/* The leader is reaped and its group gone: say how it ended. */
static void finish_attempt(struct sup *s, struct attempt *a)
{
	struct expt_job *job = s->jobs[a->job];
	struct expt_observed ex;
	char lim[32], peak[32], sig[32], dur[32];
	int failed;

	memset(&ex, 0, sizeof(ex));
	ex.phase = EXPT_OBS_EXITED;
	ex.attempt = a->num;
	ex.start_ms = a->start_ms;
	ex.end_ms = a->start_ms + (a->reaped_at - a->start_mono);
	if (a->lost) {
		ex.exit_code = -1;
	} else if (WIFEXITED(a->status)) {
		ex.exit_code = WEXITSTATUS(a->status);
	} else {
		ex.exit_code = -1;
		ex.signal = WIFSIGNALED(a->status) ? WTERMSIG(a->status) : 0;
	}
	failed = ex.exit_code != 0;
	if (a->cg) {
		int64_t kills, pk;
		expt_memcg_result(&s->ml, a->cg, &kills, &pk);
		/* A program may survive the OOM kill of a helper process and succeed. */
		if (kills > 0 && failed) {
			a->oom = 1;
			a->peak = pk;
		}
	}
	ex.oom = a->oom;
	ex.timed_out = a->timed_out;
	ex.stopped = a->stopped;
	failed = failed || ex.oom || ex.timed_out || ex.stopped;
	expt_fmt_mem(job->memory_bytes, lim, sizeof(lim));
	expt_fmt_mem(a->peak, peak, sizeof(peak));
	expt_fmt_duration(job->timeout_ms, dur, sizeof(dur));
	if (ex.stopped)
		snprintf(ex.message, sizeof(ex.message), "stopped%s",
			 a->killed ? " (killed with SIGKILL after the grace period)" : "");
	else if (ex.oom && a->peak > 0)
		snprintf(ex.message, sizeof(ex.message), "exceeded memory limit %s (peak %s)", lim,
			 peak);
	else if (ex.oom)
		snprintf(ex.message, sizeof(ex.message), "exceeded memory limit %s", lim);
	else if (ex.timed_out)
		snprintf(ex.message, sizeof(ex.message), "timed out after %s%s", dur,
			 a->killed ? " (killed with SIGKILL after the grace period)" : "");
	else if (a->lost)
		snprintf(ex.message, sizeof(ex.message),
			 "exit status unknown: another part of the program reaped the process");
	else if (ex.signal)
		snprintf(ex.message, sizeof(ex.message), "killed by %s%s",
			 expt_signal_name(ex.signal, sig, sizeof(sig)),
			 WCOREDUMP(a->status) ? " (core dumped)" : "");
	else
		snprintf(ex.message, sizeof(ex.message), "exited with code %d", ex.exit_code);
	remove_running(s, a);
	conclude(s, a, &ex, failed);
}

/* ---- starting ---- */

static int take_gpus(struct sup *s, struct attempt *a, int want)
{
	struct expt_buf b = EXPT_BUF_INIT;

	a->gpu = expt_xcalloc((size_t)(want > 0 ? want : 1), sizeof(int));
	for (size_t g = 0; g < s->gpu_ids.n && a->ngpu < want; g++) {
		if (s->gpu_busy[g])
			continue;
		s->gpu_busy[g] = 1;
		a->gpu[a->ngpu++] = (int)g;
		if (b.len)
			expt_buf_addch(&b, ',');
		expt_buf_adds(&b, s->gpu_ids.v[g]);
	}
	a->gpus = expt_buf_detach(&b, NULL);
	return a->ngpu == want ? 0 : -1;
}

static void setup_memory(struct sup *s, struct attempt *a, int *procs_fd)
{
	struct expt_job *job = s->jobs[a->job];
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
static pid_t fork_exec(struct sup *s, struct attempt *a, int procs_fd, char *msg, size_t n)
{
	struct expt_job *job = s->jobs[a->job];
	struct expt_strv env = EXPT_STRV_INIT, cands = EXPT_STRV_INIT;
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, pr[2] = {-1, -1};
	int rec[2], stage = 0, e = 0;
	struct plan p;
	pid_t pid = -1;
	ssize_t r;

	build_env(job, a->gpus, &env);
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

static void spawn(struct sup *s, size_t i)
{
	struct expt_job *job = s->jobs[i];
	struct attempt *a = expt_xcalloc(1, sizeof(*a));
	struct expt_err e = EXPT_ERR_INIT;
	char msg[512];
	int procs_fd = -1;
	pid_t pid;

	a->job = i;
	a->num = ++s->jattempt[i];
	a->pid = -1;
	a->pidfd = a->out.fd = a->err.fd = a->out.file = a->err.file = a->comb = -1;
	if (job->log_dir) {
		a->paths[0] = expt_xasprintf("%s/stdout.log", job->log_dir);
		a->paths[1] = expt_xasprintf("%s/stderr.log", job->log_dir);
		a->paths[2] = expt_xasprintf("%s/output.log", job->log_dir);
	}
	a->out.path = a->paths[0];
	a->err.path = a->paths[1];
	s->jstate[i] = J_RUNNING;
	take_gpus(s, a, job->gpus > 0 ? job->gpus : 0);
	if (!job->argv.n || !job->argv.v[0][0]) {
		spawn_failed(s, a, "empty command");
		return;
	}
	if (job->output_dir && expt_mkdirs(job->output_dir, &e)) {
		spawn_failed(s, a, e.msg);
		return;
	}
	if (job->log_dir && job->params_json && a->num == 1) {
		char *pf = expt_xasprintf("%s/params.json", job->log_dir);
		int bad = expt_mkdirs(job->log_dir, &e) ||
			  expt_write_file(pf, job->params_json, strlen(job->params_json), &e);
		free(pf);
		if (bad) {
			spawn_failed(s, a, e.msg);
			return;
		}
	}
	if (job->log_dir &&
	    (open_log(a->paths[0], &a->out.file, &e) || open_log(a->paths[1], &a->err.file, &e) ||
	     open_log(a->paths[2], &a->comb, &e))) {
		spawn_failed(s, a, e.msg);
		return;
	}
	setup_memory(s, a, &procs_fd);
	a->start_ms = expt_now_ms();
	a->start_mono = now_mono();
	pid = fork_exec(s, a, procs_fd, msg, sizeof(msg));
	if (procs_fd >= 0)
		close(procs_fd);
	if (pid < 0) {
		spawn_failed(s, a, msg);
		return;
	}
	if (a->watch && a->cg) { /* the child could not join its cgroup */
		expt_memcg_remove(a->cg);
		free(a->cg);
		a->cg = NULL;
	}
	a->pid = pid;
	a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (job->timeout_ms > 0)
		a->deadline = a->start_mono + job->timeout_ms;
	EXPT_ALLOC_GROW(s->run, s->nrun + 1, s->caprun);
	s->run[s->nrun++] = a;
	if (s->ev->started) {
		char ref[32];
		struct expt_attempt_info ai = {ref, a->num, a->gpus, s->node, pid};
		snprintf(ref, sizeof(ref), "pid:%d", (int)pid);
		s->ev->started(job, &ai, s->payload);
	}
	if (a->unenforced) {
		char lim[32], *warn;
		expt_fmt_mem(job->memory_bytes, lim, sizeof(lim));
		warn = expt_xasprintf("[expt] warning: memory limit %s is not enforced on this "
				      "machine: %s",
				      lim, s->ml.why);
		notice(s, a, warn);
		free(warn);
	}
}

static size_t free_gpus(const struct sup *s)
{
	size_t n = 0;

	for (size_t g = 0; g < s->gpu_ids.n; g++)
		n += !s->gpu_busy[g];
	return n;
}

/* FIFO, except that a job waiting for GPUs does not hold up later jobs that need none. Later
 * jobs that need GPUs wait behind it, so that a job wanting many GPUs is not starved by a stream
 * of jobs wanting one. */
static void dispatch(struct sup *s)
{
	int gpu_blocked = 0;

	s->dirty = 0;
	while (s->lo < s->n && s->jstate[s->lo] != J_PENDING)
		s->lo++;
	for (size_t i = s->lo; i < s->n && s->nrun < s->parallel && !s->stopping; i++) {
		struct expt_job *job = s->jobs[i];
		if (s->jstate[i] != J_PENDING)
			continue;
		if (job->gpus > 0 && (gpu_blocked || free_gpus(s) < (size_t)job->gpus)) {
			gpu_blocked = 1;
			continue;
		}
		/* A stop recorded while the job waited: it never starts. */
		if (s->ev->admit && s->ev->admit(job, s->payload)) {
			finish_unstarted(s, i, 1, "stopped before it started");
			continue;
		}
		spawn(s, i);
	}
}

/* ---- watching ---- */

static void signal_group(struct attempt *a, int64_t now, int64_t grace)
{
	if (a->kill_at || a->reaped_at)
		return; /* already on its way out */
	kill(-a->pid, SIGTERM);
	kill(-a->pid, SIGCONT); /* a stopped process acts on SIGTERM only once continued */
	a->kill_at = now + grace;
}

static void begin_stop(struct sup *s, int64_t now)
{
	s->stopping = 1;
	for (size_t i = 0; i < s->n; i++)
		if (s->jstate[i] == J_PENDING)
			finish_unstarted(s, i, 1, "stopped before it started");
	for (size_t i = 0; i < s->nrun; i++) {
		struct attempt *a = s->run[i];
		if (a->reaped_at)
			continue;
		a->stopped = 1;
		signal_group(a, now, s->grace);
	}
}

static void check_timers(struct sup *s, struct attempt *a, int64_t now)
{
	if (a->deadline && now >= a->deadline && !a->timed_out) {
		a->timed_out = 1;
		signal_group(a, now, s->grace);
	}
	if (a->kill_at && now >= a->kill_at) {
		kill(-a->pid, SIGKILL);
		a->kill_at = 0;
		a->killed = 1;
	}
}

static void check_exit(struct attempt *a, int64_t now)
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

static void watchdog(struct sup *s)
{
	struct expt_pgrp_usage *g = expt_xcalloc(s->nrun ? s->nrun : 1, sizeof(*g));
	size_t n = 0;

	for (size_t i = 0; i < s->nrun; i++)
		if (s->run[i]->watch && !s->run[i]->reaped_at && !s->run[i]->oom)
			g[n++].pgid = s->run[i]->pid;
	if (!n || expt_proc_scan(g, n))
		goto out;
	for (size_t i = 0, k = 0; i < s->nrun && k < n; i++) {
		struct attempt *a = s->run[i];
		int64_t use, limit = s->jobs[a->job]->memory_bytes;
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
static int group_done(struct sup *s, struct attempt *a, int64_t now)
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
	for (int i = 0; i < DRAIN_READS && read_stream(s, a, &a->out, 1); i++)
		;
	for (int i = 0; i < DRAIN_READS && read_stream(s, a, &a->err, 2); i++)
		;
	return 1;
}

/* ---- the loop ---- */

static int poll_timeout(struct sup *s, int64_t now)
{
	int64_t t = POLL_MS;

	if (s->ev->tick && s->next_tick - now < t)
		t = s->next_tick - now;
	for (size_t i = 0; i < s->nrun; i++) {
		struct attempt *a = s->run[i];
		if (a->reaped_at) {
			if (t > 5)
				t = 5;
			continue;
		}
		/* Without a pidfd, a closed output is the best sign that an exit is near. */
		if (a->pidfd < 0 && a->eof_at && now - a->eof_at < 100 && t > 1)
			t = 1;
		if (a->deadline && !a->timed_out && a->deadline - now < t)
			t = a->deadline - now;
		if (a->kill_at && a->kill_at - now < t)
			t = a->kill_at - now;
		if (a->watch && s->next_watch - now < t)
			t = s->next_watch - now;
	}
	return t < 0 ? 0 : (int)t;
}

struct pollref {
	struct attempt *a;
	int which; /* 1 stdout, 2 stderr, 0 pidfd */
};

/* The handle's state: at most one supervised batch (submit), driven by watch. */
struct local {
	struct sup s;
	char *db_path;	     /* the store the runs report to */
	struct expt_strv io; /* the spec's inputs and outputs as host paths */
	int active;	     /* submitted, not yet all finished */
	int failed;	     /* poll failed: everything is being stopped */
	struct sigaction old_pipe, old_chld;
	int old_reaper;
	struct pollfd *pfd;
	struct pollref *ref;
	size_t cap;
};

/* One turn of the loop: start what may start, wait at most max_ms for output, exits and
 * timers, and act on them. Returns 1 once every job has finished. */
static int loop_once(struct local *l, int64_t max_ms, struct expt_err *err)
{
	struct sup *s = &l->s;
	int64_t now = now_mono();
	size_t np = 0;
	int r, wait;

	if (!s->stopping && s->opts->stop_flag && *s->opts->stop_flag)
		begin_stop(s, now);
	if (s->dirty && !s->stopping)
		dispatch(s);
	if (s->ndone == s->n && !s->nrun)
		return 1;
	EXPT_ALLOC_GROW(l->pfd, 3 * s->nrun + 1, l->cap);
	l->ref = expt_xrealloc(l->ref, l->cap * sizeof(*l->ref));
	for (size_t i = 0; i < s->nrun; i++) {
		struct attempt *a = s->run[i];
		int fds[3] = {a->pidfd, a->out.fd, a->err.fd};
		for (int w = 0; w < 3; w++) {
			if (fds[w] < 0 || (w == 0 && a->reaped_at))
				continue;
			l->pfd[np].fd = fds[w];
			l->pfd[np].events = POLLIN;
			l->pfd[np].revents = 0;
			l->ref[np].a = a;
			l->ref[np].which = w;
			np++;
		}
	}
	wait = poll_timeout(s, now);
	if (max_ms >= 0 && wait > max_ms)
		wait = (int)max_ms;
	r = poll(l->pfd, np, wait);
	if (r < 0 && errno != EINTR && !s->stopping) {
		/* Nothing sensible is left but to end every run. */
		expt_err_errno(err, EXPT_EBACKEND, "local backend: poll failed");
		l->failed = 1;
		s->grace = 0;
		begin_stop(s, now_mono());
		return 0;
	}
	for (size_t k = 0; r > 0 && k < np; k++) {
		struct attempt *a = l->ref[k].a;
		if (!l->pfd[k].revents || l->ref[k].which == 0)
			continue;
		read_stream(s, a, l->ref[k].which == 1 ? &a->out : &a->err, l->ref[k].which);
	}
	now = now_mono();
	for (size_t i = 0; i < s->nrun; i++) {
		if (!s->run[i]->reaped_at)
			check_exit(s->run[i], now);
		if (!s->run[i]->reaped_at)
			check_timers(s, s->run[i], now);
	}
	if (now >= s->next_watch) {
		watchdog(s);
		s->next_watch = now + WATCH_MS;
	}
	for (size_t i = 0; i < s->nrun;) {
		struct attempt *a = s->run[i];
		if (a->reaped_at && group_done(s, a, now))
			finish_attempt(s, a); /* removes it from s->run */
		else
			i++;
	}
	if (s->ev->tick && now_mono() >= s->next_tick) {
		s->ev->tick(s->payload);
		s->next_tick = now_mono() + TICK_MS;
	}
	return 0;
}

/* Jobs that can never run here finish at once; the rest wait for their GPUs. */
static void setup_gpus(struct sup *s)
{
	struct expt_err e = EXPT_ERR_INIT;
	int want = 0, bad;
	char msg[512];

	for (size_t i = 0; i < s->n; i++)
		if (s->jobs[i]->gpus > want)
			want = s->jobs[i]->gpus;
	if (!want)
		return;
	bad = s->opts->gpu_list ? expt_gpus_parse_list(s->opts->gpu_list, &s->gpu_ids, &e)
				: expt_gpus_detect(&s->gpu_ids, &e);
	s->gpu_busy = expt_xcalloc(s->gpu_ids.n + 1, 1);
	for (size_t i = 0; i < s->n; i++) {
		int g = s->jobs[i]->gpus;
		if (g <= 0)
			continue;
		if (bad) {
			finish_unstarted(s, i, 0, e.msg);
		} else if ((size_t)g > s->gpu_ids.n) {
			snprintf(msg, sizeof(msg),
				 "needs %d GPU%s, this machine has %zu (set EXPT_GPUS to override)",
				 g, g == 1 ? "" : "s", s->gpu_ids.n);
			finish_unstarted(s, i, 0, msg);
		}
	}
}

int expt_local_open(void **state, const struct expt_backend_conf *conf, struct expt_err *err)
{
	struct local *l = expt_xcalloc(1, sizeof(*l));
	int rc;

	l->s.devnull = -1;
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
	struct sup *s = &l->s;

	for (size_t i = 0; i < s->cg_left.n; i++) {
		/* Killed processes may take a moment to leave the cgroup. */
		for (int t = 0; t < 50 && expt_memcg_remove(s->cg_left.v[i]); t++)
			poll(NULL, 0, 20);
	}
	if (!l->old_reaper)
		prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	sigaction(SIGPIPE, &l->old_pipe, NULL);
	if (l->old_chld.sa_handler == SIG_IGN)
		sigaction(SIGCHLD, &l->old_chld, NULL);
	if (s->devnull >= 0)
		close(s->devnull);
	s->devnull = -1;
	free(s->jstate);
	free(s->jattempt);
	free(s->run);
	free(s->gpu_busy);
	expt_strv_release(&s->gpu_ids);
	expt_strv_release(&s->cg_left);
	free(l->pfd);
	free(l->ref);
	l->pfd = NULL;
	l->ref = NULL;
	l->cap = 0;
	l->active = 0;
}

int expt_local_submit(void *state, struct expt_job **jobs, size_t n,
		      const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		      void *payload, struct expt_err *err)
{
	struct local *l = state;
	struct sup *s = &l->s;
	struct sigaction ign, dfl;

	if (l->active || s->jobs)
		return expt_err_set(err, EXPT_EBACKEND, "local backend: one submit per handle");
	memset(s, 0, sizeof(*s));
	s->jobs = jobs;
	s->n = n;
	s->opts = opts;
	s->ev = ev;
	s->payload = payload;
	s->parallel = opts->parallel > 0 ? (size_t)opts->parallel : 1;
	s->grace = opts->grace_ms > 0 ? opts->grace_ms : DEFAULT_GRACE_MS;
	s->jstate = expt_xcalloc(n ? n : 1, sizeof(int));
	s->jattempt = expt_xcalloc(n ? n : 1, sizeof(int));
	if (gethostname(s->node, sizeof(s->node) - 1))
		s->node[0] = '\0';
	s->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s->devnull < 0) {
		free(s->jstate);
		free(s->jattempt);
		memset(s, 0, sizeof(*s));
		s->devnull = -1;
		return expt_err_errno(err, EXPT_EBACKEND, "cannot open /dev/null");
	}
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
	l->active = 1;
	l->failed = 0;
	setup_gpus(s);
	s->next_tick = now_mono() + TICK_MS;
	s->next_watch = now_mono() + WATCH_MS;
	s->dirty = 1;
	return 0;
}

int expt_local_watch(void *state, int64_t timeout_ms, struct expt_err *err)
{
	struct local *l = state;
	int64_t end = now_mono() + (timeout_ms > 0 ? timeout_ms : 0);

	if (!l->active)
		return 1;
	for (;;) {
		int64_t left = end - now_mono();
		if (loop_once(l, left > 0 ? left : 0, err)) {
			int failed = l->failed;
			teardown(l);
			return failed ? -1 : 1;
		}
		if (now_mono() >= end)
			return 0;
	}
}

void expt_local_close(void *state)
{
	struct local *l = state;

	if (!l)
		return;
	if (l->active) {
		/* Closed while runs go on: stop them all and wait for the end. */
		struct expt_err e = EXPT_ERR_INIT;
		l->s.grace = 0;
		begin_stop(&l->s, now_mono());
		while (!expt_local_watch(l, 1000, &e))
			;
	}
	free(l->db_path);
	expt_strv_release(&l->io);
	free(l);
}

/* Is any member of the group still alive (zombies do not count)? */
static int group_alive(int pgid)
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
	while (group_alive(pid)) {
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

int expt_local_stop_job(void *state, const char *run_id)
{
	struct local *l = state;
	struct sup *s = &l->s;

	if (!l || !l->active)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->jobs[i]->run_id, run_id))
			continue;
		if (s->jstate[i] == J_PENDING) {
			finish_unstarted(s, i, 1, "stopped before it started");
			s->dirty = 1;
		} else if (s->jstate[i] == J_RUNNING) {
			for (size_t k = 0; k < s->nrun; k++) {
				struct attempt *a = s->run[k];
				if (a->job != i || a->reaped_at)
					continue;
				a->stopped = 1;
				signal_group(a, now_mono(), s->grace);
			}
		}
		return 1;
	}
	return 0;
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
