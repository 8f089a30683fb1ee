/* The run contract: argv (args auto/none/template, shell: true quoting), the environment, the
 * params JSON, and that hostile param values reach the program as plain text — checked by
 * really executing the argv, with and without /bin/sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "spec/spec.h"
#include "util/util.h"

static char dir[256];

static int setup(void **state)
{
	char tmpl[] = "/tmp/expt-contract-test-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	return chdir(dir);
}

static int teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	if (chdir("/"))
		return -1;
	return expt_remove_tree(dir, &err);
}

static struct expt_spec *load(const char *yaml, const char *const *ov)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s = NULL;
	FILE *f = fopen("expt.yaml", "w");
	size_t i;

	assert_non_null(f);
	fputs(yaml, f);
	assert_int_equal(fclose(f), 0);
	opts.path = "expt.yaml";
	opts.overrides = ov;
	while (ov && ov[opts.noverrides])
		opts.noverrides++;
	if (expt_spec_load(&s, &opts, &diags, &err)) {
		for (i = 0; i < diags.n; i++) {
			char line[1024];
			expt_diag_format(&diags.v[i], line, sizeof(line));
			print_message("unexpected: %s\n", line);
		}
	}
	expt_diags_release(&diags);
	assert_non_null(s);
	return s;
}

#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void assert_strv(const struct expt_strv *got, const char *const *want)
{
	size_t n = 0, i;

	while (want[n])
		n++;
	for (i = 0; i < got->n || i < n; i++) {
		const char *g = i < got->n ? got->v[i] : "(none)", *w = i < n ? want[i] : "(none)";
		if (strcmp(g, w))
			print_message("[%zu] got '%s', want '%s'\n", i, g, w);
	}
	assert_int_equal(got->n, n);
	for (i = 0; i < n; i++)
		assert_string_equal(got->v[i], want[i]);
}

static void argv_of(const struct expt_spec *s, size_t run, struct expt_strv *out)
{
	struct expt_err err = EXPT_ERR_INIT;

	assert_int_equal(
	    expt_spec_run_argv(s, &s->runs[run].params, "exp-7", "/out/exp-7", out, &err), 0);
}

/* Runs argv (no shell of ours in between) and returns its stdout. */
static char *run_capture(struct expt_strv *argv)
{
	struct expt_buf out = EXPT_BUF_INIT;
	int fds[2], status;
	char chunk[512];
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv(argv->v[0], expt_strv_argv(argv));
		_exit(127);
	}
	close(fds[1]);
	while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
		expt_buf_add(&out, chunk, (size_t)n);
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return expt_buf_detach(&out, NULL);
}

static void test_args_auto(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;

	(void)state;
	s = load("command: python train.py --fixed 'a b'\n"
		 "params: {lr: 0.01, epochs: 3, opt: adam, flag: true, off: false, ckpt: null,\n"
		 "         layers: [64, 32], neg: -1}\n",
		 NULL);
	argv_of(s, 0, &av);
	/* bools as true/false, null left out (the program's default applies), lists as JSON */
	assert_strv(&av, STRS("python", "train.py", "--fixed", "a b", "--lr", "0.01", "--epochs",
			      "3", "--opt", "adam", "--flag", "true", "--off", "false", "--layers",
			      "[64,32]", "--neg", "-1"));
	expt_strv_release(&av);
	expt_spec_free(s);
}

static void test_args_none_and_list_command(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;

	(void)state;
	s = load("command: [python, -c, 'import sys; print(sys.argv)', 'two words']\n"
		 "args: none\nparams: {lr: 0.1}\n",
		 NULL);
	argv_of(s, 0, &av);
	assert_strv(&av, STRS("python", "-c", "import sys; print(sys.argv)", "two words"));
	expt_strv_release(&av);
	expt_spec_free(s);
}

static void test_args_template(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;

	(void)state;
	s = load(
	    "command: ./train\n"
	    "params: {lr: 0.1, opt: adam w}\n"
	    "sweep: {seed: [1, 2]}\n"
	    "args: >-\n"
	    "  --lr={lr} --out {output_dir}/ckpt \"{opt} x\" '{{literal}}' --json '{\"a\": 1}'\n"
	    "  --id {run_id} --seed {seed}{seed} \\{lr}\n",
	    NULL);
	argv_of(s, 1, &av);
	/* per word, never through a shell: a value with a space stays one word */
	assert_strv(&av,
		    STRS("./train", "--lr=0.1", "--out", "/out/exp-7/ckpt", "adam w x", "{literal}",
			 "--json", "{\"a\": 1}", "--id", "exp-7", "--seed", "22", "0.1"));
	expt_strv_release(&av);
	expt_spec_free(s);
}

static void test_command_splitting(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = load("command: >-\n"
		 "  a 'b c' \"d \\\"e\\\" \\$f \\g\" h\\ i '' j\"k\"'l' $HOME `x` ~\n",
		 NULL);
	/* quotes group, backslashes escape, nothing is expanded */
	assert_strv(&s->command,
		    STRS("a", "b c", "d \"e\" $f \\g", "h i", "", "jkl", "$HOME", "`x`", "~"));
	expt_spec_free(s);
}

static const char *const hostile[] = {
    "$(echo pwned)",
    "`echo pwned`",
    "'; echo pwned; '",
    "a\"b",
    "line1\nline2",
    "-n",
    "*",
    "$HOME",
    "\\",
    "",
};

static void test_injection_without_shell(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;
	size_t i;

	(void)state;
	s = load("command: [/usr/bin/printf, '[%s]']\nargs: '{v}'\nparams: {v: x}\n", NULL);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct expt_params p = {0};
		char *out, *want;

		expt_params_set(&p, "v", EXPT_VT_STR, hostile[i]);
		assert_int_equal(expt_spec_run_argv(s, &p, "r", "/o", &av, &(struct expt_err){0}),
				 0);
		assert_int_equal(av.n, 3);
		assert_string_equal(av.v[2], hostile[i]);
		out = run_capture(&av);
		want = expt_xasprintf("[%s]", hostile[i]);
		assert_string_equal(out, want);
		free(out);
		free(want);
		expt_strv_release(&av);
		expt_params_release(&p);
	}
	expt_spec_free(s);
}

static void test_injection_through_shell(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;
	size_t i;

	(void)state;
	/* shell: true runs the command line through /bin/sh, but each value is single-quoted */
	s = load("command: true && printf '[%s]'\nshell: true\nargs: 'x{v}y'\nparams: {v: x}\n",
		 NULL);
	for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		struct expt_params p = {0};
		char *out, *want;

		expt_params_set(&p, "v", EXPT_VT_STR, hostile[i]);
		assert_int_equal(expt_spec_run_argv(s, &p, "r", "/o", &av, &(struct expt_err){0}),
				 0);
		assert_int_equal(av.n, 3);
		assert_string_equal(av.v[0], "/bin/sh");
		assert_string_equal(av.v[1], "-c");
		out = run_capture(&av);
		want = expt_xasprintf("[x%sy]", hostile[i]);
		assert_string_equal(out, want);
		free(out);
		free(want);
		expt_strv_release(&av);
		expt_params_release(&p);
	}
	expt_spec_free(s);
}

static void test_shell_auto(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;
	char *out;

	(void)state;
	s = load("command: printf '%s|' \"$0\" >/dev/null; printf '%s|'\nshell: true\n"
		 "params: {name: it's, n: 2, skip: null}\n",
		 NULL);
	argv_of(s, 0, &av);
	assert_strv(&av, STRS("/bin/sh", "-c",
			      "printf '%s|' \"$0\" >/dev/null; printf '%s|' --name 'it'\\''s' "
			      "--n '2'"));
	out = run_capture(&av);
	assert_string_equal(out, "--name|it's|--n|2|");
	free(out);
	expt_strv_release(&av);
	expt_spec_free(s);
}

static void test_unknown_placeholder_at_run_time(void **state)
{
	struct expt_spec *s;
	struct expt_strv av = EXPT_STRV_INIT;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_params p = {0};
	char line[512];

	(void)state;
	s = load("command: x\nparams: {lr: 1}\nargs: --lr {lr}\n", NULL);
	/* params handed in by a caller (say, a retry) may lack what the template names */
	assert_int_equal(expt_spec_run_argv(s, &p, "r", "/o", &av, &err), EXPT_EUSAGE);
	expt_err_format(&err, line, sizeof(line));
	assert_string_equal(line, "expt.yaml: args: '{lr}' names no param");
	assert_int_equal(av.n, 0);
	expt_spec_free(s);
}

static void test_env(void **state)
{
	struct expt_spec *s;
	struct expt_strv env = EXPT_STRV_INIT;

	(void)state;
	s = load("name: mnist\ncommand: x\nenv: {PYTHONUNBUFFERED: 1, B: 'two words'}\n"
		 "params: {batch-size: 32, lr: 0.1, opt: adam, none: null, l: [1, 2]}\n",
		 STRS("lr=0.5"));
	expt_spec_run_env(s, &s->runs[0].params, "mnist-3", "/o/mnist-3", "/o/mnist-3/params.json",
			  &env);
	assert_strv(&env, STRS("PYTHONUNBUFFERED=1", "B=two words", "EXPT_PARAM_BATCH_SIZE=32",
			       "EXPT_PARAM_LR=0.5", "EXPT_PARAM_OPT=adam",
			       "EXPT_PARAM_NONE=", "EXPT_PARAM_L=[1,2]", "EXPT_RUN_ID=mnist-3",
			       "EXPT_EXPERIMENT=mnist", "EXPT_OUTPUT_DIR=/o/mnist-3",
			       "EXPT_PARAMS_FILE=/o/mnist-3/params.json"));
	expt_strv_release(&env);
	/* what the caller does not know yet is left out */
	expt_spec_run_env(s, NULL, NULL, NULL, NULL, &env);
	assert_strv(&env, STRS("PYTHONUNBUFFERED=1", "B=two words", "EXPT_EXPERIMENT=mnist"));
	expt_strv_release(&env);
	expt_spec_free(s);
}

static void test_params_json(void **state)
{
	struct expt_spec *s;
	json_t *j;
	json_error_t jerr;
	char *text;

	(void)state;
	s = load("command: x\nparams: {lr: 0.1, n: 3, opt: \"a\\\"b\", on: true, none: null,\n"
		 "  l: [1, {x: y}], big: 1e300, inf: .inf, s: '0.1'}\n",
		 NULL);
	text = expt_params_json(&s->runs[0].params);
	/* numbers as written (0.1, not 0.1000000000000000055), JSON types from the value types */
	assert_string_equal(text,
			    "{\"lr\":0.1,\"n\":3,\"opt\":\"a\\\"b\",\"on\":true,\"none\":null,"
			    "\"l\":[1,{\"x\":\"y\"}],\"big\":1e+300,\"inf\":\"inf\",\"s\":"
			    "\"0.1\"}");
	j = json_loads(text, 0, &jerr);
	assert_non_null(j);
	assert_true(json_is_real(json_object_get(j, "lr")));
	assert_true(json_is_integer(json_object_get(j, "n")));
	assert_true(json_is_true(json_object_get(j, "on")));
	assert_true(json_is_null(json_object_get(j, "none")));
	assert_true(json_is_array(json_object_get(j, "l")));
	assert_true(json_is_string(json_object_get(j, "s")));
	json_decref(j);
	free(text);
	text = expt_params_json(NULL);
	assert_string_equal(text, "{}");
	free(text);
	/* the resolved spec is valid JSON too */
	j = json_loads(s->resolved_json, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "command")), "x");
	json_decref(j);
	expt_spec_free(s);
}

static void test_params_api(void **state)
{
	struct expt_params a = {0}, b = {0};

	(void)state;
	expt_params_set(&a, "x", EXPT_VT_INT, "1");
	expt_params_set(&a, "y", EXPT_VT_STR, "s");
	expt_params_set(&a, "x", EXPT_VT_FLOAT, "2.0"); /* replaced in place */
	assert_int_equal(a.n, 2);
	assert_string_equal(a.v[0].name, "x");
	assert_string_equal(expt_params_get(&a, "x")->text, "2.0");
	assert_int_equal(expt_params_get(&a, "x")->type, EXPT_VT_FLOAT);
	assert_null(expt_params_get(&a, "z"));
	assert_null(expt_params_get(NULL, "x"));
	expt_params_set(&b, "z", EXPT_VT_NULL, NULL);
	expt_params_copy(&b, &a);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.v[0].value.text, "");
	assert_string_equal(b.v[2].name, "y");
	expt_params_release(&a);
	expt_params_release(&a);
	expt_params_release(&b);
	expt_params_release(NULL);
}

static void test_dns_label(void **state)
{
	const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"mnist", 1},
	    {"a", 1},
	    {"0abc", 1},
	    {"a-b-c", 1},
	    {"", 0},
	    {"-a", 0},
	    {"a-", 0},
	    {"A", 0},
	    {"a_b", 0},
	    {"a.b", 0},
	    {"a b", 0},
	    {"é", 0},
	    {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghija12", 1},
	    {"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghija123", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (expt_dns_label_ok(cases[i].s) != cases[i].ok)
			print_message("'%s'\n", cases[i].s);
		assert_int_equal(expt_dns_label_ok(cases[i].s), cases[i].ok);
	}
	assert_int_equal(expt_dns_label_ok(NULL), 0);
}

static void test_diag_format(void **state)
{
	struct expt_diag d = {"expt.yaml", 3, 9, "sweep.lr", "bad"};
	char out[256];

	(void)state;
	expt_diag_format(&d, out, sizeof(out));
	assert_string_equal(out, "expt.yaml:3:9: sweep.lr: bad");
	d.file = "<command line>";
	d.line = 0;
	d.col = 2;
	expt_diag_format(&d, out, sizeof(out));
	assert_string_equal(out, "<command line>: argument 2: sweep.lr: bad");
	d.col = 0;
	d.field = "";
	expt_diag_format(&d, out, sizeof(out));
	assert_string_equal(out, "<command line>: bad");
	d.file = "expt.yaml";
	d.line = 4;
	expt_diag_format(&d, out, sizeof(out));
	assert_string_equal(out, "expt.yaml:4: bad");
	expt_diag_format(&d, out, 5); /* truncated, still terminated */
	assert_string_equal(out, "expt");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args_auto),
	    cmocka_unit_test(test_args_none_and_list_command),
	    cmocka_unit_test(test_args_template),
	    cmocka_unit_test(test_command_splitting),
	    cmocka_unit_test(test_injection_without_shell),
	    cmocka_unit_test(test_injection_through_shell),
	    cmocka_unit_test(test_shell_auto),
	    cmocka_unit_test(test_unknown_placeholder_at_run_time),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_params_json),
	    cmocka_unit_test(test_params_api),
	    cmocka_unit_test(test_dns_label),
	    cmocka_unit_test(test_diag_format),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
