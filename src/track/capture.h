/* The stdout line protocol, both ways. Readers: metric lines "<prefix> key=value ... [step=N]"
 * that any program may print, and the record lines the stdout sink writes ("<prefix> metric",
 * "<prefix> param", "<prefix> tag"); writers: the formatters the stdout sink uses, so that what
 * it writes reads back exactly. Owner: track/. Grammar: docs/tracking.md. */
#ifndef EXPT_TRACK_CAPTURE_H
#define EXPT_TRACK_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/buf.h"

#define EXPT_CAPTURE_PREFIX "expt:"   /* the default prefix */
#define EXPT_CAPTURE_MAX_POINTS 64    /* points in one line */
#define EXPT_CAPTURE_MAX_TEXTS 16     /* non-numeric pairs kept in one line */
#define EXPT_CAPTURE_MAX_LINE 4096    /* bytes of a metric line, line ending excluded */
#define EXPT_CAPTURE_MAX_RECORD 65536 /* bytes of a record line, line ending excluded */

/* What a line carries (struct expt_capture.kind). */
enum expt_capture_kind {
	EXPT_CAPTURE_NONE = 0, /* not ours: no prefix (or an error) */
	EXPT_CAPTURE_METRICS,  /* points: a metric line, or a "metric" record (one point) */
	EXPT_CAPTURE_PARAM,    /* "param" record: key, value */
	EXPT_CAPTURE_TAG,      /* "tag" record: key, value */
};

/* One parsed line. Keys, texts and values point into buf, so the struct owns them all and a
 * parse allocates nothing; they live until the next parse into the same struct. The struct is
 * large (64 KiB): keep one per reader, not one per line on the stack of a deep call. */
struct expt_capture {
	int kind;	 /* enum expt_capture_kind */
	int64_t step;	 /* step=N of the line, -1 when absent */
	int64_t time_ms; /* "metric" record: time=T (ms since the epoch), -1 when absent; a
			  * metric line has none (the reader takes its own clock) */
	size_t npoints;
	struct expt_capture_point {
		const char *key;
		double value; /* metric lines: finite; "metric" records: also NaN and +-inf */
	} points[EXPT_CAPTURE_MAX_POINTS];
	/* Pairs whose value is not a finite number ("opt=adam", "loss=nan") in a metric line:
	 * not points. */
	size_t ntexts;
	struct expt_capture_text {
		const char *key, *value;
	} texts[EXPT_CAPTURE_MAX_TEXTS];
	/* "param" and "tag" records: the decoded key and value (UTF-8, NUL-terminated, never
	 * containing NUL; the value may be empty and may hold spaces, '=', quotes, newlines). */
	const char *key, *value;
	char buf[EXPT_CAPTURE_MAX_RECORD + 1];
};

/* Parses line (len bytes, no NUL needed; a trailing "\n" or "\r\n" is ignored) against prefix
 * (NULL: "expt:"). Pure: no allocation, no global state, thread-safe on distinct structs.
 *
 * Returns the number of points (>= 0), or -1 when the line starts with the prefix but is
 * malformed (it is then to be ignored as a whole; out->kind is EXPT_CAPTURE_NONE).
 * - A line without the prefix: 0, kind EXPT_CAPTURE_NONE.
 * - A metric line: its points (maybe 0: only step= and texts), kind EXPT_CAPTURE_METRICS.
 *   Malformed: a word that is not key=value, an empty key or value, a step that is not a
 *   non-negative integer, more than EXPT_CAPTURE_MAX_POINTS points, longer than
 *   EXPT_CAPTURE_MAX_LINE.
 * - A "metric" record: 1, kind EXPT_CAPTURE_METRICS, points[0], step and time_ms.
 * - A "param" or "tag" record: 0, kind EXPT_CAPTURE_PARAM or EXPT_CAPTURE_TAG, key and value.
 *   Malformed records: a bad token or escape, an empty key, a value that is not a number, nan,
 *   inf or -inf (metric), an unknown or repeated attribute, an attribute on a param or tag,
 *   longer than EXPT_CAPTURE_MAX_RECORD.
 * A reader that only wants points can keep calling it as before: records of params and tags
 * return 0 like any line without points. */
int expt_capture_parse(const char *prefix, const char *line, size_t len, struct expt_capture *out);

/* Writers: append one record line, "\n" included, to b, with prefix (NULL: "expt:"; it must
 * be one line without NUL). Return 0, or -1 when out of memory or when the line would be
 * longer than EXPT_CAPTURE_MAX_RECORD (b is then as it was). key: non-empty UTF-8 without
 * control characters (as the logging API checks); value: UTF-8 without NUL. */
int expt_capture_format_metric(struct expt_buf *b, const char *prefix, const char *key,
			       double value, int64_t step, int64_t time_ms);
/* kind: EXPT_CAPTURE_PARAM or EXPT_CAPTURE_TAG. */
int expt_capture_format_text(struct expt_buf *b, const char *prefix, int kind, const char *key,
			     const char *value);

#endif
