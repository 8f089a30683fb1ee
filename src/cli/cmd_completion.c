/* expt completion bash|zsh|fish: shell completion, as kubectl and gh do it. The scripts ask the
 * binary itself (`expt __complete WORD...`) for candidates: commands, each command's options
 * (read from its --help text, so they never disagree), experiment and run ids from the store,
 * variant names from the spec, and the values of -o. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/yaml.h"

static const char usage[] =
    "usage: expt completion bash|zsh|fish\n"
    "\n"
    "Prints a completion script for the shell. Commands, options, experiment and run ids\n"
    "from the store, and variant names from ./expt.yaml complete with TAB.\n"
    "\n"
    "  bash:  source <(expt completion bash)        (or save it in\n"
    "         /etc/bash_completion.d/expt)\n"
    "  zsh:   source <(expt completion zsh)         (after compinit)\n"
    "  fish:  expt completion fish | source         (or save it in\n"
    "         ~/.config/fish/completions/expt.fish)\n"
    "\n"
    "Options:\n"
    "  -h, --help            this help\n";

static int cmd_completion(struct cli_ctx *ctx, int argc, char **argv);
static int cmd_complete(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_completion = {"completion", "print a shell completion script", usage,
					   0, cmd_completion};
/* Hidden (no summary): what the scripts call. */
const struct cli_cmd cli_cmd_complete = {"__complete", NULL, "usage: expt __complete WORD...\n", 0,
					 cmd_complete};

static const char bash_script[] =
    "# expt completion for bash: source <(expt completion bash)\n"
    "_expt() {\n"
    "\tlocal IFS=$'\\n'\n"
    "\tCOMPREPLY=($(expt __complete \"${COMP_WORDS[@]:1:COMP_CWORD}\" 2>/dev/null))\n"
    "}\n"
    "complete -o default -F _expt expt\n";

static const char zsh_script[] =
    "#compdef expt\n"
    "# expt completion for zsh: source <(expt completion zsh)\n"
    "_expt() {\n"
    "\tlocal -a c\n"
    "\tc=(\"${(@f)$(expt __complete \"${(@)words[2,CURRENT]}\" 2>/dev/null)}\")\n"
    "\tcompadd -a c\n"
    "}\n"
    "compdef _expt expt\n";

static const char fish_script[] =
    "# expt completion for fish: expt completion fish | source\n"
    "complete -c expt -f -a '(expt __complete (commandline -opc)[2..-1] (commandline -ct) "
    "2>/dev/null)'\n";

static int cmd_completion(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return cli_usage_error(ctx, &cli_cmd_completion, "name a shell: bash, zsh or fish");
	if (!strcmp(argv[1], "bash"))
		fputs(bash_script, stdout);
	else if (!strcmp(argv[1], "zsh"))
		fputs(zsh_script, stdout);
	else if (!strcmp(argv[1], "fish"))
		fputs(fish_script, stdout);
	else
		return cli_usage_error(ctx, &cli_cmd_completion,
				       "no completion for '%s' (bash, zsh or fish)", argv[1]);
	return 0;
}

static void say(const char *cand, const char *prefix)
{
	if (!strncmp(cand, prefix, strlen(prefix)))
		printf("%s\n", cand);
}

/* The options a command's --help lists: the "-s, --sort" words that start the lines of its
 * Options section. */
static void options(const struct cli_cmd *cmd, const char *prefix)
{
	const char *p = strstr(cmd->usage, "\nOptions:\n");

	for (p = p ? strchr(p + 1, '\n') : NULL; p && *p; p = strchr(p + 1, '\n')) {
		const char *s = p + 1;
		while (*s == ' ')
			s++;
		while (*s == '-') {
			size_t n = strcspn(s, " ,\n");
			char *opt = expt_xstrndup(s, n);
			say(opt, prefix);
			free(opt);
			s += n;
			if (strncmp(s, ", -", 3))
				break;
			s += 2;
		}
	}
}

/* Experiment names and run ids of the store above the current directory, quietly. */
static void store_words(struct cli_ctx *ctx, const char *prefix, int runs)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_experiment_list el = {0};
	struct expt_run_list rl = {0};
	struct expt_run_filter f = {NULL, 0, 200, 0};
	char cwd[4096];
	char *db = NULL, *project = NULL;

	if (!getcwd(cwd, sizeof(cwd)) || expt_store_locate(cwd, 0, &db, &project, &e) ||
	    expt_store_open(&ctx->store, db, &e))
		goto out;
	if (!expt_store_list_experiments(ctx->store, &el, &e))
		for (size_t i = 0; i < el.n; i++)
			say(el.v[i].name, prefix);
	if (runs && !expt_store_list_runs(ctx->store, &f, &rl, &e))
		for (size_t i = 0; i < rl.n; i++)
			say(rl.v[i].run_id, prefix);
out:
	expt_experiment_list_release(&el);
	expt_run_list_release(&rl);
	free(db);
	free(project);
}

/* Variant names of ./expt.yaml (or of -f FILE among the words). */
static void variants(int argc, char **argv, const char *prefix)
{
	const char *path = "expt.yaml";
	struct expt_buf data = EXPT_BUF_INIT;
	struct expt_diags diags = {0};
	struct expt_ynode *root = NULL;
	struct expt_err e = EXPT_ERR_INIT;
	const struct expt_ynode *vs;

	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file"))
			path = argv[i + 1];
	expt_buf_init(&data, 1 << 20);
	if (!expt_read_file(path, &data, &e) &&
	    !expt_ynode_parse(data.buf, data.len, path, &root, &diags) && root &&
	    (vs = expt_ynode_get(root, "variants")) && vs->kind == EXPT_Y_MAP)
		for (size_t i = 0; i < vs->n; i++)
			say(vs->keys[i]->text, prefix);
	expt_ynode_free(root);
	expt_diags_release(&diags);
	expt_buf_release(&data);
}

static int cmd_complete(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *cur = argc > 1 ? argv[argc - 1] : "";
	const char *prev = argc > 2 ? argv[argc - 2] : "";
	const struct cli_cmd *cmd = NULL;

	if (argc <= 2) { /* the command itself */
		for (size_t i = 0; i < cli_ncommands; i++)
			if (cli_commands[i]->summary)
				say(cli_commands[i]->name, cur);
		say("help", cur);
		return 0;
	}
	for (size_t i = 0; i < cli_ncommands; i++)
		if (!strcmp(cli_commands[i]->name, argv[1]))
			cmd = cli_commands[i];
	if (!cmd)
		return 0;
	if (!strcmp(prev, "-o") || !strcmp(prev, "--output")) {
		static const char *const fmts[] = {"text", "wide", "json", "yaml"};
		for (size_t i = 0; i < 4; i++)
			say(fmts[i], cur);
	} else if (!strcmp(prev, "-v") || !strcmp(prev, "--variant")) {
		variants(argc, argv, cur);
	} else if (cur[0] == '-') {
		options(cmd, cur);
	} else if (cmd == &cli_cmd_completion) {
		say("bash", cur);
		say("zsh", cur);
		say("fish", cur);
	} else if (cmd->needs & CLI_NEED_STORE) {
		store_words(ctx, cur, 1);
	}
	return 0;
}
