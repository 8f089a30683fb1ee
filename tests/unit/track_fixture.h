/* Shared fixture of the tracking unit tests: a temporary root with a fresh directory per test,
 * the environment of no run, and JSONL reading. Included by test_track_*.c after cmocka. */
#ifndef EXPT_TESTS_TRACK_FIXTURE_H
#define EXPT_TESTS_TRACK_FIXTURE_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static char tmp_root[] = "/tmp/expt-track-XXXXXX";
static int case_no;

/* A fresh directory per test, and the environment of no run. */
static char *fresh_dir(void)
{
	char *d = expt_xasprintf("%s/t%d", tmp_root, ++case_no);
	struct expt_err err = EXPT_ERR_INIT;

	assert_int_equal(expt_mkdirs(d, &err), 0);
	return d;
}

static int setup(void **state)
{
	static const char *const vars[] = {
	    "EXPT_RUN_ID", "EXPT_EXPERIMENT",	   "EXPT_OUTPUT_DIR",	"EXPT_PARAMS_FILE",
	    "EXPT_STORE",  "EXPT_SINKS",	   "EXPT_ARTIFACT_DIR", "EXPT_TRACKING_URI",
	    "EXPT_JSONL",  "EXPT_TENSORBOARD_DIR", "EXPT_HOME",		"EXPT_METRICS_PREFIX"};

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	return expt_remove_tree(tmp_root, &err);
}

static json_t *read_jsonl(const char *path)
{
	json_t *arr = json_array();
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return arr;
	while (getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		if (!o)
			fail_msg("%s: bad JSON line: %s", path, line);
		json_array_append_new(arr, o);
	}
	free(line);
	fclose(f);
	return arr;
}

static size_t count_type(json_t *arr, const char *type)
{
	size_t i, n = 0;
	json_t *o;

	json_array_foreach(arr, i, o)
	{
		if (!strcmp(json_string_value(json_object_get(o, "type")), type))
			n++;
	}
	return n;
}

#endif
