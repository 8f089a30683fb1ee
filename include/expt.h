/* libexpt: the public logging API of expt. One call logs a param, a metric, a tag, an artifact,
 * an image or a histogram; it reaches every sink the run uses (store, console, jsonl,
 * tensorboard, ...). Compiles as C99 and C++ with -pedantic. See docs/tracking.md. */
#ifndef EXPT_H
#define EXPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A run being logged to: an opaque handle. Thread-safe: any thread may log through one handle
 * at the same time. Created by expt_run_open, destroyed by expt_run_finish.
 *
 * Finishing while other threads use the handle: calls already inside the library when
 * expt_run_finish starts (waiting for queue room, copying an artifact, flushing) return
 * EXPT_RESULT_CLOSED, and expt_run_finish frees the run only after the last of them has
 * returned; calls that start after finish began return EXPT_RESULT_CLOSED too. What no library
 * can make safe is a call that starts after expt_run_finish has returned (the memory is gone):
 * a program that shares a handle between threads must stop them using it by then (the Python
 * binding counts its calls in flight and makes finish() wait for them). Calling
 * expt_run_finish twice at the same time: the second returns EXPT_RESULT_CLOSED.
 *
 * fork(): in a child forked after the run opened, with or without hooks, every call returns
 * EXPT_RESULT_CLOSED at once (the run's threads live in the parent); expt_run_finish only lets
 * go there and never waits. */
typedef struct expt_run expt_run;

/* Return values. Every function returns EXPT_RESULT_OK (0) or one of the negative codes. */
enum expt_result {
	EXPT_RESULT_OK = 0,
	EXPT_RESULT_INVALID = -1,    /* bad argument: NULL run, empty key, data that is not PNG */
	EXPT_RESULT_CLOSED = -2,     /* the run is finished (or was shut down by exit() or a
				      * signal), or this is a child forked after the run opened */
	EXPT_RESULT_DROPPED = -3,    /* a sink queue stayed full past the wait bound: the data was
				      * dropped for that sink and counted (see the queue policy) */
	EXPT_RESULT_IO = -4,	     /* a file could not be read or written (artifact copy) */
	EXPT_RESULT_STORE = -5,	     /* the store could not be opened, or the run not created */
	EXPT_RESULT_INCOMPLETE = -6, /* flush: a sink still holds data (failing or timed out);
				      * finish: some data never reached some sink (counts in err) */
	EXPT_RESULT_NOMEM = -7	     /* out of memory: the call did not log (expt_log_metrics:
				      * the points it could not take) and no run was opened by
				      * expt_run_open; the library never aborts its host, and a
				      * run stays usable */
};

/* Error details: filled by the functions that take one (NULL is allowed). */
struct expt_error {
	int code;	    /* enum expt_result */
	char message[1024]; /* what went wrong, one line, no trailing newline */
};

/* Flags for expt_run_options.flags. */
/* Do not finish the run at exit() nor flush it on SIGTERM/SIGINT. */
#define EXPT_RUN_NO_HOOKS 0x1
/* A secondary handle on a run another handle owns (the `expt log` command): no run header in
 * JSONL, no TensorBoard hparams, never marks the run done. */
#define EXPT_RUN_ATTACH 0x2
/* A full queue drops at once instead of waiting for room. */
#define EXPT_RUN_DROP_WHEN_FULL 0x4
/* Fail (EXPT_RESULT_STORE) instead of falling back to the stdout sink when the store sink is
 * asked for but no store can be reached (see "Metrics that travel with the output" in
 * docs/tracking.md). */
#define EXPT_RUN_NO_STDOUT_FALLBACK 0x8

/* Where a sink's failures and recoveries are reported: called at most once per failure episode
 * and once per recovery, from a background thread. Without it they go to stderr, one line
 * each, prefixed "expt: ". message is borrowed for the call. */
typedef void (*expt_report_fn)(const char *sink, const char *message, void *payload);

#define EXPT_RUN_OPTIONS_VERSION 1

/* Options for expt_run_open. Zero (or NULL) fields take the default given; the environment
 * that `expt run` sets for every run supplies most of them. Strings are borrowed for the call. */
struct expt_run_options {
	/* EXPT_RUN_OPTIONS_VERSION. */
	unsigned int version;
	/* The run to attach to; default $EXPT_RUN_ID; none: a standalone run. */
	const char *run_id;
	/* Standalone runs: default $EXPT_EXPERIMENT, else "default". */
	const char *experiment;
	/* The store (expt.db); default $EXPT_STORE, else found from the current directory. */
	const char *store;
	/* "store,jsonl,tensorboard,console,stdout"; default $EXPT_SINKS, else "store"; "" or
	 * "none": no sink. When "store" is asked for and no store can be reached (none named
	 * nor found, or it cannot be opened), the stdout sink takes its place. */
	const char *sinks;
	/* Default $EXPT_OUTPUT_DIR, else the store's directory for the run. */
	const char *output_dir;
	/* Default $EXPT_ARTIFACT_DIR, else <output_dir>/artifacts. */
	const char *artifact_dir;
	/* Default $EXPT_JSONL, else <output_dir>/metrics.jsonl. */
	const char *jsonl_path;
	/* Default $EXPT_TENSORBOARD_DIR, else <output_dir>/tensorboard. */
	const char *tensorboard_dir;
	/* Entries each sink may hold undelivered; default 524288. */
	size_t queue_size;
	/* How long a log call waits for room in a full queue, in ms; default 1000. */
	int queue_wait_ms;
	/* How long a sink lets a small batch grow before delivering it, in ms; default 50. */
	int linger_ms;
	/* EXPT_RUN_* flags. */
	int flags;
	/* Failure reports; NULL: stderr. */
	expt_report_fn report;
	/* Passed to report. */
	void *payload;
};

/* clang-format off */
#define EXPT_RUN_OPTIONS_INIT {EXPT_RUN_OPTIONS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
/* clang-format on */

/* Constructor. Opens the run this process belongs to (from $EXPT_RUN_ID and friends, set by
 * `expt run`), or, outside expt, starts a standalone run in the store found from the current
 * directory (created if needed), marked running now and done at finish. Starts one background
 * thread per sink; nothing is delivered on the caller's thread. opts may be NULL (defaults).
 * On success *out is a handle the caller owns: release it with expt_run_finish. */
int expt_run_open(expt_run **out, const struct expt_run_options *opts, struct expt_error *err);

/* The run's identity and places; borrowed, valid until expt_run_finish. */
const char *expt_run_id(const expt_run *run);
const char *expt_run_experiment(const expt_run *run);
const char *expt_run_output_dir(const expt_run *run);
const char *expt_run_artifact_dir(const expt_run *run);

/* Metrics. step < 0 means "no step"; time_ms is milliseconds since the epoch, 0 for now.
 * Non-blocking while the queues have room (see the queue policy in docs/tracking.md); key is
 * copied (interned) before the call returns. */
int expt_log_metric(expt_run *run, const char *key, double value, int64_t step);
int expt_log_metric_at(expt_run *run, const char *key, double value, int64_t step, int64_t time_ms);
/* n points sharing one step and time in one call: the fast path for many keys. */
int expt_log_metrics(expt_run *run, size_t n, const char *const *keys, const double *values,
		     int64_t step, int64_t time_ms);

/* Keys (here and in every call below) must be non-empty valid UTF-8 of at most 1024 bytes
 * without control characters, else EXPT_RESULT_INVALID. */
/* Params and tags: text values, copied; bytes that are not well-formed UTF-8 are replaced by
 * U+FFFD. Logging a param again overwrites it. */
int expt_log_param(expt_run *run, const char *key, const char *value);
int expt_set_tag(expt_run *run, const char *key, const char *value);

/* Copies a file or directory into the run's artifact directory as name (NULL: the basename of
 * path) before returning, then records it in the sinks. */
int expt_log_artifact(expt_run *run, const char *path, const char *name, struct expt_error *err);

/* An image: encoded PNG bytes (copied). */
int expt_log_image(expt_run *run, const char *key, const void *png, size_t len, int64_t step);

/* A histogram of n values (NaN and infinities are left out), in 30 equal buckets. */
int expt_log_histogram(expt_run *run, const char *key, const double *values, size_t n,
		       int64_t step);
/* A histogram already bucketed: nbuckets counts and nbuckets + 1 increasing edges. */
int expt_log_histogram_buckets(expt_run *run, const char *key, const double *edges,
			       const double *counts, size_t nbuckets, int64_t step);

/* The status the run ends with: "succeeded", "failed" or "stopped". Without it, finish uses
 * "succeeded", and the exit hook uses the exit status (0: succeeded, else failed). */
int expt_run_set_status(expt_run *run, const char *status);

/* Waits up to timeout_ms (negative: no limit) until every sink has delivered what was logged
 * before the call. EXPT_RESULT_INCOMPLETE when a sink is failing or the time ran out. */
int expt_run_flush(expt_run *run, int timeout_ms);

/* Destructor. Delivers what is queued (a failing sink gets one last try), closes the sinks,
 * marks a standalone run done with status (NULL: as set by expt_run_set_status, else
 * "succeeded"), and frees run. EXPT_RESULT_INCOMPLETE, with counts in err, when a sink could
 * not take everything. NULL is a no-op. */
int expt_run_finish(expt_run *run, const char *status, struct expt_error *err);

/* Counters of one sink, for monitoring and tests. */
struct expt_sink_stats {
	const char *name;   /* "store", ...; static */
	uint64_t delivered; /* entries the sink took */
	uint64_t pending;   /* entries queued for it */
	uint64_t dropped;   /* entries it lost (queue full) */
	int failing;	    /* 1 while it is failing and retried with backoff */
};
/* Number of sinks of the run. */
size_t expt_run_sink_count(const expt_run *run);
/* Fills out for sink i (0 <= i < expt_run_sink_count). */
int expt_run_sink_stats(expt_run *run, size_t i, struct expt_sink_stats *out);

/* "0.1.0"; static. */
const char *expt_version(void);

#ifdef __cplusplus
}
#endif

#endif
