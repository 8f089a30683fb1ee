/* Internals of the logging API shared by the run (queues, threads) and the sinks: queue entries,
 * records, the key table and the sink interface. The MLflow sink plugs in through
 * struct expt_sink_ops. Owner: track/. */
#ifndef EXPT_TRACK_TRACK_H
#define EXPT_TRACK_TRACK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"
#include "../util/err.h"

/* What a queue entry carries. */
enum expt_ev_kind {
	EXPT_EV_METRIC = 0, /* key id + value, no record */
	EXPT_EV_PARAM,
	EXPT_EV_TAG,
	EXPT_EV_ARTIFACT,
	EXPT_EV_IMAGE,
	EXPT_EV_HISTOGRAM,
};

/* The payload of every entry but a metric: allocated by the logging call, shared by the sink
 * queues that hold it (one reference each), freed when the last one lets go. */
struct expt_rec {
	atomic_int refs;
	char *key;    /* param/tag key, image/histogram tag, artifact name (relative to the
		       * artifact directory) */
	char *value;  /* param/tag value; artifact: absolute path of the copy */
	int64_t size; /* artifact: bytes copied */
	/* image */
	unsigned char *png;
	size_t png_len;
	uint32_t width, height, channels;
	/* histogram: nb buckets; bucket i spans (limits[i-1], limits[i]], the first from min */
	double min, max, num, sum, sum_squares;
	size_t nb;
	double *limits, *counts;
};

/* One queue entry (32 bytes): a metric point, or a record. */
struct expt_ev {
	uint32_t kind; /* enum expt_ev_kind */
	uint32_t key;  /* metric: key id in the run's key table */
	int64_t step;  /* -1: none */
	int64_t time_ms;
	union {
		double value;
		struct expt_rec *rec;
	} u;
};

struct expt_rec *expt_rec_new(void); /* NULL when out of memory */
void expt_rec_ref(struct expt_rec *r);
void expt_rec_unref(struct expt_rec *r); /* frees at zero; NULL is a no-op */

/* Metric key interning: producers turn a key into a small id under the run's lock; sinks read
 * names by id without locking, because a name never moves once added (chunked storage). */
#define EXPT_KEYS_CHUNK 1024
#define EXPT_KEYS_MAX_CHUNKS 1024 /* at most 1M distinct keys per run */
#define EXPT_KEY_MAX 1024	  /* bytes */
struct expt_keys {
	char **chunks[EXPT_KEYS_MAX_CHUNKS];
	uint32_t n;
	struct expt_keys_slot {
		uint32_t id1; /* id + 1, 0 = empty */
		uint32_t hash;
	} * index;
	size_t index_cap;
};
void expt_keys_init(struct expt_keys *k);
void expt_keys_release(struct expt_keys *k);
/* Finds or adds key (len bytes); -1 when the table is full, -2 when out of memory (the table
 * is unchanged). */
int expt_keys_intern(struct expt_keys *k, const char *key, size_t len, uint32_t *id);
static inline const char *expt_keys_name(const struct expt_keys *k, uint32_t id)
{
	return k->chunks[id / EXPT_KEYS_CHUNK][id % EXPT_KEYS_CHUNK];
}

/* What a sink knows about the run. Everything is owned by the run and valid for the sink's
 * whole life. */
struct expt_sink_ctx {
	const char *run_id, *experiment;
	const char *store_path; /* may be NULL (store sink then fails) */
	const char *output_dir, *artifact_dir, *jsonl_path, *tensorboard_dir;
	const char *tracking_uri;   /* NULL when unset */
	const char *mlflow_run_id;  /* the MLflow run `expt run` created ($EXPT_MLFLOW_RUN_ID, else
				     * $MLFLOW_RUN_ID at open), NULL when none */
	const char *mlflow_run_key; /* $EXPT_MLFLOW_RUN_KEY: the run's expt.run_key, NULL when
				     * unset */
	const char *metrics_prefix; /* the stdout sink's line prefix ($EXPT_METRICS_PREFIX or
				     * "expt:") */
	int standalone;		    /* this handle created the run: the store sink marks it done */
	int attach;		    /* EXPT_RUN_ATTACH */
	int64_t started_ms;
	const struct expt_keys *keys;
	/* Params known at open ($EXPT_PARAMS_FILE), as text. */
	char **param_keys, **param_values;
	size_t nparams;
};

/* How a run ended, for the sinks' finish. */
struct expt_finish_info {
	const char *status; /* "succeeded", "failed", "stopped" */
	int exit_code;	    /* -1 unknown */
	int signal;	    /* 0 none */
	int64_t time_ms;
};

/* A sink. Each sink runs on its own thread; its functions are only called from there, so the
 * state needs no locking. Every call must return in bounded time (I/O timeouts), because
 * finish waits for it. */
struct expt_sink_ops {
	const char *name;
	/* Sets *state. Called before the first write, and again (after backoff) while it fails. */
	int (*open)(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err);
	/* Delivers ev[0..n) in order. Sets *done to how many entries were delivered: all of them
	 * on success; on failure the prefix that is safe not to resend (the rest is retried).
	 * EXPT_SINK_REJECTED (err says why) means ev[*done] itself can never be delivered (a
	 * name the file system refuses, ...): it is skipped and counted, not retried, and the
	 * rest follows at once; the sink is not failing. */
	int (*write)(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		     size_t n, size_t *done, struct expt_err *err);
	/* The run ends; everything deliverable was delivered. May be NULL. */
	int (*finish)(void *state, const struct expt_sink_ctx *ctx,
		      const struct expt_finish_info *fi, struct expt_err *err);
	/* Frees the state; NULL state is a no-op. */
	void (*close)(void *state);
};

/* A write's answer for one entry that no retry will deliver (see write above). */
#define EXPT_SINK_REJECTED 1000

extern const struct expt_sink_ops expt_sink_store, expt_sink_console, expt_sink_jsonl,
    expt_sink_tensorboard, expt_sink_stdout, expt_sink_mlflow;
/* The sink called name, or NULL. */
const struct expt_sink_ops *expt_sink_find(const char *name);
/* "store, console, jsonl, tensorboard, stdout, mlflow" for messages; static. */
const char *expt_sink_names(void);

/* Shared helpers for the sinks. */
/* Appends a double as JSON: the shortest text that reads back to the same double; NaN and
 * infinities as the strings "NaN", "Infinity", "-Infinity". */
void expt_json_double(struct expt_buf *b, double v);
/* Appends base64 of data. */
void expt_base64(struct expt_buf *b, const unsigned char *data, size_t len);
/* Reads the width, height and channels of a PNG; -1 when data is not a PNG. */
int expt_png_info(const unsigned char *data, size_t len, uint32_t *w, uint32_t *h,
		  uint32_t *channels);
/* Buckets values into r (min, max, num, sum, sum_squares, nb, limits, counts); -1 when out of
 * memory. */
int expt_histogram_values(struct expt_rec *r, const double *values, size_t n, size_t nbuckets);
/* Fills r from edges/counts; -1 when the edges do not increase or a count is negative, -2 when
 * out of memory. */
int expt_histogram_buckets(struct expt_rec *r, const double *edges, const double *counts,
			   size_t nb);
/* Writes an image record's PNG under <artifact_dir>/images/<key>/ as step-<step>-<seq>.png (or
 * t-<time_ms>-<seq>.png without a step), never over an existing file (*seq counts the
 * handle's images); *path gets the file's path (caller frees). 0, an error, or
 * EXPT_SINK_REJECTED for a name no retry can cure. Shared by the store and stdout sinks. */
int expt_image_write(const struct expt_sink_ctx *ctx, const struct expt_ev *e, uint64_t *seq,
		     char **path, struct expt_err *err);
/* Appends a histogram record as one JSON object ({"key":…,"step":…,"min":…,…}); as the store
 * sink records it. */
void expt_histogram_json(struct expt_buf *b, const struct expt_ev *e);
/* The same members without the braces: "key":…,"step":…,…,"counts":[…] (the JSONL sink's). */
void expt_histogram_fields(struct expt_buf *b, const struct expt_ev *e);
/* Classifies a param value for typed consumers (TensorBoard hparams): 0 string, 1 number
 * (*num set), 2 boolean (*num 0 or 1). */
int expt_param_type(const char *v, double *num);

#endif
