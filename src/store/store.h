/* The embedded store: SQLite (WAL) at <project>/.expt/expt.db. Experiments, runs, params,
 * metrics, tags, artifacts, events; run-id allocation. Owner: store/.
 * Strings in returned records are owned by the record; release with the matching _release. */
#ifndef EXPT_STORE_STORE_H
#define EXPT_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

struct expt_store; /* opaque; one connection; not shared between threads */

/* The values are stored: never renumber. The state machine: store/lifecycle.h, docs/backends.md. */
enum expt_run_status {
	EXPT_RUN_QUEUED = 0,	/* waiting in expt's queue (parallel, GPU slots) */
	EXPT_RUN_RUNNING = 1,	/* an attempt runs */
	EXPT_RUN_SUCCEEDED = 2, /* ended: exit code 0 */
	EXPT_RUN_FAILED = 3,	/* ended: failed, or lost */
	EXPT_RUN_STOPPED = 4,	/* ended: stopped on request */
	EXPT_RUN_PENDING = 5,	/* handed to the engine, not started (pulling, unschedulable) */
};
#define EXPT_RUN_NSTATUS 6

const char *expt_run_status_name(enum expt_run_status s); /* "queued", ... */
int expt_run_status_parse(const char *s, enum expt_run_status *out);
int expt_run_status_done(enum expt_run_status s); /* succeeded, failed or stopped */

/* Locates the store: $EXPT_HOME/expt.db if EXPT_HOME is set, else the first .expt/expt.db found
 * walking up from start_dir (like git), else (create != 0) start_dir/.expt/expt.db.
 * *db_path and *project_dir are malloc'd (project_dir = directory holding .expt, or EXPT_HOME's
 * parent). Returns EXPT_ENOTFOUND when none exists and create == 0. */
int expt_store_locate(const char *start_dir, int create, char **db_path, char **project_dir,
		      struct expt_err *err);

/* Opens (creating and migrating as needed) the store at db_path. Refuses, with EXPT_ESTORE and a
 * clear message, a store whose schema is newer than this expt. */
int expt_store_open(struct expt_store **out, const char *db_path, struct expt_err *err);
void expt_store_close(struct expt_store *st); /* NULL is a no-op */
/* A store whose files or file system are not writable opens read-only: reads work (ps, show,
 * compare, logs, debug), and every write fails with EXPT_ESTORE saying so. */
int expt_store_readonly(const struct expt_store *st);
int expt_store_schema_version(struct expt_store *st);
/* The newest schema this expt knows (PRAGMA user_version of a store it creates). */
#define EXPT_STORE_SCHEMA_VERSION 2

/* The experiment part of run ids: the name itself when it is a DNS-1123 label of at most
 * EXPT_RUN_PREFIX_MAX chars (room for "-" and a 10-digit seq within 63), else a deterministic
 * short form: the name lowercased, runs of other characters turned into one '-', cut to 43 chars,
 * then "-" and 8 hex digits of the FNV-1a 32-bit hash of the full name. n >= EXPT_RUN_PREFIX_MAX+1.
 * Returns EXPT_EUSAGE for an empty name. */
#define EXPT_RUN_PREFIX_MAX 52
int expt_store_run_id_prefix(const char *experiment, char *out, size_t n, struct expt_err *err);

/* A run as stored. */
struct expt_run_rec {
	int64_t id;   /* row id */
	char *run_id; /* "<experiment>-<seq>", a valid Kubernetes name */
	char *experiment;
	int64_t seq;
	enum expt_run_status status;
	int exit_code; /* -1 if none */
	int signal;    /* 0 if none */
	char *reason;  /* NULL or: exit, signal, oom, timeout, stopped, supervisor-lost, error */
	char *message; /* NULL or a human detail ("killed after 2m timeout") */
	int64_t created_ms, started_ms, ended_ms; /* 0 if not yet */
	char *backend;				  /* "local", "container", "kubernetes" */
	char *backend_ref; /* the engine's name for the run's current attempt, NULL before submit */
	char *node;	   /* where it runs or ran (host, node name), NULL when unknown */
	char *host;
	char *variant;	    /* NULL for base */
	int attempt;	    /* 1-based attempt currently/last run */
	char *retry_of;	    /* run_id this run retries, or NULL */
	int pid;	    /* process (group leader) of the current attempt, 0 if none */
	int supervisor_pid; /* expt process supervising the run */
	int64_t
	    supervisor_start; /* its start time (/proc/<pid>/stat field 22), to detect pid reuse */
	char *params_json;    /* {"lr":0.1} */
	char *argv_json;      /* ["python","train.py","--lr","0.1"] */
	char *env_json;	      /* {"EXPT_RUN_ID":"..."} only what expt added */
	char *spec_json;      /* snapshot of the resolved spec */
	char *output_dir;     /* absolute */
	char *log_dir;	      /* absolute; stdout.log and stderr.log inside */
	char *gpus;	      /* "0,1" assigned GPU slots, or NULL */
	int64_t ingested;     /* bytes of the run's output already fed into the store */
};

void expt_run_rec_release(struct expt_run_rec *r);

struct expt_run_list {
	struct expt_run_rec *v;
	size_t n, cap;
};
void expt_run_list_release(struct expt_run_list *l);

/* Input for creating runs: one per planned run. */
struct expt_run_new {
	const char *params_json;
	const char *variant;  /* may be NULL */
	const char *retry_of; /* may be NULL */
};

/* Allocates n new run ids for experiment in ONE transaction (BEGIN IMMEDIATE), creating the
 * experiment if needed, and inserts the runs as queued with backend, host, spec_json.
 * The calling process is recorded as each run's supervisor (pid and start time) until
 * expt_store_mark_supervisor/mark_running say otherwise, so reconcile can tell a run queued by a
 * live expt from one whose expt died. params_json (NULL = {}) must be a JSON object; its top-level
 * members are also stored as param rows. The records appended to out have spec_json and env_json
 * NULL (the caller has the spec; get_run returns it).
 * Ids are <experiment>-<seq>, seq strictly increasing per experiment and never reused (even
 * after rm). Experiment names too long for a 63-char Kubernetes name with the suffix are
 * shortened deterministically (prefix + short hash). out gets the created records in order;
 * output_dir/log_dir are set to <project>/.expt/runs/<run_id>/{output,logs} (not created). */
int expt_store_create_runs(struct expt_store *st, const char *experiment, const char *backend,
			   const char *spec_json, const struct expt_run_new *runs, size_t n,
			   struct expt_run_list *out, struct expt_err *err);

/* Updates of a run that do not change its status (status changes: store/lifecycle.h). Each is one
 * short transaction; EXPT_ENOTFOUND for an unknown run. set_argv_env: a NULL argv_json or
 * env_json leaves that one unchanged. set_ingested records how many bytes of the run's output
 * stream have been fed into the store (metrics read from `expt:` lines): it only grows, so two
 * readers of the same stream never count a line twice. */
int expt_store_set_argv_env(struct expt_store *st, const char *run_id, const char *argv_json,
			    const char *env_json, struct expt_err *err);
int expt_store_mark_supervisor(struct expt_store *st, const char *run_id, int supervisor_pid,
			       int64_t supervisor_start, struct expt_err *err);
int expt_store_set_ingested(struct expt_store *st, const char *run_id, int64_t bytes,
			    struct expt_err *err);
/* How many bytes of the run's output stream are in the store already (read inside a batch, it
 * cannot change before the batch commits). */
int expt_store_get_ingested(struct expt_store *st, const char *run_id, int64_t *bytes,
			    struct expt_err *err);

/* A batch: the writes between begin and commit (any of this header's) are one transaction, all
 * or nothing; a write that fails inside makes commit roll everything back and fail. Batches do
 * not nest. */
int expt_store_batch_begin(struct expt_store *st, struct expt_err *err);
int expt_store_batch_commit(struct expt_store *st, struct expt_err *err);
void expt_store_batch_rollback(struct expt_store *st);

/* Marks active runs whose supervisor process is gone (pid dead or a zombie, or pid reused: start
 * time differs) as failed with reason "supervisor-lost", through the lifecycle (so a run that
 * ended meanwhile keeps its end). Cheap; called by read commands. Only runs created on this host
 * with supervisor_pid > 0 are judged: a backend whose runs live without an expt process
 * (container, kubernetes) sets supervisor_pid 0, and its runs are asked of the engine instead. */
int expt_store_reconcile(struct expt_store *st, struct expt_err *err);
/* The same, asking first about every active run that no live expt process watches (its
 * supervisor is gone, or it has none: supervisor 0): ask returns 1 when it settled the run
 * (the engine still runs it, or said how it ended), 0 to let reconcile mark a run with a gone
 * supervisor lost. One scan of the active runs, as reconcile alone. */
typedef int (*expt_unwatched_fn)(const char *run_id, void *payload);
int expt_store_reconcile_with(struct expt_store *st, expt_unwatched_fn ask, void *payload,
			      struct expt_err *err);
/* Whether r has a supervisor on this host that is gone (the test reconcile uses). */
int expt_store_supervisor_gone(const struct expt_store *st, const struct expt_run_rec *r);

/* Lookups. A ref is a run id ("mnist-3"). Returns EXPT_ENOTFOUND if missing. */
int expt_store_get_run(struct expt_store *st, const char *run_id, struct expt_run_rec *out,
		       struct expt_err *err);
/* Filter for listing; all fields optional (NULL/0 = any). Without a limit, runs come oldest
 * first (creation order); with one, the newest `limit` runs, newest first. */
struct expt_run_filter {
	const char *experiment;
	int status_mask;   /* EXPT_RUN_BIT(status) bits (store/lifecycle.h); 0 = any */
	int64_t limit;	   /* 0 = no limit; newest first when set */
	int include_specs; /* 0 = leave spec_json/env_json NULL (fast path for ps) */
};
int expt_store_list_runs(struct expt_store *st, const struct expt_run_filter *f,
			 struct expt_run_list *out, struct expt_err *err);
/* Experiments with run counts, newest activity first. */
struct expt_experiment_rec {
	char *name;
	int64_t created_ms;
	int64_t next_seq;
	int64_t nruns, nrunning, nsucceeded, nfailed;
};
struct expt_experiment_list {
	struct expt_experiment_rec *v;
	size_t n, cap;
};
void expt_experiment_list_release(struct expt_experiment_list *l);
int expt_store_list_experiments(struct expt_store *st, struct expt_experiment_list *out,
				struct expt_err *err);
/* Deletes a run and everything it owns in the store (not files). The seq is not reused. */
int expt_store_delete_run(struct expt_store *st, const char *run_id, struct expt_err *err);

/* Params (besides params_json on the run: one row per param for querying). Setting a key again
 * replaces its value. */
int expt_store_set_param(struct expt_store *st, const char *run_id, const char *key,
			 const char *value, struct expt_err *err);

/* Metrics. */
struct expt_metric_point {
	const char *key;
	double value;
	int64_t step;	 /* -1 when none given */
	int64_t time_ms; /* wall clock */
};
/* Appends points in one transaction (fast path: prepared statement reused). A NaN value is kept
 * in the history; min/max skip NaNs (both NaN when every value was). */
int expt_store_add_metrics(struct expt_store *st, const char *run_id,
			   const struct expt_metric_point *pts, size_t n, struct expt_err *err);
/* Summary per key for a run: last value (highest step, then latest time), min, max, count. */
struct expt_metric_summary {
	char *key;
	double last, min, max;
	int64_t last_step, count;
	char *run_id; /* set by expt_store_experiment_metric_summaries only, else NULL */
};
struct expt_metric_summaries {
	struct expt_metric_summary *v;
	size_t n, cap;
};
void expt_metric_summaries_release(struct expt_metric_summaries *s);
int expt_store_metric_summaries(struct expt_store *st, const char *run_id,
				struct expt_metric_summaries *out, struct expt_err *err);
/* Summaries of every run of an experiment (NULL = all runs) in one query, for compare and ps:
 * ordered by run (creation order) then key; run_id is set on each. Appends to out. */
int expt_store_experiment_metric_summaries(struct expt_store *st, const char *experiment,
					   struct expt_metric_summaries *out, struct expt_err *err);
/* Every point of one key, ordered by step then time, then insertion (for show/export).
 * *rows is malloc'd (caller frees; NULL when *n == 0). An unknown key gives 0 rows. */
struct expt_metric_row {
	double value;
	int64_t step, time_ms;
};
int expt_store_metric_history(struct expt_store *st, const char *run_id, const char *key,
			      struct expt_metric_row **rows, size_t *n, struct expt_err *err);

/* Tags (set again: replaced), artifacts (same path again: size and time replaced), events
 * (appended). */
int expt_store_set_tag(struct expt_store *st, const char *run_id, const char *key,
		       const char *value, struct expt_err *err);
int expt_store_add_artifact(struct expt_store *st, const char *run_id, const char *path,
			    int64_t size, struct expt_err *err);
int expt_store_add_event(struct expt_store *st, const char *run_id, const char *kind,
			 const char *message, int64_t time_ms, struct expt_err *err);

/* Key/value pairs of a run: tags (key, value, time set), artifacts (path, size in decimal, time
 * added), events (kind, message, time; in time order). Sorted by key except events. Appends. */
struct expt_kv_rows {
	char **keys, **values;
	int64_t *times;
	size_t n, cap;
};
void expt_kv_rows_release(struct expt_kv_rows *r);
int expt_store_get_tags(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			struct expt_err *err);
int expt_store_get_artifacts(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			     struct expt_err *err);
int expt_store_get_events(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			  struct expt_err *err);
/* Param rows of a run, by key (times 0). */
int expt_store_get_params(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			  struct expt_err *err);

#endif
