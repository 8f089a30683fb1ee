/* Finding runs whose supervising expt process died without recording an end (killed, machine
 * rebooted), so that no run stays "running" forever. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

struct lost {
	int64_t id;
	int pid;
	int64_t start;
};

int expt_store_reconcile(struct expt_store *st, struct expt_err *err)
{
	/* "status < 2" matches the partial index runs_active: with nothing running this reads an
	 * empty index and no run row. */
	static const char sql_active[] = "SELECT id, supervisor_pid, supervisor_start, host"
					 " FROM runs WHERE status < 2";
	static const char sql_mark[] =
	    "UPDATE runs SET status = 3, reason = 'supervisor-lost', message = ?2, ended_ms = ?3"
	    " WHERE id = ?1 AND status < 2 AND supervisor_pid = ?4 AND supervisor_start = ?5";
	static const char sql_event[] = "INSERT INTO events(run, time_ms, kind, message)"
					" VALUES (?1, ?2, 'supervisor-lost', ?3)";
	sqlite3_stmt *s = NULL, *mark = NULL, *ev = NULL;
	struct lost *lost = NULL;
	size_t nlost = 0, cap = 0, i;
	int64_t now;
	int rc;

	if ((rc = expt_store_prepare(st, sql_active, &s, err)))
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int pid = sqlite3_column_int(s, 1);
		int64_t start = sqlite3_column_int64(s, 2);
		const char *host = (const char *)sqlite3_column_text(s, 3);

		/* pid 0: no local supervisor (by design); another host: its pids mean nothing
		 * here. */
		if (pid <= 0 || (host && *host && *st->host && strcmp(host, st->host)))
			continue;
		if (!supervisor_gone(pid, start))
			continue;
		EXPT_ALLOC_GROW(lost, nlost + 1, cap);
		lost[nlost].id = sqlite3_column_int64(s, 0);
		lost[nlost].pid = pid;
		lost[nlost].start = start;
		nlost++;
	}
	if (rc != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot read the active runs");
		goto out;
	}
	rc = 0;
	if (!nlost)
		goto out;

	if ((rc = expt_store_prepare(st, sql_mark, &mark, err)) ||
	    (rc = expt_store_prepare(st, sql_event, &ev, err)) || (rc = expt_store_begin(st, err)))
		goto out;
	now = expt_now_ms();
	for (i = 0; i < nlost; i++) {
		char *msg = expt_xasprintf("the expt process supervising this run (pid %d) exited"
					   " without recording an end",
					   lost[i].pid);

		/* Matched again on status and supervisor: between our read and this lock the run
		 * may have ended or been taken over by a live supervisor. */
		sqlite3_reset(mark);
		sqlite3_bind_int64(mark, 1, lost[i].id);
		sqlite3_bind_text(mark, 2, msg, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(mark, 3, now);
		sqlite3_bind_int(mark, 4, lost[i].pid);
		sqlite3_bind_int64(mark, 5, lost[i].start);
		rc = sqlite3_step(mark) == SQLITE_DONE ? 0 : EXPT_ESTORE;
		if (!rc && sqlite3_changes(st->db)) {
			sqlite3_reset(ev);
			sqlite3_bind_int64(ev, 1, lost[i].id);
			sqlite3_bind_int64(ev, 2, now);
			sqlite3_bind_text(ev, 3, msg, -1, SQLITE_TRANSIENT);
			rc = sqlite3_step(ev) == SQLITE_DONE ? 0 : EXPT_ESTORE;
		}
		free(msg);
		if (rc) {
			expt_store_dberr(st, err, "cannot mark a lost run");
			expt_store_rollback(st);
			goto out;
		}
	}
	rc = expt_store_commit(st, err);
out:
	free(lost);
	sqlite3_finalize(s);
	sqlite3_finalize(mark);
	sqlite3_finalize(ev);
	return rc;
}
