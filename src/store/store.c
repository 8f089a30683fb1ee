/* The store's connection: locating .expt/expt.db like git, opening it (WAL, busy timeout, foreign
 * keys), the versioned schema and its migrations, and the helpers the other store files share. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

/* How long one statement waits for a lock inside SQLite, and how long BEGIN IMMEDIATE keeps
 * retrying after that: a sweep of many concurrent `expt run`s plus training processes logging
 * metrics must queue up, never fail. */
#define BUSY_TIMEOUT_MS 10000
#define BEGIN_DEADLINE_MS 60000

/* Migration i (1-based) brings a store from version i-1 to i. Append only: a released
 * migration never changes, since stores in the wild have already run it. */
static const char *const migrations[] = {
    /* 1: everything. Runs keep the small columns that `expt ps` shows; the resolved spec (shared
     * by all runs of one `expt run`) and the env live in side tables so that listing 10,000 runs
     * reads a few MB, not the specs. Metrics are stored as packed chunks, one row per key per
     * add_metrics call (see metrics.c), and summarised in metric_summaries. */
    "CREATE TABLE experiments ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " id_prefix TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " next_seq INTEGER NOT NULL);"
    "CREATE TABLE specs (id INTEGER PRIMARY KEY, json TEXT NOT NULL);"
    "CREATE TABLE runs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " run_id TEXT NOT NULL UNIQUE,"
    " experiment TEXT NOT NULL REFERENCES experiments(name),"
    " seq INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " signal INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT,"
    " message TEXT,"
    " created_ms INTEGER NOT NULL,"
    " started_ms INTEGER NOT NULL DEFAULT 0,"
    " ended_ms INTEGER NOT NULL DEFAULT 0,"
    " backend TEXT NOT NULL,"
    " host TEXT NOT NULL,"
    " variant TEXT,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " retry_of TEXT,"
    " pid INTEGER NOT NULL DEFAULT 0,"
    " supervisor_pid INTEGER NOT NULL DEFAULT 0,"
    " supervisor_start INTEGER NOT NULL DEFAULT 0,"
    " gpus TEXT,"
    " params_json TEXT NOT NULL,"
    " argv_json TEXT,"
    " output_dir TEXT NOT NULL,"
    " log_dir TEXT NOT NULL,"
    " spec_id INTEGER REFERENCES specs(id));"
    /* Covers (id, run_id) by experiment: compare maps summaries to run ids from it alone. */
    "CREATE INDEX runs_experiment ON runs(experiment, seq, run_id);"
    "CREATE INDEX runs_experiment_status ON runs(experiment, status);"
    /* Only queued and running runs: reconcile reads this, and it stays tiny. */
    "CREATE INDEX runs_active ON runs(status) WHERE status < 2;"
    "CREATE INDEX runs_spec ON runs(spec_id);"
    "CREATE TABLE run_env ("
    " run INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,"
    " env_json TEXT NOT NULL);"
    "CREATE TABLE params ("
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (run, key)) WITHOUT ROWID;"
    "CREATE TABLE tags ("
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " PRIMARY KEY (run, key)) WITHOUT ROWID;"
    "CREATE TABLE artifacts ("
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " path TEXT NOT NULL,"
    " size INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " PRIMARY KEY (run, path)) WITHOUT ROWID;"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY,"
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " time_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " message TEXT);"
    "CREATE INDEX events_run ON events(run, time_ms);"
    "CREATE TABLE metric_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE metric_chunks ("
    " id INTEGER PRIMARY KEY,"
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key INTEGER NOT NULL REFERENCES metric_keys(id),"
    " n INTEGER NOT NULL,"
    " data BLOB NOT NULL);"
    "CREATE INDEX metric_chunks_run ON metric_chunks(run, key);"
    "CREATE TABLE metric_summaries ("
    " run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " key INTEGER NOT NULL REFERENCES metric_keys(id),"
    " last REAL,"
    " last_step INTEGER NOT NULL,"
    " last_time INTEGER NOT NULL,"
    " min REAL,"
    " max REAL,"
    " count INTEGER NOT NULL,"
    " PRIMARY KEY (run, key)) WITHOUT ROWID;",
    /* 2: runs owned by engines (docs/backends.md). The engine's name for a run (a local
     * process group "pid:N", a container id, a Job name), where it ran, how much of its output
     * was fed into the store; the pending state (5) joins the active ones. A v1 run's process
     * group becomes its reference. */
    "ALTER TABLE runs ADD COLUMN backend_ref TEXT;"
    "ALTER TABLE runs ADD COLUMN node TEXT;"
    "ALTER TABLE runs ADD COLUMN ingested INTEGER NOT NULL DEFAULT 0;"
    "UPDATE runs SET backend_ref = 'pid:' || pid WHERE pid > 0;"
    "UPDATE runs SET node = host WHERE status <> 0;"
    "DROP INDEX runs_active;"
    "CREATE INDEX runs_active ON runs(status) WHERE " EXPT_SQL_ACTIVE ";",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == EXPT_STORE_SCHEMA_VERSION,
	       "one migration per schema version");

static const char *const status_names[] = {"queued", "running", "succeeded",
					   "failed", "stopped", "pending"};
_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == EXPT_RUN_NSTATUS,
	       "a name per status");

const char *expt_run_status_name(enum expt_run_status s)
{
	if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
		return "unknown";
	return status_names[s];
}

int expt_run_status_parse(const char *s, enum expt_run_status *out)
{
	size_t i;

	for (i = 0; s && i < sizeof(status_names) / sizeof(status_names[0]); i++) {
		if (!strcmp(s, status_names[i])) {
			*out = (enum expt_run_status)i;
			return 0;
		}
	}
	return -1;
}

int expt_run_status_done(enum expt_run_status s)
{
	return s == EXPT_RUN_SUCCEEDED || s == EXPT_RUN_FAILED || s == EXPT_RUN_STOPPED;
}

/* Directory part of an absolute path ("/" for "/x"); NULL when out of memory. */
static char *parent_dir(const char *abs)
{
	const char *slash = strrchr(abs, '/');

	if (!slash || slash == abs)
		return expt_strdup("/");
	return expt_strndup(abs, (size_t)(slash - abs));
}

int expt_store_nomem(struct expt_err *err)
{
	return expt_err_set(err, EXPT_ENOMEM, "out of memory");
}

int expt_store_stmt_failed(const struct expt_err *err)
{
	return err && err->code ? err->code : EXPT_ESTORE;
}

/* expt_abspath failed: out of memory, or the current directory is gone. */
static int abspath_failed(struct expt_err *err, const char *fmt, const char *path)
{
	if (errno == ENOMEM)
		return expt_store_nomem(err);
	return expt_err_errno(err, EXPT_ESTORE, fmt, path);
}

int expt_store_locate(const char *start_dir, int create, char **db_path, char **project_dir,
		      struct expt_err *err)
{
	const char *home = getenv("EXPT_HOME");
	char *dir = NULL, *cand = NULL;
	int rc = 0;

	*db_path = NULL;
	*project_dir = NULL;
	if (home && *home) {
		errno = 0;
		dir = expt_abspath(home);
		if (!dir) {
			rc = abspath_failed(err, "cannot resolve EXPT_HOME '%s'", home);
			goto out;
		}
		while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
			dir[strlen(dir) - 1] = '\0';
		if (!(cand = expt_asprintf("%s/expt.db", dir))) {
			rc = expt_store_nomem(err);
			goto out;
		}
		if (!expt_path_exists(cand)) {
			if (!create) {
				rc = expt_err_set(
				    err, EXPT_ENOTFOUND,
				    "no expt store at EXPT_HOME=%s (no expt.db there)", home);
				goto out;
			}
			if ((rc = expt_mkdirs(dir, err)))
				goto out;
		}
		if (!(*project_dir = parent_dir(dir))) {
			rc = expt_store_nomem(err);
			goto out;
		}
		*db_path = cand;
		cand = NULL;
		goto out;
	}

	/* The physical path, as git does: walking up "a/b/.." textually would go wrong. */
	dir = realpath(start_dir ? start_dir : ".", NULL);
	if (!dir) {
		if (errno == ENOMEM)
			rc = expt_store_nomem(err);
		else
			rc = expt_err_errno(err, EXPT_ENOTFOUND, "cannot resolve '%s'",
					    start_dir ? start_dir : ".");
		goto out;
	}
	for (char *d = expt_strdup(dir);;) {
		char *up;

		if (!d ||
		    !(cand = expt_asprintf("%s%s.expt/expt.db", d, strcmp(d, "/") ? "/" : ""))) {
			free(d);
			rc = expt_store_nomem(err);
			goto out;
		}
		if (expt_path_exists(cand)) {
			*db_path = cand;
			*project_dir = d;
			cand = NULL;
			goto out;
		}
		free(cand);
		cand = NULL;
		if (!strcmp(d, "/")) {
			free(d);
			break;
		}
		up = parent_dir(d);
		free(d);
		d = up;
	}
	if (!create) {
		rc = expt_err_set(err, EXPT_ENOTFOUND,
				  "no expt store: no .expt/expt.db in '%s' or any parent directory",
				  dir);
		goto out;
	}
	if (!(cand = expt_asprintf("%s%s.expt", dir, strcmp(dir, "/") ? "/" : ""))) {
		rc = expt_store_nomem(err);
		goto out;
	}
	if ((rc = expt_mkdirs(cand, err)))
		goto out;
	if (!(*db_path = expt_asprintf("%s/expt.db", cand))) {
		rc = expt_store_nomem(err);
		goto out;
	}
	*project_dir = dir;
	dir = NULL;
out:
	free(dir);
	free(cand);
	return rc;
}

int expt_store_dberr(struct expt_store *st, struct expt_err *err, const char *what)
{
	if (sqlite3_errcode(st->db) == SQLITE_NOMEM)
		return expt_err_set(err, EXPT_ENOMEM, "%s: out of memory", what);
	return expt_err_set(err, EXPT_ESTORE, "%s: %s", what, sqlite3_errmsg(st->db));
}

int expt_store_prepare(struct expt_store *st, const char *sql, sqlite3_stmt **out,
		       struct expt_err *err)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK) {
		*out = NULL;
		return expt_store_dberr(st, err, "cannot prepare a store query");
	}
	return 0;
}

sqlite3_stmt *expt_store_stmt(struct expt_store *st, enum expt_store_stmt_id id, const char *sql,
			      struct expt_err *err)
{
	sqlite3_stmt *s = st->stmt[id];

	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return s;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		expt_store_dberr(st, err, "cannot prepare a store query");
		return NULL;
	}
	st->stmt[id] = s;
	return s;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int expt_store_begin(struct expt_store *st, struct expt_err *err)
{
	int64_t deadline = expt_mono_ms() + BEGIN_DEADLINE_MS;
	unsigned jitter = 0;
	sqlite3_stmt *s;
	int rc;

	if (st->batch)
		return st->batch_failed ? expt_err_set(err, EXPT_ESTORE, "the batch failed") : 0;
	if (st->readonly)
		return expt_err_set(err, EXPT_ESTORE,
				    "store %s is read-only (its file system or files are not "
				    "writable): this needs to write to it",
				    st->path);
	for (;;) {
		if (!(s = expt_store_stmt(st, STMT_BEGIN, "BEGIN IMMEDIATE", err)))
			return expt_store_stmt_failed(err);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc == SQLITE_DONE)
			return 0;
		/* The busy handler already waited BUSY_TIMEOUT_MS; some paths (WAL recovery by
		 * another connection) return BUSY without calling it, so wait a little and retry.
		 */
		if ((rc & 0xff) != SQLITE_BUSY || expt_mono_ms() > deadline)
			break;
		if (!jitter)
			jitter = (unsigned)getpid();
		jitter = jitter * 1103515245u + 12345u;
		sleep_ms(1 + (long)((jitter >> 16) % 10));
	}
	return expt_store_dberr(st, err, "cannot lock the store for writing");
}

int expt_store_commit(struct expt_store *st, struct expt_err *err)
{
	sqlite3_stmt *s;
	int rc;

	if (st->batch)
		return 0;
	s = expt_store_stmt(st, STMT_COMMIT, "COMMIT", err);
	if (!s) {
		expt_store_rollback(st);
		return expt_store_stmt_failed(err);
	}
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot commit to the store");
		expt_store_rollback(st);
		return rc;
	}
	st->keys_dirty = 0;
	return 0;
}

void expt_store_rollback(struct expt_store *st)
{
	if (st->batch) { /* the batch decides, at its commit */
		st->batch_failed = 1;
		return;
	}
	if (!sqlite3_get_autocommit(st->db)) {
		sqlite3_stmt *s = expt_store_stmt(st, STMT_ROLLBACK, "ROLLBACK", NULL);
		if (s) {
			sqlite3_step(s);
			sqlite3_reset(s);
		}
	}
	/* Ids handed out by a rolled back transaction may be given to other keys. */
	if (st->keys_dirty)
		expt_store_keys_forget(st);
	st->keys_dirty = 0;
}

int expt_store_batch_begin(struct expt_store *st, struct expt_err *err)
{
	int rc;

	if (st->batch)
		return expt_err_set(err, EXPT_ESTORE, "a batch is already open");
	if ((rc = expt_store_begin(st, err)))
		return rc;
	st->batch = 1;
	st->batch_failed = 0;
	return 0;
}

int expt_store_batch_commit(struct expt_store *st, struct expt_err *err)
{
	int failed = st->batch_failed;

	st->batch = st->batch_failed = 0;
	if (failed) {
		expt_store_rollback(st);
		return err && err->code ? err->code
					: expt_err_set(err, EXPT_ESTORE, "batch failed");
	}
	return expt_store_commit(st, err);
}

void expt_store_batch_rollback(struct expt_store *st)
{
	st->batch = st->batch_failed = 0;
	expt_store_rollback(st);
}

int expt_store_run_rowid(struct expt_store *st, const char *run_id, int64_t *rowid,
			 struct expt_err *err)
{
	sqlite3_stmt *s =
	    expt_store_stmt(st, STMT_RUN_ROWID, "SELECT id FROM runs WHERE run_id = ?1", err);
	int rc;

	*rowid = 0;
	if (!s)
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 1, run_id ? run_id : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*rowid = sqlite3_column_int64(s, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = expt_err_set(err, EXPT_ENOTFOUND, "no such run: %s", run_id ? run_id : "");
	} else {
		rc = expt_store_dberr(st, err, "cannot look up a run");
	}
	sqlite3_reset(s);
	return rc;
}

int expt_store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (!v)
		return sqlite3_bind_null(s, i);
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

int expt_store_col_dup(sqlite3_stmt *s, int i, char **out)
{
	const unsigned char *t = sqlite3_column_text(s, i);

	*out = NULL;
	if (!t)
		/* SQL NULL, or SQLite out of memory converting the value to text */
		return sqlite3_column_type(s, i) == SQLITE_NULL ? 0 : -1;
	*out = expt_strndup((const char *)t, (size_t)sqlite3_column_bytes(s, i));
	return *out ? 0 : -1;
}

/* Runs a pragma or DDL, retrying while another process holds the lock it needs (switching a
 * fresh file to WAL races when many processes create the same store at once). */
static int exec_retry(struct expt_store *st, const char *sql, struct expt_err *err,
		      const char *what)
{
	int64_t deadline = expt_mono_ms() + BEGIN_DEADLINE_MS;
	int rc;

	while ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK) {
		if (rc == SQLITE_NOMEM)
			return expt_store_nomem(err);
		if ((rc & 0xff) != SQLITE_BUSY || expt_mono_ms() > deadline)
			return expt_err_set(err, EXPT_ESTORE, "store %s: %s: %s", st->path, what,
					    sqlite3_errmsg(st->db));
		sleep_ms(5);
	}
	return 0;
}

static int read_version(struct expt_store *st, int *version, struct expt_err *err)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		if (sqlite3_errcode(st->db) == SQLITE_NOMEM)
			rc = expt_store_nomem(err);
		else
			rc = expt_err_set(err, EXPT_ESTORE,
					  "store %s: cannot read the schema version: %s", st->path,
					  sqlite3_errmsg(st->db));
	} else {
		*version = sqlite3_column_int(s, 0);
		rc = 0;
	}
	sqlite3_finalize(s);
	return rc;
}

static int refuse_newer(struct expt_store *st, int version, struct expt_err *err)
{
	return expt_err_set(err, EXPT_ESTORE,
			    "store %s has schema version %d, this expt understands up to %d: "
			    "upgrade expt",
			    st->path, version, EXPT_STORE_SCHEMA_VERSION);
}

static int migrate(struct expt_store *st, struct expt_err *err)
{
	char pragma[64];
	int rc, version;

	if ((rc = read_version(st, &st->version, err)))
		return rc;
	if (st->version > NMIGRATIONS)
		return refuse_newer(st, st->version, err);
	if (st->version == NMIGRATIONS)
		return 0;

	if ((rc = expt_store_begin(st, err))) {
		if (rc != EXPT_ENOMEM)
			expt_err_set(err, EXPT_ESTORE,
				     "store %s: cannot lock it to upgrade the schema: %s", st->path,
				     sqlite3_errmsg(st->db));
		return rc;
	}
	/* Another process may have migrated while we waited for the lock. */
	if ((rc = read_version(st, &version, err)))
		goto fail;
	if (version > NMIGRATIONS) {
		rc = refuse_newer(st, version, err);
		goto fail;
	}
	for (; version < NMIGRATIONS; version++) {
		if (sqlite3_exec(st->db, migrations[version], NULL, NULL, NULL) != SQLITE_OK) {
			rc = expt_err_set(err, EXPT_ESTORE,
					  "store %s: cannot upgrade the schema to version %d: %s",
					  st->path, version + 1, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
	if (sqlite3_exec(st->db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
		rc = expt_err_set(err, EXPT_ESTORE, "store %s: cannot set the schema version: %s",
				  st->path, sqlite3_errmsg(st->db));
		goto fail;
	}
	if ((rc = expt_store_commit(st, err)))
		return rc;
	st->version = version;
	return 0;
fail:
	expt_store_rollback(st);
	return rc;
}

/* Whether an existing store cannot be written here: a read-only file system (which stops root
 * too), or a database or directory this user may not write. */
static int store_readonly(const char *db, const char *dir)
{
	struct statvfs vfs;

	if (access(db, F_OK))
		return 0; /* to be created: opening says why not, if it cannot */
	if (!statvfs(db, &vfs) && (vfs.f_flag & ST_RDONLY))
		return 1;
	return access(db, W_OK) || access(dir, W_OK);
}

/* A store that can only be read (ps, show, compare on a read-only path). Nothing can write to
 * it meanwhile on a read-only file system, so SQLite may skip WAL's shared memory there
 * (immutable); elsewhere it reads as usual. It must already have this expt's schema. */
static int open_readonly(struct expt_store **out, struct expt_store *st, const char *abs,
			 const char *dir, struct expt_err *err)
{
	struct statvfs vfs;
	int immutable = !statvfs(abs, &vfs) && (vfs.f_flag & ST_RDONLY);
	char *uri = sqlite3_mprintf("file:%s?%s", abs, immutable ? "immutable=1" : "mode=ro");
	int rc;

	st->readonly = 1;
	if (!uri || sqlite3_open_v2(uri, &st->db,
				    SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
				    NULL) != SQLITE_OK) {
		if (!uri || !st->db || sqlite3_errcode(st->db) == SQLITE_NOMEM)
			rc = expt_store_nomem(err);
		else
			rc =
			    expt_err_set(err, EXPT_ESTORE, "store %s: cannot open it read-only: %s",
					 st->path, sqlite3_errmsg(st->db));
		goto fail;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if ((rc = read_version(st, &st->version, err)))
		goto fail;
	if (st->version > NMIGRATIONS) {
		rc = refuse_newer(st, st->version, err);
		goto fail;
	}
	if (st->version < NMIGRATIONS) {
		rc =
		    expt_err_set(err, EXPT_ESTORE,
				 "store %s is read-only and has schema version %d: this expt reads "
				 "%d; open it once where it is writable to upgrade it",
				 st->path, st->version, NMIGRATIONS);
		goto fail;
	}
	*out = st;
	st = NULL;
	rc = 0;
fail:
	sqlite3_free(uri);
	free((char *)abs);
	free((char *)dir);
	expt_store_close(st);
	return rc;
}

int expt_store_readonly(const struct expt_store *st)
{
	return st->readonly;
}

int expt_store_open(struct expt_store **out, const char *db_path, struct expt_err *err)
{
	struct expt_store *st = expt_calloc(1, sizeof(*st));
	char *abs = NULL, *dir = NULL;
	int rc;

	*out = NULL;
	if (!st || !(st->path = expt_strdup(db_path))) {
		rc = expt_store_nomem(err);
		goto fail;
	}
	expt_hostname(st->host, sizeof(st->host));
	errno = 0;
	abs = expt_abspath(db_path);
	if (!abs) {
		rc = abspath_failed(err, "store %s: cannot resolve its path", db_path);
		goto fail;
	}
	if (!(dir = parent_dir(abs)) ||
	    !(st->runs_dir = expt_asprintf("%s%sruns", dir, strcmp(dir, "/") ? "/" : ""))) {
		rc = expt_store_nomem(err);
		goto fail;
	}

	if (store_readonly(abs, dir))
		return open_readonly(out, st, abs, dir, err);
	/* NOMUTEX: a connection is never shared between threads (store.h), so SQLite's own
	 * per-call mutex is pure cost on the metrics path. */
	if (sqlite3_open_v2(db_path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		if (!st->db || sqlite3_errcode(st->db) == SQLITE_NOMEM)
			rc = expt_store_nomem(err);
		else
			rc = expt_err_set(err, EXPT_ESTORE, "store %s: cannot open: %s", db_path,
					  sqlite3_errmsg(st->db));
		goto fail;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	/* WAL: readers (ps, compare) never wait for writers, and a commit is an append.
	 * synchronous=NORMAL: a power cut may lose the last commits, never corrupt the store.
	 * journal_size_limit: a burst of metrics must not leave a huge WAL file behind. */
	if ((rc = exec_retry(st, "PRAGMA journal_mode = WAL", err, "cannot switch to WAL")) ||
	    (rc = exec_retry(st,
			     "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
			     " PRAGMA journal_size_limit = 67108864",
			     err, "cannot configure")))
		goto fail;
	if ((rc = migrate(st, err)))
		goto fail;
	*out = st;
	st = NULL;
	rc = 0;
fail:
	free(abs);
	free(dir);
	expt_store_close(st);
	return rc;
}

void expt_store_close(struct expt_store *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	for (i = 0; i < sizeof(st->move_stmt) / sizeof(st->move_stmt[0]); i++)
		sqlite3_finalize(st->move_stmt[i]);
	expt_store_metrics_release(st);
	sqlite3_close(st->db);
	free(st->path);
	free(st->runs_dir);
	free(st);
}

int expt_store_schema_version(struct expt_store *st)
{
	return st->version;
}
