/* Feeding a run's output into the store exactly once: the metric lines any program prints and
 * the records libexpt's stdout sink writes (metrics, params, tags) are parsed as the stream is
 * read, kept with their position in it, and written in one transaction together with how far
 * the stream has been fed (runs.ingested). Any number of readers of the same stream (the
 * attached `expt run`, `expt logs`, a later catch-up) may feed it: a line before the recorded
 * position is never written again. Owner: track/. Grammar: docs/tracking.md. */
#ifndef EXPT_TRACK_INGEST_H
#define EXPT_TRACK_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "../store/store.h"
#include "../util/err.h"

struct expt_ingest; /* one run's stdout stream; not thread-safe */

/* prefix: the run's metrics prefix (NULL: "expt:"). records: also take the stdout sink's
 * metric/param/tag records (0 when the run's own store sink already wrote them). The store is
 * borrowed and must outlive the handle. */
struct expt_ingest *expt_ingest_new(struct expt_store *st, const char *run_id, const char *prefix,
				    int records);
void expt_ingest_free(struct expt_ingest *g); /* NULL is a no-op; pending lines are lost */
/* A line of the stream (without its newline) that starts at byte pos; next is where the next
 * line starts. Lines must come in stream order. Flushes by itself when much is pending. */
int expt_ingest_line(struct expt_ingest *g, const char *line, size_t len, int64_t pos, int64_t next,
		     struct expt_err *err);
/* Writes what is pending (only the lines at or past the recorded position) and records how far
 * the stream was read, in one transaction. */
int expt_ingest_flush(struct expt_ingest *g, struct expt_err *err);
/* Where this reader is in the stream (the end of the last line it was given). */
int64_t expt_ingest_pos(const struct expt_ingest *g);

#endif
