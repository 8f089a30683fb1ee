/* RUN|EXPT arguments → run records, with the store reconciled first. */
#include "resolve.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "track/ingest.h"

/* Applies what the engine observed about an active run whose supervisor is gone (or that no
 * expt process supervises): a run still going is adopted by the engine (supervisor 0, asked
 * again next time), an ended one gets its real end, one the engine no longer knows is lost. */
static void apply_observed(struct cli_ctx *ctx, const struct expt_run_rec *r,
			   const struct expt_observed *o)
{
	struct expt_transition t = EXPT_TRANSITION_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	switch (o->phase) {
	case EXPT_OBS_PENDING:
	case EXPT_OBS_RUNNING:
		t.from = EXPT_RUN_ACTIVE;
		t.to = o->phase == EXPT_OBS_RUNNING ? EXPT_RUN_RUNNING : EXPT_RUN_PENDING;
		if (r->supervisor_pid <= 0) {
			/* The engine's already: only a change is recorded (it started, or why it
			 * waits changed: ps shows that reason beside "pending"). */
			const char *why =
			    t.to == EXPT_RUN_PENDING && o->message[0] ? o->message : NULL;
			if (r->status == t.to &&
			    (t.to == EXPT_RUN_RUNNING ||
			     !strcmp(r->message ? r->message : "", why ? why : "")))
				return;
			t.message = why;
			t.node = o->node[0] ? o->node : NULL;
			t.attempt = o->attempt;
			t.event = t.to == EXPT_RUN_RUNNING ? "running" : "waiting";
			t.event_message = why ? why : "the engine runs it";
			expt_lifecycle_move(ctx->store, r->run_id, &t, NULL, &e);
			return;
		}
		if (t.to == EXPT_RUN_RUNNING && r->status == EXPT_RUN_RUNNING) {
			/* Already running: only the owner changes (no new attempt), once, in one
			 * transaction that re-reads it. */
			struct expt_run_rec cur;
			memset(&cur, 0, sizeof(cur));
			if (expt_store_batch_begin(ctx->store, &e))
				return;
			if (!expt_store_get_run(ctx->store, r->run_id, &cur, &e) &&
			    cur.status == EXPT_RUN_RUNNING &&
			    cur.supervisor_pid == r->supervisor_pid &&
			    cur.supervisor_start == r->supervisor_start &&
			    !expt_store_mark_supervisor(ctx->store, r->run_id, 0, 0, &e) &&
			    !expt_store_add_event(
				ctx->store, r->run_id, "adopted",
				"its supervisor is gone; the engine still runs it", expt_now_ms(),
				&e))
				expt_store_batch_commit(ctx->store, &e);
			else
				expt_store_batch_rollback(ctx->store);
			expt_run_rec_release(&cur);
			return;
		}
		t.supervisor_pid = 0;
		t.supervisor_start = 0;
		t.if_supervisor_pid = r->supervisor_pid;
		t.if_supervisor_start = r->supervisor_start;
		t.event = "adopted";
		t.event_message = "its supervisor is gone; the engine still runs it";
		t.message = NULL;
		expt_lifecycle_move(ctx->store, r->run_id, &t, NULL, &e);
		return;
	case EXPT_OBS_EXITED:
	case EXPT_OBS_GONE:
		if (o->phase == EXPT_OBS_GONE && r->supervisor_pid > 0)
			return; /* the store's reconcile says why: its supervisor is lost */
		expt_lifecycle_end(ctx->store, r->run_id, o, NULL, &e);
		return;
	default:
		return;
	}
}

struct cli_engine {
	char *name, *spec_json;
	struct expt_backend be;
};

struct expt_backend *cli_engine(struct cli_ctx *ctx, const char *name, const char *spec_json,
				struct expt_err *err)
{
	struct expt_backend_conf conf = {spec_json, ctx->db_path, NULL, 0, NULL, NULL};
	struct cli_engine *ce;

	if (!name)
		name = "local";
	for (size_t i = 0; i < ctx->nengines; i++) {
		ce = ctx->engines[i];
		if (!strcmp(ce->name, name) &&
		    !strcmp(ce->spec_json ? ce->spec_json : "", spec_json ? spec_json : ""))
			return &ce->be;
	}
	ce = expt_xcalloc(1, sizeof(*ce));
	if (expt_backend_open(&ce->be, name, &conf, err)) {
		free(ce);
		return NULL;
	}
	ce->name = expt_xstrdup(name);
	ce->spec_json = spec_json ? expt_xstrdup(spec_json) : NULL;
	ctx->engines = expt_xrealloc(ctx->engines, (ctx->nengines + 1) * sizeof(*ctx->engines));
	ctx->engines[ctx->nengines++] = ce;
	return &ce->be;
}

void cli_engines_close(struct cli_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nengines; i++) {
		expt_backend_close(&ctx->engines[i]->be);
		free(ctx->engines[i]->name);
		free(ctx->engines[i]->spec_json);
		free(ctx->engines[i]);
	}
	free(ctx->engines);
	ctx->engines = NULL;
	ctx->nengines = 0;
}

/* A run that no live expt process watches, asked of its engine (containers and pods keep going
 * without expt; a local process group may outlive its supervisor). 1 when settled. */
static int ask_engine(const char *run_id, void *payload)
{
	struct cli_ctx *ctx = payload;
	struct expt_run_rec r;
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_backend *be;
	struct expt_observed o;
	int settled = 0;

	memset(&r, 0, sizeof(r));
	if (expt_store_get_run(ctx->store, run_id, &r, &e))
		return 0;
	{
		if ((be = cli_engine(ctx, r.backend, r.spec_json, &e)) &&
		    !be->ops->poll(be->state, &r, 1, &o, &e)) {
			apply_observed(ctx, &r, &o);
			/* Ended with no expt process watching: its metrics are still only in its
			 * output. */
			if (o.phase == EXPT_OBS_EXITED) {
				struct expt_run_rec now;
				memset(&now, 0, sizeof(now));
				if (!expt_store_get_run(ctx->store, run_id, &now, &e))
					cli_catch_up_output(ctx, &now);
				expt_run_rec_release(&now);
			}
			settled = o.phase == EXPT_OBS_RUNNING || o.phase == EXPT_OBS_PENDING ||
				  o.phase == EXPT_OBS_EXITED ||
				  (o.phase == EXPT_OBS_GONE && r.supervisor_pid <= 0);
		}
	}
	expt_run_rec_release(&r);
	return settled;
}

int cli_reconcile(struct cli_ctx *ctx)
{
	return expt_store_reconcile_with(ctx->store, ask_engine, ctx, &ctx->err);
}

/* Appends r to out unless a run of that id is already there (`expt rm q q-1` names q-1 twice);
 * takes r either way. */
static void append_unique(struct expt_run_list *out, struct expt_run_rec *r)
{
	for (size_t i = 0; i < out->n; i++)
		if (!strcmp(out->v[i].run_id, r->run_id)) {
			expt_run_rec_release(r);
			return;
		}
	EXPT_ALLOC_GROW(out->v, out->n + 1, out->cap);
	out->v[out->n++] = *r;
}

int cli_resolve_runs(struct cli_ctx *ctx, const char *ref, int include_specs,
		     struct expt_run_list *out, int *is_run)
{
	struct expt_run_filter f;
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_run_list found = {0};
	struct expt_run_rec r;
	int rc;

	if ((rc = cli_reconcile(ctx)))
		return rc;
	if (is_run)
		*is_run = 0;
	memset(&f, 0, sizeof(f));
	f.include_specs = include_specs;
	if (ref) {
		memset(&r, 0, sizeof(r));
		rc = expt_store_get_run(ctx->store, ref, &r, &e);
		if (!rc) {
			append_unique(out, &r);
			if (is_run)
				*is_run = 1;
			return 0;
		}
		if (rc != EXPT_ENOTFOUND) {
			ctx->err = e;
			return rc;
		}
		f.experiment = ref;
	}
	if (!out->n) { /* the common case: nothing to merge with */
		if ((rc = expt_store_list_runs(ctx->store, &f, out, &ctx->err)))
			return rc;
		if (ref && !out->n)
			return expt_err_set(&ctx->err, EXPT_ENOTFOUND,
					    "no run or experiment named '%s' (see 'expt ps')", ref);
		return 0;
	}
	if ((rc = expt_store_list_runs(ctx->store, &f, &found, &ctx->err)))
		goto out;
	if (ref && !found.n) {
		rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND,
				  "no run or experiment named '%s' (see 'expt ps')", ref);
		goto out;
	}
	for (size_t i = 0; i < found.n; i++)
		append_unique(out, &found.v[i]);
	found.n = 0;
out:
	expt_run_list_release(&found);
	return rc;
}

int cli_resolve_run(struct cli_ctx *ctx, const char *ref, struct expt_run_rec *out)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_run_filter f;
	struct expt_run_list l = {0};
	int rc;

	if ((rc = cli_reconcile(ctx)))
		return rc;
	rc = expt_store_get_run(ctx->store, ref, out, &e);
	if (rc != EXPT_ENOTFOUND) {
		if (rc)
			ctx->err = e;
		return rc;
	}
	memset(&f, 0, sizeof(f));
	f.experiment = ref;
	f.limit = 1;
	if (!expt_store_list_runs(ctx->store, &f, &l, &e) && l.n) {
		rc = expt_err_set(&ctx->err, EXPT_EUSAGE,
				  "'%s' is an experiment; name one of its runs, e.g. %s", ref,
				  l.v[0].run_id);
	} else {
		rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND, "no run named '%s' (see 'expt ps')",
				  ref);
	}
	expt_run_list_release(&l);
	return rc;
}

int cli_opt_output(struct cli_ctx *ctx, const struct cli_cmd *cmd, const char *arg,
		   enum cli_output *fmt, int allow_wide)
{
	if (cli_parse_output(arg, fmt) || (!allow_wide && *fmt == CLI_OUT_WIDE))
		return cli_usage_error(ctx, cmd, "unknown output format '%s' (text%s, json, yaml)",
				       arg, allow_wide ? ", wide" : "");
	return 0;
}

/* The run's own store sink wrote its records itself when its spec names both sinks. */
static int feeds_records(const char *spec_json, const char **prefix, char *buf, size_t n)
{
	json_t *spec = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
	json_t *tr = json_object_get(spec, "tracking"), *sinks = json_object_get(tr, "sinks"), *v;
	const char *p = json_string_value(json_object_get(tr, "metrics_prefix"));
	int store = 0, out = 0;
	size_t i;

	json_array_foreach(sinks, i, v)
	{
		store |= json_is_string(v) && !strcmp(json_string_value(v), "store");
		out |= json_is_string(v) && !strcmp(json_string_value(v), "stdout");
	}
	if (p) {
		snprintf(buf, n, "%s", p);
		*prefix = buf;
	}
	json_decref(spec);
	return !(store && out);
}

struct catch_up {
	struct expt_ingest *g;
	struct expt_err err;
	int failed;
};

static void catch_line(const char *line, size_t len, int64_t offset, void *payload)
{
	struct catch_up *c = payload;

	if (!c->failed &&
	    expt_ingest_line(c->g, line, len, offset,
			     offset + (int64_t)len + (len == EXPT_LINE_PIECE ? 0 : 1), &c->err))
		c->failed = 1;
}

void cli_catch_up_output(struct cli_ctx *ctx, const struct expt_run_rec *r)
{
	struct expt_backend_conf conf = {r->spec_json, ctx->db_path, NULL, 0, NULL, NULL};
	struct expt_logs_opts o = {1, -1, 0, r->ingested};
	struct catch_up c = {NULL, EXPT_ERR_INIT, 0};
	struct expt_backend be = {0};
	const char *prefix = NULL;
	char pbuf[256];
	void *stream = NULL;
	int ended = 0, records;

	if (!expt_run_status_done(r->status) || expt_store_readonly(ctx->store))
		return;
	records = feeds_records(r->spec_json, &prefix, pbuf, sizeof(pbuf));
	if (expt_backend_open(&be, r->backend, &conf, &c.err) ||
	    be.ops->logs_open(be.state, r, &o, &stream, &c.err))
		goto out;
	c.g = expt_ingest_new(ctx->store, r->run_id, prefix, records);
	while (!ended && !c.failed && !be.ops->logs_read(stream, 1, catch_line, &c, &ended, &c.err))
		;
	if (!c.failed)
		c.failed = expt_ingest_flush(c.g, &c.err) != 0;
out:
	if (c.failed || c.err.code) {
		char msg[1400];
		expt_err_format(&c.err, msg, sizeof(msg));
		fprintf(stderr, "expt: warning: %s: cannot read its metrics from its output: %s\n",
			r->run_id, msg);
	}
	expt_ingest_free(c.g);
	if (stream)
		be.ops->logs_close(stream);
	expt_backend_close(&be);
}
