/* expt plan: show the runs a spec expands to (params, argv, env) and run nothing. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "specopts.h"

static const char usage[] =
    "usage: expt plan [options] [KEY=VALUE ...]\n"
    "\n"
    "Shows the runs that 'expt run' would create with the same arguments: each run's\n"
    "params, exact argv and the environment expt adds. Runs nothing, writes nothing.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE       spec file (default: expt.yaml)\n"
    "  -v, --variant NAME    use a named variant of the spec\n"
    "  -p, --parallel N      as for expt run\n"
    "      --backend NAME    as for expt run\n"
    "      --context NAME    as for expt run\n"
    "      --namespace NS    as for expt run\n"
    "  -o, --output FORMAT   text (default), json or yaml (json/yaml include the resolved spec)\n"
    "  -h, --help            this help\n";

static int cmd_plan(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_plan = {"plan", "show the runs a spec expands to, run nothing", usage,
				     0, cmd_plan};

static int cmd_plan(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"file", required_argument, NULL, 'f'},	{"variant", required_argument, NULL, 'v'},
	    {"parallel", required_argument, NULL, 'p'}, {"backend", required_argument, NULL, 'B'},
	    {"context", required_argument, NULL, 'C'},	{"namespace", required_argument, NULL, 'N'},
	    {"output", required_argument, NULL, 'o'},	{NULL, 0, NULL, 0},
	};
	struct cli_specopts so;
	struct expt_spec *spec = NULL;
	enum cli_output fmt = CLI_OUT_TEXT;
	int c, rc = 0;

	memset(&so, 0, sizeof(so));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":f:v:p:o:", longopts, NULL)) != -1) {
		if (cli_specopts_option(&so, c, optarg))
			continue;
		switch (c) {
		case 'o':
			if (cli_parse_output(optarg, &fmt) || fmt == CLI_OUT_WIDE) {
				rc = cli_usage_error(
				    ctx, &cli_cmd_plan,
				    "unknown output format '%s' (text, json, yaml)", optarg);
				goto out;
			}
			break;
		default:
			rc = cli_bad_option(ctx, &cli_cmd_plan, c, argv);
			goto out;
		}
	}
	if ((rc = cli_specopts_args(ctx, &cli_cmd_plan, &so, argc, argv, optind)))
		goto out;
	if (!(rc = cli_load_spec(ctx, &so, &spec)))
		rc = cli_print_plan(ctx, spec, fmt);
out:
	expt_spec_free(spec);
	cli_specopts_release(&so);
	return rc;
}
