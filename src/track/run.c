/* The logging API of include/expt.h: a run handle, one bounded queue and one thread per sink.
 * A log call copies its data into every sink's queue under the run's lock and returns; each
 * sink thread takes batches, delivers them, and retries with backoff when its sink fails, so a
 * failing or slow sink never holds up the others. */
#include "track.h"
#include "hooks.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"
#include "store/lifecycle.h"
#include "store/store.h"
#include "util/util.h"

#define DEFAULT_QUEUE 524288
#define MIN_QUEUE 1024
#define DEFAULT_WAIT_MS 1000
#define DEFAULT_LINGER_MS 50
#define WAKE_AT 8192	  /* a sink thread is woken early once this much is queued */
#define BATCH_MAX 65536	  /* entries handed to a sink at once */
#define PUSH_CHUNK 256	  /* entries a log call stages on its stack */
#define BACKOFF_FIRST 250 /* ms */
#define BACKOFF_MAX 30000 /* ms */
#define HIST_BUCKETS 30

struct sinkq {
	struct expt_run *run;
	const struct expt_sink_ops *ops;
	void *state; /* the sink's, NULL until open succeeds */
	pthread_t th;
	int started;
	pthread_cond_t cv;
	/* Ring of pending entries; cap is a power of two, count never exceeds run->qmax. */
	struct expt_ev *ring;
	size_t cap, head, count;
	int waiting, busy, urgent, stop, final_tried, failing;
	int64_t first_mono, retry_at, backoff, fail_since;
	uint64_t flush_target; /* a flush waits for the entries before this: no lingering */
	/* Entries ever queued, and ever taken off the queue (delivered, rejected, given up): a
	 * flush waits until settled reaches what was queued when it was called. */
	uint64_t queued, settled;
	uint64_t delivered, dropped, undelivered;
	uint64_t rejected; /* entries the sink said it can never take (EXPT_SINK_REJECTED) */
	char rejmsg[1024]; /* why the first one was rejected */
	char errmsg[1200];
	/* Worker-owned. */
	struct expt_ev *batch;
};

struct expt_run {
	pthread_mutex_t mu;
	pthread_cond_t space_cv, done_cv;
	int space_waiters;
	struct expt_keys keys;
	struct sinkq *q;
	size_t nq;
	size_t qmax, wake_at;
	int wait_ms, linger_ms, flags;
	expt_report_fn report;
	void *payload;
	int closed, shut_state, forked, hooked;
	/* Calls inside the library on this handle (they may wait with the lock let go); finish
	 * frees the run only once they are out. */
	int users, finishing;
	/* The process that opened the run: anywhere else (a forked child) it is closed. */
	pid_t owner;
	unsigned fork_gen;
	char status[16]; /* from expt_run_set_status; "" if none */
	struct expt_finish_info fin;
	char fin_status[16];
	char *run_id, *experiment, *store_path, *output_dir, *artifact_dir, *jsonl_path, *tb_dir,
	    *tracking_uri, *metrics_prefix, *mlflow_run_id, *mlflow_run_key;
	int store_fallback; /* the stdout sink took the store sink's place */
	struct expt_strv pkeys, pvals;
	struct expt_sink_ctx ctx;
	uint64_t logged;
};

/* ---- small helpers ---- */

static void set_error(struct expt_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(struct expt_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* code, unless err says out of memory (EXPT_RESULT_NOMEM then). */
static int from_err(struct expt_error *e, int code, const struct expt_err *err)
{
	char msg[2048];

	if (err->code == EXPT_ENOMEM)
		code = EXPT_RESULT_NOMEM;
	expt_err_format(err, msg, sizeof(msg));
	set_error(e, code, "%s", msg);
	return code;
}

static int nomem(struct expt_error *e)
{
	set_error(e, EXPT_RESULT_NOMEM, "out of memory");
	return EXPT_RESULT_NOMEM;
}

static void run_lock(struct expt_run *r)
{
	expt_hooks_enter();
	pthread_mutex_lock(&r->mu);
}

static void run_unlock(struct expt_run *r)
{
	pthread_mutex_unlock(&r->mu);
	expt_hooks_leave();
}

/* A child forked after the run opened has none of its threads: the run is closed there. The
 * fork generation is the cheap test for the logging paths; the pid catches the rest. */
static int run_forked(const struct expt_run *r)
{
	return r->forked || expt_hooks_fork_gen() != r->fork_gen;
}

static int run_foreign(const struct expt_run *r)
{
	return run_forked(r) || getpid() != r->owner;
}

/* Takes the lock and counts the caller in, unless the run is closed (EXPT_RESULT_CLOSED, lock
 * not held). While counted in, the run is not freed even if the caller waits unlocked. */
static int run_enter(struct expt_run *r)
{
	if (run_forked(r))
		return EXPT_RESULT_CLOSED;
	run_lock(r);
	if (r->closed) {
		run_unlock(r);
		return EXPT_RESULT_CLOSED;
	}
	r->users++;
	return 0;
}

/* Counts the caller out and lets go of the lock; the last one out wakes a waiting finish. */
static void run_leave(struct expt_run *r)
{
	if (--r->users == 0 && r->closed)
		pthread_cond_broadcast(&r->done_cv);
	run_unlock(r);
}

/* Waits on cv; a deadline of 0 means none. Returns ETIMEDOUT past the deadline. While it waits
 * the lock is not held, so a signal may be handled right away. */
static int run_wait(struct expt_run *r, pthread_cond_t *cv, int64_t deadline_mono)
{
	struct timespec ts;
	int rc;

	expt_hooks_in_lock--;
	if (!deadline_mono) {
		rc = pthread_cond_wait(cv, &r->mu);
	} else {
		ts.tv_sec = deadline_mono / 1000;
		ts.tv_nsec = (long)(deadline_mono % 1000) * 1000000;
		rc = pthread_cond_timedwait(cv, &r->mu, &ts);
	}
	expt_hooks_in_lock++;
	return rc;
}

static void cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void report(struct expt_run *r, const char *sink, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(struct expt_run *r, const char *sink, const char *fmt, ...)
{
	char msg[1536], line[1600];
	va_list ap;
	ssize_t w;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->report) {
		r->report(sink, msg, r->payload);
		return;
	}
	/* The documented default channel: one line on the training process's stderr. */
	snprintf(line, sizeof(line), "expt: %s\n", msg);
	w = write(2, line, strlen(line));
	(void)w;
}

/* ---- the sink queues ---- */

static struct expt_ev *slot(struct sinkq *q, size_t i)
{
	return &q->ring[(q->head + i) & (q->cap - 1)];
}

/* 0, or -1 when out of memory (the ring is unchanged). */
static int ring_grow(struct sinkq *q, size_t want)
{
	size_t ncap = q->cap ? q->cap : 1024;
	struct expt_ev *n;

	while (ncap < want)
		ncap *= 2;
	if (ncap == q->cap)
		return 0;
	if (!(n = expt_malloc(ncap * sizeof(*n))))
		return -1;
	for (size_t i = 0; i < q->count; i++)
		n[i] = *slot(q, i);
	free(q->ring);
	q->ring = n;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

static void pop(struct sinkq *q, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct expt_ev *e = slot(q, i);
		if (e->kind != EXPT_EV_METRIC)
			expt_rec_unref(e->u.rec);
	}
	q->head = (q->head + n) & (q->cap - 1);
	q->count -= n;
	q->settled += n;
}

/* Appends ev[0..n) (n <= PUSH_CHUNK) to every sink queue, under the lock. A healthy sink that is
 * full makes the caller wait, up to wait_ms in all, for its thread to make room: slowing the
 * training loop for a moment beats losing its metrics. A failing sink never makes it wait: past
 * its bound it drops, and counts. */
static int push(struct expt_run *r, const struct expt_ev *ev, size_t n, int64_t *deadline)
{
	int rc = EXPT_RESULT_OK, urgent = 0;

	for (size_t i = 0; i < n; i++)
		urgent |= ev[i].kind != EXPT_EV_METRIC;
	for (;;) {
		int need_wait = 0;
		for (size_t s = 0; s < r->nq; s++) {
			struct sinkq *q = &r->q[s];
			if (q->count + n > r->qmax && !q->failing && !q->stop)
				need_wait = 1;
		}
		if (!need_wait || (r->flags & EXPT_RUN_DROP_WHEN_FULL))
			break;
		if (!*deadline)
			*deadline = expt_mono_ms() + r->wait_ms;
		r->space_waiters++;
		for (size_t s = 0; s < r->nq; s++)
			if (r->q[s].waiting)
				pthread_cond_signal(&r->q[s].cv);
		int w = run_wait(r, &r->space_cv, *deadline);
		r->space_waiters--;
		if (r->closed)
			return EXPT_RESULT_CLOSED;
		if (w == ETIMEDOUT)
			break;
	}
	/* Room first, in every queue that takes the entries: out of memory, none of them does. */
	for (size_t s = 0; s < r->nq; s++) {
		struct sinkq *q = &r->q[s];
		if (q->count + n <= r->qmax && q->count + n > q->cap && ring_grow(q, q->count + n))
			return EXPT_RESULT_NOMEM;
	}
	for (size_t s = 0; s < r->nq; s++) {
		struct sinkq *q = &r->q[s];
		int was_empty = q->count == 0;
		if (q->count + n > r->qmax) {
			q->dropped += n;
			rc = EXPT_RESULT_DROPPED;
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			*slot(q, q->count + i) = ev[i];
			if (ev[i].kind != EXPT_EV_METRIC)
				expt_rec_ref(ev[i].u.rec);
		}
		q->count += n;
		q->queued += n;
		if (was_empty)
			q->first_mono = expt_mono_ms();
		q->urgent |= urgent;
		if (q->waiting && (was_empty || urgent || q->count >= r->wake_at))
			pthread_cond_signal(&q->cv);
	}
	r->logged += n;
	return rc;
}

/* Only the sink's thread changes q->failing, so it may report (unlocked) before it publishes
 * the change: whoever sees a failing sink or a flush that came back incomplete can count on
 * the report having been made. */
static void sink_failed(struct sinkq *q, const struct expt_err *err)
{
	struct expt_run *r = q->run;
	int first = !q->failing;
	char msg[1024];

	expt_err_format(err, msg, sizeof(msg));
	snprintf(q->errmsg, sizeof(q->errmsg), "%s", msg);
	if (first && !q->stop) {
		/* Once per failure episode. */
		pthread_mutex_unlock(&r->mu);
		report(r, q->ops->name,
		       "sink %s failed: %s; keeping its data (up to %zu entries) and retrying with "
		       "backoff",
		       q->ops->name, msg, r->qmax);
		pthread_mutex_lock(&r->mu);
	}
	if (first) {
		q->failing = 1;
		q->fail_since = expt_mono_ms();
		q->backoff = BACKOFF_FIRST;
	} else {
		q->backoff = q->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : q->backoff * 2;
	}
	q->retry_at = expt_mono_ms() + q->backoff;
	pthread_cond_broadcast(&r->done_cv);
	pthread_cond_broadcast(&r->space_cv);
}

static void sink_recovered(struct sinkq *q)
{
	struct expt_run *r = q->run;
	int64_t secs = (expt_mono_ms() - q->fail_since + 500) / 1000;

	pthread_mutex_unlock(&r->mu);
	report(r, q->ops->name, "sink %s recovered after %llds; delivering the data it missed",
	       q->ops->name, (long long)secs);
	pthread_mutex_lock(&r->mu);
	q->failing = 0;
	q->final_tried = 0;
}

static void *sink_thread(void *arg)
{
	struct sinkq *q = arg;
	struct expt_run *r = q->run;
	struct expt_err err = EXPT_ERR_INIT;
	/* Numbers in JSONL, hparams and params must not follow the program's setlocale() (a
	 * decimal comma is not JSON): this thread formats and parses in the C locale. */
	locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);

	if (c_loc)
		uselocale(c_loc);
	pthread_mutex_lock(&r->mu);
	for (;;) {
		int64_t now = expt_mono_ms();
		size_t n, done = 0;
		int rc;

		if (q->stop) {
			if (q->state && q->count == 0)
				break;
			if (q->failing && q->final_tried)
				break; /* its last chance is spent */
			if (q->failing)
				q->final_tried = 1;
		} else {
			int64_t until = 0;
			if (q->count == 0)
				until = -1;
			else if (q->failing && now < q->retry_at)
				until = q->retry_at;
			else if (!q->urgent && q->settled >= q->flush_target && !r->space_waiters &&
				 q->count < r->wake_at && now < q->first_mono + r->linger_ms)
				until = q->first_mono + r->linger_ms; /* let the batch grow */
			if (until) {
				q->waiting = 1;
				run_wait(r, &q->cv, until < 0 ? 0 : until);
				q->waiting = 0;
				continue;
			}
		}
		if (!q->state) {
			pthread_mutex_unlock(&r->mu);
			expt_err_clear(&err);
			rc = q->ops->open(&q->state, &r->ctx, &err);
			pthread_mutex_lock(&r->mu);
			if (rc) {
				q->state = NULL;
				sink_failed(q, &err);
			} else if (q->failing && !q->count) {
				sink_recovered(q);
			} else {
				/* Open at last (maybe on its last chance at finish): the queue gets
				 * its write, which reports the recovery. */
				q->final_tried = 0;
			}
			continue;
		}
		n = q->count < BATCH_MAX ? q->count : BATCH_MAX;
		for (size_t i = 0; i < n; i++)
			q->batch[i] = *slot(q, i);
		q->busy = 1;
		q->urgent = 0;
		pthread_mutex_unlock(&r->mu);
		expt_err_clear(&err);
		rc = q->ops->write(q->state, &r->ctx, q->batch, n, &done, &err);
		pthread_mutex_lock(&r->mu);
		q->busy = 0;
		if (done > n)
			done = n;
		pop(q, done);
		q->delivered += done;
		if (rc == EXPT_SINK_REJECTED && done < n) {
			/* That one entry never goes through: skip it, count it, say so once. */
			char msg[1024];
			pop(q, 1);
			expt_err_format(&err, msg, sizeof(msg));
			if (!q->rejected++) {
				snprintf(q->rejmsg, sizeof(q->rejmsg), "%s", msg);
				pthread_mutex_unlock(&r->mu);
				report(
				    r, q->ops->name,
				    "sink %s rejected an entry it can never take: %s; skipping it "
				    "(counted, reported again at finish)",
				    q->ops->name, msg);
				pthread_mutex_lock(&r->mu);
			}
			rc = 0;
		}
		if (q->count)
			q->first_mono = expt_mono_ms();
		if (rc)
			sink_failed(q, &err);
		else if (q->failing)
			sink_recovered(q);
		if (r->space_waiters)
			pthread_cond_broadcast(&r->space_cv);
		pthread_cond_broadcast(&r->done_cv);
	}
	q->undelivered = q->count;
	pop(q, q->count);
	pthread_mutex_unlock(&r->mu);

	if (q->state && q->ops->finish) {
		expt_err_clear(&err);
		if (q->ops->finish(q->state, &r->ctx, &r->fin, &err)) {
			char msg[1024];
			expt_err_format(&err, msg, sizeof(msg));
			pthread_mutex_lock(&r->mu);
			snprintf(q->errmsg, sizeof(q->errmsg), "finishing: %s", msg);
			q->failing = 1;
			pthread_mutex_unlock(&r->mu);
		}
	}
	if (q->state)
		q->ops->close(q->state);
	q->state = NULL;
	if (c_loc) {
		uselocale(LC_GLOBAL_LOCALE);
		freelocale(c_loc);
	}
	return NULL;
}

/* ---- opening a run ---- */

static int parse_sinks(struct expt_run *r, const char *list, struct expt_error *e)
{
	struct expt_strv names = EXPT_STRV_INIT;
	const char *p = list;
	int rc = 0;

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *name;
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!(name = expt_strndup(p, len))) {
			rc = nomem(e);
			goto out;
		}
		if (*name && strcmp(name, "none") && expt_strv_find(&names, name) < 0) {
			if (expt_strv_add_owned(&names, name)) {
				rc = nomem(e);
				goto out;
			}
		} else {
			free(name);
		}
		p = end ? end + 1 : NULL;
	}
	if (!(r->q = expt_calloc(names.n ? names.n : 1, sizeof(*r->q)))) {
		rc = nomem(e);
		goto out;
	}
	for (size_t i = 0; i < names.n; i++) {
		const struct expt_sink_ops *ops = expt_sink_find(names.v[i]);
		if (!ops) {
			set_error(e, EXPT_RESULT_INVALID, "unknown sink '%s' (known: %s)",
				  names.v[i], expt_sink_names());
			rc = EXPT_RESULT_INVALID;
			break;
		}
		r->q[r->nq].ops = ops;
		r->q[r->nq].run = r;
		cond_init(&r->q[r->nq].cv);
		r->nq++;
	}
out:
	expt_strv_release(&names);
	return rc;
}

static int has_sink(const struct expt_run *r, const char *name)
{
	for (size_t i = 0; i < r->nq; i++)
		if (!strcmp(r->q[i].ops->name, name))
			return 1;
	return 0;
}

/* No store can be reached: the stdout sink takes the store sink's place (once: a list that
 * names both keeps one stdout sink), and the program is told once, the way sink failures are. */
static void store_to_stdout(struct expt_run *r, const char *why)
{
	size_t i = 0;

	while (i < r->nq && strcmp(r->q[i].ops->name, "store"))
		i++;
	if (i == r->nq)
		return;
	if (has_sink(r, "stdout")) {
		pthread_cond_destroy(&r->q[i].cv);
		memmove(&r->q[i], &r->q[i + 1], (r->nq - i - 1) * sizeof(*r->q));
		r->nq--;
	} else {
		r->q[i].ops = &expt_sink_stdout;
	}
	r->store_fallback = 1;
	report(r, "store",
	       "no store (%s): metrics, params and tags go to stdout as '%s' lines, files to %s",
	       why, r->metrics_prefix, r->output_dir ? r->output_dir : "the output directory");
}

/* Params of a run launched by expt, from $EXPT_PARAMS_FILE (JSON object), as text, in the C
 * locale whatever the program set (this runs on the caller's thread). -1 when out of memory
 * (a file that cannot be read or parsed gives no params, as before). jansson allocates with
 * its own malloc: the test hook cannot fail those allocations. */
static int load_params_c(struct expt_run *r, const char *path);
static int load_params(struct expt_run *r, const char *path)
{
	locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	locale_t prev = c_loc ? uselocale(c_loc) : (locale_t)0;
	int rc = load_params_c(r, path);

	if (c_loc) {
		uselocale(prev);
		freelocale(c_loc);
	}
	return rc;
}

static int load_params_c(struct expt_run *r, const char *path)
{
	json_error_t jerr;
	json_t *o = json_load_file(path, 0, &jerr), *v;
	const char *k;
	int rc = 0;

	if (!json_is_object(o)) {
		json_decref(o);
		return 0;
	}
	json_object_foreach(o, k, v)
	{
		char num[40], *s, *dumped = NULL;
		if (json_is_string(v)) {
			s = expt_strdup(json_string_value(v));
		} else if (json_is_real(v)) {
			/* Shortest text that reads back the same: 0.1, not 0.10000000000000001. */
			expt_fmt_double(json_real_value(v), num, sizeof(num));
			s = expt_strdup(num);
		} else if ((dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY))) {
			/* Ours to free with free(), and under the allocation hook like the rest. */
			s = expt_strdup(dumped);
			free(dumped);
		} else {
			continue;
		}
		if (!s || expt_strv_add(&r->pkeys, k)) {
			free(s);
			rc = -1;
			break;
		}
		if (expt_strv_add_owned(&r->pvals, s)) { /* frees s */
			free(r->pkeys.v[--r->pkeys.n]);
			r->pkeys.v[r->pkeys.n] = NULL;
			rc = -1;
			break;
		}
	}
	json_decref(o);
	return rc;
}

/* The program's own command line as a JSON array, for `expt show`; NULL when out of memory. */
static char *self_argv_json(void)
{
	struct expt_buf b = EXPT_BUF_INIT, out = EXPT_BUF_INIT;
	struct expt_err err = EXPT_ERR_INIT;
	size_t i = 0;

	expt_buf_adds(&out, "[");
	if (!expt_read_file("/proc/self/cmdline", &b, &err)) {
		int first = 1;
		while (i < b.len) {
			const char *arg = b.buf + i;
			if (!first)
				expt_buf_addch(&out, ',');
			expt_buf_add_json_str(&out, arg);
			first = 0;
			i += strlen(arg) + 1;
		}
	} else if (err.code == EXPT_ENOMEM) {
		out.oom = 1;
	}
	expt_buf_adds(&out, "]");
	expt_buf_release(&b);
	return expt_buf_detach(&out, NULL);
}

/* Outside expt: a new run in the store found from the cwd (created there if none), marked
 * running with this process as its own supervisor, so that `expt ps` notices if it dies.
 * EXPT_RESULT_STORE when no store can be reached (the caller may fall back to stdout). */
static int create_standalone(struct expt_run *r, const struct expt_run_options *o,
			     struct expt_error *e)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_store *st = NULL;
	struct expt_run_list list = {0};
	struct expt_run_new rn = {"{}", NULL, NULL};
	char *argv_json = NULL;
	int pid = (int)getpid(), rc = 0;

	if (r->store_path) {
		/* A store named on purpose is created there, directory and all. */
		char *dir = expt_strdup(r->store_path), *slash;
		if (!dir)
			return nomem(e);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			rc = expt_mkdirs(dir, &err);
		}
		free(dir);
		if (rc)
			return from_err(e, EXPT_RESULT_STORE, &err);
	} else {
		char cwd[4096];
		char *project = NULL;
		if (!getcwd(cwd, sizeof(cwd))) {
			set_error(e, EXPT_RESULT_STORE, "cannot read the current directory: %s",
				  strerror(errno));
			return EXPT_RESULT_STORE;
		}
		if (expt_store_locate(cwd, 1, &r->store_path, &project, &err))
			return from_err(e, EXPT_RESULT_STORE, &err);
		free(project);
	}
	if ((rc = expt_store_open(&st, r->store_path, &err)) ||
	    (rc = expt_store_create_runs(st, r->experiment, "local", NULL, &rn, 1, &list, &err)))
		goto out;
	if (!(r->run_id = expt_strdup(list.v[0].run_id)) ||
	    (!r->output_dir && list.v[0].output_dir &&
	     !(r->output_dir = expt_strdup(list.v[0].output_dir))) ||
	    !(argv_json = self_argv_json())) {
		rc = EXPT_ENOMEM;
		expt_err_set(&err, EXPT_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = expt_store_set_argv_env(st, r->run_id, argv_json, "{}", &err)))
		goto out;
	{
		/* This process is the run: its own supervisor, as reconcile understands it. */
		struct expt_transition t = EXPT_TRANSITION_INIT;
		char ref[32];

		snprintf(ref, sizeof(ref), "pid:%d", pid);
		t.from = EXPT_RUN_BIT(EXPT_RUN_QUEUED);
		t.to = EXPT_RUN_RUNNING;
		t.attempt = 1;
		t.pid = pid;
		t.backend_ref = ref;
		t.supervisor_pid = pid;
		t.supervisor_start = expt_proc_start_time(pid);
		t.time_ms = r->ctx.started_ms;
		if ((rc = expt_lifecycle_move(st, r->run_id, &t, NULL, &err)))
			goto out;
	}
out:
	free(argv_json);
	expt_run_list_release(&list);
	expt_store_close(st);
	return rc ? from_err(e, EXPT_RESULT_STORE, &err) : 0;
}

/* Inside a run: can the store be opened? (The store sink opens its own connection on its
 * thread; this one only decides between it and the stdout fallback.) */
static int store_reachable(const char *path, struct expt_err *err)
{
	struct expt_store *st = NULL;

	if (!path) {
		expt_err_set(err, EXPT_ESTORE,
			     "EXPT_STORE is not set and none was found from the "
			     "current directory");
		return 0;
	}
	if (expt_store_open(&st, path, err))
		return 0;
	expt_store_close(st);
	return 1;
}

static void run_free(struct expt_run *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nq; i++) {
		struct sinkq *q = &r->q[i];
		if (q->count)
			pop(q, q->count);
		free(q->ring);
		free(q->batch);
		pthread_cond_destroy(&q->cv);
	}
	free(r->q);
	expt_keys_release(&r->keys);
	free(r->run_id);
	free(r->experiment);
	free(r->store_path);
	free(r->output_dir);
	free(r->artifact_dir);
	free(r->jsonl_path);
	free(r->tb_dir);
	free(r->tracking_uri);
	free(r->mlflow_run_id);
	free(r->mlflow_run_key);
	free(r->metrics_prefix);
	free(r->ctx.param_keys);
	free(r->ctx.param_values);
	expt_strv_release(&r->pkeys);
	expt_strv_release(&r->pvals);
	pthread_cond_destroy(&r->space_cv);
	pthread_cond_destroy(&r->done_cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* The option, else the variable, as an absolute path in *out (NULL when neither is set).
 * -1 when out of memory or without a current directory. */
static int pick(const char *opt, const char *env_name, char **out)
{
	const char *v = opt && *opt ? opt : env(env_name);

	*out = NULL;
	if (!v)
		return 0;
	return (*out = expt_abspath(v)) ? 0 : -1;
}

/* A default path under the output directory, when neither option nor variable named one. */
static int pick_or(const char *opt, const char *env_name, char **out, const char *dir,
		   const char *leaf)
{
	if (pick(opt, env_name, out))
		return -1;
	if (!*out && !(*out = expt_asprintf("%s/%s", dir, leaf)))
		return -1;
	return 0;
}

/* $EXPT_METRICS_PREFIX (set by `expt run` from tracking.metrics_prefix) when it is one line,
 * else "expt:": the stdout sink writes with the prefix the reader of the output expects. */
static char *metrics_prefix(void)
{
	const char *v = env("EXPT_METRICS_PREFIX");

	if (!v || strpbrk(v, "\r\n"))
		v = EXPT_CAPTURE_PREFIX;
	return expt_strdup(v);
}

int expt_run_open(expt_run **out, const struct expt_run_options *opts, struct expt_error *e)
{
	static const struct expt_run_options defaults = EXPT_RUN_OPTIONS_INIT;
	const struct expt_run_options *o = opts ? opts : &defaults;
	struct expt_run *r;
	struct expt_err err = EXPT_ERR_INIT;
	const char *v, *sinks;
	sigset_t all, prev;
	int rc = 0;

	if (!out) {
		set_error(e, EXPT_RESULT_INVALID, "no place for the run handle");
		return EXPT_RESULT_INVALID;
	}
	*out = NULL;
	if (o->version != EXPT_RUN_OPTIONS_VERSION) {
		set_error(e, EXPT_RESULT_INVALID, "unsupported expt_run_options version %u",
			  o->version);
		return EXPT_RESULT_INVALID;
	}
	if (!(r = expt_calloc(1, sizeof(*r))))
		return nomem(e);
	pthread_mutex_init(&r->mu, NULL);
	cond_init(&r->space_cv);
	cond_init(&r->done_cv);
	expt_keys_init(&r->keys);
	r->flags = o->flags;
	r->report = o->report;
	r->payload = o->payload;
	r->qmax = o->queue_size ? o->queue_size : DEFAULT_QUEUE;
	if (r->qmax < MIN_QUEUE)
		r->qmax = MIN_QUEUE;
	/* A small queue must not wait out the linger before its thread starts. */
	r->wake_at = r->qmax / 4 < WAKE_AT ? r->qmax / 4 : WAKE_AT;
	r->wait_ms = o->queue_wait_ms > 0 ? o->queue_wait_ms : DEFAULT_WAIT_MS;
	r->linger_ms = o->linger_ms > 0 ? o->linger_ms : DEFAULT_LINGER_MS;
	r->ctx.started_ms = expt_now_ms();
	expt_hooks_watch_forks();
	r->owner = getpid();
	r->fork_gen = expt_hooks_fork_gen();

	sinks = o->sinks ? o->sinks : env("EXPT_SINKS") ? env("EXPT_SINKS") : "store";
	if ((rc = parse_sinks(r, sinks, e)))
		goto fail;
	if (!(r->metrics_prefix = metrics_prefix()) ||
	    pick(o->store, "EXPT_STORE", &r->store_path) ||
	    pick(o->output_dir, "EXPT_OUTPUT_DIR", &r->output_dir))
		goto nomem;
	v = o->run_id && *o->run_id ? o->run_id : env("EXPT_RUN_ID");
	if (v) {
		/* Inside a run that expt launched (or one named on purpose). */
		if (!(r->run_id = expt_strdup(v)))
			goto nomem;
		v = env("EXPT_EXPERIMENT");
		if (o->experiment && *o->experiment)
			v = o->experiment;
		if (!(r->experiment = expt_strdup(v ? v : "")))
			goto nomem;
		if (!r->store_path) {
			char cwd[4096], *project = NULL;
			/* No store found: the stdout fallback below. Out of memory looking for
			 * one is not "no store": the open fails. */
			if (getcwd(cwd, sizeof(cwd))) {
				if (!expt_store_locate(cwd, 0, &r->store_path, &project, &err))
					free(project);
				else if (err.code == EXPT_ENOMEM)
					goto nomem;
			}
			expt_err_clear(&err);
		}
		if (!(r->flags & EXPT_RUN_ATTACH) && (v = env("EXPT_PARAMS_FILE")) &&
		    load_params(r, v))
			goto nomem;
		if (has_sink(r, "store") && !(r->flags & EXPT_RUN_NO_STDOUT_FALLBACK) &&
		    !store_reachable(r->store_path, &err)) {
			char why[1100];
			if (err.code == EXPT_ENOMEM)
				goto nomem;
			expt_err_format(&err, why, sizeof(why));
			store_to_stdout(r, why);
		}
	} else {
		v = o->experiment && *o->experiment ? o->experiment : env("EXPT_EXPERIMENT");
		if (!(r->experiment = expt_strdup(v ? v : "default")))
			goto nomem;
		r->ctx.standalone = 1;
		if (has_sink(r, "store")) {
			struct expt_error se;
			int had_output = r->output_dir != NULL;
			memset(&se, 0, sizeof(se));
			rc = create_standalone(r, o, &se);
			if (rc == EXPT_RESULT_STORE && !(r->flags & EXPT_RUN_NO_STDOUT_FALLBACK)) {
				rc = 0;
				/* Half made: no store holds that run. */
				free(r->run_id);
				r->run_id = NULL;
				if (!had_output) {
					free(r->output_dir);
					r->output_dir = NULL;
				}
				store_to_stdout(r, se.message);
			} else if (rc) {
				if (e)
					*e = se;
				goto fail;
			}
		}
		if (!r->run_id) {
			/* No store to allocate an id from: a unique enough one from time and pid.
			 */
			r->run_id = expt_asprintf("%s-%lld-%d", r->experiment,
						  (long long)r->ctx.started_ms, (int)getpid());
			if (!r->run_id)
				goto nomem;
		}
	}
	if (!r->output_dir) {
		char *rel = expt_asprintf("expt-output/%s", r->run_id);
		if (!rel)
			goto nomem;
		r->output_dir = expt_abspath(rel);
		free(rel);
		if (!r->output_dir) {
			set_error(e, EXPT_RESULT_IO,
				  "cannot read the current directory (or out of memory)");
			rc = EXPT_RESULT_IO;
			goto fail;
		}
	}
	if (pick_or(o->artifact_dir, "EXPT_ARTIFACT_DIR", &r->artifact_dir, r->output_dir,
		    "artifacts") ||
	    pick_or(o->jsonl_path, "EXPT_JSONL", &r->jsonl_path, r->output_dir, "metrics.jsonl") ||
	    pick_or(o->tensorboard_dir, "EXPT_TENSORBOARD_DIR", &r->tb_dir, r->output_dir,
		    "tensorboard") ||
	    (env("EXPT_TRACKING_URI") &&
	     !(r->tracking_uri = expt_strdup(env("EXPT_TRACKING_URI")))))
		goto nomem;
	/* Read now: mlflow's start_run() in the same process takes MLFLOW_RUN_ID out of the
	 * environment, maybe before the sink's thread opens. */
	if (!r->tracking_uri && (v = env("MLFLOW_TRACKING_URI")) &&
	    (!strncmp(v, "http://", 7) || !strncmp(v, "https://", 8)) &&
	    !(r->tracking_uri = expt_strdup(v)))
		goto nomem;
	if ((v = env("EXPT_MLFLOW_RUN_KEY")) && !(r->mlflow_run_key = expt_strdup(v)))
		goto nomem;
	if ((v = env("EXPT_MLFLOW_RUN_ID")) || (v = env("MLFLOW_RUN_ID")))
		if (!(r->mlflow_run_id = expt_strdup(v)))
			goto nomem;

	r->ctx.run_id = r->run_id;
	r->ctx.experiment = r->experiment;
	r->ctx.store_path = r->store_path;
	r->ctx.output_dir = r->output_dir;
	r->ctx.artifact_dir = r->artifact_dir;
	r->ctx.jsonl_path = r->jsonl_path;
	r->ctx.tensorboard_dir = r->tb_dir;
	r->ctx.tracking_uri = r->tracking_uri;
	r->ctx.mlflow_run_id = r->mlflow_run_id;
	r->ctx.mlflow_run_key = r->mlflow_run_key;
	r->ctx.metrics_prefix = r->metrics_prefix;
	r->ctx.attach = (r->flags & EXPT_RUN_ATTACH) != 0;
	r->ctx.keys = &r->keys;
	r->ctx.nparams = r->pkeys.n;
	r->ctx.param_keys = expt_calloc(r->pkeys.n + 1, sizeof(char *));
	r->ctx.param_values = expt_calloc(r->pkeys.n + 1, sizeof(char *));
	if (!r->ctx.param_keys || !r->ctx.param_values)
		goto nomem;
	for (size_t i = 0; i < r->pkeys.n; i++) {
		r->ctx.param_keys[i] = r->pkeys.v[i];
		r->ctx.param_values[i] = r->pvals.v[i];
	}
	/* Every allocation a sink thread needs up front: past this point, a run that opened
	 * never fails for memory except in a log call, which says so. */
	for (size_t i = 0; i < r->nq; i++)
		if (!(r->q[i].batch = expt_malloc(BATCH_MAX * sizeof(*r->q[i].batch))))
			goto nomem;

	/* Sink threads take no signals: the program's threads handle them as before. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &prev);
	for (size_t i = 0; i < r->nq && !rc; i++) {
		int prc = pthread_create(&r->q[i].th, NULL, sink_thread, &r->q[i]);
		if (prc) {
			set_error(e, EXPT_RESULT_IO, "cannot start a sink thread: %s",
				  strerror(prc));
			rc = EXPT_RESULT_IO;
		} else {
			r->q[i].started = 1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &prev, NULL);
	if (rc) {
		expt_run_shutdown(r, "failed", -1, 0);
		goto fail;
	}
	if (!(r->flags & EXPT_RUN_NO_HOOKS)) {
		if (expt_hooks_register(r, &err)) {
			rc = from_err(e, EXPT_RESULT_IO, &err);
			expt_run_shutdown(r, "failed", -1, 0);
			goto fail;
		}
		r->hooked = 1;
	}
	*out = r;
	return 0;
nomem:
	rc = nomem(e);
fail:
	run_free(r);
	return rc ? rc : EXPT_RESULT_INVALID;
}

const char *expt_run_id(const expt_run *r)
{
	return r ? r->run_id : NULL;
}

const char *expt_run_experiment(const expt_run *r)
{
	return r ? r->experiment : NULL;
}

const char *expt_run_output_dir(const expt_run *r)
{
	return r ? r->output_dir : NULL;
}

const char *expt_run_artifact_dir(const expt_run *r)
{
	return r ? r->artifact_dir : NULL;
}

/* ---- logging ---- */

static int utf8_valid(const char *s)
{
	return expt_utf8_ok(s, strlen(s));
}

/* A copy of s with every byte that is not part of well-formed UTF-8 replaced by U+FFFD: the
 * sinks write JSON and protobuf strings, which must be UTF-8. NULL when out of memory. */
static char *utf8_dup(const char *s)
{
	return utf8_valid(s) ? expt_strdup(s) : expt_utf8_scrub(s, strlen(s), NULL);
}

/* Checks a key: non-empty, at most EXPT_KEY_MAX bytes, no control characters, UTF-8. */
static int key_len(const char *key, size_t *len)
{
	size_t n = 0;

	if (!key)
		return -1;
	for (; key[n]; n++) {
		unsigned char c = (unsigned char)key[n];
		if (c < 0x20 || n >= EXPT_KEY_MAX)
			return -1;
		if (c >= 0x80) {
			size_t k = expt_utf8_seq(key + n, 4); /* stops at the NUL */
			if (!k)
				return -1;
			n += k - 1;
		}
	}
	if (n > EXPT_KEY_MAX)
		return -1;
	*len = n;
	return n ? 0 : -1;
}

int expt_log_metrics(expt_run *r, size_t n, const char *const *keys, const double *values,
		     int64_t step, int64_t time_ms)
{
	struct expt_ev ev[PUSH_CHUNK];
	int64_t deadline = 0;
	int rc = EXPT_RESULT_OK;

	if (!r || (n && (!keys || !values)))
		return EXPT_RESULT_INVALID;
	if (!time_ms)
		time_ms = expt_now_ms();
	if (step < 0)
		step = -1;
	if (run_enter(r))
		return EXPT_RESULT_CLOSED;
	for (size_t i = 0; i < n;) {
		size_t m = 0;
		for (; m < PUSH_CHUNK && i < n; i++) {
			size_t len;
			uint32_t id;
			int krc;
			if (key_len(keys[i], &len) ||
			    (krc = expt_keys_intern(&r->keys, keys[i], len, &id)) == -1) {
				rc = EXPT_RESULT_INVALID;
				continue;
			}
			if (krc) {
				rc = EXPT_RESULT_NOMEM;
				continue;
			}
			ev[m].kind = EXPT_EV_METRIC;
			ev[m].key = id;
			ev[m].step = step;
			ev[m].time_ms = time_ms;
			ev[m].u.value = values[i];
			m++;
		}
		if (m) {
			int prc = push(r, ev, m, &deadline);
			if (prc == EXPT_RESULT_CLOSED) {
				rc = prc;
				break;
			}
			if (prc && !rc)
				rc = prc;
		}
	}
	run_leave(r);
	return rc;
}

int expt_log_metric(expt_run *r, const char *key, double value, int64_t step)
{
	return expt_log_metrics(r, 1, &key, &value, step, 0);
}

int expt_log_metric_at(expt_run *r, const char *key, double value, int64_t step, int64_t time_ms)
{
	return expt_log_metrics(r, 1, &key, &value, step, time_ms);
}

/* Queues one record (taking over the caller's reference). */
static int push_rec(struct expt_run *r, enum expt_ev_kind kind, struct expt_rec *rec, int64_t step)
{
	struct expt_ev ev;
	int64_t deadline = 0;
	int rc;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.step = step < 0 ? -1 : step;
	ev.time_ms = expt_now_ms();
	ev.u.rec = rec;
	if (run_enter(r)) {
		expt_rec_unref(rec);
		return EXPT_RESULT_CLOSED;
	}
	rc = push(r, &ev, 1, &deadline);
	run_leave(r);
	expt_rec_unref(rec);
	return rc;
}

static int log_kv(expt_run *r, enum expt_ev_kind kind, const char *key, const char *value)
{
	struct expt_rec *rec;
	size_t len;

	if (!r || key_len(key, &len) || !value)
		return EXPT_RESULT_INVALID;
	if (!(rec = expt_rec_new()) || !(rec->key = expt_strdup(key)) ||
	    !(rec->value = utf8_dup(value))) {
		expt_rec_unref(rec);
		return EXPT_RESULT_NOMEM;
	}
	return push_rec(r, kind, rec, -1);
}

int expt_log_param(expt_run *r, const char *key, const char *value)
{
	return log_kv(r, EXPT_EV_PARAM, key, value);
}

int expt_set_tag(expt_run *r, const char *key, const char *value)
{
	return log_kv(r, EXPT_EV_TAG, key, value);
}

int expt_log_image(expt_run *r, const char *key, const void *png, size_t len, int64_t step)
{
	struct expt_rec *rec;
	uint32_t w, h, ch;
	size_t klen;

	if (!r || key_len(key, &klen) || !png || expt_png_info(png, len, &w, &h, &ch))
		return EXPT_RESULT_INVALID;
	if (!(rec = expt_rec_new()) || !(rec->key = expt_strdup(key)) ||
	    !(rec->png = expt_malloc(len))) {
		expt_rec_unref(rec);
		return EXPT_RESULT_NOMEM;
	}
	memcpy(rec->png, png, len);
	rec->png_len = len;
	rec->width = w;
	rec->height = h;
	rec->channels = ch;
	return push_rec(r, EXPT_EV_IMAGE, rec, step);
}

int expt_log_histogram(expt_run *r, const char *key, const double *values, size_t n, int64_t step)
{
	struct expt_rec *rec;
	size_t klen;

	if (!r || key_len(key, &klen) || (n && !values))
		return EXPT_RESULT_INVALID;
	if (!(rec = expt_rec_new()) || !(rec->key = expt_strdup(key)) ||
	    expt_histogram_values(rec, values, n, HIST_BUCKETS)) {
		expt_rec_unref(rec);
		return EXPT_RESULT_NOMEM;
	}
	return push_rec(r, EXPT_EV_HISTOGRAM, rec, step);
}

int expt_log_histogram_buckets(expt_run *r, const char *key, const double *edges,
			       const double *counts, size_t nb, int64_t step)
{
	struct expt_rec *rec;
	size_t klen;
	int hrc;

	if (!r || key_len(key, &klen) || !edges || !counts)
		return EXPT_RESULT_INVALID;

	if (!(rec = expt_rec_new()) || !(rec->key = expt_strdup(key))) {
		expt_rec_unref(rec);
		return EXPT_RESULT_NOMEM;
	}
	if ((hrc = expt_histogram_buckets(rec, edges, counts, nb))) {
		expt_rec_unref(rec);
		return hrc == -2 ? EXPT_RESULT_NOMEM : EXPT_RESULT_INVALID;
	}
	return push_rec(r, EXPT_EV_HISTOGRAM, rec, step);
}

/* Bytes under path (a file or a tree); -1 when out of memory. */
static int64_t tree_size(const char *path)
{
	struct expt_strv stack = EXPT_STRV_INIT;
	int64_t total = 0;

	if (expt_strv_add(&stack, path))
		return -1;
	while (stack.n && total >= 0) {
		char *p = stack.v[--stack.n];
		struct stat st;
		stack.v[stack.n] = NULL;
		if (!lstat(p, &st)) {
			if (S_ISDIR(st.st_mode)) {
				DIR *d = opendir(p);
				struct dirent *de;
				while (d && (de = readdir(d))) {
					if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
					    expt_strv_addf(&stack, "%s/%s", p, de->d_name))
						total = -1;
				}
				if (d)
					closedir(d);
			} else if (S_ISREG(st.st_mode) && total >= 0) {
				total += st.st_size;
			}
		}
		free(p);
	}
	expt_strv_release(&stack);
	return total;
}

/* A name inside the artifact directory: relative, no "." or ".." part, no empty part. */
static int valid_artifact_name(const char *name)
{
	const char *p = name;

	if (!*name || *name == '/' || !utf8_valid(name))
		return 0;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (!len || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}

int expt_log_artifact(expt_run *r, const char *path, const char *name, struct expt_error *e)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_rec *rec;
	char *base = NULL, *dest = NULL, *dir = NULL, *slash;
	struct stat st;
	int rc;

	if (!r || !path || !*path) {
		set_error(e, EXPT_RESULT_INVALID, "no artifact path");
		return EXPT_RESULT_INVALID;
	}
	if (run_enter(r)) {
		set_error(e, EXPT_RESULT_CLOSED, "the run is finished");
		return EXPT_RESULT_CLOSED;
	}
	/* Counted in but unlocked: the copy may take long, and finish waits for it. */
	run_unlock(r);
	if (stat(path, &st)) {
		set_error(e, EXPT_RESULT_IO, "cannot read artifact '%s': %s", path,
			  strerror(errno));
		rc = EXPT_RESULT_IO;
		goto out;
	}
	if (!name || !*name) {
		size_t len = strlen(path);
		while (len > 1 && path[len - 1] == '/')
			len--;
		if (!(base = expt_strndup(path, len))) {
			rc = nomem(e);
			goto out;
		}
		slash = strrchr(base, '/');
		name = slash && slash[1] ? slash + 1 : base;
	}
	if (!valid_artifact_name(name)) {
		set_error(e, EXPT_RESULT_INVALID,
			  "bad artifact name '%s' (a relative path without "
			  "'.' or '..' parts)",
			  name);
		rc = EXPT_RESULT_INVALID;
		goto out;
	}
	if (!(dest = expt_asprintf("%s/%s", r->artifact_dir, name)) || !(dir = expt_strdup(dest))) {
		rc = nomem(e);
		goto out;
	}
	*strrchr(dir, '/') = '\0';
	/* Copied now, on the caller's thread: the program may change the file right after. */
	if (expt_mkdirs(dir, &err) || expt_remove_tree(dest, &err) ||
	    expt_copy_tree(path, dest, &err)) {
		rc = from_err(e, EXPT_RESULT_IO, &err);
		goto out;
	}
	if (!(rec = expt_rec_new()) || !(rec->key = expt_strdup(name))) {
		expt_rec_unref(rec);
		rc = nomem(e);
		goto out;
	}
	rec->value = dest;
	dest = NULL;
	if ((rec->size = tree_size(rec->value)) < 0) {
		expt_rec_unref(rec);
		rc = nomem(e);
		goto out;
	}
	rc = push_rec(r, EXPT_EV_ARTIFACT, rec, -1);
	if (rc)
		set_error(e, rc, "the artifact was copied but could not be queued");
out:
	free(base);
	free(dest);
	free(dir);
	run_lock(r);
	run_leave(r);
	return rc;
}

int expt_run_set_status(expt_run *r, const char *status)
{
	enum expt_run_status s;

	if (!r || !status || expt_run_status_parse(status, &s) || !expt_run_status_done(s))
		return EXPT_RESULT_INVALID;
	if (run_enter(r))
		return EXPT_RESULT_CLOSED;
	snprintf(r->status, sizeof(r->status), "%s", status);
	run_leave(r);
	return 0;
}

/* ---- flush, finish ---- */

int expt_run_flush(expt_run *r, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? 0 : expt_mono_ms() + timeout_ms;
	int rc = EXPT_RESULT_OK;
	uint64_t *target;

	if (!r)
		return EXPT_RESULT_INVALID;
	if (run_foreign(r) || run_enter(r))
		return EXPT_RESULT_CLOSED;
	/* What was logged before this call, per sink: later logging (another thread that keeps
	 * going) does not hold the flush up. */
	if (!(target = expt_calloc(r->nq ? r->nq : 1, sizeof(*target)))) {
		run_leave(r);
		return EXPT_RESULT_NOMEM;
	}
	for (size_t i = 0; i < r->nq; i++) {
		target[i] = r->q[i].flush_target = r->q[i].queued;
		pthread_cond_signal(&r->q[i].cv);
	}
	for (;;) {
		int pending = 0, failing = 0;
		for (size_t i = 0; i < r->nq; i++) {
			struct sinkq *q = &r->q[i];
			if (q->failing)
				failing = 1;
			else if (q->settled < target[i])
				pending = 1;
		}
		if (r->closed) {
			/* Finished meanwhile: finish says what was delivered. */
			rc = EXPT_RESULT_CLOSED;
			break;
		}
		if (!pending) {
			rc = failing ? EXPT_RESULT_INCOMPLETE : EXPT_RESULT_OK;
			break;
		}
		if (run_wait(r, &r->done_cv, deadline) == ETIMEDOUT) {
			rc = EXPT_RESULT_INCOMPLETE;
			break;
		}
	}
	run_leave(r);
	free(target);
	return rc;
}

void expt_run_mark_forked(struct expt_run *r)
{
	r->forked = 1;
}

void expt_run_shutdown(struct expt_run *r, const char *status, int exit_code, int sig)
{
	run_lock(r);
	if (r->shut_state) {
		/* Another thread is finishing it. A signal's watcher does not wait: the thread
		 * finishing may be the one the signal interrupted, which cannot go on until the
		 * handler returns. */
		while (r->shut_state != 2 && !sig)
			run_wait(r, &r->done_cv, 0);
		run_unlock(r);
		return;
	}
	r->shut_state = 1;
	r->closed = 1;
	/* Flushes and log calls waiting unlocked see the run closed. */
	pthread_cond_broadcast(&r->done_cv);
	if (!status)
		status = r->status[0] ? r->status : exit_code == 0 ? "succeeded" : "failed";
	snprintf(r->fin_status, sizeof(r->fin_status), "%s", status);
	r->fin.status = r->fin_status;
	r->fin.exit_code = exit_code;
	r->fin.signal = sig;
	r->fin.time_ms = expt_now_ms();
	for (size_t i = 0; i < r->nq; i++) {
		r->q[i].stop = 1;
		pthread_cond_signal(&r->q[i].cv);
	}
	pthread_cond_broadcast(&r->space_cv);
	run_unlock(r);
	for (size_t i = 0; i < r->nq; i++)
		if (r->q[i].started)
			pthread_join(r->q[i].th, NULL);
	run_lock(r);
	r->shut_state = 2;
	pthread_cond_broadcast(&r->done_cv);
	run_unlock(r);
}

int expt_run_finish(expt_run *r, const char *status, struct expt_error *e)
{
	struct expt_buf msg = EXPT_BUF_INIT;
	int rc = EXPT_RESULT_OK;

	if (!r)
		return EXPT_RESULT_OK;
	if (status) {
		enum expt_run_status s;
		if (expt_run_status_parse(status, &s) || !expt_run_status_done(s)) {
			set_error(e, EXPT_RESULT_INVALID,
				  "bad status '%s' (succeeded, failed or stopped)", status);
			return EXPT_RESULT_INVALID;
		}
	}
	if (run_foreign(r)) {
		/* The parent owns the threads and the files; the child just lets go (never joins
		 * threads it does not have). */
		set_error(e, EXPT_RESULT_CLOSED,
			  "run opened before fork(): finish it in the parent");
		return EXPT_RESULT_CLOSED;
	}
	run_lock(r);
	if (r->finishing) {
		run_unlock(r);
		set_error(e, EXPT_RESULT_CLOSED, "the run is already being finished");
		return EXPT_RESULT_CLOSED;
	}
	r->finishing = 1;
	if (!status)
		status = r->status[0] ? r->status : "succeeded";
	run_unlock(r);
	expt_run_shutdown(r, status, -1, 0);
	if (r->hooked)
		expt_hooks_unregister(r);
	/* Calls still inside (waiting for room, copying an artifact, flushing) saw the run closed;
	 * the run is freed once the last of them is out. */
	run_lock(r);
	while (r->users)
		run_wait(r, &r->done_cv, 0);
	run_unlock(r);
	for (size_t i = 0; i < r->nq; i++) {
		struct sinkq *q = &r->q[i];
		uint64_t lost = q->undelivered + q->dropped;
		if (q->rejected) {
			if (msg.len)
				expt_buf_adds(&msg, "; ");
			expt_buf_addf(&msg, "sink %s: %llu entries rejected (first: %s)",
				      q->ops->name, (unsigned long long)q->rejected, q->rejmsg);
			rc = EXPT_RESULT_INCOMPLETE;
		}
		if (!lost && !q->failing)
			continue;
		if (msg.len)
			expt_buf_adds(&msg, "; ");
		if (lost)
			expt_buf_addf(&msg,
				      "sink %s: %llu entries not delivered (%llu dropped when "
				      "full)",
				      q->ops->name, (unsigned long long)lost,
				      (unsigned long long)q->dropped);
		else
			expt_buf_addf(&msg, "sink %s", q->ops->name);
		if (q->errmsg[0])
			expt_buf_addf(&msg, ": %s", q->errmsg);
		rc = EXPT_RESULT_INCOMPLETE;
	}
	if (rc) {
		set_error(e, rc, "%s", msg.buf);
		report(r, "", "%s", msg.buf);
	}
	expt_buf_release(&msg);
	run_free(r);
	return rc;
}

/* ---- monitoring ---- */

size_t expt_run_sink_count(const expt_run *r)
{
	return r ? r->nq : 0;
}

int expt_run_sink_stats(expt_run *r, size_t i, struct expt_sink_stats *out)
{
	if (!r || !out || i >= r->nq)
		return EXPT_RESULT_INVALID;
	if (run_forked(r))
		return EXPT_RESULT_CLOSED;
	run_lock(r);
	out->name = r->q[i].ops->name;
	out->delivered = r->q[i].delivered;
	out->pending = r->q[i].count;
	out->dropped = r->q[i].dropped;
	out->failing = r->q[i].failing;
	run_unlock(r);
	return 0;
}

const char *expt_version(void)
{
	return EXPT_VERSION;
}
