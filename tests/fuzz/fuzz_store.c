/* Fuzz target for the JSON the store takes in and gives back (src/store/runs.c): the input's
 * first line is an experiment name, the rest a run's params JSON. The run is created in a
 * scratch store, read back (the run record and its param rows) and each value parsed again the
 * way `expt show` and `-o json` do, then deleted. Checks that a string param reads back as it
 * went in. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "util/util.h"

static struct expt_store *st;
static char dir[64];

static void remove_store(void)
{
	char cmd[128];

	expt_store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
		/* nothing more to do at exit */
	}
}

static void check_params(const struct expt_kv_rows *rows, json_t *in)
{
	for (size_t i = 0; i < rows->n; i++) {
		json_t *v =
		    json_loads(rows->values[i] ? rows->values[i] : "", JSON_DECODE_ANY, NULL);
		json_t *orig = json_object_get(in, rows->keys[i]);

		if (!orig)
			abort(); /* a row for a key that was not given */
		if (json_is_string(orig) && strcmp(json_string_value(orig), rows->values[i]))
			abort();
		json_decref(v);
	}
	if (rows->n != json_object_size(in))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list list = {0};
	struct expt_run_new rn = {NULL, NULL, NULL};
	char *text = malloc(size + 1), *nl, *experiment = "fz";

	if (!st) {
		char db[96];
		snprintf(dir, sizeof(dir), "%s/expt-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
		if (!mkdtemp(dir))
			abort();
		snprintf(db, sizeof(db), "%s/expt.db", dir);
		if (expt_store_open(&st, db, &err))
			abort();
		atexit(remove_store);
	}
	memcpy(text, data, size);
	text[size] = '\0';
	rn.params_json = text;
	if ((nl = memchr(text, '\n', size))) {
		*nl = '\0';
		experiment = text;
		rn.params_json = nl + 1;
	}
	if (!expt_store_create_runs(st, experiment, "local", "{}", &rn, 1, &list, &err)) {
		struct expt_run_rec rec;
		struct expt_kv_rows rows = {0};
		json_t *in = json_loads(rn.params_json, 0, NULL), *back;

		if (list.n != 1 || expt_store_get_run(st, list.v[0].run_id, &rec, &err))
			abort();
		back = json_loads(rec.params_json ? rec.params_json : "", JSON_DECODE_ANY, NULL);
		if (!json_is_object(back) || !json_is_object(in))
			abort();
		if (expt_store_get_params(st, list.v[0].run_id, &rows, &err))
			abort();
		check_params(&rows, in);
		expt_kv_rows_release(&rows);
		json_decref(back);
		json_decref(in);
		if (expt_store_delete_run(st, list.v[0].run_id, &err))
			abort();
		expt_run_rec_release(&rec);
	}
	expt_run_list_release(&list);
	free(text);
	return 0;
}
