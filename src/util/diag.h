/* Diagnostics of a file a user wrote (a spec, a kubeconfig): every problem with its
 * file:line:col and field, ordered for the reader, with did-you-mean suggestions. Owner: util/. */
#ifndef EXPT_UTIL_DIAG_H
#define EXPT_UTIL_DIAG_H

#include <stddef.h>

/* The "file" of nodes and problems that come from command-line arguments. */
#define EXPT_CMDLINE "<command line>"
#define EXPT_DIAG_MAX 100 /* problems reported before giving up */

struct expt_diag {
	char *file;    /* spec path, or "<command line>" for overrides */
	int line, col; /* 1-based; for overrides line = 0, col = 1-based argument index */
	char *field;   /* dotted path: "sweep.lr", "resources.memory" */
	char *msg;     /* "expected a quantity like 512Mi or 2Gi, got '1Gb'" */
};

struct expt_diags {
	struct expt_diag *v;
	size_t n, cap;
};

struct expt_ynode;

/* Adds a problem; file is copied. After EXPT_DIAG_MAX problems one
 * "too many problems" entry is added and the rest are dropped. */
void expt_diag_add(struct expt_diags *d, const char *file, int line, int col, const char *field,
		   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The same, located at node n. */
void expt_diag_at(struct expt_diags *d, const struct expt_ynode *n, const char *field,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Orders problems by file (the spec first, then the command line), line and column. */
void expt_diags_sort(struct expt_diags *d);
/* The candidate closest to word by edit distance, if close enough to suggest; else NULL. */
const char *expt_did_you_mean(const char *word, const char *const *cands, size_t ncands);
/* " (did you mean 'x'?)" or "" into out. */
void expt_suggest(char *out, size_t n, const char *word, const char *const *cands, size_t ncands);

void expt_diags_release(struct expt_diags *d);
/* "file:line:col: field: msg" */
void expt_diag_format(const struct expt_diag *d, char *out, size_t n);

#endif
