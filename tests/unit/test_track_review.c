/* Regressions from the review of the logging API: finishing while other threads are inside the
 * library, runs without hooks in a forked child, sinks that recover at finish, records a sink can
 * never take, bad UTF-8, extreme histograms and the locale of the JSONL numbers. */
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
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <float.h>
#include <locale.h>
#include <math.h>

#include "expt.h"
#include "store/store.h"
#include "track/track.h"
#include "util/util.h"

#include "track_fixture.h"

static int in_child;

/* LeakSanitizer calls this at exit: a forked child exits in the middle of a test, holding the
 * parent's test memory, which is not a leak. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return in_child;
}

static void silent(const char *sink, const char *msg, void *payload)
{
	char *last = payload;

	if (last)
		snprintf(last, 1024, "%s", msg);
}

/* ---- 1: finish while another thread is inside the library ---- */

struct copier {
	expt_run *run;
	const char *path;
	volatile int started, done, rc;
};

static void *copy_artifact(void *p)
{
	struct copier *c = p;
	struct expt_error e;

	c->started = 1;
	c->rc = expt_log_artifact(c->run, c->path, "big.bin", &e);
	c->done = 1;
	return NULL;
}

static void test_finish_waits_for_calls_inside(void **state)
{
	char *dir = fresh_dir();
	char *big = expt_xasprintf("%s/big.bin", dir), *art = expt_xasprintf("%s/art", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	struct copier c = {0};
	pthread_t th;
	char *chunk = expt_xcalloc(1, 1 << 20);
	int fd;

	/* Big enough that the copy is still running when finish starts. */
	fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (int i = 0; i < 256; i++)
		assert_int_equal(write(fd, chunk, 1 << 20), 1 << 20);
	close(fd);
	free(chunk);
	o.run_id = "race-1";
	o.sinks = "";
	o.artifact_dir = art;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&c.run, &o, &e), 0);
	c.path = big;
	assert_int_equal(pthread_create(&th, NULL, copy_artifact, &c), 0);
	/* Wait until the call is really inside the library: its copy has begun writing. Setting a
	 * flag before the call is not enough: under load the thread may not have entered yet. */
	{
		char *dst = expt_xasprintf("%s/big.bin", art);
		struct stat st;
		for (int i = 0; i < 100000; i++) {
			if (!stat(dst, &st) && st.st_size > 0)
				break;
			usleep(100);
		}
		free(dst);
	}

	assert_int_equal(expt_run_finish(c.run, NULL, &e), 0);
	/* finish returned only once the call inside was out (it freed the run after): the copy,
	 * done inside the call, is complete. (c.done may still be 0: the thread sets it after the
	 * call returns, which can be later than finish under load.) */
	{
		char *dst = expt_xasprintf("%s/big.bin", art);
		struct stat st;
		assert_int_equal(stat(dst, &st), 0);
		assert_int_equal(st.st_size, 256 << 20);
		free(dst);
	}
	pthread_join(th, NULL);
	assert_true(c.rc == EXPT_RESULT_OK || c.rc == EXPT_RESULT_CLOSED);
	free(big);
	free(art);
	free(dir);
}

/* ---- 2: no hooks, then fork ---- */

static void test_fork_without_hooks(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines;
	pid_t pid;
	int status;

	o.run_id = "forky-2";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	expt_log_metric(run, "p", 1, 0);
	pid = fork();
	if (!pid) {
		in_child = 1;
		alarm(5); /* a hang (joining threads the child does not have) fails the test */
		int ok = expt_log_metric(run, "p", 2, 1) == EXPT_RESULT_CLOSED &&
			 expt_run_flush(run, -1) == EXPT_RESULT_CLOSED &&
			 expt_run_finish(run, NULL, &e) == EXPT_RESULT_CLOSED;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	expt_log_metric(run, "p", 3, 2);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 2);
	json_decref(lines);
	free(jsonl);
	free(dir);
}

/* ---- 3: a sink that never opened recovers at finish ---- */

static void test_recovers_at_finish(void **state)
{
	char *dir = fresh_dir();
	char *blocker = expt_xasprintf("%s/blocker", dir);
	char *jsonl = expt_xasprintf("%s/m.jsonl", blocker);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_sink_stats st;
	struct expt_error e;
	char last[1024] = "";
	expt_run *run;
	json_t *lines;
	FILE *f;

	/* A regular file where the JSONL file's directory should be: open fails. */
	f = fopen(blocker, "w");
	assert_non_null(f);
	fclose(f);
	o.run_id = "late-1";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	o.report = silent;
	o.payload = last;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(expt_log_metric(run, "x", i, i), 0);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_INCOMPLETE);
	assert_int_equal(expt_run_sink_stats(run, 0, &st), 0);
	assert_true(st.failing);
	assert_int_equal(unlink(blocker), 0);
	assert_int_equal(mkdir(blocker, 0755), 0);
	if (expt_run_finish(run, NULL, &e))
		fail_msg("finish: %s", e.message);
	lines = read_jsonl(jsonl);
	assert_int_equal(count_type(lines, "metric"), 10);
	assert_int_equal(count_type(lines, "finish"), 1);
	json_decref(lines);
	free(jsonl);
	free(blocker);
	free(dir);
}

/* ---- 4: records a sink can never take; images that share a key and step ---- */

static const unsigned char tiny_png[40] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0,
					   0,	 0,   13,  'I', 'H',  'D',  'R',  0,	0,
					   0,	 2,   0,   0,	0,    1,    8,	  2};

static size_t metric_points(const char *db, const char *run, const char *key)
{
	struct expt_store *st = NULL;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_row *rows = NULL;
	size_t n = 0;

	if (expt_store_open(&st, db, &err) ||
	    expt_store_metric_history(st, run, key, &rows, &n, &err))
		fail_msg("store %s: %s", db, err.msg);
	free(rows);
	expt_store_close(st);
	return n;
}

static size_t files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static expt_run *store_run(const char *db, const char *art, char *last)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;

	o.store = db;
	o.sinks = "store";
	o.artifact_dir = art;
	o.experiment = "img";
	o.flags = EXPT_RUN_NO_HOOKS;
	o.report = silent;
	o.payload = last;
	if (expt_run_open(&run, &o, &e))
		fail_msg("open: %s", e.message);
	return run;
}

static void test_long_image_key(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *art = expt_xasprintf("%s/art", dir);
	char key[301], last[1024] = "", *imgs;
	struct expt_error e;
	expt_run *run = store_run(db, art, last);
	char *id = expt_xstrdup(expt_run_id(run));

	memset(key, 'k', 300);
	key[300] = '\0';
	assert_int_equal(expt_log_image(run, key, tiny_png, sizeof(tiny_png), 1), 0);
	key[299] = 'j'; /* same long prefix, another key: another directory */
	assert_int_equal(expt_log_image(run, key, tiny_png, sizeof(tiny_png), 1), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(expt_log_metric(run, "after", i, i), 0);
	assert_int_equal(expt_run_flush(run, 10000), 0);
	if (expt_run_finish(run, NULL, &e))
		fail_msg("finish: %s", e.message);
	assert_int_equal(metric_points(db, id, "after"), 10);
	imgs = expt_xasprintf("%s/images", art);
	assert_int_equal(files_in(imgs), 2);
	free(imgs);
	free(id);
	free(db);
	free(art);
	free(dir);
}

static void test_rejected_record_is_skipped(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *art;
	struct expt_buf b = EXPT_BUF_INIT;
	char last[1024] = "";
	struct expt_error e;
	expt_run *run;
	char *id;

	/* An artifact directory too long for any path under it: images can never be written. */
	expt_buf_adds(&b, dir);
	while (b.len < 4200)
		expt_buf_adds(&b, "/dddddddddddddddddddddddddddddddd");
	art = expt_buf_detach(&b, NULL);
	run = store_run(db, art, last);
	id = expt_xstrdup(expt_run_id(run));
	assert_int_equal(expt_log_image(run, "img", tiny_png, sizeof(tiny_png), 1), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(expt_log_metric(run, "after", i, i), 0);
	/* The metrics behind the image are not held up. */
	assert_int_equal(expt_run_flush(run, 10000), 0);
	assert_non_null(strstr(last, "rejected"));
	assert_int_equal(expt_run_finish(run, NULL, &e), EXPT_RESULT_INCOMPLETE);
	assert_non_null(strstr(e.message, "1 entries rejected"));
	assert_int_equal(metric_points(db, id, "after"), 10);
	free(id);
	free(db);
	free(art);
	free(dir);
}

static void test_same_image_key_and_step_kept(void **state)
{
	char *dir = fresh_dir();
	char *db = expt_xasprintf("%s/expt.db", dir), *art = expt_xasprintf("%s/art", dir);
	char last[1024] = "", *imgs;
	struct expt_error e;
	expt_run *run = store_run(db, art, last);

	for (int i = 0; i < 3; i++)
		assert_int_equal(expt_log_image(run, "same", tiny_png, sizeof(tiny_png), 7), 0);
	if (expt_run_finish(run, NULL, &e))
		fail_msg("finish: %s", e.message);
	imgs = expt_xasprintf("%s/images/same", art);
	assert_int_equal(files_in(imgs), 3);
	free(imgs);
	free(db);
	free(art);
	free(dir);
}

/* ---- 5: keys must be UTF-8; values are made UTF-8 ---- */

static void test_utf8(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines, *v;
	size_t i;
	int seen = 0;

	o.run_id = "utf8-1";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_int_equal(expt_log_metric(run, "bad\xff", 1, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "over\xc0\xafong", 1, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "cut\xe2\x82", 1, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "surrogate\xed\xa0\x80", 1, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_param(run, "k\xfe", "v"), EXPT_RESULT_INVALID);
	assert_int_equal(expt_set_tag(run, "k\x80", "v"), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_image(run, "i\xff", tiny_png, sizeof(tiny_png), 0),
			 EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_histogram(run, "h\xff", NULL, 0, 0), EXPT_RESULT_INVALID);
	assert_int_equal(expt_log_metric(run, "\xce\xbb/\xe2\x82\xac/\xf0\x9f\x98\x80", 1, 0), 0);
	assert_int_equal(expt_log_param(run, "p",
					"a\xff"
					"b"),
			 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	lines = read_jsonl(jsonl); /* jansson refuses invalid UTF-8 */
	assert_int_equal(count_type(lines, "metric"), 1);
	json_array_foreach(lines, i, v)
	{
		if (!strcmp(json_string_value(json_object_get(v, "type")), "param")) {
			assert_string_equal(json_string_value(json_object_get(v, "value")),
					    "a\xef\xbf\xbd"
					    "b");
			seen = 1;
		}
	}
	assert_true(seen);
	json_decref(lines);
	free(jsonl);
	free(dir);
}

/* ---- 6: histograms of values spanning more than DBL_MAX ---- */

static void test_histogram_huge_range(void **state)
{
	const double v[] = {-DBL_MAX, DBL_MAX, 0, -1e308, 1e308};
	struct expt_rec *r = expt_rec_new();
	double total = 0;

	expt_histogram_values(r, v, 5, 30);
	assert_int_equal(r->nb, 30);
	assert_true(r->min == -DBL_MAX && r->max == DBL_MAX);
	for (size_t i = 0; i < r->nb; i++) {
		assert_true(isfinite(r->limits[i]));
		if (i)
			assert_true(r->limits[i] > r->limits[i - 1]);
		total += r->counts[i];
	}
	assert_true(total == 5);
	assert_true(r->counts[0] == 1 && r->counts[29] == 1);
	assert_true(r->counts[14] == 1); /* 0 is the limit between the halves */
	expt_rec_unref(r);
}

/* ---- 7: the program's locale does not change the JSONL numbers ---- */

static void test_locale_independent(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir), *locdir = expt_xasprintf("%s/loc", dir);
	char *cmd =
	    expt_xasprintf("localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1", locdir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run;
	json_t *lines, *v;
	char buf[32];
	size_t i, n = 0;

	mkdir(locdir, 0755);
	if (system(cmd) != 0)
		skip(); /* no localedef or no locale sources here */
	setenv("LOCPATH", locdir, 1);
	if (!setlocale(LC_ALL, "de_DE.UTF-8"))
		skip();
	snprintf(buf, sizeof(buf), "%g", 0.25);
	assert_string_equal(buf, "0,25"); /* the locale is in force for the program */
	o.run_id = "loc-1";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_int_equal(expt_log_metric(run, "x", 0.25, 1), 0);
	assert_int_equal(expt_log_metric(run, "y", 1e-300, 2), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	setlocale(LC_ALL, "C");
	unsetenv("LOCPATH");
	lines = read_jsonl(jsonl);
	json_array_foreach(lines, i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "type")), "metric"))
			continue;
		assert_true(json_is_real(json_object_get(v, "value")));
		n++;
	}
	assert_int_equal(n, 2);
	json_decref(lines);
	free(cmd);
	free(locdir);
	free(jsonl);
	free(dir);
}

/* ---- 10: SIGTERM while the run is being finished does not stall ---- */

static void test_sigterm_during_finish(void **state)
{
	char *dir = fresh_dir();
	char *fifo = expt_xasprintf("%s/m.jsonl", dir);
	int rfd, ready[2];
	char c, buf[65536];
	pid_t pid;
	int status;
	int64_t t0, t1;

	/* The JSONL sink writes into a FIFO nobody reads yet: finish blocks joining it. */
	assert_int_equal(mkfifo(fifo, 0644), 0);
	rfd = open(fifo, O_RDONLY | O_NONBLOCK);
	assert_true(rfd >= 0);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	if (!pid) {
		struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
		struct expt_error e;
		expt_run *run;
		in_child = 1;
		close(rfd);
		close(ready[0]);
		signal(SIGTERM, SIG_DFL);
		o.run_id = "term-1";
		o.sinks = "jsonl";
		o.jsonl_path = fifo;
		if (expt_run_open(&run, &o, &e))
			_exit(100);
		for (int i = 0; i < 20000; i++)
			expt_log_metric(run, "x", i, i);
		if (write(ready[1], "f", 1) != 1)
			_exit(101);
		expt_run_finish(run, NULL, &e);
		_exit(0); /* only if the signal never came */
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	usleep(200000); /* the child is in finish, its sink stuck on the full FIFO */
	t0 = expt_mono_ms();
	kill(pid, SIGTERM);
	/* Drain the FIFO so that nothing but the signal handling can hold the child. */
	for (;;) {
		ssize_t n = read(rfd, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				break;
			usleep(1000);
			continue;
		}
		/* EOF: the child closed its end (it died). */
		assert_int_equal(waitpid(pid, &status, 0), pid);
		break;
	}
	t1 = expt_mono_ms();
	close(rfd);
	close(ready[0]);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	/* It used to wait out the handler's 5 s bound. */
	if (t1 - t0 >= 3000)
		fail_msg("the child took %lld ms to die of SIGTERM", (long long)(t1 - t0));
	free(fifo);
	free(dir);
}

/* ---- 11: flush waits for what was logged before it, not for an empty queue ---- */

struct busy_logger {
	expt_run *run;
	volatile int stop;
	long n;
};

static void *log_forever(void *p)
{
	struct busy_logger *b = p;

	while (!b->stop) {
		expt_log_metric(b->run, "busy", (double)b->n, b->n);
		b->n++;
	}
	return NULL;
}

static void test_flush_while_another_thread_logs(void **state)
{
	char *dir = fresh_dir();
	char *jsonl = expt_xasprintf("%s/m.jsonl", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct busy_logger b = {0};
	struct expt_error e;
	pthread_t th;
	int64_t t0, took;
	int rc;

	o.run_id = "flush-1";
	o.sinks = "jsonl";
	o.jsonl_path = jsonl;
	o.flags = EXPT_RUN_NO_HOOKS;
	assert_int_equal(expt_run_open(&b.run, &o, &e), 0);
	assert_int_equal(pthread_create(&th, NULL, log_forever, &b), 0);
	while (b.n < 1000)
		usleep(100);
	t0 = expt_mono_ms();
	rc = expt_run_flush(b.run, 5000);
	took = expt_mono_ms() - t0;
	b.stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(rc, EXPT_RESULT_OK);
	assert_true(took < 4000);
	assert_int_equal(expt_run_finish(b.run, NULL, &e), 0);
	free(jsonl);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_finish_waits_for_calls_inside),
	    cmocka_unit_test(test_fork_without_hooks),
	    cmocka_unit_test(test_recovers_at_finish),
	    cmocka_unit_test(test_long_image_key),
	    cmocka_unit_test(test_rejected_record_is_skipped),
	    cmocka_unit_test(test_same_image_key_and_step_kept),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_histogram_huge_range),
	    cmocka_unit_test(test_locale_independent),
	    cmocka_unit_test(test_sigterm_during_finish),
	    cmocka_unit_test(test_flush_while_another_thread_logs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
