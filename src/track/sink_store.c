/* The store sink: metrics, params, tags, artifacts, images and histograms into the embedded
 * store, on its own connection (opened on the sink's thread). Metrics go in one transaction per
 * batch; images become PNG files under the artifact directory; histograms become events. */
#include "track.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/lifecycle.h"
#include "store/store.h"
#include "util/util.h"

struct store_sink {
	struct expt_store *st;
	struct expt_metric_point *pts;
	size_t npts, cap;
	struct expt_buf tmp;
	uint64_t image_seq; /* images of this handle: two with one key and step never collide */
};

static int store_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct store_sink *s;
	struct expt_store *st = NULL;
	int rc;

	if (!ctx->store_path)
		return expt_err_set(err, EXPT_ESTORE,
				    "no store (set EXPT_STORE, or run inside an expt project)");
	if ((rc = expt_store_open(&st, ctx->store_path, err)))
		return rc;
	if (!(s = expt_calloc(1, sizeof(*s)))) {
		expt_store_close(st);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	s->st = st;
	expt_buf_init(&s->tmp, 0);
	*state = s;
	return 0;
}

static void store_close(void *state)
{
	struct store_sink *s = state;

	if (!s)
		return;
	expt_store_close(s->st);
	free(s->pts);
	expt_buf_release(&s->tmp);
	free(s);
}

static int flush_points(struct store_sink *s, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	int rc;

	if (!s->npts)
		return 0;
	rc = expt_store_add_metrics(s->st, ctx->run_id, s->pts, s->npts, err);
	if (!rc)
		s->npts = 0;
	return rc;
}

static int put_image(struct store_sink *s, const struct expt_sink_ctx *ctx, const struct expt_ev *e,
		     struct expt_err *err)
{
	char *path = NULL;
	int rc = expt_image_write(ctx, e, &s->image_seq, &path, err);

	if (!rc)
		rc = expt_store_add_artifact(s->st, ctx->run_id, path, (int64_t)e->u.rec->png_len,
					     err);
	free(path);
	return rc;
}

static int put_histogram(struct store_sink *s, const struct expt_sink_ctx *ctx,
			 const struct expt_ev *e, struct expt_err *err)
{
	expt_buf_reset(&s->tmp);
	expt_histogram_json(&s->tmp, e);
	if (s->tmp.oom)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	return expt_store_add_event(s->st, ctx->run_id, "histogram", s->tmp.buf, e->time_ms, err);
}

static int store_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		       size_t n, size_t *done, struct expt_err *err)
{
	struct store_sink *s = state;
	size_t first = 0; /* first entry not yet safely stored */
	int rc = 0;

	s->npts = 0;
	EXPT_TRY_GROW(s->pts, n, s->cap, rc);
	if (rc) {
		*done = 0;
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n && !rc; i++) {
		const struct expt_ev *e = &ev[i];
		const struct expt_rec *r = e->u.rec;

		if (e->kind == EXPT_EV_METRIC) {
			struct expt_metric_point *p = &s->pts[s->npts++];
			p->key = expt_keys_name(ctx->keys, e->key);
			p->value = e->u.value;
			p->step = e->step;
			p->time_ms = e->time_ms;
			continue;
		}
		/* Records are rare: store the points before them so that order holds and a
		 * failure here never stores a point twice. */
		if ((rc = flush_points(s, ctx, err)))
			break;
		first = i;
		switch (e->kind) {
		case EXPT_EV_PARAM:
			rc = expt_store_set_param(s->st, ctx->run_id, r->key, r->value, err);
			break;
		case EXPT_EV_TAG:
			rc = expt_store_set_tag(s->st, ctx->run_id, r->key, r->value, err);
			break;
		case EXPT_EV_ARTIFACT:
			rc = expt_store_add_artifact(s->st, ctx->run_id, r->value, r->size, err);
			break;
		case EXPT_EV_IMAGE:
			rc = put_image(s, ctx, e, err);
			break;
		case EXPT_EV_HISTOGRAM:
			rc = put_histogram(s, ctx, e, err);
			break;
		default:
			break;
		}
		if (!rc)
			first = i + 1;
		else if (rc == EXPT_SINK_REJECTED)
			first = i;
	}
	if (!rc && !(rc = flush_points(s, ctx, err)))
		first = n;
	*done = first;
	return rc;
}

static int store_finish(void *state, const struct expt_sink_ctx *ctx,
			const struct expt_finish_info *fi, struct expt_err *err)
{
	struct store_sink *s = state;
	struct expt_transition t = EXPT_TRANSITION_INIT;
	int rc;

	/* A run launched by expt is ended by its supervisor, from the exit status. */
	if (!ctx->standalone)
		return 0;
	/* The program says how it ended (finish's status, or its exit status at exit). */
	if (expt_run_status_parse(fi->status, &t.to) || !expt_run_status_done(t.to))
		t.to = EXPT_RUN_FAILED;
	t.from = EXPT_RUN_ACTIVE;
	t.exit_code = fi->exit_code;
	t.signal = fi->signal;
	t.reason = fi->signal ? "signal" : fi->exit_code > 0 ? "exit" : NULL;
	if (t.to == EXPT_RUN_STOPPED)
		t.reason = "stopped";
	t.event = t.reason ? t.reason : fi->status;
	t.time_ms = fi->time_ms;
	rc = expt_lifecycle_move(s->st, ctx->run_id, &t, NULL, err);
	if (rc == EXPT_ECONFLICT) { /* already ended (stopped by `expt stop`): that end stays */
		expt_err_clear(err);
		rc = 0;
	}
	return rc;
}

const struct expt_sink_ops expt_sink_store = {
    .name = "store",
    .open = store_open,
    .write = store_write,
    .finish = store_finish,
    .close = store_close,
};
