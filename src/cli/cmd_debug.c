/* expt debug: why a run failed — the cause, the exact command and env, the last log lines. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli.h"
#include "output.h"
#include "resolve.h"
#include "runview.h"
#include "util/parse.h"

static const char usage[] =
    "usage: expt debug RUN [options]\n"
    "\n"
    "Says why a run failed: the cause (exit code, signal, out of memory, timeout, the\n"
    "command could not start, its supervisor died), what to try, the exact argv and\n"
    "environment expt gave it, its attempts, and the last lines of its stderr.\n"
    "\n"
    "Options:\n"
    "  -n, --lines N         how many log lines to show (default 20)\n"
    "  -o, --output FORMAT   text (default), json or yaml\n"
    "  -h, --help            this help\n";

static int cmd_debug(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_debug = {"debug", "explain why a run failed", usage, CLI_NEED_STORE,
				      cmd_debug};

static int cmd_debug(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"lines", required_argument, NULL, 'n'},
						 {"output", required_argument, NULL, 'o'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_rec r;
	struct expt_kv_rows events = {0};
	struct expt_backend be = {0};
	struct expt_backend_conf conf = {0};
	struct expt_diagnosis d;
	enum cli_output fmt = CLI_OUT_TEXT;
	char *cmd = NULL;
	int64_t nlines = 20;
	int c, rc;

	memset(&r, 0, sizeof(r));
	memset(&d, 0, sizeof(d));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:o:", longopts, NULL)) != -1) {
		if (c == 'o') {
			if ((rc = cli_opt_output(ctx, &cli_cmd_debug, optarg, &fmt, 0)))
				return rc;
		} else if (c == 'n') {
			if (expt_parse_i64(optarg, &nlines) || nlines < 0)
				return cli_usage_error(ctx, &cli_cmd_debug,
						       "--lines needs a number, got '%s'", optarg);
		} else {
			return cli_bad_option(ctx, &cli_cmd_debug, c, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, &cli_cmd_debug, "expected one run id");
	if ((rc = cli_resolve_run(ctx, argv[optind], &r)))
		return rc;
	if ((rc = expt_store_get_events(ctx->store, r.run_id, &events, &ctx->err)))
		goto out;
	/* The engine that ran it explains it, from what it still knows and what the store
	 * kept (a cluster may have forgotten the pod). */
	conf.spec_json = r.spec_json;
	conf.db_path = ctx->db_path;
	if ((rc = expt_backend_open(&be, r.backend, &conf, &ctx->err)) ||
	    (rc = be.ops->diagnose(be.state, &r, (size_t)nlines, &d, &ctx->err)))
		goto out;
	cmd = cli_argv_line(r.argv_json);
	if (fmt != CLI_OUT_TEXT) {
		json_t *o = cli_run_json(&r), *ev = json_array(), *a;
		json_object_set_new(o, "cause", json_string(d.cause));
		json_object_set_new(o, "hint", d.hint[0] ? json_string(d.hint) : json_null());
		for (size_t i = 0; i < events.n; i++) {
			json_t *e = json_object();
			char t[40];
			expt_fmt_time_iso(events.times ? events.times[i] : 0, t, sizeof(t));
			json_object_set_new(e, "time", json_string(t));
			json_object_set_new(e, "kind", json_string(events.keys[i]));
			json_object_set_new(
			    e, "message", cli_json_text(events.values[i] ? events.values[i] : ""));
			json_array_append_new(ev, e);
		}
		json_object_set_new(o, "events", ev);
		a = json_array();
		for (size_t i = 0; i < d.evidence.n; i++)
			json_array_append_new(a, cli_json_text(d.evidence.v[i]));
		json_object_set_new(o, "evidence", a);
		a = json_array();
		for (size_t i = 0; i < d.stderr_tail.n; i++)
			json_array_append_new(a, cli_json_text(d.stderr_tail.v[i]));
		json_object_set_new(o, "stderr_tail", a);
		a = json_array();
		for (size_t i = 0; i < d.stdout_tail.n; i++)
			json_array_append_new(a, cli_json_text(d.stdout_tail.v[i]));
		json_object_set_new(o, "stdout_tail", a);
		cli_emit(stdout, o, fmt);
		json_decref(o);
		goto out;
	}
	{
		int co = ctx->color_out;
		const char *st = expt_run_status_name(r.status);
		json_t *env = cli_json_parse(r.env_json), *v;
		const char *k;

		printf("%s%s%s  %s%s%s\n", CLI_BOLD(co), r.run_id, CLI_RESET(co),
		       cli_status_color(st, co), st, CLI_RESET(co));
		printf("  cause    %s\n", d.cause);
		if (d.hint[0])
			printf("  hint     %s\n", d.hint);
		if (r.node)
			printf("  node     %s\n", r.node);
		if (r.exit_code >= 0 && expt_run_status_done(r.status) && !r.signal)
			printf("  exit     code %d\n", r.exit_code);
		printf("  command  %s\n", cmd);
		if (env && json_object_size(env)) {
			printf("  env     ");
			json_object_foreach(env, k, v) printf(" %s=%s", k, json_string_value(v));
			printf("\n");
		}
		json_decref(env);
		for (size_t i = 0; i < d.evidence.n; i++)
			printf("%s  %s\n", i ? "" : "\n", d.evidence.v[i]);
		if (events.n) {
			printf("\n%sevents%s\n", CLI_BOLD(co), CLI_RESET(co));
			for (size_t i = 0; i < events.n; i++) {
				char t[32];
				expt_fmt_time_local(events.times ? events.times[i] : 0, t,
						    sizeof(t));
				printf("  %s  %-8s %s\n", t, events.keys[i],
				       events.values[i] ? events.values[i] : "");
			}
		}
		if (d.stderr_tail.n) {
			printf("\n%slast %zu lines of stderr%s (%s)\n", CLI_BOLD(co),
			       d.stderr_tail.n, CLI_RESET(co), d.stderr_where);
			for (size_t i = 0; i < d.stderr_tail.n; i++)
				printf("  | %s\n", d.stderr_tail.v[i]);
		} else if (d.stderr_where[0]) {
			printf("\n%sstderr is empty%s (%s)\n", CLI_DIM(co), CLI_RESET(co),
			       d.stderr_where);
		}
		if (d.stdout_tail.n && (!d.stderr_tail.n || r.status == EXPT_RUN_FAILED)) {
			printf("\n%slast %zu lines of stdout%s (%s)\n", CLI_BOLD(co),
			       d.stdout_tail.n, CLI_RESET(co), d.stdout_where);
			for (size_t i = 0; i < d.stdout_tail.n; i++)
				printf("  | %s\n", d.stdout_tail.v[i]);
		}
	}
out:
	free(cmd);
	expt_diagnosis_release(&d);
	expt_backend_close(&be);
	expt_kv_rows_release(&events);
	expt_run_rec_release(&r);
	return rc;
}
