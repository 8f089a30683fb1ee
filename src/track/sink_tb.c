/* The TensorBoard sink: one event file per handle in <output_dir>/tensorboard (or
 * $EXPT_TENSORBOARD_DIR) holding scalars, images, histograms and, at finish, the run's params
 * through the HParams plugin. No TensorFlow: tb.c encodes the protobufs. */
#include "track.h"
#include "tb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

struct step_undo {
	int rec; /* 0: auto_step[idx], 1: rec_steps[idx] */
	size_t idx;
	int64_t old;
};

struct tb {
	int fd;
	char *path;
	off_t good; /* file size after the last complete write */
	struct expt_buf out, vals, ev;
	/* Next step of each metric key logged without one (TensorBoard needs a step). */
	int64_t *auto_step;
	size_t nauto;
	/* The same for images and histograms, by tag (few). */
	char **rec_tags;
	int64_t *rec_steps;
	size_t nrec, caprec;
	/* Undo log of step counters for a failed write. */
	struct step_undo *undo;
	size_t nundo, capundo;
	/* Params seen (for the hparams summary at finish). */
	struct expt_strv pkeys, pvals;
	int oom; /* an allocation of this write failed: it is undone and retried */
};

static int flush_out(struct tb *t, struct expt_err *err)
{
	if (t->oom || t->out.oom || t->vals.oom || t->ev.oom) {
		t->oom = 0;
		expt_buf_reset(&t->out);
		expt_buf_reset(&t->vals);
		expt_buf_reset(&t->ev);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	if (!t->out.len)
		return 0;
	if (expt_write_all(t->fd, t->out.buf, t->out.len)) {
		int saved = errno;
		/* Cut the partial record so that TensorBoard never reads a torn one. */
		if (ftruncate(t->fd, t->good) || lseek(t->fd, t->good, SEEK_SET) < 0) {
			/* The next write fails too and is retried; nothing more to do here. */
		}
		errno = saved;
		return expt_err_errno(err, EXPT_EFAIL, "cannot write %s", t->path);
	}
	t->good += (off_t)t->out.len;
	expt_buf_reset(&t->out);
	return 0;
}

static void tb_close(void *state)
{
	struct tb *t = state;

	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t->path);
	expt_buf_release(&t->out);
	expt_buf_release(&t->vals);
	expt_buf_release(&t->ev);
	free(t->auto_step);
	for (size_t i = 0; i < t->nrec; i++)
		free(t->rec_tags[i]);
	free(t->rec_tags);
	free(t->rec_steps);
	free(t->undo);
	expt_strv_release(&t->pkeys);
	expt_strv_release(&t->pvals);
	free(t);
}

static int tb_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct tb *t;
	char host[64];
	int rc;

	if ((rc = expt_mkdirs(ctx->tensorboard_dir, err)))
		return rc;
	if (!(t = expt_calloc(1, sizeof(*t))))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	t->fd = -1;
	expt_hostname(host, sizeof(host));
	/* events.out.tfevents.<secs>.<host>.<pid>.<n>: n keeps two handles of one process apart. */
	for (int n = 0; n < 1000 && t->fd < 0; n++) {
		free(t->path);
		t->path = expt_asprintf("%s/events.out.tfevents.%010lld.%s.%d.%d",
					ctx->tensorboard_dir, (long long)time(NULL),
					host[0] ? host : "localhost", (int)getpid(), n);
		if (!t->path) {
			tb_close(t);
			return expt_err_set(err, EXPT_ENOMEM, "out of memory");
		}
		t->fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (t->fd < 0 && errno != EEXIST)
			break;
	}
	if (t->fd < 0) {
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot create %s", t->path);
		tb_close(t);
		return rc;
	}
	expt_buf_init(&t->out, 0);
	expt_tb_event_version(&t->ev, (double)expt_now_ms() / 1000.0);
	expt_tb_record(&t->out, t->ev.buf, t->ev.len);
	expt_buf_reset(&t->ev);
	if ((rc = flush_out(t, err))) {
		tb_close(t);
		return rc;
	}
	*state = t;
	return 0;
}

/* Indexes, not pointers: the arrays may move while a batch grows them. tb_write makes room for
 * one entry per event before it starts, so this never allocates. */
static void undo_push(struct tb *t, int rec, size_t idx)
{
	t->undo[t->nundo].rec = rec;
	t->undo[t->nundo].idx = idx;
	t->undo[t->nundo].old = rec ? t->rec_steps[idx] : t->auto_step[idx];
	t->nundo++;
}

static int64_t metric_step(struct tb *t, uint32_t key, int64_t step)
{
	if (step >= 0)
		return step;
	if (key >= t->nauto) {
		size_t n = t->nauto ? t->nauto : 64;
		int64_t *na;
		while (n <= key)
			n *= 2;
		if (!(na = expt_realloc(t->auto_step, n * sizeof(int64_t)))) {
			t->oom = 1;
			return 0;
		}
		t->auto_step = na;
		memset(t->auto_step + t->nauto, 0, (n - t->nauto) * sizeof(int64_t));
		t->nauto = n;
	}
	undo_push(t, 0, key);
	return t->auto_step[key]++;
}

static int64_t rec_step(struct tb *t, const char *tag, int64_t step)
{
	size_t i;

	if (step >= 0)
		return step;
	for (i = 0; i < t->nrec && strcmp(t->rec_tags[i], tag); i++)
		;
	if (i == t->nrec) {
		if (t->nrec == t->caprec) {
			size_t cap = t->caprec ? t->caprec * 2 : 8;
			char **nt = expt_realloc(t->rec_tags, cap * sizeof(char *));
			int64_t *ns;
			if (nt)
				t->rec_tags = nt;
			ns = nt ? expt_realloc(t->rec_steps, cap * sizeof(int64_t)) : NULL;
			if (!ns) {
				t->oom = 1;
				return 0;
			}
			t->rec_steps = ns;
			t->caprec = cap;
		}
		if (!(t->rec_tags[i] = expt_strdup(tag))) {
			t->oom = 1;
			return 0;
		}
		t->rec_steps[i] = 0;
		t->nrec++;
	}
	undo_push(t, 1, i);
	return t->rec_steps[i]++;
}

/* Emits the pending scalar values as one event. */
static void emit(struct tb *t, int64_t step, int64_t time_ms)
{
	if (!t->vals.len)
		return;
	expt_buf_reset(&t->ev);
	expt_tb_event_summary(&t->ev, (double)time_ms / 1000.0, step, t->vals.buf, t->vals.len);
	expt_tb_record(&t->out, t->ev.buf, t->ev.len);
	expt_buf_reset(&t->vals);
}

static void set_param(struct tb *t, const char *k, const char *v)
{
	long i = expt_strv_find(&t->pkeys, k);

	if (i >= 0) {
		char *nv = expt_strdup(v);
		if (!nv) {
			t->oom = 1;
			return;
		}
		free(t->pvals.v[i]);
		t->pvals.v[i] = nv;
		return;
	}
	if (expt_strv_add(&t->pkeys, k)) {
		t->oom = 1;
	} else if (expt_strv_add(&t->pvals, v)) {
		free(t->pkeys.v[--t->pkeys.n]);
		t->pkeys.v[t->pkeys.n] = NULL;
		t->oom = 1;
	}
}

static int tb_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		    size_t n, size_t *done, struct expt_err *err)
{
	struct tb *t = state;
	int64_t cur_step = 0, cur_time = 0;
	int rc;

	*done = 0;
	t->nundo = 0;
	t->oom = 0;
	EXPT_TRY_GROW(t->undo, n, t->capundo, rc);
	if (rc)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	expt_buf_reset(&t->out);
	expt_buf_reset(&t->vals);
	for (size_t i = 0; i < n; i++) {
		const struct expt_ev *e = &ev[i];
		const struct expt_rec *r = e->u.rec;
		int64_t step;

		if (e->kind == EXPT_EV_METRIC) {
			step = metric_step(t, e->key, e->step);
			/* Points of one step and time share an event. */
			if (t->vals.len && (step != cur_step || e->time_ms != cur_time))
				emit(t, cur_step, cur_time);
			cur_step = step;
			cur_time = e->time_ms;
			expt_tb_value_scalar(&t->vals, expt_keys_name(ctx->keys, e->key),
					     (float)e->u.value);
			continue;
		}
		emit(t, cur_step, cur_time);
		switch (e->kind) {
		case EXPT_EV_PARAM:
			set_param(t, r->key, r->value);
			break;
		case EXPT_EV_IMAGE:
			step = rec_step(t, r->key, e->step);
			expt_tb_value_image(&t->vals, r->key, r->width, r->height, r->channels,
					    r->png, r->png_len);
			emit(t, step, e->time_ms);
			break;
		case EXPT_EV_HISTOGRAM:
			step = rec_step(t, r->key, e->step);
			expt_tb_value_histogram(&t->vals, r->key, r->min, r->max, r->num, r->sum,
						r->sum_squares, r->limits, r->counts, r->nb);
			emit(t, step, e->time_ms);
			break;
		default:
			break;
		}
	}
	emit(t, cur_step, cur_time);
	if ((rc = flush_out(t, err))) {
		/* The retry resends these entries: give their automatic steps back. */
		while (t->nundo) {
			struct step_undo *u = &t->undo[--t->nundo];
			if (u->rec)
				t->rec_steps[u->idx] = u->old;
			else
				t->auto_step[u->idx] = u->old;
		}
		return rc;
	}
	*done = n;
	return 0;
}

static int tb_finish(void *state, const struct expt_sink_ctx *ctx,
		     const struct expt_finish_info *fi, struct expt_err *err)
{
	struct tb *t = state;
	struct expt_tb_hparam *hp;
	size_t nhp = 0;
	int rc;

	if (ctx->attach)
		return 0;
	/* Params from $EXPT_PARAMS_FILE, then those logged (which win). */
	for (size_t i = 0; i < ctx->nparams; i++)
		if (expt_strv_find(&t->pkeys, ctx->param_keys[i]) < 0)
			set_param(t, ctx->param_keys[i], ctx->param_values[i]);
	if (t->oom || !(hp = expt_calloc(t->pkeys.n + 1, sizeof(*hp)))) {
		t->oom = 0;
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < t->pkeys.n; i++, nhp++) {
		hp[nhp].key = t->pkeys.v[i];
		hp[nhp].str = t->pvals.v[i];
		hp[nhp].type = expt_param_type(t->pvals.v[i], &hp[nhp].num);
	}
	expt_buf_reset(&t->out);
	expt_buf_reset(&t->vals);
	expt_tb_value_hparams_start(&t->vals, hp, nhp, (double)ctx->started_ms / 1000.0);
	emit(t, 0, fi->time_ms);
	expt_tb_value_hparams_end(&t->vals, !strcmp(fi->status, "succeeded") ? 1 : 2,
				  (double)fi->time_ms / 1000.0);
	emit(t, 0, fi->time_ms);
	free(hp);
	rc = flush_out(t, err);
	if (!rc && fsync(t->fd) && errno != EINVAL)
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot sync %s", t->path);
	return rc;
}

const struct expt_sink_ops expt_sink_tensorboard = {
    .name = "tensorboard",
    .open = tb_open,
    .write = tb_write,
    .finish = tb_finish,
    .close = tb_close,
};
