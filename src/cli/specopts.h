/* Options shared by the commands that load a spec (run, plan): -f, -v, -p, --backend, KEY=VALUE. */
#ifndef EXPT_CLI_SPECOPTS_H
#define EXPT_CLI_SPECOPTS_H

#include "cli.h"
#include "spec/spec.h"

struct cli_specopts {
	const char *file;
	const char *text; /* the spec in memory (a run's recorded spec); file then names it */
	const char *variant;
	struct expt_strv overrides; /* KEY=VALUE in command-line order, -p/--backend folded in */
};

/* getopt letters shared by run and plan: f (file), v (variant), p (parallel), B (--backend).
 * Returns 1 when c was one of them (and records it), 0 otherwise. */
int cli_specopts_option(struct cli_specopts *o, int c, const char *arg);
/* Collects the KEY=VALUE arguments argv[first..argc-1]; anything else is a usage error. */
int cli_specopts_args(struct cli_ctx *ctx, const struct cli_cmd *cmd, struct cli_specopts *o,
		      int argc, char **argv, int first);
/* Loads the spec; on bad input prints every diagnostic to stderr and returns EXPT_EUSAGE. */
int cli_load_spec(struct cli_ctx *ctx, struct cli_specopts *o, struct expt_spec **out);
void cli_specopts_release(struct cli_specopts *o);
/* Prints the runs of a spec (expt plan, expt run --dry-run). */
int cli_print_plan(struct cli_ctx *ctx, const struct expt_spec *spec, enum cli_output fmt);

#endif
