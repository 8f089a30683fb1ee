/* expt show: everything about one run: status, params, metrics, tags, artifacts, command. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlflow_link.h"
#include "output.h"
#include "resolve.h"
#include "runview.h"

static const char usage[] =
    "usage: expt show RUN [options]\n"
    "\n"
    "Shows one run: status and timing, params, metrics (last, min, max), tags,\n"
    "artifacts, the exact command and where its output and logs are.\n"
    "\n"
    "Options:\n"
    "  -o, --output FORMAT   text (default), json or yaml\n"
    "  -h, --help            this help\n";

static int cmd_show(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_show = {"show", "show a run: params, metrics, command, files", usage,
				     CLI_NEED_STORE, cmd_show};

static json_t *kv_json(const struct expt_kv_rows *r)
{
	json_t *o = json_object();

	for (size_t i = 0; i < r->n; i++)
		json_object_set_new(o, r->keys[i], cli_json_text(r->values[i] ? r->values[i] : ""));
	return o;
}

static int cmd_show(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_rec r;
	struct expt_metric_summaries ms = {0};
	struct expt_kv_rows tags = {0}, arts = {0}, prows = {0};
	enum cli_output fmt = CLI_OUT_TEXT;
	json_t *o = NULL, *m;
	int c, rc;

	memset(&r, 0, sizeof(r));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":o:", longopts, NULL)) != -1) {
		if (c == 'o') {
			if ((rc = cli_opt_output(ctx, &cli_cmd_show, optarg, &fmt, 0)))
				return rc;
		} else {
			return cli_bad_option(ctx, &cli_cmd_show, c, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, &cli_cmd_show, "expected one run id");
	if ((rc = cli_resolve_run(ctx, argv[optind], &r)))
		return rc;
	cli_catch_up_output(ctx, &r); /* metrics still only in its output */
	if ((rc = expt_store_metric_summaries(ctx->store, r.run_id, &ms, &ctx->err)) ||
	    (rc = expt_store_get_tags(ctx->store, r.run_id, &tags, &ctx->err)) ||
	    (rc = expt_store_get_artifacts(ctx->store, r.run_id, &arts, &ctx->err)) ||
	    (rc = expt_store_get_params(ctx->store, r.run_id, &prows, &ctx->err)))
		goto out;
	o = cli_run_json(&r);
	/* The image the run started from (pinned by expt run --build), from its recorded spec. */
	if (r.spec_json && !json_object_get(o, "image")) {
		json_t *sj = json_loads(r.spec_json, 0, NULL);
		const char *img = json_string_value(json_object_get(sj, "image"));
		if (img && r.backend && strcmp(r.backend, "local"))
			json_object_set_new(o, "image", json_string(img));
		json_decref(sj);
	}
	/* Params the run logged itself (expt.param(...)) are in the params table only. */
	{
		json_t *params = json_object_get(o, "params");
		for (size_t i = 0; i < prows.n; i++) {
			json_t *v;
			if (json_object_get(params, prows.keys[i]))
				continue;
			v = json_loads(prows.values[i] ? prows.values[i] : "", JSON_DECODE_ANY,
				       NULL);
			if (!v || json_is_object(v) || json_is_array(v)) {
				json_decref(v);
				v = json_string(prows.values[i] ? prows.values[i] : "");
			}
			json_object_set_new(params, prows.keys[i], v);
		}
	}
	m = json_object();
	for (size_t i = 0; i < ms.n; i++) {
		json_t *s = json_object();
		json_object_set_new(s, "last", json_real(ms.v[i].last));
		json_object_set_new(s, "min", json_real(ms.v[i].min));
		json_object_set_new(s, "max", json_real(ms.v[i].max));
		json_object_set_new(s, "last_step",
				    ms.v[i].last_step >= 0 ? json_integer(ms.v[i].last_step)
							   : json_null());
		json_object_set_new(s, "count", json_integer(ms.v[i].count));
		json_object_set_new(m, ms.v[i].key, s);
	}
	json_object_set_new(o, "metrics", m);
	/* A run linked to an MLflow run: what the script logged there (mlflow.log_*) too. */
	{
		struct expt_err me = EXPT_ERR_INIT;
		json_t *mr = NULL, *params = json_object_get(o, "params"), *x;
		char *url = NULL;
		size_t i;
		if (cli_mlflow_fetch(ctx->store, r.run_id, &mr, &url, &me) || url) {
			json_t *ml = json_object();
			if (url)
				json_object_set_new(ml, "url", json_string(url));
			if (me.code) {
				char msg[1400];
				expt_err_format(&me, msg, sizeof(msg));
				json_object_set_new(ml, "error", json_string(msg));
			}
			json_object_set_new(o, "mlflow", ml);
			if (mr) {
				json_object_set_new(ml, "status",
						    json_incref(json_object_get(
							json_object_get(mr, "info"), "status")));
				json_array_foreach(
				    json_object_get(json_object_get(mr, "data"), "params"), i, x)
				{
					const char *k =
					    json_string_value(json_object_get(x, "key"));
					if (k && !json_object_get(params, k))
						json_object_set(params, k,
								json_object_get(x, "value"));
				}
				json_array_foreach(
				    json_object_get(json_object_get(mr, "data"), "metrics"), i, x)
				{
					const char *k =
					    json_string_value(json_object_get(x, "key"));
					json_t *one;
					if (!k || json_object_get(m, k))
						continue;
					one = json_object();
					json_object_set(one, "last", json_object_get(x, "value"));
					json_object_set(one, "last_step",
							json_object_get(x, "step"));
					json_object_set_new(one, "source", json_string("mlflow"));
					json_object_set_new(m, k, one);
				}
			}
		}
		json_decref(mr);
		free(url);
	}
	json_object_set_new(o, "tags", kv_json(&tags));
	json_object_set_new(o, "artifacts", kv_json(&arts));
	if (fmt != CLI_OUT_TEXT) {
		cli_emit(stdout, o, fmt);
		goto out;
	}
	{
		int co = ctx->color_out;
		const char *st = expt_run_status_name(r.status);
		char dur[32], t1[32], t2[32], sig[32];
		char *cmd = cli_argv_line(r.argv_json);
		json_t *v;
		const char *k;

		cli_run_duration(&r, dur, sizeof(dur));
		printf("%s%s%s  %s%s%s", CLI_BOLD(co), r.run_id, CLI_RESET(co),
		       cli_status_color(st, co), st, CLI_RESET(co));
		if (r.message && expt_run_status_done(r.status))
			printf(" (%s)", r.message);
		else if (r.signal)
			printf(" (%s)", expt_signal_name(r.signal, sig, sizeof(sig)));
		printf("\n");
		printf("  experiment  %s%s%s\n", r.experiment, r.variant ? "  variant " : "",
		       r.variant ? r.variant : "");
		if (r.started_ms) {
			expt_fmt_time_local(r.started_ms, t1, sizeof(t1));
			printf("  started     %s   duration %s\n", t1, dur);
		} else {
			expt_fmt_time_local(r.created_ms, t2, sizeof(t2));
			printf("  created     %s   (not started)\n", t2);
		}
		printf("  backend     %s on %s", r.backend ? r.backend : "-",
		       r.host ? r.host : "-");
		if (r.pid)
			printf("  pid %d", r.pid);
		if (r.gpus)
			printf("  GPU %s", r.gpus);
		if (r.attempt > 1)
			printf("  attempt %d", r.attempt);
		printf("\n");
		if (json_string_value(json_object_get(o, "image")))
			printf("  image       %s\n",
			       json_string_value(json_object_get(o, "image")));
		if (r.retry_of)
			printf("  retry of    %s\n", r.retry_of);
		printf("  command     %s\n", cmd);
		free(cmd);
		printf("  output      %s\n  logs        %s\n", r.output_dir ? r.output_dir : "-",
		       r.log_dir ? r.log_dir : "-");
		if ((v = json_object_get(o, "mlflow"))) {
			const char *u = json_string_value(json_object_get(v, "url"));
			const char *e = json_string_value(json_object_get(v, "error"));
			printf("  mlflow      %s", u ? u : "-");
			if (json_object_get(v, "status"))
				printf("  %s", json_string_value(json_object_get(v, "status")));
			if (e)
				printf("  (not read: %s)", e);
			printf("\n");
		}
		printf("\n%sparams%s\n", CLI_BOLD(co), CLI_RESET(co));
		json_object_foreach(json_object_get(o, "params"), k, v)
		{
			char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
			printf("  %-20s %s\n", k, json_is_string(v) ? json_string_value(v) : t);
			free(t);
		}
		if (json_object_size(json_object_get(o, "metrics"))) {
			struct cli_table t;
			const char *head[] = {"  METRIC", "LAST", "MIN", "MAX", "STEP", "POINTS"};
			printf("\n%smetrics%s\n", CLI_BOLD(co), CLI_RESET(co));
			cli_table_init(&t, 6);
			cli_table_row(&t, head);
			for (size_t i = 0; i < ms.n; i++) {
				char key[160], a[32], b[32], cc[32], d[32], e[32];
				const char *row[6] = {key, a, b, cc, d, e};
				snprintf(key, sizeof(key), "  %s", ms.v[i].key);
				snprintf(a, sizeof(a), "%.6g", ms.v[i].last);
				snprintf(b, sizeof(b), "%.6g", ms.v[i].min);
				snprintf(cc, sizeof(cc), "%.6g", ms.v[i].max);
				if (ms.v[i].last_step >= 0)
					snprintf(d, sizeof(d), "%lld",
						 (long long)ms.v[i].last_step);
				else
					snprintf(d, sizeof(d), "-");
				snprintf(e, sizeof(e), "%lld", (long long)ms.v[i].count);
				cli_table_row(&t, row);
			}
			json_object_foreach(json_object_get(o, "metrics"), k, v)
			{
				char key[160], a[32];
				const char *row[6] = {key, a, "-", "-", "", "(mlflow)"};
				json_t *ls = json_object_get(v, "last_step");
				char d[32];
				if (!json_object_get(v, "source"))
					continue;
				snprintf(key, sizeof(key), "  %s", k);
				snprintf(a, sizeof(a), "%.6g",
					 json_number_value(json_object_get(v, "last")));
				snprintf(d, sizeof(d), "%lld", (long long)json_integer_value(ls));
				row[4] = ls ? d : "-";
				cli_table_row(&t, row);
			}
			cli_table_print(stdout, &t, 0);
			cli_table_release(&t);
		}
		if (tags.n) {
			printf("\n%stags%s\n", CLI_BOLD(co), CLI_RESET(co));
			for (size_t i = 0; i < tags.n; i++)
				printf("  %-20s %s\n", tags.keys[i], tags.values[i]);
		}
		if (arts.n) {
			printf("\n%sartifacts%s\n", CLI_BOLD(co), CLI_RESET(co));
			for (size_t i = 0; i < arts.n; i++)
				printf("  %s  %s\n", arts.keys[i],
				       arts.values[i] ? arts.values[i] : "");
		}
	}
out:
	json_decref(o);
	expt_metric_summaries_release(&ms);
	expt_kv_rows_release(&tags);
	expt_kv_rows_release(&arts);
	expt_kv_rows_release(&prows);
	expt_run_rec_release(&r);
	return rc;
}
