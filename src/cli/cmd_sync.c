/* expt sync: push runs recorded only in the store (offline work, runs from before a server
 * existed) to an MLflow server, once. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlflow_link.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt sync [EXPERIMENT|RUN...] [--uri URI]\n"
    "\n"
    "Pushes ended runs that are not on an MLflow server yet to it: an MLflow run per\n"
    "expt run, in the experiment of the same name, with its params, tags, every\n"
    "metric point, status and start and end times; then records the link in the\n"
    "store (what 'expt show' reads). Runs already linked to that server are left\n"
    "alone, and a run the server already holds (its tag expt.run_key) is completed\n"
    "rather than made twice, so a second sync adds nothing. Queued and running runs\n"
    "are skipped. Without arguments: every run of the store.\n"
    "\n"
    "Options:\n"
    "      --uri URI         the server (default: $MLFLOW_TRACKING_URI); http://HOST:PORT\n"
    "  -n, --dry-run         say what would be pushed, push nothing\n"
    "  -h, --help            this help\n";

static int cmd_sync(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_sync = {"sync", "push runs to an MLflow server", usage, CLI_NEED_STORE,
				     cmd_sync};

/* POSTs one log-batch made of the array member name (metrics, params or tags) of run mrun. */
static int post_batch(struct expt_mlflow *m, const char *mrun, const char *name, json_t *arr,
		      struct expt_err *err)
{
	json_t *req = json_pack("{s:s,s:O}", "run_id", mrun, name, arr);
	char *body = json_dumps(req, JSON_COMPACT);
	int rc;

	json_decref(req);
	rc = expt_mlflow_call(m, "POST", "runs/log-batch", body, strlen(body), NULL, err);
	free(body);
	return rc;
}

/* Every tag of the store but the link itself, in batches of 100. */
static int push_tags(struct expt_mlflow *m, const char *mrun, const struct expt_kv_rows *t,
		     struct expt_err *err)
{
	json_t *arr = json_array();
	int rc = 0;

	for (size_t i = 0; i <= t->n && !rc; i++) {
		if (i < t->n && strncmp(t->keys[i], "mlflow.", 7)) {
			char k[EXPT_MLFLOW_KEY_MAX + 1];
			char *v = expt_xstrndup(
			    t->values[i], expt_mlflow_utf8_cut(t->values[i], EXPT_MLFLOW_TAG_MAX));
			expt_mlflow_key(k, sizeof(k), t->keys[i]);
			json_array_append_new(arr, json_pack("{s:s,s:s}", "key", k, "value", v));
			free(v);
		}
		if (json_array_size(arr) == EXPT_MLFLOW_BATCH_TAGS ||
		    (i == t->n && json_array_size(arr))) {
			rc = post_batch(m, mrun, "tags", arr, err);
			json_array_clear(arr);
		}
	}
	json_decref(arr);
	return rc;
}

/* Every point of every metric, in batches of 1000; *points counts them. */
static int push_metrics(struct cli_ctx *ctx, struct expt_mlflow *m, const char *run_id,
			const char *mrun, size_t *points, struct expt_err *err)
{
	struct expt_metric_summaries ms = {0};
	json_t *arr = json_array();
	int rc;

	if ((rc = expt_store_metric_summaries(ctx->store, run_id, &ms, err)))
		goto out;
	for (size_t k = 0; k < ms.n && !rc; k++) {
		struct expt_metric_row *rows = NULL;
		size_t n = 0;
		char key[EXPT_MLFLOW_KEY_MAX + 1];
		if ((rc = expt_store_metric_history(ctx->store, run_id, ms.v[k].key, &rows, &n,
						    err)))
			break;
		expt_mlflow_key(key, sizeof(key), ms.v[k].key);
		for (size_t i = 0; i < n && !rc; i++) {
			json_t *v = rows[i].value != rows[i].value ? json_string("NaN")
								   : json_real(rows[i].value);
			if (!v) /* an infinity: jansson has no literal for it */
				v = json_string(rows[i].value > 0 ? "Infinity" : "-Infinity");
			json_array_append_new(
			    arr, json_pack("{s:s,s:o,s:I,s:I}", "key", key, "value", v, "timestamp",
					   (json_int_t)rows[i].time_ms, "step",
					   (json_int_t)(rows[i].step >= 0 ? rows[i].step : 0)));
			(*points)++;
			if (json_array_size(arr) == EXPT_MLFLOW_BATCH_METRICS) {
				rc = post_batch(m, mrun, "metrics", arr, err);
				json_array_clear(arr);
			}
		}
		free(rows);
	}
	if (!rc && json_array_size(arr))
		rc = post_batch(m, mrun, "metrics", arr, err);
out:
	json_decref(arr);
	expt_metric_summaries_release(&ms);
	return rc;
}

/* One run to the server: found again by its expt.run_key or created, then completed. */
static int push_run(struct cli_ctx *ctx, struct cli_mlflow *mf, const struct expt_run_rec *r,
		    size_t *points, struct expt_err *err)
{
	struct expt_kv_rows t = {0};
	struct cli_mlflow_run_info mi = {r->backend, r->host, r->variant, NULL, -1, NULL};
	char *mrun = NULL;
	int rc;

	if ((rc = expt_store_get_tags(ctx->store, r->run_id, &t, err)))
		return rc;
	/* Creates (or finds) the run, logs the params, records the link. */
	if ((rc = cli_mlflow_begin(mf, ctx->store, r, &mi, NULL, &mrun, err)))
		goto out;
	if ((rc = push_tags(mf->m, mrun, &t, err)) ||
	    (rc = push_metrics(ctx, mf->m, r->run_id, mrun, points, err)))
		goto out;
	rc = expt_mlflow_run_update(
	    mf->m, mrun, expt_mlflow_status(expt_run_status_name(r->status)), r->ended_ms, err);
out:
	free(mrun);
	expt_kv_rows_release(&t);
	return rc;
}

/* The link a run has: its MLflow tracking URI tag, or NULL (caller frees). */
static char *linked_uri(struct cli_ctx *ctx, const char *run_id)
{
	struct expt_kv_rows t = {0};
	struct expt_err e = EXPT_ERR_INIT;
	char *uri = NULL;
	int has_run = 0;

	if (expt_store_get_tags(ctx->store, run_id, &t, &e))
		return NULL;
	for (size_t i = 0; i < t.n; i++) {
		if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_URI))
			uri = expt_xstrdup(t.values[i]);
		else if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_RUN))
			has_run = 1;
	}
	expt_kv_rows_release(&t);
	if (!has_run) {
		free(uri);
		uri = NULL;
	}
	return uri;
}

static int cmd_sync(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"uri", required_argument, NULL, 'u'},
						 {"dry-run", no_argument, NULL, 'n'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_list l = {0};
	struct cli_mlflow mf = {0};
	const char *uri = getenv("MLFLOW_TRACKING_URI");
	size_t pushed = 0, linked = 0, unended = 0, points = 0;
	int dry = 0, c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n", longopts, NULL)) != -1) {
		if (c == 'u')
			uri = optarg;
		else if (c == 'n')
			dry = 1;
		else
			return cli_bad_option(ctx, &cli_cmd_sync, c, argv);
	}
	if (!uri || !*uri)
		return cli_usage_error(ctx, &cli_cmd_sync,
				       "no MLflow server: give --uri http://HOST:PORT (or set "
				       "MLFLOW_TRACKING_URI)");
	if (optind >= argc)
		rc = cli_resolve_runs(ctx, NULL, 0, &l, NULL);
	for (int i = optind; i < argc && !rc; i++)
		rc = cli_resolve_runs(ctx, argv[i], 0, &l, NULL);
	if (rc)
		goto out;
	if (!cli_mlflow_client(&mf, uri, &ctx->err)) {
		rc = ctx->err.code;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct expt_run_rec *r = &l.v[i];
		char *have;
		if (!expt_run_status_done(r->status)) {
			unended++;
			continue;
		}
		have = linked_uri(ctx, r->run_id);
		if (have && !strcmp(have, expt_mlflow_base(mf.m))) {
			free(have);
			linked++;
			continue;
		}
		free(have);
		if (dry) {
			printf("%s\n", r->run_id);
			pushed++;
			continue;
		}
		if ((rc = push_run(ctx, &mf, r, &points, &ctx->err)))
			goto out;
		printf("%s\n", r->run_id);
		pushed++;
	}
	fprintf(stderr, "expt: %s %zu run%s (%zu metric points) to %s",
		dry ? "would push" : "pushed", pushed, pushed == 1 ? "" : "s", points,
		expt_mlflow_base(mf.m));
	if (linked)
		fprintf(stderr, "; %zu already there", linked);
	if (unended)
		fprintf(stderr, "; %zu not ended (skipped)", unended);
	fputc('\n', stderr);
out:
	cli_mlflow_release(&mf);
	expt_run_list_release(&l);
	return rc;
}
