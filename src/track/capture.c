/* The stdout line protocol: the parser for metric lines "<prefix> key=value ... [step=N]" and
 * for the record lines of the stdout sink ("<prefix> param key=value", ...), and the writers
 * of record lines. A line copies into the caller's struct once and is cut and decoded in
 * place, so a parse never allocates. */
#include "capture.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "util/util.h"

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* A byte a bare token may hold: no space, quote, backslash, '=' or control character. Bytes
 * of multi-byte UTF-8 sequences are fine. */
static int bare_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != '"' && c != '\\' && c != '=';
}

static int record_kind(const char *w, size_t n)
{
	if (n == 6 && !memcmp(w, "metric", 6))
		return EXPT_CAPTURE_METRICS;
	if (n == 5 && !memcmp(w, "param", 5))
		return EXPT_CAPTURE_PARAM;
	if (n == 3 && !memcmp(w, "tag", 3))
		return EXPT_CAPTURE_TAG;
	return EXPT_CAPTURE_NONE;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads one token at *pp (bare, or quoted with escapes), decoding it in place: the text starts
 * where the token started and is NUL-terminated at most where it ended, which the decoded form
 * never passes. *pp is left on the byte after the token (for a bare token: the byte that ended
 * it, which the caller checks before it is overwritten). Returns the text, or NULL when
 * malformed. */
static char *token(char **pp, char **end)
{
	char *p = *pp, *w = *pp, *start = *pp;

	if (*p != '"') {
		while (bare_ok((unsigned char)*p))
			p++;
		if (p == start)
			return NULL;
		*pp = p;
		*end = p; /* terminated by the caller, once it has looked at *p */
		return start;
	}
	p++;
	for (;;) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			break;
		if (!c || c < 0x20 || c == 0x7f)
			return NULL; /* unterminated, or a raw control character */
		if (c != '\\') {
			*w++ = *p++;
			continue;
		}
		p++;
		switch (*p) {
		case '"':
		case '\\':
			*w++ = *p++;
			break;
		case 'n':
			*w++ = '\n', p++;
			break;
		case 'r':
			*w++ = '\r', p++;
			break;
		case 't':
			*w++ = '\t', p++;
			break;
		case 'u': {
			unsigned cp = 0;
			for (int k = 1; k <= 4; k++) {
				int h = hexval(p[k]);
				if (h < 0)
					return NULL;
				cp = cp << 4 | (unsigned)h;
			}
			/* Only what the writer escapes: control characters, never NUL. */
			if (!cp || (cp >= 0x20 && cp != 0x7f))
				return NULL;
			*w++ = (char)cp;
			p += 5;
			break;
		}
		default:
			return NULL;
		}
	}
	*pp = p + 1;
	*end = w;
	return start;
}

/* The value of a "metric" record: a number, or nan, inf, -inf; the shortest text that reads
 * back exactly is what the writer wrote, so any double (subnormals too) comes back bit-exact. */
static int metric_value(const char *s, double *out)
{
	char *end;
	double v;

	if (!strcmp(s, "nan")) {
		*out = NAN;
		return 0;
	}
	if (!strcmp(s, "inf") || !strcmp(s, "-inf")) {
		*out = *s == '-' ? -INFINITY : INFINITY;
		return 0;
	}
	if (!(*s == '-' || *s == '.' || (*s >= '0' && *s <= '9')))
		return -1; /* no "+1", "infinity", "0x..." spelled by hand */
	errno = 0;
	v = strtod(s, &end);
	/* ERANGE with a finite result is an underflow to a subnormal: exact as written. */
	if (*end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

static int parse_attr_i64(const char *val, int64_t *out)
{
	int64_t v;

	if (expt_parse_i64(val, &v) || v < 0 || !(*val >= '0' && *val <= '9'))
		return -1;
	*out = v;
	return 0;
}

/* buf holds the line after the prefix; p is at the kind word. */
static int parse_record(struct expt_capture *out, int kind, char *p)
{
	char *key, *val, *kend, *vend;
	int seen_step = 0, seen_time = 0, quoted;

	p += kind == EXPT_CAPTURE_METRICS ? 6 : kind == EXPT_CAPTURE_PARAM ? 5 : 3;
	if (!is_space(*p))
		return -1;
	while (is_space(*p))
		p++;
	if (!(key = token(&p, &kend)) || *p != '=')
		return -1;
	p++;
	*kend = '\0';
	if (!*key)
		return -1;
	quoted = *p == '"';
	if (!(val = token(&p, &vend)) || (*p && !is_space(*p)))
		return -1;
	{
		char c = *p;
		*vend = '\0';
		if (c)
			p++;
	}
	if (kind == EXPT_CAPTURE_METRICS) {
		if (quoted || metric_value(val, &out->points[0].value))
			return -1;
		out->points[0].key = key;
	}
	/* Attributes: step=N and time=T, metric records only. */
	for (;;) {
		char *a, *eq;
		while (is_space(*p))
			p++;
		if (!*p)
			break;
		if (kind != EXPT_CAPTURE_METRICS)
			return -1;
		a = p;
		while (*p && !is_space(*p))
			p++;
		if (*p)
			*p++ = '\0';
		if (!(eq = strchr(a, '=')))
			return -1;
		*eq = '\0';
		if (!strcmp(a, "step") && !seen_step++) {
			if (parse_attr_i64(eq + 1, &out->step))
				return -1;
		} else if (!strcmp(a, "time") && !seen_time++) {
			if (parse_attr_i64(eq + 1, &out->time_ms))
				return -1;
		} else {
			return -1;
		}
	}
	out->kind = kind;
	if (kind == EXPT_CAPTURE_METRICS) {
		out->npoints = 1;
		return 1;
	}
	out->key = key;
	out->value = val;
	return 0;
}

static int parse_metric_line(struct expt_capture *out)
{
	char *p = out->buf;

	for (;;) {
		char *key, *eq, *val;
		double d;

		while (is_space(*p))
			p++;
		if (!*p)
			break;
		key = p;
		while (*p && !is_space(*p))
			p++;
		if (*p)
			*p++ = '\0';
		eq = strchr(key, '=');
		if (!eq || eq == key || !eq[1])
			return -1;
		*eq = '\0';
		val = eq + 1;
		if (!strcmp(key, "step")) {
			int64_t s;
			if (expt_parse_i64(val, &s) || s < 0)
				return -1;
			out->step = s;
		} else if (!expt_parse_double(val, &d)) {
			if (out->npoints == EXPT_CAPTURE_MAX_POINTS)
				return -1;
			out->points[out->npoints].key = key;
			out->points[out->npoints].value = d;
			out->npoints++;
		} else if (out->ntexts < EXPT_CAPTURE_MAX_TEXTS) {
			out->texts[out->ntexts].key = key;
			out->texts[out->ntexts].value = val;
			out->ntexts++;
		}
	}
	out->kind = EXPT_CAPTURE_METRICS;
	return (int)out->npoints;
}

int expt_capture_parse(const char *prefix, const char *line, size_t len, struct expt_capture *out)
{
	size_t plen, i = 0, w, wlen = 0;
	int kind, rc;

	out->kind = EXPT_CAPTURE_NONE;
	out->step = -1;
	out->time_ms = -1;
	out->npoints = 0;
	out->ntexts = 0;
	out->key = out->value = NULL;
	if (!prefix)
		prefix = EXPT_CAPTURE_PREFIX;
	plen = strlen(prefix);
	if (!line)
		return 0;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	while (i < len && is_space(line[i]))
		i++;
	if (len - i < plen || memcmp(line + i, prefix, plen))
		return 0;
	i += plen;
	/* "expt:loss=1" reads fine, but a prefix ending in a word character must end the word:
	 * prefix "metric" does not match "metrics ...". */
	if (i < len && !is_space(line[i]) && plen &&
	    (isalnum((unsigned char)prefix[plen - 1]) || prefix[plen - 1] == '_'))
		return 0;
	/* The first word says which grammar: a bare "metric", "param" or "tag" (a word without
	 * '=', malformed in a metric line) starts a record. */
	for (w = i; w < len && is_space(line[w]); w++)
		;
	while (w + wlen < len && !is_space(line[w + wlen]))
		wlen++;
	kind = record_kind(line + w, wlen);
	if (len - i > (kind ? EXPT_CAPTURE_MAX_RECORD : EXPT_CAPTURE_MAX_LINE))
		return -1;
	memcpy(out->buf, line + i, len - i);
	out->buf[len - i] = '\0';
	if (memchr(out->buf, '\0', len - i))
		return -1;
	rc = kind ? parse_record(out, kind, out->buf + (w - i)) : parse_metric_line(out);
	if (rc < 0) {
		out->kind = EXPT_CAPTURE_NONE;
		out->npoints = out->ntexts = 0;
		out->key = out->value = NULL;
	}
	return rc;
}

/* ---- writers ---- */

static int add_token(struct expt_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int bare = *p != '\0';

	for (; *p && bare; p++)
		bare = bare_ok(*p);
	if (bare)
		return expt_buf_adds(b, s);
	/* The escapes are JSON's (DEL included), which the reader understands. */
	return expt_buf_add_json_str(b, s);
}

static int line_end(struct expt_buf *b, size_t start, int rc)
{
	/* The limit counts the line without its "\n". */
	if (!rc && b->len - start - 1 > EXPT_CAPTURE_MAX_RECORD)
		rc = -1;
	if (rc)
		expt_buf_setlen(b, start);
	return rc;
}

int expt_capture_format_metric(struct expt_buf *b, const char *prefix, const char *key,
			       double value, int64_t step, int64_t time_ms)
{
	size_t start = b->len;
	char num[40];
	int rc;

	if (isnan(value))
		snprintf(num, sizeof(num), "nan");
	else if (isinf(value))
		snprintf(num, sizeof(num), "%s", value > 0 ? "inf" : "-inf");
	else
		expt_fmt_double(value, num, sizeof(num));
	rc = expt_buf_adds(b, prefix ? prefix : EXPT_CAPTURE_PREFIX);
	rc = rc ? rc : expt_buf_adds(b, " metric ");
	rc = rc ? rc : add_token(b, key);
	rc = rc ? rc : expt_buf_addch(b, '=');
	rc = rc ? rc : expt_buf_adds(b, num);
	if (!rc && step >= 0)
		rc = expt_buf_addf(b, " step=%lld", (long long)step);
	if (!rc && time_ms >= 0)
		rc = expt_buf_addf(b, " time=%lld", (long long)time_ms);
	rc = rc ? rc : expt_buf_addch(b, '\n');
	return line_end(b, start, rc);
}

int expt_capture_format_text(struct expt_buf *b, const char *prefix, int kind, const char *key,
			     const char *value)
{
	size_t start = b->len;
	int rc;

	if (kind != EXPT_CAPTURE_PARAM && kind != EXPT_CAPTURE_TAG)
		return -1;
	rc = expt_buf_adds(b, prefix ? prefix : EXPT_CAPTURE_PREFIX);
	rc = rc ? rc : expt_buf_adds(b, kind == EXPT_CAPTURE_PARAM ? " param " : " tag ");
	rc = rc ? rc : add_token(b, key);
	rc = rc ? rc : expt_buf_addch(b, '=');
	rc = rc ? rc : add_token(b, value);
	rc = rc ? rc : expt_buf_addch(b, '\n');
	return line_end(b, start, rc);
}
