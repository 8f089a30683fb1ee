/* Feeding a run's output into the store exactly once, by position in the stream (ingest.h). */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "util/util.h"

#define FLUSH_AT 4096 /* pending items that make a line flush by itself */

struct item {
	int kind; /* EXPT_CAPTURE_METRICS (one point), _PARAM, _TAG */
	int64_t pos;
	char *key, *value; /* params and tags; metrics: key only */
	double num;
	int64_t step, time_ms;
};

struct expt_ingest {
	struct expt_store *st;
	char *run_id, *prefix;
	int records;
	struct item *v;
	size_t n, cap;
	int64_t end; /* where the stream has been read to */
	struct expt_capture *cap_buf;
};

struct expt_ingest *expt_ingest_new(struct expt_store *st, const char *run_id, const char *prefix,
				    int records)
{
	struct expt_ingest *g = expt_xcalloc(1, sizeof(*g));

	g->st = st;
	g->run_id = expt_xstrdup(run_id);
	g->prefix = expt_xstrdup(prefix ? prefix : "expt:");
	g->records = records;
	g->cap_buf = expt_xmalloc(sizeof(*g->cap_buf)); /* 64 KiB: not on the stack */
	return g;
}

static void drop(struct expt_ingest *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].key);
		free(g->v[i].value);
	}
	g->n = 0;
}

void expt_ingest_free(struct expt_ingest *g)
{
	if (!g)
		return;
	drop(g);
	free(g->v);
	free(g->cap_buf);
	free(g->run_id);
	free(g->prefix);
	free(g);
}

int64_t expt_ingest_pos(const struct expt_ingest *g)
{
	return g->end;
}

static struct item *push(struct expt_ingest *g, int kind, int64_t pos)
{
	struct item *it;

	EXPT_ALLOC_GROW(g->v, g->n + 1, g->cap);
	it = &g->v[g->n++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->pos = pos;
	return it;
}

int expt_ingest_line(struct expt_ingest *g, const char *line, size_t len, int64_t pos, int64_t next,
		     struct expt_err *err)
{
	struct expt_capture *c = g->cap_buf;
	int n = expt_capture_parse(g->prefix, line, len, c);
	int64_t now = 0;

	if (next > g->end)
		g->end = next;
	if (n < 0 || c->kind == EXPT_CAPTURE_NONE)
		return 0;
	/* A record (time= given, or a param/tag) is the stdout sink's: skipped when the run's
	 * store sink wrote it already. A plain metric line is any program's. */
	if (!g->records && (c->kind != EXPT_CAPTURE_METRICS || c->time_ms >= 0))
		return 0;
	if (c->kind == EXPT_CAPTURE_METRICS) {
		for (int i = 0; i < n; i++) {
			struct item *it = push(g, EXPT_CAPTURE_METRICS, pos);
			if (!now && c->time_ms < 0)
				now = expt_now_ms();
			it->key = expt_xstrdup(c->points[i].key);
			it->num = c->points[i].value;
			it->step = c->step;
			it->time_ms = c->time_ms >= 0 ? c->time_ms : now;
		}
	} else {
		struct item *it = push(g, c->kind, pos);
		it->key = expt_xstrdup(c->key);
		it->value = expt_xstrdup(c->value);
	}
	return g->n >= FLUSH_AT ? expt_ingest_flush(g, err) : 0;
}

int expt_ingest_flush(struct expt_ingest *g, struct expt_err *err)
{
	struct expt_metric_point *pts = NULL;
	size_t npts = 0;
	int64_t done;
	int rc;

	if (!g->n && !g->end)
		return 0;
	if ((rc = expt_store_batch_begin(g->st, err)))
		return rc;
	/* Read inside the transaction: no other reader can move it until this one commits. */
	if ((rc = expt_store_get_ingested(g->st, g->run_id, &done, err)))
		goto fail;
	if (g->end <= done && !g->n) {
		expt_store_batch_rollback(g->st);
		return 0;
	}
	pts = expt_xcalloc(g->n ? g->n : 1, sizeof(*pts));
	for (size_t i = 0; i < g->n; i++) {
		struct item *it = &g->v[i];
		if (it->pos < done)
			continue; /* another reader fed this line already */
		if (it->kind == EXPT_CAPTURE_METRICS) {
			pts[npts].key = it->key;
			pts[npts].value = it->num;
			pts[npts].step = it->step;
			pts[npts].time_ms = it->time_ms;
			npts++;
		} else if (it->kind == EXPT_CAPTURE_PARAM) {
			rc = expt_store_set_param(g->st, g->run_id, it->key, it->value, err);
		} else {
			rc = expt_store_set_tag(g->st, g->run_id, it->key, it->value, err);
		}
		if (rc)
			goto fail;
	}
	if ((npts && (rc = expt_store_add_metrics(g->st, g->run_id, pts, npts, err))) ||
	    (g->end > done && (rc = expt_store_set_ingested(g->st, g->run_id, g->end, err))))
		goto fail;
	if ((rc = expt_store_batch_commit(g->st, err)))
		goto out;
	drop(g);
	goto out;
fail:
	expt_store_batch_rollback(g->st);
out:
	free(pts);
	return rc;
}
