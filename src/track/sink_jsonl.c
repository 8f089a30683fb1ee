/* The JSONL sink: one JSON object per event, appended to <output_dir>/metrics.jsonl (or
 * $EXPT_JSONL). A failed write is cut back off the file so that a retry never leaves half a
 * line. */
#include "track.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

struct jsonl {
	int fd;
	int header_done;
	struct expt_buf out;
};

static void add_kv_str(struct expt_buf *b, const char *k, const char *v)
{
	expt_buf_addf(b, ",\"%s\":", k);
	expt_buf_add_json_str(b, v);
}

static void add_head(struct expt_buf *b, const char *type, int64_t time_ms)
{
	expt_buf_addf(b, "{\"type\":\"%s\",\"time_ms\":%lld", type, (long long)time_ms);
}

static void add_step(struct expt_buf *b, int64_t step)
{
	if (step >= 0)
		expt_buf_addf(b, ",\"step\":%lld", (long long)step);
}

static void format_ev(struct expt_buf *b, const struct expt_sink_ctx *ctx, const struct expt_ev *e)
{
	const struct expt_rec *r = e->u.rec;

	switch (e->kind) {
	case EXPT_EV_METRIC:
		add_head(b, "metric", e->time_ms);
		add_kv_str(b, "key", expt_keys_name(ctx->keys, e->key));
		expt_buf_adds(b, ",\"value\":");
		expt_json_double(b, e->u.value);
		add_step(b, e->step);
		break;
	case EXPT_EV_PARAM:
	case EXPT_EV_TAG:
		add_head(b, e->kind == EXPT_EV_PARAM ? "param" : "tag", e->time_ms);
		add_kv_str(b, "key", r->key);
		add_kv_str(b, "value", r->value);
		break;
	case EXPT_EV_ARTIFACT:
		add_head(b, "artifact", e->time_ms);
		add_kv_str(b, "name", r->key);
		add_kv_str(b, "path", r->value);
		expt_buf_addf(b, ",\"size\":%lld", (long long)r->size);
		break;
	case EXPT_EV_IMAGE:
		add_head(b, "image", e->time_ms);
		add_kv_str(b, "key", r->key);
		add_step(b, e->step);
		expt_buf_addf(b, ",\"width\":%u,\"height\":%u,\"channels\":%u,\"png\":\"", r->width,
			      r->height, r->channels);
		expt_base64(b, r->png, r->png_len);
		expt_buf_addch(b, '"');
		break;
	case EXPT_EV_HISTOGRAM:
		add_head(b, "histogram", e->time_ms);
		expt_buf_addch(b, ',');
		expt_histogram_fields(b, e);
		break;
	default:
		return;
	}
	expt_buf_adds(b, "}\n");
}

/* Appends what is in j->out; on failure cuts the file back to where it was. */
static int flush_out(struct jsonl *j, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct stat st;
	off_t before = -1;

	if (j->out.oom) {
		expt_buf_reset(&j->out);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	if (!j->out.len)
		return 0;
	if (!fstat(j->fd, &st))
		before = st.st_size;
	if (expt_write_all(j->fd, j->out.buf, j->out.len)) {
		int saved = errno;
		if (before >= 0 && ftruncate(j->fd, before)) {
			/* Nothing better to do: the retry appends after the partial line. */
		}
		errno = saved;
		return expt_err_errno(err, EXPT_EFAIL, "cannot write %s", ctx->jsonl_path);
	}
	expt_buf_reset(&j->out);
	return 0;
}

static int jsonl_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct jsonl *j;
	char *dir = expt_strdup(ctx->jsonl_path), *slash;
	int fd, rc;

	if (!dir)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if ((rc = expt_mkdirs(dir, err))) {
			free(dir);
			return rc;
		}
	}
	free(dir);
	fd = open(ctx->jsonl_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return expt_err_errno(err, EXPT_EFAIL, "cannot open %s", ctx->jsonl_path);
	if (!(j = expt_calloc(1, sizeof(*j)))) {
		close(fd);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	j->fd = fd;
	expt_buf_init(&j->out, 0);
	*state = j;
	return 0;
}

static void header(struct jsonl *j, const struct expt_sink_ctx *ctx)
{
	struct expt_buf *b = &j->out;

	add_head(b, "run", ctx->started_ms);
	add_kv_str(b, "run_id", ctx->run_id);
	add_kv_str(b, "experiment", ctx->experiment);
	expt_buf_adds(b, ",\"params\":{");
	for (size_t i = 0; i < ctx->nparams; i++) {
		if (i)
			expt_buf_addch(b, ',');
		expt_buf_add_json_str(b, ctx->param_keys[i]);
		expt_buf_addch(b, ':');
		expt_buf_add_json_str(b, ctx->param_values[i]);
	}
	expt_buf_adds(b, "}}\n");
}

static int jsonl_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		       size_t n, size_t *done, struct expt_err *err)
{
	struct jsonl *j = state;
	int rc;

	*done = 0;
	expt_buf_reset(&j->out);
	if (!j->header_done && !ctx->attach)
		header(j, ctx);
	for (size_t i = 0; i < n; i++)
		format_ev(&j->out, ctx, &ev[i]);
	if ((rc = flush_out(j, ctx, err)))
		return rc;
	j->header_done = 1;
	*done = n;
	return 0;
}

static int jsonl_finish(void *state, const struct expt_sink_ctx *ctx,
			const struct expt_finish_info *fi, struct expt_err *err)
{
	struct jsonl *j = state;
	int rc;

	if (ctx->attach)
		return 0;
	expt_buf_reset(&j->out);
	if (!j->header_done)
		header(j, ctx);
	add_head(&j->out, "finish", fi->time_ms);
	add_kv_str(&j->out, "status", fi->status);
	if (fi->exit_code >= 0)
		expt_buf_addf(&j->out, ",\"exit_code\":%d", fi->exit_code);
	if (fi->signal)
		expt_buf_addf(&j->out, ",\"signal\":%d", fi->signal);
	expt_buf_adds(&j->out, "}\n");
	if ((rc = flush_out(j, ctx, err)))
		return rc;
	j->header_done = 1;
	return 0;
}

static void jsonl_close(void *state)
{
	struct jsonl *j = state;

	if (!j)
		return;
	close(j->fd);
	expt_buf_release(&j->out);
	free(j);
}

const struct expt_sink_ops expt_sink_jsonl = {
    .name = "jsonl",
    .open = jsonl_open,
    .write = jsonl_write,
    .finish = jsonl_finish,
    .close = jsonl_close,
};
