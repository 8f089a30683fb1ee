/* Turning a command's RUN|EXPT argument into store records. */
#ifndef EXPT_CLI_RESOLVE_H
#define EXPT_CLI_RESOLVE_H

#include "cli.h"

struct expt_backend;

/* Brings the store up to date before it is read: runs that no live expt process watches are
 * asked of their engine (adopted while it still runs them, ended as it says), and runs whose
 * supervisor is gone are marked lost. Read commands call it (through the resolvers too). */
int cli_reconcile(struct cli_ctx *ctx);

/* Fills out with the run named ref, or every run of the experiment named ref (oldest first).
 * ref NULL: every run of the store. Returns EXPT_ENOTFOUND with a clear message if nothing
 * matches. *is_run tells which one matched (may be NULL). */
int cli_resolve_runs(struct cli_ctx *ctx, const char *ref, int include_specs,
		     struct expt_run_list *out, int *is_run);
/* The single run named ref; an experiment name is refused with a hint. */
int cli_resolve_run(struct cli_ctx *ctx, const char *ref, struct expt_run_rec *out);

/* Feeds what the store lacks of an ended run's output (metric lines, the stdout sink's records)
 * into it, by position, so that it is never counted twice: for runs whose output no supervisor
 * read to the end (a lost supervisor; engines that keep runs without expt). Best effort: a
 * failure is a warning on stderr. */
void cli_catch_up_output(struct cli_ctx *ctx, const struct expt_run_rec *r);

/* The backend named name opened for runs of spec_json, kept in ctx for the rest of the command
 * (NULL with *err set when it cannot be opened). Borrowed: cli_engines_close closes them. */
struct expt_backend *cli_engine(struct cli_ctx *ctx, const char *name, const char *spec_json,
				struct expt_err *err);
void cli_engines_close(struct cli_ctx *ctx);

/* Parses a common "-o FORMAT" option value into fmt; sets a usage error on failure. */
int cli_opt_output(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *arg,
		   enum cli_output *fmt, int allow_wide);

#endif
