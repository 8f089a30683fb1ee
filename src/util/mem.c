/* Allocation helpers: the aborting x* family (CLI), the NULL-returning family (library), and
 * the failure-injection hook the torture test drives (see mem.h). */
#include "mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The test hook: the only mutable global state below cli/, on purpose (see mem.h). fail_at 0
 * is off; count numbers the allocations since it was set. */
static atomic_ulong fail_at, count;
static atomic_int failed;

void expt_mem_fail_at(unsigned long n)
{
	atomic_store(&fail_at, 0);
	atomic_store(&count, 0);
	atomic_store(&failed, 0);
	atomic_store(&fail_at, n);
}

unsigned long expt_mem_count(void)
{
	return atomic_load(&count);
}

int expt_mem_failed(void)
{
	return atomic_load(&failed);
}

/* 1 when this allocation is the one to fail. */
static int inject(void)
{
	unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
	unsigned long n = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed) + 1;

	if (at && n == at) {
		atomic_store(&failed, 1);
		errno = ENOMEM; /* as malloc's own failure sets it */
		return 1;
	}
	return 0;
}

void *expt_malloc(size_t n)
{
	return inject() ? NULL : malloc(n ? n : 1);
}

void *expt_calloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return inject() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *expt_realloc(void *p, size_t n)
{
	return inject() ? NULL : realloc(p, n ? n : 1);
}

char *expt_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = expt_malloc(len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *expt_strdup(const char *s)
{
	return expt_strndup(s, strlen(s));
}

static char *vasprintf_try(const char *fmt, va_list ap)
{
	va_list cp;
	char *p;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return NULL;
	if (!(p = expt_malloc((size_t)n + 1)))
		return NULL;
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *expt_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = vasprintf_try(fmt, ap);
	va_end(ap);
	return p;
}

/* ---- the aborting family (CLI) ---- */

static void oom(size_t n)
{
	fprintf(stderr, "expt: out of memory (allocating %zu bytes)\n", n);
	abort();
}

void *expt_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *expt_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom(n * size);
	return p;
}

void *expt_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *expt_xstrdup(const char *s)
{
	return s ? expt_xstrndup(s, strlen(s)) : NULL;
}

char *expt_xstrndup(const char *s, size_t n)
{
	char *p;
	size_t len = strnlen(s, n);

	p = expt_xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *expt_xasprintf(const char *fmt, ...)
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
	return p;
}
