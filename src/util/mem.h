/* Allocation helpers: on out-of-memory they print one line and abort, as git's x* do.
 * Growth of anything read from outside is bounded by expt_buf caps, not here. */
#ifndef EXPT_UTIL_MEM_H
#define EXPT_UTIL_MEM_H

#include <stddef.h>

void *expt_xmalloc(size_t n);
void *expt_xcalloc(size_t n, size_t size);
void *expt_xrealloc(void *p, size_t n);
char *expt_xstrdup(const char *s); /* NULL in, NULL out */
char *expt_xstrndup(const char *s, size_t n);
char *expt_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Grows an array of elem-size items so that it holds at least want items. */
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

#endif
