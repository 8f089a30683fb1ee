/* The stdout metric line parser: "<prefix> key=value ... [step=N]". A metric line copies into the
 * caller's struct once and is cut in place, so a parse never allocates. */
#include "capture.h"

#include <ctype.h>
#include <string.h>

#include "util/util.h"

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

int expt_capture_parse(const char *prefix, const char *line, size_t len, struct expt_capture *out)
{
	size_t plen, i = 0;
	char *p;

	out->step = -1;
	out->npoints = 0;
	out->ntexts = 0;
	if (!prefix)
		prefix = "expt:";
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
	if (len - i > EXPT_CAPTURE_MAX_LINE)
		return -1;
	memcpy(out->buf, line + i, len - i);
	out->buf[len - i] = '\0';
	if (memchr(out->buf, '\0', len - i))
		return -1;

	p = out->buf;
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
	return (int)out->npoints;
}
