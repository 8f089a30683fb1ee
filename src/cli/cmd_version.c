/* expt version: print the version and the versions of the libraries it was built with. */
#include <jansson.h>
#include <sqlite3.h>

#include "cli.h"

static const char usage[] = "usage: expt version\n\nPrints expt's version and its libraries'.\n";

static int cmd_version(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	printf("expt %s (sqlite %s, jansson %s)\n", EXPT_VERSION, sqlite3_libversion(),
	       JANSSON_VERSION);
	return 0;
}

const struct cli_cmd cli_cmd_version = {"version", "print the version", usage, 0, cmd_version};
