/* Pieces shared by the commands that show one run (show, debug). */
#ifndef EXPT_CLI_RUNVIEW_H
#define EXPT_CLI_RUNVIEW_H

#include "cli.h"

/* argv as a shell-quoted command line; caller frees. */
char *cli_argv_line(const char *argv_json);

#endif
