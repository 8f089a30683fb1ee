/* The backend interface: what cli/ knows about execution. A backend executes fully resolved jobs
 * and reports what happens through callbacks; it knows nothing of the store or the spec.
 * Owner: backend/. */
#ifndef EXPT_BACKEND_BACKEND_H
#define EXPT_BACKEND_BACKEND_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"
#include "../util/strv.h"

/* One run to execute. Filled by the caller; the backend only reads it (and `state`). */
struct expt_job {
	const char *run_id;
	struct expt_strv argv; /* final argv (argv[0] searched in PATH) */
	struct expt_strv env;  /* "KEY=VALUE" added to (overriding) the inherited environment */
	const char *cwd;
	const char *stdout_path, *stderr_path; /* appended to; created if missing */
	int gpus;			       /* exclusive GPU slots wanted */
	int64_t memory_bytes;		       /* 0 = no limit */
	int64_t timeout_ms;		       /* 0 = none; per attempt */
	int retries; /* extra attempts after a failure or timeout (not after stop or a
			spawn failure; docs/backends.md) */
	int echo;    /* for the caller: show output live? (the local backend delivers
			every line to ev->line whatever its value) */
	void *data;  /* caller's */
};

/* How an attempt ended. */
struct expt_exit {
	int exit_code;	  /* -1 if killed by a signal */
	int signal;	  /* 0 if exited */
	int oom;	  /* memory limit exceeded (cgroup oom_kill or expt's watchdog) */
	int timed_out;	  /* killed after job->timeout_ms */
	int stopped;	  /* stopped on request (Ctrl-C, expt stop) */
	int spawn_failed; /* could not start: message says why (e.g. command not found) */
	int attempt;	  /* 1-based */
	int final;	  /* no further attempt will follow */
	int64_t start_ms, end_ms;
	char message[512]; /* human summary: "exited with code 3", "killed by SIGKILL",
			      "exceeded memory limit 64Mi (peak 71Mi)", "timed out after 2s" */
};

/* A line longer than this reaches `line` in pieces of exactly this size (then the rest). */
#define EXPT_LINE_PIECE 65536

struct expt_job_events {
	/* An attempt started: pid is the process group leader; gpus "0,1" or "" */
	void (*started)(struct expt_job *job, int pid, int attempt, const char *gpus,
			void *payload);
	/* A complete line of output (without the newline; partial last lines flushed at exit).
	 * fd is 1 or 2. Called on the supervisor's thread. The local backend NUL-terminates line
	 * (line[len] == '\0') and delivers a line longer than 64 KiB in 64 KiB pieces. */
	void (*line)(struct expt_job *job, int fd, const char *line, size_t len, void *payload);
	/* An attempt ended (final says whether the job is done). */
	void (*finished)(struct expt_job *job, const struct expt_exit *ex, void *payload);
	/* Called about every 200 ms so the caller can refresh progress; may be NULL. */
	void (*tick)(void *payload);
};

struct expt_exec_opts {
	int parallel;	      /* max concurrent jobs, >= 1 */
	const char *gpu_list; /* GPU ids "0,1,2"; NULL = detect ($EXPT_GPUS, nvidia-smi -L) */
	volatile sig_atomic_t *stop_flag; /* when it becomes non-zero: stop every job (SIGTERM to
					     the group, SIGKILL after grace_ms), mark stopped */
	int64_t grace_ms;		  /* default 5000 */
};

struct expt_backend_ops {
	const char *name;
	/* Runs all jobs to completion, honouring parallel/GPUs/limits; returns 0 when every job
	 * was dispatched and reported (whatever their outcome), non-zero on an internal failure.
	 * Jobs that can never run (more GPUs than exist) finish with spawn_failed and a message.
	 * The local backend, while it runs, ignores SIGPIPE, restores SIGCHLD's default if it
	 * was ignored and makes the process a child subreaper (all undone before it returns). */
	int (*execute)(struct expt_job **jobs, size_t n, const struct expt_exec_opts *opts,
		       const struct expt_job_events *ev, void *payload, struct expt_err *err);
	/* Stops a running attempt by its process group (SIGTERM, then SIGKILL after grace). */
	int (*stop)(int pid, int64_t grace_ms, struct expt_err *err);
};

extern const struct expt_backend_ops expt_backend_local;
/* Returns the backend named name, or NULL. */
const struct expt_backend_ops *expt_backend_find(const char *name);

/* GPU discovery: $EXPT_GPUS ("0,1", or "none"), else `nvidia-smi -L`. Fills ids ("0","1"). */
int expt_gpus_detect(struct expt_strv *ids, struct expt_err *err);

/* How the local backend enforces resources.memory on this machine: "cgroup v2", "cgroup v1",
 * "rss watchdog" or "none" (then each run with a limit gets a warning line on its stderr).
 * Probes the machine on each call (it may create and remove an empty cgroup). Static string. */
const char *expt_local_memory_method(void);

#endif
