/* The stdout sink: metrics, params and tags as record lines on the process's stdout
 * ("expt: metric loss=0.25 step=3 time=…", "expt: param lr=0.1", capture.h), for a run that
 * cannot reach the store (a container, a pod): whatever reads the run's output feeds them into
 * the store. Images and histograms go to files in the run's output directory (artifacts are
 * already copied there by the log call). One write() per line, at once: lines never interleave
 * with one another, and a pod's log shows them as they come. */
#include "track.h"
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

struct stdout_sink {
	struct expt_buf line;
	uint64_t image_seq;
	int hist_fd; /* <output_dir>/histograms.jsonl, opened on the first histogram */
};

static int stdout_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct stdout_sink *s = expt_calloc(1, sizeof(*s));

	if (!s)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	expt_buf_init(&s->line, 0);
	s->hist_fd = -1;
	*state = s;
	return 0;
}

static void stdout_close(void *state)
{
	struct stdout_sink *s = state;

	if (!s)
		return;
	if (s->hist_fd >= 0)
		close(s->hist_fd);
	expt_buf_release(&s->line);
	free(s);
}

/* One line, one write(): a line up to PIPE_BUF bytes reaches a pipe whole even while other
 * threads of the program write to it. */
static int put_line(struct stdout_sink *s, struct expt_err *err)
{
	if (expt_write_all(1, s->line.buf, s->line.len))
		return expt_err_errno(err, EXPT_EFAIL, "cannot write to stdout");
	return 0;
}

static int put_histogram(struct stdout_sink *s, const struct expt_sink_ctx *ctx,
			 const struct expt_ev *e, struct expt_err *err)
{
	expt_buf_reset(&s->line);
	expt_buf_addf(&s->line, "{\"time_ms\":%lld,\"histogram\":", (long long)e->time_ms);
	expt_histogram_json(&s->line, e);
	expt_buf_adds(&s->line, "}\n");
	if (s->line.oom)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	if (s->hist_fd < 0) {
		char *path;
		int rc = expt_mkdirs(ctx->output_dir, err);
		if (rc)
			return rc;
		if (!(path = expt_asprintf("%s/histograms.jsonl", ctx->output_dir)))
			return expt_err_set(err, EXPT_ENOMEM, "out of memory");
		s->hist_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (s->hist_fd < 0)
			rc = expt_err_errno(err, EXPT_EFAIL, "cannot open '%s'", path);
		free(path);
		if (rc)
			return rc;
	}
	if (expt_write_all(s->hist_fd, s->line.buf, s->line.len))
		return expt_err_errno(err, EXPT_EFAIL, "cannot write histograms.jsonl");
	return 0;
}

static int stdout_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
			size_t n, size_t *done, struct expt_err *err)
{
	struct stdout_sink *s = state;
	int rc = 0;
	size_t i;

	for (i = 0; i < n && !rc; i++) {
		const struct expt_ev *e = &ev[i];
		const struct expt_rec *r = e->u.rec;
		char *path = NULL;

		expt_buf_reset(&s->line);
		switch (e->kind) {
		case EXPT_EV_METRIC:
			if (expt_capture_format_metric(&s->line, ctx->metrics_prefix,
						       expt_keys_name(ctx->keys, e->key),
						       e->u.value, e->step, e->time_ms))
				rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
			else
				rc = put_line(s, err);
			break;
		case EXPT_EV_PARAM:
		case EXPT_EV_TAG:
			if (!expt_capture_format_text(&s->line, ctx->metrics_prefix,
						      e->kind == EXPT_EV_PARAM ? EXPT_CAPTURE_PARAM
									       : EXPT_CAPTURE_TAG,
						      r->key, r->value))
				rc = put_line(s, err);
			else if (s->line.oom)
				rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
			else
				rc = expt_err_set(err, EXPT_EFAIL,
						  "%s '%s': its line would be longer than %d bytes",
						  e->kind == EXPT_EV_PARAM ? "param" : "tag",
						  r->key, EXPT_CAPTURE_MAX_RECORD),
				rc = EXPT_SINK_REJECTED;
			break;
		case EXPT_EV_IMAGE:
			rc = expt_image_write(ctx, e, &s->image_seq, &path, err);
			free(path);
			break;
		case EXPT_EV_HISTOGRAM:
			rc = put_histogram(s, ctx, e, err);
			break;
		default: /* artifacts: copied into the artifact directory by the log call */
			break;
		}
	}
	/* On failure, entry i - 1 is the one that failed (or was rejected). */
	*done = rc ? i - 1 : n;
	return rc;
}

const struct expt_sink_ops expt_sink_stdout = {
    .name = "stdout",
    .open = stdout_open,
    .write = stdout_write,
    .finish = NULL,
    .close = stdout_close,
};
