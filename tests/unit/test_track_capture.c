/* The stdout line protocol: the metric line parser as a table (line -> points, step and texts,
 * or the error), the record lines of the stdout sink as a table, and round trips: what the
 * writers write, the parser reads back exactly. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "track/capture.h"
#include "util/util.h"

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

/* Record lines: "<prefix> metric|param|tag key=value [attrs]". */
struct record_case {
	const char *prefix;
	const char *line;
	size_t len; /* 0: strlen(line) */
	int rc;
	int kind;
	const char *key, *value; /* param, tag; metric: key only */
	double num;		 /* metric value (NAN: expect a NaN) */
	int64_t step, time_ms;
};

#define P EXPT_CAPTURE_PARAM
#define T EXPT_CAPTURE_TAG
#define M EXPT_CAPTURE_METRICS
#define BAD -1, EXPT_CAPTURE_NONE, NULL, NULL, 0, -1, -1

static const struct record_case records[] = {
    /* params and tags */
    {NULL, "expt: param lr=0.1", 0, 0, P, "lr", "0.1", 0, -1, -1},
    {NULL, "expt: tag phase=eval", 0, 0, T, "phase", "eval", 0, -1, -1},
    {NULL, "expt: param \"a b\"=\"x=y\"", 0, 0, P, "a b", "x=y", 0, -1, -1},
    {NULL, "expt: param k=\"\"", 0, 0, P, "k", "", 0, -1, -1},
    {NULL, "expt: param k=\"line1\\nline2\\r\\t.\"", 0, 0, P, "k", "line1\nline2\r\t.", 0, -1, -1},
    {NULL, "expt: param k=\"q\\\"b\\\\s\"", 0, 0, P, "k", "q\"b\\s", 0, -1, -1},
    {NULL, "expt: param k=\"\\u0001\\u001f\\u007f\"", 0, 0, P, "k", "\x01\x1f\x7f", 0, -1, -1},
    {NULL, "expt: param k=\"\\u001F\"", 0, 0, P, "k", "\x1f", 0, -1, -1},
    {NULL, "expt: tag \xc3\xa9t\xc3\xa9=\"caf\xc3\xa9 cr\xc3\xa8me\"", 0, 0, T, "\xc3\xa9t\xc3\xa9",
     "caf\xc3\xa9 cr\xc3\xa8me", 0, -1, -1},
    {NULL, "  expt:\tparam  k=v  \r\n", 0, 0, P, "k", "v", 0, -1, -1},
    {NULL, "expt:param k=v", 0, 0, P, "k", "v", 0, -1, -1},
    {NULL, "expt: param step=3", 0, 0, P, "step", "3", 0, -1, -1},
    {NULL, "expt: param k=\"a b\"\n", 0, 0, P, "k", "a b", 0, -1, -1},
    {"METRIC", "METRIC tag k=v", 0, 0, T, "k", "v", 0, -1, -1},
    /* metric records */
    {NULL, "expt: metric loss=0.25 step=3 time=1700000000000", 0, 1, M, "loss", NULL, 0.25, 3,
     1700000000000},
    {NULL, "expt: metric loss=0.5 time=5", 0, 1, M, "loss", NULL, 0.5, -1, 5},
    {NULL, "expt: metric loss=-2", 0, 1, M, "loss", NULL, -2, -1, -1},
    {NULL, "expt: metric loss=nan step=1", 0, 1, M, "loss", NULL, NAN, 1, -1},
    {NULL, "expt: metric loss=inf", 0, 1, M, "loss", NULL, INFINITY, -1, -1},
    {NULL, "expt: metric loss=-inf", 0, 1, M, "loss", NULL, -INFINITY, -1, -1},
    {NULL, "expt: metric \"val loss=\"=1e-300", 0, 1, M, "val loss=", NULL, 1e-300, -1, -1},
    {NULL, "expt: metric tiny=4.9406564584124654e-324", 0, 1, M, "tiny", NULL,
     4.9406564584124654e-324, -1, -1},
    {NULL, "expt: metric x=1 time=2 step=3", 0, 1, M, "x", NULL, 1, 3, 2},
    /* legacy metric lines whose keys are the new words: unchanged */
    {NULL, "expt: params=3", 0, 1, M, "params", NULL, 3, -1, -1},
    {NULL, "expt: tag=1 step=2", 0, 1, M, "tag", NULL, 1, 2, -1},
    {NULL, "expt: metric=0.5", 0, 1, M, "metric", NULL, 0.5, -1, -1},
    /* malformed records */
    {NULL, "expt: param", 0, BAD},
    {NULL, "expt: metric", 0, BAD},
    {NULL, "expt: param k", 0, BAD},
    {NULL, "expt: param k=", 0, BAD},
    {NULL, "expt: param =v", 0, BAD},
    {NULL, "expt: param \"\"=v", 0, BAD},
    {NULL, "expt: param k=v extra", 0, BAD},
    {NULL, "expt: param k=v step=1", 0, BAD},
    {NULL, "expt: tag k=v time=1", 0, BAD},
    {NULL, "expt: param k=\"unterminated", 0, BAD},
    {NULL, "expt: param k=\"bad\\q\"", 0, BAD},
    {NULL, "expt: param k=\"\\u0041\"", 0, BAD},
    {NULL, "expt: param k=\"\\u0000\"", 0, BAD},
    {NULL, "expt: param k=\"\\u00\"", 0, BAD},
    {NULL, "expt: param k=a\"b", 0, BAD},
    {NULL, "expt: param k=\"a\"b", 0, BAD},
    {NULL, "expt: param k=a=b", 0, BAD},
    {NULL, "expt: param k=a\\b", 0, BAD},
    {NULL, "expt: param k=\"raw\ttab\"", 0, BAD},
    {NULL, "expt: param k=\"raw\x01\"", 0, BAD},
    {NULL, "expt: param\tk=\"a\0b\"", 19, BAD},
    {NULL, "expt: metric loss=\"1\"", 0, BAD},
    {NULL, "expt: metric loss=abc", 0, BAD},
    {NULL, "expt: metric loss=1e999", 0, BAD},
    {NULL, "expt: metric loss=+1", 0, BAD},
    {NULL, "expt: metric loss=Infinity", 0, BAD},
    {NULL, "expt: metric loss=1 step=-1", 0, BAD},
    {NULL, "expt: metric loss=1 step=+1", 0, BAD},
    {NULL, "expt: metric loss=1 step=1 step=2", 0, BAD},
    {NULL, "expt: metric loss=1 foo=2", 0, BAD},
    {NULL, "expt: metric loss=1 time=x", 0, BAD},
    {NULL, "expt: metric loss=1 step", 0, BAD},
    {NULL, "expt: metric a=1 b=2", 0, BAD},
};

static void test_records(void **state)
{
	struct expt_capture *cap = malloc(sizeof(*cap));

	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
		const struct record_case *c = &records[i];
		size_t len = c->len ? c->len : strlen(c->line);
		int rc = expt_capture_parse(c->prefix, c->line, len, cap);

		if (rc != c->rc || cap->kind != c->kind)
			fail_msg("record %zu '%s': rc %d kind %d, want rc %d kind %d", i, c->line,
				 rc, cap->kind, c->rc, c->kind);
		if (rc < 0)
			continue;
		if (cap->step != c->step || cap->time_ms != c->time_ms)
			fail_msg("record %zu '%s': step %lld time %lld", i, c->line,
				 (long long)cap->step, (long long)cap->time_ms);
		if (c->kind == M) {
			assert_int_equal(cap->npoints, 1);
			assert_string_equal(cap->points[0].key, c->key);
			if (isnan(c->num))
				assert_true(isnan(cap->points[0].value));
			else if (memcmp(&cap->points[0].value, &c->num, sizeof(double)))
				fail_msg("record %zu '%s': value %.17g", i, c->line,
					 cap->points[0].value);
			continue;
		}
		assert_int_equal(cap->npoints, 0);
		assert_string_equal(cap->key, c->key);
		if (strcmp(cap->value, c->value))
			fail_msg("record %zu '%s': value '%s', want '%s'", i, c->line, cap->value,
				 c->value);
	}
	free(cap);
}

/* Every text the logging API can take comes back as it went out. */
static void test_round_trip_text(void **state)
{
	static const char *const texts[] = {"plain",
					    "0.1",
					    "a b",
					    "x=y",
					    "=",
					    "\"",
					    "\\",
					    "\"quoted\" \\back\\",
					    "line1\nline2",
					    "\r\n",
					    "\ttab",
					    "\x01\x02\x1f\x7f",
					    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
					    "expt: metric loss=1",
					    "step=3",
					    " lead and trail ",
					    "",
					    "{\"json\": [1, 2]}"};
	static const char *const keys[] = {"k",	    "a b",  "x=y",	   "\xc3\xa9",
					   "\"q\"", "step", "back\\slash", "lr/decay.rate"};
	struct expt_capture *cap = malloc(sizeof(*cap));
	struct expt_buf b = EXPT_BUF_INIT;
	char *big;

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
			int kind = t % 2 ? EXPT_CAPTURE_TAG : EXPT_CAPTURE_PARAM;
			expt_buf_reset(&b);
			assert_int_equal(
			    expt_capture_format_text(&b, NULL, kind, keys[k], texts[t]), 0);
			/* One line: the only newline is the last byte. */
			assert_ptr_equal(strchr(b.buf, '\n'), b.buf + b.len - 1);
			assert_int_equal(expt_capture_parse(NULL, b.buf, b.len, cap), 0);
			if (cap->kind != kind || strcmp(cap->key, keys[k]) ||
			    strcmp(cap->value, texts[t]))
				fail_msg("'%s'='%s' came back as kind %d '%s'='%s' from %s",
					 keys[k], texts[t], cap->kind, cap->key ? cap->key : "",
					 cap->value ? cap->value : "", b.buf);
		}
	}
	/* The longest value that fits, then one that does not (the buffer is left as it was). */
	big = malloc(EXPT_CAPTURE_MAX_RECORD + 1);
	memset(big, 'v', EXPT_CAPTURE_MAX_RECORD);
	big[EXPT_CAPTURE_MAX_RECORD - strlen("expt: param k=")] = '\0';
	expt_buf_reset(&b);
	assert_int_equal(expt_capture_format_text(&b, NULL, EXPT_CAPTURE_PARAM, "k", big), 0);
	assert_int_equal(b.len, EXPT_CAPTURE_MAX_RECORD + 1);
	assert_int_equal(expt_capture_parse(NULL, b.buf, b.len, cap), 0);
	assert_string_equal(cap->value, big);
	big[strlen(big)] = 'v';
	expt_buf_reset(&b);
	expt_buf_adds(&b, "kept");
	assert_int_equal(expt_capture_format_text(&b, NULL, EXPT_CAPTURE_PARAM, "k", big), -1);
	assert_string_equal(b.buf, "kept");
	free(big);
	expt_buf_release(&b);
	free(cap);
}

/* Metric values come back bit-exact (NaN as a NaN), with their key, step and time. */
static void test_round_trip_metric(void **state)
{
	double special[] = {0.1,
			    1.0 / 3,
			    -0.0,
			    0.0,
			    5e-324,
			    DBL_MIN,
			    -DBL_MIN / 3,
			    DBL_MAX,
			    -DBL_MAX,
			    1e300,
			    123456789012345678.0,
			    NAN,
			    INFINITY,
			    -INFINITY,
			    0.30000000000000004};
	struct expt_capture *cap = malloc(sizeof(*cap));
	struct expt_buf b = EXPT_BUF_INIT;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 20000; i++) {
		double v;
		int64_t step = i % 3 ? i : -1, time_ms = i % 5 ? 1700000000000 + i : -1;
		const char *key = i % 2 ? "loss" : "val loss=\"x\"";
		if (i < (int)(sizeof(special) / sizeof(special[0]))) {
			v = special[i];
		} else {
			/* Any bit pattern: xorshift64. */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			memcpy(&v, &x, sizeof(v));
		}
		expt_buf_reset(&b);
		assert_int_equal(expt_capture_format_metric(&b, "METRIC", key, v, step, time_ms),
				 0);
		if (expt_capture_parse("METRIC", b.buf, b.len, cap) != 1)
			fail_msg("'%s' does not parse", b.buf);
		assert_int_equal(cap->kind, EXPT_CAPTURE_METRICS);
		assert_string_equal(cap->points[0].key, key);
		assert_int_equal(cap->step, step);
		assert_int_equal(cap->time_ms, time_ms);
		if (isnan(v) ? !isnan(cap->points[0].value)
			     : memcmp(&cap->points[0].value, &v, sizeof(v)))
			fail_msg("%.17g (%s) came back as %.17g", v, b.buf, cap->points[0].value);
	}
	expt_buf_release(&b);
	free(cap);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),	    cmocka_unit_test(test_not_terminated),
	    cmocka_unit_test(test_limits),	    cmocka_unit_test(test_records),
	    cmocka_unit_test(test_round_trip_text), cmocka_unit_test(test_round_trip_metric),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
