/* expt stop: stop running or queued runs (one run, or every run of an experiment). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "store/lifecycle.h"
#include "cli.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt stop EXPERIMENT|RUN... [options]\n"
    "\n"
    "Stops runs that are queued, pending or running, and marks them stopped: a queued\n"
    "run never starts; a running one is ended by its backend (local: SIGTERM to its\n"
    "process group, then SIGKILL after the grace period). Finished runs are left as\n"
    "they are.\n"
    "\n"
    "Options:\n"
    "      --grace SECONDS   time between SIGTERM and SIGKILL (default 5)\n"
    "  -h, --help            this help\n";

static int cmd_stop(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_stop = {"stop", "stop queued or running runs", usage, CLI_NEED_STORE,
				     cmd_stop};

static int cmd_stop(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"grace", required_argument, NULL, 'g'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_list l = {0};
	int64_t grace_ms = 5000;
	size_t nstopped = 0;
	int c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (c == 'g') {
			if (expt_parse_duration_ms(optarg, &grace_ms))
				return cli_usage_error(ctx, &cli_cmd_stop,
						       "--grace needs seconds, got '%s'", optarg);
		} else {
			return cli_bad_option(ctx, &cli_cmd_stop, c, argv);
		}
	}
	if (optind >= argc)
		return cli_usage_error(ctx, &cli_cmd_stop, "name an experiment or runs");
	for (int i = optind; i < argc; i++)
		if ((rc = cli_resolve_runs(ctx, argv[i], 1, &l, NULL)))
			goto out;
	for (size_t i = 0; i < l.n; i++) {
		const struct expt_run_rec *r = &l.v[i];
		struct expt_backend_conf conf = {r->spec_json, ctx->db_path, NULL, 0, NULL, NULL};
		struct expt_backend be = {0};
		struct expt_err e = EXPT_ERR_INIT;
		enum expt_run_status was = r->status;

		if (expt_run_status_done(r->status))
			continue;
		/* Record first: a supervisor never starts a run that is recorded stopped, and
		 * keeps the end it finds recorded. */
		rc = expt_lifecycle_stop(ctx->store, r->run_id, "stopped by 'expt stop'", &was,
					 &ctx->err);
		if (rc == EXPT_ECONFLICT) { /* it ended meanwhile */
			expt_err_clear(&ctx->err);
			rc = 0;
			continue;
		}
		if (rc)
			goto out;
		/* Then the engine: the attempt it runs (or holds pending) ends now. */
		if (expt_backend_open(&be, r->backend, &conf, &e) ||
		    be.ops->stop(be.state, r, grace_ms, &e)) {
			char msg[1400];
			expt_err_format(&e, msg, sizeof(msg));
			fprintf(stderr, "expt stop: %s: %s\n", r->run_id, msg);
		}
		expt_backend_close(&be);
		printf("%s stopped\n", r->run_id);
		nstopped++;
	}
	if (!nstopped)
		fprintf(stderr, "expt stop: nothing to stop (no queued or running run)\n");
out:
	expt_run_list_release(&l);
	return rc;
}
