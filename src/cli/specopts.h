/* Options shared by the commands that load a spec (run, plan): -f, -v, -p, --backend, KEY=VALUE. */
#ifndef EXPT_CLI_SPECOPTS_H
#define EXPT_CLI_SPECOPTS_H

#include "cli.h"
#include "spec/spec.h"

struct cli_specopts {
	const char *file;
	const char *variant;
	struct expt_strv overrides; /* KEY=VALUE in command-line order, -p/--backend folded in */
};

/* Loads the spec; on bad input prints every diagnostic to stderr and returns EXPT_EUSAGE. */
int cli_load_spec(struct cli_ctx *ctx, struct cli_specopts *o, struct expt_spec **out);
void cli_specopts_release(struct cli_specopts *o);
/* Prints the runs of a spec (expt plan, expt run --dry-run). */
int cli_print_plan(struct cli_ctx *ctx, const struct expt_spec *spec, enum cli_output fmt);

#endif
