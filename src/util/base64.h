/* Base64 (RFC 4648): the standard alphabet and the URL-safe one, with padding. Owner: util/. */
#ifndef EXPT_UTIL_BASE64_H
#define EXPT_UTIL_BASE64_H

#include <stddef.h>

/* data[0..n) encoded, NUL-terminated (caller frees). url: '-' and '_' for '+' and '/'. */
char *expt_base64_encode(const void *data, size_t n, int url);
/* text decoded (either alphabet, padding optional), NUL-terminated, its length in *n; NULL when
 * text is not base64. Caller frees. */
char *expt_base64_decode(const char *text, size_t *n);

#endif
