/* The backend interface: what cli/ knows about execution. A backend is an engine that owns runs
 * (local processes, containers, Kubernetes Jobs); cli/ reaches it through a handle and a table
 * of operations, and records what it reports through store/lifecycle.h. Nothing above this
 * header knows a pid, a container id or a pod. docs/backends.md says how a backend plugs in.
 * Owner: backend/. */
#ifndef EXPT_BACKEND_BACKEND_H
#define EXPT_BACKEND_BACKEND_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "../spec/spec.h"
#include "../store/lifecycle.h"
#include "../store/store.h"
#include "../util/err.h"
#include "../util/strv.h"

/* One run to execute. Filled by the caller; the backend only reads it. */
struct expt_job {
	const char *run_id;
	struct expt_strv argv; /* final argv (argv[0] searched in PATH) */
	struct expt_strv env;  /* "KEY=VALUE" added to (overriding) the inherited environment */
	const char *cwd;
	const char *log_dir;	/* where the backend keeps the run's output (stdout.log, stderr.log,
				   output.log), created if missing; NULL = none kept */
	const char *output_dir; /* the run's outputs on this machine, created if missing */
	const char *params_json; /* written where the contract's params_file says */
	const char *copy_from;	 /* a snapshot of the project, copied to cwd before the first
				    attempt (workdir: snapshot); NULL = none */
	int gpus;		 /* exclusive GPU slots wanted */
	int64_t memory_bytes;	 /* 0 = no limit */
	int64_t timeout_ms;	 /* 0 = none; per attempt */
	int retries;		 /* extra attempts after a failure or timeout (not after stop or a
				    spawn failure; docs/backends.md) */
	void *data;		 /* caller's */
	size_t index;		 /* 0-based position of the run in its sweep (labels) */
};

/* A line longer than this reaches `line` in pieces of exactly this size (then the rest). */
#define EXPT_LINE_PIECE 65536

/* An attempt the engine has started. */
struct expt_attempt_info {
	const char *ref;  /* the engine's name for it (recorded as the run's backend_ref) */
	int attempt;	  /* 1-based */
	const char *gpus; /* "0,1" or "" */
	const char *node; /* where it runs, "" if unknown */
	int pid;	  /* the local backend's process group, 0 elsewhere (shown by ps) */
};

struct expt_job_events {
	/* The job is about to start (first attempt or a retry). Non-zero: it must not (the caller
	 * recorded a stop meanwhile): the backend ends it as stopped without starting it. NULL:
	 * always start. */
	int (*admit)(struct expt_job *job, void *payload);
	/* An attempt started. */
	void (*started)(struct expt_job *job, const struct expt_attempt_info *ai, void *payload);
	/* A complete line of output (without the newline; partial last lines flushed at exit).
	 * fd is 1 or 2. Called on the caller's thread, inside watch. line[len] == '\0'; a line
	 * longer than 64 KiB comes in 64 KiB pieces. */
	void (*line)(struct expt_job *job, int fd, const char *line, size_t len, void *payload);
	/* An attempt ended (o->phase EXITED; o->final says whether the job is done). */
	void (*finished)(struct expt_job *job, const struct expt_observed *o, void *payload);
	/* Called about every 200 ms while watching; may be NULL. */
	void (*tick)(void *payload);
	/* May be NULL. A started attempt the engine has not run yet, or that now runs: o->phase
	 * PENDING with why in o->message ("Unschedulable: 0/3 nodes are available..."), or
	 * RUNNING with o->node. Engines that place work themselves (Kubernetes) report it; the
	 * others' attempts run as they start. */
	void (*state)(struct expt_job *job, const struct expt_observed *o, void *payload);
};

struct expt_exec_opts {
	int parallel;	      /* max concurrent jobs, >= 1 */
	const char *gpu_list; /* GPU ids "0,1,2"; NULL = detect ($EXPT_GPUS, nvidia-smi -L) */
	volatile sig_atomic_t *stop_flag; /* when it becomes non-zero: stop every job (SIGTERM to
					     the group, SIGKILL after grace_ms), mark stopped */
	int64_t grace_ms;		  /* default 5000 */
};

/* Options of a log stream. */
struct expt_logs_opts {
	int which;    /* 0 both streams in arrival order, 1 stdout, 2 stderr */
	int64_t tail; /* start with the last N lines; -1 = from the start */
	int follow;   /* keep reading what comes (read returns what is new each time) */
	int64_t from; /* start at this byte of the stream (tail < 0 only); 0 = the start */
};

/* Called per line by logs_read: line[len] == '\0'. offset is the position of the line in the
 * stream (bytes), so a reader can resume or ingest a line once. */
typedef void (*expt_line_fn)(const char *line, size_t len, int64_t offset, void *payload);

/* Why a run is where it is: what debug shows. Text is owned by the struct. */
struct expt_diagnosis {
	char cause[1200];
	char hint[512];
	struct expt_strv evidence; /* "label: text" lines (engine events, conditions) */
	struct expt_strv stderr_tail, stdout_tail;
	char stderr_where[1024], stdout_where[1024]; /* where the tails come from ("" none) */
};
void expt_diagnosis_release(struct expt_diagnosis *d);
/* What runs that failed the same way share: cause with what is particular to one run taken
 * out, so that `expt debug EXPT` can group its runs by it. The run's own names (its id, the
 * engine's ref, a pod named after either, its directories) become <run>, <ref>, <pod>, <dir>;
 * timestamps <time>; UUIDs and long hex ids <id>; every other number <n> unless the word before
 * it makes it part of the cause (exit code 3, signal 9, memory limit 64Mi, after 2s, HTTP 503).
 * Writes at most n bytes (n > 0) including the NUL into out; run may be NULL. */
void expt_diagnosis_cause_key(const char *cause, const struct expt_run_rec *run, char *out,
			      size_t n);

/* The run contract's paths as the run sees them (host paths for local, mount paths in a
 * container or pod). Owned by the struct. */
struct expt_contract {
	char *output_dir;    /* EXPT_OUTPUT_DIR */
	char *params_file;   /* EXPT_PARAMS_FILE */
	char *store;	     /* EXPT_STORE, NULL when the run cannot reach the store */
	struct expt_strv io; /* "inputs.NAME=path", "outputs.NAME=path" as the run sees them */
	char *library;	     /* EXPT_LIBRARY: the libexpt matching this expt, NULL if none */
	char *pythonpath;    /* the Python binding's directory when not installed, or NULL */
	/* MLFLOW_TRACKING_URI for a run whose spec names no server (no tracking.uri): the MLflow
	 * server expt deployed where the run goes (kubernetes: `expt tracking deploy` in its
	 * namespace), or NULL. */
	char *tracking_uri;
};
void expt_contract_release(struct expt_contract *c);

/* What opening a backend needs. */
struct expt_backend_conf {
	const char *spec_json;	      /* the resolved spec (NULL: defaults; read-only commands) */
	const char *db_path;	      /* the store */
	const struct expt_spec *spec; /* when launching: checked before any run is created */
	int offline; /* only contract and render will be asked (plan, --dry-run): no engine is
			connected */
	/* A one-line account of slow work the engine does before a run starts (an image pull),
	 * replaced as it goes and "" when done; NULL: nobody is shown. Called on the caller's
	 * thread, at most about ten times a second. */
	void (*progress)(const char *text, void *payload);
	void *progress_payload;
};

/* Capabilities. */
#define EXPT_BACKEND_DETACHED                                                                      \
	0x1 /* the engine keeps runs going without an expt process: -d needs                       \
	       no supervisor, and ps asks the engine (poll) */

/* render gives the objects the engine is sent, which a user could apply themselves: `expt run
 * --dry-run -o yaml` prints them (Kubernetes manifests) instead of the plan. */
#define EXPT_BACKEND_MANIFESTS 0x2

/* The engine enforces retries, timeouts and GPUs itself (a Job's backoffLimit,
 * activeDeadlineSeconds and nvidia.com/gpu): -d needs no supervisor for them. */
#define EXPT_BACKEND_ENGINE_LIMITS 0x4

struct expt_backend_ops {
	const char *name;
	unsigned caps;
	/* Connects to the engine (local: nothing). *state is passed to every other op. */
	int (*open)(void **state, const struct expt_backend_conf *conf, struct expt_err *err);
	void (*close)(void *state); /* NULL state is a no-op */
	/* The run contract's paths as run sees them (its inputs and outputs included). run NULL:
	 * only what does not depend on the run (store, io), for plan. */
	int (*contract)(void *state, const struct expt_run_rec *run, struct expt_contract *out,
			struct expt_err *err);
	/* What submit would send for job, as JSON (local: argv, env, cwd, limits). *out is the
	 * caller's (json_decref). */
	int (*render)(void *state, const struct expt_job *job, json_t **out, struct expt_err *err);
	/* Checks jobs with the engine before any of them is submitted (NULL: nothing to check):
	 * the Kubernetes backend asks the API server (access review, a server-side dry run of
	 * every object). Non-zero with err saying, per run and spec field, what is wrong; nothing
	 * was created then. */
	int (*validate)(void *state, struct expt_job **jobs, size_t n, struct expt_err *err);
	/* Hands jobs to the engine; they run honouring opts, and watch reports what happens. The
	 * jobs and ev must stay valid until watch has returned 1. A job the engine can never run
	 * (more GPUs than exist) finishes with spawn_failed. One submit per handle. */
	int (*submit)(void *state, struct expt_job **jobs, size_t n,
		      const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		      void *payload, struct expt_err *err);
	/* Observes the engine for up to timeout_ms, calling ev's callbacks. Returns 1 when every
	 * submitted job has finished, 0 when some have not, < 0 on an internal failure (every job
	 * is then stopped and finished before it returns 1 on a later call). */
	int (*watch)(void *state, int64_t timeout_ms, struct expt_err *err);
	/* The current state of runs (ps, reconcile), one observation each, from the engine. */
	int (*poll)(void *state, const struct expt_run_rec *runs, size_t n,
		    struct expt_observed *out, struct expt_err *err);
	/* A stream of a run's output: open, then read what is new (non-blocking), close. *ended
	 * becomes 1 when the stream can have no more lines (the run ended and all was read). */
	int (*logs_open)(void *state, const struct expt_run_rec *run,
			 const struct expt_logs_opts *o, void **stream, struct expt_err *err);
	int (*logs_read)(void *stream, int run_ended, expt_line_fn fn, void *payload, int *ended,
			 struct expt_err *err);
	void (*logs_close)(void *stream);
	/* Why the run is where it is (cause, hint, evidence, last lines). */
	int (*diagnose)(void *state, const struct expt_run_rec *run, size_t nlines,
			struct expt_diagnosis *out, struct expt_err *err);
	/* Stops the run's current attempt (running, pending or queued in the engine), so that it
	 * never starts later. A run this handle supervises is stopped in its watch; another is
	 * stopped at once (SIGTERM, SIGKILL after grace_ms for local). */
	int (*stop)(void *state, const struct expt_run_rec *run, int64_t grace_ms,
		    struct expt_err *err);
	/* Removes what the engine keeps of an ended run (local: its directory). */
	int (*remove)(void *state, const struct expt_run_rec *run, struct expt_err *err);
	/* EXPT_BACKEND_DETACHED only (NULL elsewhere): once every submitted job has started (or
	 * ended), lets go of them without stopping them: the engine keeps running them, and read
	 * commands ask it (poll) how they end. Returns 1 when it let go (watch then returns 1),
	 * 0 while some job still waits to start (watch some more). */
	int (*detach)(void *state, struct expt_err *err);
};

/* A backend handle. */
struct expt_backend {
	const struct expt_backend_ops *ops;
	void *state;
};

extern const struct expt_backend_ops expt_backend_local;
extern const struct expt_backend_ops expt_backend_container;
extern const struct expt_backend_ops expt_backend_kubernetes;
/* The backend named name, or NULL. */
const struct expt_backend_ops *expt_backend_find(const char *name);
/* "local" ... for messages: every backend this expt has, comma-separated. Static. */
const char *expt_backend_names(void);
/* Opens the backend named name (EXPT_EBACKEND naming the ones there are when unknown). */
int expt_backend_open(struct expt_backend *b, const char *name,
		      const struct expt_backend_conf *conf, struct expt_err *err);
void expt_backend_close(struct expt_backend *b); /* zeroed or closed handle: no-op */
/* submit, then watch until every job has finished. */
int expt_backend_execute(struct expt_backend *b, struct expt_job **jobs, size_t n,
			 const struct expt_exec_opts *opts, const struct expt_job_events *ev,
			 void *payload, struct expt_err *err);

/* GPU discovery: $EXPT_GPUS ("0,1", or "none"), else `nvidia-smi -L`. Fills ids ("0","1"). */
int expt_gpus_detect(struct expt_strv *ids, struct expt_err *err);

/* How the local backend enforces resources.memory on this machine: "cgroup v2", "cgroup v1",
 * "rss watchdog" or "none" (then each run with a limit gets a warning line on its stderr).
 * Probes the machine on each call (it may create and remove an empty cgroup). Static string. */
const char *expt_local_memory_method(void);

#endif
