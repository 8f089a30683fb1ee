/* The lifecycle of a run: compare-and-set status moves, each in one transaction with its event,
 * and the mapping from what an engine observed to a status and a reason. */
#include "lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "util/util.h"

void expt_lifecycle_outcome(const struct expt_observed *o, enum expt_run_status *status,
			    const char **reason)
{
	if (o->phase == EXPT_OBS_GONE) {
		*status = EXPT_RUN_FAILED;
		*reason = "lost";
	} else if (o->stopped) {
		*status = EXPT_RUN_STOPPED;
		*reason = "stopped";
	} else if (o->spawn_failed) {
		*status = EXPT_RUN_FAILED;
		*reason = "error";
	} else if (o->oom) {
		*status = EXPT_RUN_FAILED;
		*reason = "oom";
	} else if (o->timed_out) {
		*status = EXPT_RUN_FAILED;
		*reason = "timeout";
	} else if (o->signal) {
		*status = EXPT_RUN_FAILED;
		*reason = "signal";
	} else {
		*status = o->exit_code == 0 ? EXPT_RUN_SUCCEEDED : EXPT_RUN_FAILED;
		*reason = "exit";
	}
}

/* The run's row id and status, read inside the caller's transaction. */
struct cur {
	int64_t id;
	enum expt_run_status status;
	int sup_pid;
	int64_t sup_start;
};

static int read_status(struct expt_store *st, const char *run_id, struct cur *c,
		       struct expt_err *err)
{
	sqlite3_stmt *s = expt_store_stmt(
	    st, STMT_RUN_STATUS,
	    "SELECT id, status, supervisor_pid, supervisor_start FROM runs WHERE run_id = ?1", err);
	int rc;

	if (!s)
		return expt_store_stmt_failed(err);
	expt_store_bind_text(s, 1, run_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		c->id = sqlite3_column_int64(s, 0);
		c->status = (enum expt_run_status)sqlite3_column_int(s, 1);
		c->sup_pid = sqlite3_column_int(s, 2);
		c->sup_start = sqlite3_column_int64(s, 3);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id);
	} else {
		rc = expt_store_dberr(st, err, "cannot read a run's status");
	}
	sqlite3_reset(s);
	return rc;
}

/* Parameter numbers of the UPDATE built by write_move. */
enum {
	P_ID = 1,
	P_STATUS,
	P_TIME,
	P_REASON,
	P_MESSAGE,
	P_EXIT,
	P_SIGNAL,
	P_ATTEMPT,
	P_PID,
	P_REF,
	P_NODE,
	P_GPUS,
	P_SUP_PID,
	P_SUP_START
};

static int write_move(struct expt_store *st, int64_t id, const struct expt_transition *t,
		      int64_t now, struct expt_err *err)
{
	struct expt_buf sql = EXPT_BUF_INIT;
	sqlite3_stmt *s = NULL;
	/* The statement's shape: what it sets. A supervisor makes two shapes a run (start, end),
	 * so each is prepared once per connection, not once per move. */
	unsigned shape = (expt_run_status_done(t->to) ? 1u
			  : t->to == EXPT_RUN_RUNNING ? 2u
						      : 0u) |
			 (t->attempt > 0) << 2 | (t->pid >= 0) << 3 |
			 (t->backend_ref != NULL) << 4 | (t->node != NULL) << 5 |
			 (t->gpus != NULL) << 6 | (t->supervisor_pid >= 0) << 7;
	int rc = 0;

	if ((s = st->move_stmt[shape])) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		goto bind;
	}
	expt_buf_adds(&sql, "UPDATE runs SET status = ?2");
	if (expt_run_status_done(t->to))
		expt_buf_adds(&sql, ", ended_ms = ?3, reason = ?4, message = ?5, exit_code = ?6,"
				    " signal = ?7");
	else if (t->to == EXPT_RUN_RUNNING)
		/* A new attempt: what the previous one left is cleared. */
		expt_buf_adds(&sql, ", started_ms = ?3, reason = ?4, message = ?5,"
				    " exit_code = -1, signal = 0, ended_ms = 0");
	else
		expt_buf_adds(&sql, ", reason = ?4, message = ?5");
	if (t->attempt > 0)
		expt_buf_adds(&sql, ", attempt = ?8");
	if (t->pid >= 0)
		expt_buf_adds(&sql, ", pid = ?9");
	if (t->backend_ref)
		expt_buf_adds(&sql, ", backend_ref = ?10");
	if (t->node)
		expt_buf_adds(&sql, ", node = nullif(?11, '')");
	if (t->gpus)
		expt_buf_adds(&sql, ", gpus = nullif(?12, '')");
	if (t->supervisor_pid >= 0)
		expt_buf_adds(&sql, ", supervisor_pid = ?13, supervisor_start = ?14");
	expt_buf_adds(&sql, " WHERE id = ?1");
	if (sql.oom) {
		rc = expt_store_nomem(err);
		goto out;
	}
	if ((rc = expt_store_prepare(st, sql.buf, &s, err)))
		goto out;
	st->move_stmt[shape] = s;
bind:
	sqlite3_bind_int64(s, P_ID, id);
	sqlite3_bind_int(s, P_STATUS, (int)t->to);
	sqlite3_bind_int64(s, P_TIME, now);
	expt_store_bind_text(s, P_REASON, t->reason);
	expt_store_bind_text(s, P_MESSAGE, t->message);
	sqlite3_bind_int(s, P_EXIT, t->exit_code);
	sqlite3_bind_int(s, P_SIGNAL, t->signal);
	sqlite3_bind_int(s, P_ATTEMPT, t->attempt);
	sqlite3_bind_int(s, P_PID, t->pid);
	expt_store_bind_text(s, P_REF, t->backend_ref);
	expt_store_bind_text(s, P_NODE, t->node);
	expt_store_bind_text(s, P_GPUS, t->gpus);
	sqlite3_bind_int(s, P_SUP_PID, t->supervisor_pid);
	sqlite3_bind_int64(s, P_SUP_START, t->supervisor_start);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = expt_store_dberr(st, err, "cannot change a run's status");
out:
	if (s)
		sqlite3_reset(s); /* kept in move_stmt; finalized when the store closes */
	expt_buf_release(&sql);
	return rc;
}

static int add_event(struct expt_store *st, int64_t id, const char *kind, const char *message,
		     int64_t now, struct expt_err *err)
{
	sqlite3_stmt *s = expt_store_stmt(st, STMT_LIFECYCLE_EVENT,
					  "INSERT INTO events(run, time_ms, kind, message)"
					  " VALUES (?1, ?2, ?3, ?4)",
					  err);
	int rc = 0;

	if (!s)
		return expt_store_stmt_failed(err);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now);
	expt_store_bind_text(s, 3, kind);
	expt_store_bind_text(s, 4, message ? message : "");
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = expt_store_dberr(st, err, "cannot record an event");
	sqlite3_reset(s);
	return rc;
}

int expt_lifecycle_move(struct expt_store *st, const char *run_id, const struct expt_transition *t,
			enum expt_run_status *current, struct expt_err *err)
{
	struct cur c = {0, EXPT_RUN_QUEUED, 0, 0};
	int64_t now = t->time_ms ? t->time_ms : expt_now_ms();
	int rc;

	/* BEGIN IMMEDIATE: the status read and the write it depends on are one step. */
	if ((rc = expt_store_begin(st, err)))
		return rc;
	if ((rc = read_status(st, run_id, &c, err)))
		goto fail;
	if (current)
		*current = c.status;
	if (!(t->from & EXPT_RUN_BIT(c.status))) {
		rc = expt_err_set(err, EXPT_ECONFLICT, "run %s is %s: it cannot become %s", run_id,
				  expt_run_status_name(c.status), expt_run_status_name(t->to));
		goto fail;
	}
	if (t->if_supervisor_pid > 0 &&
	    (c.sup_pid != t->if_supervisor_pid || c.sup_start != t->if_supervisor_start)) {
		rc = expt_err_set(err, EXPT_ECONFLICT, "run %s has another supervisor now", run_id);
		goto fail;
	}
	if ((rc = write_move(st, c.id, t, now, err)))
		goto fail;
	if (t->event &&
	    (rc = add_event(st, c.id, t->event, t->event_message ? t->event_message : t->message,
			    now, err)))
		goto fail;
	if ((rc = expt_store_commit(st, err)))
		return rc;
	if (current)
		*current = t->to;
	return 0;
fail:
	expt_store_rollback(st);
	return rc;
}

int expt_lifecycle_end(struct expt_store *st, const char *run_id, const struct expt_observed *o,
		       enum expt_run_status *current, struct expt_err *err)
{
	struct expt_transition t = EXPT_TRANSITION_INIT;
	const char *reason;

	expt_lifecycle_outcome(o, &t.to, &reason);
	t.from = EXPT_RUN_ACTIVE;
	t.reason = reason;
	t.event = reason;
	t.message = o->message[0] ? o->message : NULL;
	t.exit_code = o->phase == EXPT_OBS_EXITED ? o->exit_code : -1;
	t.signal = o->phase == EXPT_OBS_EXITED ? o->signal : 0;
	t.attempt = o->attempt;
	t.node = o->node[0] ? o->node : NULL;
	t.time_ms = o->end_ms;
	return expt_lifecycle_move(st, run_id, &t, current, err);
}

int expt_lifecycle_stop(struct expt_store *st, const char *run_id, const char *why,
			enum expt_run_status *current, struct expt_err *err)
{
	struct expt_transition t = EXPT_TRANSITION_INIT;

	t.from = EXPT_RUN_ACTIVE;
	t.to = EXPT_RUN_STOPPED;
	t.reason = "stopped";
	t.event = "stopped";
	t.message = why;
	return expt_lifecycle_move(st, run_id, &t, current, err);
}

int expt_lifecycle_status(struct expt_store *st, const char *run_id, enum expt_run_status *status,
			  struct expt_err *err)
{
	struct cur c = {0, EXPT_RUN_QUEUED, 0, 0};
	int rc = read_status(st, run_id, &c, err);

	if (!rc)
		*status = c.status;
	return rc;
}
