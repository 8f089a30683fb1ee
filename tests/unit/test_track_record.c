/* The helpers of the logging API: key interning, histogram buckets, PNG headers, JSON numbers,
 * base64, param typing; and the public header compiling as C99 and C++ with -pedantic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "track/track.h"
#include "util/util.h"

static void test_keys(void **state)
{
	struct expt_keys k;
	uint32_t id, first[3000];
	const char *name0;
	char key[32];

	expt_keys_init(&k);
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(key, sizeof(key), "metric/%d", i);
		assert_int_equal(expt_keys_intern(&k, key, (size_t)n, &first[i]), 0);
		assert_int_equal(first[i], (uint32_t)i);
	}
	name0 = expt_keys_name(&k, 0);
	/* Same key, same id; the name never moved while the table grew. */
	for (int i = 0; i < 3000; i++) {
		int n = snprintf(key, sizeof(key), "metric/%d", i);
		assert_int_equal(expt_keys_intern(&k, key, (size_t)n, &id), 0);
		assert_int_equal(id, first[i]);
		assert_string_equal(expt_keys_name(&k, id), key);
	}
	assert_ptr_equal(expt_keys_name(&k, 0), name0);
	/* Only len bytes count: "metric/12" from "metric/123". */
	assert_int_equal(expt_keys_intern(&k, "metric/123", 9, &id), 0);
	assert_int_equal(id, first[12]);
	/* A prefix of a known key is another key. */
	assert_int_equal(expt_keys_intern(&k, "metric/", 7, &id), 0);
	assert_int_equal(id, 3000);
	expt_keys_release(&k);
}

static void test_histogram_values(void **state)
{
	const double v[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, NAN, INFINITY};
	struct expt_rec *r = expt_rec_new();

	expt_histogram_values(r, v, sizeof(v) / sizeof(v[0]), 10);
	assert_true(r->min == 0 && r->max == 10 && r->num == 11);
	assert_true(r->sum == 55 && r->sum_squares == 385);
	assert_int_equal(r->nb, 10);
	/* Bucket i is (limits[i-1], limits[i]], the first holds min: 0 and 1 share bucket 0. */
	assert_true(r->counts[0] == 2);
	for (int i = 1; i < 10; i++) {
		assert_true(r->limits[i] == (i == 9 ? 10 : 0 + 1.0 * (i + 1)));
		assert_true(r->counts[i] == 1);
	}
	expt_rec_unref(r);

	/* All values equal: one bucket. */
	r = expt_rec_new();
	expt_histogram_values(r, (const double[]){2, 2, 2}, 3, 30);
	assert_int_equal(r->nb, 1);
	assert_true(r->limits[0] == 2 && r->counts[0] == 3 && r->min == 2 && r->max == 2);
	expt_rec_unref(r);

	/* No finite value: an empty histogram. */
	r = expt_rec_new();
	expt_histogram_values(r, (const double[]){NAN}, 1, 30);
	assert_int_equal(r->nb, 0);
	assert_true(r->num == 0);
	expt_rec_unref(r);
}

static void test_histogram_buckets(void **state)
{
	const double edges[] = {0, 1, 3}, counts[] = {2, 4};
	struct expt_rec *r = expt_rec_new();

	assert_int_equal(expt_histogram_buckets(r, edges, counts, 2), 0);
	assert_true(r->min == 0 && r->max == 3 && r->num == 6);
	assert_true(r->limits[0] == 1 && r->limits[1] == 3);
	/* Sums from bucket centers: 2 * 0.5 + 4 * 2. */
	assert_true(r->sum == 9 && r->sum_squares == 2 * 0.25 + 4 * 4);
	expt_rec_unref(r);

	r = expt_rec_new();
	assert_int_equal(expt_histogram_buckets(r, (const double[]){0, 0, 1}, counts, 2), -1);
	assert_int_equal(expt_histogram_buckets(r, edges, (const double[]){1, -1}, 2), -1);
	assert_int_equal(expt_histogram_buckets(r, edges, counts, 0), -1);
	expt_rec_unref(r);
}

static void test_png_info(void **state)
{
	unsigned char png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I',
				 'H',  'D', 'R', 0,   0,    1,	  2,	0,    0, 0, 3, 8,  6};
	uint32_t w, h, c;

	assert_int_equal(expt_png_info(png, sizeof(png), &w, &h, &c), 0);
	assert_int_equal(w, 258);
	assert_int_equal(h, 3);
	assert_int_equal(c, 4);
	png[25] = 0;
	assert_int_equal(expt_png_info(png, sizeof(png), &w, &h, &c), 0);
	assert_int_equal(c, 1);
	png[25] = 5;
	assert_int_equal(expt_png_info(png, sizeof(png), &w, &h, &c), -1);
	png[25] = 2;
	assert_int_equal(expt_png_info(png, 20, &w, &h, &c), -1);
	png[1] = 'X';
	assert_int_equal(expt_png_info(png, sizeof(png), &w, &h, &c), -1);
}

static void test_numbers(void **state)
{
	const double vals[] = {0.3, 0.1 + 0.2, 1e-320, 1.0 / 3, 123456789012345678.0, -0.0, 5e300};
	struct expt_buf b = EXPT_BUF_INIT;
	char s[40];
	double n;

	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		expt_fmt_double(vals[i], s, sizeof(s));
		assert_true(strtod(s, NULL) == vals[i]);
	}
	expt_fmt_double(0.3, s, sizeof(s));
	assert_string_equal(s, "0.3");
	expt_json_double(&b, NAN);
	expt_buf_addch(&b, ' ');
	expt_json_double(&b, -INFINITY);
	expt_buf_addch(&b, ' ');
	expt_json_double(&b, 2.5);
	assert_string_equal(b.buf, "\"NaN\" \"-Infinity\" 2.5");
	expt_buf_release(&b);

	assert_int_equal(expt_param_type("0.01", &n), 1);
	assert_true(n == 0.01);
	assert_int_equal(expt_param_type("true", &n), 2);
	assert_true(n == 1);
	assert_int_equal(expt_param_type("False", &n), 2);
	assert_true(n == 0);
	assert_int_equal(expt_param_type("adam", &n), 0);
	assert_int_equal(expt_param_type("", &n), 0);
}

static void test_base64(void **state)
{
	static const char *const want[] = {"",	       "Zg==",	   "Zm8=",    "Zm9v",
					   "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	struct expt_buf b = EXPT_BUF_INIT;

	for (size_t i = 0; i < 7; i++) {
		expt_buf_reset(&b);
		expt_base64(&b, (const unsigned char *)"foobar", i);
		assert_string_equal(b.len ? b.buf : "", want[i]);
	}
	expt_buf_release(&b);
}

/* include/expt.h must compile alone with -pedantic -Werror as C99 and as C++. */
static void test_public_header(void **state)
{
	const char *src = getenv("EXPT_SOURCE_DIR");
	const char *compilers[][2] = {
	    {"cc", "-x c -std=c99"}, {"c++", "-x c++ -std=c++11"}, {"c++", "-x c++ -std=c++98"}};
	char cmd[2048];
	int ran = 0;

	if (!src)
		src = "../..";
	for (size_t i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", compilers[i][0]);
		if (system(cmd))
			continue;
		snprintf(cmd, sizeof(cmd),
			 "echo '#include \"expt.h\"\nint main(void) { struct expt_run_options o = "
			 "EXPT_RUN_OPTIONS_INIT; (void)o; return 0; }' | %s %s -pedantic -Werror "
			 "-Wall -Wextra -I'%s/include' -fsyntax-only -",
			 compilers[i][0], compilers[i][1], src);
		if (system(cmd))
			fail_msg("the public header does not compile: %s", cmd);
		ran++;
	}
	if (!ran)
		skip();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_histogram_values),
	    cmocka_unit_test(test_histogram_buckets),
	    cmocka_unit_test(test_png_info),
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_public_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
