/* Launching runs: create the run records, prepare their directories and contract, and supervise
 * them through the backend (in the foreground, or detached). Shared by run and retry. */
#ifndef EXPT_CLI_LAUNCH_H
#define EXPT_CLI_LAUNCH_H

#include "backend/backend.h"
#include "cli.h"
#include "spec/spec.h"

struct cli_launch_opts {
	int detach; /* -d: a background supervisor keeps the runs going */
	int quiet;  /* no run output on the console, only the summary */
};

/* The argv and the whole environment of a run as `expt run` gives it, with the contract's paths
 * (as the backend says the run sees them). Shared by launch and plan, so that plan shows exactly
 * what run does. */
int cli_run_argv_env(const struct expt_spec *spec, const struct expt_params *params,
		     const char *run_id, const struct expt_contract *k, struct expt_strv *argv,
		     struct expt_strv *env, struct expt_err *err);

/* Launches n runs of spec with the given params (retry_of[i] may be NULL; retry_of itself may be
 * NULL). Returns 0 when every run succeeded, EXPT_EFAIL when one failed, EXPT_EINTR when stopped,
 * or another code with ctx->err filled. */
int cli_launch(struct cli_ctx *ctx, const struct expt_spec *spec, const struct expt_params *params,
	       const char *const *retry_of, size_t n, const struct cli_launch_opts *opts);

#endif
