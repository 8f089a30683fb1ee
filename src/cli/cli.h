/* The command-line front end: the command table, shared setup and output helpers.
 * cli/ is the only layer that prints or exits. */
#ifndef EXPT_CLI_CLI_H
#define EXPT_CLI_CLI_H

#include <stdio.h>

#include "store/store.h"
#include "util/util.h"

enum cli_output { CLI_OUT_TEXT, CLI_OUT_WIDE, CLI_OUT_JSON, CLI_OUT_YAML };

/* What a command needs set up before it runs. */
enum {
	CLI_NEED_STORE = 1,	   /* open the existing store (error if none) */
	CLI_NEED_STORE_CREATE = 2, /* open, creating .expt/ in the current directory if needed */
};

struct cli_ctx {
	const char *prog;
	struct expt_store *store; /* set when the command asked for it */
	char *db_path;
	char *project_dir;
	int color_out; /* stdout is a terminal and NO_COLOR unset */
	int color_err;
	int tty_err;	     /* stderr is a terminal (live progress), whatever NO_COLOR says */
	struct expt_err err; /* a command fills it and returns its code; main prints it */
	/* Engines asked about runs no expt process follows (reconcile), kept open across the
	 * runs and calls of one command: one connection to a cluster, not one per run. */
	struct cli_engine **engines;
	size_t nengines;
};

struct cli_cmd {
	const char *name;
	const char *summary; /* one line for `expt help` */
	const char *usage;   /* full --help text */
	int needs;
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv);
};

extern const struct cli_cmd cli_cmd_init, cli_cmd_run, cli_cmd_plan, cli_cmd_ps, cli_cmd_logs,
    cli_cmd_show, cli_cmd_compare, cli_cmd_stop, cli_cmd_rm, cli_cmd_retry, cli_cmd_debug,
    cli_cmd_log, cli_cmd_version, cli_cmd_build, cli_cmd_completion, cli_cmd_plot, cli_cmd_complete,
    cli_cmd_kube, cli_cmd_sync, cli_cmd_artifacts, cli_cmd_tracking;
/* Every command, in `expt --help` order (main.c); hidden helpers have no summary. */
extern const struct cli_cmd *const cli_commands[];
extern const size_t cli_ncommands;

/* Parses "-o FORMAT" values; returns -1 for an unknown one. */
int cli_parse_output(const char *s, enum cli_output *out);
/* Prints the command's usage to stdout. */
void cli_usage(const struct cli_cmd *cmd);
/* Sets a usage error ("unknown option", ...) and returns EXPT_EUSAGE. */
int cli_usage_error(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The usage error for getopt's ':' (missing value) or '?' (unknown option). */
int cli_bad_option(struct cli_ctx *ctx, const struct cli_cmd *cmd, int c, char **argv);
/* Returns 1 if argv holds -h or --help before any "--". */
int cli_wants_help(int argc, char **argv);

#endif
