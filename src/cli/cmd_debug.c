/* expt debug: why a run failed — the cause, the exact command and env, the last log lines. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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

/* One sentence naming the cause, and a hint. */
static void diagnose(const struct expt_run_rec *r, const char *spec_json, char *cause, size_t cn,
		     char *hint, size_t hn)
{
	char sig[32];
	const char *reason = r->reason ? r->reason : "";
	const char *msg = r->message ? r->message : "";

	hint[0] = '\0';
	switch (r->status) {
	case EXPT_RUN_QUEUED:
		snprintf(cause, cn, "queued: waiting for a free slot (parallel) or GPU");
		return;
	case EXPT_RUN_RUNNING:
		snprintf(cause, cn, "still running (pid %d)", r->pid);
		snprintf(hint, hn, "follow it with 'expt logs -f %s'", r->run_id);
		return;
	case EXPT_RUN_SUCCEEDED:
		snprintf(cause, cn, "succeeded (exit code 0): nothing failed");
		return;
	case EXPT_RUN_STOPPED:
		snprintf(cause, cn, "stopped on request%s%s", *msg ? ": " : "", msg);
		snprintf(hint, hn, "run it again with 'expt retry %s'", r->run_id);
		return;
	default:
		break;
	}
	(void)spec_json;
	if (!strcmp(reason, "oom")) {
		snprintf(cause, cn, "out of memory: %s", *msg ? msg : "exceeded its memory limit");
		snprintf(hint, hn,
			 "raise resources.memory (e.g. 'expt run resources.memory=4Gi') or use "
			 "less memory (smaller batch)");
	} else if (!strcmp(reason, "timeout")) {
		snprintf(cause, cn, "timeout: %s", *msg ? msg : "ran past its timeout");
		snprintf(hint, hn, "raise timeout in the spec (e.g. 'expt run timeout=2h')");
	} else if (!strcmp(reason, "supervisor-lost")) {
		snprintf(cause, cn, "its supervisor died: %s", msg);
		snprintf(hint, hn,
			 "the expt process driving it was killed (or the machine rebooted); rerun "
			 "with 'expt retry %s'",
			 r->run_id);
	} else if (!strcmp(reason, "error")) {
		snprintf(cause, cn, "could not start: %s", msg);
		snprintf(hint, hn, "check 'command' in the spec and that the program is on PATH");
	} else if (r->signal) {
		snprintf(cause, cn, "killed by %s (signal %d)%s%s",
			 cli_signal_name(r->signal, sig, sizeof(sig)), r->signal, *msg ? ": " : "",
			 msg);
		if (r->signal == 9)
			snprintf(hint, hn,
				 "SIGKILL comes from outside the program: the kernel's OOM killer "
				 "(check 'dmesg'), a user, or another tool");
		else if (r->signal == 11 || r->signal == 6 || r->signal == 7)
			snprintf(hint, hn,
				 "the program crashed; see the last lines of stderr below");
	} else {
		snprintf(cause, cn, "exited with code %d", r->exit_code);
		if (r->exit_code == 127)
			snprintf(hint, hn, "127 usually means a command was not found");
		else if (r->exit_code == 126)
			snprintf(hint, hn, "126 usually means a file is not executable");
		else
			snprintf(hint, hn, "see the last lines of stderr below");
	}
}

static int cmd_debug(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"lines", required_argument, NULL, 'n'},
						 {"output", required_argument, NULL, 'o'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_rec r;
	struct expt_kv_rows events = {0};
	struct expt_strv err_lines = EXPT_STRV_INIT, out_lines = EXPT_STRV_INIT;
	enum cli_output fmt = CLI_OUT_TEXT;
	char cause[1200], hint[512];
	char *err_path = NULL, *out_path = NULL, *cmd = NULL;
	int64_t nlines = 20;
	int c, rc;

	memset(&r, 0, sizeof(r));
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
	diagnose(&r, r.spec_json, cause, sizeof(cause), hint, sizeof(hint));
	if (r.log_dir) {
		err_path = expt_xasprintf("%s/stderr.log", r.log_dir);
		out_path = expt_xasprintf("%s/stdout.log", r.log_dir);
		cli_tail_lines(err_path, (size_t)nlines, &err_lines);
		cli_tail_lines(out_path, (size_t)nlines, &out_lines);
	}
	cmd = cli_argv_line(r.argv_json);
	if (fmt != CLI_OUT_TEXT) {
		json_t *o = cli_run_json(&r), *ev = json_array(), *a;
		json_object_set_new(o, "cause", json_string(cause));
		json_object_set_new(o, "hint", hint[0] ? json_string(hint) : json_null());
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
		for (size_t i = 0; i < err_lines.n; i++)
			json_array_append_new(a, cli_json_text(err_lines.v[i]));
		json_object_set_new(o, "stderr_tail", a);
		a = json_array();
		for (size_t i = 0; i < out_lines.n; i++)
			json_array_append_new(a, cli_json_text(out_lines.v[i]));
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
		printf("  cause    %s\n", cause);
		if (hint[0])
			printf("  hint     %s\n", hint);
		if (r.exit_code >= 0 && expt_run_status_done(r.status) && !r.signal)
			printf("  exit     code %d\n", r.exit_code);
		printf("  command  %s\n", cmd);
		if (env && json_object_size(env)) {
			printf("  env     ");
			json_object_foreach(env, k, v) printf(" %s=%s", k, json_string_value(v));
			printf("\n");
		}
		json_decref(env);
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
		if (err_lines.n) {
			printf("\n%slast %zu lines of stderr%s (%s)\n", CLI_BOLD(co), err_lines.n,
			       CLI_RESET(co), err_path);
			for (size_t i = 0; i < err_lines.n; i++)
				printf("  | %s\n", err_lines.v[i]);
		} else if (r.log_dir) {
			printf("\n%sstderr is empty%s (%s)\n", CLI_DIM(co), CLI_RESET(co),
			       err_path);
		}
		if (out_lines.n && (!err_lines.n || r.status == EXPT_RUN_FAILED)) {
			printf("\n%slast %zu lines of stdout%s (%s)\n", CLI_BOLD(co), out_lines.n,
			       CLI_RESET(co), out_path);
			for (size_t i = 0; i < out_lines.n; i++)
				printf("  | %s\n", out_lines.v[i]);
		}
	}
out:
	free(cmd);
	free(err_path);
	free(out_path);
	expt_strv_release(&err_lines);
	expt_strv_release(&out_lines);
	expt_kv_rows_release(&events);
	expt_run_rec_release(&r);
	return rc;
}
