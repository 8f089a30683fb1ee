/* The stdout metric line parser, as a table: line -> points, step and texts, or the error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "track/capture.h"

struct want_point {
	const char *key;
	double value;
};

struct parse_case {
	const char *prefix; /* NULL: default */
	const char *line;
	int rc;
	int64_t step;
	struct want_point pts[4];
	const char *texts[4]; /* "key=value" */
};

static const struct parse_case cases[] = {
    /* not metric lines */
    {NULL, "", 0, -1, {{0}}, {0}},
    {NULL, "hello world", 0, -1, {{0}}, {0}},
    {NULL, "loss=0.3", 0, -1, {{0}}, {0}},
    {NULL, "exp: loss=1", 0, -1, {{0}}, {0}},
    {NULL, "training expt: loss=1", 0, -1, {{0}}, {0}},
    {"metric", "metrics loss=1", 0, -1, {{0}}, {0}},
    /* metric lines */
    {NULL, "expt: loss=0.3", 1, -1, {{"loss", 0.3}}, {0}},
    {NULL, "expt: loss=0.3 acc=0.9", 2, -1, {{"loss", 0.3}, {"acc", 0.9}}, {0}},
    {NULL, "expt: loss=0.3 step=10", 1, 10, {{"loss", 0.3}}, {0}},
    {NULL, "expt: step=7 a=1 b=-2.5e-3", 2, 7, {{"a", 1}, {"b", -2.5e-3}}, {0}},
    {NULL, "expt:loss=2", 1, -1, {{"loss", 2}}, {0}},
    {NULL, "  expt:\tloss=2\t acc=1  ", 2, -1, {{"loss", 2}, {"acc", 1}}, {0}},
    {NULL, "expt: loss=0.5\n", 1, -1, {{"loss", 0.5}}, {0}},
    {NULL, "expt: loss=0.5\r\n", 1, -1, {{"loss", 0.5}}, {0}},
    {NULL, "expt: val/loss=1 train.acc=0.5", 2, -1, {{"val/loss", 1}, {"train.acc", 0.5}}, {0}},
    {NULL, "expt: x=1e300", 1, -1, {{"x", 1e300}}, {0}},
    {"METRIC", "METRIC loss=4", 1, -1, {{"loss", 4}}, {0}},
    {"##", "##loss=4", 1, -1, {{"loss", 4}}, {0}},
    /* texts: kept aside, not points */
    {NULL, "expt: opt=adam loss=1", 1, -1, {{"loss", 1}}, {"opt=adam"}},
    {NULL, "expt: loss=nan", 0, -1, {{0}}, {"loss=nan"}},
    {NULL, "expt: loss=inf acc=1", 1, -1, {{"acc", 1}}, {"loss=inf"}},
    {NULL, "expt: a=b=c", 0, -1, {{0}}, {"a=b=c"}},
    {NULL, "expt: step=3", 0, 3, {{0}}, {0}},
    {NULL, "expt:", 0, -1, {{0}}, {0}},
    /* malformed */
    {NULL, "expt: hello", -1, -1, {{0}}, {0}},
    {NULL, "expt: loss=", -1, -1, {{0}}, {0}},
    {NULL, "expt: =1", -1, -1, {{0}}, {0}},
    {NULL, "expt: loss=1 step=x", -1, -1, {{0}}, {0}},
    {NULL, "expt: loss=1 step=-1", -1, -1, {{0}}, {0}},
    {NULL, "expt: loss=1 step=1.5", -1, -1, {{0}}, {0}},
    {NULL, "expt: loss=1 junk", -1, -1, {{0}}, {0}},
};

static void test_table(void **state)
{
	struct expt_capture cap;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		int rc = expt_capture_parse(c->prefix, c->line, strlen(c->line), &cap);
		size_t ntexts = 0;

		if (rc != c->rc)
			fail_msg("case %zu '%s': rc %d, want %d", i, c->line, rc, c->rc);
		if (rc < 0)
			continue;
		assert_int_equal(cap.npoints, (size_t)rc);
		if (cap.step != c->step)
			fail_msg("case %zu '%s': step %lld, want %lld", i, c->line,
				 (long long)cap.step, (long long)c->step);
		for (int p = 0; p < rc; p++) {
			assert_string_equal(cap.points[p].key, c->pts[p].key);
			assert_true(cap.points[p].value == c->pts[p].value);
		}
		for (; ntexts < 4 && c->texts[ntexts]; ntexts++) {
			char kv[256];
			snprintf(kv, sizeof(kv), "%s=%s", cap.texts[ntexts].key,
				 cap.texts[ntexts].value);
			assert_string_equal(kv, c->texts[ntexts]);
		}
		if (cap.ntexts != ntexts)
			fail_msg("case %zu '%s': %zu texts, want %zu", i, c->line, cap.ntexts,
				 ntexts);
	}
}

/* The line need not be NUL-terminated: only len bytes count. */
static void test_not_terminated(void **state)
{
	struct expt_capture cap;
	const char line[] = "expt: loss=1.5 acc=2XXXX";

	assert_int_equal(expt_capture_parse(NULL, line, strlen(line) - 4, &cap), 2);
	assert_true(cap.points[1].value == 2);
	assert_int_equal(expt_capture_parse(NULL, line, 0, &cap), 0);
}

static void test_limits(void **state)
{
	struct expt_capture cap;
	char line[EXPT_CAPTURE_MAX_LINE + 64];
	size_t len;

	/* As many points as allowed, then one more. */
	len = (size_t)snprintf(line, sizeof(line), "expt:");
	for (int i = 0; i < EXPT_CAPTURE_MAX_POINTS; i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, " k%d=%d", i, i);
	assert_int_equal(expt_capture_parse(NULL, line, len, &cap), EXPT_CAPTURE_MAX_POINTS);
	assert_string_equal(cap.points[EXPT_CAPTURE_MAX_POINTS - 1].key, "k63");
	len += (size_t)snprintf(line + len, sizeof(line) - len, " extra=1");
	assert_int_equal(expt_capture_parse(NULL, line, len, &cap), -1);

	/* Too long a line. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "expt: x=", 8);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(expt_capture_parse(NULL, line, strlen(line), &cap), -1);

	/* A NUL inside the line is malformed. */
	assert_int_equal(expt_capture_parse(NULL, "expt: a=1\0b=2", 13, &cap), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_not_terminated),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
