/* Unit tests of the embedded store: locating, schema and migrations, run ids (sequence, no reuse,
 * shortening, concurrent processes), lifecycle, listing, reconcile and deletion. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/lifecycle.h"
#include "store/store.h"
#include "util/util.h"

struct fx {
	char dir[64];
	char *db;
	struct expt_store *st;
};

static int setup(void **state)
{
	struct fx *f = expt_xcalloc(1, sizeof(*f));
	struct expt_err err = EXPT_ERR_INIT;

	snprintf(f->dir, sizeof(f->dir), "/tmp/expt-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->db = expt_xasprintf("%s/.expt/expt.db", f->dir);
	char *dot = expt_xasprintf("%s/.expt", f->dir);
	expt_mkdirs(dot, &err);
	free(dot);
	if (expt_store_open(&f->st, f->db, &err)) {
		fprintf(stderr, "open: %s\n", err.msg);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;

	expt_store_close(f->st);
	expt_remove_tree(f->dir, &err);
	free(f->db);
	free(f);
	return 0;
}

/* Runs one SQL query on a separate raw connection and returns the first column as an integer. */
/* The moves launch makes, through the lifecycle. */
static int mark_running(struct expt_store *st, const char *run_id, int pid, int attempt,
			int sup_pid, int64_t sup_start, const char *gpus, int64_t ms,
			struct expt_err *err)
{
	struct expt_transition t = EXPT_TRANSITION_INIT;

	t.from = EXPT_RUN_ACTIVE;
	t.to = EXPT_RUN_RUNNING;
	t.pid = pid;
	t.attempt = attempt;
	t.supervisor_pid = sup_pid;
	t.supervisor_start = sup_start;
	t.gpus = gpus ? gpus : "";
	t.time_ms = ms;
	return expt_lifecycle_move(st, run_id, &t, NULL, err);
}

static int mark_done(struct expt_store *st, const char *run_id, enum expt_run_status to,
		     int exit_code, int sig, const char *reason, const char *message, int64_t ms,
		     struct expt_err *err)
{
	struct expt_transition t = EXPT_TRANSITION_INIT;

	t.from = EXPT_RUN_ACTIVE;
	t.to = to;
	t.exit_code = exit_code;
	t.signal = sig;
	t.reason = reason;
	t.message = message;
	t.time_ms = ms;
	if (!expt_run_status_done(to))
		return expt_err_set(err, EXPT_EUSAGE, "not an end");
	return expt_lifecycle_move(st, run_id, &t, NULL, err);
}

static int64_t raw_int(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(h));
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

static void raw_exec(const char *db, const char *sql)
{
	sqlite3 *h = NULL;

	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	if (sqlite3_exec(h, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(h));
	sqlite3_close(h);
}

static void create(struct expt_store *st, const char *exp, size_t n, struct expt_run_list *out)
{
	struct expt_run_new runs[16] = {{0}};
	struct expt_err err = EXPT_ERR_INIT;
	char params[16][64];
	size_t i;

	assert_true(n <= 16);
	for (i = 0; i < n; i++) {
		snprintf(params[i], sizeof(params[i]), "{\"i\":%zu,\"lr\":0.1}", i);
		runs[i].params_json = params[i];
	}
	if (expt_store_create_runs(st, exp, "local", "{\"name\":\"x\"}", runs, n, out, &err))
		fail_msg("create_runs: %s", err.msg);
}

static int is_dns_label(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

static void test_status_names(void **state)
{
	enum expt_run_status s;
	int i;

	(void)state;
	for (i = 0; i < EXPT_RUN_NSTATUS; i++) {
		assert_int_equal(expt_run_status_parse(expt_run_status_name(i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_string_equal(expt_run_status_name(EXPT_RUN_SUCCEEDED), "succeeded");
	assert_int_not_equal(expt_run_status_parse("done", &s), 0);
	assert_int_not_equal(expt_run_status_parse(NULL, &s), 0);
	assert_false(expt_run_status_done(EXPT_RUN_QUEUED));
	assert_false(expt_run_status_done(EXPT_RUN_RUNNING));
	assert_true(expt_run_status_done(EXPT_RUN_SUCCEEDED));
	assert_true(expt_run_status_done(EXPT_RUN_FAILED));
	assert_true(expt_run_status_done(EXPT_RUN_STOPPED));
	assert_false(expt_run_status_done(EXPT_RUN_PENDING));
	assert_string_equal(expt_run_status_name(EXPT_RUN_PENDING), "pending");
}

/* Every move is a compare-and-set: an ended run never moves again, and the caller learns the
 * state it found. */
static void test_lifecycle_cas(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_transition t = EXPT_TRANSITION_INIT;
	struct expt_observed o;
	struct expt_run_list l = {0};
	struct expt_run_rec r;
	struct expt_kv_rows ev = {0};
	enum expt_run_status cur;

	assert_int_equal(expt_store_create_runs(f->st, "cas", "local", NULL,
						(struct expt_run_new[]){{0}, {0}, {0}}, 3, &l,
						&err),
			 0);
	expt_run_list_release(&l);
	/* queued -> pending -> running, with the engine's name and node */
	t.from = EXPT_RUN_BIT(EXPT_RUN_QUEUED);
	t.to = EXPT_RUN_PENDING;
	t.backend_ref = "job/cas-1";
	t.message = "pulling image";
	assert_int_equal(expt_lifecycle_move(f->st, "cas-1", &t, &cur, &err), 0);
	assert_int_equal(cur, EXPT_RUN_PENDING);
	/* the same move again finds it pending: refused, nothing written */
	assert_int_equal(expt_lifecycle_move(f->st, "cas-1", &t, &cur, &err), EXPT_ECONFLICT);
	assert_int_equal(cur, EXPT_RUN_PENDING);
	assert_non_null(strstr(err.msg, "is pending"));
	memset(&t, 0, sizeof(t));
	t = (struct expt_transition)EXPT_TRANSITION_INIT;
	t.from = EXPT_RUN_ACTIVE;
	t.to = EXPT_RUN_RUNNING;
	t.attempt = 1;
	t.node = "node-a";
	t.event = "started";
	assert_int_equal(expt_lifecycle_move(f->st, "cas-1", &t, NULL, &err), 0);
	/* stop wins; the engine's later report of success is refused */
	assert_int_equal(expt_lifecycle_stop(f->st, "cas-1", "stopped by test", &cur, &err), 0);
	memset(&o, 0, sizeof(o));
	o.phase = EXPT_OBS_EXITED;
	o.final = 1;
	assert_int_equal(expt_lifecycle_end(f->st, "cas-1", &o, &cur, &err), EXPT_ECONFLICT);
	assert_int_equal(cur, EXPT_RUN_STOPPED);
	assert_int_equal(expt_lifecycle_stop(f->st, "cas-1", "again", &cur, &err), EXPT_ECONFLICT);
	assert_int_equal(expt_store_get_run(f->st, "cas-1", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_STOPPED);
	assert_string_equal(r.reason, "stopped");
	assert_string_equal(r.backend_ref, "job/cas-1");
	assert_string_equal(r.node, "node-a");
	expt_run_rec_release(&r);
	/* one event per move that happened, none for the refused ones */
	assert_int_equal(expt_store_get_events(f->st, "cas-1", &ev, &err), 0);
	assert_int_equal(ev.n, 2);
	assert_string_equal(ev.keys[0], "started");
	assert_string_equal(ev.keys[1], "stopped");
	expt_kv_rows_release(&ev);
	/* the outcome mapping */
	o.exit_code = 0;
	assert_int_equal(expt_lifecycle_end(f->st, "cas-2", &o, &cur, &err), 0);
	assert_int_equal(cur, EXPT_RUN_SUCCEEDED);
	o.oom = 1;
	o.exit_code = -1;
	o.signal = 9;
	snprintf(o.message, sizeof(o.message), "OOMKilled");
	assert_int_equal(expt_lifecycle_end(f->st, "cas-3", &o, &cur, &err), 0);
	assert_int_equal(expt_store_get_run(f->st, "cas-3", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	assert_string_equal(r.reason, "oom");
	assert_string_equal(r.message, "OOMKilled");
	assert_int_equal(r.signal, 9);
	expt_run_rec_release(&r);
	assert_int_equal(expt_lifecycle_stop(f->st, "nope-1", "x", &cur, &err), EXPT_ENOTFOUND);
}

/* `expt stop` and the engine's report race from two processes over many runs: each run ends
 * exactly once, as stopped or as succeeded, never both, with exactly one end event. */
#define RACE_RUNS 200
static void test_lifecycle_race(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_filter flt = {.experiment = "race"};
	struct expt_run_new *news = expt_xcalloc(RACE_RUNS, sizeof(*news));
	struct expt_run_list l = {0};
	pid_t kids[2];
	size_t nstopped = 0, nsucceeded = 0;

	assert_int_equal(
	    expt_store_create_runs(f->st, "race", "local", NULL, news, RACE_RUNS, &l, &err), 0);
	expt_run_list_release(&l);
	free(news);
	expt_store_close(f->st);
	f->st = NULL;
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			struct expt_store *st = NULL;
			struct expt_err cerr = EXPT_ERR_INIT;
			int bad = 0;

			if (expt_store_open(&st, f->db, &cerr))
				_exit(2);
			for (int i = 1; i <= RACE_RUNS && !bad; i++) {
				char id[32];
				int rc;
				/* the two walk the runs in opposite orders, to meet in the middle
				 */
				snprintf(id, sizeof(id), "race-%d", k ? i : RACE_RUNS + 1 - i);
				if (k) {
					struct expt_observed o;
					memset(&o, 0, sizeof(o));
					o.phase = EXPT_OBS_EXITED;
					o.final = 1;
					rc = expt_lifecycle_end(st, id, &o, NULL, &cerr);
				} else {
					rc = expt_lifecycle_stop(st, id, "race", NULL, &cerr);
				}
				bad = rc && rc != EXPT_ECONFLICT;
			}
			expt_store_close(st);
			_exit(bad);
		}
	}
	for (int k = 0; k < 2; k++) {
		int status = 0;
		assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(expt_store_open(&f->st, f->db, &err), 0);
	assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
	assert_int_equal(l.n, RACE_RUNS);
	for (size_t i = 0; i < l.n; i++) {
		nstopped += l.v[i].status == EXPT_RUN_STOPPED;
		nsucceeded += l.v[i].status == EXPT_RUN_SUCCEEDED;
	}
	assert_int_equal(nstopped + nsucceeded, RACE_RUNS);
	expt_run_list_release(&l);
	/* exactly one end event per run, and it matches the status */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events"), RACE_RUNS);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM runs r JOIN events e ON e.run = r.id"
					" WHERE (r.status = 4) <> (e.kind = 'stopped')"),
			 0);
}

/* A store written by the previous release (schema v1, tests/unit/data/store-v1.sql) opens,
 * is migrated in place, and keeps everything. */
static void test_migrate_v1(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_rec r;
	struct expt_metric_summaries ms = {0};
	struct expt_buf sql = EXPT_BUF_INIT;
	char *db = expt_xasprintf("%s/v1.db", f->dir), *path;

	path = getenv("EXPT_SOURCE_DIR")
		   ? expt_xasprintf("%s/tests/unit/data/store-v1.sql", getenv("EXPT_SOURCE_DIR"))
		   : expt_xstrdup("data/store-v1.sql");
	assert_int_equal(expt_read_file(path, &sql, &err), 0);
	raw_exec(db, sql.buf);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
	expt_store_close(f->st);
	assert_int_equal(expt_store_open(&f->st, db, &err), 0);
	assert_int_equal(expt_store_schema_version(f->st), EXPT_STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), EXPT_STORE_SCHEMA_VERSION);
	assert_int_equal(expt_store_get_run(f->st, "legacy-2", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	assert_int_equal(r.exit_code, 3);
	assert_string_equal(r.reason, "exit");
	assert_non_null(r.backend_ref);
	assert_true(!strncmp(r.backend_ref, "pid:", 4));
	assert_non_null(r.node);
	assert_int_equal(r.ingested, 0);
	expt_run_rec_release(&r);
	assert_int_equal(expt_store_metric_summaries(f->st, "legacy-1", &ms, &err), 0);
	assert_int_equal(ms.n, 1);
	assert_string_equal(ms.v[0].key, "loss");
	assert_true(ms.v[0].last == 0.5);
	expt_metric_summaries_release(&ms);
	/* the migrated store takes new runs after the old ones, and lifecycle moves */
	{
		struct expt_run_list l = {0};
		struct expt_run_new one = {0};
		assert_int_equal(
		    expt_store_create_runs(f->st, "legacy", "local", NULL, &one, 1, &l, &err), 0);
		assert_string_equal(l.v[0].run_id, "legacy-3");
		expt_run_list_release(&l);
		assert_int_equal(expt_lifecycle_stop(f->st, "legacy-3", "x", NULL, &err), 0);
	}
	/* the active-runs index was rebuilt for the pending state */
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_master WHERE name = "
				     "'runs_active' AND sql LIKE '%status IN (0, 1, 5)%'"),
			 1);
	expt_buf_release(&sql);
	free(path);
	free(db);
}

static void test_run_id_prefix(void **state)
{
	static const struct {
		const char *name, *want;
	} cases[] = {
	    {"mnist", "mnist"},
	    {"a-b-c", "a-b-c"},
	    /* 52 chars: the longest kept as is */
	    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
	    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx-66429597"},
	    {"a-very-long-experiment-name-for-the-image-classification-baseline",
	     "a-very-long-experiment-name-for-the-image-c-f43e7c21"},
	    {"My_Experiment.v2", "my-experiment-v2-df288e87"},
	    {"___", "045a3b34"},
	};
	char out[EXPT_RUN_PREFIX_MAX + 1];
	struct expt_err err = EXPT_ERR_INIT;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char id[80];

		assert_int_equal(expt_store_run_id_prefix(cases[i].name, out, sizeof(out), &err),
				 0);
		assert_string_equal(out, cases[i].want);
		snprintf(id, sizeof(id), "%s-%d", out, 2147483647);
		assert_true(is_dns_label(id));
	}
	assert_int_equal(expt_store_run_id_prefix("", out, sizeof(out), &err), EXPT_EUSAGE);
}

static void test_locate(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	char *db = NULL, *proj = NULL, *sub, *home, *want;
	char real[4096];
	const char *old = getenv("EXPT_HOME");
	char *saved = old ? expt_xstrdup(old) : NULL;

	unsetenv("EXPT_HOME");
	assert_non_null(realpath(f->dir, real));
	sub = expt_xasprintf("%s/a/b/c", f->dir);
	assert_int_equal(expt_mkdirs(sub, &err), 0);

	/* walks up from a subdirectory to the store of the fixture */
	assert_int_equal(expt_store_locate(sub, 0, &db, &proj, &err), 0);
	want = expt_xasprintf("%s/.expt/expt.db", real);
	assert_string_equal(db, want);
	assert_string_equal(proj, real);
	free(want);
	free(db);
	free(proj);

	/* EXPT_HOME wins; absent and create == 0: not found; create: made there */
	home = expt_xasprintf("%s/home/.expt", f->dir);
	setenv("EXPT_HOME", home, 1);
	assert_int_equal(expt_store_locate(sub, 0, &db, &proj, &err), EXPT_ENOTFOUND);
	assert_null(db);
	assert_int_equal(expt_store_locate(sub, 1, &db, &proj, &err), 0);
	want = expt_xasprintf("%s/expt.db", home);
	assert_string_equal(db, want);
	free(want);
	want = expt_xasprintf("%s/home", f->dir);
	assert_string_equal(proj, want);
	free(want);
	assert_true(expt_is_dir(home));
	free(db);
	free(proj);
	unsetenv("EXPT_HOME");

	/* create in the start dir when nothing is found above it: only checkable when no store
	 * exists above the temp dir */
	if (!expt_path_exists("/tmp/.expt/expt.db") && !expt_path_exists("/.expt/expt.db")) {
		char top[64], *other, *rother;

		snprintf(top, sizeof(top), "/tmp/expt-test-locate-XXXXXX");
		assert_non_null(mkdtemp(top));
		other = expt_xasprintf("%s/x", top);
		assert_int_equal(expt_mkdirs(other, &err), 0);
		assert_int_equal(expt_store_locate(other, 0, &db, &proj, &err), EXPT_ENOTFOUND);
		assert_non_null(strstr(err.msg, "no .expt/expt.db"));
		assert_int_equal(expt_store_locate(other, 1, &db, &proj, &err), 0);
		rother = realpath(other, NULL);
		want = expt_xasprintf("%s/.expt/expt.db", rother);
		assert_string_equal(db, want);
		assert_string_equal(proj, rother);
		free(want);
		free(rother);
		free(db);
		free(proj);
		free(other);
		assert_int_equal(expt_remove_tree(top, &err), 0);
	}
	free(home);
	free(sub);
	if (saved)
		setenv("EXPT_HOME", saved, 1);
	free(saved);
}

static void test_schema_and_reopen(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_run_rec r;
	sqlite3 *h;
	sqlite3_stmt *s;

	assert_int_equal(expt_store_schema_version(f->st), EXPT_STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), EXPT_STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->db,
				 "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
				 " AND name IN ('experiments', 'runs', 'params', 'metric_keys',"
				 " 'metric_chunks', 'metric_summaries', 'tags', 'artifacts',"
				 " 'events', 'specs', 'run_env')"),
			 11);
	assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(h);

	create(f->st, "mnist", 2, &l);
	expt_run_list_release(&l);
	expt_store_close(f->st);
	f->st = NULL;
	assert_int_equal(expt_store_open(&f->st, f->db, &err), 0);
	assert_int_equal(expt_store_schema_version(f->st), EXPT_STORE_SCHEMA_VERSION);
	assert_int_equal(expt_store_get_run(f->st, "mnist-2", &r, &err), 0);
	assert_string_equal(r.experiment, "mnist");
	expt_run_rec_release(&r);
}

static void test_newer_schema_refused(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_store *st = NULL;
	char want[1024];

	expt_store_close(f->st);
	f->st = NULL;
	raw_exec(f->db, "PRAGMA user_version = 7");
	assert_int_equal(expt_store_open(&st, f->db, &err), EXPT_ESTORE);
	assert_null(st);
	snprintf(want, sizeof(want),
		 "store %s has schema version 7, this expt understands up to %d: upgrade expt",
		 f->db, EXPT_STORE_SCHEMA_VERSION);
	assert_string_equal(err.msg, want);
	/* the refused store is left as it was */
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 7);
}

static void test_not_a_database(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_store *st = NULL;
	char *path = expt_xasprintf("%s/junk.db", f->dir);
	static const char junk[] = "this is not an SQLite database, just some text long enough "
				   "to fill the header of one.................................";

	assert_int_equal(expt_write_file(path, junk, sizeof(junk), &err), 0);
	assert_int_equal(expt_store_open(&st, path, &err), EXPT_ESTORE);
	assert_null(st);
	assert_non_null(strstr(err.msg, path));
	free(path);
}

static void test_id_allocation(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	char real[4096], *want;

	create(f->st, "mnist", 3, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].run_id, "mnist-1");
	assert_string_equal(l.v[2].run_id, "mnist-3");
	assert_int_equal(l.v[2].seq, 3);
	assert_int_equal(l.v[0].status, EXPT_RUN_QUEUED);
	assert_int_equal(l.v[0].exit_code, -1);
	assert_int_equal(l.v[0].supervisor_pid, getpid());
	assert_int_equal(l.v[0].supervisor_start, expt_proc_start_time(getpid()));
	assert_string_equal(l.v[1].params_json, "{\"i\":1,\"lr\":0.1}");
	assert_non_null(realpath(f->dir, real));
	want = expt_xasprintf("%s/.expt/runs/mnist-3/output", f->dir);
	assert_string_equal(l.v[2].output_dir, want);
	free(want);
	want = expt_xasprintf("%s/.expt/runs/mnist-3/logs", f->dir);
	assert_string_equal(l.v[2].log_dir, want);
	free(want);

	create(f->st, "mnist", 2, &l); /* appends */
	assert_int_equal(l.n, 5);
	assert_string_equal(l.v[3].run_id, "mnist-4");
	assert_string_equal(l.v[4].run_id, "mnist-5");

	/* deleting the newest run does not give its number back */
	assert_int_equal(expt_store_delete_run(f->st, "mnist-5", &err), 0);
	assert_int_equal(expt_store_delete_run(f->st, "mnist-4", &err), 0);
	expt_run_list_release(&l);
	create(f->st, "mnist", 1, &l);
	assert_string_equal(l.v[0].run_id, "mnist-6");
	expt_run_list_release(&l);

	/* another experiment counts from 1 */
	create(f->st, "cifar", 1, &l);
	assert_string_equal(l.v[0].run_id, "cifar-1");
	expt_run_list_release(&l);

	/* n == 0 creates nothing; bad params refuse the whole batch */
	assert_int_equal(expt_store_create_runs(f->st, "mnist", "local", NULL, NULL, 0, &l, &err),
			 0);
	assert_int_equal(l.n, 0);
	{
		struct expt_run_new bad[2] = {{.params_json = "{}"}, {.params_json = "[1]"}};
		assert_int_equal(
		    expt_store_create_runs(f->st, "mnist", "local", NULL, bad, 2, &l, &err),
		    EXPT_EUSAGE);
		assert_int_equal(l.n, 0);
	}
	create(f->st, "mnist", 1, &l);
	assert_string_equal(l.v[0].run_id, "mnist-7");
	expt_run_list_release(&l);
}

static void test_long_name(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_experiment_list el = {0};
	struct expt_run_list l = {0};
	const char *name = "a-very-long-experiment-name-for-the-image-classification-baseline";
	struct expt_run_rec r;

	create(f->st, name, 2, &l);
	assert_string_equal(l.v[1].run_id,
			    "a-very-long-experiment-name-for-the-image-c-f43e7c21-2");
	assert_true(is_dns_label(l.v[1].run_id));
	assert_string_equal(l.v[1].experiment, name);
	expt_run_list_release(&l);
	assert_int_equal(expt_store_get_run(f->st,
					    "a-very-long-experiment-name-for-the-image-c-"
					    "f43e7c21-1",
					    &r, &err),
			 0);
	assert_string_equal(r.experiment, name);
	expt_run_rec_release(&r);
	assert_int_equal(expt_store_list_experiments(f->st, &el, &err), 0);
	assert_int_equal(el.n, 1);
	assert_string_equal(el.v[0].name, name);
	assert_int_equal(el.v[0].next_seq, 3);
	expt_experiment_list_release(&el);
}

#define NCHILD 20
#define PER_CHILD 5

static void test_concurrent_ids(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_filter flt = {.experiment = "conc"};
	struct expt_run_list l = {0};
	char *db = expt_xasprintf("%s/fresh/expt.db", f->dir), *dir;
	int seen[NCHILD * PER_CHILD + 1] = {0};
	pid_t kids[NCHILD];
	size_t i;

	/* A store nobody has created yet: the children race to create it too. */
	dir = expt_xasprintf("%s/fresh", f->dir);
	assert_int_equal(expt_mkdirs(dir, &err), 0);
	free(dir);
	expt_store_close(f->st); /* no connection may cross fork() */
	f->st = NULL;
	for (i = 0; i < NCHILD; i++) {
		kids[i] = fork();
		assert_true(kids[i] >= 0);
		if (kids[i] == 0) {
			struct expt_store *st = NULL;
			struct expt_err cerr = EXPT_ERR_INIT;
			struct expt_run_new one = {.params_json = "{\"x\":1}"};
			int k, rc = 0;

			if (expt_store_open(&st, db, &cerr)) {
				fprintf(stderr, "child open: %s\n", cerr.msg);
				_exit(2);
			}
			for (k = 0; k < PER_CHILD && !rc; k++) {
				struct expt_run_list cl = {0};
				rc = expt_store_create_runs(st, "conc", "local", NULL, &one, 1, &cl,
							    &cerr);
				expt_run_list_release(&cl);
			}
			if (rc)
				fprintf(stderr, "child create: %s\n", cerr.msg);
			expt_store_close(st);
			_exit(rc ? 1 : 0);
		}
	}
	for (i = 0; i < NCHILD; i++) {
		int status = 0;
		assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(expt_store_open(&f->st, db, &err), 0);
	assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
	assert_int_equal(l.n, NCHILD * PER_CHILD);
	for (i = 0; i < l.n; i++) {
		char want[32];
		assert_true(l.v[i].seq >= 1 && l.v[i].seq <= NCHILD * PER_CHILD);
		assert_int_equal(seen[l.v[i].seq], 0);
		seen[l.v[i].seq] = 1;
		snprintf(want, sizeof(want), "conc-%lld", (long long)l.v[i].seq);
		assert_string_equal(l.v[i].run_id, want);
	}
	expt_run_list_release(&l);
	assert_int_equal(raw_int(db, "SELECT next_seq FROM experiments WHERE name = 'conc'"),
			 NCHILD * PER_CHILD + 1);
	free(db);
}

static void test_lifecycle_and_listing(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_experiment_list el = {0};
	struct expt_run_rec r;
	int me = getpid();
	int64_t me_start = expt_proc_start_time(me);

	create(f->st, "mnist", 4, &l);
	expt_run_list_release(&l);
	create(f->st, "cifar", 2, &l);
	expt_run_list_release(&l);

	assert_int_equal(expt_store_set_argv_env(f->st, "mnist-1", "[\"python\",\"train.py\"]",
						 "{\"EXPT_RUN_ID\":\"mnist-1\"}", &err),
			 0);
	assert_int_equal(mark_running(f->st, "mnist-1", 4242, 1, me, me_start, "0,1", 1000, &err),
			 0);
	assert_int_equal(mark_running(f->st, "mnist-2", 4243, 1, me, me_start, NULL, 1001, &err),
			 0);
	assert_int_equal(mark_done(f->st, "mnist-2", EXPT_RUN_FAILED, 3, 0, "exit",
				   "exited with code 3", 2001, &err),
			 0);
	assert_int_equal(
	    mark_done(f->st, "mnist-3", EXPT_RUN_SUCCEEDED, 0, 0, "exit", NULL, 2002, &err), 0);
	assert_int_equal(
	    mark_done(f->st, "cifar-1", EXPT_RUN_STOPPED, -1, 15, "stopped", NULL, 2003, &err), 0);

	/* unknown runs and impossible ends are errors */
	assert_int_equal(mark_done(f->st, "mnist-99", EXPT_RUN_FAILED, 1, 0, NULL, NULL, 1, &err),
			 EXPT_ENOTFOUND);
	assert_string_equal(err.msg, "no such run: mnist-99");
	assert_int_not_equal(
	    mark_done(f->st, "mnist-4", EXPT_RUN_RUNNING, 0, 0, NULL, NULL, 1, &err), 0);
	assert_int_equal(mark_running(f->st, "nope-1", 1, 1, 1, 1, NULL, 1, &err), EXPT_ENOTFOUND);
	assert_int_equal(expt_store_set_argv_env(f->st, "nope-1", "[]", "{}", &err),
			 EXPT_ENOTFOUND);
	assert_int_equal(expt_store_get_run(f->st, "nope-1", &r, &err), EXPT_ENOTFOUND);

	assert_int_equal(expt_store_get_run(f->st, "mnist-1", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_RUNNING);
	assert_int_equal(r.pid, 4242);
	assert_int_equal(r.attempt, 1);
	assert_int_equal(r.started_ms, 1000);
	assert_int_equal(r.ended_ms, 0);
	assert_string_equal(r.gpus, "0,1");
	assert_string_equal(r.argv_json, "[\"python\",\"train.py\"]");
	assert_string_equal(r.env_json, "{\"EXPT_RUN_ID\":\"mnist-1\"}");
	assert_string_equal(r.spec_json, "{\"name\":\"x\"}");
	assert_string_equal(r.backend, "local");
	assert_null(r.variant);
	assert_null(r.reason);
	expt_run_rec_release(&r);

	assert_int_equal(expt_store_get_run(f->st, "mnist-2", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	assert_int_equal(r.exit_code, 3);
	assert_string_equal(r.reason, "exit");
	assert_string_equal(r.message, "exited with code 3");
	assert_int_equal(r.ended_ms, 2001);
	expt_run_rec_release(&r);

	/* argv alone: env kept */
	assert_int_equal(expt_store_set_argv_env(f->st, "mnist-1", "[\"x\"]", NULL, &err), 0);
	assert_int_equal(expt_store_get_run(f->st, "mnist-1", &r, &err), 0);
	assert_string_equal(r.argv_json, "[\"x\"]");
	assert_string_equal(r.env_json, "{\"EXPT_RUN_ID\":\"mnist-1\"}");
	expt_run_rec_release(&r);

	/* all runs, oldest first, without specs */
	{
		struct expt_run_filter flt = {0};
		assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
		assert_int_equal(l.n, 6);
		assert_string_equal(l.v[0].run_id, "mnist-1");
		assert_string_equal(l.v[5].run_id, "cifar-2");
		assert_null(l.v[0].spec_json);
		assert_null(l.v[0].env_json);
		assert_non_null(l.v[0].argv_json);
		expt_run_list_release(&l);
	}
	/* newest first with a limit, specs included */
	{
		struct expt_run_filter flt = {
		    .experiment = "mnist", .limit = 2, .include_specs = 1};
		assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
		assert_int_equal(l.n, 2);
		assert_string_equal(l.v[0].run_id, "mnist-4");
		assert_string_equal(l.v[1].run_id, "mnist-3");
		assert_string_equal(l.v[0].spec_json, "{\"name\":\"x\"}");
		expt_run_list_release(&l);
	}
	/* status masks */
	{
		struct expt_run_filter flt = {.status_mask =
						  (1 << EXPT_RUN_QUEUED) | (1 << EXPT_RUN_RUNNING)};
		assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
		assert_int_equal(l.n, 3); /* mnist-1 running, mnist-4 and cifar-2 queued */
		assert_string_equal(l.v[0].run_id, "mnist-1");
		assert_string_equal(l.v[1].run_id, "mnist-4");
		assert_string_equal(l.v[2].run_id, "cifar-2");
		expt_run_list_release(&l);
		flt.status_mask = 1 << EXPT_RUN_FAILED;
		flt.experiment = "mnist";
		assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
		assert_int_equal(l.n, 1);
		assert_string_equal(l.v[0].run_id, "mnist-2");
		expt_run_list_release(&l);
		flt.experiment = "none";
		assert_int_equal(expt_store_list_runs(f->st, &flt, &l, &err), 0);
		assert_int_equal(l.n, 0);
	}
	assert_int_equal(expt_store_list_runs(f->st, NULL, &l, &err), 0);
	assert_int_equal(l.n, 6);
	expt_run_list_release(&l);

	assert_int_equal(expt_store_list_experiments(f->st, &el, &err), 0);
	assert_int_equal(el.n, 2);
	/* cifar was created last: newest activity first */
	assert_string_equal(el.v[0].name, "cifar");
	assert_int_equal(el.v[0].nruns, 2);
	assert_int_equal(el.v[0].nrunning, 0);
	assert_string_equal(el.v[1].name, "mnist");
	assert_int_equal(el.v[1].nruns, 4);
	assert_int_equal(el.v[1].nrunning, 1);
	assert_int_equal(el.v[1].nsucceeded, 1);
	assert_int_equal(el.v[1].nfailed, 1);
	assert_int_equal(el.v[1].next_seq, 5);
	expt_experiment_list_release(&el);
}

static void test_params_tags_artifacts_events(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_kv_rows kv = {0};
	struct expt_run_new one = {
	    .params_json = "{\"lr\":0.01,\"opt\":\"adam\",\"layers\":[1,2],\"on\":true}",
	    .variant = "big",
	    .retry_of = "mnist-0"};
	struct expt_run_rec r;

	assert_int_equal(expt_store_create_runs(f->st, "mnist", "local", NULL, &one, 1, &l, &err),
			 0);
	expt_run_list_release(&l);
	assert_int_equal(expt_store_get_run(f->st, "mnist-1", &r, &err), 0);
	assert_string_equal(r.variant, "big");
	assert_string_equal(r.retry_of, "mnist-0");
	assert_null(r.spec_json);
	expt_run_rec_release(&r);

	assert_int_equal(expt_store_get_params(f->st, "mnist-1", &kv, &err), 0);
	assert_int_equal(kv.n, 4);
	assert_string_equal(kv.keys[0], "layers");
	assert_string_equal(kv.values[0], "[1,2]");
	assert_string_equal(kv.keys[1], "lr");
	assert_string_equal(kv.values[1], "0.01");
	assert_string_equal(kv.keys[2], "on");
	assert_string_equal(kv.values[2], "true");
	assert_string_equal(kv.keys[3], "opt");
	assert_string_equal(kv.values[3], "adam");
	expt_kv_rows_release(&kv);
	assert_int_equal(expt_store_set_param(f->st, "mnist-1", "lr", "0.5", &err), 0);
	assert_int_equal(expt_store_set_param(f->st, "mnist-1", "seed", "7", &err), 0);
	assert_int_equal(expt_store_get_params(f->st, "mnist-1", &kv, &err), 0);
	assert_int_equal(kv.n, 5);
	assert_string_equal(kv.values[1], "0.5");
	assert_string_equal(kv.keys[4], "seed");
	expt_kv_rows_release(&kv);

	assert_int_equal(expt_store_set_tag(f->st, "mnist-1", "owner", "ann", &err), 0);
	assert_int_equal(expt_store_set_tag(f->st, "mnist-1", "owner", "bob", &err), 0);
	assert_int_equal(expt_store_set_tag(f->st, "mnist-1", "git", "abc123", &err), 0);
	assert_int_equal(expt_store_get_tags(f->st, "mnist-1", &kv, &err), 0);
	assert_int_equal(kv.n, 2);
	assert_string_equal(kv.keys[0], "git");
	assert_string_equal(kv.keys[1], "owner");
	assert_string_equal(kv.values[1], "bob");
	assert_true(kv.times[1] > 0);
	expt_kv_rows_release(&kv);

	assert_int_equal(expt_store_add_artifact(f->st, "mnist-1", "model.pt", 1234, &err), 0);
	assert_int_equal(expt_store_add_artifact(f->st, "mnist-1", "model.pt", 2048, &err), 0);
	assert_int_equal(expt_store_add_artifact(f->st, "mnist-1", "conf.json", 10, &err), 0);
	assert_int_equal(expt_store_get_artifacts(f->st, "mnist-1", &kv, &err), 0);
	assert_int_equal(kv.n, 2);
	assert_string_equal(kv.keys[0], "conf.json");
	assert_string_equal(kv.keys[1], "model.pt");
	assert_string_equal(kv.values[1], "2048");
	expt_kv_rows_release(&kv);

	assert_int_equal(expt_store_add_event(f->st, "mnist-1", "started", "pid 1", 200, &err), 0);
	assert_int_equal(expt_store_add_event(f->st, "mnist-1", "queued", NULL, 100, &err), 0);
	assert_int_equal(expt_store_add_event(f->st, "mnist-1", "exited", "code 0", 200, &err), 0);
	assert_int_equal(expt_store_get_events(f->st, "mnist-1", &kv, &err), 0);
	assert_int_equal(kv.n, 3);
	assert_string_equal(kv.keys[0], "queued");
	assert_string_equal(kv.values[0], "");
	assert_int_equal(kv.times[0], 100);
	assert_string_equal(kv.keys[1], "started");
	assert_string_equal(kv.keys[2], "exited");
	expt_kv_rows_release(&kv);

	assert_int_equal(expt_store_set_tag(f->st, "nope-1", "a", "b", &err), EXPT_ENOTFOUND);
	assert_int_equal(expt_store_set_tag(f->st, "mnist-1", "", "b", &err), EXPT_EUSAGE);
	assert_int_equal(expt_store_get_events(f->st, "nope-1", &kv, &err), EXPT_ENOTFOUND);
	assert_int_equal(kv.n, 0);
}

/* A child that waits for the parent's go (a closed pipe), then exits. */
static pid_t spawn_waiting_child(int *go)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		while (read(p[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

static void wait_zombie(pid_t pid)
{
	char path[64], buf[512], *p;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 2000; i++) {
		FILE *fp = fopen(path, "r");
		size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
		if (fp)
			fclose(fp);
		buf[n] = '\0';
		p = strrchr(buf, ')');
		if (p && p[1] == ' ' && p[2] == 'Z')
			return;
		usleep(1000);
	}
	fail_msg("child %d did not become a zombie", (int)pid);
}

static void test_reconcile(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_kv_rows kv = {0};
	struct expt_run_rec r;
	int me = getpid(), go, status;
	int64_t me_start = expt_proc_start_time(me), dead_start, zombie_start;
	pid_t dead, zombie;
	char want[256];

	create(f->st, "rc", 7, &l);
	expt_run_list_release(&l);

	/* rc-1: supervisor exited and was reaped */
	dead = spawn_waiting_child(&go);
	dead_start = expt_proc_start_time(dead);
	assert_true(dead_start > 0);
	close(go);
	assert_int_equal(waitpid(dead, &status, 0), dead);
	assert_int_equal(mark_running(f->st, "rc-1", 99999, 1, dead, dead_start, NULL, 10, &err),
			 0);
	/* rc-2: supervised by this live process */
	assert_int_equal(mark_running(f->st, "rc-2", 99998, 1, me, me_start, NULL, 10, &err), 0);
	/* rc-3: our pid but another start time: the pid was reused */
	assert_int_equal(expt_store_mark_supervisor(f->st, "rc-3", me, me_start + 1, &err), 0);
	/* rc-4: supervisor exited, not reaped yet (zombie) */
	zombie = spawn_waiting_child(&go);
	zombie_start = expt_proc_start_time(zombie);
	close(go);
	wait_zombie(zombie);
	assert_int_equal(expt_store_mark_supervisor(f->st, "rc-4", zombie, zombie_start, &err), 0);
	/* rc-5: finished: left alone even though its supervisor is gone */
	assert_int_equal(expt_store_mark_supervisor(f->st, "rc-5", dead, dead_start, &err), 0);
	assert_int_equal(mark_done(f->st, "rc-5", EXPT_RUN_SUCCEEDED, 0, 0, "exit", NULL, 20, &err),
			 0);
	/* rc-6: no local supervisor (pid 0), rc-7: dead supervisor on another host */
	assert_int_equal(expt_store_mark_supervisor(f->st, "rc-6", 0, 0, &err), 0);
	assert_int_equal(expt_store_mark_supervisor(f->st, "rc-7", dead, dead_start, &err), 0);
	raw_exec(f->db, "UPDATE runs SET host = 'elsewhere-host' WHERE run_id = 'rc-7'");

	assert_int_equal(expt_store_reconcile(f->st, &err), 0);

	assert_int_equal(expt_store_get_run(f->st, "rc-1", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	assert_string_equal(r.reason, "supervisor-lost");
	snprintf(want, sizeof(want),
		 "the expt process supervising this run (pid %d) exited without recording an end",
		 (int)dead);
	assert_string_equal(r.message, want);
	assert_true(r.ended_ms > 0);
	expt_run_rec_release(&r);
	assert_int_equal(expt_store_get_events(f->st, "rc-1", &kv, &err), 0);
	assert_int_equal(kv.n, 1);
	assert_string_equal(kv.keys[0], "supervisor-lost");
	expt_kv_rows_release(&kv);

	assert_int_equal(expt_store_get_run(f->st, "rc-2", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_RUNNING);
	assert_null(r.reason);
	expt_run_rec_release(&r);

	assert_int_equal(expt_store_get_run(f->st, "rc-3", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	assert_string_equal(r.reason, "supervisor-lost");
	expt_run_rec_release(&r);

	assert_int_equal(expt_store_get_run(f->st, "rc-4", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_FAILED);
	expt_run_rec_release(&r);
	assert_int_equal(waitpid(zombie, &status, 0), zombie);

	assert_int_equal(expt_store_get_run(f->st, "rc-5", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_SUCCEEDED);
	assert_string_equal(r.reason, "exit");
	expt_run_rec_release(&r);

	assert_int_equal(expt_store_get_run(f->st, "rc-6", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_QUEUED);
	expt_run_rec_release(&r);
	assert_int_equal(expt_store_get_run(f->st, "rc-7", &r, &err), 0);
	assert_int_equal(r.status, EXPT_RUN_QUEUED);
	expt_run_rec_release(&r);

	/* again: nothing more to do, nothing changes */
	assert_int_equal(expt_store_reconcile(f->st, &err), 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM runs WHERE status = 3"), 3);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM events"), 3);
}

static void test_delete_cascade(void **state)
{
	struct fx *f = *state;
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_run_rec r;
	struct expt_metric_point pts[3] = {
	    {"loss", 1.0, 0, 1}, {"acc", 0.5, 0, 1}, {"loss", 0.5, 1, 2}};
	static const char *const tables[] = {"params", "tags",		"artifacts",
					     "events", "metric_chunks", "metric_summaries",
					     "run_env"};
	const char *runs[2] = {"d-1", "d-2"};
	int64_t id1;
	size_t i, k;

	create(f->st, "d", 2, &l);
	id1 = l.v[0].id;
	expt_run_list_release(&l);
	for (k = 0; k < 2; k++) {
		assert_int_equal(expt_store_set_param(f->st, runs[k], "seed", "1", &err), 0);
		assert_int_equal(expt_store_set_tag(f->st, runs[k], "t", "v", &err), 0);
		assert_int_equal(expt_store_add_artifact(f->st, runs[k], "m.pt", 1, &err), 0);
		assert_int_equal(expt_store_add_event(f->st, runs[k], "started", "x", 1, &err), 0);
		assert_int_equal(expt_store_add_metrics(f->st, runs[k], pts, 3, &err), 0);
		assert_int_equal(expt_store_set_argv_env(f->st, runs[k], "[]", "{}", &err), 0);
	}
	assert_int_equal(expt_store_delete_run(f->st, "d-1", &err), 0);
	assert_int_equal(expt_store_get_run(f->st, "d-1", &r, &err), EXPT_ENOTFOUND);
	assert_int_equal(expt_store_delete_run(f->st, "d-1", &err), EXPT_ENOTFOUND);
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE run = %lld", tables[i],
			 (long long)id1);
		assert_int_equal(raw_int(f->db, sql), 0);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		assert_true(raw_int(f->db, sql) > 0); /* d-2 keeps its rows */
	}
	/* the spec is shared with d-2 and stays until d-2 goes too */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM specs"), 1);
	assert_int_equal(expt_store_get_run(f->st, "d-2", &r, &err), 0);
	assert_string_equal(r.spec_json, "{\"name\":\"x\"}");
	expt_run_rec_release(&r);
	assert_int_equal(expt_store_delete_run(f->st, "d-2", &err), 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM specs"), 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM runs"), 0);
	for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", tables[i]);
		assert_int_equal(raw_int(f->db, sql), 0);
	}
	create(f->st, "d", 1, &l);
	assert_string_equal(l.v[0].run_id, "d-3");
	expt_run_list_release(&l);
}

/* One pass of everything libexpt asks of the store, on a connection of its own, stopping at the
 * first error. Returns 0 when every call succeeded, else the error (which must be EXPT_ENOMEM,
 * "out of memory"). *stc is the connection, left open for the caller to check that it is still
 * usable; *nruns counts the runs created. */
static int nomem_pass(const char *dir, unsigned long n, struct expt_store **stc, int *nruns)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_run_list l = {0};
	struct expt_run_rec rec;
	struct expt_kv_rows kv = {0};
	struct expt_metric_summaries sum = {0};
	struct expt_run_new rn[2] = {
	    {"{\"lr\":0.1,\"name\":\"a\",\"deep\":{\"x\":[1,2]}}", NULL, NULL},
	    {"{\"lr\":0.2,\"name\":\"b\",\"deep\":null}", "v", "r-1"}};
	struct expt_transition t = EXPT_TRANSITION_INIT;
	struct expt_metric_point pts[4];
	char *db = NULL, *project = NULL;
	int64_t bytes;
	int rc;

	pts[0] = (struct expt_metric_point){"loss", 0.5, 1, 1000};
	pts[1] = (struct expt_metric_point){"lr", 1.5, 1, 1000};
	pts[2] = (struct expt_metric_point){"loss", 0.4, 2, 1001};
	pts[3] = (struct expt_metric_point){"acc", 0.9, 2, 1001};
	*stc = NULL;
	if ((rc = expt_store_locate(dir, 0, &db, &project, &err)) ||
	    (rc = expt_store_open(stc, db, &err)) ||
	    (rc = expt_store_create_runs(*stc, "nomem", "local", "{\"spec\":1}", rn, 2, &l, &err)))
		goto out;
	*nruns += 2;
	t.from = EXPT_RUN_BIT(EXPT_RUN_QUEUED);
	t.to = EXPT_RUN_RUNNING;
	t.attempt = 1;
	t.pid = 1;
	t.backend_ref = "pid:1";
	t.event = "started";
	if ((rc = expt_store_set_argv_env(*stc, l.v[0].run_id, "[\"a\"]", "{}", &err)) ||
	    (rc = expt_lifecycle_move(*stc, l.v[0].run_id, &t, NULL, &err)) ||
	    (rc = expt_store_set_param(*stc, l.v[0].run_id, "p", "1", &err)) ||
	    (rc = expt_store_set_tag(*stc, l.v[0].run_id, "t", "x", &err)) ||
	    (rc = expt_store_add_artifact(*stc, l.v[0].run_id, "a.bin", 3, &err)) ||
	    (rc = expt_store_add_event(*stc, l.v[0].run_id, "note", "hi", 0, &err)) ||
	    (rc = expt_store_add_metrics(*stc, l.v[0].run_id, pts, 4, &err)) ||
	    (rc = expt_store_batch_begin(*stc, &err)))
		goto out;
	if ((rc = expt_store_get_ingested(*stc, l.v[1].run_id, &bytes, &err)) ||
	    (rc = expt_store_add_metrics(*stc, l.v[1].run_id, pts, 4, &err)) ||
	    (rc = expt_store_set_ingested(*stc, l.v[1].run_id, 10, &err))) {
		expt_store_batch_rollback(*stc);
		goto out;
	}
	if ((rc = expt_store_batch_commit(*stc, &err)) ||
	    (rc = expt_store_get_run(*stc, l.v[0].run_id, &rec, &err)))
		goto out;
	expt_run_rec_release(&rec);
	if ((rc = expt_store_get_params(*stc, l.v[1].run_id, &kv, &err)) ||
	    (rc = expt_store_metric_summaries(*stc, l.v[0].run_id, &sum, &err)))
		goto out;
	t.from = EXPT_RUN_ACTIVE;
	t.to = EXPT_RUN_SUCCEEDED;
	t.event = "exit";
	t.reason = "exit";
	rc = expt_lifecycle_move(*stc, l.v[0].run_id, &t, NULL, &err);
out:
	if (rc && (rc != EXPT_ENOMEM || !strstr(err.msg, "out of memory")))
		fail_msg("failing allocation %lu: error %d, %s", n, rc, err.msg);
	expt_metric_summaries_release(&sum);
	expt_kv_rows_release(&kv);
	expt_run_list_release(&l);
	free(db);
	free(project);
	return rc;
}

/* The library's calls into the store never abort: every allocation of a pass fails in turn
 * (util/mem.h's hook); each time the call answers EXPT_ENOMEM with nothing leaked (ASan), and
 * the store is consistent afterwards: runs are created two at a time or not at all, with their
 * params and ids (next_seq) to match, a run is running with its event or not at all, metric
 * summaries agree with the chunks, and the connection that ran out still works. */
/* SQLite's allocations, failed the same way through SQLITE_CONFIG_MALLOC (set in main). */
static sqlite3_mem_methods sys_mem;
static unsigned long sq_fail_at, sq_count;
static int sq_failed;

static int sq_inject(void)
{
	if (sq_fail_at && ++sq_count == sq_fail_at) {
		sq_failed = 1;
		return 1;
	}
	return 0;
}

static void *sq_malloc(int n)
{
	return sq_inject() ? NULL : sys_mem.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
	return sq_inject() ? NULL : sys_mem.xRealloc(p, n);
}

static void sq_fail_at_n(unsigned long n)
{
	sq_fail_at = n;
	sq_count = 0;
	sq_failed = 0;
}

static int sq_has_failed(void)
{
	return sq_failed;
}

static void every_allocation_fails_once(struct fx *f, void (*fail_at)(unsigned long),
					int (*failed)(void), int all_fail, const char *what)
{
	unsigned long n;
	int nruns = 0, nomem = 0;

	for (n = 1;; n++) {
		struct expt_store *stc = NULL;
		struct expt_err err = EXPT_ERR_INIT;
		int rc, injected, before = nruns;
		int64_t seq;

		fail_at(n);
		rc = nomem_pass(f->dir, n, &stc, &nruns);
		injected = failed();
		fail_at(0);
		if (!injected) {
			assert_int_equal(rc, 0);
			expt_store_close(stc);
			break;
		}
		nomem += rc == EXPT_ENOMEM;
		/* create_runs that failed made no run, whatever the count says */
		nruns = (int)raw_int(f->db, "SELECT count(*) FROM runs WHERE experiment = 'nomem'");
		assert_true(nruns == before || nruns == before + 2);
		/* ids were handed out for the runs that exist, no more (-1: no experiment yet) */
		seq = raw_int(f->db, "SELECT next_seq - 1 FROM experiments WHERE name = 'nomem'");
		assert_true(seq == nruns || (seq == -1 && !nruns));
		assert_int_equal(raw_int(f->db, "SELECT count(*) FROM runs r WHERE experiment ="
						" 'nomem' AND (SELECT count(*) FROM params p"
						" WHERE p.run = r.id) NOT IN (3, 4)"),
				 0);
		assert_int_equal(
		    raw_int(f->db, "SELECT count(*) FROM runs WHERE status <> 0"),
		    raw_int(f->db, "SELECT count(*) FROM events WHERE kind = 'started'"));
		assert_int_equal(raw_int(f->db, "SELECT (SELECT coalesce(sum(count), 0) FROM"
						" metric_summaries) - (SELECT coalesce(sum(n), 0)"
						" FROM metric_chunks)"),
				 0);
		if (stc) {
			/* The connection that ran out goes on, its key cache included. */
			struct expt_run_list l = {0};
			struct expt_run_new rn = {"{}", NULL, NULL};
			struct expt_metric_point p = {"lr", 1.0, 1, 1};

			if (expt_store_create_runs(stc, "after", "local", NULL, &rn, 1, &l, &err) ||
			    expt_store_add_metrics(stc, l.v[0].run_id, &p, 1, &err))
				fail_msg("after failing allocation %lu: %s", n, err.msg);
			expt_run_list_release(&l);
			expt_store_close(stc);
		}
		if (n > 100000)
			fail_msg("no end to the allocations");
	}
	/* Every key in the summaries is a key of the store. */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM metric_summaries s WHERE NOT EXISTS"
					" (SELECT 1 FROM metric_keys k WHERE k.id = s.key)"),
			 0);
	print_message("store: %lu %s allocations failed in turn, %d answered EXPT_ENOMEM\n", n - 1,
		      what, nomem);
	assert_true(n > 30);
	if (all_fail)
		assert_int_equal(nomem, (int)n - 1);
	else /* SQLite absorbs some failures (benign ones, caches) */
		assert_true(nomem > 0);
}

static void test_every_allocation_fails_once(void **state)
{
	every_allocation_fails_once(*state, expt_mem_fail_at, expt_mem_failed, 1, "expt");
}

/* The same with SQLite's own allocations: SQLITE_NOMEM is EXPT_ENOMEM, with a rollback. */
static void test_every_sqlite_allocation_fails_once(void **state)
{
	every_allocation_fails_once(*state, sq_fail_at_n, sq_has_failed, 0, "SQLite");
}

int main(void)
{
	sqlite3_mem_methods m;

	/* Before SQLite initialises: allocations pass through until a test sets a failure. */
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sys_mem) == SQLITE_OK) {
		m = sys_mem;
		m.xMalloc = sq_malloc;
		m.xRealloc = sq_realloc;
		sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test_setup_teardown(test_lifecycle_cas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lifecycle_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
	    cmocka_unit_test(test_run_id_prefix),
	    cmocka_unit_test_setup_teardown(test_locate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_schema_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_id_allocation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_ids, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lifecycle_and_listing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_params_tags_artifacts_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconcile, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_delete_cascade, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_allocation_fails_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_sqlite_allocation_fails_once, setup,
					    teardown),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
