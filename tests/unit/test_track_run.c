/* The logging API end to end: what reaches the store and the JSONL file, failing sinks that
 * lose nothing for the others and catch up when they recover, the full-queue policy, threads,
 * and the exit()/SIGTERM/fork hooks (each in a child process). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "expt.h"
#include "store/store.h"
#include "util/util.h"

#include "track_fixture.h"

/* Reports, counted. */
struct reports {
	pthread_mutex_t mu;
	int failed, recovered, other;
	char last[1024];
};

static void on_report(const char *sink, const char *msg, void *payload)
{
	struct reports *r = payload;

	pthread_mutex_lock(&r->mu);
	if (strstr(msg, "failed"))
		r->failed++;
	else if (strstr(msg, "recovered"))
		r->recovered++;
	else
		r->other++;
	snprintf(r->last, sizeof(r->last), "%s", msg);
	pthread_mutex_unlock(&r->mu);
}

/* Metric values of key in the JSONL, in file order. */
static size_t jsonl_values(json_t *arr, const char *key, double *out, int64_t *steps, size_t max)
{
	size_t i, n = 0;
	json_t *o;

	json_array_foreach(arr, i, o)
	{
		if (strcmp(json_string_value(json_object_get(o, "type")), "metric") ||
		    strcmp(json_string_value(json_object_get(o, "key")), key))
			continue;
		if (n < max) {
			out[n] = json_number_value(json_object_get(o, "value"));
			steps[n] = json_object_get(o, "step")
				       ? json_integer_value(json_object_get(o, "step"))
				       : -1;
		}
		n++;
	}
	return n;
}

static struct expt_store *store_at(const char *path)
{
	struct expt_store *st = NULL;
	struct expt_err err = EXPT_ERR_INIT;

	if (expt_store_open(&st, path, &err))
		fail_msg("store %s: %s", path, err.msg);
	return st;
}

/* The history of key in the store; caller frees. */
static struct expt_metric_row *history(struct expt_store *st, const char *run, const char *key,
				       size_t *n)
{
	struct expt_metric_row *rows = NULL;
	struct expt_err err = EXPT_ERR_INIT;

	if (expt_store_metric_history(st, run, key, &rows, n, &err))
		fail_msg("history %s %s: %s", run, key, err.msg);
	return rows;
}

static const unsigned char tiny_png[40] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0,
					   0,	 0,   13,  'I', 'H',  'D',  'R',  0,	0,
					   0,	 2,   0,   0,	0,    1,    8,	  2};

/* A standalone run in store + jsonl: every kind of data lands in both, exactly. */
static void test_standalone_store_jsonl(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/.expt/expt.db", dir),
	     *art = expt_xasprintf("%s/model.bin", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_rec rec;
	struct expt_kv_rows rows = {0};
	expt_run *run;
	struct expt_store *st;
	json_t *lines;
	char *run_id, *jsonl;
	const char *keys[3] = {"loss", "acc", "lr"};
	const int N = 4000;
	double vals[4000];
	int64_t steps[4000];
	size_t n;
	FILE *f;

	f = fopen(art, "w");
	assert_non_null(f);
	fputs("weights", f);
	fclose(f);
	o.store = db;
	o.experiment = "unit";
	o.sinks = "store, jsonl";
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	run_id = expt_xstrdup(expt_run_id(run));
	assert_string_equal(run_id, "unit-1");
	jsonl = expt_xasprintf("%s/metrics.jsonl", expt_run_output_dir(run));
	assert_int_equal(expt_log_param(run, "lr", "0.01"), 0);
	assert_int_equal(expt_set_tag(run, "phase", "train"), 0);
	for (int i = 0; i < N; i++) {
		double v[3] = {1.0 / (i + 1), i * 0.001, 0.01};
		assert_int_equal(expt_log_metrics(run, 3, keys, v, i, 0), 0);
	}
	assert_int_equal(expt_log_metric(run, "nostep", 42.5, -1), 0);
	assert_int_equal(expt_log_metric_at(run, "timed", 7, 3, 1700000000123), 0);
	assert_int_equal(expt_log_histogram(run, "w", (const double[]){1, 2, 3}, 3, 5), 0);
	assert_int_equal(expt_log_image(run, "sample", tiny_png, sizeof(tiny_png), 2), 0);
	assert_int_equal(expt_log_artifact(run, art, NULL, &e), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);

	st = store_at(db);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(expt_store_get_run(st, run_id, &rec, &err), 0);
	assert_int_equal(rec.status, EXPT_RUN_SUCCEEDED);
	assert_int_equal(rec.pid, (int)getpid());
	expt_run_rec_release(&rec);
	for (int k = 0; k < 3; k++) {
		struct expt_metric_row *h = history(st, run_id, keys[k], &n);
		assert_int_equal(n, N);
		for (int i = 0; i < N; i++) {
			double want = k == 0 ? 1.0 / (i + 1) : k == 1 ? i * 0.001 : 0.01;
			assert_true(h[i].value == want);
			assert_int_equal(h[i].step, i);
		}
		free(h);
	}
	{
		struct expt_metric_row *h = history(st, run_id, "nostep", &n);
		assert_int_equal(n, 1);
		assert_true(h[0].value == 42.5 && h[0].step == -1);
		free(h);
		h = history(st, run_id, "timed", &n);
		assert_int_equal(n, 1);
		assert_true(h[0].time_ms == 1700000000123 && h[0].step == 3);
		free(h);
	}
	assert_int_equal(expt_store_get_params(st, run_id, &rows, &err), 0);
	assert_int_equal(rows.n, 1);
	assert_string_equal(rows.keys[0], "lr");
	assert_string_equal(rows.values[0], "0.01");
	expt_kv_rows_release(&rows);
	assert_int_equal(expt_store_get_tags(st, run_id, &rows, &err), 0);
	assert_int_equal(rows.n, 1);
	assert_string_equal(rows.values[0], "train");
	expt_kv_rows_release(&rows);
	assert_int_equal(expt_store_get_artifacts(st, run_id, &rows, &err), 0);
	assert_int_equal(rows.n, 2); /* the file and the image */
	expt_kv_rows_release(&rows);
	assert_int_equal(expt_store_get_events(st, run_id, &rows, &err), 0);
	assert_int_equal(rows.n >= 1, 1);
	expt_kv_rows_release(&rows);
	expt_store_close(st);

	lines = read_jsonl(jsonl);
	assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "type")),
			    "run");
	assert_int_equal(count_type(lines, "metric"), 3 * N + 2);
	assert_int_equal(count_type(lines, "param"), 1);
	assert_int_equal(count_type(lines, "tag"), 1);
	assert_int_equal(count_type(lines, "histogram"), 1);
	assert_int_equal(count_type(lines, "image"), 1);
	assert_int_equal(count_type(lines, "artifact"), 1);
	assert_int_equal(count_type(lines, "finish"), 1);
	n = jsonl_values(lines, "loss", vals, steps, N);
	assert_int_equal(n, N);
	for (int i = 0; i < N; i++) {
		assert_true(vals[i] == 1.0 / (i + 1));
		assert_int_equal(steps[i], i);
	}
	json_decref(lines);
	/* The artifact was copied into the run's artifact directory. */
	{
		char *copy =
		    expt_xasprintf("%s/.expt/runs/%s/output/artifacts/model.bin", dir, run_id);
		struct expt_buf b = EXPT_BUF_INIT;
		assert_int_equal(expt_read_file(copy, &b, &err), 0);
		assert_string_equal(b.buf, "weights");
		expt_buf_release(&b);
		free(copy);
	}
	free(run_id);
	free(jsonl);
	free(db);
	free(art);
	free(dir);
}

/* A JSONL path that cannot be created: the store still gets every point; finish says what the
 * JSONL sink missed; the failure was reported once. */
static void test_failing_sink_loses_nothing_for_others(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *blocker = expt_xasprintf("%s/file", dir);
	char *jsonl = expt_xasprintf("%s/file/metrics.jsonl", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	struct expt_store *st;
	struct expt_metric_row *h;
	char *run_id;
	size_t n;

	close(open(blocker, O_CREAT | O_WRONLY, 0644));
	o.store = db;
	o.sinks = "jsonl,store";
	o.jsonl_path = jsonl;
	o.report = on_report;
	o.payload = &rep;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	run_id = expt_xstrdup(expt_run_id(run));
	for (int i = 0; i < 20000; i++)
		assert_int_equal(expt_log_metric(run, "x", i, i), 0);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_INCOMPLETE);
	{
		struct expt_sink_stats s;
		assert_int_equal(expt_run_sink_stats(run, 0, &s), 0);
		assert_string_equal(s.name, "jsonl");
		assert_int_equal(s.failing, 1);
		assert_int_equal(s.pending, 20000);
		assert_int_equal(expt_run_sink_stats(run, 1, &s), 0);
		assert_int_equal(s.failing, 0);
		assert_int_equal(s.delivered, 20000);
	}
	assert_int_equal(expt_run_finish(run, NULL, &e), EXPT_RESULT_INCOMPLETE);
	assert_non_null(strstr(e.message, "sink jsonl: 20000 entries not delivered"));
	assert_non_null(strstr(e.message, "metrics.jsonl"));
	assert_int_equal(rep.failed, 1);

	st = store_at(db);
	h = history(st, run_id, "x", &n);
	assert_int_equal(n, 20000);
	for (int i = 0; i < 20000; i++)
		assert_true(h[i].value == i);
	free(h);
	expt_store_close(st);
	free(run_id);
	free(db);
	free(blocker);
	free(jsonl);
	free(dir);
}

/* A sink that fails, then recovers: it gets what it missed, once each, in order. */
static void test_sink_recovers(void **state)
{
	char *dir = fresh_dir();
	char *blocker = expt_xasprintf("%s/later", dir);
	char *jsonl = expt_xasprintf("%s/later/m.jsonl", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	struct expt_err err = EXPT_ERR_INIT;
	expt_run *run;
	json_t *lines;
	double vals[3000];
	int64_t steps[3000];

	close(open(blocker, O_CREAT | O_WRONLY, 0644));
	o.run_id = "attached-1"; /* no store needed */
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	for (int i = 0; i < 1000; i++)
		expt_log_metric(run, "y", i, i);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_INCOMPLETE);
	assert_int_equal(rep.failed, 1);
	/* The disk comes back. */
	unlink(blocker);
	assert_int_equal(expt_mkdirs(blocker, &err), 0);
	for (int i = 1000; i < 3000; i++)
		expt_log_metric(run, "y", i, i);
	/* Backoff: 250 ms, then 500 ms... a flush returns once it is healthy again. */
	for (int t = 0; t < 100 && expt_run_flush(run, 100) != EXPT_RESULT_OK; t++)
		usleep(50000);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_OK);
	assert_int_equal(rep.recovered, 1);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	lines = read_jsonl(jsonl);
	assert_int_equal(jsonl_values(lines, "y", vals, steps, 3000), 3000);
	for (int i = 0; i < 3000; i++)
		assert_true(vals[i] == i && steps[i] == i);
	json_decref(lines);
	free(blocker);
	free(jsonl);
	free(dir);
}

/* A store that cannot be opened (not a database), with the stdout fallback turned off: the
 * store sink fails, JSONL still gets everything. (The fallback: test_track_stdout.c.) */
static void test_bad_store(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines;
	FILE *f = fopen(db, "w");

	assert_non_null(f);
	for (int i = 0; i < 100; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	o.run_id = "r-1";
	o.store = db;
	o.sinks = "store,jsonl";
	o.jsonl_path = jsonl;
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS | EXPT_RUN_NO_STDOUT_FALLBACK;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(expt_log_metric(run, "z", i, i), 0);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_INCOMPLETE);
	assert_int_equal(rep.failed, 1);
	assert_non_null(strstr(rep.last, "sink store failed"));
	assert_int_equal(expt_run_finish(run, NULL, &e), EXPT_RESULT_INCOMPLETE);
	assert_non_null(strstr(e.message, "sink store: 5000 entries not delivered"));
	/* Reported once when it failed, once more at finish with the count. */
	assert_int_equal(rep.failed, 1);
	assert_int_equal(rep.other, 1);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 5000);
	json_decref(lines);
	free(db);
	free(jsonl);
	free(dir);
}

/* A healthy sink slower than the producer: the producer waits, nothing is dropped. A failing
 * sink with a full queue: it drops (and counts), the others do not. */
static void test_queue_policy(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *jsonl = expt_xasprintf("%s/f/m.jsonl", dir);
	char *blocker = expt_xasprintf("%s/f", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_sink_stats s;
	struct expt_error e;
	expt_run *run;
	struct expt_store *st;
	struct expt_metric_row *h;
	char *run_id;
	int dropped_rc = 0;
	size_t n;

	close(open(blocker, O_CREAT | O_WRONLY, 0644));
	o.store = db;
	o.sinks = "store,jsonl";
	o.jsonl_path = jsonl;
	o.queue_size = 1024;
	o.queue_wait_ms = 10000;
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	run_id = expt_xstrdup(expt_run_id(run));
	expt_log_metric(run, "q", -1, 0);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_INCOMPLETE); /* jsonl failing */
	for (int i = 0; i < 200000; i++) {
		int rc = expt_log_metric(run, "q", i, i);
		if (rc == EXPT_RESULT_DROPPED)
			dropped_rc++;
		else
			assert_int_equal(rc, 0);
	}
	assert_true(dropped_rc > 0);
	assert_int_equal(expt_run_sink_stats(run, 1, &s), 0);
	assert_string_equal(s.name, "jsonl");
	assert_true(s.pending <= 1024);
	assert_int_equal(s.pending + s.dropped, 200001);
	assert_int_equal(expt_run_sink_stats(run, 0, &s), 0);
	assert_int_equal(s.dropped, 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), EXPT_RESULT_INCOMPLETE);
	assert_non_null(strstr(e.message, "sink jsonl: 200001 entries not delivered"));
	st = store_at(db);
	h = history(st, run_id, "q", &n);
	assert_int_equal(n, 200001);
	for (size_t i = 1; i < n; i++)
		assert_true(h[i].value == (double)(i - 1));
	free(h);
	expt_store_close(st);
	free(run_id);
	free(db);
	free(jsonl);
	free(blocker);
	free(dir);
}

struct thread_arg {
	expt_run *run;
	int id;
};

static void *logger(void *p)
{
	struct thread_arg *a = p;
	char key[16];

	snprintf(key, sizeof(key), "t%d", a->id);
	for (int i = 0; i < 50000; i++)
		if (expt_log_metric(a->run, key, i, i))
			return (void *)1;
	return NULL;
}

static void test_threads(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	struct thread_arg args[4];
	pthread_t th[4];
	expt_run *run;
	struct expt_store *st;
	char *run_id;

	o.store = db;
	o.sinks = "store";
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	run_id = expt_xstrdup(expt_run_id(run));
	for (int i = 0; i < 4; i++) {
		args[i].run = run;
		args[i].id = i;
		pthread_create(&th[i], NULL, logger, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	assert_int_equal(expt_run_finish(run, "failed", &e), 0);
	st = store_at(db);
	for (int i = 0; i < 4; i++) {
		char key[16];
		size_t n;
		struct expt_metric_row *h;
		snprintf(key, sizeof(key), "t%d", i);
		h = history(st, run_id, key, &n);
		assert_int_equal(n, 50000);
		for (size_t j = 0; j < n; j++)
			assert_true(h[j].value == (double)j);
		free(h);
	}
	{
		struct expt_run_rec rec;
		struct expt_err err = EXPT_ERR_INIT;
		memset(&rec, 0, sizeof(rec));
		assert_int_equal(expt_store_get_run(st, run_id, &rec, &err), 0);
		assert_int_equal(rec.status, EXPT_RUN_FAILED);
		expt_run_rec_release(&rec);
	}
	expt_store_close(st);
	free(run_id);
	free(db);
	free(dir);
}

static void test_invalid(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir), *bad = expt_xasprintf("%s/../x", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	char long_key[2000];
	const char *keys[2] = {"ok", ""};
	double v[2] = {1, 2};

	o.sinks = "jsonl,bogus";
	assert_int_equal(expt_run_open(&run, &o, &e), EXPT_RESULT_INVALID);
	assert_non_null(strstr(e.message, "unknown sink 'bogus'"));
	o.version = 99;
	assert_int_equal(expt_run_open(&run, &o, &e), EXPT_RESULT_INVALID);
	o.version = EXPT_RUN_OPTIONS_VERSION;
	o.sinks = "jsonl";
	o.run_id = "x-1";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	memset(long_key, 'k', sizeof(long_key));
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(expt_log_metric(NULL, "a", 1, 1), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "", 1, 1), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "a\nb", 1, 1), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, long_key, 1, 1), EXPT_RESULT_INVALID);
	/* One bad key does not stop the good ones. */
	assert_int_equal(expt_log_metrics(run, 2, keys, v, 0, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_image(run, "img", "not a png at all, not at all, no!", 33, 0),
			 EXPT_RESULT_INVALID);
	assert_int_equal(
	    expt_log_histogram_buckets(run, "h", (const double[]){1, 0}, (const double[]){1}, 1, 0),
	    EXPT_RESULT_INVALID);
	assert_int_equal(expt_run_set_status(run, "running"), EXPT_RESULT_INVALID);
	assert_int_equal(expt_run_set_status(run, "bogus"), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_artifact(run, "/nonexistent/file", NULL, &e), EXPT_RESULT_IO);
	assert_int_equal(expt_log_artifact(run, dir, "../escape", &e), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_artifact(run, bad, "a/./b", &e), EXPT_RESULT_IO);
	assert_int_equal(expt_run_finish(run, "bogus", &e), EXPT_RESULT_INVALID);
	assert_int_equal(expt_run_set_status(run, "stopped"), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	{
		json_t *lines = read_jsonl(jsonl);
		json_t *last = json_array_get(lines, json_array_size(lines) - 1);
		assert_int_equal(count_type(lines, "metric"), 1);
		assert_string_equal(json_string_value(json_object_get(last, "status")), "stopped");
		json_decref(lines);
	}
	assert_int_equal(expt_run_finish(NULL, NULL, &e), 0);
	free(jsonl);
	free(bad);
	free(dir);
}

/* Inside a run that expt launched: identity and params from the environment; an attached
 * handle (the expt log command) writes no header and no finish line. */
static void test_environment_and_attach(void **state)
{
	char *dir = fresh_dir();
	char *params = expt_xasprintf("%s/params.json", dir), *out = expt_xasprintf("%s/out", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines, *first;
	char *jsonl = expt_xasprintf("%s/metrics.jsonl", out);
	const char *pj = "{\"lr\": 0.1, \"opt\": \"adam\", \"deep\": true}";

	assert_int_equal(expt_write_file(params, pj, strlen(pj), &err), 0);
	setenv("EXPT_RUN_ID", "mnist-7", 1);
	setenv("EXPT_EXPERIMENT", "mnist", 1);
	setenv("EXPT_OUTPUT_DIR", out, 1);
	setenv("EXPT_PARAMS_FILE", params, 1);
	setenv("EXPT_SINKS", "jsonl", 1);
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_string_equal(expt_run_id(run), "mnist-7");
	assert_string_equal(expt_run_experiment(run), "mnist");
	assert_string_equal(expt_run_output_dir(run), out);
	assert_int_equal(expt_run_sink_count(run), 1);
	expt_log_metric(run, "a", 1, 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	o.flags = EXPT_RUN_NO_HOOKS | EXPT_RUN_ATTACH;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	expt_log_metric(run, "b", 2, 1);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	unsetenv("EXPT_RUN_ID");
	unsetenv("EXPT_EXPERIMENT");
	unsetenv("EXPT_OUTPUT_DIR");
	unsetenv("EXPT_PARAMS_FILE");
	unsetenv("EXPT_SINKS");

	lines = read_jsonl(jsonl);
	assert_int_equal(json_array_size(lines), 4); /* run, a, finish, b */
	first = json_array_get(lines, 0);
	assert_string_equal(json_string_value(json_object_get(first, "run_id")), "mnist-7");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(first, "params"), "opt")), "adam");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(first, "params"), "lr")), "0.1");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(first, "params"), "deep")), "true");
	assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 3), "key")),
			    "b");
	json_decref(lines);
	free(params);
	free(out);
	free(jsonl);
	free(dir);
}

/* ---- hooks, each in a child process ---- */

static pid_t child_pid;
static int in_child;

/* LeakSanitizer calls this at exit: a forked child exits in the middle of a test, holding the
 * parent's test memory, which is not a leak. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return in_child;
}

static expt_run *child_open(const char *jsonl, const char *db)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;

	o.store = db;
	o.sinks = db ? "store,jsonl" : "jsonl";
	o.jsonl_path = jsonl;
	o.run_id = db ? NULL : "hooked-1";
	o.experiment = "hooks";
	o.linger_ms = 10000; /* nothing is delivered before the hook unless the hook works */
	if (expt_run_open(&run, &o, &e))
		_exit(100);
	return run;
}

static int wait_child(void)
{
	int status;

	assert_int_equal(waitpid(child_pid, &status, 0), child_pid);
	return status;
}

static void test_exit_hook(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir), *db = expt_xasprintf("%s/expt.db", dir);
	json_t *lines, *last;
	int status;

	child_pid = fork();
	if (!child_pid) {
		in_child = 1;
		expt_run *run = child_open(jsonl, db);
		for (int i = 0; i < 1000; i++)
			expt_log_metric(run, "e", i, i);
		exit(3); /* no finish: the exit hook delivers and finishes */
	}
	status = wait_child();
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 1000);
	last = json_array_get(lines, json_array_size(lines) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "status")), "failed");
	assert_int_equal(json_integer_value(json_object_get(last, "exit_code")), 3);
	json_decref(lines);
	{
		struct expt_store *st = store_at(db);
		struct expt_run_rec rec;
		struct expt_err err = EXPT_ERR_INIT;
		size_t n;
		struct expt_metric_row *h;
		memset(&rec, 0, sizeof(rec));
		assert_int_equal(expt_store_get_run(st, "hooks-1", &rec, &err), 0);
		assert_int_equal(rec.status, EXPT_RUN_FAILED);
		assert_int_equal(rec.exit_code, 3);
		expt_run_rec_release(&rec);
		h = history(st, "hooks-1", "e", &n);
		assert_int_equal(n, 1000);
		free(h);
		expt_store_close(st);
	}
	free(jsonl);
	free(db);
	free(dir);
}

static void test_sigterm_default(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	json_t *lines, *last;
	int status;

	child_pid = fork();
	if (!child_pid) {
		in_child = 1;
		expt_run *run = child_open(jsonl, NULL);
		for (int i = 0; i < 1000; i++)
			expt_log_metric(run, "s", i, i);
		raise(SIGTERM);
		_exit(50); /* not reached: the default action still kills the process */
	}
	status = wait_child();
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 1000);
	last = json_array_get(lines, json_array_size(lines) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "status")), "stopped");
	assert_int_equal(json_integer_value(json_object_get(last, "signal")), SIGTERM);
	json_decref(lines);
	free(jsonl);
	free(dir);
}

/* The program's own SIGTERM handler still runs, after the flush, and the run goes on. */
static const char *chain_path;
static volatile sig_atomic_t chained_lines = -1;

static void own_handler(int sig)
{
	char buf[65536];
	int fd = open(chain_path, O_RDONLY), n = 0;
	ssize_t r;

	while (fd >= 0 && (r = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < r; i++)
			n += buf[i] == '\n';
	if (fd >= 0)
		close(fd);
	chained_lines = n;
}

static void test_sigterm_chains(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	json_t *lines, *last;
	int status;

	chain_path = jsonl;
	child_pid = fork();
	if (!child_pid) {
		in_child = 1;
		struct expt_error e;
		expt_run *run;
		signal(SIGTERM, own_handler);
		run = child_open(jsonl, NULL);
		for (int i = 0; i < 500; i++)
			expt_log_metric(run, "c", i, i);
		raise(SIGTERM);
		/* Flushed before the handler ran: the header and 500 points. */
		if (chained_lines != 501)
			_exit(10);
		for (int i = 500; i < 1000; i++)
			expt_log_metric(run, "c", i, i);
		_exit(expt_run_finish(run, NULL, &e) ? 11 : 0);
	}
	status = wait_child();
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 1000);
	last = json_array_get(lines, json_array_size(lines) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "status")), "succeeded");
	json_decref(lines);
	free(jsonl);
	free(dir);
}

/* A forked child cannot log through its parent's run (no threads there); the parent can. */
static void test_fork(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines;
	int status;

	o.run_id = "forky-1";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	expt_log_metric(run, "p", 1, 0);
	child_pid = fork();
	if (!child_pid) {
		in_child = 1;
		int ok = expt_log_metric(run, "p", 2, 1) == EXPT_RESULT_CLOSED &&
			 expt_run_flush(run, 10) == EXPT_RESULT_CLOSED;
		exit(ok ? 0 : 1); /* the exit hook must leave the parent's run alone */
	}
	status = wait_child();
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expt_log_metric(run, "p", 3, 2);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 2);
	assert_int_equal(count_type(lines, "finish"), 1);
	json_decref(lines);
	free(jsonl);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_standalone_store_jsonl),
	    cmocka_unit_test(test_failing_sink_loses_nothing_for_others),
	    cmocka_unit_test(test_sink_recovers),
	    cmocka_unit_test(test_bad_store),
	    cmocka_unit_test(test_queue_policy),
	    cmocka_unit_test(test_threads),
	    cmocka_unit_test(test_invalid),
	    cmocka_unit_test(test_environment_and_attach),
	    cmocka_unit_test(test_exit_hook),
	    cmocka_unit_test(test_sigterm_default),
	    cmocka_unit_test(test_sigterm_chains),
	    cmocka_unit_test(test_fork),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
