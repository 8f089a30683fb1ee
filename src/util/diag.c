/* Diagnostics: collecting every problem with its location, ordering them for the reader, and
 * did-you-mean suggestions by edit distance. */
#include "diag.h"
#include "yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void push(struct expt_diags *d, const char *file, int line, int col, const char *field,
		 const char *msg)
{
	struct expt_diag *g;

	EXPT_ALLOC_GROW(d->v, d->n + 1, d->cap);
	g = &d->v[d->n++];
	g->file = expt_xstrdup(file ? file : "");
	g->line = line;
	g->col = col;
	g->field = expt_xstrdup(field ? field : "");
	for (char *c = g->field; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	g->msg = expt_xstrdup(msg);
}

static void vadd(struct expt_diags *d, const char *file, int line, int col, const char *field,
		 const char *fmt, va_list ap)
{
	char msg[1024];
	size_t i;

	if (d->n > EXPT_DIAG_MAX)
		return;
	if (d->n == EXPT_DIAG_MAX) {
		push(d, file, 0, 0, "", "too many problems; stopping here");
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Messages quote spec and command-line text: keep control characters off the terminal. */
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';
	/* The same problem found twice (say, a merged node checked from two places) is said once.
	 */
	for (i = 0; i < d->n; i++) {
		const struct expt_diag *g = &d->v[i];
		if (g->line == line && g->col == col && !strcmp(g->file, file ? file : "") &&
		    !strcmp(g->field, field ? field : "") && !strcmp(g->msg, msg))
			return;
	}
	push(d, file, line, col, field, msg);
}

void expt_diag_add(struct expt_diags *d, const char *file, int line, int col, const char *field,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, file, line, col, field, fmt, ap);
	va_end(ap);
}

void expt_diag_at(struct expt_diags *d, const struct expt_ynode *n, const char *field,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, n->file, n->line, n->col, field, fmt, ap);
	va_end(ap);
}

static int rank(const struct expt_diag *g)
{
	return !strcmp(g->file, EXPT_CMDLINE) ? 1 : 0;
}

static int cmp_diag(const void *a, const void *b)
{
	const struct expt_diag *x = a, *y = b;

	if (rank(x) != rank(y))
		return rank(x) - rank(y);
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return 0;
}

void expt_diags_sort(struct expt_diags *d)
{
	size_t i, j;

	/* Insertion sort: stable (problems at one place keep the order they were found in), and
	 * there are at most EXPT_DIAG_MAX + 1 of them. */
	for (i = 1; i < d->n; i++) {
		struct expt_diag t = d->v[i];
		for (j = i; j > 0 && cmp_diag(&d->v[j - 1], &t) > 0; j--)
			d->v[j] = d->v[j - 1];
		d->v[j] = t;
	}
}

void expt_diags_release(struct expt_diags *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].field);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

void expt_diag_format(const struct expt_diag *d, char *out, size_t n)
{
	size_t len = 0;

	if (!n)
		return;
	out[0] = '\0';
	if (d->file && d->file[0]) {
		if (d->line > 0 && d->col > 0)
			len = (size_t)snprintf(out, n, "%s:%d:%d: ", d->file, d->line, d->col);
		else if (d->line > 0)
			len = (size_t)snprintf(out, n, "%s:%d: ", d->file, d->line);
		else if (d->col > 0) /* command line: col is the argument's index */
			len = (size_t)snprintf(out, n, "%s: argument %d: ", d->file, d->col);
		else
			len = (size_t)snprintf(out, n, "%s: ", d->file);
	}
	if (len < n && d->field && d->field[0])
		len += (size_t)snprintf(out + len, n - len, "%s: ", d->field);
	if (len < n)
		snprintf(out + len, n - len, "%s", d->msg ? d->msg : "");
}

/* Optimal string alignment distance (Levenshtein with adjacent transpositions), bounded. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, r;
	size_t *d;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	d = expt_xcalloc((la + 1) * (lb + 1), sizeof(*d));
#define D(i, j) d[(i) * (lb + 1) + (j)]
	for (i = 0; i <= la; i++)
		D(i, 0) = i;
	for (j = 0; j <= lb; j++)
		D(0, j) = j;
	for (i = 1; i <= la; i++) {
		for (j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = D(i - 1, j) + 1;
			if (D(i, j - 1) + 1 < v)
				v = D(i, j - 1) + 1;
			if (D(i - 1, j - 1) + cost < v)
				v = D(i - 1, j - 1) + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    D(i - 2, j - 2) + 1 < v)
				v = D(i - 2, j - 2) + 1;
			D(i, j) = v;
		}
	}
	r = D(la, lb);
#undef D
	free(d);
	return r;
}

const char *expt_did_you_mean(const char *word, const char *const *cands, size_t ncands)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, i, wl = strlen(word);

	for (i = 0; i < ncands; i++) {
		size_t d = distance(word, cands[i]);
		size_t cl = strlen(cands[i]);
		size_t limit = (wl < cl ? wl : cl) <= 4 ? 1 : 2;

		/* A prefix of three or more letters ("mem" for "memory") is close enough too. */
		if (wl >= 3 && wl < cl && !strncmp(word, cands[i], wl))
			d = d < limit ? d : limit;
		if (d <= limit && d < bestd) {
			best = cands[i];
			bestd = d;
		}
	}
	return best;
}

void expt_suggest(char *out, size_t n, const char *word, const char *const *cands, size_t ncands)
{
	const char *s = expt_did_you_mean(word, cands, ncands);

	if (s)
		snprintf(out, n, " (did you mean '%s'?)", s);
	else if (n)
		out[0] = '\0';
}
