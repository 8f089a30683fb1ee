/* The library never kills its host: a torture test in the manner of SQLite's and curl's. For
 * N = 1, 2, 3, ... a scenario across the public API runs with the N-th allocation failing
 * (util/mem.h's test hook), until a scenario runs with no failure left to inject. Each time:
 * no crash, every call answers with success or an error it documents (EXPT_RESULT_NOMEM where
 * the caller's own call ran out), and, under ASan (make test), no leak.
 *
 * The store (src/store/) allocates with the same family, so its failure paths are failed here
 * too: a store that exists must never be replaced by the stdout fallback for want of memory.
 * Not covered: SQLite, jansson and libfyaml allocate with their own malloc calls; the hook
 * cannot fail those allocations. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "expt.h"
#include "track_fixture.h"

static const unsigned char tiny_png[40] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0,
					   0,	 0,   13,  'I', 'H',  'D',  'R',  0,	0,
					   0,	 2,   0,   0,	0,    1,    8,	  2};

struct reports {
	int n;	      /* reports of sink failures and recoveries */
	int fallback; /* of them, the store sink replaced by the stdout sink */
};

static void quiet(const char *sink, const char *msg, void *payload)
{
	struct reports *r = payload;

	r->n++;
	if (!strcmp(sink, "store") && !strncmp(msg, "no store (", 10))
		r->fallback++;
}

struct tally {
	int nomem;   /* calls that answered EXPT_RESULT_NOMEM */
	int ok_runs; /* scenarios that ran through without an error at the API */
};

/* rc must be one of the allowed answers. */
static void expect(int rc, const char *call, unsigned long n, struct tally *t, int allowed)
{
	if (rc == EXPT_RESULT_NOMEM) {
		t->nomem++;
		return;
	}
	if (rc == EXPT_RESULT_OK || rc == allowed)
		return;
	fail_msg("failing allocation %lu: %s answered %d", n, call, rc);
}

/* One scenario: open a run with the given sinks, log one of everything, flush, finish.
 * Returns 1 when every call succeeded. */
static int scenario(const char *dir, const char *run_id, const char *sinks, unsigned long n,
		    struct tally *t)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	char *art = expt_xasprintf("%s/model.bin", dir), *store = expt_xasprintf("%s/expt.db", dir);
	/* An output directory per scenario: images never pile up under one key. */
	char *out_dir = expt_xasprintf("%s/out-%lu", dir, n);
	const char *keys[] = {"loss", "acc", "lr"};
	double vals[] = {0.5, 0.9, 1e-3}, hist[] = {1, 2, 2, 3, 5}, edges[] = {0, 1, 2},
	       counts[] = {3, 4};
	struct expt_error e;
	struct reports reports = {0, 0};
	int all_ok = 1, rc;
	expt_run *run = NULL;

	o.run_id = run_id;
	o.store = run_id ? NULL : store;
	o.experiment = "torture";
	o.sinks = sinks;
	o.output_dir = out_dir;
	o.report = quiet;
	o.payload = &reports;
	o.linger_ms = 1;
#define CALL(expr, allowed)                                                                        \
	do {                                                                                       \
		rc = (expr);                                                                       \
		all_ok &= rc == 0;                                                                 \
		expect(rc, #expr, n, t, allowed);                                                  \
	} while (0)

	rc = expt_run_open(&run, &o, &e);
	all_ok &= rc == 0;
	expect(rc, "expt_run_open", n, t, EXPT_RESULT_OK);
	if (rc) {
		assert_null(run);
		goto out;
	}
	/* The store exists and can be opened: running out of memory on the way is NOMEM, never
	 * a silent fallback to stdout (which would lose the run's data for the store). */
	if (!run_id && reports.fallback)
		fail_msg("failing allocation %lu: expt_run_open fell back to stdout", n);
	CALL(expt_log_param(run, "optimizer", "adam"), 0);
	CALL(expt_log_param(run, "bad utf8", "\xff\xfe value"), 0);
	CALL(expt_set_tag(run, "phase", "train"), 0);
	for (int step = 0; step < 3; step++) {
		CALL(expt_log_metric(run, "loss", 1.0 / (step + 1), step), 0);
		CALL(expt_log_metrics(run, 3, keys, vals, step, 0), 0);
	}
	CALL(expt_log_metric(run, "no step", 2.0, -1), 0);
	CALL(expt_log_artifact(run, art, "sub/model.bin", &e), 0);
	CALL(expt_log_image(run, "samples", tiny_png, sizeof(tiny_png), 1), 0);
	CALL(expt_log_image(run, "samples", tiny_png, sizeof(tiny_png), -1), 0);
	CALL(expt_log_histogram(run, "weights", hist, 5, 2), 0);
	CALL(expt_log_histogram_buckets(run, "latency", edges, counts, 2, -1), 0);
	CALL(expt_run_set_status(run, "succeeded"), 0);
	/* A sink that ran out of memory is failing until its retry: the flush says so. */
	CALL(expt_run_flush(run, 10000), EXPT_RESULT_INCOMPLETE);
	for (size_t i = 0; i < expt_run_sink_count(run); i++) {
		struct expt_sink_stats st;
		CALL(expt_run_sink_stats(run, i, &st), 0);
	}
	/* Its last try at finish may run out too: then finish counts what it missed. */
	CALL(expt_run_finish(run, NULL, &e), EXPT_RESULT_INCOMPLETE);
#undef CALL
	if (all_ok) {
		/* Every call said OK: then everything arrived (no silent loss). */
		char *path = expt_xasprintf("%s/metrics.jsonl", out_dir);
		json_t *lines = read_jsonl(path);
		if (count_type(lines, "param") != 2 || count_type(lines, "tag") != 1 ||
		    count_type(lines, "metric") != 13 || count_type(lines, "artifact") != 1 ||
		    count_type(lines, "image") != 2 || count_type(lines, "histogram") != 2 ||
		    count_type(lines, "finish") != 1)
			fail_msg("failing allocation %lu: every call succeeded, but %s misses data",
				 n, path);
		json_decref(lines);
		free(path);
	}
out:
	free(art);
	free(store);
	free(out_dir);
	return all_ok;
}

static void torture(const char *sinks, int attached)
{
	char *dir = fresh_dir(), *art = expt_xasprintf("%s/model.bin", dir);
	struct tally t = {0, 0};
	unsigned long n;
	int fd = open(art, O_CREAT | O_WRONLY, 0644), saved = -1, devnull = -1;
	char cwd[4096];

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "weights", 7), 7);
	close(fd);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	if (attached)
		assert_int_equal(chdir(dir), 0); /* no store above the cwd */
	/* The stdout sink's lines go nowhere (a store that fails to open for want of memory
	 * also falls back to it). */
	fflush(stdout);
	saved = dup(1);
	devnull = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && devnull >= 0);
	dup2(devnull, 1);
	for (n = 1;; n++) {
		char id[64];
		int ok, injected;

		snprintf(id, sizeof(id), "attached-%lu", n);
		expt_mem_fail_at(n);
		ok = scenario(dir, attached ? id : NULL, sinks, n, &t);
		injected = expt_mem_failed();
		expt_mem_fail_at(0);
		if (!injected) {
			/* Fewer than n allocations: the whole scenario ran without a failure. */
			if (!ok)
				fail_msg("nothing was injected at %lu, yet a call failed", n);
			break;
		}
		t.ok_runs += ok;
		if (n > 100000)
			fail_msg("no end to the allocations");
	}
	dup2(saved, 1);
	close(saved);
	close(devnull);
	if (attached)
		assert_int_equal(chdir(cwd), 0);
	print_message("sinks %s: %lu allocations failed in turn; %d calls answered "
		      "EXPT_RESULT_NOMEM; %d scenarios absorbed the failure in a sink's retry\n",
		      sinks, n - 1, t.nomem, t.ok_runs);
	/* The failures reached the caller as an error, not as a crash or a silent success. */
	assert_true(n > 20);
	assert_true(t.nomem > 0);
	free(art);
	free(dir);
}

/* A standalone run with the store, JSONL and TensorBoard sinks. */
static void test_every_allocation_fails_once(void **state)
{
	torture("store,jsonl,tensorboard", 0);
}

/* Inside a run with no store: the fallback to the stdout sink (and JSONL). */
static void test_every_allocation_fails_once_stdout(void **state)
{
	torture("store,jsonl", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_allocation_fails_once),
	    cmocka_unit_test(test_every_allocation_fails_once_stdout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
