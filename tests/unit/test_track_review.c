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
#include <sys/wait.h>
#include <unistd.h>

#include "expt.h"
#include "util/util.h"

static char tmp_root[] = "/tmp/expt-track-review-XXXXXX";
static int case_no;
static int in_child;

/* LeakSanitizer calls this at exit: a forked child exits in the middle of a test, holding the
 * parent's test memory, which is not a leak. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return in_child;
}

static char *fresh_dir(void)
{
	char *d = expt_xasprintf("%s/t%d", tmp_root, ++case_no);
	struct expt_err err = EXPT_ERR_INIT;

	assert_int_equal(expt_mkdirs(d, &err), 0);
	return d;
}

static int setup(void **state)
{
	static const char *const vars[] = {
	    "EXPT_RUN_ID", "EXPT_EXPERIMENT",	   "EXPT_OUTPUT_DIR",	"EXPT_PARAMS_FILE",
	    "EXPT_STORE",  "EXPT_SINKS",	   "EXPT_ARTIFACT_DIR", "EXPT_TRACKING_URI",
	    "EXPT_JSONL",  "EXPT_TENSORBOARD_DIR", "EXPT_HOME"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	return expt_remove_tree(tmp_root, &err);
}

static json_t *read_jsonl(const char *path)
{
	json_t *arr = json_array();
	FILE *f = fopen(path, "r");
	char line[1 << 16];

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		json_error_t jerr;
		json_t *v = json_loads(line, 0, &jerr);
		if (!v)
			fail_msg("bad JSONL line: %s (%s)", line, jerr.text);
		json_array_append_new(arr, v);
	}
	fclose(f);
	return arr;
}

static size_t count_type(json_t *arr, const char *type)
{
	size_t n = 0, i;
	json_t *v;

	json_array_foreach(arr, i, v)
	{
		if (!strcmp(json_string_value(json_object_get(v, "type")), type))
			n++;
	}
	return n;
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
	while (!c.started)
		usleep(100);
	usleep(5000);
	assert_int_equal(expt_run_finish(c.run, NULL, &e), 0);
	/* finish returned only once the call inside was out (it freed the run after). */
	assert_true(c.done);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_finish_waits_for_calls_inside),
	    cmocka_unit_test(test_fork_without_hooks),
	    cmocka_unit_test(test_recovers_at_finish),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
