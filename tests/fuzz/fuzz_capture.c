/* Fuzz target for the stdout metric line parser (src/track/capture.c), which reads whatever a
 * training script prints. The first byte picks the prefix (the default, a word prefix, an empty
 * one, ...), the rest is the line. Besides crashes it checks what the header promises: the
 * count returned, keys non-empty and inside the struct, and for metric lines (not the stdout
 * sink's "metric" records, which may carry nan/inf and quoted keys with '=') values finite and
 * keys without '='.
 * fuzz-max-len: 9000 (lines past EXPT_CAPTURE_MAX_LINE must be tried too) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "track/capture.h"

static const char *const prefixes[] = {NULL, "expt:", "metric", "", "## m_1"};

static int inside(const struct expt_capture *c, const char *p)
{
	return p >= c->buf && p < c->buf + sizeof(c->buf) && *p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct expt_capture c;
	int n, record;

	if (!size)
		return 0;
	n = expt_capture_parse(prefixes[data[0] % 5], (const char *)data + 1, size - 1, &c);
	if (n < -1 || (n >= 0 && (size_t)n != c.npoints) || c.npoints > EXPT_CAPTURE_MAX_POINTS ||
	    c.ntexts > EXPT_CAPTURE_MAX_TEXTS || c.step < -1)
		abort();
	if (n < 0)
		return 0;
	record = memmem(data + 1, size - 1, "metric", 6) != NULL;
	for (size_t i = 0; i < c.npoints; i++)
		if (!inside(&c, c.points[i].key) ||
		    (!record && (!isfinite(c.points[i].value) || strchr(c.points[i].key, '='))))
			abort();
	for (size_t i = 0; i < c.ntexts; i++)
		if (!inside(&c, c.texts[i].key) || !inside(&c, c.texts[i].value))
			abort();
	return 0;
}
