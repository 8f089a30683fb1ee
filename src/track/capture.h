/* Metrics without code changes: the parser for stdout lines "<prefix> key=value [key=value ...]"
 * (prefix "expt:" by default, optional step=N) that the CLI turns into metric points.
 * Owner: track/. Syntax: docs/tracking.md. */
#ifndef EXPT_TRACK_CAPTURE_H
#define EXPT_TRACK_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#define EXPT_CAPTURE_MAX_POINTS 64 /* points in one line */
#define EXPT_CAPTURE_MAX_TEXTS 16  /* non-numeric pairs kept in one line */
#define EXPT_CAPTURE_MAX_LINE 4096 /* bytes, line ending excluded */

/* One parsed line. Keys and texts point into buf, so the struct owns them all and a parse
 * allocates nothing; they live until the next parse into the same struct. */
struct expt_capture {
	int64_t step; /* step=N of the line, -1 when absent */
	size_t npoints;
	struct expt_capture_point {
		const char *key;
		double value;
	} points[EXPT_CAPTURE_MAX_POINTS];
	/* Pairs whose value is not a finite number ("opt=adam", "loss=nan"): not points. */
	size_t ntexts;
	struct expt_capture_text {
		const char *key, *value;
	} texts[EXPT_CAPTURE_MAX_TEXTS];
	char buf[EXPT_CAPTURE_MAX_LINE + 1];
};

/* Parses line (len bytes, no NUL needed; a trailing "\n" or "\r\n" is ignored) against prefix
 * (NULL: "expt:"). Returns the number of points (0 when the line is not a metric line, or has
 * only step= and texts), or -1 when it starts with the prefix but is malformed: a word that is
 * not key=value, an empty key or value, a step that is not a non-negative integer, more than
 * EXPT_CAPTURE_MAX_POINTS points, or a line longer than EXPT_CAPTURE_MAX_LINE. */
int expt_capture_parse(const char *prefix, const char *line, size_t len, struct expt_capture *out);

#endif
