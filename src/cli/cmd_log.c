/* expt log: log metrics, params, tags and artifacts from a shell script, inside a run, through
 * the same libexpt path as the C and Python APIs. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "expt.h"

static const char usage[] =
    "usage: expt log [KEY=VALUE ...] [options]\n"
    "\n"
    "Logs metrics (KEY=VALUE with a number), params, tags and artifacts to the current run\n"
    "(EXPT_RUN_ID, set by 'expt run' for every run) through the run's sinks (EXPT_SINKS).\n"
    "Outside a run, --run names the run to log to.\n"
    "\n"
    "Options:\n"
    "  -s, --step N          the step of the metrics (default: none)\n"
    "  -t, --tag KEY=VALUE   set a tag (repeatable)\n"
    "  -p, --param KEY=VALUE log a param (repeatable)\n"
    "  -a, --artifact PATH   copy a file or directory into the run's artifacts (repeatable)\n"
    "  -r, --run RUN         the run to log to, when not inside one\n"
    "  -h, --help            this help\n"
    "\n"
    "Example: expt log loss=0.31 acc=0.92 --step 10 --tag phase=eval\n";

static int cmd_log(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_log = {"log", "log metrics, params, tags or artifacts to a run", usage,
				    0, cmd_log};

/* The command reports what went wrong once, through its exit status and message. */
static void quiet_report(const char *sink, const char *message, void *payload)
{
}

/* Splits "k=v" in place; -1 when there is no '=' or the key is empty. */
static int split_kv(char *s, char **k, char **v)
{
	char *eq = strchr(s, '=');

	if (!eq || eq == s)
		return -1;
	*eq = '\0';
	*k = s;
	*v = eq + 1;
	return 0;
}

static int log_error(struct cli_ctx *ctx, int code, const char *what, const char *key)
{
	static const char *const why[] = {"", "invalid", "the run is finished",
					  "dropped: queue full"};
	int i = -code;

	return expt_err_set(&ctx->err, EXPT_EFAIL, "cannot log %s '%s': %s", what, key,
			    i > 0 && i < 4 ? why[i] : "failed");
}

static int cmd_log(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"step", required_argument, NULL, 's'},  {"tag", required_argument, NULL, 't'},
	    {"param", required_argument, NULL, 'p'}, {"artifact", required_argument, NULL, 'a'},
	    {"run", required_argument, NULL, 'r'},   {NULL, 0, NULL, 0}};
	struct expt_strv tags = EXPT_STRV_INIT, params = EXPT_STRV_INIT, arts = EXPT_STRV_INIT;
	struct expt_strv mkeys = EXPT_STRV_INIT;
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_run_rec rec;
	struct expt_error e;
	struct expt_store *st = NULL;
	expt_run *run = NULL;
	const char *run_ref = NULL, *in_run = getenv("EXPT_RUN_ID");
	char *db = NULL, *project = NULL, *out_dir = NULL;
	double *values = NULL;
	int64_t step = -1;
	int c, rc = 0, lrc;

	memset(&rec, 0, sizeof(rec));
	memset(&e, 0, sizeof(e));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:t:p:a:r:", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (expt_parse_i64(optarg, &step) || step < 0) {
				rc = cli_usage_error(
				    ctx, &cli_cmd_log,
				    "--step wants a non-negative integer, got '%s'", optarg);
				goto out;
			}
			break;
		case 't':
			expt_strv_push(&tags, optarg);
			break;
		case 'p':
			expt_strv_push(&params, optarg);
			break;
		case 'a':
			expt_strv_push(&arts, optarg);
			break;
		case 'r':
			run_ref = optarg;
			break;
		case ':':
			rc = cli_usage_error(ctx, &cli_cmd_log, "option '%s' needs a value",
					     argv[optind - 1]);
			goto out;
		default:
			rc = cli_usage_error(ctx, &cli_cmd_log, "unknown option '%s'",
					     argv[optind - 1]);
			goto out;
		}
	}
	values = expt_xcalloc((size_t)(argc - optind) + 1, sizeof(double));
	for (int i = optind; i < argc; i++) {
		char *k, *v;
		if (split_kv(argv[i], &k, &v)) {
			rc = cli_usage_error(ctx, &cli_cmd_log, "expected KEY=VALUE, got '%s'",
					     argv[i]);
			goto out;
		}
		if (expt_parse_double(v, &values[mkeys.n])) {
			rc = cli_usage_error(ctx, &cli_cmd_log,
					     "metric '%s': '%s' is not a number (use --tag or "
					     "--param for text)",
					     k, v);
			goto out;
		}
		expt_strv_push(&mkeys, k);
	}
	for (size_t i = 0; i < tags.n + params.n; i++) {
		char *s = i < tags.n ? tags.v[i] : params.v[i - tags.n], *k, *v;
		if (split_kv(s, &k, &v)) {
			rc = cli_usage_error(ctx, &cli_cmd_log, "%s wants KEY=VALUE, got '%s'",
					     i < tags.n ? "--tag" : "--param", s);
			goto out;
		}
		s[strlen(k)] = '=';
	}
	if (!mkeys.n && !tags.n && !params.n && !arts.n) {
		rc = cli_usage_error(ctx, &cli_cmd_log, "nothing to log");
		goto out;
	}
	if (!run_ref && !(in_run && *in_run)) {
		rc = expt_err_set(&ctx->err, EXPT_EUSAGE,
				  "not inside a run (EXPT_RUN_ID is not set): name one with --run");
		goto out;
	}
	if (run_ref) {
		/* A run named on the command line: its store and directories come from the store.
		 */
		char cwd[4096];
		if (!getcwd(cwd, sizeof(cwd))) {
			rc = expt_err_errno(&ctx->err, EXPT_EFAIL,
					    "cannot read the current directory");
			goto out;
		}
		rc = expt_store_locate(cwd, 0, &db, &project, &ctx->err);
		if (rc == EXPT_ENOTFOUND)
			rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND,
					  "no expt store here or in any parent directory");
		if (rc || (rc = expt_store_open(&st, db, &ctx->err)) ||
		    (rc = expt_store_get_run(st, run_ref, &rec, &ctx->err)))
			goto out;
		o.run_id = rec.run_id;
		o.store = db;
		o.experiment = rec.experiment;
		if (!(in_run && !strcmp(in_run, run_ref)) && rec.output_dir) {
			out_dir = expt_xstrdup(rec.output_dir);
			o.output_dir = out_dir;
			o.artifact_dir = NULL;
		}
		expt_store_close(st);
		st = NULL;
	}
	o.flags = EXPT_RUN_NO_HOOKS | EXPT_RUN_ATTACH;
	o.report = quiet_report;
	if ((lrc = expt_run_open(&run, &o, &e))) {
		rc = expt_err_set(&ctx->err, lrc == EXPT_RESULT_INVALID ? EXPT_EUSAGE : EXPT_EFAIL,
				  "%s", e.message);
		goto out;
	}
	if (mkeys.n &&
	    (lrc = expt_log_metrics(run, mkeys.n, (const char *const *)mkeys.v, values, step, 0))) {
		rc = log_error(ctx, lrc, "metrics", mkeys.v[0]);
		goto out;
	}
	for (size_t i = 0; i < params.n; i++) {
		char *k = params.v[i], *v = "";
		split_kv(params.v[i], &k, &v);
		if ((lrc = expt_log_param(run, k, v))) {
			rc = log_error(ctx, lrc, "param", k);
			goto out;
		}
	}
	for (size_t i = 0; i < tags.n; i++) {
		char *k = tags.v[i], *v = "";
		split_kv(tags.v[i], &k, &v);
		if ((lrc = expt_set_tag(run, k, v))) {
			rc = log_error(ctx, lrc, "tag", k);
			goto out;
		}
	}
	for (size_t i = 0; i < arts.n; i++) {
		if (expt_log_artifact(run, arts.v[i], NULL, &e)) {
			rc = expt_err_set(&ctx->err, EXPT_EFAIL, "%s", e.message);
			goto out;
		}
	}
out:
	if (run) {
		memset(&e, 0, sizeof(e));
		lrc = expt_run_finish(run, NULL, &e);
		if (lrc && !rc)
			rc = expt_err_set(&ctx->err, EXPT_EFAIL, "%s", e.message);
	}
	expt_store_close(st);
	expt_run_rec_release(&rec);
	expt_strv_release(&tags);
	expt_strv_release(&params);
	expt_strv_release(&arts);
	expt_strv_release(&mkeys);
	free(values);
	free(db);
	free(project);
	free(out_dir);
	return rc;
}
