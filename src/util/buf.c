/* Growable buffer with an optional size cap. */
#include "buf.h"
#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char expt_buf_empty[1];

void expt_buf_init(struct expt_buf *b, size_t max)
{
	b->buf = expt_buf_empty;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->oom = 0;
}

void expt_buf_release(struct expt_buf *b)
{
	if (b->cap)
		free(b->buf);
	expt_buf_init(b, b->max);
}

void expt_buf_reset(struct expt_buf *b)
{
	b->len = 0;
	b->oom = 0;
	if (b->cap)
		b->buf[0] = '\0';
}

char *expt_buf_detach(struct expt_buf *b, size_t *len)
{
	char *s;

	if (b->oom) {
		expt_buf_release(b);
		if (len)
			*len = 0;
		return NULL;
	}
	s = b->cap ? b->buf : expt_strdup("");
	if (len)
		*len = s ? b->len : 0;
	expt_buf_init(b, b->max);
	return s;
}

int expt_buf_grow(struct expt_buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->oom)
		return -1;
	if (b->max && (n > b->max || b->len > b->max - n))
		return -1;
	want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap * 2;
	p = b->cap ? expt_realloc(b->buf, cap) : expt_malloc(cap);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	if (!b->cap)
		p[0] = '\0';
	b->buf = p;
	b->cap = cap;
	return 0;
}

void expt_buf_setlen(struct expt_buf *b, size_t len)
{
	if (!b->cap)
		return;
	b->len = len;
	b->buf[len] = '\0';
}

int expt_buf_add(struct expt_buf *b, const void *data, size_t len)
{
	if (!len)
		return 0;
	if (expt_buf_grow(b, len))
		return -1;
	memcpy(b->buf + b->len, data, len);
	b->len += len;
	b->buf[b->len] = '\0';
	return 0;
}

int expt_buf_adds(struct expt_buf *b, const char *s)
{
	return expt_buf_add(b, s, strlen(s));
}

int expt_buf_addch(struct expt_buf *b, char c)
{
	return expt_buf_add(b, &c, 1);
}

int expt_buf_vaddf(struct expt_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0 || expt_buf_grow(b, (size_t)n))
		return -1;
	vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int expt_buf_addf(struct expt_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = expt_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

int expt_buf_add_json_str(struct expt_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;
	int r = expt_buf_addch(b, '"');

	for (p = (const unsigned char *)s; *p && !r; p++) {
		switch (*p) {
		case '"':
			r = expt_buf_add(b, "\\\"", 2);
			break;
		case '\\':
			r = expt_buf_add(b, "\\\\", 2);
			break;
		case '\n':
			r = expt_buf_add(b, "\\n", 2);
			break;
		case '\r':
			r = expt_buf_add(b, "\\r", 2);
			break;
		case '\t':
			r = expt_buf_add(b, "\\t", 2);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				char u[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};
				r = expt_buf_add(b, u, 6);
			} else {
				r = expt_buf_addch(b, (char)*p);
			}
		}
	}
	return r ? r : expt_buf_addch(b, '"');
}
