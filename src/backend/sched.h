/* The scheduler every backend shares: a queue of jobs started at most `parallel` at a time,
 * exclusive GPU slots, retries, timeouts, admission and stop. It drives an engine (local
 * processes; containers and pods later) through a small table of operations and reports to the
 * caller through struct expt_job_events. Nothing here knows a process. Owner: backend/. */
#ifndef EXPT_BACKEND_SCHED_H
#define EXPT_BACKEND_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

struct expt_sched; /* opaque */

/* One attempt of a job, shared by the scheduler (the generic fields) and the engine (eng). */
struct expt_sched_attempt {
	size_t job;	  /* index of the job */
	int num;	  /* 1-based */
	int64_t start_ms; /* wall clock, set by the scheduler before start */
	int64_t deadline; /* monotonic ms of the timeout, 0 = none */
	int64_t kill_at;  /* monotonic ms of the hard stop that follows a soft one, 0 = none */
	int timed_out, stopped, killed;
	int ending; /* set by the engine once the attempt's end is certain (draining): no more
		       signals, no more timers */
	int *gpu;   /* indices of the GPU slots it holds */
	int ngpu;
	char *gpus;	  /* their ids, "0,1" or "" */
	char ref[64];	  /* the engine's name for it, set by start */
	int pid;	  /* the local engine's process group, 0 elsewhere */
	const char *node; /* where it runs, set by start ("" unknown) */
	void *eng;	  /* the engine's part */
};

struct expt_sched_engine {
	/* Starts attempt a of job: sets a->ref (and pid, node, eng). Returns 0, or -1 with msg
	 * filled: the attempt then ends as could-not-start. */
	int (*start)(void *eng, struct expt_sched *s, struct expt_job *job,
		     struct expt_sched_attempt *a, char *msg, size_t n);
	/* Asks a to end: hard 0 gracefully (SIGTERM), 1 at once (SIGKILL). */
	void (*signal)(void *eng, struct expt_sched_attempt *a, int hard);
	/* Waits up to ms for the engine, reporting through expt_sched_line and expt_sched_ended.
	 * Returns 0, or < 0 with err filled when the engine can no longer be watched. */
	int (*wait)(void *eng, struct expt_sched *s, int64_t ms, struct expt_err *err);
	/* Frees a->eng. */
	void (*release)(void *eng, struct expt_sched_attempt *a);
	unsigned flags; /* EXPT_SCHED_* */
};

/* The engine places, retries and times out runs itself (a cluster: a Job's backoffLimit and
 * activeDeadlineSeconds, the cluster's GPUs): the scheduler keeps only the queue (`parallel`),
 * admission and stop. One attempt of the scheduler is then the engine's whole run; the engine
 * says how many tries it took in expt_observed.attempt. */
#define EXPT_SCHED_REMOTE 0x1

/* jobs, opts, ev and payload are borrowed until expt_sched_free. Jobs that can never run (more
 * GPUs than exist) are finished (could not start) by the first turn. */
struct expt_sched *expt_sched_new(struct expt_job **jobs, size_t n,
				  const struct expt_exec_opts *opts,
				  const struct expt_job_events *ev, void *payload,
				  const struct expt_sched_engine *engine, void *eng);
void expt_sched_free(struct expt_sched *s); /* NULL is a no-op; attempts must have ended */
/* One turn: stop everything if the stop flag is up, start what may start, let the engine
 * wait at most max_ms, act on timeouts. Returns 1 once every job has finished, 0 while some
 * have not, < 0 when the engine failed (every job is then being stopped). */
int expt_sched_turn(struct expt_sched *s, int64_t max_ms, struct expt_err *err);
/* Turns for up to timeout_ms: what a backend's watch does. Returns as expt_sched_turn: 1 once
 * every job has finished, < 0 when the engine failed, 0 when the time ran out first. */
int expt_sched_watch(struct expt_sched *s, int64_t timeout_ms, struct expt_err *err);
/* Stops the job whose run id is run_id: queued, it ends as stopped without starting; running,
 * it is asked to end (then forced after the grace period). Returns 1, or 0 when it is not one
 * of this scheduler's jobs. */
int expt_sched_stop_job(struct expt_sched *s, const char *run_id);
/* Stops every job (Ctrl-C; an engine that failed). hard: no grace period. */
void expt_sched_stop_all(struct expt_sched *s, int hard);

/* Whether no job waits to start any more (each has started or finished). */
int expt_sched_all_started(const struct expt_sched *s);
/* Forgets every running attempt without stopping it (the engine's release is called: an engine
 * whose runs outlive expt leaves them running) and without reporting an end: a detached launch
 * hands them to the engine. Call only once expt_sched_all_started. */
void expt_sched_let_go(struct expt_sched *s);

/* For the engine. */
struct expt_job *expt_sched_job(struct expt_sched *s, const struct expt_sched_attempt *a);
/* The attempts that run now (valid until the next call into the scheduler). */
struct expt_sched_attempt *const *expt_sched_running(struct expt_sched *s, size_t *n);
/* A line of a's output (see struct expt_job_events.line). */
/* The engine's view of a started attempt changed (pending and why, or running where): passed
 * to the events' state. */
void expt_sched_state(struct expt_sched *s, struct expt_sched_attempt *a,
		      const struct expt_observed *o);
void expt_sched_line(struct expt_sched *s, struct expt_sched_attempt *a, int fd, const char *line,
		     size_t len);
/* a has ended, as o says (exit code, signal, oom, message; phase EXITED): the scheduler adds
 * what it knows (stopped, timed out), decides on a retry, reports and frees a. */
void expt_sched_ended(struct expt_sched *s, struct expt_sched_attempt *a, struct expt_observed *o);

#endif
