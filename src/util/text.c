/* Text helpers every layer shares (see text.h). */
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mem.h"
#include "parse.h"

size_t expt_utf8_seq(const char *s, size_t avail)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, i;
	unsigned cp;

	if (!avail)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

size_t expt_utf8_check(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t n = expt_utf8_seq(s + i, len - i);
		if (!n)
			return i;
		i += n;
	}
	return len;
}

int expt_utf8_ok(const char *s, size_t len)
{
	return expt_utf8_check(s, len) == len;
}

char *expt_utf8_scrub(const char *s, size_t len, size_t *out_len)
{
	struct expt_buf b = EXPT_BUF_INIT;

	for (size_t i = 0; i < len;) {
		size_t n = expt_utf8_seq(s + i, len - i);
		if (n) {
			expt_buf_add(&b, s + i, n);
			i += n;
		} else {
			expt_buf_adds(&b, "\xef\xbf\xbd");
			i++;
		}
	}
	return expt_buf_detach(&b, out_len);
}

uint32_t expt_fnv1a32(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

uint64_t expt_fnv1a64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

void expt_fmt_float(double v, char *out, size_t n)
{
	if (isnan(v)) {
		snprintf(out, n, "nan");
		return;
	}
	if (isinf(v)) {
		snprintf(out, n, v < 0 ? "-inf" : "inf");
		return;
	}
	expt_fmt_double(v, out, n);
	/* Keep floats recognisable as floats to the program that reads them (1.0, not 1). */
	if (!strpbrk(out, ".eEn") && strlen(out) + 3 <= n) {
		size_t l = strlen(out);
		out[l] = '.';
		out[l + 1] = '0';
		out[l + 2] = '\0';
	}
}

char *expt_json_param_text(const json_t *v)
{
	char num[40], *dumped;

	if (json_is_string(v))
		return expt_strdup(json_string_value(v));
	if (json_is_real(v)) {
		expt_fmt_double(json_real_value(v), num, sizeof(num));
		return expt_strdup(num);
	}
	/* With JSON_ENCODE_ANY any value encodes: NULL means jansson ran out of memory. */
	dumped = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!dumped)
		errno = ENOMEM;
	return dumped;
}
