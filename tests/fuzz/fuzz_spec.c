/* Fuzz target for the spec loader: arbitrary bytes as expt.yaml (through a memfd, the way a real
 * file is read), loaded as the base and as variant "a", then every run's argv, env and params
 * JSON built, so the whole path from YAML to the run contract is exercised.
 * The normal build only replays tests/fuzz/corpus/spec; `make fuzz` fuzzes for real (clang,
 * library instrumented: tests/fuzz/fuzz.cmake) and merges new finds into the corpus. Add every
 * crasher it finds to the corpus once fixed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spec/spec.h"
#include "util/util.h"

static void exercise(const char *path, const char *variant)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s = NULL;
	size_t i;

	opts.path = path;
	opts.variant = variant;
	if (expt_spec_load(&s, &opts, &diags, &err) == 0) {
		for (i = 0; i < s->nruns && i < 64; i++) {
			struct expt_strv av = EXPT_STRV_INIT, env = EXPT_STRV_INIT;
			struct expt_err e2 = EXPT_ERR_INIT;
			char *j = expt_params_json(&s->runs[i].params);

			expt_spec_run_argv(s, &s->runs[i].params, "r-1", "/out", &av, &e2);
			expt_spec_run_env(s, &s->runs[i].params, "r-1", "/out", "/out/p.json",
					  &env);
			free(j);
			expt_strv_release(&av);
			expt_strv_release(&env);
		}
		expt_spec_free(s);
	} else {
		for (i = 0; i < diags.n; i++) {
			char line[1024];
			expt_diag_format(&diags.v[i], line, sizeof(line));
		}
	}
	expt_diags_release(&diags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = memfd_create("expt.yaml", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	exercise(path, NULL);
	exercise(path, "a");
	close(fd);
	return 0;
}
