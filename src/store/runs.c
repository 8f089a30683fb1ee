/* Runs and experiments in the store: run-id allocation, lifecycle updates, lookups, listing and
 * deletion. */
#include "internal.h"
#include "lifecycle.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

/* The columns a run record is read from, in the order of enum run_col; the spec and env, which
 * are large and only read on request, follow them. */
#define RUN_COLS                                                                                   \
	"r.id, r.run_id, r.experiment, r.seq, r.status, r.exit_code, r.signal, r.reason,"          \
	" r.message, r.created_ms, r.started_ms, r.ended_ms, r.backend, r.host, r.variant,"        \
	" r.attempt, r.retry_of, r.pid, r.supervisor_pid, r.supervisor_start, r.params_json,"      \
	" r.argv_json, r.output_dir, r.log_dir, r.gpus, r.backend_ref, r.node, r.ingested"
#define RUN_SPEC_COLS ", s.json, e.env_json"
#define RUN_SPEC_JOIN " LEFT JOIN specs s ON s.id = r.spec_id LEFT JOIN run_env e ON e.run = r.id"

enum run_col {
	C_ID,
	C_RUN_ID,
	C_EXPERIMENT,
	C_SEQ,
	C_STATUS,
	C_EXIT_CODE,
	C_SIGNAL,
	C_REASON,
	C_MESSAGE,
	C_CREATED,
	C_STARTED,
	C_ENDED,
	C_BACKEND,
	C_HOST,
	C_VARIANT,
	C_ATTEMPT,
	C_RETRY_OF,
	C_PID,
	C_SUP_PID,
	C_SUP_START,
	C_PARAMS,
	C_ARGV,
	C_OUTPUT_DIR,
	C_LOG_DIR,
	C_GPUS,
	C_REF,
	C_NODE,
	C_INGESTED,
	C_SPEC,
	C_ENV,
};

void expt_run_rec_release(struct expt_run_rec *r)
{
	if (!r)
		return;
	free(r->run_id);
	free(r->experiment);
	free(r->reason);
	free(r->message);
	free(r->backend);
	free(r->backend_ref);
	free(r->node);
	free(r->host);
	free(r->variant);
	free(r->retry_of);
	free(r->params_json);
	free(r->argv_json);
	free(r->env_json);
	free(r->spec_json);
	free(r->output_dir);
	free(r->log_dir);
	free(r->gpus);
	memset(r, 0, sizeof(*r));
}

void expt_run_list_release(struct expt_run_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		expt_run_rec_release(&l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void expt_experiment_list_release(struct expt_experiment_list *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int is_label_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int expt_store_run_id_prefix(const char *experiment, char *out, size_t n, struct expt_err *err)
{
	/* Room for "-" and the 8 hex digits of the hash within EXPT_RUN_PREFIX_MAX. */
	enum { KEEP = EXPT_RUN_PREFIX_MAX - 9 };
	char head[KEEP];
	size_t len, i, o = 0;
	int valid = 1;

	if (!experiment || !*experiment)
		return expt_err_set(err, EXPT_EUSAGE, "the experiment name is empty");
	if (n < EXPT_RUN_PREFIX_MAX + 1)
		return expt_err_set(err, EXPT_EFAIL, "run-id prefix buffer too small");
	len = strlen(experiment);
	for (i = 0; i < len && valid; i++)
		valid =
		    is_label_char(experiment[i]) || (experiment[i] == '-' && i > 0 && i + 1 < len);
	if (valid && len <= EXPT_RUN_PREFIX_MAX) {
		memcpy(out, experiment, len + 1);
		return 0;
	}
	for (i = 0; i < len && o < sizeof(head); i++) {
		char c = experiment[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (is_label_char(c))
			head[o++] = c;
		else if (o && head[o - 1] != '-')
			head[o++] = '-';
	}
	while (o && head[o - 1] == '-')
		o--;
	snprintf(out, n, "%.*s%s%08x", (int)o, head, o ? "-" : "",
		 expt_fnv1a32(experiment, strlen(experiment)));
	return 0;
}

/* Fills r from a row; -1 when out of memory (r then holds what was copied: release it). */
static int rec_from_row(sqlite3_stmt *s, struct expt_run_rec *r, int with_specs)
{
	int oom = 0;

	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(s, C_ID);
	oom |= expt_store_col_dup(s, C_RUN_ID, &r->run_id);
	oom |= expt_store_col_dup(s, C_EXPERIMENT, &r->experiment);
	r->seq = sqlite3_column_int64(s, C_SEQ);
	r->status = (enum expt_run_status)sqlite3_column_int(s, C_STATUS);
	r->exit_code = sqlite3_column_int(s, C_EXIT_CODE);
	r->signal = sqlite3_column_int(s, C_SIGNAL);
	oom |= expt_store_col_dup(s, C_REASON, &r->reason);
	oom |= expt_store_col_dup(s, C_MESSAGE, &r->message);
	r->created_ms = sqlite3_column_int64(s, C_CREATED);
	r->started_ms = sqlite3_column_int64(s, C_STARTED);
	r->ended_ms = sqlite3_column_int64(s, C_ENDED);
	oom |= expt_store_col_dup(s, C_BACKEND, &r->backend);
	oom |= expt_store_col_dup(s, C_HOST, &r->host);
	oom |= expt_store_col_dup(s, C_VARIANT, &r->variant);
	r->attempt = sqlite3_column_int(s, C_ATTEMPT);
	oom |= expt_store_col_dup(s, C_RETRY_OF, &r->retry_of);
	r->pid = sqlite3_column_int(s, C_PID);
	r->supervisor_pid = sqlite3_column_int(s, C_SUP_PID);
	r->supervisor_start = sqlite3_column_int64(s, C_SUP_START);
	oom |= expt_store_col_dup(s, C_PARAMS, &r->params_json);
	oom |= expt_store_col_dup(s, C_ARGV, &r->argv_json);
	oom |= expt_store_col_dup(s, C_OUTPUT_DIR, &r->output_dir);
	oom |= expt_store_col_dup(s, C_LOG_DIR, &r->log_dir);
	oom |= expt_store_col_dup(s, C_GPUS, &r->gpus);
	oom |= expt_store_col_dup(s, C_REF, &r->backend_ref);
	oom |= expt_store_col_dup(s, C_NODE, &r->node);
	r->ingested = sqlite3_column_int64(s, C_INGESTED);
	if (with_specs) {
		oom |= expt_store_col_dup(s, C_SPEC, &r->spec_json);
		oom |= expt_store_col_dup(s, C_ENV, &r->env_json);
	}
	return oom ? -1 : 0;
}

/* *out = a copy of s, NULL for NULL; -1 when out of memory. */
static int dup_opt(const char *s, char **out)
{
	*out = s ? expt_strdup(s) : NULL;
	return s && !*out ? -1 : 0;
}

/* Parses every run's params before the write lock is taken, so the lock is held for inserts
 * only. */
static int parse_params(const struct expt_run_new *runs, size_t n, json_t **out,
			struct expt_err *err)
{
	size_t i;

	for (i = 0; i < n; i++) {
		json_error_t jerr;
		const char *text = runs[i].params_json ? runs[i].params_json : "{}";

		out[i] = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
		if (!out[i])
			return expt_err_set(err, EXPT_EUSAGE, "params of run %zu: %s", i + 1,
					    jerr.text);
		if (!json_is_object(out[i]))
			return expt_err_set(err, EXPT_EUSAGE,
					    "params of run %zu: not a JSON object", i + 1);
	}
	return 0;
}

static int insert_params(struct expt_store *st, sqlite3_stmt *ins, int64_t rowid, json_t *obj,
			 struct expt_err *err)
{
	const char *key;
	json_t *v;
	int rc = 0;

	json_object_foreach(obj, key, v)
	{
		char *text = expt_json_param_text(v);

		if (!text)
			return expt_store_nomem(err);
		sqlite3_reset(ins);
		sqlite3_bind_int64(ins, 1, rowid);
		sqlite3_bind_text(ins, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, text, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			rc = expt_store_dberr(st, err, "cannot store a param");
		sqlite3_reset(ins);
		free(text);
		if (rc)
			break;
	}
	return rc;
}

static const char sql_exp_get[] = "SELECT next_seq, id_prefix FROM experiments WHERE name = ?1";
static const char sql_exp_add[] = "INSERT INTO experiments(name, id_prefix, created_ms, updated_ms,"
				  " next_seq) VALUES (?1, ?2, ?3, ?3, 1)";
static const char sql_exp_bump[] =
    "UPDATE experiments SET next_seq = ?2, updated_ms = ?3 WHERE name = ?1";
static const char sql_spec_add[] = "INSERT INTO specs(json) VALUES (?1)";
static const char sql_run_add[] =
    "INSERT INTO runs(run_id, experiment, seq, status, created_ms, backend, host, variant,"
    " retry_of, supervisor_pid, supervisor_start, params_json, output_dir, log_dir, spec_id)"
    " VALUES (?1, ?2, ?3, ?15, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
static const char sql_param_put[] =
    "INSERT OR REPLACE INTO params(run, key, value) VALUES (?1, ?2, ?3)";

int expt_store_create_runs(struct expt_store *st, const char *experiment, const char *backend,
			   const char *spec_json, const struct expt_run_new *runs, size_t n,
			   struct expt_run_list *out, struct expt_err *err)
{
	char prefix[EXPT_RUN_PREFIX_MAX + 1];
	sqlite3_stmt *get = NULL, *add = NULL, *bump = NULL, *spec = NULL, *ins = NULL,
		     *param = NULL;
	json_t **params = NULL;
	int64_t now = expt_now_ms(), first = 1, spec_id = 0;
	int me = (int)getpid();
	int64_t me_start = expt_proc_start_time(me);
	size_t base = out->n, i;
	int rc, locked = 0;

	if ((rc = expt_store_run_id_prefix(experiment, prefix, sizeof(prefix), err)))
		return rc;
	if (!n)
		return 0;
	if (!backend)
		backend = "local";
	if (!(params = expt_calloc(n, sizeof(*params)))) {
		rc = expt_store_nomem(err);
		goto out;
	}
	if ((rc = parse_params(runs, n, params, err)))
		goto out;
	if ((rc = expt_store_prepare(st, sql_exp_get, &get, err)) ||
	    (rc = expt_store_prepare(st, sql_exp_add, &add, err)) ||
	    (rc = expt_store_prepare(st, sql_exp_bump, &bump, err)) ||
	    (rc = expt_store_prepare(st, sql_spec_add, &spec, err)) ||
	    (rc = expt_store_prepare(st, sql_run_add, &ins, err)) ||
	    (rc = expt_store_prepare(st, sql_param_put, &param, err)))
		goto out;

	if ((rc = expt_store_begin(st, err)))
		goto out;
	locked = 1;
	sqlite3_bind_text(get, 1, experiment, -1, SQLITE_STATIC);
	rc = sqlite3_step(get);
	if (rc == SQLITE_ROW) {
		/* The stored prefix, not a recomputed one: ids of one experiment stay uniform even
		 * if a later expt shortens names differently. */
		first = sqlite3_column_int64(get, 0);
		snprintf(prefix, sizeof(prefix), "%s", (const char *)sqlite3_column_text(get, 1));
		sqlite3_reset(get);
	} else if (rc == SQLITE_DONE) {
		sqlite3_bind_text(add, 1, experiment, -1, SQLITE_STATIC);
		sqlite3_bind_text(add, 2, prefix, -1, SQLITE_STATIC);
		sqlite3_bind_int64(add, 3, now);
		if (sqlite3_step(add) != SQLITE_DONE) {
			rc = expt_store_dberr(st, err, "cannot create the experiment");
			goto out;
		}
	} else {
		rc = expt_store_dberr(st, err, "cannot read the experiment");
		goto out;
	}
	sqlite3_bind_text(bump, 1, experiment, -1, SQLITE_STATIC);
	sqlite3_bind_int64(bump, 2, first + (int64_t)n);
	sqlite3_bind_int64(bump, 3, now);
	if (sqlite3_step(bump) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot allocate run ids");
		goto out;
	}
	if (spec_json) {
		sqlite3_bind_text(spec, 1, spec_json, -1, SQLITE_STATIC);
		if (sqlite3_step(spec) != SQLITE_DONE) {
			rc = expt_store_dberr(st, err, "cannot store the spec");
			goto out;
		}
		spec_id = sqlite3_last_insert_rowid(st->db);
	}

	EXPT_TRY_GROW(out->v, base + n, out->cap, rc);
	if (rc) {
		rc = expt_store_nomem(err);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct expt_run_rec *r = &out->v[out->n];
		const char *pj = runs[i].params_json ? runs[i].params_json : "{}";

		/* Counted at once: on failure the records made so far are released below. */
		memset(r, 0, sizeof(*r));
		out->n++;
		r->seq = first + (int64_t)i;
		r->status = EXPT_RUN_QUEUED;
		r->exit_code = -1;
		r->created_ms = now;
		r->supervisor_pid = me;
		r->supervisor_start = me_start;
		if (!(r->run_id = expt_asprintf("%s-%lld", prefix, (long long)r->seq)) ||
		    !(r->experiment = expt_strdup(experiment)) ||
		    !(r->backend = expt_strdup(backend)) || !(r->host = expt_strdup(st->host)) ||
		    dup_opt(runs[i].variant, &r->variant) ||
		    dup_opt(runs[i].retry_of, &r->retry_of) ||
		    !(r->params_json = expt_strdup(pj)) ||
		    !(r->output_dir = expt_asprintf("%s/%s/output", st->runs_dir, r->run_id)) ||
		    !(r->log_dir = expt_asprintf("%s/%s/logs", st->runs_dir, r->run_id))) {
			rc = expt_store_nomem(err);
			goto out;
		}

		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, r->run_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, experiment, -1, SQLITE_STATIC);
		sqlite3_bind_int64(ins, 3, r->seq);
		sqlite3_bind_int64(ins, 4, now);
		sqlite3_bind_text(ins, 5, backend, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 6, st->host, -1, SQLITE_STATIC);
		expt_store_bind_text(ins, 7, r->variant);
		expt_store_bind_text(ins, 8, r->retry_of);
		sqlite3_bind_int(ins, 9, me);
		sqlite3_bind_int64(ins, 10, me_start);
		sqlite3_bind_text(ins, 11, pj, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 12, r->output_dir, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 13, r->log_dir, -1, SQLITE_STATIC);
		if (spec_id)
			sqlite3_bind_int64(ins, 14, spec_id);
		else
			sqlite3_bind_null(ins, 14);
		sqlite3_bind_int(ins, 15, EXPT_RUN_QUEUED);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE)
				rc = expt_err_set(err, EXPT_ESTORE,
						  "run id %s is already taken (by a run of another "
						  "experiment whose name shortens the same way)",
						  r->run_id);
			else
				rc = expt_store_dberr(st, err, "cannot create a run");
			goto out;
		}
		r->id = sqlite3_last_insert_rowid(st->db);
		if ((rc = insert_params(st, param, r->id, params[i], err)))
			goto out;
	}
	rc = expt_store_commit(st, err);
	locked = 0;
out:
	if (locked)
		expt_store_rollback(st);
	if (rc) {
		while (out->n > base)
			expt_run_rec_release(&out->v[--out->n]);
	}
	for (i = 0; params && i < n; i++)
		json_decref(params[i]);
	free(params);
	sqlite3_finalize(get);
	sqlite3_finalize(add);
	sqlite3_finalize(bump);
	sqlite3_finalize(spec);
	sqlite3_finalize(ins);
	sqlite3_finalize(param);
	return rc;
}

/* Runs one bound UPDATE of a run as its own transaction; EXPT_ENOTFOUND when no row matched. */
static int update_run(struct expt_store *st, sqlite3_stmt *s, const char *run_id,
		      struct expt_err *err)
{
	int rc;

	if ((rc = expt_store_begin(st, err)))
		return rc;
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot update a run");
		goto fail;
	}
	if (!sqlite3_changes(st->db)) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id);
		goto fail;
	}
	sqlite3_reset(s);
	return expt_store_commit(st, err);
fail:
	sqlite3_reset(s);
	expt_store_rollback(st);
	return rc;
}

int expt_store_set_argv_env(struct expt_store *st, const char *run_id, const char *argv_json,
			    const char *env_json, struct expt_err *err)
{
	sqlite3_stmt *a, *e;
	int rc;

	if (!(a = expt_store_stmt(st, STMT_SET_ARGV,
				  "UPDATE runs SET argv_json = coalesce(?2, argv_json)"
				  " WHERE run_id = ?1",
				  err)) ||
	    !(e = expt_store_stmt(st, STMT_SET_ENV,
				  "INSERT INTO run_env(run, env_json) SELECT id, ?2 FROM runs"
				  " WHERE run_id = ?1 ON CONFLICT(run) DO UPDATE"
				  " SET env_json = excluded.env_json",
				  err)))
		return expt_store_stmt_failed(err);
	if ((rc = expt_store_begin(st, err)))
		return rc;
	expt_store_bind_text(a, 1, run_id);
	expt_store_bind_text(a, 2, argv_json);
	if (sqlite3_step(a) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot store the run's argv");
		goto fail;
	}
	if (!sqlite3_changes(st->db)) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id);
		goto fail;
	}
	if (env_json) {
		expt_store_bind_text(e, 1, run_id);
		expt_store_bind_text(e, 2, env_json);
		if (sqlite3_step(e) != SQLITE_DONE) {
			rc = expt_store_dberr(st, err, "cannot store the run's env");
			goto fail;
		}
	}
	sqlite3_reset(a);
	sqlite3_reset(e);
	return expt_store_commit(st, err);
fail:
	sqlite3_reset(a);
	sqlite3_reset(e);
	expt_store_rollback(st);
	return rc;
}

int expt_store_mark_supervisor(struct expt_store *st, const char *run_id, int supervisor_pid,
			       int64_t supervisor_start, struct expt_err *err)
{
	sqlite3_stmt *s = expt_store_stmt(
	    st, STMT_MARK_SUPERVISOR,
	    "UPDATE runs SET supervisor_pid = ?2, supervisor_start = ?3 WHERE run_id = ?1", err);

	if (!s)
		return expt_store_stmt_failed(err);
	expt_store_bind_text(s, 1, run_id);
	sqlite3_bind_int(s, 2, supervisor_pid);
	sqlite3_bind_int64(s, 3, supervisor_start);
	return update_run(st, s, run_id, err);
}

int expt_store_set_ingested(struct expt_store *st, const char *run_id, int64_t bytes,
			    struct expt_err *err)
{
	sqlite3_stmt *s =
	    expt_store_stmt(st, STMT_SET_INGESTED,
			    "UPDATE runs SET ingested = max(ingested, ?2) WHERE run_id = ?1", err);

	if (!s)
		return expt_store_stmt_failed(err);
	expt_store_bind_text(s, 1, run_id);
	sqlite3_bind_int64(s, 2, bytes);
	return update_run(st, s, run_id, err);
}

int expt_store_get_ingested(struct expt_store *st, const char *run_id, int64_t *bytes,
			    struct expt_err *err)
{
	sqlite3_stmt *s = expt_store_stmt(st, STMT_GET_INGESTED,
					  "SELECT ingested FROM runs WHERE run_id = ?1", err);
	int rc;

	*bytes = 0;
	if (!s)
		return expt_store_stmt_failed(err);
	expt_store_bind_text(s, 1, run_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*bytes = sqlite3_column_int64(s, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id);
	} else {
		rc = expt_store_dberr(st, err, "cannot read a run");
	}
	sqlite3_reset(s);
	return rc;
}

int expt_store_get_run(struct expt_store *st, const char *run_id, struct expt_run_rec *out,
		       struct expt_err *err)
{
	sqlite3_stmt *s = expt_store_stmt(st, STMT_GET_RUN,
					  "SELECT " RUN_COLS RUN_SPEC_COLS
					  " FROM runs r" RUN_SPEC_JOIN " WHERE r.run_id = ?1",
					  err);
	int rc;

	memset(out, 0, sizeof(*out));
	if (!s)
		return expt_store_stmt_failed(err);
	expt_store_bind_text(s, 1, run_id ? run_id : "");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		rc = 0;
		if (rec_from_row(s, out, 1)) {
			expt_run_rec_release(out);
			rc = expt_store_nomem(err);
		}
	} else if (rc == SQLITE_DONE) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id ? run_id : "");
	} else {
		rc = expt_store_dberr(st, err, "cannot read a run");
	}
	sqlite3_reset(s);
	return rc;
}

int expt_store_list_runs(struct expt_store *st, const struct expt_run_filter *f,
			 struct expt_run_list *out, struct expt_err *err)
{
	static const struct expt_run_filter any = {0};
	struct expt_buf sql = EXPT_BUF_INIT;
	sqlite3_stmt *s = NULL;
	size_t base = out->n;
	int mask, rc, first = 1, i;

	if (!f)
		f = &any;
	mask = f->status_mask & ((1 << EXPT_RUN_NSTATUS) - 1);
	expt_buf_adds(&sql, "SELECT " RUN_COLS);
	if (f->include_specs)
		expt_buf_adds(&sql, RUN_SPEC_COLS " FROM runs r" RUN_SPEC_JOIN);
	else
		expt_buf_adds(&sql, " FROM runs r");
	expt_buf_adds(&sql, " WHERE 1");
	if (f->experiment)
		expt_buf_adds(&sql, " AND r.experiment = ?1");
	if (mask) {
		expt_buf_adds(&sql, " AND r.status IN (");
		for (i = 0; i < EXPT_RUN_NSTATUS; i++) {
			if (mask & (1 << i)) {
				expt_buf_addf(&sql, "%s%d", first ? "" : ",", i);
				first = 0;
			}
		}
		expt_buf_adds(&sql, ")");
		/* Spelled out so that SQLite may use the partial index of active runs. */
		if (!(mask & ~EXPT_RUN_ACTIVE))
			expt_buf_adds(&sql, " AND r." EXPT_SQL_ACTIVE);
	}
	/* Within an experiment seq follows creation, and runs_experiment is ordered by it. */
	expt_buf_adds(&sql, f->experiment ? " ORDER BY r.seq" : " ORDER BY r.id");
	if (f->limit > 0)
		expt_buf_adds(&sql, " DESC LIMIT ?2");
	if (sql.oom) {
		rc = expt_store_nomem(err);
		goto out;
	}
	if ((rc = expt_store_prepare(st, sql.buf, &s, err)))
		goto out;
	if (f->experiment)
		sqlite3_bind_text(s, 1, f->experiment, -1, SQLITE_STATIC);
	if (f->limit > 0)
		sqlite3_bind_int64(s, 2, f->limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int grow;

		EXPT_TRY_GROW(out->v, out->n + 1, out->cap, grow);
		if (grow || rec_from_row(s, &out->v[out->n++], f->include_specs)) {
			rc = expt_store_nomem(err);
			goto out;
		}
	}
	rc = rc == SQLITE_DONE ? 0 : expt_store_dberr(st, err, "cannot list runs");
out:
	if (rc) /* nothing half read is left behind */
		while (out->n > base)
			expt_run_rec_release(&out->v[--out->n]);
	sqlite3_finalize(s);
	expt_buf_release(&sql);
	return rc;
}

int expt_store_list_experiments(struct expt_store *st, struct expt_experiment_list *out,
				struct expt_err *err)
{
	/* Each count is a range count on runs_experiment_status: no run row is read. */
	static const char sql[] =
	    "SELECT e.name, e.created_ms, e.next_seq,"
	    " (SELECT count(*) FROM runs r WHERE r.experiment = e.name),"
	    " (SELECT count(*) FROM runs r WHERE r.experiment = e.name AND r.status = ?1),"
	    " (SELECT count(*) FROM runs r WHERE r.experiment = e.name AND r.status = ?2),"
	    " (SELECT count(*) FROM runs r WHERE r.experiment = e.name AND r.status = ?3)"
	    " FROM experiments e ORDER BY e.updated_ms DESC, e.name";
	sqlite3_stmt *s = NULL;
	size_t base = out->n, i;
	int rc, oom = 0;

	if ((rc = expt_store_prepare(st, sql, &s, err)))
		return rc;
	sqlite3_bind_int(s, 1, EXPT_RUN_RUNNING);
	sqlite3_bind_int(s, 2, EXPT_RUN_SUCCEEDED);
	sqlite3_bind_int(s, 3, EXPT_RUN_FAILED);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct expt_experiment_rec *e;

		EXPT_TRY_GROW(out->v, out->n + 1, out->cap, oom);
		if (oom)
			break;
		e = &out->v[out->n++];
		memset(e, 0, sizeof(*e));
		if ((oom = expt_store_col_dup(s, 0, &e->name)))
			break;
		e->created_ms = sqlite3_column_int64(s, 1);
		e->next_seq = sqlite3_column_int64(s, 2);
		e->nruns = sqlite3_column_int64(s, 3);
		e->nrunning = sqlite3_column_int64(s, 4);
		e->nsucceeded = sqlite3_column_int64(s, 5);
		e->nfailed = sqlite3_column_int64(s, 6);
	}
	if (oom)
		rc = expt_store_nomem(err);
	else
		rc = rc == SQLITE_DONE ? 0 : expt_store_dberr(st, err, "cannot list experiments");
	sqlite3_finalize(s);
	if (rc) { /* nothing half read is left behind */
		for (i = base; i < out->n; i++)
			free(out->v[i].name);
		out->n = base;
	}
	return rc;
}

int expt_store_delete_run(struct expt_store *st, const char *run_id, struct expt_err *err)
{
	sqlite3_stmt *del = NULL, *gc = NULL;
	int64_t rowid;
	int rc;

	/* Params, env, tags, artifacts, events and metrics go with the run (ON DELETE CASCADE);
	 * the spec goes when no other run of its `expt run` remains. next_seq is untouched. */
	if ((rc = expt_store_prepare(st, "DELETE FROM runs WHERE id = ?1 RETURNING spec_id", &del,
				     err)) ||
	    (rc = expt_store_prepare(st,
				     "DELETE FROM specs WHERE id = ?1 AND NOT EXISTS"
				     " (SELECT 1 FROM runs WHERE spec_id = ?1)",
				     &gc, err)))
		goto out;
	if ((rc = expt_store_begin(st, err)))
		goto out;
	if ((rc = expt_store_run_rowid(st, run_id, &rowid, err)))
		goto fail;
	sqlite3_bind_int64(del, 1, rowid);
	if (sqlite3_step(del) != SQLITE_ROW) {
		rc = expt_store_dberr(st, err, "cannot delete the run");
		goto fail;
	}
	if (sqlite3_column_type(del, 0) != SQLITE_NULL)
		sqlite3_bind_int64(gc, 1, sqlite3_column_int64(del, 0));
	if (sqlite3_step(del) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot delete the run");
		goto fail;
	}
	if (sqlite3_step(gc) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot delete the run's spec");
		goto fail;
	}
	rc = expt_store_commit(st, err);
	goto out;
fail:
	expt_store_rollback(st);
out:
	sqlite3_finalize(del);
	sqlite3_finalize(gc);
	return rc;
}
