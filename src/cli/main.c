/* expt: the entry point. Finds the command, sets up what it needs, prints its error once. */
#include "cli.h"
#include "resolve.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const struct cli_cmd *const cli_commands[] = {
    &cli_cmd_init,     &cli_cmd_run,	 &cli_cmd_build,      &cli_cmd_plan, &cli_cmd_ps,
    &cli_cmd_logs,     &cli_cmd_show,	 &cli_cmd_compare,    &cli_cmd_stop, &cli_cmd_rm,
    &cli_cmd_retry,    &cli_cmd_debug,	 &cli_cmd_log,	      &cli_cmd_sync, &cli_cmd_artifacts,
    &cli_cmd_tracking, &cli_cmd_version, &cli_cmd_completion, &cli_cmd_plot, &cli_cmd_complete,
    &cli_cmd_kube,
};
#define NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))
const size_t cli_ncommands = NCOMMANDS;

static void print_help(FILE *f)
{
	size_t i;

	fprintf(f, "usage: expt <command> [options] [args]\n\n"
		   "Run ML experiments from one spec (expt.yaml), locally or on a cluster.\n\n"
		   "Commands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		if (cli_commands[i]->summary) /* hidden helpers have none */
			fprintf(f, "  %-10s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
	fprintf(f,
		"\nRun 'expt <command> --help' for a command's options.\n"
		"Exit codes: 0 ok, 1 failed (a run failed), 2 bad usage or spec, 3 not found,\n"
		"4 store problem, 5 backend problem, 8 refused by a server (RBAC, credentials),\n"
		"130 interrupted.\n");
}

int cli_parse_output(const char *s, enum cli_output *out)
{
	if (!strcmp(s, "text") || !strcmp(s, "table"))
		*out = CLI_OUT_TEXT;
	else if (!strcmp(s, "wide"))
		*out = CLI_OUT_WIDE;
	else if (!strcmp(s, "json"))
		*out = CLI_OUT_JSON;
	else if (!strcmp(s, "yaml"))
		*out = CLI_OUT_YAML;
	else
		return -1;
	return 0;
}

void cli_usage(const struct cli_cmd *cmd)
{
	fputs(cmd->usage, stdout);
}

int cli_usage_error(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	expt_err_clear(&ctx->err);
	ctx->err.code = EXPT_EUSAGE;
	va_start(ap, fmt);
	vsnprintf(ctx->err.msg, sizeof(ctx->err.msg), fmt, ap);
	va_end(ap);
	len = strlen(ctx->err.msg);
	snprintf(ctx->err.msg + len, sizeof(ctx->err.msg) - len, " (see 'expt %s --help')",
		 cmd->name);
	return EXPT_EUSAGE;
}

int cli_bad_option(struct cli_ctx *ctx, const struct cli_cmd *cmd, int c, char **argv)
{
	if (c == ':')
		return cli_usage_error(ctx, cmd, "option '%s' needs a value", argv[optind - 1]);
	return cli_usage_error(ctx, cmd, "unknown option '%s'", argv[optind - 1]);
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return 1;
	}
	return 0;
}

static int setup_store(struct cli_ctx *ctx, int needs)
{
	char cwd[4096];
	int rc;

	if (!getcwd(cwd, sizeof(cwd)))
		return expt_err_errno(&ctx->err, EXPT_EFAIL, "cannot read the current directory");
	rc = expt_store_locate(cwd, (needs & CLI_NEED_STORE_CREATE) != 0, &ctx->db_path,
			       &ctx->project_dir, &ctx->err);
	if (rc == EXPT_ENOTFOUND) {
		return expt_err_set(&ctx->err, EXPT_ENOTFOUND,
				    "no expt store here or in any parent directory (run 'expt run' "
				    "in a project first, or set EXPT_HOME)");
	}
	if (rc)
		return rc;
	return expt_store_open(&ctx->store, ctx->db_path, &ctx->err);
}

int main(int argc, char **argv)
{
	struct cli_ctx ctx;
	const struct cli_cmd *cmd = NULL;
	const char *no_color = getenv("NO_COLOR");
	char msg[2048];
	size_t i;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.prog = "expt";
	ctx.color_out = isatty(1) && !(no_color && *no_color);
	ctx.tty_err = isatty(2);
	ctx.color_err = ctx.tty_err && !(no_color && *no_color);

	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		if (argc >= 3 && !strcmp(argv[1], "help")) {
			for (i = 0; i < NCOMMANDS; i++)
				if (!strcmp(cli_commands[i]->name, argv[2])) {
					cli_usage(cli_commands[i]);
					return 0;
				}
		}
		print_help(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXPT_EUSAGE : 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
		cmd = &cli_cmd_version;
	for (i = 0; !cmd && i < NCOMMANDS; i++)
		if (!strcmp(cli_commands[i]->name, argv[1]))
			cmd = cli_commands[i];
	if (!cmd) {
		fprintf(stderr, "expt: '%s' is not an expt command (see 'expt --help')\n", argv[1]);
		return EXPT_EUSAGE;
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		cli_usage(cmd);
		return 0;
	}
	rc = 0;
	if (cmd->needs & (CLI_NEED_STORE | CLI_NEED_STORE_CREATE))
		rc = setup_store(&ctx, cmd->needs);
	if (!rc)
		rc = cmd->fn(&ctx, argc - 1, argv + 1);
	if (rc && ctx.err.code) {
		expt_err_format(&ctx.err, msg, sizeof(msg));
		fprintf(stderr, "expt %s: %s\n", cmd->name, msg);
	}
	cli_engines_close(&ctx);
	expt_store_close(ctx.store);
	free(ctx.db_path);
	free(ctx.project_dir);
	/* Output that could not be written (disk full, closed pipe) is a failure, not success. */
	if ((fflush(stdout) || ferror(stdout)) && !rc) {
		fprintf(stderr, "expt %s: cannot write output: %s\n", cmd->name, strerror(errno));
		rc = EXPT_EFAIL;
	}
	return rc;
}
