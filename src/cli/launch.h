/* Launching runs: create the run records, prepare their directories and contract, and supervise
 * them through the backend (in the foreground, or detached). Shared by run and retry. */
#ifndef EXPT_CLI_LAUNCH_H
#define EXPT_CLI_LAUNCH_H

#include "cli.h"
#include "spec/spec.h"

struct cli_launch_opts {
	int detach; /* -d: a background supervisor keeps the runs going */
	int quiet;  /* no run output on the console, only the summary */
};

/* Launches n runs of spec with the given params (retry_of[i] may be NULL; retry_of itself may be
 * NULL). Returns 0 when every run succeeded, EXPT_EFAIL when one failed, EXPT_EINTR when stopped,
 * or another code with ctx->err filled. */
int cli_launch(struct cli_ctx *ctx, const struct expt_spec *spec, const struct expt_params *params,
	       const char *const *retry_of, size_t n, const struct cli_launch_opts *opts);

#endif
