/* Vector of owned strings. */
#include "strv.h"
#include "mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void expt_strv_push_owned(struct expt_strv *sv, char *s)
{
	EXPT_ALLOC_GROW(sv->v, sv->n + 2, sv->cap);
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

void expt_strv_push(struct expt_strv *sv, const char *s)
{
	expt_strv_push_owned(sv, expt_xstrdup(s));
}

void expt_strv_pushf(struct expt_strv *sv, const char *fmt, ...)
{
	va_list ap, cp;
	char *p;
	int n;

	va_start(ap, fmt);
	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		n = 0;
	p = expt_xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	expt_strv_push_owned(sv, p);
}

int expt_strv_add_owned(struct expt_strv *sv, char *s)
{
	int rc;

	if (!s)
		return -1;
	EXPT_TRY_GROW(sv->v, sv->n + 2, sv->cap, rc);
	if (rc) {
		free(s);
		return -1;
	}
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
	return 0;
}

int expt_strv_add(struct expt_strv *sv, const char *s)
{
	return expt_strv_add_owned(sv, expt_strdup(s));
}

int expt_strv_addf(struct expt_strv *sv, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(p = expt_malloc((size_t)n + 1)))
		return -1;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return expt_strv_add_owned(sv, p);
}

void expt_strv_copy(struct expt_strv *dst, const struct expt_strv *src)
{
	size_t i;

	for (i = 0; i < src->n; i++)
		expt_strv_push(dst, src->v[i]);
}

void expt_strv_release(struct expt_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = sv->cap = 0;
}

long expt_strv_find(const struct expt_strv *sv, const char *s)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		if (!strcmp(sv->v[i], s))
			return (long)i;
	return -1;
}

char *const *expt_strv_argv(struct expt_strv *sv)
{
	static char *const empty[1] = {NULL};

	return sv->n ? sv->v : empty;
}
