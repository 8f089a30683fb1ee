/* The console sink: a compact line per step on the process's stderr ("[run-3] step 10
 * loss=0.3 acc=0.9"). stderr, and a prefix unlike the stdout capture syntax, so that expt
 * never reads these lines back as metrics. */
#include "track.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

struct console {
	struct expt_buf out;
};

static int console_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct console *c = expt_calloc(1, sizeof(*c));

	if (!c)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	expt_buf_init(&c->out, 0);
	*state = c;
	return 0;
}

static void line_start(struct expt_buf *b, const struct expt_sink_ctx *ctx)
{
	expt_buf_addf(b, "[%s]", ctx->run_id);
}

static int console_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
			 size_t n, size_t *done, struct expt_err *err)
{
	struct console *c = state;
	struct expt_buf *b = &c->out;
	int open_line = 0;
	int64_t cur = -2;
	const char *p;
	size_t left;
	char num[40];

	expt_buf_reset(b);
	for (size_t i = 0; i < n; i++) {
		const struct expt_ev *e = &ev[i];
		const struct expt_rec *r = e->u.rec;

		if (e->kind == EXPT_EV_METRIC) {
			if (!open_line || e->step != cur) {
				if (open_line)
					expt_buf_addch(b, '\n');
				line_start(b, ctx);
				if (e->step >= 0)
					expt_buf_addf(b, " step %lld", (long long)e->step);
				open_line = 1;
				cur = e->step;
			}
			/* Compact: 6 significant digits (the exact values are in the other sinks).
			 */
			snprintf(num, sizeof(num), "%.6g", e->u.value);
			expt_buf_addf(b, " %s=%s", expt_keys_name(ctx->keys, e->key), num);
			continue;
		}
		if (open_line)
			expt_buf_addch(b, '\n');
		open_line = 0;
		switch (e->kind) {
		case EXPT_EV_PARAM:
		case EXPT_EV_TAG:
			line_start(b, ctx);
			expt_buf_addf(b, " %s %s=%s\n", e->kind == EXPT_EV_PARAM ? "param" : "tag",
				      r->key, r->value);
			break;
		case EXPT_EV_ARTIFACT:
			line_start(b, ctx);
			expt_buf_addf(b, " artifact %s (%lld bytes)\n", r->key, (long long)r->size);
			break;
		case EXPT_EV_IMAGE:
			line_start(b, ctx);
			expt_buf_addf(b, " image %s %ux%u\n", r->key, r->width, r->height);
			break;
		case EXPT_EV_HISTOGRAM:
			line_start(b, ctx);
			expt_buf_addf(b, " histogram %s (%.0f values)\n", r->key, r->num);
			break;
		default:
			break;
		}
	}
	if (open_line)
		expt_buf_addch(b, '\n');
	if (b->oom) {
		*done = 0;
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	/* One write for the whole batch keeps lines whole between threads. */
	for (p = b->buf, left = b->len; left;) {
		ssize_t w = write(2, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			*done = 0;
			return expt_err_errno(err, EXPT_EFAIL, "cannot write to stderr");
		}
		p += w;
		left -= (size_t)w;
	}
	*done = n;
	return 0;
}

static void console_close(void *state)
{
	struct console *c = state;

	if (!c)
		return;
	expt_buf_release(&c->out);
	free(c);
}

const struct expt_sink_ops expt_sink_console = {
    .name = "console",
    .open = console_open,
    .write = console_write,
    .finish = NULL,
    .close = console_close,
};
