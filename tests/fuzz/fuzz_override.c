/* Fuzz target for command-line overrides: the input is split on NUL and newline bytes into
 * "key=value" arguments, applied to one of three fixed specs (a grid, a random sweep, a list of
 * trials; chosen by the first byte) with or without a variant. Built for real like
 * fuzz_spec.c (see there), with tests/fuzz/corpus/override as the seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spec/spec.h"
#include "util/util.h"

static const char *const specs[] = {
    "name: fz\ncommand: python train.py\nargs: --lr {lr} --out {output_dir}\n"
    "params: {lr: 0.01, epochs: 3, opt: adam}\nsweep: {lr: [0.1, 0.01], batch: [32, 64]}\n"
    "resources: {cpu: 1, memory: 1Gi}\nenv: {A: b}\n"
    "variants: {big: {params: {hidden: 1024}}, a: {extends: big, backend: container, "
    "image: img}}\n",
    "name: fz\ncommand: [python, t.py]\nshell: true\nparams: {lr: 0.1}\n"
    "sweep: {method: random, samples: 5, seed: 3, params: {lr: {min: 0.001, max: 1, log: "
    "true}, opt: [a, b], n: {min: 1, max: 9}}}\nvariants: {a: {parallel: 2}}\n",
    /* In parentheses: clang's -Wstring-concatenation takes a two-piece literal among others
     * for a missing comma. */
    ("name: fz\ncommand: x\nparams: {lr: 0.1, b: 1}\n"
     "sweep: {trials: [{lr: 0.1}, {lr: 0.2, b: 2}]}\nvariants: {a: {sweep: null}}\n"),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s = NULL;
	const char *spec;
	char path[64], *text, *p;
	const char *args[64];
	size_t nargs = 0, i;
	int fd;

	if (!size)
		return 0;
	spec = specs[data[0] % 3];
	fd = memfd_create("expt.yaml", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, spec, strlen(spec)) != (ssize_t)strlen(spec)) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	text = malloc(size);
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	/* Arguments end at NUL or newline, as they would arrive from argv or a file of them. */
	for (p = text; p < text + size - 1 && nargs < 64;) {
		char *end = p;
		while (end < text + size - 1 && *end && *end != '\n')
			end++;
		*end = '\0';
		args[nargs++] = p;
		p = end + 1;
	}
	opts.path = path;
	opts.variant = (data[0] & 4) ? "a" : NULL;
	opts.overrides = args;
	opts.noverrides = nargs;
	if (expt_spec_load(&s, &opts, &diags, &err) == 0) {
		for (i = 0; i < s->nruns && i < 64; i++) {
			struct expt_strv av = EXPT_STRV_INIT;
			struct expt_err e2 = EXPT_ERR_INIT;
			char *j = expt_params_json(&s->runs[i].params);
			expt_spec_run_argv(s, &s->runs[i].params, "r-1", "/out", &av, &e2);
			free(j);
			expt_strv_release(&av);
		}
		expt_spec_free(s);
	}
	for (i = 0; i < diags.n; i++) {
		char line[1024];
		expt_diag_format(&diags.v[i], line, sizeof(line));
	}
	expt_diags_release(&diags);
	free(text);
	close(fd);
	return 0;
}
