/* What the store's files share: the connection struct, the prepared-statement cache and the
 * transaction helpers. Not for use outside src/store/. */
#ifndef EXPT_STORE_INTERNAL_H
#define EXPT_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "store.h"

/* Statements prepared once per connection (SQLITE_PREPARE_PERSISTENT) and reused: the hot
 * paths (metrics, lifecycle updates, lookups) would otherwise spend more time compiling SQL than
 * running it. Each slot's SQL text is kept next to its one user. */
enum expt_store_stmt_id {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_RUN_ROWID,
	STMT_KEY_GET,
	STMT_KEY_ADD,
	STMT_CHUNK_ADD,
	STMT_SUMMARY_UPSERT,
	STMT_SET_ARGV,
	STMT_SET_ENV,
	STMT_RUN_STATUS,
	STMT_MARK_SUPERVISOR,
	STMT_LIFECYCLE_EVENT,
	STMT_SET_INGESTED,
	STMT_GET_INGESTED,
	STMT_GET_RUN,
	STMT_SET_PARAM,
	STMT_SET_TAG,
	STMT_ADD_ARTIFACT,
	STMT_ADD_EVENT,
	STMT_RUN_SUMMARIES,
	STMT_COUNT
};

/* One interned metric key: ids never change once committed, so the cache outlives transactions.
 * gen/slot group one add_metrics call's points by key without a second lookup. */
/* The active states (queued, running, pending) as SQL, spelled out so that SQLite uses the
 * partial index runs_active, which is created with exactly this text. The one place where status
 * numbers appear in SQL; the assertion keeps it true to the enum. */
#define EXPT_SQL_ACTIVE "status IN (0, 1, 5)"
_Static_assert(EXPT_RUN_QUEUED == 0 && EXPT_RUN_RUNNING == 1 && EXPT_RUN_PENDING == 5,
	       "EXPT_SQL_ACTIVE names the active states");

struct expt_store_key {
	char *name; /* owned; NULL = empty cell */
	uint32_t hash;
	uint32_t gen;
	uint32_t slot;
	int64_t id;
};

/* Per-key aggregate of one add_metrics call; start/cur index its points in the packed blob. */
struct expt_store_slot {
	int64_t key_id;
	size_t count, start, cur;
	double last, min, max;
	int64_t last_step, last_time;
	int has_minmax;
};

struct expt_store {
	sqlite3 *db;
	char *path;	/* as given to open */
	char *runs_dir; /* absolute: <dir of the db>/runs */
	char host[64];
	int version;
	int readonly;	  /* opened read-only: the store's file system or files are not writable */
	int batch;	  /* inside expt_store_batch_begin: begin and commit are the batch's */
	int batch_failed; /* a write inside the batch failed: the batch rolls back */
	sqlite3_stmt *stmt[STMT_COUNT];
	sqlite3_stmt *move_stmt[256]; /* lifecycle.c's UPDATEs, by shape (see write_move) */

	/* metric key cache: open addressing, power-of-two capacity */
	struct expt_store_key *keys;
	size_t keys_cap, keys_n;
	int keys_dirty; /* a key was interned in the open transaction */
	uint32_t gen;
	/* id -> name of metric keys for readers (committed keys only: readers never run inside
	 * a transaction); names[id] owned, NULL where not loaded */
	char **names;
	size_t names_cap;

	/* add_metrics scratch, kept between calls to avoid reallocating per batch */
	uint32_t *pt_slot;
	size_t pt_cap;
	struct expt_store_slot *slots;
	size_t slots_cap;
	unsigned char *blob;
	size_t blob_cap;
};

/* Returns the statement of slot id (prepared from sql on first use), reset and with bindings
 * cleared; NULL with err set on failure. A slot always gets the same sql. */
sqlite3_stmt *expt_store_stmt(struct expt_store *st, enum expt_store_stmt_id id, const char *sql,
			      struct expt_err *err);
/* Prepares a one-off statement. */
int expt_store_prepare(struct expt_store *st, const char *sql, sqlite3_stmt **out,
		       struct expt_err *err);
/* Fills err with EXPT_ESTORE, "<what>: <sqlite message>", and returns EXPT_ESTORE; or, when
 * SQLite ran out of memory, with EXPT_ENOMEM, "<what>: out of memory", and returns that. */
int expt_store_dberr(struct expt_store *st, struct expt_err *err, const char *what);
/* Fills err with EXPT_ENOMEM, "out of memory". Returns EXPT_ENOMEM. Every function the library
 * reaches reports a failed allocation this way, having rolled back its transaction and freed
 * what it allocated: nothing in src/store/ aborts. */
int expt_store_nomem(struct expt_err *err);
/* What a function whose statement could not be prepared returns: err's code (EXPT_ENOMEM when
 * SQLite ran out of memory), else EXPT_ESTORE. */
int expt_store_stmt_failed(const struct expt_err *err);

/* BEGIN IMMEDIATE, retried on SQLITE_BUSY beyond the busy timeout; commit; rollback (never
 * fails, forgets keys interned in the rolled back transaction). */
int expt_store_begin(struct expt_store *st, struct expt_err *err);
int expt_store_commit(struct expt_store *st, struct expt_err *err);
void expt_store_rollback(struct expt_store *st);

/* Row id of a run, inside or outside a transaction: 0 and EXPT_ENOTFOUND if there is none. */
int expt_store_run_rowid(struct expt_store *st, const char *run_id, int64_t *rowid,
			 struct expt_err *err);

/* Binds a string or NULL. */
int expt_store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Sets *out to a copy of a text column, NULL when SQL NULL. Returns 0, or -1 when out of memory
 * (*out NULL). */
int expt_store_col_dup(sqlite3_stmt *s, int i, char **out);

/* Frees the metric key cache and scratch (metrics.c). */
void expt_store_metrics_release(struct expt_store *st);
void expt_store_keys_forget(struct expt_store *st);

#endif
