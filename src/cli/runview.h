/* Pieces shared by the commands that show one run (show, debug). */
#ifndef EXPT_CLI_RUNVIEW_H
#define EXPT_CLI_RUNVIEW_H

#include "cli.h"

/* The last n lines of a file (reads at most the last 256 KiB). Missing file: no lines. */
void cli_tail_lines(const char *path, size_t n, struct expt_strv *out);
/* argv as a shell-quoted command line; caller frees. */
char *cli_argv_line(const char *argv_json);

#endif
