/* The lifecycle of a run: the one module that changes a run's status. Every move is a
 * compare-and-set (the run must be in one of the states the move starts from) done in one
 * transaction with the event it records, and one mapping turns what an engine observed into a
 * status and a reason. launch, stop, reconcile and libexpt's standalone runs all go through
 * here, so a run is never both stopped and succeeded whatever the interleaving.
 * The state machine, who may make each move and the reason recorded: docs/backends.md.
 * Owner: store/. */
#ifndef EXPT_STORE_LIFECYCLE_H
#define EXPT_STORE_LIFECYCLE_H

#include <stdint.h>

#include "store.h"

#define EXPT_RUN_BIT(s) (1 << (s))
/* Not yet ended: expt or the engine still owns a future for it. */
#define EXPT_RUN_ACTIVE                                                                            \
	(EXPT_RUN_BIT(EXPT_RUN_QUEUED) | EXPT_RUN_BIT(EXPT_RUN_PENDING) |                          \
	 EXPT_RUN_BIT(EXPT_RUN_RUNNING))
#define EXPT_RUN_ENDED                                                                             \
	(EXPT_RUN_BIT(EXPT_RUN_SUCCEEDED) | EXPT_RUN_BIT(EXPT_RUN_FAILED) |                        \
	 EXPT_RUN_BIT(EXPT_RUN_STOPPED))

/* What an engine observed about a run's current attempt. Backends fill it (watch, poll); the
 * lifecycle maps it to a status and a reason (expt_lifecycle_outcome). */
enum expt_obs_phase {
	EXPT_OBS_UNKNOWN = 0, /* the engine cannot say (yet) */
	EXPT_OBS_PENDING,     /* accepted by the engine, not started (pulling, unschedulable) */
	EXPT_OBS_RUNNING,
	EXPT_OBS_EXITED, /* the attempt ended: exit_code/signal/flags say how */
	EXPT_OBS_GONE,	 /* the engine no longer knows the run, and never said how it ended */
};

struct expt_observed {
	enum expt_obs_phase phase;
	int exit_code;	  /* -1 when killed by a signal or unknown */
	int signal;	  /* 0 when none */
	int oom;	  /* out of memory (cgroup OOM kill, watchdog, OOMKilled) */
	int timed_out;	  /* killed past the run's timeout */
	int stopped;	  /* stopped on request */
	int spawn_failed; /* never started: bad command, image, manifest */
	int attempt;	  /* 1-based, 0 when unknown */
	int final;	  /* no further attempt will follow (EXITED only) */
	int64_t start_ms, end_ms;
	char node[128];	   /* where it ran ("" unknown) */
	char message[512]; /* human summary ("exited with code 3", "OOMKilled", ...) */
};

/* The status and reason an EXITED or GONE observation means. reason is static: exit, signal,
 * oom, timeout, stopped, error, lost. */
void expt_lifecycle_outcome(const struct expt_observed *o, enum expt_run_status *status,
			    const char **reason);

/* One move. Fields left at their _INIT values are not written. */
struct expt_transition {
	int from;		   /* EXPT_RUN_BIT mask of the states the move may start from */
	enum expt_run_status to;   /* the new status */
	const char *reason;	   /* recorded on the run (ended runs); NULL clears it */
	const char *message;	   /* human detail; NULL clears it */
	const char *event;	   /* kind of the event appended in the same transaction, or NULL */
	const char *event_message; /* its text (NULL: message) */
	int exit_code, signal;	   /* ended runs: recorded; -1/0 when none */
	int attempt;		   /* > 0: recorded */
	int pid;		   /* >= 0: recorded (the local backend's process group) */
	const char *backend_ref;   /* non-NULL: recorded (the engine's name for the run) */
	const char *node;	   /* non-NULL: recorded */
	const char *gpus;	   /* non-NULL: recorded ("" clears) */
	int supervisor_pid;	   /* >= 0: recorded with supervisor_start */
	int64_t supervisor_start;
	int64_t time_ms; /* when; 0 = now. RUNNING sets started_ms, ended states ended_ms */
	/* > 0: move only while this is still the run's recorded supervisor (reconcile: a run that
	 * a live supervisor took over meanwhile is not lost); else EXPT_ECONFLICT. */
	int if_supervisor_pid;
	int64_t if_supervisor_start;
};
#define EXPT_TRANSITION_INIT                                                                       \
	{                                                                                          \
		0, EXPT_RUN_QUEUED, NULL, NULL, NULL, NULL, -1, 0, 0, -1, NULL, NULL, NULL, -1, 0, \
		    0, 0, 0                                                                        \
	}

/* Moves run_id as t says, in one transaction with its event, if and only if its status is in
 * t->from. Returns 0 when moved; EXPT_ECONFLICT when the run is in another state (then
 * *current, if not NULL, holds it, and nothing was written); EXPT_ENOTFOUND for an unknown run.
 * A move to RUNNING from RUNNING is a new attempt (exit fields cleared). */
int expt_lifecycle_move(struct expt_store *st, const char *run_id, const struct expt_transition *t,
			enum expt_run_status *current, struct expt_err *err);

/* The move that ends a run as o says (o->phase EXITED or GONE), from any active state: status
 * and reason from expt_lifecycle_outcome, event of that reason kind. Same returns as move. */
int expt_lifecycle_end(struct expt_store *st, const char *run_id, const struct expt_observed *o,
		       enum expt_run_status *current, struct expt_err *err);

/* The run's status alone (one indexed read; cheaper than expt_store_get_run). */
int expt_lifecycle_status(struct expt_store *st, const char *run_id, enum expt_run_status *status,
			  struct expt_err *err);

/* `expt stop` and Ctrl-C: any active run becomes stopped ("stopped", message why). */
int expt_lifecycle_stop(struct expt_store *st, const char *run_id, const char *why,
			enum expt_run_status *current, struct expt_err *err);

#endif
