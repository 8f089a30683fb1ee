/* Strict number, duration and quantity parsing: the whole string must be consumed. */
#ifndef EXPT_UTIL_PARSE_H
#define EXPT_UTIL_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0 on success, -1 when s is not of the form (out untouched). */
int expt_parse_i64(const char *s, int64_t *out);
int expt_parse_int(const char *s, int *out);
int expt_parse_double(const char *s, double *out);
/* "90", "90s", "1.5m", "2h", "1h30m", "250ms", "1d" → milliseconds. */
int expt_parse_duration_ms(const char *s, int64_t *out);
/* Kubernetes memory quantity: "512Mi", "1Gi", "1G", "1e9", "128974848", "1.5Gi" → bytes. */
int expt_parse_bytes(const char *s, int64_t *out);
/* Kubernetes CPU quantity: "2", "0.5", "500m" → millicores. */
int expt_parse_millicpu(const char *s, int64_t *out);
/* The shortest "%g" text that reads back as exactly v (0.1, not 0.10000000000000001); n >= 32. */
void expt_fmt_double(double v, char *out, size_t n);
/* Formats a duration (ms) compactly: "850ms", "12s", "3m04s", "2h05m". */
void expt_fmt_duration(int64_t ms, char *out, unsigned n);
/* Formats bytes the Kubernetes way when exact ("1Gi"), else in bytes. */
void expt_fmt_bytes(int64_t bytes, char *out, unsigned n);

/* "SIGKILL" for 9 (in buf, size n), "signal N" for one without a name. Returns buf. */
const char *expt_signal_name(int sig, char *buf, size_t n);

#endif
