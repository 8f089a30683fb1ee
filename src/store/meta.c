/* What a run accumulates besides metrics: params, tags, artifacts and events, and the key/value
 * lists that read them back. */
#include "internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

void expt_kv_rows_release(struct expt_kv_rows *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->n; i++) {
		free(r->keys[i]);
		free(r->values[i]);
	}
	free(r->keys);
	free(r->values);
	free(r->times);
	memset(r, 0, sizeof(*r));
}

/* Appends a row, taking key and value; -1 when out of memory (both freed, r unchanged). */
static int kv_push(struct expt_kv_rows *r, char *key, char *value, int64_t time_ms)
{
	size_t cap = r->cap;
	int rc;

	/* Each array grows from the same cap; r->cap moves once all three have room. */
	EXPT_TRY_GROW(r->keys, r->n + 1, cap, rc);
	if (!rc) {
		cap = r->cap;
		EXPT_TRY_GROW(r->values, r->n + 1, cap, rc);
	}
	if (!rc) {
		cap = r->cap;
		EXPT_TRY_GROW(r->times, r->n + 1, cap, rc);
	}
	if (rc) {
		free(key);
		free(value);
		return -1;
	}
	r->cap = cap;
	r->keys[r->n] = key;
	r->values[r->n] = value;
	r->times[r->n] = time_ms;
	r->n++;
	return 0;
}

/* Runs one write about a run: looks the run up, binds its row id as ?1 of s (the caller bound
 * the rest), steps, commits. */
static int write_for_run(struct expt_store *st, sqlite3_stmt *s, const char *run_id,
			 struct expt_err *err)
{
	int64_t run;
	int rc;

	if ((rc = expt_store_begin(st, err)))
		return rc;
	if ((rc = expt_store_run_rowid(st, run_id, &run, err)))
		goto fail;
	sqlite3_bind_int64(s, 1, run);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot write to the store");
		goto fail;
	}
	sqlite3_reset(s);
	return expt_store_commit(st, err);
fail:
	sqlite3_reset(s);
	expt_store_rollback(st);
	return rc;
}

static int need(const char *what, const char *v, struct expt_err *err)
{
	if (!v || !*v)
		return expt_err_set(err, EXPT_EUSAGE, "%s is empty", what);
	return 0;
}

int expt_store_set_param(struct expt_store *st, const char *run_id, const char *key,
			 const char *value, struct expt_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = need("param name", key, err)))
		return rc;
	if (!(s = expt_store_stmt(
		  st, STMT_SET_PARAM,
		  "INSERT OR REPLACE INTO params(run, key, value) VALUES (?1, ?2, ?3)", err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, value ? value : "", -1, SQLITE_STATIC);
	return write_for_run(st, s, run_id, err);
}

int expt_store_set_tag(struct expt_store *st, const char *run_id, const char *key,
		       const char *value, struct expt_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = need("tag name", key, err)))
		return rc;
	if (!(s = expt_store_stmt(st, STMT_SET_TAG,
				  "INSERT OR REPLACE INTO tags(run, key, value, time_ms)"
				  " VALUES (?1, ?2, ?3, ?4)",
				  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, value ? value : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, expt_now_ms());
	return write_for_run(st, s, run_id, err);
}

int expt_store_add_artifact(struct expt_store *st, const char *run_id, const char *path,
			    int64_t size, struct expt_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = need("artifact path", path, err)))
		return rc;
	if (!(s = expt_store_stmt(st, STMT_ADD_ARTIFACT,
				  "INSERT OR REPLACE INTO artifacts(run, path, size, time_ms)"
				  " VALUES (?1, ?2, ?3, ?4)",
				  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, size);
	sqlite3_bind_int64(s, 4, expt_now_ms());
	return write_for_run(st, s, run_id, err);
}

int expt_store_add_event(struct expt_store *st, const char *run_id, const char *kind,
			 const char *message, int64_t time_ms, struct expt_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = need("event kind", kind, err)))
		return rc;
	if (!(s = expt_store_stmt(st, STMT_ADD_EVENT,
				  "INSERT INTO events(run, time_ms, kind, message)"
				  " VALUES (?1, ?2, ?3, ?4)",
				  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_int64(s, 2, time_ms ? time_ms : expt_now_ms());
	sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
	expt_store_bind_text(s, 4, message);
	return write_for_run(st, s, run_id, err);
}

/* Appends the rows of a query taking the run id as ?1 (looked up inside the query: one read
 * transaction) and returning key, value, time. */
static int read_kv(struct expt_store *st, const char *run_id, const char *sql,
		   struct expt_kv_rows *out, struct expt_err *err)
{
	sqlite3_stmt *s = NULL;
	size_t base = out->n, i;
	int64_t run;
	int rc, oom = 0;

	if ((rc = expt_store_prepare(st, sql, &s, err)))
		return rc;
	sqlite3_bind_text(s, 1, run_id ? run_id : "", -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char *key = NULL, *value = NULL;

		if (expt_store_col_dup(s, 0, &key) || expt_store_col_dup(s, 1, &value) ||
		    (!value && !(value = expt_strdup("")))) {
			free(key);
			free(value);
			oom = 1;
			break;
		}
		if ((oom = kv_push(out, key, value, sqlite3_column_int64(s, 2))))
			break; /* kv_push freed them */
	}
	if (oom)
		rc = expt_store_nomem(err);
	else
		rc =
		    rc == SQLITE_DONE ? 0 : expt_store_dberr(st, err, "cannot read from the store");
	sqlite3_finalize(s);
	if (rc) { /* nothing half read is left behind */
		for (i = base; i < out->n; i++) {
			free(out->keys[i]);
			free(out->values[i]);
		}
		out->n = base;
		return rc;
	}
	if (!rc && out->n == base)
		rc = expt_store_run_rowid(st, run_id, &run, err); /* none: is there such a run? */
	return rc;
}

#define RUN_OF_ID "(SELECT id FROM runs WHERE run_id = ?1)"

int expt_store_get_params(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			  struct expt_err *err)
{
	return read_kv(st, run_id,
		       "SELECT key, value, 0 FROM params WHERE run = " RUN_OF_ID " ORDER BY key",
		       out, err);
}

int expt_store_get_tags(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			struct expt_err *err)
{
	return read_kv(st, run_id,
		       "SELECT key, value, time_ms FROM tags WHERE run = " RUN_OF_ID
		       " ORDER BY key",
		       out, err);
}

int expt_store_get_artifacts(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			     struct expt_err *err)
{
	return read_kv(
	    st, run_id,
	    "SELECT path, CAST(size AS TEXT), time_ms FROM artifacts WHERE run = " RUN_OF_ID
	    " ORDER BY path",
	    out, err);
}

int expt_store_get_events(struct expt_store *st, const char *run_id, struct expt_kv_rows *out,
			  struct expt_err *err)
{
	return read_kv(st, run_id,
		       "SELECT kind, message, time_ms FROM events WHERE run = " RUN_OF_ID
		       " ORDER BY time_ms, id",
		       out, err);
}
