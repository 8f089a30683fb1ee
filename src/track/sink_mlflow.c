/* The MLflow sink: metrics, params and tags to an MLflow tracking server through runs/log-batch,
 * in requests within the server's limits. Like every sink it runs on its own thread behind the
 * run's queue, so a logging call never waits on the network; a failed request is retried with
 * backoff by the run (track/run.c) and the points stay queued meanwhile. A point carries the
 * time it was logged, and the server keeps one row per (key, time, step, value), so a request
 * that reached the server but whose answer was lost adds nothing when it is sent again.
 *
 * Which run: the one `expt run` created ($EXPT_MLFLOW_RUN_ID, then $MLFLOW_RUN_ID); else the
 * sink gets or creates the experiment, finds the run tagged expt.run_id = <this run> or creates
 * it, and then ends it at finish with the run's status. */
#include "track.h"

#include <dirent.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mlflow/mlflow.h"
#include "mlflow/s3.h"
#include "util/util.h"

struct mlf {
	struct expt_mlflow *m;
	char *run_id;
	int own;	 /* this sink created (or found) the run: it ends it */
	int params_sent; /* the params known at open went out */
	size_t solo;	 /* entries to send one per request (a batch the server refused) */
	struct expt_buf body;
	int art_known;	/* art_root looked up */
	char *art_root; /* the run's artifacts below the proxy, NULL when not proxied */
	/* An artifact location s3://s3_bucket/s3_prefix: straight to S3 (mlflow/s3.h). */
	struct expt_s3 *s3;
	char *s3_bucket, *s3_prefix;
};

static void user_name(char *out, size_t n)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	const char *u = getenv("USER");

	if (!u || !*u) {
		if (!getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) && res)
			u = res->pw_name;
	}
	snprintf(out, n, "%s", u && *u ? u : "unknown");
}

static int create_run(struct mlf *s, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	char host[256], user[256], key[300];
	char *exp_id = NULL;
	int rc;

	expt_hostname(host, sizeof(host));
	user_name(user, sizeof(user));
	if (ctx->mlflow_run_key)
		snprintf(key, sizeof(key), "%s", ctx->mlflow_run_key);
	else
		snprintf(key, sizeof(key), "%s@%lld", ctx->run_id, (long long)ctx->started_ms);
	if ((rc = expt_mlflow_experiment(s->m, ctx->experiment, &exp_id, err)))
		return rc;
	/* An earlier open that created the run but lost the answer: the same run again. */
	if ((rc = expt_mlflow_find_run(s->m, exp_id, key, &s->run_id, err)) || s->run_id) {
		free(exp_id);
		return rc;
	}
	{
		const char *k[] = {"expt.run_id",	"expt.experiment", "expt.host",
				   EXPT_MLFLOW_RUN_KEY, "mlflow.user",	   "mlflow.source.type"};
		const char *v[] = {ctx->run_id, ctx->experiment, host, key, user, "LOCAL"};
		rc = expt_mlflow_run_create(s->m, exp_id, ctx->run_id, ctx->started_ms, k, v,
					    sizeof(k) / sizeof(k[0]), &s->run_id, err);
	}
	free(exp_id);
	return rc;
}

static void mlf_close(void *state)
{
	struct mlf *s = state;

	if (!s)
		return;
	expt_mlflow_close(s->m);
	free(s->run_id);
	free(s->art_root);
	expt_s3_close(s->s3);
	free(s->s3_bucket);
	free(s->s3_prefix);
	expt_buf_release(&s->body);
	free(s);
}

static int mlf_open(void **state, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	struct mlf *s;
	int rc;

	if (!ctx->tracking_uri)
		return expt_err_set(err, EXPT_EUSAGE,
				    "no MLflow tracking URI (tracking.uri in the spec, or "
				    "EXPT_TRACKING_URI / MLFLOW_TRACKING_URI)");
	if (!(s = expt_calloc(1, sizeof(*s))))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	expt_buf_init(&s->body, 0);
	if ((rc = expt_mlflow_open(&s->m, ctx->tracking_uri, err)))
		goto fail;
	if (ctx->mlflow_run_id) {
		if (!(s->run_id = expt_strdup(ctx->mlflow_run_id))) {
			rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
			goto fail;
		}
		s->params_sent = 1; /* `expt run` logged them when it created the run */
	} else {
		if ((rc = create_run(s, ctx, err)))
			goto fail;
		s->own = !ctx->attach;
		s->params_sent = ctx->attach;
	}
	*state = s;
	return 0;
fail:
	mlf_close(s);
	return rc;
}

static void add_kv(struct expt_buf *b, const char *key, const char *value, size_t vmax)
{
	char k[EXPT_MLFLOW_KEY_MAX + 1];
	size_t vl = expt_mlflow_utf8_cut(value, vmax);

	expt_mlflow_key(k, sizeof(k), key);
	expt_buf_adds(b, "{\"key\":");
	expt_buf_add_json_str(b, k);
	expt_buf_adds(b, ",\"value\":");
	if (vl == strlen(value)) {
		expt_buf_add_json_str(b, value);
	} else {
		char *cut = expt_strndup(value, vl);
		if (cut)
			expt_buf_add_json_str(b, cut);
		else
			b->oom = 1;
		free(cut);
	}
	expt_buf_addch(b, '}');
}

/* Sends the body; on success 0. On failure: EXPT_SINK_REJECTED when no retry helps. */
static int send_batch(struct mlf *s, struct expt_err *err)
{
	int rc;

	if (s->body.oom)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	rc = expt_mlflow_call(s->m, "POST", "runs/log-batch", s->body.buf, s->body.len, NULL, err);
	if (rc && rc != EXPT_ENOMEM && !expt_mlflow_retryable(s->m))
		return EXPT_SINK_REJECTED;
	return rc;
}

/* The params known at open, in batches of at most 100. */
static int send_params(struct mlf *s, const struct expt_sink_ctx *ctx, struct expt_err *err)
{
	for (size_t i = 0; i < ctx->nparams;) {
		size_t end = i + EXPT_MLFLOW_BATCH_PARAMS < ctx->nparams
				 ? i + EXPT_MLFLOW_BATCH_PARAMS
				 : ctx->nparams;
		int rc;
		expt_buf_reset(&s->body);
		expt_buf_adds(&s->body, "{\"run_id\":");
		expt_buf_add_json_str(&s->body, s->run_id);
		expt_buf_adds(&s->body, ",\"params\":[");
		for (size_t j = i; j < end; j++) {
			if (j > i)
				expt_buf_addch(&s->body, ',');
			add_kv(&s->body, ctx->param_keys[j], ctx->param_values[j],
			       EXPT_MLFLOW_PARAM_MAX);
		}
		expt_buf_adds(&s->body, "]}");
		rc = send_batch(s, err);
		if (rc && rc != EXPT_SINK_REJECTED)
			return rc;
		/* A param the server refuses (another value logged already) is not worth the
		 * run's other data: go on. */
		i = end;
	}
	return 0;
}

/* Where the run's artifacts go: its artifact_uri, when the server's proxy serves it or it is an
 * s3:// location (then the S3 client of the environment's endpoint and credentials, as MLflow's
 * own clients use). */
static int artifact_root(struct mlf *s, struct expt_err *err)
{
	json_t *run;
	const char *uri;
	int rc;

	if (s->art_known)
		return 0;
	if ((rc = expt_mlflow_run_get(s->m, s->run_id, &run, err)))
		return rc;
	uri = json_string_value(json_object_get(json_object_get(run, "info"), "artifact_uri"));
	if (uri && !strncmp(uri, "s3://", 5)) {
		rc = expt_s3_parse_uri(uri, &s->s3_bucket, &s->s3_prefix);
		if (!rc && (rc = expt_s3_open(&s->s3, err))) {
			json_decref(run);
			free(s->s3_bucket);
			free(s->s3_prefix);
			s->s3_bucket = s->s3_prefix = NULL;
			return rc;
		}
	} else {
		rc = uri ? expt_mlflow_artifact_root(uri, &s->art_root) : -1;
	}
	json_decref(run);
	if (rc == -2)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	s->art_known = 1;
	return 0;
}

/* Uploads path (a file, or a directory's files) as name under the run's artifacts. */
static int put_tree(struct mlf *s, const char *path, const char *name, int depth,
		    struct expt_err *err)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (stat(path, &st))
		return expt_err_errno(err, EXPT_EFAIL, "cannot read %s", path);
	if (!S_ISDIR(st.st_mode)) {
		char *to = s->s3 ? (*s->s3_prefix ? expt_asprintf("%s/%s", s->s3_prefix, name)
						  : expt_strdup(name))
				 : expt_asprintf("%s/%s", s->art_root, name);
		if (!to)
			return expt_err_set(err, EXPT_ENOMEM, "out of memory");
		rc = s->s3 ? expt_s3_put(s->s3, s->s3_bucket, to, path, err)
			   : expt_mlflow_artifact_put(s->m, to, path, err);
		free(to);
		return rc;
	}
	if (depth > 32 || !(d = opendir(path)))
		return expt_err_errno(err, EXPT_EFAIL, "cannot read the directory %s", path);
	while (!rc && (de = readdir(d))) {
		char *p, *n;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = expt_asprintf("%s/%s", path, de->d_name);
		n = expt_asprintf("%s/%s", name, de->d_name);
		rc = p && n ? put_tree(s, p, n, depth + 1, err)
			    : expt_err_set(err, EXPT_ENOMEM, "out of memory");
		free(p);
		free(n);
	}
	closedir(d);
	return rc;
}

static int is_kv(const struct expt_ev *e)
{
	return e->kind == EXPT_EV_PARAM || e->kind == EXPT_EV_TAG;
}

/* Builds one request from ev[i..n): metrics, or params and tags; returns how many entries it
 * holds (at least 1). */
static size_t build(struct mlf *s, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		    size_t n, size_t max)
{
	struct expt_buf *b = &s->body;
	size_t j = 0, np = 0, nt = 0;
	char k[EXPT_MLFLOW_KEY_MAX + 1];

	expt_buf_reset(b);
	expt_buf_adds(b, "{\"run_id\":");
	expt_buf_add_json_str(b, s->run_id);
	if (ev[0].kind == EXPT_EV_METRIC) {
		expt_buf_adds(b, ",\"metrics\":[");
		for (; j < n && j < max && j < EXPT_MLFLOW_BATCH_METRICS &&
		       ev[j].kind == EXPT_EV_METRIC;
		     j++) {
			if (j)
				expt_buf_addch(b, ',');
			expt_mlflow_key(k, sizeof(k), expt_keys_name(ctx->keys, ev[j].key));
			expt_buf_adds(b, "{\"key\":");
			expt_buf_add_json_str(b, k);
			expt_buf_adds(b, ",\"value\":");
			expt_json_double(b, ev[j].u.value);
			expt_buf_addf(b, ",\"timestamp\":%lld,\"step\":%lld}",
				      (long long)ev[j].time_ms,
				      (long long)(ev[j].step >= 0 ? ev[j].step : 0));
		}
		expt_buf_adds(b, "]}");
		return j;
	}
	/* Params and tags: two arrays, in one request (order between a param and a tag of
	 * different keys does not matter; a key logged twice stays in order within its array). */
	{
		struct expt_buf tags = EXPT_BUF_INIT;
		expt_buf_adds(b, ",\"params\":[");
		for (; j < n && j < max && is_kv(&ev[j]); j++) {
			const struct expt_rec *r = ev[j].u.rec;
			size_t before_b = b->len, before_t = tags.len;
			if (ev[j].kind == EXPT_EV_PARAM) {
				if (np == EXPT_MLFLOW_BATCH_PARAMS)
					break;
				if (np++)
					expt_buf_addch(b, ',');
				add_kv(b, r->key, r->value, EXPT_MLFLOW_PARAM_MAX);
			} else {
				if (nt == EXPT_MLFLOW_BATCH_TAGS)
					break;
				if (nt++)
					expt_buf_addch(&tags, ',');
				add_kv(&tags, r->key, r->value, EXPT_MLFLOW_TAG_MAX);
			}
			if (j && b->len + tags.len > EXPT_MLFLOW_BATCH_BODY) {
				/* Over the body's limit: this one goes in the next request. */
				if (b->len != before_b) {
					expt_buf_setlen(b, before_b);
					np--;
				} else {
					expt_buf_setlen(&tags, before_t);
					nt--;
				}
				break;
			}
		}
		expt_buf_adds(b, "],\"tags\":[");
		expt_buf_add(b, tags.buf, tags.len);
		if (tags.oom)
			b->oom = 1;
		expt_buf_adds(b, "]}");
		expt_buf_release(&tags);
	}
	return j ? j : 1;
}

static int mlf_write(void *state, const struct expt_sink_ctx *ctx, const struct expt_ev *ev,
		     size_t n, size_t *done, struct expt_err *err)
{
	struct mlf *s = state;
	size_t i = 0;
	int rc;

	*done = 0;
	if (!s->params_sent) {
		if ((rc = send_params(s, ctx, err)))
			return rc;
		s->params_sent = 1;
	}
	while (i < n) {
		size_t k;
		if (ev[i].kind == EXPT_EV_ARTIFACT) {
			/* Through the server's artifact proxy, or straight to S3; another
			 * artifact store (a path on the server's disk, ...) is left alone. */
			if ((rc = artifact_root(s, err)) ||
			    ((s->art_root || s->s3) &&
			     (rc = put_tree(s, ev[i].u.rec->value, ev[i].u.rec->key, 0, err)))) {
				/* A file that cannot be read, no S3 credentials, or an answer no
				 * retry changes. */
				if (rc != EXPT_ENOMEM && (rc == EXPT_EFAIL || rc == EXPT_EUSAGE ||
							  !(s->s3 ? expt_s3_retryable(s->s3)
								  : expt_mlflow_retryable(s->m))))
					return EXPT_SINK_REJECTED;
				return rc;
			}
			*done = ++i;
			if (s->solo)
				s->solo--;
			continue;
		}
		if (ev[i].kind != EXPT_EV_METRIC && !is_kv(&ev[i])) {
			/* Images and histograms stay with the run's other sinks. */
			*done = ++i;
			if (s->solo)
				s->solo--;
			continue;
		}
		k = build(s, ctx, ev + i, n - i, s->solo ? 1 : (size_t)-1);
		rc = send_batch(s, err);
		if (rc == EXPT_SINK_REJECTED && k > 1) {
			/* One bad entry must not cost the others: find it one request at a time.
			 */
			s->solo = k;
			expt_err_clear(err);
			continue;
		}
		if (rc) {
			if (rc == EXPT_SINK_REJECTED && s->solo)
				s->solo--; /* the run skips it */
			return rc;
		}
		i += k;
		*done = i;
		s->solo = s->solo > k ? s->solo - k : 0;
	}
	return 0;
}

static int mlf_finish(void *state, const struct expt_sink_ctx *ctx,
		      const struct expt_finish_info *fi, struct expt_err *err)
{
	struct mlf *s = state;
	int rc;

	if (!s->params_sent) {
		if ((rc = send_params(s, ctx, err)))
			return rc;
		s->params_sent = 1;
	}
	if (!s->own)
		return 0; /* `expt run` ends the run it created, from the real exit */
	return expt_mlflow_run_update(s->m, s->run_id, expt_mlflow_status(fi->status), fi->time_ms,
				      err);
}

const struct expt_sink_ops expt_sink_mlflow = {
    .name = "mlflow",
    .open = mlf_open,
    .write = mlf_write,
    .finish = mlf_finish,
    .close = mlf_close,
};
