/* expt ps: runs with their status, duration and params. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlflow_link.h"
#include "output.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt ps [EXPERIMENT] [options]\n"
    "\n"
    "Lists runs, newest last: id, status, exit code, duration, start time, params and\n"
    "each metric's last value. A run the engine has not started says why when the engine\n"
    "does: pending (Unschedulable), pending (ImagePullBackOff).\n"
    "Without -a, shows the 30 most recent runs (and says how many more there are);\n"
    "-o json and -o yaml list every run unless -n is given.\n"
    "\n"
    "Options:\n"
    "  -a, --all             every run\n"
    "  -n, --last N          the N most recent runs\n"
    "  -s, --status LIST     only runs in these states (queued, pending, running, succeeded,\n"
    "                        failed, stopped; comma-separated)\n"
    "  -o, --output FORMAT   text (default), wide (untruncated, adds backend, node, the\n"
    "                        engine's name for the run, GPUs, and the linked MLflow run with\n"
    "                        its status and what it logged only to MLflow),\n"
    "                        json, yaml\n"
    "  -h, --help            this help\n";

static int cmd_ps(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_ps = {"ps", "list runs and their status", usage, CLI_NEED_STORE,
				   cmd_ps};

static int parse_status_mask(const char *s, int *mask)
{
	char *copy = expt_xstrdup(s), *save = NULL, *tok;
	int rc = 0;

	*mask = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum expt_run_status st;
		if (expt_run_status_parse(tok, &st)) {
			rc = -1;
			break;
		}
		*mask |= 1 << st;
	}
	free(copy);
	return rc;
}

static void params_short(const char *params_json, char *out, size_t n)
{
	json_t *p = cli_json_parse(params_json), *v;
	const char *k;
	size_t len = 0;

	out[0] = '\0';
	if (!p)
		return;
	json_object_foreach(p, k, v)
	{
		char *t = json_is_string(v)
			      ? NULL
			      : json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		int w = snprintf(out + len, n - len, "%s%s=%s", len ? " " : "", k,
				 t ? t : json_string_value(v));
		free(t);
		if (w < 0 || (size_t)w >= n - len) {
			if (n > 4)
				memcpy(out + n - 4, "...", 4);
			break;
		}
		len += (size_t)w;
	}
	json_decref(p);
}

static void metrics_short(struct cli_ctx *ctx, const char *run_id, char *out, size_t n)
{
	struct expt_metric_summaries s = {0};
	struct expt_err e = EXPT_ERR_INIT;
	size_t len = 0;

	out[0] = '\0';
	if (expt_store_metric_summaries(ctx->store, run_id, &s, &e))
		return;
	for (size_t i = 0; i < s.n; i++) {
		int w = snprintf(out + len, n - len, "%s%s=%.4g", len ? " " : "", s.v[i].key,
				 s.v[i].last);
		if (w < 0 || (size_t)w >= n - len) {
			out[len] = '\0'; /* no half metric: say that more exist */
			if (len + 4 < n)
				memcpy(out + len, " ...", 5);
			break;
		}
		len += (size_t)w;
	}
	expt_metric_summaries_release(&s);
}

/* The store's metric names of run_id, as keys of an object (their values do not matter). */
static json_t *store_metric_keys(struct cli_ctx *ctx, const char *run_id)
{
	struct expt_metric_summaries s = {0};
	struct expt_err e = EXPT_ERR_INIT;
	json_t *o = json_object();

	if (!expt_store_metric_summaries(ctx->store, run_id, &s, &e))
		for (size_t i = 0; i < s.n; i++)
			json_object_set_new(o, s.v[i].key, json_true());
	expt_metric_summaries_release(&s);
	return o;
}

/* Appends to the PARAMS and METRICS cells what the linked MLflow run has and the store lacks
 * (cli_mlflow_fill added it to row: params not in the run's own, metrics marked "mlflow"). */
static void add_mlflow_data(const struct cli_mlflow_row *row, const char *params_json, char *params,
			    size_t np, char *metrics, size_t nm)
{
	json_t *own = cli_json_parse(params_json), *v;
	const char *k;

	json_object_foreach(row->params, k, v)
	{
		size_t len = strlen(params);
		if (json_object_get(own, k) || !json_is_string(v) || len + 4 >= np)
			continue;
		snprintf(params + len, np - len, "%s%s=%s", len ? " " : "", k,
			 json_string_value(v));
	}
	json_object_foreach(row->metrics, k, v)
	{
		size_t len = strlen(metrics);
		if (!json_is_object(v) || len + 4 >= nm)
			continue;
		snprintf(metrics + len, nm - len, "%s%s=%.4g", len ? " " : "", k,
			 json_number_value(json_object_get(v, "last")));
	}
	json_decref(own);
}

static int cmd_ps(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"all", no_argument, NULL, 'a'},
	    {"last", required_argument, NULL, 'n'},
	    {"status", required_argument, NULL, 's'},
	    {"output", required_argument, NULL, 'o'},
	    {NULL, 0, NULL, 0},
	};
	struct expt_run_filter f;
	struct expt_run_list l = {0};
	enum cli_output fmt = CLI_OUT_TEXT;
	int64_t limit = 30, total = -1;
	int limit_given = 0;
	int c, rc = 0;

	memset(&f, 0, sizeof(f));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":an:s:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			limit = 0;
			limit_given = 1;
			break;
		case 'n':
			limit_given = 1;
			if (expt_parse_i64(optarg, &limit) || limit < 1)
				return cli_usage_error(ctx, &cli_cmd_ps,
						       "--last needs a positive number, got '%s'",
						       optarg);
			break;
		case 's':
			if (parse_status_mask(optarg, &f.status_mask))
				return cli_usage_error(
				    ctx, &cli_cmd_ps,
				    "unknown status in '%s' (queued, pending, running, "
				    "succeeded, failed, stopped)",
				    optarg);
			break;
		case 'o':
			if ((rc = cli_opt_output(ctx, &cli_cmd_ps, optarg, &fmt, 1)))
				return rc;
			break;
		default:
			return cli_bad_option(ctx, &cli_cmd_ps, c, argv);
		}
	}
	if (argc - optind > 1)
		return cli_usage_error(ctx, &cli_cmd_ps, "expected at most one experiment name");
	f.experiment = optind < argc ? argv[optind] : NULL;
	if ((rc = cli_reconcile(ctx)))
		return rc;
	/* The 30-run default is for people; scripts (-o json|yaml) get every run unless -n. */
	if (limit == 30 && !limit_given && (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML))
		limit = 0;
	f.limit = limit;
	if ((rc = expt_store_list_runs(ctx->store, &f, &l, &ctx->err)))
		goto out;
	if (limit && (int64_t)l.n == limit && !f.status_mask) {
		struct expt_experiment_list el = {0};
		if (!expt_store_list_experiments(ctx->store, &el, &ctx->err)) {
			total = 0;
			for (size_t i = 0; i < el.n; i++)
				if (!f.experiment || !strcmp(el.v[i].name, f.experiment))
					total += el.v[i].nruns;
		}
		expt_experiment_list_release(&el);
	} else if (limit && (int64_t)l.n == limit) {
		total = -2; /* filtered: more may exist, the count is not known cheaply */
	}
	if (f.experiment && l.n == 0) {
		struct expt_experiment_list el = {0};
		int known = 0;
		if (!expt_store_list_experiments(ctx->store, &el, &ctx->err))
			for (size_t i = 0; i < el.n; i++)
				known |= !strcmp(el.v[i].name, f.experiment);
		expt_experiment_list_release(&el);
		if (!known) {
			rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND, "no experiment named '%s'",
					  f.experiment);
			goto out;
		}
	}
	/* With a limit the store gives the newest first: print oldest first. */
	for (size_t i = 0; limit && i < l.n / 2; i++) {
		struct expt_run_rec t = l.v[i];
		l.v[i] = l.v[l.n - 1 - i];
		l.v[l.n - 1 - i] = t;
	}
	if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
		json_t *a = json_array();
		for (size_t i = 0; i < l.n; i++)
			json_array_append_new(a, cli_run_json(&l.v[i]));
		cli_emit(stdout, a, fmt);
		json_decref(a);
		goto out;
	}
	if (!l.n) {
		fprintf(stderr, "no runs%s (start one with 'expt run')\n",
			f.status_mask ? " in that state" : "");
		goto out;
	}
	{
		struct cli_table t;
		int wide = fmt == CLI_OUT_WIDE, co = ctx->color_out;
		const char *head[] = {"RUN",	"STATUS",  "EXIT",	   "DURATION", "STARTED",
				      "PARAMS", "METRICS", "BACKEND",	   "NODE",     "REF",
				      "GPUS",	"MLFLOW",  "MLFLOW STATUS"};
		struct cli_mlflow_row *mr = NULL;
		cli_table_init(&t, wide ? 13 : 7);
		cli_table_row(&t, head);
		if (wide) {
			/* The linked MLflow runs (store tags) and their status on the server: one
			 * runs/search per 100 runs of a server; a server that cannot be read
			 * leaves "?" and a warning, not an error. */
			struct expt_err e = EXPT_ERR_INIT;
			mr = expt_xcalloc(l.n, sizeof(*mr));
			for (size_t i = 0; i < l.n; i++) {
				mr[i].run_id = l.v[i].run_id;
				/* What the store has already; the server adds the rest (what
				 * the script logged with mlflow.log_*). */
				mr[i].params = cli_json_parse(l.v[i].params_json);
				if (!json_is_object(mr[i].params)) {
					json_decref(mr[i].params);
					mr[i].params = json_object();
				}
				mr[i].metrics = store_metric_keys(ctx, l.v[i].run_id);
			}
			if (cli_mlflow_fill(ctx->store, mr, l.n, &e)) {
				char msg[1400];
				expt_err_format(&e, msg, sizeof(msg));
				fprintf(stderr, "expt: warning: MLflow status not read: %s\n", msg);
			}
		}
		for (size_t i = 0; i < l.n; i++) {
			const struct expt_run_rec *r = &l.v[i];
			char status[64], exitc[32], dur[32], started[32], params[256], metrics[256];
			const char *st = expt_run_status_name(r->status);
			const char *row[13];

			snprintf(status, sizeof(status), "%s%s%s", cli_status_color(st, co), st,
				 CLI_RESET(co));
			if (r->status == EXPT_RUN_FAILED && r->reason &&
			    strcmp(r->reason, "exit")) {
				size_t len = strlen(status);
				snprintf(status + len, sizeof(status) - len, " (%s)", r->reason);
			} else if (r->status == EXPT_RUN_PENDING && r->message && *r->message) {
				/* Why it waits, by its first word ("Unschedulable: 0/3 nodes..."):
				 * expt debug has the rest. */
				size_t len = strlen(status), w = strcspn(r->message, ": ");
				snprintf(status + len, sizeof(status) - len, " (%.*s)",
					 (int)(w > 32 ? 32 : w), r->message);
			}
			if (r->signal)
				expt_signal_name(r->signal, exitc, sizeof(exitc));
			else if (expt_run_status_done(r->status) && r->exit_code >= 0)
				snprintf(exitc, sizeof(exitc), "%d", r->exit_code);
			else
				snprintf(exitc, sizeof(exitc), "-");
			cli_run_duration(r, dur, sizeof(dur));
			if (r->started_ms)
				expt_fmt_time_local(r->started_ms, started, sizeof(started));
			else
				snprintf(started, sizeof(started), "-");
			params_short(r->params_json, params, wide ? sizeof(params) : 60);
			row[0] = r->run_id;
			row[1] = status;
			row[2] = exitc;
			row[3] = dur;
			row[4] = started;
			row[5] = params[0] ? params : "-";
			/* Each metric's last value: what people scan ps for. */
			metrics_short(ctx, r->run_id, metrics, wide ? sizeof(metrics) : 48);
			if (wide)
				add_mlflow_data(&mr[i], r->params_json, params, sizeof(params),
						metrics, sizeof(metrics));
			row[6] = metrics[0] ? metrics : "-";
			if (wide) {
				/* Where it runs and the engine's name for it: a process group, a
				 * container, a Job. */
				row[7] = r->backend;
				row[8] = r->node ? r->node : r->host;
				row[9] = r->backend_ref ? r->backend_ref : "-";
				row[10] = r->gpus;
				row[11] = mr[i].mlflow_run[0] ? mr[i].mlflow_run : "-";
				row[12] = mr[i].mlflow_status[0] ? mr[i].mlflow_status
					  : mr[i].mlflow_run[0]	 ? "?"
								 : "-";
			}
			cli_table_row(&t, row);
		}
		cli_table_print(stdout, &t, co);
		cli_table_release(&t);
		for (size_t i = 0; mr && i < l.n; i++) {
			json_decref(mr[i].params);
			json_decref(mr[i].metrics);
		}
		free(mr);
		if (total > (int64_t)l.n)
			fprintf(stderr, "... %lld older runs not shown (expt ps -a)\n",
				(long long)(total - (int64_t)l.n));
		else if (total == -2)
			fprintf(stderr, "... showing the %lld most recent (expt ps -a for all)\n",
				(long long)l.n);
	}
out:
	expt_run_list_release(&l);
	return rc;
}
