/* Text helpers every layer shares: UTF-8 validation and repair, FNV-1a hashing, the shortest
 * round-trip form of a float, and a JSON value as param text. Owner: util/. */
#ifndef EXPT_UTIL_TEXT_H
#define EXPT_UTIL_TEXT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 sequence at p, of which avail bytes may be read; 0 when it is
 * not one (bad lead or continuation byte, overlong form, surrogate, past U+10FFFF, cut short). */
size_t expt_utf8_seq(const char *p, size_t avail);
/* The offset of the first byte of s that is not valid UTF-8, or len. */
size_t expt_utf8_check(const char *s, size_t len);
int expt_utf8_ok(const char *s, size_t len);
/* s with each byte that is not valid UTF-8 replaced by U+FFFD; malloc'd, caller frees; NULL
 * when out of memory (never aborts: the logging library uses it). */
char *expt_utf8_scrub(const char *s, size_t len, size_t *out_len);

/* FNV-1a of len bytes. */
uint32_t expt_fnv1a32(const void *data, size_t len);
uint64_t expt_fnv1a64(const void *data, size_t len);

/* The shortest text that reads back as v, always looking like a float ("0.1", "1.0", "1e-05",
 * "inf", "-inf", "nan"). n >= 32. (expt_fmt_double in parse.h: the same without the ".0".) */
void expt_fmt_float(double v, char *out, size_t n);

/* A JSON value as the text of a param: a string as it is, a real in its shortest round-trip
 * form, anything else as compact JSON ("3", "true", "null", "[1,2]"). malloc'd; NULL when out
 * of memory (never aborts: the store's create_runs uses it for libexpt). */
char *expt_json_param_text(const json_t *v);

#endif
