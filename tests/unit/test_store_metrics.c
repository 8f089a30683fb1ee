/* Unit tests of the store's metrics: summaries across batches (last by step then time, min, max,
 * count, NaN), history order, chunking of large batches, key interning across connections. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "util/util.h"

struct fx {
	char dir[64];
	char *db;
	struct expt_store *st;
};

static int setup(void **state)
{
	struct fx *f = expt_xcalloc(1, sizeof(*f));
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_run_new runs[2] = {{0}};

	snprintf(f->dir, sizeof(f->dir), "/tmp/expt-test-metrics-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->db = expt_xasprintf("%s/expt.db", f->dir);
	if (expt_store_open(&f->st, f->db, &err) ||
	    expt_store_create_runs(f->st, "m", "local", NULL, runs, 2, &l, &err)) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	expt_run_list_release(&l);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;

	expt_store_close(f->st);
	expt_remove_tree(f->dir, &err);
	free(f->db);
	free(f);
	return 0;
}

static const struct expt_metric_summary *find(const struct expt_metric_summaries *s,
					      const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].key, key))
			return &s->v[i];
	fail_msg("no summary for %s", key);
	return NULL;
}

static void add(struct expt_store *st, const char *run, const struct expt_metric_point *p, size_t n)
{
	struct expt_err err = EXPT_ERR_INIT;

	if (expt_store_add_metrics(st, run, p, n, &err))
		fail_msg("add_metrics: %s", err.msg);
}

static void test_summaries_across_batches(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_summaries s = {0};
	const struct expt_metric_summary *m;
	struct expt_metric_point b1[20];
	int i;

	/* batch 1: loss falls 10 → 1 over steps 0..9, acc rises, interleaved */
	for (i = 0; i < 10; i++) {
		b1[2 * i] = (struct expt_metric_point){"loss", 10.0 - i, i, 1000 + i};
		b1[2 * i + 1] = (struct expt_metric_point){"acc", i / 10.0, i, 1000 + i};
	}
	add(f->st, "m-1", b1, 20);
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.v[0].key, "acc"); /* by name */
	assert_null(s.v[0].run_id);
	m = find(&s, "loss");
	assert_true(m->last == 1.0);
	assert_int_equal(m->last_step, 9);
	assert_true(m->min == 1.0 && m->max == 10.0);
	assert_int_equal(m->count, 10);
	expt_metric_summaries_release(&s);

	/* batch 2: an older step (does not become last, but is the new max), then step 9 again
	 * at a later time (becomes last), and a new key */
	{
		struct expt_metric_point b2[] = {
		    {"loss", 100.0, 5, 2000},
		    {"loss", 0.5, 9, 2001},
		    {"lr", 0.1, -1, 2002},
		};
		add(f->st, "m-1", b2, 3);
	}
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	assert_int_equal(s.n, 3);
	m = find(&s, "loss");
	assert_true(m->last == 0.5);
	assert_int_equal(m->last_step, 9);
	assert_true(m->min == 0.5 && m->max == 100.0);
	assert_int_equal(m->count, 12);
	m = find(&s, "lr");
	assert_true(m->last == 0.1);
	assert_int_equal(m->last_step, -1);
	expt_metric_summaries_release(&s);

	/* batch 3: same step 9 but an earlier time does not win; a NaN is counted, kept as last
	 * when newest, and skipped by min/max; a key with only NaNs */
	{
		struct expt_metric_point b3[] = {
		    {"loss", 7.0, 9, 1500},
		    {"acc", NAN, 20, 3000},
		    {"nan", NAN, 1, 3000},
		    {"nan", NAN, 2, 3001},
		};
		add(f->st, "m-1", b3, 4);
	}
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	m = find(&s, "loss");
	assert_true(m->last == 0.5);
	assert_int_equal(m->count, 13);
	m = find(&s, "acc");
	assert_true(isnan(m->last));
	assert_int_equal(m->last_step, 20);
	assert_true(m->min == 0.0 && fabs(m->max - 0.9) < 1e-12);
	assert_int_equal(m->count, 11);
	m = find(&s, "nan");
	assert_true(isnan(m->min) && isnan(m->max) && isnan(m->last));
	assert_int_equal(m->count, 2);
	assert_int_equal(m->last_step, 2);
	expt_metric_summaries_release(&s);

	/* the other run saw nothing */
	assert_int_equal(expt_store_metric_summaries(f->st, "m-2", &s, &err), 0);
	assert_int_equal(s.n, 0);
}

static void test_history_order(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_row *rows = NULL;
	size_t n = 0;
	struct expt_metric_point a[] = {
	    {"loss", 3.0, 2, 30}, {"acc", 1.0, 0, 1}, {"loss", 1.0, 0, 10}, {"loss", 2.0, 1, 20}};
	struct expt_metric_point b[] = {{"loss", 2.5, 1, 5}, {"loss", 2.6, 1, 5}};

	add(f->st, "m-1", a, 4);
	add(f->st, "m-1", b, 2);
	assert_int_equal(expt_store_metric_history(f->st, "m-1", "loss", &rows, &n, &err), 0);
	assert_int_equal(n, 5);
	/* step, then time, then insertion */
	assert_true(rows[0].value == 1.0 && rows[0].step == 0 && rows[0].time_ms == 10);
	assert_true(rows[1].value == 2.5 && rows[1].time_ms == 5);
	assert_true(rows[2].value == 2.6);
	assert_true(rows[3].value == 2.0);
	assert_true(rows[4].value == 3.0 && rows[4].step == 2);
	free(rows);

	assert_int_equal(expt_store_metric_history(f->st, "m-1", "missing", &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_null(rows);
	assert_int_equal(expt_store_metric_history(f->st, "nope-1", "loss", &rows, &n, &err),
			 EXPT_ENOTFOUND);
}

static void test_large_batch(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_summaries s = {0};
	struct expt_metric_row *rows = NULL;
	enum { N = 10000 };
	struct expt_metric_point *p = expt_xcalloc(N, sizeof(*p));
	size_t n = 0, i;

	/* more points of one key than fit one chunk, steps in reverse */
	for (i = 0; i < N; i++)
		p[i] = (struct expt_metric_point){"x", (double)i, (int64_t)(N - i), (int64_t)i};
	add(f->st, "m-2", p, N);
	assert_int_equal(expt_store_metric_history(f->st, "m-2", "x", &rows, &n, &err), 0);
	assert_int_equal(n, N);
	for (i = 0; i < N; i++) {
		assert_int_equal(rows[i].step, (int64_t)i + 1);
		assert_true(rows[i].value == (double)(N - 1 - i));
	}
	free(rows);
	assert_int_equal(expt_store_metric_summaries(f->st, "m-2", &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.v[0].count, N);
	assert_int_equal(s.v[0].last_step, N);
	assert_true(s.v[0].last == 0.0);
	assert_true(s.v[0].max == N - 1);
	expt_metric_summaries_release(&s);
	free(p);
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_summaries s = {0};
	struct expt_metric_point ok = {"a", 1, 0, 0};
	struct expt_metric_point bad[] = {{"a", 1, 0, 0}, {"", 2, 1, 0}};
	struct expt_metric_point nokey[] = {{"fresh-key", 1, 0, 0}, {NULL, 2, 1, 0}};

	assert_int_equal(expt_store_add_metrics(f->st, "nope-1", &ok, 1, &err), EXPT_ENOTFOUND);
	assert_int_equal(expt_store_add_metrics(f->st, "m-1", bad, 2, &err), EXPT_EUSAGE);
	assert_string_equal(err.msg, "metric point 2 has no key");
	/* rolled back whole, including the key interned in that transaction */
	assert_int_equal(expt_store_add_metrics(f->st, "m-1", nokey, 2, &err), EXPT_EUSAGE);
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(expt_store_add_metrics(f->st, "m-1", NULL, 0, &err), 0);
	/* the cache forgot the rolled back key: using it again interns it for real */
	add(f->st, "m-1", nokey, 1);
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.v[0].key, "fresh-key");
	expt_metric_summaries_release(&s);
	assert_int_equal(expt_store_metric_summaries(f->st, "nope-1", &s, &err), EXPT_ENOTFOUND);
}

static void test_two_connections(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_store *other = NULL;
	struct expt_metric_summaries s = {0};
	struct expt_metric_point p1 = {"shared", 1.0, 1, 1}, p2 = {"shared", 2.0, 2, 2};
	struct expt_metric_point q = {"only-other", 5.0, 0, 0};

	assert_int_equal(expt_store_open(&other, f->db, &err), 0);
	add(f->st, "m-1", &p1, 1);
	add(other, "m-1", &q, 1);
	add(other, "m-1", &p2, 1); /* interned by the first connection, found by the second */
	add(f->st, "m-1", &q, 1);  /* and the other way round */
	assert_int_equal(expt_store_metric_summaries(f->st, "m-1", &s, &err), 0);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.v[0].key, "only-other");
	assert_int_equal(s.v[0].count, 2);
	assert_string_equal(s.v[1].key, "shared");
	assert_int_equal(s.v[1].count, 2);
	assert_true(s.v[1].last == 2.0);
	expt_metric_summaries_release(&s);
	expt_store_close(other);
}

static void test_experiment_summaries(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_metric_summaries s = {0};
	struct expt_run_list l = {0};
	struct expt_run_new one = {0};
	struct expt_metric_point a[] = {{"loss", 1.0, 0, 0}, {"acc", 0.1, 0, 0}};
	struct expt_metric_point b[] = {{"acc", 0.2, 0, 0}, {"loss", 2.0, 0, 0}};
	struct expt_metric_point c = {"loss", 9.0, 0, 0};

	assert_int_equal(expt_store_create_runs(f->st, "other", "local", NULL, &one, 1, &l, &err),
			 0);
	expt_run_list_release(&l);
	add(f->st, "m-2", b, 2);
	add(f->st, "m-1", a, 2);
	add(f->st, "other-1", &c, 1);
	assert_int_equal(expt_store_experiment_metric_summaries(f->st, "m", &s, &err), 0);
	assert_int_equal(s.n, 4);
	/* by run, then by key in the order keys were first logged in the store */
	assert_string_equal(s.v[0].run_id, "m-1");
	assert_string_equal(s.v[0].key, "acc");
	assert_string_equal(s.v[1].run_id, "m-1");
	assert_string_equal(s.v[1].key, "loss");
	assert_true(s.v[1].last == 1.0);
	assert_string_equal(s.v[2].run_id, "m-2");
	assert_string_equal(s.v[2].key, "acc");
	assert_string_equal(s.v[3].key, "loss");
	assert_true(s.v[3].last == 2.0);
	expt_metric_summaries_release(&s);
	assert_int_equal(expt_store_experiment_metric_summaries(f->st, NULL, &s, &err), 0);
	assert_int_equal(s.n, 5);
	assert_string_equal(s.v[4].run_id, "other-1");
	expt_metric_summaries_release(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_summaries_across_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_history_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_experiment_summaries, setup, teardown),
	};

	return cmocka_run_group_tests_name("store_metrics", tests, NULL, NULL);
}
