/* expt run: load the spec, create the runs, execute them through the backend. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <poll.h>
#include <unistd.h>

#include "buildimg.h"
#include "cli.h"
#include "launch.h"
#include "resolve.h"
#include "specopts.h"

static const char usage[] =
    "usage: expt run [options] [KEY=VALUE ...]\n"
    "\n"
    "Runs the experiment in ./expt.yaml: one run, or one per point of its sweep.\n"
    "KEY=VALUE overrides a param (lr=0.1) or a spec field (resources.memory=2Gi);\n"
    "a comma list sweeps a param (lr=0.1,0.01). See docs/spec.md.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE       spec file (default: expt.yaml)\n"
    "  -v, --variant NAME    use a named variant of the spec\n"
    "  -p, --parallel N      at most N runs at once (spec: parallel)\n"
    "      --backend NAME    local (default), container or kubernetes; = backend=NAME\n"
    "      --context NAME    kubeconfig context (kubernetes.context=NAME)\n"
    "      --namespace NS    Kubernetes namespace (kubernetes.namespace=NS)\n"
    "  -d, --detach          return at once; the runs go on without this terminal: a\n"
    "                        background supervisor keeps them, or the engine alone when\n"
    "                        it can (containers, Kubernetes: docs/cli.md). Follow them\n"
    "                        with 'expt logs -f' or 'expt run --attach', stop them with\n"
    "                        'expt stop'\n"
    "  -q, --quiet           do not show run output, only the summary\n"
    "      --attach EXPT     attach to an experiment's runs that are still going (started\n"
    "                        with -d, or from another terminal): follow their new output\n"
    "                        and end, like a run in the foreground, when they have all\n"
    "                        ended; Ctrl-C detaches and leaves them running\n"
    "      --build           build and push the image of the spec's build: section first\n"
    "                        (as 'expt build' does) and pin every run to its digest; the\n"
    "                        same as image: build in the spec\n"
    "      --dry-run         show the runs that would be created and run nothing\n"
    "  -o, --output FORMAT   with --dry-run: text, json or yaml (kubernetes: the Jobs\n"
    "                        that would be sent, ready for 'kubectl apply -f -')\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit status: 0 all runs succeeded, 1 a run failed, 2 bad spec or usage,\n"
    "130 interrupted (Ctrl-C stops every run and marks it stopped).\n";

static int cmd_run(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_run = {"run", "run the experiment (a sweep runs many)", usage, 0,
				    cmd_run};

/* expt run --attach EXPT: the experiment's runs still going, followed as a foreground run is:
 * their new output (through expt logs -f), then the summary and the exit status of a run. The
 * runs are not this process's: Ctrl-C leaves them going. */
static int attach(struct cli_ctx *ctx, const char *ref, int quiet)
{
	struct expt_run_list l = {0};
	struct expt_strv ids = EXPT_STRV_INIT;
	size_t ok = 0, failed = 0, stopped = 0, left = 0;
	char cwd[4096];
	int rc;

	if (!getcwd(cwd, sizeof(cwd)))
		return expt_err_errno(&ctx->err, EXPT_EFAIL, "cannot read the current directory");
	if ((rc = expt_store_locate(cwd, 0, &ctx->db_path, &ctx->project_dir, &ctx->err)) ||
	    (rc = expt_store_open(&ctx->store, ctx->db_path, &ctx->err)) ||
	    (rc = cli_resolve_runs(ctx, ref, 0, &l, NULL)))
		goto out;
	for (size_t i = 0; i < l.n; i++)
		if (!expt_run_status_done(l.v[i].status))
			expt_strv_push(&ids, l.v[i].run_id);
	if (!ids.n) {
		rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND,
				  "no run of %s is going: nothing to attach to (see 'expt ps %s')",
				  ref, ref);
		goto out;
	}
	fprintf(stderr, "expt: attached to %zu run%s of %s (Ctrl-C detaches; they go on)\n", ids.n,
		ids.n == 1 ? "" : "s", ref);
	if (!quiet) {
		char *largv[] = {"logs", "-f", "-n", "0", (char *)ref, NULL};
		if ((rc = cli_cmd_logs.fn(ctx, 5, largv)))
			goto out;
	}
	for (;;) {
		expt_run_list_release(&l);
		if ((rc = cli_resolve_runs(ctx, ref, 0, &l, NULL)))
			goto out;
		ok = failed = stopped = left = 0;
		for (size_t i = 0; i < l.n; i++) {
			const struct expt_run_rec *r = &l.v[i];
			if (expt_strv_find(&ids, r->run_id) < 0)
				continue;
			ok += r->status == EXPT_RUN_SUCCEEDED;
			failed += r->status == EXPT_RUN_FAILED;
			stopped += r->status == EXPT_RUN_STOPPED;
			left += !expt_run_status_done(r->status);
		}
		/* Quiet: waited for here; else logs -f returned at the end, or on Ctrl-C. */
		if (!left || !quiet)
			break;
		poll(NULL, 0, 1000);
	}
	if (left) {
		fprintf(stderr, "expt: detached; %zu run%s of %s still going\n", left,
			left == 1 ? "" : "s", ref);
		rc = EXPT_EINTR;
		goto out;
	}
	fprintf(stderr, "expt: %zu run%s: %zu succeeded, %zu failed, %zu stopped\n", ids.n,
		ids.n == 1 ? "" : "s", ok, failed, stopped);
	rc = failed || stopped ? EXPT_EFAIL : 0;
out:
	expt_strv_release(&ids);
	expt_run_list_release(&l);
	return rc;
}

static int cmd_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"file", required_argument, NULL, 'f'},
	    {"variant", required_argument, NULL, 'v'},
	    {"parallel", required_argument, NULL, 'p'},
	    {"backend", required_argument, NULL, 'B'},
	    {"context", required_argument, NULL, 'C'},
	    {"namespace", required_argument, NULL, 'N'},
	    {"detach", no_argument, NULL, 'd'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"build", no_argument, NULL, 'b'},
	    {"output", required_argument, NULL, 'o'},
	    {"attach", required_argument, NULL, 'A'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_specopts so;
	struct cli_launch_opts lo;
	struct expt_spec *spec = NULL;
	struct expt_params *params = NULL;
	enum cli_output fmt = CLI_OUT_TEXT;
	const char *attach_to = NULL;
	int dry = 0, build = 0, c, rc;

	memset(&so, 0, sizeof(so));
	memset(&lo, 0, sizeof(lo));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":f:v:p:dqo:", longopts, NULL)) != -1) {
		if (cli_specopts_option(&so, c, optarg))
			continue;
		switch (c) {
		case 'd':
			lo.detach = 1;
			break;
		case 'q':
			lo.quiet = 1;
			break;
		case 'n':
			dry = 1;
			break;
		case 'b':
			build = 1;
			break;
		case 'A':
			attach_to = optarg;
			break;
		case 'o':
			if (cli_parse_output(optarg, &fmt) || fmt == CLI_OUT_WIDE) {
				rc = cli_usage_error(
				    ctx, &cli_cmd_run,
				    "unknown output format '%s' (text, json, yaml)", optarg);
				goto out;
			}
			break;
		default:
			rc = cli_bad_option(ctx, &cli_cmd_run, c, argv);
			goto out;
		}
	}
	if (attach_to) {
		if (optind < argc || dry || build || lo.detach)
			rc = cli_usage_error(ctx, &cli_cmd_run,
					     "--attach takes no spec, overrides, -d, --build or "
					     "--dry-run: it follows runs that exist");
		else
			rc = attach(ctx, attach_to, lo.quiet);
		goto out;
	}
	if ((rc = cli_specopts_args(ctx, &cli_cmd_run, &so, argc, argv, optind)))
		goto out;
	if ((rc = cli_load_spec(ctx, &so, &spec)))
		goto out;
	if (dry) {
		rc = cli_print_plan(ctx, spec, fmt);
		goto out;
	}
	if (build || (spec->image && !strcmp(spec->image, "build"))) {
		/* Build, then load the spec again with image= the pinned reference, so that the
		 * runs, their recorded spec and a later retry all name that exact image. */
		struct expt_oci_build_result res;
		if ((rc = cli_build_image(ctx, spec, NULL, lo.quiet, &res)))
			goto out;
		if (!lo.quiet)
			fprintf(stderr, "image %s\n", res.ref);
		expt_strv_pushf(&so.overrides, "image=%s", res.ref);
		expt_spec_free(spec);
		spec = NULL;
		if ((rc = cli_load_spec(ctx, &so, &spec)))
			goto out;
	}
	/* The store is opened only now, so that a bad spec leaves nothing behind. It is the one
	 * found from the working directory (like git); if there is none, the one of the spec's
	 * project (found from, or created in, the spec's directory), where the runs execute. */
	{
		char *cwd = expt_abspath(".");
		rc = expt_store_locate(cwd ? cwd : ".", 0, &ctx->db_path, &ctx->project_dir,
				       &ctx->err);
		free(cwd);
		if (rc == EXPT_ENOTFOUND) {
			expt_err_clear(&ctx->err);
			rc = expt_store_locate(spec->dir, 1, &ctx->db_path, &ctx->project_dir,
					       &ctx->err);
		}
		if (rc || (rc = expt_store_open(&ctx->store, ctx->db_path, &ctx->err)))
			goto out;
	}
	params = expt_xcalloc(spec->nruns, sizeof(*params));
	for (size_t i = 0; i < spec->nruns; i++)
		params[i] = spec->runs[i].params; /* borrowed: spec owns them */
	rc = cli_launch(ctx, spec, params, NULL, spec->nruns, &lo);
out:
	free(params);
	expt_spec_free(spec);
	cli_specopts_release(&so);
	return rc;
}
