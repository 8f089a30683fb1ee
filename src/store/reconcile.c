/* Finding runs whose supervising expt process died without recording an end (killed, machine
 * rebooted), so that no run stays "running" forever. The move itself is the lifecycle's. */
#include "internal.h"
#include "lifecycle.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Whether the process that supervised a run is gone. A pid alone is not enough: after it exits
 * the pid may be reused, which the start time tells apart. A zombie has exited too. */
static int supervisor_gone(int pid, int64_t start)
{
	int64_t now_start = 0;
	char state = 0;

	if (expt_proc_stat(pid, &state, &now_start)) /* no /proc entry: ask the kernel */
		return !(kill(pid, 0) == 0 || errno == EPERM);
	if (start && now_start != start)
		return 1;
	return state == 'Z';
}

int expt_store_supervisor_gone(const struct expt_store *st, const struct expt_run_rec *r)
{
	if (r->supervisor_pid <= 0 ||
	    (r->host && *r->host && *st->host && strcmp(r->host, st->host)))
		return 0;
	return supervisor_gone(r->supervisor_pid, r->supervisor_start);
}

struct lost {
	char *run_id;
	int pid;
	int64_t start;
};

int expt_store_reconcile(struct expt_store *st, struct expt_err *err)
{
	return expt_store_reconcile_with(st, NULL, NULL, err);
}

int expt_store_reconcile_with(struct expt_store *st, expt_unwatched_fn ask, void *payload,
			      struct expt_err *err)
{
	/* Matches the partial index runs_active: with nothing active this reads an empty index
	 * and no run row. */
	static const char sql_active[] = "SELECT run_id, supervisor_pid, supervisor_start, host"
					 " FROM runs WHERE " EXPT_SQL_ACTIVE;
	sqlite3_stmt *s = NULL;
	struct lost *lost = NULL;
	size_t nlost = 0, cap = 0, i;
	int rc;

	if (st->readonly) /* nothing can be recorded; the runs stay as they were seen */
		return 0;
	if ((rc = expt_store_prepare(st, sql_active, &s, err)))
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int pid = sqlite3_column_int(s, 1);
		int64_t start = sqlite3_column_int64(s, 2);
		const char *host = (const char *)sqlite3_column_text(s, 3);

		/* Another host: its pids mean nothing here. pid 0: no expt process watches it
		 * (its engine does); a live supervisor: it watches. */
		if (pid > 0 && ((host && *host && *st->host && strcmp(host, st->host)) ||
				!supervisor_gone(pid, start)))
			continue;
		if (pid <= 0 && !ask)
			continue;
		EXPT_TRY_GROW(lost, nlost + 1, cap, rc);
		if (rc || expt_store_col_dup(s, 0, &lost[nlost].run_id)) {
			rc = SQLITE_NOMEM;
			break;
		}
		lost[nlost].pid = pid;
		lost[nlost].start = start;
		nlost++;
	}
	if (rc == SQLITE_NOMEM)
		rc = expt_store_nomem(err);
	else
		rc = rc == SQLITE_DONE ? 0
				       : expt_store_dberr(st, err, "cannot read the active runs");
	sqlite3_finalize(s);
	for (i = 0; !rc && i < nlost; i++) {
		struct expt_transition t = EXPT_TRANSITION_INIT;
		char *msg;

		/* The engine may still run it, or know how it ended. */
		if (ask && ask(lost[i].run_id, payload))
			continue;
		if (lost[i].pid <= 0)
			continue;
		msg = expt_asprintf("the expt process supervising this run (pid %d) exited"
				    " without recording an end",
				    lost[i].pid);
		if (!msg) {
			rc = expt_store_nomem(err);
			break;
		}
		/* Between our read and the move the run may have ended, or a live supervisor may
		 * have taken it over: the lifecycle checks both under its lock. */
		t.from = EXPT_RUN_ACTIVE;
		t.to = EXPT_RUN_FAILED;
		t.reason = t.event = "supervisor-lost";
		t.message = msg;
		t.if_supervisor_pid = lost[i].pid;
		t.if_supervisor_start = lost[i].start;
		rc = expt_lifecycle_move(st, lost[i].run_id, &t, NULL, err);
		if (rc == EXPT_ECONFLICT || rc == EXPT_ENOTFOUND) {
			expt_err_clear(err);
			rc = 0;
		}
		free(msg);
	}
	for (i = 0; i < nlost; i++)
		free(lost[i].run_id);
	free(lost);
	return rc;
}
