/* Feeding a run's output into the store exactly once: the same stream read twice, two readers
 * interleaved, a reader that saw lines another one already fed. Each point, param and tag ends
 * up in the store once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"
#include "track/capture.h"
#include "track/ingest.h"
#include "util/util.h"

struct fx {
	char dir[64];
	struct expt_store *st;
	struct expt_buf stream; /* the run's stdout */
	size_t nlines;
	int64_t starts[64]; /* where each line starts; starts[nlines] = end */
};

static int setup(void **state)
{
	struct fx *f = expt_xcalloc(1, sizeof(*f));
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_run_new one = {0};
	char *db;

	snprintf(f->dir, sizeof(f->dir), "/tmp/expt-test-ingest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	db = expt_xasprintf("%s/expt.db", f->dir);
	if (expt_store_open(&f->st, db, &err) ||
	    expt_store_create_runs(f->st, "ing", "local", NULL, &one, 1, &l, &err))
		return -1;
	free(db);
	expt_run_list_release(&l);
	/* A stream as a run writes it: its own lines, metric lines, and the stdout sink's
	 * records (one param with a value that needs quoting). */
	expt_buf_adds(&f->stream, "epoch 1 starting\n");
	expt_buf_adds(&f->stream, "expt: loss=0.5 acc=0.7 step=1\n");
	expt_capture_format_text(&f->stream, NULL, EXPT_CAPTURE_PARAM, "notes", "a b=c\n\"d\"");
	expt_capture_format_metric(&f->stream, NULL, "lr", 0.1, 1, 1700000000000);
	expt_buf_adds(&f->stream, "expt: loss=0.25 acc=0.8 step=2\n");
	expt_capture_format_text(&f->stream, NULL, EXPT_CAPTURE_TAG, "phase", "train");
	expt_buf_adds(&f->stream, "expt: loss=0.125 step=3\n");
	expt_buf_adds(&f->stream, "done\n");
	for (const char *p = f->stream.buf; *p;) {
		const char *nl = strchr(p, '\n');
		f->starts[f->nlines++] = p - f->stream.buf;
		p = nl + 1;
	}
	f->starts[f->nlines] = (int64_t)f->stream.len;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;

	expt_store_close(f->st);
	expt_remove_tree(f->dir, &err);
	expt_buf_release(&f->stream);
	free(f);
	return 0;
}

/* Gives lines [from, to) of the stream to g. */
static void feed(struct fx *f, struct expt_ingest *g, size_t from, size_t to)
{
	struct expt_err err = EXPT_ERR_INIT;

	for (size_t i = from; i < to; i++) {
		int64_t s = f->starts[i], e = f->starts[i + 1];
		assert_int_equal(
		    expt_ingest_line(g, f->stream.buf + s, (size_t)(e - s - 1), s, e, &err), 0);
	}
}

static void flush(struct expt_ingest *g)
{
	struct expt_err err = EXPT_ERR_INIT;

	if (expt_ingest_flush(g, &err))
		fail_msg("flush: %s", err.msg);
}

/* Everything in the store exactly once. */
static void check_once(struct fx *f)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_row *rows = NULL;
	struct expt_kv_rows kv = {0};
	int64_t done;
	size_t n = 0;

	assert_int_equal(expt_store_metric_history(f->st, "ing-1", "loss", &rows, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_true(rows[0].value == 0.5 && rows[2].value == 0.125 && rows[2].step == 3);
	free(rows);
	assert_int_equal(expt_store_metric_history(f->st, "ing-1", "acc", &rows, &n, &err), 0);
	assert_int_equal(n, 2);
	free(rows);
	assert_int_equal(expt_store_metric_history(f->st, "ing-1", "lr", &rows, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].time_ms, 1700000000000);
	free(rows);
	assert_int_equal(expt_store_get_params(f->st, "ing-1", &kv, &err), 0);
	assert_int_equal(kv.n, 1);
	assert_string_equal(kv.values[0], "a b=c\n\"d\"");
	expt_kv_rows_release(&kv);
	assert_int_equal(expt_store_get_tags(f->st, "ing-1", &kv, &err), 0);
	assert_int_equal(kv.n, 1);
	assert_string_equal(kv.values[0], "train");
	expt_kv_rows_release(&kv);
	assert_int_equal(expt_store_get_ingested(f->st, "ing-1", &done, &err), 0);
	assert_int_equal(done, (int64_t)f->stream.len);
}

static void test_read_twice(void **state)
{
	struct fx *f = *state;

	for (int k = 0; k < 2; k++) {
		struct expt_ingest *g = expt_ingest_new(f->st, "ing-1", NULL, 1);
		feed(f, g, 0, f->nlines);
		flush(g);
		expt_ingest_free(g);
	}
	check_once(f);
}

static void test_interleaved(void **state)
{
	struct fx *f = *state;
	struct expt_ingest *a = expt_ingest_new(f->st, "ing-1", NULL, 1);
	struct expt_ingest *b = expt_ingest_new(f->st, "ing-1", NULL, 1);

	feed(f, a, 0, 3);
	flush(a); /* a fed the first three lines */
	feed(f, b, 0, f->nlines);
	feed(f, a, 3, 5); /* a read on, b flushes first */
	flush(b);
	flush(a); /* everything a holds is before b's position now */
	feed(f, a, 5, f->nlines);
	flush(a);
	expt_ingest_free(a);
	expt_ingest_free(b);
	check_once(f);
}

/* A run whose store sink wrote its records itself: only plain metric lines are fed. */
static void test_records_off(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_ingest *g = expt_ingest_new(f->st, "ing-1", NULL, 0);
	struct expt_kv_rows kv = {0};
	struct expt_metric_row *rows = NULL;
	size_t n = 0;

	feed(f, g, 0, f->nlines);
	flush(g);
	expt_ingest_free(g);
	assert_int_equal(expt_store_metric_history(f->st, "ing-1", "loss", &rows, &n, &err), 0);
	assert_int_equal(n, 3);
	free(rows);
	assert_int_equal(expt_store_metric_history(f->st, "ing-1", "lr", &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	free(rows);
	assert_int_equal(expt_store_get_params(f->st, "ing-1", &kv, &err), 0);
	assert_int_equal(kv.n, 0);
	expt_kv_rows_release(&kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_read_twice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interleaved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_records_off, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
