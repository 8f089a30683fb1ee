/* Strict parsers for numbers, durations and Kubernetes quantities. */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int expt_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s || (*s == ' ' || *s == '\t'))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int expt_parse_int(const char *s, int *out)
{
	int64_t v;

	if (expt_parse_i64(s, &v) || v < -2147483647 - 1 || v > 2147483647)
		return -1;
	*out = (int)v;
	return 0;
}

int expt_parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s || (*s == ' ' || *s == '\t'))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int expt_parse_duration_ms(const char *s, int64_t *out)
{
	double total = 0;
	int any = 0;

	if (!s || !*s)
		return -1;
	/* A bare number means seconds. */
	{
		double v;
		if (!expt_parse_double(s, &v)) {
			if (v < 0)
				return -1;
			*out = (int64_t)llround(v * 1000.0);
			return 0;
		}
	}
	while (*s) {
		char *end;
		double v, mult;

		if (!((*s >= '0' && *s <= '9') || *s == '.'))
			return -1;
		errno = 0;
		v = strtod(s, &end);
		if (errno || end == s || v < 0)
			return -1;
		s = end;
		if (!strncmp(s, "ms", 2)) {
			mult = 1;
			s += 2;
		} else if (*s == 's') {
			mult = 1000;
			s++;
		} else if (*s == 'm') {
			mult = 60000;
			s++;
		} else if (*s == 'h') {
			mult = 3600000;
			s++;
		} else if (*s == 'd') {
			mult = 86400000;
			s++;
		} else {
			return -1;
		}
		total += v * mult;
		any = 1;
	}
	if (!any || total > 9e15)
		return -1;
	*out = (int64_t)llround(total);
	return 0;
}

static const struct {
	const char *suffix;
	double mult;
} suffixes[] = {
    {"Ki", 1024.0},
    {"Mi", 1024.0 * 1024},
    {"Gi", 1024.0 * 1024 * 1024},
    {"Ti", 1024.0 * 1024 * 1024 * 1024},
    {"Pi", 1024.0 * 1024 * 1024 * 1024 * 1024},
    {"k", 1e3},
    {"M", 1e6},
    {"G", 1e9},
    {"T", 1e12},
    {"P", 1e15},
};

int expt_parse_bytes(const char *s, int64_t *out)
{
	char num[64];
	size_t len, i;
	double v, mult = 1;

	if (!s || !*s || strlen(s) >= sizeof(num))
		return -1;
	len = strlen(s);
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t sl = strlen(suffixes[i].suffix);
		if (len > sl && !strcmp(s + len - sl, suffixes[i].suffix)) {
			mult = suffixes[i].mult;
			len -= sl;
			break;
		}
	}
	memcpy(num, s, len);
	num[len] = '\0';
	/* Digits, one optional dot, optional exponent only without a suffix. */
	for (i = 0; i < len; i++)
		if (!((num[i] >= '0' && num[i] <= '9') || num[i] == '.' ||
		      (mult == 1 && (num[i] == 'e' || num[i] == 'E') && i > 0)))
			return -1;
	if (expt_parse_double(num, &v) || v < 0 || v * mult > 9e18)
		return -1;
	*out = (int64_t)llround(v * mult);
	return 0;
}

int expt_parse_millicpu(const char *s, int64_t *out)
{
	double v;
	size_t len;
	char num[64];

	if (!s || !*s || strlen(s) >= sizeof(num))
		return -1;
	len = strlen(s);
	if (s[len - 1] == 'm') {
		int64_t m;
		memcpy(num, s, len - 1);
		num[len - 1] = '\0';
		if (expt_parse_i64(num, &m) || m < 0)
			return -1;
		*out = m;
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return -1;
	if (expt_parse_double(s, &v) || v < 0 || v > 1e9)
		return -1;
	*out = (int64_t)llround(v * 1000.0);
	return 0;
}

void expt_fmt_double(double v, char *out, size_t n)
{
	/* Try the short forms first: 0.3 should read "0.3", not "0.29999999999999999". */
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, v);
		if (prec == 17 || strtod(out, NULL) == v)
			return;
	}
}

void expt_fmt_duration(int64_t ms, char *out, unsigned n)
{
	int64_t s = ms / 1000;

	if (ms < 0)
		snprintf(out, n, "-");
	else if (ms < 1000)
		snprintf(out, n, "%lldms", (long long)ms);
	else if (s < 60)
		snprintf(out, n, "%.1fs", (double)ms / 1000.0);
	else if (s < 3600)
		snprintf(out, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else
		snprintf(out, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
}

void expt_fmt_bytes(int64_t bytes, char *out, unsigned n)
{
	static const char *units[] = {"Ki", "Mi", "Gi", "Ti"};
	int i = -1;
	int64_t v = bytes;

	while (i < 3 && v && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(out, n, "%lld", (long long)bytes);
	else
		snprintf(out, n, "%lld%s", (long long)v, units[i]);
}

const char *expt_signal_name(int sig, char *buf, size_t n)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, n, "SIG%s", abbrev);
	else
		snprintf(buf, n, "signal %d", sig);
	return buf;
}
