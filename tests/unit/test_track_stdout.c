/* Metrics that travel with the output: without a reachable store the stdout sink takes the
 * store sink's place, and its lines read back (expt_capture_parse) to exactly what was logged;
 * images, histograms and artifacts land in the output directory. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "expt.h"
#include "track_fixture.h"
#include "track/capture.h"

static const unsigned char tiny_png[40] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0,
					   0,	 0,   13,  'I', 'H',  'D',  'R',  0,	0,
					   0,	 2,   0,   0,	0,    1,    8,	  2};

struct reports {
	pthread_mutex_t mu;
	int n;
	char all[4096];
};

static void on_report(const char *sink, const char *msg, void *payload)
{
	struct reports *r = payload;

	pthread_mutex_lock(&r->mu);
	r->n++;
	snprintf(r->all + strlen(r->all), sizeof(r->all) - strlen(r->all), "%s\n", msg);
	pthread_mutex_unlock(&r->mu);
}

/* The process's stdout goes to path until stop_capture. */
static int saved_stdout = -1;

static void start_capture(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	fflush(stdout);
	saved_stdout = dup(1);
	assert_true(saved_stdout >= 0);
	assert_int_equal(dup2(fd, 1), 1);
	close(fd);
}

static void stop_capture(void)
{
	fflush(stdout);
	assert_int_equal(dup2(saved_stdout, 1), 1);
	close(saved_stdout);
	saved_stdout = -1;
}

/* Every line of path, parsed with prefix: records into the counters, the rest counted. */
struct seen {
	int metrics, params, tags, other;
	char keys[64][64];
	double values[64];
	int64_t steps[64];
	char pkey[64], pval[256], tkey[64], tval[256];
};

static void read_lines(const char *path, const char *prefix, struct seen *s)
{
	struct expt_capture *cap = malloc(sizeof(*cap));
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap_len = 0;
	ssize_t n;

	assert_non_null(f);
	memset(s, 0, sizeof(*s));
	while ((n = getline(&line, &cap_len, f)) > 0) {
		int rc = expt_capture_parse(prefix, line, (size_t)n, cap);
		if (rc < 0)
			fail_msg("malformed line: %s", line);
		switch (cap->kind) {
		case EXPT_CAPTURE_METRICS:
			assert_int_equal(rc, 1);
			if (s->metrics < 64) {
				snprintf(s->keys[s->metrics], 64, "%s", cap->points[0].key);
				s->values[s->metrics] = cap->points[0].value;
				s->steps[s->metrics] = cap->step;
			}
			assert_true(cap->time_ms > 0);
			s->metrics++;
			break;
		case EXPT_CAPTURE_PARAM:
			snprintf(s->pkey, sizeof(s->pkey), "%s", cap->key);
			snprintf(s->pval, sizeof(s->pval), "%s", cap->value);
			s->params++;
			break;
		case EXPT_CAPTURE_TAG:
			snprintf(s->tkey, sizeof(s->tkey), "%s", cap->key);
			snprintf(s->tval, sizeof(s->tval), "%s", cap->value);
			s->tags++;
			break;
		default:
			s->other++;
		}
	}
	free(line);
	fclose(f);
	free(cap);
}

/* Inside a run (EXPT_RUN_ID) with no EXPT_STORE and no store above the cwd: the default sinks
 * ("store") become the stdout sink, said once; everything reads back. */
static void test_no_store_falls_back(void **state)
{
	char *dir = fresh_dir(), *out = expt_xasprintf("%s/out", dir);
	char *captured = expt_xasprintf("%s/stdout.txt", dir),
	     *art = expt_xasprintf("%s/a.bin", dir);
	char *path, cwd[4096];
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_sink_stats st;
	struct expt_error e;
	struct seen s;
	expt_run *run;
	double hist[] = {1, 2, 3};
	struct stat sb;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	close(open(art, O_CREAT | O_WRONLY, 0644));
	setenv("EXPT_RUN_ID", "pod-1", 1);
	setenv("EXPT_OUTPUT_DIR", out, 1);
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS;
	start_capture(captured);
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_int_equal(expt_run_sink_count(run), 1);
	assert_int_equal(expt_run_sink_stats(run, 0, &st), 0);
	assert_string_equal(st.name, "stdout");
	assert_int_equal(expt_log_metric(run, "loss", 0.1, 0), 0);
	assert_int_equal(expt_log_metric(run, "val loss=", NAN, 1), 0);
	assert_int_equal(expt_log_metric(run, "loss", -0.0, -1), 0);
	assert_int_equal(expt_log_param(run, "cfg", "a b\nc=\"d\""), 0);
	assert_int_equal(expt_set_tag(run, "phase", "eval"), 0);
	assert_int_equal(expt_log_image(run, "img", tiny_png, sizeof(tiny_png), 1), 0);
	assert_int_equal(expt_log_histogram(run, "w", hist, 3, 2), 0);
	assert_int_equal(expt_log_artifact(run, art, NULL, &e), 0);
	assert_int_equal(expt_run_flush(run, 5000), EXPT_RESULT_OK);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	stop_capture();
	assert_int_equal(chdir(cwd), 0);
	unsetenv("EXPT_RUN_ID");
	unsetenv("EXPT_OUTPUT_DIR");

	assert_int_equal(rep.n, 1);
	assert_non_null(strstr(rep.all, "no store"));
	assert_non_null(strstr(rep.all, "stdout"));
	read_lines(captured, NULL, &s);
	assert_int_equal(s.metrics, 3);
	assert_int_equal(s.params, 1);
	assert_int_equal(s.tags, 1);
	assert_int_equal(s.other, 0);
	assert_string_equal(s.keys[0], "loss");
	assert_true(s.values[0] == 0.1 && s.steps[0] == 0);
	assert_string_equal(s.keys[1], "val loss=");
	assert_true(isnan(s.values[1]) && s.steps[1] == 1);
	assert_true(s.values[2] == 0 && signbit(s.values[2]) && s.steps[2] == -1);
	assert_string_equal(s.pkey, "cfg");
	assert_string_equal(s.pval, "a b\nc=\"d\"");
	assert_string_equal(s.tkey, "phase");
	assert_string_equal(s.tval, "eval");
	/* Files go to the output directory. */
	path = expt_xasprintf("%s/artifacts/images/img/step-1-0.png", out);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, sizeof(tiny_png));
	free(path);
	path = expt_xasprintf("%s/artifacts/a.bin", out);
	assert_int_equal(stat(path, &sb), 0);
	free(path);
	path = expt_xasprintf("%s/histograms.jsonl", out);
	{
		json_t *h = read_jsonl(path);
		assert_int_equal(json_array_size(h), 1);
		assert_string_equal(json_string_value(json_object_get(
					json_object_get(json_array_get(h, 0), "histogram"), "key")),
				    "w");
		json_decref(h);
	}
	free(path);
	free(art);
	free(captured);
	free(out);
	free(dir);
}

/* A store that cannot be opened, sinks "store,stdout": one stdout sink, each line once; the
 * prefix follows $EXPT_METRICS_PREFIX. */
static void test_bad_store_one_stdout_sink(void **state)
{
	char *dir = fresh_dir(), *db = expt_xasprintf("%s/expt.db", dir);
	char *captured = expt_xasprintf("%s/stdout.txt", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_sink_stats st;
	struct expt_error e;
	struct seen s;
	expt_run *run;
	FILE *f = fopen(db, "w");

	assert_non_null(f);
	for (int i = 0; i < 100; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	setenv("EXPT_METRICS_PREFIX", "METRIC", 1);
	o.run_id = "r-1";
	o.store = db;
	o.sinks = "store,stdout";
	o.output_dir = dir;
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS;
	start_capture(captured);
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_int_equal(expt_run_sink_count(run), 1);
	assert_int_equal(expt_run_sink_stats(run, 0, &st), 0);
	assert_string_equal(st.name, "stdout");
	for (int i = 0; i < 10; i++)
		assert_int_equal(expt_log_metric(run, "x", i, i), 0);
	assert_int_equal(expt_log_param(run, "p", ""), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	stop_capture();
	unsetenv("EXPT_METRICS_PREFIX");
	assert_int_equal(rep.n, 1);
	read_lines(captured, "METRIC", &s);
	assert_int_equal(s.metrics, 10);
	assert_int_equal(s.params, 1);
	assert_int_equal(s.other, 0);
	for (int i = 0; i < 10; i++)
		assert_true(s.values[i] == i && s.steps[i] == i);
	assert_string_equal(s.pval, "");
	free(captured);
	free(db);
	free(dir);
}

/* A standalone run whose store cannot be created: stdout (id from time and pid); with
 * EXPT_RUN_NO_STDOUT_FALLBACK, the open fails as before. */
static void test_standalone_fallback_and_opt_out(void **state)
{
	char *dir = fresh_dir(), *blocker = expt_xasprintf("%s/file", dir);
	char *db = expt_xasprintf("%s/file/sub/expt.db", dir);
	char *captured = expt_xasprintf("%s/stdout.txt", dir);
	struct reports rep = {PTHREAD_MUTEX_INITIALIZER, 0, ""};
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	struct seen s;
	expt_run *run;

	close(open(blocker, O_CREAT | O_WRONLY, 0644));
	o.store = db;
	o.experiment = "solo";
	o.output_dir = dir;
	o.report = on_report;
	o.payload = &rep;
	o.flags = EXPT_RUN_NO_HOOKS | EXPT_RUN_NO_STDOUT_FALLBACK;
	assert_int_equal(expt_run_open(&run, &o, &e), EXPT_RESULT_STORE);
	assert_null(run);
	assert_int_equal(rep.n, 0);

	o.flags = EXPT_RUN_NO_HOOKS;
	start_capture(captured);
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	assert_int_equal(strncmp(expt_run_id(run), "solo-", 5), 0);
	assert_int_equal(expt_log_metric(run, "m", 2.5, 7), 0);
	assert_int_equal(expt_set_tag(run, "t", "v w"), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	stop_capture();
	assert_int_equal(rep.n, 1);
	read_lines(captured, NULL, &s);
	assert_int_equal(s.metrics, 1);
	assert_true(s.values[0] == 2.5 && s.steps[0] == 7);
	assert_int_equal(s.tags, 1);
	assert_string_equal(s.tval, "v w");
	free(captured);
	free(db);
	free(blocker);
	free(dir);
}

/* The program's own threads print to stdout while the sink writes: every line is whole,
 * either the program's or a record that parses. */
struct printer {
	int stop;
	long lines;
};

static void *print_loop(void *arg)
{
	struct printer *p = arg;
	const char line[] = "the program says something fairly long on its own stdout line\n";

	while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED) && p->lines < 50000) {
		if (write(1, line, sizeof(line) - 1) == (ssize_t)sizeof(line) - 1)
			p->lines++;
	}
	return NULL;
}

static void test_lines_stay_whole(void **state)
{
	char *dir = fresh_dir(), *captured = expt_xasprintf("%s/stdout.txt", dir);
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_capture *cap = malloc(sizeof(*cap));
	struct printer pr = {0, 0};
	struct expt_error e;
	pthread_t th[2];
	expt_run *run;
	FILE *f;
	char *line = NULL;
	size_t len = 0;
	long metrics = 0, program = 0;
	ssize_t n;

	o.run_id = "w-1";
	o.sinks = "stdout";
	o.output_dir = dir;
	o.flags = EXPT_RUN_NO_HOOKS;
	start_capture(captured);
	assert_int_equal(expt_run_open(&run, &o, &e), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, print_loop, &pr), 0);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(expt_log_metric(run, "a key with spaces", i * 0.5, i), 0);
	assert_int_equal(expt_run_finish(run, NULL, &e), 0);
	__atomic_store_n(&pr.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	stop_capture();
	f = fopen(captured, "r");
	assert_non_null(f);
	while ((n = getline(&line, &len, f)) > 0) {
		int rc = expt_capture_parse(NULL, line, (size_t)n, cap);
		if (rc == 1) {
			assert_true(cap->points[0].value == (double)cap->step * 0.5);
			metrics++;
		} else if (rc == 0 && !strncmp(line, "the program says", 16)) {
			program++;
		} else {
			fail_msg("torn line: %s", line);
		}
	}
	assert_int_equal(metrics, 20000);
	assert_true(program > 0);
	free(line);
	fclose(f);
	free(cap);
	free(captured);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_store_falls_back),
	    cmocka_unit_test(test_bad_store_one_stdout_sink),
	    cmocka_unit_test(test_standalone_fallback_and_opt_out),
	    cmocka_unit_test(test_lines_stay_whole),
	};

	(void)count_type; /* the fixture's, unused here */
	return cmocka_run_group_tests(tests, setup, teardown);
}
