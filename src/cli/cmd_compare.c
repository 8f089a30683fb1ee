/* expt compare: the runs of an experiment side by side — params that vary, metrics. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mlflow_link.h"
#include "output.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt compare EXPERIMENT|RUN... [options]\n"
    "\n"
    "Puts runs side by side: status, the params that differ between them, and each\n"
    "metric's last value (or min/max with --agg) with its history as a sparkline (on a\n"
    "terminal, up to 200 runs). Params equal in every run are listed once above the\n"
    "table. 'expt plot' draws the curves.\n"
    "\n"
    "Options:\n"
    "  -s, --sort KEY        sort by a metric or param, ascending; -KEY for descending\n"
    "                        (e.g. --sort -acc); runs without it go last\n"
    "  -a, --agg WHICH       last (default), min or max of each metric\n"
    "  -m, --metrics LIST    only these metrics (comma-separated)\n"
    "  -o, --output FORMAT   text (default), json or yaml (json/yaml carry last, min, max)\n"
    "      --spark           sparklines also when the output is not a terminal\n"
    "      --no-spark        no sparklines (on a terminal they are shown)\n"
    "  -h, --help            this help\n";

static int cmd_compare(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_compare = {"compare", "compare runs: params and metrics side by side",
					usage, CLI_NEED_STORE, cmd_compare};

struct row {
	struct expt_run_rec *run;
	json_t *params;	 /* object */
	json_t *metrics; /* key → {last,min,max,...} */
	double sort_val;
	int has_sort;
};

static int sort_desc;

#define SPARK_RUNS 200 /* sparklines for at most this many runs (a history read each) */
#define SPARK_WIDTH 8

/* Appends " ▁▃▅▇" to out: the metric's history in SPARK_WIDTH bars (the mean of each stretch),
 * scaled to the run's own range. Nothing for fewer than two finite points. */
static void spark(struct cli_ctx *ctx, const char *run_id, const char *key, char *out, size_t n)
{
	static const char *const bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	struct expt_metric_row *rows = NULL;
	struct expt_err e = EXPT_ERR_INIT;
	double sum[SPARK_WIDTH] = {0}, lo = INFINITY, hi = -INFINITY;
	int cnt[SPARK_WIDTH] = {0};
	size_t np = 0, len = strlen(out), w;

	if (expt_store_metric_history(ctx->store, run_id, key, &rows, &np, &e) || np < 2)
		goto out;
	w = np < SPARK_WIDTH ? np : SPARK_WIDTH;
	for (size_t i = 0; i < np; i++) {
		size_t b = i * w / np;
		if (!isfinite(rows[i].value))
			continue;
		sum[b] += rows[i].value;
		cnt[b]++;
	}
	for (size_t b = 0; b < w; b++)
		if (cnt[b]) {
			double m = sum[b] / cnt[b];
			lo = m < lo ? m : lo;
			hi = m > hi ? m : hi;
		}
	if (!isfinite(lo))
		goto out;
	snprintf(out + len, n - len, " ");
	for (size_t b = 0; b < w; b++) {
		int level =
		    !cnt[b] || hi == lo ? 0 : (int)((sum[b] / cnt[b] - lo) / (hi - lo) * 7.0 + 0.5);
		len = strlen(out);
		snprintf(out + len, n - len, "%s", cnt[b] ? bars[level] : " ");
	}
out:
	free(rows);
}

static int by_sort(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->has_sort != y->has_sort)
		return x->has_sort ? -1 : 1;
	if (!x->has_sort || x->sort_val == y->sort_val)
		return x->run->seq < y->run->seq ? -1 : x->run->seq > y->run->seq;
	if (sort_desc)
		return x->sort_val > y->sort_val ? -1 : 1;
	return x->sort_val < y->sort_val ? -1 : 1;
}

static int listed(const char *list, const char *key)
{
	size_t kl = strlen(key);
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == kl && !strncmp(p, key, kl))
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static void fmt_value(json_t *v, char *out, size_t n)
{
	if (!v) {
		snprintf(out, n, "-");
	} else if (json_is_string(v)) {
		snprintf(out, n, "%s", json_string_value(v));
	} else if (json_is_real(v)) {
		snprintf(out, n, "%.6g", json_real_value(v));
	} else {
		char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		snprintf(out, n, "%s", t ? t : "?");
		free(t);
	}
}

static int cmd_compare(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"sort", required_argument, NULL, 's'},
	    {"agg", required_argument, NULL, 'a'},
	    {"metrics", required_argument, NULL, 'm'},
	    {"output", required_argument, NULL, 'o'},
	    {"spark", no_argument, NULL, 'S'},
	    {"no-spark", no_argument, NULL, 'N'},
	    {NULL, 0, NULL, 0},
	};
	int sparks = ctx->color_out || isatty(1);
	struct expt_run_list l = {0};
	struct row *rows = NULL;
	enum cli_output fmt = CLI_OUT_TEXT;
	const char *sort = NULL, *agg = "last", *only = NULL;
	json_t *pkeys = json_object(), *mkeys = json_object(), *constant = json_object();
	json_t *by_id = json_object(), *experiments = json_object();
	int c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:a:m:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			sort = optarg;
			break;
		case 'a':
			if (strcmp(optarg, "last") && strcmp(optarg, "min") &&
			    strcmp(optarg, "max")) {
				rc = cli_usage_error(ctx, &cli_cmd_compare,
						     "--agg is last, min or max, not '%s'", optarg);
				goto out;
			}
			agg = optarg;
			break;
		case 'm':
			only = optarg;
			break;
		case 'S':
		case 'N':
			sparks = c == 'S';
			break;
		case 'o':
			if ((rc = cli_opt_output(ctx, &cli_cmd_compare, optarg, &fmt, 0)))
				goto out;
			break;
		default:
			rc = cli_bad_option(ctx, &cli_cmd_compare, c, argv);
			goto out;
		}
	}
	if (optind >= argc) {
		rc = cli_usage_error(ctx, &cli_cmd_compare, "name an experiment or runs");
		goto out;
	}
	for (int i = optind; i < argc; i++)
		if ((rc = cli_resolve_runs(ctx, argv[i], 0, &l, NULL)))
			goto out;
	sort_desc = sort && sort[0] == '-';
	if (sort_desc)
		sort++;
	rows = expt_xcalloc(l.n, sizeof(*rows));
	for (size_t i = 0; i < l.n; i++) {
		struct row *rw = &rows[i];
		const char *k;
		json_t *v;

		rw->run = &l.v[i];
		rw->params = cli_json_parse(l.v[i].params_json);
		if (!json_is_object(rw->params)) {
			json_decref(rw->params);
			rw->params = json_object();
		}
		rw->metrics = json_object();
		json_object_foreach(rw->params, k, v) json_object_set_new(pkeys, k, json_true());
		json_object_set_new(by_id, l.v[i].run_id, json_integer((json_int_t)i));
		if (!json_object_get(experiments, l.v[i].experiment))
			json_object_set_new(experiments, l.v[i].experiment, json_true());
	}
	/* One summaries query per experiment, not one per run: compare stays fast at 10k runs. */
	{
		const char *exp;
		json_t *unused;
		json_object_foreach(experiments, exp, unused)
		{
			struct expt_metric_summaries ms = {0};
			if ((rc = expt_store_experiment_metric_summaries(ctx->store, exp, &ms,
									 &ctx->err)))
				goto out;
			for (size_t m = 0; m < ms.n; m++) {
				json_t *idx = json_object_get(by_id, ms.v[m].run_id), *sm;
				if (!idx || (only && !listed(only, ms.v[m].key)))
					continue;
				sm = json_object();
				json_object_set_new(sm, "last", json_real(ms.v[m].last));
				json_object_set_new(sm, "min", json_real(ms.v[m].min));
				json_object_set_new(sm, "max", json_real(ms.v[m].max));
				json_object_set_new(sm, "step",
						    ms.v[m].last_step >= 0
							? json_integer(ms.v[m].last_step)
							: json_null());
				json_object_set_new(rows[json_integer_value(idx)].metrics,
						    ms.v[m].key, sm);
				json_object_set_new(mkeys, ms.v[m].key, json_true());
			}
			expt_metric_summaries_release(&ms);
		}
	}
	/* Runs linked to MLflow runs: what their scripts logged there too. */
	{
		struct cli_mlflow_row *mr = expt_xcalloc(l.n ? l.n : 1, sizeof(*mr));
		struct expt_err me = EXPT_ERR_INIT;
		for (size_t i = 0; i < l.n; i++) {
			mr[i].run_id = l.v[i].run_id;
			mr[i].params = rows[i].params;
			mr[i].metrics = rows[i].metrics;
		}
		if (cli_mlflow_fill(ctx->store, mr, l.n, &me)) {
			char msg[1400];
			expt_err_format(&me, msg, sizeof(msg));
			fprintf(stderr, "expt: warning: not read from MLflow: %s\n", msg);
		}
		free(mr);
		for (size_t i = 0; i < l.n; i++) {
			const char *k;
			json_t *v, *tmp;
			json_object_foreach(rows[i].params, k, v)
			    json_object_set_new(pkeys, k, json_true());
			json_object_foreach_safe(rows[i].metrics, tmp, k, v)
			{
				if (!json_object_get(v, "source"))
					continue;
				if (only && !listed(only, k))
					json_object_del(rows[i].metrics, k);
				else
					json_object_set_new(mkeys, k, json_true());
			}
		}
	}
	for (size_t i = 0; sort && i < l.n; i++) {
		struct row *rw = &rows[i];
		json_t *mv = json_object_get(rw->metrics, sort), *pv;
		if (mv) {
			rw->sort_val = json_real_value(json_object_get(mv, agg));
			rw->has_sort = 1;
		} else if ((pv = json_object_get(rw->params, sort)) && json_is_number(pv)) {
			rw->sort_val = json_number_value(pv);
			rw->has_sort = 1;
		}
	}
	if (sort) {
		if (!json_object_get(mkeys, sort) && !json_object_get(pkeys, sort)) {
			rc = expt_err_set(
			    &ctx->err, EXPT_EUSAGE,
			    "cannot sort by '%s': no run has a metric or param of that "
			    "name",
			    sort);
			goto out;
		}
		qsort(rows, l.n, sizeof(*rows), by_sort);
	}
	/* Params equal in every run are shown once. */
	{
		const char *k;
		json_t *v, *tmp;
		json_object_foreach_safe(pkeys, tmp, k, v)
		{
			json_t *first = json_object_get(rows[0].params, k);
			int same = first != NULL && l.n > 1;
			for (size_t i = 1; same && i < l.n; i++) {
				json_t *o = json_object_get(rows[i].params, k);
				same = o && json_equal(o, first);
			}
			if (same) {
				json_object_set(constant, k, first);
				json_object_del(pkeys, k);
			}
		}
	}
	if (fmt != CLI_OUT_TEXT) {
		json_t *a = json_array();
		for (size_t i = 0; i < l.n; i++) {
			json_t *o = json_object();
			json_object_set_new(o, "id", json_string(rows[i].run->run_id));
			json_object_set_new(o, "status",
					    json_string(expt_run_status_name(rows[i].run->status)));
			json_object_set(o, "params", rows[i].params);
			json_object_set(o, "metrics", rows[i].metrics);
			json_array_append_new(a, o);
		}
		cli_emit(stdout, a, fmt);
		json_decref(a);
		goto out;
	}
	{
		size_t np = json_object_size(pkeys), nm = json_object_size(mkeys);
		size_t ncols = 2 + np + nm, col;
		const char **cells = expt_xcalloc(ncols, sizeof(*cells));
		char **buf = expt_xcalloc(ncols, sizeof(*buf));
		struct cli_table t;
		const char *k;
		json_t *v;
		int co = ctx->color_out;

		if (json_object_size(constant)) {
			printf("%sall runs:%s", CLI_DIM(co), CLI_RESET(co));
			json_object_foreach(constant, k, v)
			{
				char val[256];
				fmt_value(v, val, sizeof(val));
				printf(" %s=%s", k, val);
			}
			printf("\n");
		}
		for (size_t i = 0; i < ncols; i++)
			buf[i] = expt_xmalloc(256);
		cli_table_init(&t, ncols);
		cells[0] = "RUN";
		cells[1] = "STATUS";
		col = 2;
		json_object_foreach(pkeys, k, v) cells[col++] = k;
		json_object_foreach(mkeys, k, v)
		{
			if (strcmp(agg, "last"))
				snprintf(buf[col], 256, "%s (%s)", k, agg);
			else
				snprintf(buf[col], 256, "%s", k);
			if (sort && !strcmp(sort, k))
				snprintf(buf[col] + strlen(buf[col]), 256 - strlen(buf[col]), " %s",
					 sort_desc ? "↓" : "↑");
			cells[col] = buf[col];
			col++;
		}
		cli_table_row(&t, cells);
		for (size_t i = 0; i < l.n; i++) {
			const char *st = expt_run_status_name(rows[i].run->status);
			cells[0] = rows[i].run->run_id;
			snprintf(buf[1], 256, "%s%s%s", cli_status_color(st, co), st,
				 CLI_RESET(co));
			cells[1] = buf[1];
			col = 2;
			json_object_foreach(pkeys, k, v)
			{
				fmt_value(json_object_get(rows[i].params, k), buf[col], 256);
				cells[col] = buf[col];
				col++;
			}
			json_object_foreach(mkeys, k, v)
			{
				json_t *s = json_object_get(rows[i].metrics, k);
				fmt_value(s ? json_object_get(s, agg) : NULL, buf[col], 256);
				/* Each metric's history at a glance: which run learns best. */
				if (s && sparks && l.n <= SPARK_RUNS)
					spark(ctx, rows[i].run->run_id, k, buf[col], 256);
				cells[col] = buf[col];
				col++;
			}
			cli_table_row(&t, cells);
		}
		cli_table_print(stdout, &t, co);
		cli_table_release(&t);
		for (size_t i = 0; i < ncols; i++)
			free(buf[i]);
		free(buf);
		free(cells);
	}
out:
	for (size_t i = 0; rows && i < l.n; i++) {
		json_decref(rows[i].params);
		json_decref(rows[i].metrics);
	}
	free(rows);
	json_decref(pkeys);
	json_decref(mkeys);
	json_decref(constant);
	json_decref(by_id);
	json_decref(experiments);
	expt_run_list_release(&l);
	return rc;
}
