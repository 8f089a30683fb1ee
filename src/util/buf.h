/* Growable byte/string buffer: buf is never NULL after init and always NUL-terminated.
 * An optional cap (max) bounds growth for anything read from outside. Never aborts: an append
 * that runs out of memory fails with -1 and sets oom, after which every append fails too, so a
 * caller may append many times and check oom once (the content is then a prefix). */
#ifndef EXPT_UTIL_BUF_H
#define EXPT_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct expt_buf {
	char *buf;  /* owned; "" (static) until the first append */
	size_t len; /* bytes used, excluding the NUL */
	size_t cap; /* bytes allocated, 0 while buf is the static "" */
	size_t max; /* 0 = unbounded; else appends past max fail with -1 */
	int oom;    /* an append ran out of memory; cleared by release and reset */
};

extern char expt_buf_empty[];
#define EXPT_BUF_INIT                                                                              \
	{                                                                                          \
		expt_buf_empty, 0, 0, 0, 0                                                         \
	}

void expt_buf_init(struct expt_buf *b, size_t max);
/* Frees memory and re-initialises (keeps max). */
void expt_buf_release(struct expt_buf *b);
/* Empties without freeing. */
void expt_buf_reset(struct expt_buf *b);
/* Returns the string (caller frees with free()) and re-initialises the buffer; NULL (and the
 * buffer released) when out of memory, now or by an earlier append. */
char *expt_buf_detach(struct expt_buf *b, size_t *len);
/* Appends; return 0, or -1 when the cap would be exceeded (buffer unchanged) or when out of
 * memory (oom set). */
int expt_buf_add(struct expt_buf *b, const void *data, size_t len);
int expt_buf_adds(struct expt_buf *b, const char *s);
int expt_buf_addch(struct expt_buf *b, char c);
int expt_buf_addf(struct expt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int expt_buf_vaddf(struct expt_buf *b, const char *fmt, va_list ap);
/* Appends s as a JSON string literal, quotes included. */
int expt_buf_add_json_str(struct expt_buf *b, const char *s);
/* Makes sure there is room for n more bytes. */
int expt_buf_grow(struct expt_buf *b, size_t n);
void expt_buf_setlen(struct expt_buf *b, size_t len);

#endif
