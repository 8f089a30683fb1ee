/* expt init: scaffold expt.yaml and an example train.py in the current directory. */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "spec/spec.h"

static const char usage[] =
    "usage: expt init [NAME] [options]\n"
    "\n"
    "Writes expt.yaml (experiment NAME, default: the directory's name made a valid\n"
    "name) and an example train.py (Python, standard library only) that reads its\n"
    "params as arguments and reports metrics on stdout. Existing files are kept\n"
    "unless --force.\n"
    "\n"
    "Options:\n"
    "      --force           overwrite existing files\n"
    "  -h, --help            this help\n";

static int cmd_init(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_init = {"init", "create expt.yaml and an example train.py", usage, 0,
				     cmd_init};

static const char spec_tmpl[] = "# expt.yaml — see docs/spec.md for every field.\n"
				"name: %s\n"
				"command: python3 train.py\n"
				"args: auto            # params become --lr 0.01 --epochs 5 ...\n"
				"params:\n"
				"  lr: 0.01\n"
				"  epochs: 5\n"
				"  batch: 32\n"
				"sweep:                # a grid: 2 x 2 = 4 runs\n"
				"  lr: [0.1, 0.01]\n"
				"  batch: [32, 64]\n"
				"parallel: 2\n"
				"timeout: 10m\n"
				"variants:\n"
				"  quick:\n"
				"    params: {epochs: 1}\n";

static const char train_py[] =
    "\"\"\"Example training script for expt: params arrive as arguments (also as\n"
    "EXPT_PARAM_* env vars and the JSON file $EXPT_PARAMS_FILE); metrics are\n"
    "reported by printing 'expt: key=value ... step=N' lines.\"\"\"\n"
    "import argparse\n"
    "import math\n"
    "import os\n"
    "import random\n"
    "\n"
    "p = argparse.ArgumentParser()\n"
    "p.add_argument(\"--lr\", type=float, default=0.01)\n"
    "p.add_argument(\"--epochs\", type=int, default=5)\n"
    "p.add_argument(\"--batch\", type=int, default=32)\n"
    "a = p.parse_args()\n"
    "\n"
    "random.seed(int(a.lr * 1e6) + a.batch)\n"
    "loss = 2.0\n"
    "for epoch in range(1, a.epochs + 1):\n"
    "    loss *= math.exp(-a.lr * 20 * (64 / a.batch) ** 0.5) + random.uniform(0, 0.05)\n"
    "    acc = max(0.0, min(1.0, 1.0 - loss / 2))\n"
    "    print(f\"expt: loss={loss:.4f} acc={acc:.4f} step={epoch}\", flush=True)\n"
    "\n"
    "out = os.environ.get(\"EXPT_OUTPUT_DIR\", \".\")\n"
    "with open(os.path.join(out, \"model.txt\"), \"w\") as f:\n"
    "    f.write(f\"lr={a.lr} batch={a.batch} loss={loss}\\n\")\n"
    "print(f\"done: loss {loss:.4f}\")\n";

static void default_name(char *out, size_t n)
{
	char cwd[PATH_MAX], *base;
	size_t len = 0;

	snprintf(out, n, "experiment");
	if (!getcwd(cwd, sizeof(cwd)))
		return;
	base = strrchr(cwd, '/');
	base = base ? base + 1 : cwd;
	for (const char *p = base; *p && len + 1 < n && len < 40; p++) {
		char ch = *p;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
			ch = '-';
		if (ch == '-' && (len == 0 || out[len - 1] == '-'))
			continue;
		out[len++] = ch;
	}
	while (len && out[len - 1] == '-')
		len--;
	out[len] = '\0';
	if (!len || !expt_dns_label_ok(out))
		snprintf(out, n, "experiment");
}

static int cmd_init(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"force", no_argument, NULL, 'F'},
						 {NULL, 0, NULL, 0}};
	char name[64];
	char *spec = NULL;
	int force = 0, c, rc = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (c == 'F')
			force = 1;
		else
			return cli_bad_option(ctx, &cli_cmd_init, c, argv);
	}
	if (argc - optind > 1)
		return cli_usage_error(ctx, &cli_cmd_init, "expected at most one name");
	if (optind < argc) {
		if (!expt_experiment_name_ok(argv[optind]))
			return expt_err_set(
			    &ctx->err, EXPT_EUSAGE,
			    "'%s' is not a valid experiment name: use letters, digits, "
			    "'_', '.' and '-', starting with a letter or digit, at most "
			    "%d characters",
			    argv[optind], EXPT_NAME_MAX);
		snprintf(name, sizeof(name), "%s", argv[optind]);
	} else {
		default_name(name, sizeof(name));
	}
	if (!force && (expt_path_exists("expt.yaml") || expt_path_exists("train.py")))
		return expt_err_set(&ctx->err, EXPT_EUSAGE,
				    "%s already exists (use --force to overwrite)",
				    expt_path_exists("expt.yaml") ? "expt.yaml" : "train.py");
	spec = expt_xasprintf(spec_tmpl, name);
	if ((rc = expt_write_file("expt.yaml", spec, strlen(spec), &ctx->err)) ||
	    (rc = expt_write_file("train.py", train_py, sizeof(train_py) - 1, &ctx->err)))
		goto out;
	printf("created expt.yaml (experiment '%s') and train.py\n"
	       "next: 'expt plan' to see the runs, 'expt run' to run them, "
	       "'expt compare %s' to compare\n",
	       name, name);
out:
	free(spec);
	return rc;
}
