/* Output helpers for commands: JSON/YAML emission of jansson values, aligned tables, colors. */
#ifndef EXPT_CLI_OUTPUT_H
#define EXPT_CLI_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

#include "cli.h"

/* Prints v as pretty JSON or as YAML (block style) followed by a newline. */
void cli_emit(FILE *f, json_t *v, enum cli_output fmt);

/* A text table: add a header row, then rows; print aligns columns (two spaces apart). */
struct cli_table {
	char **cells; /* row-major, owned */
	size_t ncols, nrows, cap;
};
void cli_table_init(struct cli_table *t, size_t ncols);
/* Adds one row of ncols strings (copied; NULL prints as "-"). */
void cli_table_row(struct cli_table *t, const char *const *cells);
void cli_table_print(FILE *f, const struct cli_table *t, int color_header);
void cli_table_release(struct cli_table *t);

/* ANSI color for a run status, or "" when color is off. */
const char *cli_status_color(const char *status, int color);
#define CLI_RESET(c) ((c) ? "\033[0m" : "")
#define CLI_BOLD(c) ((c) ? "\033[1m" : "")
#define CLI_DIM(c) ((c) ? "\033[2m" : "")
/* A stable color per run id (for log prefixes). */
const char *cli_run_color(const char *run_id, int color);

/* Converts a store run record to JSON (fields in a stable order). */
json_t *cli_run_json(const struct expt_run_rec *r);
/* "3.2s", "-" when not started. */
void cli_run_duration(const struct expt_run_rec *r, char *out, size_t n);
/* A JSON string of s; bytes that are not valid UTF-8 (a program's raw output) become U+FFFD
 * instead of the whole string being dropped. NULL s gives JSON null. */
json_t *cli_json_text(const char *s);
/* Parses a JSON text into a value, NULL on error or NULL input. */
json_t *cli_json_parse(const char *text);

#endif
