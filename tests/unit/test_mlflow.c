/* The MLflow client's pure parts: keys as the server accepts them (a table), values cut on a
 * UTF-8 boundary, expt's statuses as MLflow's, and the URIs it takes or refuses; the S3
 * client's s3:// locations and the environment it needs. The REST calls themselves are tested
 * against real servers (tests/mlflow/t_mlflow.sh, tests/s3/t_mlflow_s3.sh). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mlflow/mlflow.h"
#include "mlflow/s3.h"

static const struct {
	const char *in, *out;
} keys[] = {
    {"loss", "loss"},
    {"val/loss", "val/loss"},
    {"a b-c_d.e", "a b-c_d.e"},
    {"top1:acc", "top1_acc"},	    /* ':' is refused by older servers */
    {"/abs/path", "abs/path"},	    /* no leading '/' */
    {"a//b", "a/b"},		    /* no empty component */
    {"a/", "a"},		    /* no trailing '/' */
    {"../x", "__/x"},		    /* no '..' component */
    {"a/./b", "a/_/b"},		    /* no '.' component */
    {"a..b", "a..b"},		    /* dots inside a name are fine */
    {"\xc3\xa9t\xc3\xa9", "__t__"}, /* non-ASCII bytes */
    {"", "_"},
    {"/", "_"},
};

static void key_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char out[EXPT_MLFLOW_KEY_MAX + 1];
		size_t n = expt_mlflow_key(out, sizeof(out), keys[i].in);
		if (strcmp(out, keys[i].out))
			print_error("key '%s': got '%s', want '%s'\n", keys[i].in, out,
				    keys[i].out);
		assert_string_equal(out, keys[i].out);
		assert_int_equal(n, strlen(out));
	}
}

static void key_cut_at_250(void **state)
{
	char in[600], out[EXPT_MLFLOW_KEY_MAX + 1];

	(void)state;
	memset(in, 'k', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	assert_int_equal(expt_mlflow_key(out, sizeof(out), in), EXPT_MLFLOW_KEY_MAX);
	assert_int_equal(strlen(out), EXPT_MLFLOW_KEY_MAX);
}

static void utf8_cut(void **state)
{
	(void)state;
	assert_int_equal(expt_mlflow_utf8_cut("abc", 10), 3);
	assert_int_equal(expt_mlflow_utf8_cut("abcdef", 4), 4);
	/* "aé" is 61 c3 a9: cutting at 2 would split the é */
	assert_int_equal(expt_mlflow_utf8_cut("a\xc3\xa9z", 2), 1);
	assert_int_equal(expt_mlflow_utf8_cut("a\xc3\xa9z", 3), 3);
}

static void statuses(void **state)
{
	(void)state;
	assert_string_equal(expt_mlflow_status("succeeded"), "FINISHED");
	assert_string_equal(expt_mlflow_status("failed"), "FAILED");
	assert_string_equal(expt_mlflow_status("stopped"), "KILLED");
	assert_string_equal(expt_mlflow_status("running"), "RUNNING");
	assert_string_equal(expt_mlflow_status(NULL), "RUNNING");
}

static void uris(void **state)
{
	struct expt_mlflow *m = NULL;
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	assert_int_equal(expt_mlflow_open(&m, "file:///tmp/mlruns", &err), EXPT_EUSAGE);
	assert_null(m);
	assert_non_null(strstr(err.msg, "http://HOST:PORT"));
	if (expt_mlflow_open(&m, "mlflow://h:5000/", &err) == EXPT_EBACKEND)
		skip(); /* no libcurl to load here */
	assert_non_null(m);
	assert_string_equal(expt_mlflow_base(m), "http://h:5000");
	expt_mlflow_close(m);
	assert_int_equal(expt_mlflow_open(&m, "https://h/prefix//", &err), 0);
	assert_string_equal(expt_mlflow_base(m), "https://h/prefix");
	expt_mlflow_close(m);
	expt_mlflow_close(NULL);
}

static void s3_uris(void **state)
{
	static const struct {
		const char *uri, *bucket, *prefix;
	} ok[] = {
	    {"s3://b", "b", ""},
	    {"s3://b/", "b", ""},
	    {"s3://b/p", "b", "p"},
	    {"s3://ml/mlflow-artifacts/1/abc/artifacts/", "ml", "mlflow-artifacts/1/abc/artifacts"},
	    {"s3://b//deep//x", "b", "deep//x"},
	};
	char *b, *p;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(expt_s3_parse_uri(ok[i].uri, &b, &p), 0);
		assert_string_equal(b, ok[i].bucket);
		assert_string_equal(p, ok[i].prefix);
		free(b);
		free(p);
	}
	assert_int_equal(expt_s3_parse_uri("s3://", &b, &p), -1);
	assert_int_equal(expt_s3_parse_uri("s3:///x", &b, &p), -1);
	assert_int_equal(expt_s3_parse_uri("mlflow-artifacts:/1/a", &b, &p), -1);
	assert_int_equal(expt_s3_parse_uri("gs://b/p", &b, &p), -1);
	assert_null(b);
	assert_null(p);
}

static void s3_env(void **state)
{
	struct expt_s3 *s = NULL;
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "x", 1);
	assert_int_equal(expt_s3_open(&s, &err), EXPT_EUSAGE);
	assert_null(s);
	assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
	setenv("AWS_ACCESS_KEY_ID", "k", 1);
	setenv("MLFLOW_S3_ENDPOINT_URL", "ftp://h", 1);
	assert_int_equal(expt_s3_open(&s, &err), EXPT_EUSAGE);
	assert_non_null(strstr(err.msg, "MLFLOW_S3_ENDPOINT_URL"));
	setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:8333//", 1);
	if (expt_s3_open(&s, &err) == EXPT_EBACKEND)
		skip(); /* no libcurl to load here */
	assert_string_equal(expt_s3_endpoint(s), "http://127.0.0.1:8333");
	expt_s3_close(s);
	unsetenv("MLFLOW_S3_ENDPOINT_URL");
	setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
	assert_int_equal(expt_s3_open(&s, &err), 0);
	assert_string_equal(expt_s3_endpoint(s), "AWS S3 (eu-west-3)");
	expt_s3_close(s);
	expt_s3_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(key_table), cmocka_unit_test(key_cut_at_250),
	    cmocka_unit_test(utf8_cut),	 cmocka_unit_test(statuses),
	    cmocka_unit_test(uris),	 cmocka_unit_test(s3_uris),
	    cmocka_unit_test(s3_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
