/* Internal to spec/: the steps of loading a spec (variants, overrides, validation, sweeps) and the
 * helpers they share. Nothing here is for callers outside src/spec. */
#ifndef EXPT_SPEC_INTERNAL_H
#define EXPT_SPEC_INTERNAL_H

#include <stdint.h>

#include "node.h"

/* The most runs one sweep may expand to. */
#define EXPT_SPEC_MAX_RUNS 100000

/* Top-level fields of a spec, in documentation order (NULL-terminated). */
extern const char *const expt_spec_fields[];
int expt_spec_is_field(const char *key);
/* "prefix.key" (or "key" when prefix is empty) into out, for diagnostics; control characters in
 * the user's keys become '?' so that they never reach the terminal. */
void expt_spec_field_path(char *out, size_t n, const char *prefix, const char *key);

struct expt_sweep;

/* ---- validate.c ---- */

/* Checks root (the spec after variant and overrides) and fills s and sweep; s must hold its
 * defaults already. Returns 0, or -1 when problems were added to diags. */
int expt_spec_validate(struct expt_spec *s, const struct expt_ynode *root, struct expt_sweep *sweep,
		       struct expt_diags *diags);

/* ---- override.c ---- */

/* Applies "key=value" arguments to root in order; -1 when problems were added to diags. */
int expt_spec_apply_overrides(struct expt_ynode *root, const char *const *args, size_t n,
			      struct expt_diags *diags);

/* ---- sweep.c ---- */

enum expt_sweep_method { EXPT_SWEEP_NONE, EXPT_SWEEP_GRID, EXPT_SWEEP_RANDOM, EXPT_SWEEP_LIST };

struct expt_sweep_axis {
	char *name;
	struct expt_value *vals; /* grid values, or random choices; owned */
	size_t nvals;
	int range; /* random: drawn from [min, max] instead of vals */
	int ints;  /* range bounds are both integers: draw integers */
	int log;   /* log-uniform */
	double min, max;
};

struct expt_sweep {
	enum expt_sweep_method method;
	struct expt_sweep_axis *axes; /* grid and random */
	size_t naxes;
	struct expt_params *trials; /* list */
	size_t ntrials;
	int64_t samples;	      /* random */
	uint64_t seed;		      /* random */
	const struct expt_ynode *at;  /* the sweep node, for messages (borrowed; NULL if none) */
	const struct expt_ynode *key; /* the sweep: key, for missing fields (borrowed; or NULL) */
};

/* Reads the sweep: node (NULL = no sweep), reporting problems; 0 or -1 if any were found.
 * key is the "sweep" key node, where missing fields are reported (may be NULL). */
int expt_sweep_parse(struct expt_sweep *sw, const struct expt_ynode *node,
		     const struct expt_ynode *key, struct expt_diags *diags);
/* Number of runs the sweep expands to, or -1 (after reporting) above EXPT_SPEC_MAX_RUNS. */
int64_t expt_sweep_count(const struct expt_sweep *sw, struct expt_diags *diags);
/* Expands into runs: each gets base merged with its values (see docs/spec.md for the order). */
void expt_sweep_expand(const struct expt_sweep *sw, const struct expt_params *base,
		       struct expt_run_plan **runs, size_t *nruns);
void expt_sweep_release(struct expt_sweep *sw);
/* Is the sweep: map in the long form (method/params/trials)? Which method does it use? */
int expt_sweep_is_long(const struct expt_ynode *sweep);
enum expt_sweep_method expt_sweep_method_of(const struct expt_ynode *sweep);

/* ---- contract.c ---- */

/* Splits s into words like a POSIX shell would, without any expansion: blanks separate words,
 * '...' is literal, "..." honours \" \\ \$ \` and \newline, a backslash outside quotes escapes
 * the next character. Returns 0, or -1 with *why set (unterminated quote). */
int expt_split_words(const char *s, struct expt_strv *out, const char **why);
/* Expands the {name} placeholders of one template word ({{ and }} are literal braces); lookup
 * returns the text for a name or NULL when unknown. Returns 0, or -1 with the bad name (or a
 * reason) in bad. quote: wrap each substituted value in single quotes for /bin/sh. */
typedef const char *(*expt_lookup_fn)(const char *name, void *payload);
int expt_template_expand(const char *word, expt_lookup_fn lookup, void *payload, int quote,
			 struct expt_buf *out, char *bad, size_t badn);
/* 'text' with each ' written as '\'' : one word for /bin/sh, whatever text holds. */
void expt_sh_quote(struct expt_buf *b, const char *text);
/* Param names: [A-Za-z_][A-Za-z0-9_-]*, at most 64 characters, not run_id or output_dir. */
int expt_param_name_ok(const char *name);
/* EXPT_PARAM_<NAME>: name upper-cased, anything not alphanumeric made '_'. Caller frees. */
char *expt_param_env_name(const char *name);
/* Environment variable names: [A-Za-z_][A-Za-z0-9_]*. */
int expt_env_name_ok(const char *name);
/* The name made DNS-1123 safe ("My Project" → "my-project"); "" if nothing is left. Caller
 * frees. */
char *expt_dns_label_from(const char *s);

#endif
