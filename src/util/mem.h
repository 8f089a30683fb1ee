/* Allocation helpers, two families. The x* ones print one line and abort on out-of-memory, as
 * git's do: for the CLI, a program. The others return NULL: for the library (libexpt), which
 * must never kill its host; every path below include/expt.h uses them and reports
 * EXPT_RESULT_NOMEM. Growth of anything read from outside is bounded by expt_buf caps, not here.
 *
 * Test hook (the only global mutable state of util/): expt_mem_fail_at makes one allocation of
 * the non-aborting family fail, so that a test can fail each allocation of a scenario in turn
 * (as SQLite's and curl's torture tests do). Not part of the public API. */
#ifndef EXPT_UTIL_MEM_H
#define EXPT_UTIL_MEM_H

#include <stddef.h>

void *expt_xmalloc(size_t n);
void *expt_xcalloc(size_t n, size_t size);
void *expt_xrealloc(void *p, size_t n);
char *expt_xstrdup(const char *s); /* NULL in, NULL out */
char *expt_xstrndup(const char *s, size_t n);
char *expt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Non-aborting: NULL and errno ENOMEM when out of memory (or when the test hook says so). */
void *expt_malloc(size_t n);
void *expt_calloc(size_t n, size_t size); /* also NULL when n * size overflows */
void *expt_realloc(void *p, size_t n);	  /* NULL: p is left as it was */
char *expt_strdup(const char *s);	  /* s must not be NULL */
char *expt_strndup(const char *s, size_t n);
char *expt_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The test hook. expt_mem_fail_at(n): the n-th allocation of the non-aborting family from now
 * on (counting from 1, on any thread) fails, once; 0 turns injection off. It also resets the
 * count. Thread-safe (atomics). */
void expt_mem_fail_at(unsigned long n);
/* Allocations of the non-aborting family since the last expt_mem_fail_at. */
unsigned long expt_mem_count(void);
/* 1 once the failure set by expt_mem_fail_at has been injected. */
int expt_mem_failed(void);

/* Grows an array of elem-size items so that it holds at least want items; aborts when out of
 * memory (CLI). */
#define EXPT_ALLOC_GROW(ptr, want, cap)                                                            \
	do {                                                                                       \
		if ((want) > (cap)) {                                                              \
			size_t expt_nc_ = (cap) ? (cap)*2 : 8;                                     \
			while (expt_nc_ < (want))                                                  \
				expt_nc_ *= 2;                                                     \
			(ptr) = expt_xrealloc((ptr), expt_nc_ * sizeof(*(ptr)));                   \
			(cap) = expt_nc_;                                                          \
		}                                                                                  \
	} while (0)

/* The same, non-aborting: sets rc to 0, or to -1 (ptr and cap unchanged) when out of memory. */
#define EXPT_TRY_GROW(ptr, want, cap, rc)                                                          \
	do {                                                                                       \
		(rc) = 0;                                                                          \
		if ((want) > (cap)) {                                                              \
			size_t expt_nc_ = (cap) ? (cap)*2 : 8;                                     \
			void *expt_np_;                                                            \
			while (expt_nc_ < (want))                                                  \
				expt_nc_ *= 2;                                                     \
			expt_np_ = expt_realloc((ptr), expt_nc_ * sizeof(*(ptr)));                 \
			if (expt_np_) {                                                            \
				(ptr) = expt_np_;                                                  \
				(cap) = expt_nc_;                                                  \
			} else {                                                                   \
				(rc) = -1;                                                         \
			}                                                                          \
		}                                                                                  \
	} while (0)

#endif
