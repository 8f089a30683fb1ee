/* expt rm: delete runs (records and files). Their ids are never given out again. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt rm EXPERIMENT|RUN... [options]\n"
    "\n"
    "Deletes runs: their records in the store and their directory under .expt/runs\n"
    "(output, logs). A removed run's id is never reused. Queued or running runs are\n"
    "refused (stop them first with 'expt stop'); nothing is deleted then.\n"
    "\n"
    "Options:\n"
    "  -s, --status LIST     only runs in these states (e.g. failed,stopped)\n"
    "      --keep-files      delete the records but leave the run directories\n"
    "  -h, --help            this help\n";

static int cmd_rm(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_rm = {"rm", "delete runs and their files", usage, CLI_NEED_STORE,
				   cmd_rm};

static int cmd_rm(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"status", required_argument, NULL, 's'},
						 {"keep-files", no_argument, NULL, 'k'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_list l = {0};
	int mask = 0, keep = 0, c, rc = 0;
	size_t nrm = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:", longopts, NULL)) != -1) {
		if (c == 's') {
			char *copy = expt_xstrdup(optarg), *save = NULL, *tok;
			for (tok = strtok_r(copy, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				enum expt_run_status st;
				if (expt_run_status_parse(tok, &st)) {
					free(copy);
					return cli_usage_error(ctx, &cli_cmd_rm,
							       "unknown status '%s'", tok);
				}
				mask |= 1 << st;
			}
			free(copy);
		} else if (c == 'k') {
			keep = 1;
		} else {
			return cli_bad_option(ctx, &cli_cmd_rm, c, argv);
		}
	}
	if (optind >= argc)
		return cli_usage_error(ctx, &cli_cmd_rm, "name an experiment or runs");
	for (int i = optind; i < argc; i++)
		if ((rc = cli_resolve_runs(ctx, argv[i], 0, &l, NULL)))
			goto out;
	/* Refuse before deleting anything, so that nothing is half-done. */
	for (size_t i = 0; i < l.n; i++)
		if ((!mask || (mask & (1 << l.v[i].status))) &&
		    !expt_run_status_done(l.v[i].status)) {
			rc = expt_err_set(&ctx->err, EXPT_EUSAGE,
					  "%s is %s: stop it first ('expt stop %s')", l.v[i].run_id,
					  expt_run_status_name(l.v[i].status), l.v[i].run_id);
			goto out;
		}
	for (size_t i = 0; i < l.n; i++) {
		const struct expt_run_rec *r = &l.v[i];
		if (mask && !(mask & (1 << r->status)))
			continue;
		if ((rc = expt_store_delete_run(ctx->store, r->run_id, &ctx->err)))
			goto out;
		if (!keep) {
			/* What the engine keeps of it (local: its directory). */
			struct expt_backend_conf conf = {r->spec_json, ctx->db_path, NULL, 0,
							 NULL,	       NULL};
			struct expt_backend be = {0};
			if ((rc = expt_backend_open(&be, r->backend, &conf, &ctx->err)) ||
			    (rc = be.ops->remove(be.state, r, &ctx->err))) {
				expt_backend_close(&be);
				goto out;
			}
			expt_backend_close(&be);
		}
		printf("%s removed\n", r->run_id);
		nrm++;
	}
	if (!nrm)
		fprintf(stderr, "expt rm: no run matched\n");
out:
	expt_run_list_release(&l);
	return rc;
}
