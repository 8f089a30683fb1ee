/* expt_diagnosis_cause_key: what `expt debug EXPT` groups failed runs by. A table of causes as
 * the backends write them, each with the key expected: what is particular to one run goes,
 * what says how it failed stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"

struct ckcase {
	const char *cause, *want;
};

static void check_table(const struct expt_run_rec *r, const struct ckcase *t, size_t n)
{
	char key[1400];

	for (size_t i = 0; i < n; i++) {
		expt_diagnosis_cause_key(t[i].cause, r, key, sizeof(key));
		if (strcmp(key, t[i].want))
			fail_msg("cause: %s\n  got:    %s\n  wanted: %s", t[i].cause, key,
				 t[i].want);
	}
}

static void test_local_causes(void **state)
{
	struct expt_run_rec r;
	static const struct ckcase t[] = {
	    {"exited with code 3", "exited with code 3"},
	    {"exited with code 137", "exited with code 137"},
	    {"killed by SIGKILL (signal 9): killed by SIGKILL",
	     "killed by SIGKILL (signal 9): killed by SIGKILL"},
	    {"out of memory: exceeded memory limit 64Mi (peak 63.5Mi)",
	     "out of memory: exceeded memory limit 64Mi (peak <n>)"},
	    {"timeout: timed out after 2.0s (killed with SIGKILL after the grace period)",
	     "timeout: timed out after 2.0s (killed with SIGKILL after the grace period)"},
	    {"its supervisor died: the expt process supervising this run (pid 48213) exited "
	     "without recording an end",
	     "its supervisor died: the expt process supervising this run (pid <n>) exited "
	     "without recording an end"},
	    {"could not start: cannot open /home/u/p/.expt/runs/demo-4/logs/stderr.log",
	     "could not start: cannot open <dir>/stderr.log"},
	    {"could not start: python3: not found", "could not start: python3: not found"},
	};

	(void)state;
	memset(&r, 0, sizeof(r));
	r.run_id = "demo-4";
	r.log_dir = "/home/u/p/.expt/runs/demo-4/logs";
	r.output_dir = "/home/u/p/.expt/runs/demo-4/output";
	check_table(&r, t, sizeof(t) / sizeof(t[0]));
}

static void test_engine_causes(void **state)
{
	struct expt_run_rec r;
	static const struct ckcase t[] = {
	    /* the run's id, whole words only; a pod named after its Job */
	    {"the Job demo-4 was deleted before it ended",
	     "the Job <run> was deleted before it ended"},
	    {"see demo-41 and demo-4x", "see demo-41 and demo-4x"},
	    {"pod demo-4-x7k2p: Back-off pulling image", "pod <pod>: Back-off pulling image"},
	    {"pod demo-4-files: missing", "pod <run>-files: missing"},
	    {"OOMKilled: out of memory (exit code 137)",
	     "OOMKilled: out of memory (exit code 137)"},
	    {"evicted from its node: The node was low on resource: memory. Container main was "
	     "using 1234Ki, which exceeds its request of 0.",
	     "evicted from its node: The node was low on resource: memory. Container main was "
	     "using <n>, which exceeds its request of <n>."},
	    {"did not start: 0/3 nodes are available: 3 Insufficient memory",
	     "did not start: <n>/<n> nodes are available: <n> Insufficient memory"},
	    /* ids, digests, timestamps */
	    {"container 3f2a9c1d0b7e4a5f6c8d9e0f1a2b3c4d: exited", "container <id>: exited"},
	    {"image sha256:0123456789abcdef0123 missing", "image sha256:<id> missing"},
	    {"request 123e4567-e89b-12d3-a456-426614174000 failed", "request <id> failed"},
	    {"at 2026-11-29T22:48:12.345Z: failed", "at <time>: failed"},
	    {"at 2026-11-29 22:48:12+01:00 failed", "at <time> failed"},
	    {"since 2026-11-29, 9:05:03 ago", "since <time>, <time> ago"},
	    {"HTTP 503 from the engine", "HTTP 503 from the engine"},
	    {"port 12:30 ratio", "port <n>:<n> ratio"},
	    {"x86_64 and python3 stay", "x86_64 and python3 stay"},
	    {"", ""},
	};

	(void)state;
	memset(&r, 0, sizeof(r));
	r.run_id = "demo-4";
	r.backend_ref = "demo-4";
	check_table(&r, t, sizeof(t) / sizeof(t[0]));
}

static void test_container_ref(void **state)
{
	struct expt_run_rec r;
	static const struct ckcase t[] = {
	    {"the container expt-demo-4-a1 is gone", "the container <ref> is gone"},
	    {"container:expt-demo-4-a1 exited", "<ref> exited"},
	};
	char small[8];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.run_id = "demo-4";
	r.backend_ref = "container:expt-demo-4-a1";
	check_table(&r, t, sizeof(t) / sizeof(t[0]));
	/* cut to the room given, never past it; no run at all */
	expt_diagnosis_cause_key("exited with code 3", NULL, small, sizeof(small));
	assert_string_equal(small, "exited ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_local_causes),
	    cmocka_unit_test(test_engine_causes),
	    cmocka_unit_test(test_container_ref),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
