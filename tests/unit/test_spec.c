/* Spec loading: a table of good and bad specs with the exact problems expected (file:line:col),
 * variants, overrides and sweep expansion (grid order, trials, reproducible random draws). Each
 * test writes expt.yaml in a temporary directory, so messages read "expt.yaml:L:C: ...". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "spec/spec.h"
#include "util/util.h"

static char spec_test_dir[256];

static int spec_test_setup(void **state)
{
	char tmpl[] = "/tmp/expt-spec-test-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(spec_test_dir, sizeof(spec_test_dir), "%s", tmpl);
	return chdir(spec_test_dir);
}

static int spec_test_teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	if (chdir("/"))
		return -1;
	return expt_remove_tree(spec_test_dir, &err);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

/* Loads yaml (written to expt.yaml) with a variant and overrides (NULL-terminated). Returns the
 * load's code; *spec is set on success; every problem, formatted, goes to msgs. */
static int load_spec(const char *yaml, const char *variant, const char *const *ov,
		     struct expt_spec **spec, struct expt_strv *msgs)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	size_t n = 0, i;
	int rc;

	write_text("expt.yaml", yaml);
	while (ov && ov[n])
		n++;
	opts.path = "expt.yaml";
	opts.variant = variant;
	opts.overrides = ov;
	opts.noverrides = n;
	*spec = NULL;
	rc = expt_spec_load(spec, &opts, &diags, &err);
	for (i = 0; i < diags.n; i++) {
		char line[2048];
		expt_diag_format(&diags.v[i], line, sizeof(line));
		expt_strv_push(msgs, line);
	}
	if (rc == 0) {
		assert_int_equal(diags.n, 0);
		assert_non_null(*spec);
	} else {
		assert_null(*spec);
	}
	expt_diags_release(&diags);
	return rc;
}

/* Loads and expects success. */
static struct expt_spec *must_load(const char *yaml, const char *variant, const char *const *ov)
{
	struct expt_strv msgs = EXPT_STRV_INIT;
	struct expt_spec *spec = NULL;
	int rc = load_spec(yaml, variant, ov, &spec, &msgs);
	size_t i;

	for (i = 0; i < msgs.n; i++)
		print_message("unexpected: %s\n", msgs.v[i]);
	assert_int_equal(rc, 0);
	expt_strv_release(&msgs);
	return spec;
}

/* Loads and expects exactly the problems in want (NULL-terminated), in order; returns whether
 * they matched (the table test reports every mismatching case before failing). */
static int must_fail(const char *yaml, const char *variant, const char *const *ov,
		     const char *const *want)
{
	struct expt_strv msgs = EXPT_STRV_INIT;
	struct expt_spec *spec = NULL;
	int rc = load_spec(yaml, variant, ov, &spec, &msgs);
	size_t n = 0, i;
	int same;

	while (want[n])
		n++;
	same = msgs.n == n;
	for (i = 0; same && i < n; i++)
		same = !strcmp(msgs.v[i], want[i]);
	if (!same) {
		for (i = 0; i < n; i++)
			print_message("want: %s\n", want[i]);
		for (i = 0; i < msgs.n; i++)
			print_message("got:  %s\n", msgs.v[i]);
	}
	assert_int_equal(rc, EXPT_EUSAGE);
	expt_strv_release(&msgs);
	return same;
}

/* "name=text" of run i's params, joined by spaces: compact for asserting a whole sweep. */
static char *run_str(const struct expt_spec *s, size_t i)
{
	struct expt_buf b = EXPT_BUF_INIT;
	size_t j;

	for (j = 0; j < s->runs[i].params.n; j++)
		expt_buf_addf(&b, "%s%s=%s", j ? " " : "", s->runs[i].params.v[j].name,
			      s->runs[i].params.v[j].value.text);
	return expt_buf_detach(&b, NULL);
}

static void assert_runs(const struct expt_spec *s, const char *const *want)
{
	size_t n = 0, i;

	while (want[n])
		n++;
	if (s->nruns != n)
		print_message("runs: got %zu, want %zu\n", s->nruns, n);
	for (i = 0; i < s->nruns && i < n; i++) {
		char *got = run_str(s, i);
		if (strcmp(got, want[i]))
			print_message("run %zu: got  %s\n       want %s\n", i, got, want[i]);
		assert_string_equal(got, want[i]);
		assert_int_equal(s->runs[i].index, i);
		free(got);
	}
	assert_int_equal(s->nruns, n);
}

#define STRS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* TESTS */
/* ---- the table of bad specs: every expected problem, exactly ---- */

struct bad_case {
	const char *what;
	const char *yaml;
	const char *variant;
	const char *const *ov;
	const char *const *want;
};

static const struct bad_case bad_cases[] = {
    {"unknown field, with a suggestion", "command: x\nparalel: 2\n", NULL, NULL,
     STRS("expt.yaml:2:1: paralel: unknown field (did you mean 'parallel'?)")},
    {"unknown nested field", "command: x\nresources: {memroy: 1Gi}\n", NULL, NULL,
     STRS("expt.yaml:2:13: resources.memroy: unknown field (did you mean 'memory'?)")},
    {"unknown field, nothing close", "command: x\nzebra: 1\n", NULL, NULL,
     STRS("expt.yaml:2:1: zebra: unknown field")},
    {"wrong type", "command: x\nparallel: four\n", NULL, NULL,
     STRS("expt.yaml:2:11: parallel: expected an integer, got 'four'")},
    {"parallel < 1", "command: x\nparallel: 0\n", NULL, NULL,
     STRS("expt.yaml:2:11: parallel: expected an integer from 1 to 100000, got '0'")},
    {"bad memory quantity", "command: x\nresources:\n  memory: 1Gb\n", NULL, NULL,
     STRS("expt.yaml:3:11: resources.memory: expected a quantity like 512Mi or 2Gi, got "
	  "'1Gb'")},
    {"bad cpu, negative gpu", "command: x\nresources: {cpu: lots, gpu: -1}\n", NULL, NULL,
     STRS("expt.yaml:2:18: resources.cpu: expected a CPU quantity like 2, 0.5 or 500m, got "
	  "'lots'",
	  "expt.yaml:2:29: resources.gpu: expected an integer from 0 to 1024, got '-1'")},
    {"a name with a space", "name: my exp\ncommand: x\n", NULL, NULL,
     STRS("expt.yaml:1:7: name: expected a name of letters, digits, '_', '.' and '-', starting "
	  "with a letter or digit, at most 128 characters, got 'my exp'")},
    {"a name starting with a dot", "name: .hidden\ncommand: x\n", NULL, NULL,
     STRS("expt.yaml:1:7: name: expected a name of letters, digits, '_', '.' and '-', starting "
	  "with a letter or digit, at most 128 characters, got '.hidden'")},
    {"missing command", "name: a\n", NULL, NULL,
     STRS("expt.yaml:1:1: command: required field is missing")},
    {"empty command", "command: ''\n", NULL, NULL,
     STRS("expt.yaml:1:10: command: the command is empty")},
    {"unterminated quote in command", "command: python 'train.py\n", NULL, NULL,
     STRS("expt.yaml:1:10: command: unterminated ' quote")},
    {"empty sweep list", "command: x\nsweep: {lr: []}\n", NULL, NULL,
     STRS("expt.yaml:2:13: sweep.lr: empty list: a swept param needs at least one value")},
    {"empty sweep map", "command: x\nsweep: {}\n", NULL, NULL,
     STRS("expt.yaml:2:8: sweep: empty map: name at least one param to sweep")},
    {"sweep axis not a list", "command: x\nsweep:\n  lr: 0.1\n", NULL, NULL,
     STRS("expt.yaml:3:7: sweep.lr: expected a list of values, got '0.1'")},
    {"placeholder naming no param",
     "command: x\nparams: {lr: 0.1}\nargs: --lr {lrr} --out {output_dir}\n", NULL, NULL,
     STRS("expt.yaml:3:7: args: '{lrr}' names no param (did you mean 'lr'?); placeholders "
	  "are params, {run_id}, {output_dir}, {inputs.NAME} and {outputs.NAME}")},
    {"placeholder of a swept param is fine, unknown one is not",
     "command: x\nsweep: {seed: [1, 2]}\nargs: '{seed} {run_id} {nope}'\n", NULL, NULL,
     STRS("expt.yaml:3:7: args: '{nope}' names no param; placeholders are params, {run_id}, "
	  "{output_dir}, {inputs.NAME} and {outputs.NAME}")},
    {"unknown backend, bad on_conflict", "command: x\nbackend: k8s\non_conflict: replce\n", NULL,
     NULL,
     STRS("expt.yaml:2:10: backend: expected local, container or kubernetes, got 'k8s'",
	  "expt.yaml:3:14: on_conflict: expected fail, replace or new-id, got 'replce' (did "
	  "you mean 'replace'?)")},
    {"bad duration", "command: x\ntimeout: forever\n", NULL, NULL,
     STRS("expt.yaml:2:10: timeout: expected a duration like 90s, 30m or 2h, got 'forever'")},
    {"bool is not yes", "command: x\nshell: yes\n", NULL, NULL,
     STRS("expt.yaml:2:8: shell: expected true or false, got 'yes'")},
    {"map where a string goes", "command: x\nimage: {a: 1}\n", NULL, NULL,
     STRS("expt.yaml:2:8: image: expected a string, got a map")},
    {"param names", "command: x\nparams: {9lives: 1, run_id: 2, ok-name: 3, ok_name: 4}\n", NULL,
     NULL,
     STRS("expt.yaml:2:9: params: params 'ok-name' and 'ok_name' would both be passed as "
	  "EXPT_PARAM_OK_NAME",
	  "expt.yaml:2:10: params.9lives: param names start with a letter or '_' and hold "
	  "only letters, digits, '_' and '-' (at most 64)",
	  "expt.yaml:2:21: params.run_id: 'run_id' is reserved for the {run_id} placeholder")},
    {"env names", "command: x\nenv:\n  1A: x\n  EXPT_RUN_ID: y\n  OK: [1]\n", NULL, NULL,
     STRS("expt.yaml:3:3: env.1A: environment variable names hold letters, digits and '_', "
	  "and do not start with a digit",
	  "expt.yaml:4:3: env.EXPT_RUN_ID: EXPT_ variables are set by expt for each run",
	  "expt.yaml:5:7: env.OK: expected a string, got a list")},
    {"inputs and outputs",
     "command: x\ninputs:\n  data: {mount: data, from: http://x}\n  Bad: /x\noutputs:\n"
     "  model: {mount: /out}\n",
     NULL, NULL,
     STRS("expt.yaml:3:17: inputs.data.mount: expected an absolute path, got 'data'",
	  "expt.yaml:3:29: inputs.data.from: expected a path or an nfs://, pvc:// or s3:// "
	  "URL, got 'http://x'",
	  "expt.yaml:4:3: inputs.Bad: expected a DNS-1123 label (lowercase letters, digits "
	  "and '-', starting and ending with a letter or digit, at most 63 characters), got "
	  "'Bad'; try 'bad'",
	  "expt.yaml:6:10: outputs.model.to: required field is missing")},
    {"kubernetes section",
     "command: x\nimage: i\nbackend: kubernetes\nkubernetes:\n  namespace: ML\n"
     "  tolerations: [{key: gpu, operator: Exist, efect: NoSchedule}]\n"
     "  service_account: Bad_SA\n",
     NULL, NULL,
     STRS("expt.yaml:5:14: kubernetes.namespace: expected a DNS-1123 label (lowercase "
	  "letters, digits and '-', starting and ending with a letter or digit, at most 63 "
	  "characters), got 'ML'; try 'ml'",
	  "expt.yaml:6:38: kubernetes.tolerations[0].operator: expected Equal or Exists, got "
	  "'Exist' (did you mean 'Exists'?)",
	  "expt.yaml:6:45: kubernetes.tolerations[0].efect: unknown field (did you mean "
	  "'effect'?)",
	  "expt.yaml:7:20: kubernetes.service_account: ServiceAccount names are DNS-1123 "
	  "subdomains (lowercase letters, digits, '-' and '.'), got 'Bad_SA'")},
    {"build section",
     "command: x\nbuild:\n  base: python:3.12\n  repository: ghcr.io/Org/app\n"
     "  context: ../up\n  workdir: app\n  platform: linux\n  entrypoint: {a: b}\n"
     "  insecure: yes please\n  includ: [x]\n",
     NULL, NULL,
     STRS("expt.yaml:4:15: build.repository: expected an image name with its registry like "
	  "127.0.0.1:5000/team/app or ghcr.io/org/app (a repository path is lowercase letters, "
	  "digits and '.', '_', '-' between them, parts separated by '/'), got "
	  "'ghcr.io/Org/app'",
	  "expt.yaml:5:12: build.context: expected a directory inside the project (relative, no "
	  "..), got '../up'",
	  "expt.yaml:6:12: build.workdir: expected an absolute directory like /app, got 'app'",
	  "expt.yaml:7:13: build.platform: expected OS/ARCH or OS/ARCH/VARIANT like linux/amd64 "
	  "or linux/arm64/v8, got 'linux'",
	  "expt.yaml:8:15: build.entrypoint: expected a command line or a list of words, got a "
	  "map",
	  "expt.yaml:9:13: build.insecure: expected true or false, got 'yes please'",
	  "expt.yaml:10:3: build.includ: unknown field (did you mean 'include'?)")},
    {"build: repository with a tag, no base, image: build",
     "command: x\nimage: build\nbuild:\n"
     "  repository: 127.0.0.1:5000/a/b:v1\n",
     NULL, NULL,
     STRS("expt.yaml:3:1: build.base: required field is missing: the image the code goes on "
	  "(127.0.0.1:5000/expt/python3:bookworm), or dockerfile: for a Dockerfile build",
	  "expt.yaml:4:15: build.repository: expected a name without a tag or digest (expt "
	  "tags the image with the digest of its content), got '127.0.0.1:5000/a/b:v1'")},
    {"build: Docker Hub needs its host; base and dockerfile",
     "command: x\nbuild: {base: python, repository: org/app, dockerfile: D}\n"
     "variants: {v: {}}\n",
     NULL, NULL,
     STRS("expt.yaml:2:15: build.base: base and dockerfile exclude each other: the Dockerfile's "
	  "FROM names the base",
	  "expt.yaml:2:35: build.repository: expected the registry host first "
	  "(docker.io/org/app for Docker Hub, HOST:PORT/org/app for another registry), got "
	  "'org/app'")},
    {"image: build without build", "command: x\nimage: build\n", NULL, NULL,
     STRS("expt.yaml:2:8: image: image: build needs a build: section (docs/images.md)")},
    {"kubernetes backend without an image", "command: x\nbackend: kubernetes\n", NULL, NULL,
     STRS("expt.yaml:2:10: image: backend kubernetes needs an image (or a build: section)")},
    {"tracking", "command: x\ntracking: {uri: localhost, sinks: [store, mlfow]}\n", NULL, NULL,
     STRS("expt.yaml:2:17: tracking.uri: expected an MLflow server's address: http://host:5000, "
	  "https://host or mlflow://host:5000, got 'localhost'",
	  "expt.yaml:2:43: tracking.sinks[1]: expected store, stdout, console, jsonl, tensorboard "
	  "or "
	  "mlflow, got 'mlfow' (did you mean 'mlflow'?)")},
    {"tracking.uri without the mlflow sink",
     "command: x\ntracking: {uri: 'http://h:5000', sinks: [store]}\n", NULL, NULL,
     STRS("expt.yaml:2:41: tracking.sinks: tracking.uri is set but the list leaves out mlflow: "
	  "add mlflow (or remove tracking.uri)")},
    {"the mlflow sink without tracking.uri", "command: x\ntracking: {sinks: [mlflow]}\n", NULL,
     NULL,
     STRS("expt.yaml:2:19: tracking.sinks: names mlflow but tracking.uri is not set: say where "
	  "the MLflow server is (tracking.uri: http://host:5000)")},
    {"secrets and files", "command: x\nsecrets: [Bad_Secret]\nfiles: {../x: ./y}\n", NULL, NULL,
     STRS("expt.yaml:2:11: secrets[0]: Secret names are DNS-1123 subdomains (lowercase "
	  "letters, digits, '-' and '.'), got 'Bad_Secret'",
	  "expt.yaml:3:9: files.../x: the path in the run must not leave its directory")},
    {"all problems at once, in file order",
     "paralel: 2\nname: Bad!\nresources: {memory: 1Gb}\nsweep: {lr: []}\n", NULL, NULL,
     STRS("expt.yaml:1:1: paralel: unknown field (did you mean 'parallel'?)",
	  "expt.yaml:1:1: command: required field is missing",
	  "expt.yaml:2:7: name: expected a name of letters, digits, '_', '.' and '-', starting "
	  "with a letter or digit, at most 128 characters, got 'Bad!'",
	  "expt.yaml:3:21: resources.memory: expected a quantity like 512Mi or 2Gi, got "
	  "'1Gb'",
	  "expt.yaml:4:13: sweep.lr: empty list: a swept param needs at least one value")},
    /* YAML itself */
    {"YAML syntax error", "command: x\nparams: [1, 2\n", NULL, NULL,
     STRS("expt.yaml:3:1: flow sequence without a closing bracket")},
    {"bad indentation", "command: x\n  params: 1\n", NULL, NULL,
     STRS("expt.yaml:1:10: invalid multiline plain key")},
    {"duplicate key", "command: x\nparallel: 1\nparallel: 2\n", NULL, NULL,
     STRS("expt.yaml:3:1: duplicate key 'parallel' (first at line 2)")},
    {"unknown alias", "command: *nope\n", NULL, NULL,
     STRS("expt.yaml:1:10: unknown alias '*nope'")},
    {"unsupported tag", "command: !python/object x\n", NULL, NULL,
     STRS("expt.yaml:1:10: unsupported tag '!python/object'")},
    {"two documents", "command: x\n---\ncommand: y\n", NULL, NULL,
     STRS("expt.yaml:2:1: expected one YAML document, found another")},
    {"not a map", "- command\n", NULL, NULL,
     STRS("expt.yaml:1:1: expected a map of fields at the top level, got a list")},
    {"empty file", "", NULL, NULL,
     STRS("expt.yaml:1:1: the spec is empty; it needs at least a command")},
    {"alias bomb",
     "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, "
     "*c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     NULL, NULL, STRS("expt.yaml:5:32: the document is too large (more than 100000 nodes)")},
    {"nesting too deep",
     "a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     NULL, NULL, STRS("expt.yaml:1:51: nesting is deeper than 48 levels")},
    /* sweeps */
    {"random sweep without samples",
     "command: x\nsweep:\n  method: random\n  params: {lr: {min: 0.1, max: 0.01}}\n", NULL, NULL,
     STRS("expt.yaml:2:1: sweep.samples: required with method: random (how many runs to "
	  "draw)",
	  "expt.yaml:4:16: sweep.params.lr: min (0.1) is greater than max (0.01)")},
    {"random sweep problems",
     "command: x\nsweep:\n  method: random\n  samples: 0\n  seed: -1\n  params:\n"
     "    a: {min: 0, max: 1, log: true}\n    b: {min: x, max: 1, step: 2}\n    c: 5\n",
     NULL, NULL,
     STRS("expt.yaml:4:12: sweep.samples: expected an integer >= 1, got '0'",
	  "expt.yaml:5:9: sweep.seed: expected an integer >= 0, got '-1'",
	  "expt.yaml:7:8: sweep.params.a: a log range needs min > 0, got 0",
	  "expt.yaml:8:14: sweep.params.b.min: expected a number, got 'x'",
	  "expt.yaml:8:25: sweep.params.b.step: unknown field",
	  "expt.yaml:9:8: sweep.params.c: expected a list of choices or {min: A, max: B}, got "
	  "'5'")},
    {"unknown method", "command: x\nsweep: {method: bayes, params: {lr: [1]}}\n", NULL, NULL,
     STRS("expt.yaml:2:17: sweep.method: expected grid, random or list, got 'bayes'")},
    {"long form keys",
     "command: x\nsweep: {method: grid, params: {lr: [1]}, samples: 3, lr: [2]}\n", NULL, NULL,
     STRS("expt.yaml:2:42: sweep.samples: only used with method: random",
	  "expt.yaml:2:54: sweep.lr: unknown field; with method:, params go under "
	  "sweep.params")},
    {"trials", "command: x\nsweep:\n  trials: []\n", NULL, NULL,
     STRS("expt.yaml:3:11: sweep.trials: empty list: give at least one trial")},
    {"trials entries", "command: x\nsweep:\n  trials: [{lr: 1}, 5, {9: 1}]\n", NULL, NULL,
     STRS("expt.yaml:3:21: sweep.trials[1]: expected a map of param: value, got '5'",
	  "expt.yaml:3:25: sweep.trials[2].9: param names start with a letter or '_' and "
	  "hold only letters, digits, '_' and '-' (at most 64)")},
    {"too many runs",
     "command: x\nsweep:\n  a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  b: [1, 2, 3, 4, 5, 6, 7, "
     "8, 9, 10]\n  c: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  d: [1, 2, 3, 4, 5, 6, 7, 8, 9, "
     "10]\n  e: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n  f: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n",
     NULL, NULL,
     STRS("expt.yaml:3:3: sweep: the sweep expands to more than 100000 runs; split it up")},
    {"too many random samples",
     "command: x\nsweep: {method: random, samples: 100001, "
     "params: {a: [1]}}\n",
     NULL, NULL,
     STRS("expt.yaml:2:8: sweep: the sweep expands to more than 100000 runs; split it up")},
    /* variants */
    {"variant problems",
     "command: x\nvariants:\n  big: {paralel: 2}\n  a: {extends: b}\n  b: {extends: a}\n"
     "  c: {extends: nope}\n  d: 5\n  bad name: {}\n  e: {variants: {}}\n",
     NULL, NULL,
     STRS("expt.yaml:3:9: variants.big.paralel: unknown field (did you mean 'parallel'?)",
	  "expt.yaml:4:16: variants.a.extends: variants extend each other in a cycle: a -> "
	  "b -> a",
	  "expt.yaml:6:16: variants.c.extends: no variant named 'nope'",
	  "expt.yaml:7:6: variants.d: expected a map of fields, got '5'",
	  "expt.yaml:8:3: variants.bad name: variant names hold letters, digits, '-' and '_' "
	  "(at most 63)",
	  "expt.yaml:9:7: variants.e.variants: variants cannot be nested in a variant")},
    {"unknown variant", "command: x\nvariants:\n  cluster: {backend: local}\n", "clster", NULL,
     STRS("expt.yaml:2:1: variants: no variant named 'clster' (did you mean 'cluster'?)")},
    {"no variants at all", "command: x\n", "big", NULL,
     STRS("expt.yaml: variants: no variant named 'big': the spec defines no variants")},
    {"a variant's values are validated after merging",
     "command: x\nvariants:\n  big: {resources: {memory: 4Gb}}\n", "big", NULL,
     STRS("expt.yaml:3:29: resources.memory: expected a quantity like 512Mi or 2Gi, got "
	  "'4Gb'")},
    /* overrides */
    {"override problems", "command: x\nparams: {lr: 0.1}\n", NULL,
     STRS("paralel=3", "resources.memory=1Gb", "resourses.memory=1Gi", "lr=0.1,,0.2", "env.A=1,2",
	  "params.run_id=1", "noeq", "=x", "variants.a.image=x", "a..b=1", "image=[1",
	  "parallel=0"),
     STRS("<command line>: argument 1: paralel: not a field and not a param of this spec "
	  "(did you mean 'parallel'?); write params.paralel=... to add a new param",
	  "<command line>: argument 2: resources.memory: expected a quantity like 512Mi or "
	  "2Gi, got '1Gb'",
	  "<command line>: argument 3: resourses: unknown field (did you mean 'resources'?)",
	  "<command line>: argument 4: params.lr: empty value in 'lr=0.1,,0.2'",
	  "<command line>: argument 5: env.A: only params can take several values (a "
	  "sweep); write \\, for a literal comma",
	  "<command line>: argument 6: params.run_id: 'run_id' is reserved for the {run_id} "
	  "placeholder",
	  "<command line>: argument 7: expected key=value, got 'noeq'",
	  "<command line>: argument 8: expected key=value, got '=x'",
	  "<command line>: argument 9: variants: variants cannot be set from the command "
	  "line; choose one with -v NAME",
	  "<command line>: argument 10: empty name in 'a..b'",
	  "<command line>: argument 11: image: invalid value: flow sequence without a "
	  "closing bracket",
	  "<command line>: argument 12: parallel: expected an integer from 1 to 100000, got "
	  "'0'")},
    {"override keys: too deep, and control characters", "command: x\n", NULL,
     STRS("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q=1", "x\033[31m=1"),
     STRS("<command line>: argument 1: 'a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q' nests more than "
	  "16 levels",
	  "<command line>: argument 2: params.x?[31m: param names start with a letter or '_' "
	  "and hold only letters, digits, '_' and '-' (at most 64)")},
    {"sweeping a param of a trials list", "command: x\nsweep: {trials: [{lr: 1}]}\n", NULL,
     STRS("lr=1,2"),
     STRS("<command line>: argument 1: params.lr: cannot sweep 'lr' here: the spec's sweep "
	  "is a list of trials; give one value to set it in every trial")},
    {"spec and command-line problems together", "command: x\nretries: -1\n", NULL,
     STRS("timeout=soon"),
     STRS("expt.yaml:2:10: retries: expected an integer from 0 to 100, got '-1'",
	  "<command line>: argument 1: timeout: expected a duration like 90s, 30m or 2h, got "
	  "'soon'")},
};

static void test_bad_specs(void **state)
{
	size_t i, failed = 0;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		if (!must_fail(bad_cases[i].yaml, bad_cases[i].variant, bad_cases[i].ov,
			       bad_cases[i].want)) {
			print_message("^ case: %s\n", bad_cases[i].what);
			failed++;
		}
	}
	assert_int_equal(failed, 0);
}

static void test_missing_file(void **state)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *spec = NULL;

	(void)state;
	opts.path = "no-such.yaml";
	assert_int_equal(expt_spec_load(&spec, &opts, &diags, &err), EXPT_ENOTFOUND);
	assert_null(spec);
	assert_int_equal(diags.n, 0);
	assert_non_null(strstr(err.msg, "no-such.yaml"));
}

static void test_summary_error(void **state)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *spec = NULL;
	char line[512];

	(void)state;
	write_text("expt.yaml", "parallel: x\n");
	opts.path = "expt.yaml";
	assert_int_equal(expt_spec_load(&spec, &opts, &diags, &err), EXPT_EUSAGE);
	assert_int_equal(err.code, EXPT_EUSAGE);
	expt_err_format(&err, line, sizeof(line));
	assert_string_equal(line, "expt.yaml: 2 problems in the spec");
	assert_int_equal(diags.n, 2);
	assert_string_equal(diags.v[0].field, "command");
	assert_string_equal(diags.v[1].field, "parallel");
	assert_string_equal(diags.v[1].file, "expt.yaml");
	assert_int_equal(diags.v[1].line, 1);
	assert_int_equal(diags.v[1].col, 11);
	assert_string_equal(diags.v[1].msg, "expected an integer, got 'x'");
	expt_diags_release(&diags);
	expt_diags_release(&diags); /* releasing twice is harmless */
}

/* ---- good specs ---- */

static const char design_spec[] =
    "name: mnist\n"
    "image: localhost:5000/mnist\n"
    "command: python train.py\n"
    "args: auto\n"
    "params: {lr: 0.01, epochs: 3, optimizer: adam}\n"
    "sweep:  {lr: [0.1, 0.01, 0.001], batch: [32, 64]}\n"
    "parallel: 4\n"
    "resources: {cpu: 2, memory: 1Gi, gpu: 1}\n"
    "inputs:  {data:   {mount: /data, from: nfs://server/exports/mnist, readonly: true}}\n"
    "outputs: {model:  {mount: /outputs, to: pvc://expt-outputs}}\n"
    "env: {PYTHONUNBUFFERED: \"1\"}\n"
    "secrets: [aws-creds]\n"
    "files: {conf/train.json: ./conf/train.json}\n"
    "retries: 1\n"
    "timeout: 2h\n"
    "on_conflict: fail\n"
    "cleanup: {failed: keep, succeeded: 1h}\n"
    "tracking: {uri: mlflow://mlflow.expt.svc:5000, tensorboard: true}\n"
    "backend: local\n"
    "kubernetes: {context: lab, namespace: ml, node_selector: {}, tolerations: [], "
    "service_account: trainer}\n"
    "variants:\n"
    "  big:     {params: {hidden: 1024}, resources: {memory: 4Gi}}\n"
    "  cluster: {extends: big, backend: kubernetes, image: registry.lab/mnist}\n";

static void test_design_spec(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load(design_spec, NULL, NULL);
	assert_string_equal(s->name, "mnist");
	assert_string_equal(s->path, "expt.yaml");
	assert_string_equal(s->dir, spec_test_dir);
	assert_null(s->variant);
	assert_string_equal(s->image, "localhost:5000/mnist");
	assert_int_equal(s->command.n, 2);
	assert_string_equal(s->command.v[0], "python");
	assert_string_equal(s->command.v[1], "train.py");
	assert_string_equal(s->command_line, "python train.py");
	assert_int_equal(s->shell, 0);
	assert_string_equal(s->args, "auto");
	assert_int_equal(s->params.n, 3);
	assert_string_equal(expt_params_get(&s->params, "lr")->text, "0.01");
	assert_int_equal(expt_params_get(&s->params, "lr")->type, EXPT_VT_FLOAT);
	assert_int_equal(expt_params_get(&s->params, "epochs")->type, EXPT_VT_INT);
	assert_int_equal(expt_params_get(&s->params, "optimizer")->type, EXPT_VT_STR);
	assert_null(expt_params_get(&s->params, "batch"));
	assert_int_equal(s->parallel, 4);
	assert_int_equal(s->resources.cpu_milli, 2000);
	assert_int_equal(s->resources.memory_bytes, 1024 * 1024 * 1024);
	assert_int_equal(s->resources.gpu, 1);
	assert_int_equal(s->inputs.n, 1);
	assert_string_equal(s->inputs.v[0].name, "data");
	assert_string_equal(s->inputs.v[0].mount, "/data");
	assert_string_equal(s->inputs.v[0].url, "nfs://server/exports/mnist");
	assert_int_equal(s->inputs.v[0].readonly, 1);
	assert_int_equal(s->outputs.n, 1);
	assert_string_equal(s->outputs.v[0].url, "pvc://expt-outputs");
	assert_int_equal(s->outputs.v[0].readonly, 0);
	assert_int_equal(s->env.n, 1);
	assert_string_equal(s->env.v[0].key, "PYTHONUNBUFFERED");
	assert_string_equal(s->env.v[0].value, "1");
	assert_int_equal(s->secrets.n, 1);
	assert_string_equal(s->files.v[0].key, "conf/train.json");
	assert_string_equal(s->files.v[0].value, "./conf/train.json");
	assert_int_equal(s->retries, 1);
	assert_int_equal(s->timeout_ms, 2 * 3600 * 1000);
	assert_string_equal(s->on_conflict, "fail");
	assert_int_equal(s->cleanup_failed_ms, -1);
	assert_int_equal(s->cleanup_succeeded_ms, 3600 * 1000);
	assert_string_equal(s->tracking.uri, "mlflow://mlflow.expt.svc:5000");
	assert_int_equal(s->tracking.tensorboard, 1);
	assert_string_equal(s->tracking.metrics_prefix, "expt:");
	assert_int_equal(s->tracking.sinks.n, 3);
	assert_string_equal(s->tracking.sinks.v[0], "store");
	assert_string_equal(s->tracking.sinks.v[1], "tensorboard");
	assert_string_equal(s->tracking.sinks.v[2], "mlflow");
	assert_string_equal(s->backend, "local");
	assert_string_equal(s->kubernetes.context, "lab");
	assert_string_equal(s->kubernetes.namespace_, "ml");
	assert_string_equal(s->kubernetes.service_account, "trainer");
	assert_string_equal(s->kubernetes.tolerations_json, "[]");
	assert_int_equal(s->param_names.n, 4);
	assert_string_equal(s->param_names.v[3], "batch");
	/* grid in key order, the last key varying fastest; swept values override params */
	assert_runs(s, STRS("lr=0.1 epochs=3 optimizer=adam batch=32",
			    "lr=0.1 epochs=3 optimizer=adam batch=64",
			    "lr=0.01 epochs=3 optimizer=adam batch=32",
			    "lr=0.01 epochs=3 optimizer=adam batch=64",
			    "lr=0.001 epochs=3 optimizer=adam batch=32",
			    "lr=0.001 epochs=3 optimizer=adam batch=64"));
	assert_string_equal(
	    s->resolved_json,
	    "{\"name\":\"mnist\",\"image\":\"localhost:5000/mnist\",\"command\":\"python "
	    "train.py\",\"shell\":false,\"args\":\"auto\",\"params\":{\"lr\":0.01,\"epochs\":3,"
	    "\"optimizer\":\"adam\"},\"sweep\":{\"lr\":[0.1,0.01,0.001],\"batch\":[32,64]},"
	    "\"parallel\":4,\"resources\":{\"cpu\":2,\"memory\":\"1Gi\",\"gpu\":1},\"inputs\":{"
	    "\"data\":{\"mount\":\"/data\",\"from\":\"nfs://server/exports/mnist\",\"readonly\":"
	    "true}},\"outputs\":{\"model\":{\"mount\":\"/outputs\",\"to\":\"pvc://"
	    "expt-outputs\"}},\"env\":{\"PYTHONUNBUFFERED\":\"1\"},\"secrets\":[\"aws-creds\"],"
	    "\"files\":{\"conf/train.json\":\"./conf/train.json\"},\"retries\":1,\"timeout\":"
	    "\"2h\",\"on_conflict\":\"fail\",\"cleanup\":{\"failed\":\"keep\",\"succeeded\":"
	    "\"1h\"},\"tracking\":{\"uri\":\"mlflow://mlflow.expt.svc:5000\",\"tensorboard\":"
	    "true},\"backend\":\"local\",\"kubernetes\":{\"context\":\"lab\",\"namespace\":"
	    "\"ml\",\"node_selector\":{},\"tolerations\":[],\"service_account\":\"trainer\"}}");
	expt_spec_free(s);
}

static void test_defaults_and_name_from_dir(void **state)
{
	struct expt_spec *s;

	(void)state;
	assert_int_equal(mkdir("My Project_2", 0755), 0);
	assert_int_equal(chdir("My Project_2"), 0);
	s = must_load("command: [python, -c, 'print(1)']\n", NULL, NULL);
	assert_int_equal(chdir(".."), 0);
	assert_string_equal(s->name, "my-project-2");
	assert_int_equal(s->command.n, 3);
	assert_string_equal(s->command.v[2], "print(1)");
	assert_string_equal(s->command_line, "python -c print(1)");
	assert_int_equal(s->parallel, 1);
	assert_int_equal(s->retries, 0);
	assert_int_equal(s->timeout_ms, 0);
	assert_string_equal(s->args, "auto");
	assert_string_equal(s->backend, "local");
	assert_string_equal(s->on_conflict, "fail");
	assert_null(s->image);
	assert_null(s->tracking.uri);
	assert_int_equal(s->tracking.sinks.n, 1);
	assert_string_equal(s->tracking.sinks.v[0], "store");
	assert_int_equal(s->cleanup_failed_ms, -1);
	assert_int_equal(s->cleanup_succeeded_ms, -1);
	assert_int_equal(s->nruns, 1);
	assert_int_equal(s->runs[0].params.n, 0);
	assert_string_equal(
	    s->resolved_json,
	    "{\"name\":\"my-project-2\",\"command\":[\"python\",\"-c\",\"print(1)\"],"
	    "\"shell\":false,\"args\":\"auto\",\"params\":{},\"parallel\":1,"
	    "\"retries\":0,\"on_conflict\":\"fail\",\"backend\":\"local\"}");
	expt_spec_free(s);
}

static void test_scalar_types(void **state)
{
	struct expt_spec *s;
	const struct {
		const char *name, *text;
		enum expt_vtype type;
	} want[] = {
	    {"a", "16", EXPT_VT_INT},
	    {"b", "15", EXPT_VT_INT},
	    {"c", "0.001", EXPT_VT_FLOAT},
	    {"d", "1.0", EXPT_VT_FLOAT},
	    {"e", "1e+20", EXPT_VT_FLOAT},
	    {"f", "inf", EXPT_VT_FLOAT},
	    {"g", "true", EXPT_VT_BOOL},
	    {"h", "", EXPT_VT_NULL},
	    {"i", "3", EXPT_VT_STR},
	    {"j", "yes", EXPT_VT_STR},
	    {"k", "[1,\"a\",{\"b\":null}]", EXPT_VT_JSON},
	    {"l", "3.0", EXPT_VT_FLOAT},
	    {"m", "-7", EXPT_VT_INT},
	    {"n", "1e+400", EXPT_VT_STR},
	    {"o", "2.5e-07", EXPT_VT_FLOAT},
	};
	size_t i;

	(void)state;
	s = must_load("command: x\nparams:\n  a: 0x10\n  b: 0o17\n  c: 1e-3\n  d: 1.0\n"
		      "  e: 100000000000000000000\n  f: .inf\n  g: True\n  h: ~\n  i: '3'\n"
		      "  j: yes\n  k: [1, a, {b: null}]\n  l: !!float 3\n  m: -7\n"
		      "  n: !!str 1e+400\n  o: 0.00000025\n",
		      NULL, NULL);
	assert_int_equal(s->params.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct expt_value *v = expt_params_get(&s->params, want[i].name);
		assert_non_null(v);
		print_message("param %s = %s\n", want[i].name, v->text);
		assert_string_equal(v->text, want[i].text);
		assert_int_equal(v->type, want[i].type);
	}
	expt_spec_free(s);
}

static void test_yaml_features(void **state)
{
	struct expt_spec *s;

	(void)state;
	/* x- keys hold anchors; << merges; explicit keys win over merged ones. */
	s = must_load("x-common: &common {lr: 0.1, epochs: 2}\n"
		      "command: >-\n  python\n  train.py\n"
		      "params:\n  <<: *common\n  epochs: 5\n",
		      NULL, NULL);
	assert_string_equal(s->command_line, "python train.py");
	assert_runs(s, STRS("epochs=5 lr=0.1"));
	assert_null(strstr(s->resolved_json, "x-common"));
	expt_spec_free(s);
}

static void test_quoted_scalars(void **state)
{
	struct expt_spec *s;

	(void)state;
	/* Single-quoted scalars are decoded by expt (libfyaml 0.7.12 leaks on five or more ''):
	 * '' is a quote and line breaks fold. */
	s = must_load("command: x\nparams:\n  a: 'it''s ''q'' ''r'' ''s'' ''t'''\n"
		      "  b: 'one\n    two  \n\n    three'\n  c: \"tab\\tnl\\n\"\n",
		      NULL, NULL);
	assert_string_equal(expt_params_get(&s->params, "a")->text, "it's 'q' 'r' 's' 't'");
	assert_string_equal(expt_params_get(&s->params, "b")->text, "one two\nthree");
	assert_string_equal(expt_params_get(&s->params, "c")->text, "tab\tnl\n");
	expt_spec_free(s);
}

static void test_not_utf8(void **state)
{
	const char *const want[] = {"expt.yaml:2:8: the file is not valid UTF-8", NULL};
	const char *const want_nul[] = {"expt.yaml:1:4: the file contains a NUL byte", NULL};
	FILE *f;

	(void)state;
	/* libfyaml 0.7.12 can hang on invalid UTF-8, so it never sees it */
	assert_false(!must_fail("command: x\nimage: \xc3\x28\n", NULL, NULL, want));
	f = fopen("expt.yaml", "w");
	assert_non_null(f);
	fwrite("a: \0b\n", 1, 6, f);
	fclose(f);
	{
		struct expt_spec_opts opts = {.path = "expt.yaml"};
		struct expt_diags d = {0};
		struct expt_err err = EXPT_ERR_INIT;
		struct expt_spec *s = NULL;
		char line[256];

		assert_int_equal(expt_spec_load(&s, &opts, &d, &err), EXPT_EUSAGE);
		assert_int_equal(d.n, 1);
		expt_diag_format(&d.v[0], line, sizeof(line));
		assert_string_equal(line, want_nul[0]);
		expt_diags_release(&d);
	}
}

static void test_resolved_json_round_trip(void **state)
{
	struct expt_spec *a, *b;
	char *first;

	(void)state;
	a = must_load(design_spec, "cluster", STRS("lr=0.5,0.25", "resources.cpu=500m"));
	first = expt_xstrdup(a->resolved_json);
	/* JSON is YAML: the resolved spec loads back as itself. */
	b = must_load(first, NULL, NULL);
	assert_string_equal(b->resolved_json, first);
	assert_int_equal(b->nruns, a->nruns);
	expt_spec_free(a);
	expt_spec_free(b);
	free(first);
}

/* ---- variants ---- */

static void test_variant_chain(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load(design_spec, "cluster", NULL);
	assert_string_equal(s->variant, "cluster");
	assert_string_equal(s->backend, "kubernetes");
	assert_string_equal(s->image, "registry.lab/mnist");
	/* from big, which cluster extends; maps merge, so cpu and gpu stay */
	assert_int_equal(s->resources.memory_bytes, 4LL * 1024 * 1024 * 1024);
	assert_int_equal(s->resources.cpu_milli, 2000);
	assert_int_equal(s->resources.gpu, 1);
	assert_string_equal(expt_params_get(&s->params, "hidden")->text, "1024");
	assert_string_equal(expt_params_get(&s->params, "lr")->text, "0.01");
	assert_int_equal(s->nruns, 6);
	assert_null(strstr(s->resolved_json, "variants"));
	assert_null(strstr(s->resolved_json, "extends"));
	expt_spec_free(s);
}

static void test_variant_merge_rules(void **state)
{
	struct expt_spec *s;
	const char *yaml = "command: python a.py\nimage: base\nparams: {a: 1, b: 2}\n"
			   "sweep: {a: [1, 2]}\nsecrets: [x, y]\n"
			   "variants:\n"
			   "  one: {params: {b: 3, c: 4}, secrets: [z], sweep: null, image: null}\n"
			   "  two: {extends: one, params: {c: 5}, command: [python, b.py]}\n"
			   "  three: {extends: two}\n";

	(void)state;
	s = must_load(yaml, "three", NULL);
	/* lists replace, maps merge, null removes; later variants win */
	assert_null(s->image);
	assert_int_equal(s->secrets.n, 1);
	assert_string_equal(s->secrets.v[0], "z");
	assert_string_equal(s->command.v[1], "b.py");
	assert_runs(s, STRS("a=1 b=3 c=5"));
	expt_spec_free(s);
	s = must_load(yaml, NULL, NULL);
	assert_runs(s, STRS("a=1 b=2", "a=2 b=2"));
	expt_spec_free(s);
}

/* ---- overrides ---- */

static const char ov_spec[] = "command: python train.py\n"
			      "params: {lr: 0.01, epochs: 3, opt: adam}\n"
			      "sweep: {lr: [0.1, 0.01], batch: [32, 64]}\n";

static void test_override_params(void **state)
{
	struct expt_spec *s;

	(void)state;
	/* one value pins a swept param: its axis keeps that value only */
	s = must_load(ov_spec, NULL, STRS("lr=0.5", "epochs=10"));
	assert_runs(
	    s, STRS("lr=0.5 epochs=10 opt=adam batch=32", "lr=0.5 epochs=10 opt=adam batch=64"));
	assert_string_equal(expt_params_get(&s->params, "lr")->text, "0.5");
	expt_spec_free(s);
	/* several values replace the axis, in place */
	s = must_load(ov_spec, NULL, STRS("lr=1,2,3"));
	assert_runs(s, STRS("lr=1 epochs=3 opt=adam batch=32", "lr=1 epochs=3 opt=adam batch=64",
			    "lr=2 epochs=3 opt=adam batch=32", "lr=2 epochs=3 opt=adam batch=64",
			    "lr=3 epochs=3 opt=adam batch=32", "lr=3 epochs=3 opt=adam batch=64"));
	expt_spec_free(s);
	/* a param that was not swept becomes a new axis, after the spec's */
	s = must_load(ov_spec, NULL, STRS("opt=sgd,adam", "batch=8"));
	assert_runs(s,
		    STRS("lr=0.1 epochs=3 opt=sgd batch=8", "lr=0.1 epochs=3 opt=adam batch=8",
			 "lr=0.01 epochs=3 opt=sgd batch=8", "lr=0.01 epochs=3 opt=adam batch=8"));
	expt_spec_free(s);
	/* the last override of a key wins */
	s = must_load(ov_spec, NULL, STRS("batch=1,2", "batch=7"));
	assert_runs(s,
		    STRS("lr=0.1 epochs=3 opt=adam batch=7", "lr=0.01 epochs=3 opt=adam batch=7"));
	expt_spec_free(s);
}

static void test_override_values(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load(
	    "command: x\nparams: {a: 1, b: 1, c: 1, d: 1, e: 1}\n", NULL,
	    STRS("a=x\\,y", "b='1,2'", "c=[1, 2]", "params.f=null", "d=\"007\"", "e=$(rm -rf ~)"));
	assert_runs(s, STRS("a=x,y b=1,2 c=[1,2] d=007 e=$(rm -rf ~) f="));
	assert_int_equal(expt_params_get(&s->params, "a")->type, EXPT_VT_STR);
	assert_int_equal(expt_params_get(&s->params, "b")->type, EXPT_VT_STR);
	assert_int_equal(expt_params_get(&s->params, "c")->type, EXPT_VT_JSON);
	assert_int_equal(expt_params_get(&s->params, "d")->type, EXPT_VT_STR);
	assert_int_equal(expt_params_get(&s->params, "f")->type, EXPT_VT_NULL);
	expt_spec_free(s);
	/* typed like YAML plain scalars */
	s = must_load("command: x\nparams: {a: 1, b: 1, c: 1, d: 1}\n", NULL,
		      STRS("a=true", "b=1e-3", "c=0x1f", "d="));
	assert_runs(s, STRS("a=true b=0.001 c=31 d="));
	assert_int_equal(expt_params_get(&s->params, "a")->type, EXPT_VT_BOOL);
	assert_int_equal(expt_params_get(&s->params, "b")->type, EXPT_VT_FLOAT);
	assert_int_equal(expt_params_get(&s->params, "c")->type, EXPT_VT_INT);
	assert_int_equal(expt_params_get(&s->params, "d")->type, EXPT_VT_NULL);
	expt_spec_free(s);
}

static void test_override_fields(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load("command: x\nimage: a\nresources: {cpu: 1}\n", NULL,
		      STRS("resources.memory=2Gi", "parallel=4", "env.FOO=bar baz",
			   "kubernetes.node_selector.gpu=a100", "image=null", "secrets=[a, b]",
			   "command=python -u t.py", "tracking={uri: 'http://h:5000'}",
			   "name=from-cli"));
	assert_int_equal(s->resources.memory_bytes, 2LL * 1024 * 1024 * 1024);
	assert_int_equal(s->resources.cpu_milli, 1000);
	assert_int_equal(s->parallel, 4);
	assert_string_equal(s->env.v[0].key, "FOO");
	assert_string_equal(s->env.v[0].value, "bar baz");
	assert_string_equal(s->kubernetes.node_selector.v[0].key, "gpu");
	assert_string_equal(s->kubernetes.node_selector.v[0].value, "a100");
	assert_null(s->image);
	assert_int_equal(s->secrets.n, 2);
	assert_int_equal(s->command.n, 3);
	assert_string_equal(s->command.v[1], "-u");
	assert_string_equal(s->tracking.uri, "http://h:5000");
	assert_string_equal(s->name, "from-cli");
	expt_spec_free(s);
	/* params.NAME may add a param the spec does not have */
	s = must_load("command: x\n", NULL, STRS("params.new=1,2"));
	assert_runs(s, STRS("new=1", "new=2"));
	expt_spec_free(s);
}

static void test_override_with_variant_and_random(void **state)
{
	struct expt_spec *a, *b;
	const char *yaml = "command: x\nsweep:\n  method: random\n  samples: 4\n  seed: 7\n"
			   "  params:\n    lr: {min: 0.0001, max: 0.1, log: true}\n"
			   "    opt: [sgd, adam, lamb]\n    layers: {min: 1, max: 8}\n";
	size_t i;

	(void)state;
	a = must_load(yaml, NULL, NULL);
	/* pinning one param leaves the draws of the others unchanged */
	b = must_load(yaml, NULL, STRS("opt=adam"));
	assert_int_equal(a->nruns, 4);
	assert_int_equal(b->nruns, 4);
	for (i = 0; i < 4; i++) {
		assert_string_equal(expt_params_get(&a->runs[i].params, "lr")->text,
				    expt_params_get(&b->runs[i].params, "lr")->text);
		assert_string_equal(expt_params_get(&a->runs[i].params, "layers")->text,
				    expt_params_get(&b->runs[i].params, "layers")->text);
		assert_string_equal(expt_params_get(&b->runs[i].params, "opt")->text, "adam");
	}
	expt_spec_free(a);
	expt_spec_free(b);
	/* several values become the choices of a random sweep */
	a = must_load(yaml, NULL, STRS("opt=x,y"));
	for (i = 0; i < 4; i++) {
		const char *o = expt_params_get(&a->runs[i].params, "opt")->text;
		assert_true(!strcmp(o, "x") || !strcmp(o, "y"));
	}
	expt_spec_free(a);
}

/* ---- sweeps ---- */

static void test_sweep_long_grid(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load("command: x\nparams: {c: 0}\nsweep:\n  method: grid\n  params:\n"
		      "    a: [1, 2]\n    b: [x, y, z]\n",
		      NULL, NULL);
	assert_runs(s, STRS("c=0 a=1 b=x", "c=0 a=1 b=y", "c=0 a=1 b=z", "c=0 a=2 b=x",
			    "c=0 a=2 b=y", "c=0 a=2 b=z"));
	expt_spec_free(s);
	/* sweep values may be lists themselves; a param named like a long-form key works in the
	 * long form */
	s = must_load("command: x\nsweep: {params: {layers: [[64, 64], [128]], method: [a]}}\n",
		      NULL, NULL);
	assert_runs(s, STRS("layers=[64,64] method=a", "layers=[128] method=a"));
	assert_int_equal(expt_params_get(&s->runs[0].params, "layers")->type, EXPT_VT_JSON);
	expt_spec_free(s);
}

static void test_sweep_trials(void **state)
{
	struct expt_spec *s;

	(void)state;
	s = must_load("command: x\nparams: {lr: 0.1, batch: 16, opt: adam}\nsweep:\n"
		      "  trials:\n    - {lr: 0.1, batch: 32}\n    - {opt: sgd, momentum: 0.9}\n"
		      "    - {}\n",
		      NULL, STRS("batch=64"));
	/* trial values over params; the one-value override sets batch in every trial */
	assert_runs(s, STRS("lr=0.1 batch=64 opt=adam", "lr=0.1 batch=64 opt=sgd momentum=0.9",
			    "lr=0.1 batch=64 opt=adam"));
	expt_spec_free(s);
	s = must_load("command: x\nsweep: {method: list, trials: [{a: 1}, {b: 2}]}\n", NULL, NULL);
	assert_runs(s, STRS("a=1", "b=2"));
	expt_spec_free(s);
}

static void test_sweep_random_reproducible(void **state)
{
	struct expt_spec *a, *b, *c;
	const char *yaml = "command: x\nsweep:\n  method: random\n  samples: 5\n  seed: 42\n"
			   "  params:\n    lr: {min: 0.0001, max: 0.1, log: true}\n"
			   "    dropout: {min: 0.0, max: 0.5}\n    layers: {min: 1, max: 4}\n"
			   "    width: {min: 16, max: 1024, log: true}\n    opt: [sgd, adam]\n";
	size_t i;

	(void)state;
	a = must_load(yaml, NULL, NULL);
	/* The exact values: splitmix64 from the seed, one draw per param per sample, in order
	 * (docs/spec.md gives the formulas; a Python check reproduced these). */
	assert_runs(a, STRS("lr=0.0167762 dropout=0.0799552 layers=2 width=66 opt=sgd",
			    "lr=0.0402424 dropout=0.109203 layers=4 width=65 opt=adam",
			    "lr=0.000411818 dropout=0.246495 layers=3 width=139 opt=adam",
			    "lr=0.000407667 dropout=0.0517871 layers=2 width=23 opt=adam",
			    "lr=0.074469 dropout=0.0365269 layers=3 width=210 opt=sgd"));
	assert_int_equal(expt_params_get(&a->runs[0].params, "lr")->type, EXPT_VT_FLOAT);
	assert_int_equal(expt_params_get(&a->runs[0].params, "layers")->type, EXPT_VT_INT);
	/* same seed, same runs */
	b = must_load(yaml, NULL, NULL);
	for (i = 0; i < a->nruns; i++) {
		char *x = run_str(a, i), *y = run_str(b, i);
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
	expt_spec_free(b);
	/* more samples extend the same sequence */
	b = must_load(yaml, NULL, STRS("sweep.samples=8"));
	assert_int_equal(b->nruns, 8);
	for (i = 0; i < a->nruns; i++) {
		char *x = run_str(a, i), *y = run_str(b, i);
		assert_string_equal(x, y);
		free(x);
		free(y);
	}
	/* another seed, other runs */
	c = must_load(yaml, NULL, STRS("sweep.seed=43"));
	{
		char *x = run_str(a, 0), *y = run_str(c, 0);
		assert_string_not_equal(x, y);
		free(x);
		free(y);
	}
	/* every draw within its bounds */
	for (i = 0; i < b->nruns; i++) {
		double lr = strtod(expt_params_get(&b->runs[i].params, "lr")->text, NULL);
		long w = strtol(expt_params_get(&b->runs[i].params, "width")->text, NULL, 10);
		assert_true(lr >= 0.0001 && lr <= 0.1);
		assert_true(w >= 16 && w <= 1024);
	}
	expt_spec_free(a);
	expt_spec_free(b);
	expt_spec_free(c);
}

static void test_sweep_random_default_seed(void **state)
{
	struct expt_spec *s;

	(void)state;
	/* seed defaults to 0; a degenerate range gives its one value */
	s = must_load("command: x\nsweep: {method: random, samples: 2, params: {a: {min: 2.5, "
		      "max: 2.5}, b: {min: 3, max: 3}}}\n",
		      NULL, NULL);
	assert_runs(s, STRS("a=2.5 b=3", "a=2.5 b=3"));
	expt_spec_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_specs),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_summary_error),
	    cmocka_unit_test(test_design_spec),
	    cmocka_unit_test(test_defaults_and_name_from_dir),
	    cmocka_unit_test(test_scalar_types),
	    cmocka_unit_test(test_yaml_features),
	    cmocka_unit_test(test_quoted_scalars),
	    cmocka_unit_test(test_not_utf8),
	    cmocka_unit_test(test_resolved_json_round_trip),
	    cmocka_unit_test(test_variant_chain),
	    cmocka_unit_test(test_variant_merge_rules),
	    cmocka_unit_test(test_override_params),
	    cmocka_unit_test(test_override_values),
	    cmocka_unit_test(test_override_fields),
	    cmocka_unit_test(test_override_with_variant_and_random),
	    cmocka_unit_test(test_sweep_long_grid),
	    cmocka_unit_test(test_sweep_trials),
	    cmocka_unit_test(test_sweep_random_reproducible),
	    cmocka_unit_test(test_sweep_random_default_seed),
	};

	return cmocka_run_group_tests(tests, spec_test_setup, spec_test_teardown);
}
