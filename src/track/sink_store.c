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
	s = expt_xcalloc(1, sizeof(*s));
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

#define NAME_MAX_KEEP 96 /* bytes of a long key kept in its file name, before the hash */

/* Keys become file names: anything but [A-Za-z0-9._-] turns into '_'. A key too long for a
 * file name (the limit is 255 bytes) keeps its first NAME_MAX_KEEP bytes and gets a hash of the
 * whole key, so that long keys with one prefix stay apart. */
static void safe_name(struct expt_buf *b, const char *key)
{
	size_t len = strlen(key);
	size_t keep = len > NAME_MAX_KEEP * 2 ? NAME_MAX_KEEP : len;
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < keep; i++) {
		char c = key[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		expt_buf_addch(b, ok ? c : '_');
	}
	if (len > NAME_MAX_KEEP * 2) {
		for (size_t i = 0; i < len; i++)
			h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
		expt_buf_addf(b, "-%016llx", (unsigned long long)h);
	}
	if (!strcmp(key, ".") || !strcmp(key, ".."))
		expt_buf_addch(b, '_');
}

/* Errors no retry can cure: the entry is rejected (skipped and counted) instead. */
static int permanent_errno(int e)
{
	return e == ENAMETOOLONG || e == EINVAL || e == EILSEQ;
}

static int put_image(struct store_sink *s, const struct expt_sink_ctx *ctx, const struct expt_ev *e,
		     struct expt_err *err)
{
	const struct expt_rec *r = e->u.rec;
	char *dir, *path = NULL;
	int rc, saved = 0;

	expt_buf_reset(&s->tmp);
	safe_name(&s->tmp, r->key);
	dir = expt_xasprintf("%s/images/%s", ctx->artifact_dir, s->tmp.buf);
	if (strlen(dir) + 64 >= PATH_MAX) {
		expt_err_set(err, EXPT_EFAIL, "image '%s': path under '%s' too long", r->key,
			     ctx->artifact_dir);
		free(dir);
		return EXPT_SINK_REJECTED;
	}
	if ((rc = expt_mkdirs(dir, err))) {
		saved = errno;
		goto out;
	}
	/* The same key and step twice (two handles, or a retried write) must not overwrite. */
	do {
		free(path);
		if (e->step >= 0)
			path = expt_xasprintf("%s/step-%lld-%llu.png", dir, (long long)e->step,
					      (unsigned long long)s->image_seq++);
		else
			path = expt_xasprintf("%s/t-%lld-%llu.png", dir, (long long)e->time_ms,
					      (unsigned long long)s->image_seq++);
	} while (!access(path, F_OK));
	if ((rc = expt_write_file(path, r->png, r->png_len, err))) {
		saved = errno;
		goto out;
	}
	rc = expt_store_add_artifact(s->st, ctx->run_id, path, (int64_t)r->png_len, err);
out:
	free(dir);
	free(path);
	if (rc && permanent_errno(saved))
		return EXPT_SINK_REJECTED;
	return rc;
}

static int put_histogram(struct store_sink *s, const struct expt_sink_ctx *ctx,
			 const struct expt_ev *e, struct expt_err *err)
{
	const struct expt_rec *r = e->u.rec;
	struct expt_buf *b = &s->tmp;

	expt_buf_reset(b);
	expt_buf_adds(b, "{\"key\":");
	expt_buf_add_json_str(b, r->key);
	if (e->step >= 0)
		expt_buf_addf(b, ",\"step\":%lld", (long long)e->step);
	expt_buf_adds(b, ",\"min\":");
	expt_json_double(b, r->min);
	expt_buf_adds(b, ",\"max\":");
	expt_json_double(b, r->max);
	expt_buf_adds(b, ",\"num\":");
	expt_json_double(b, r->num);
	expt_buf_adds(b, ",\"sum\":");
	expt_json_double(b, r->sum);
	expt_buf_adds(b, ",\"sum_squares\":");
	expt_json_double(b, r->sum_squares);
	expt_buf_adds(b, ",\"limits\":[");
	for (size_t i = 0; i < r->nb; i++) {
		if (i)
			expt_buf_addch(b, ',');
		expt_json_double(b, r->limits[i]);
	}
	expt_buf_adds(b, "],\"counts\":[");
	for (size_t i = 0; i < r->nb; i++) {
		if (i)
			expt_buf_addch(b, ',');
		expt_json_double(b, r->counts[i]);
	}
	expt_buf_adds(b, "]}");
	return expt_store_add_event(s->st, ctx->run_id, "histogram", b->buf, e->time_ms, err);
}

static int store_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		       size_t n, size_t *done, struct expt_err *err)
{
	struct store_sink *s = state;
	size_t first = 0; /* first entry not yet safely stored */
	int rc = 0;

	s->npts = 0;
	EXPT_ALLOC_GROW(s->pts, n, s->cap);
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
