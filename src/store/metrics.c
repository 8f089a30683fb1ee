/* Metrics, the store's hot path: points are grouped by key and packed into one chunk row per key
 * per call, keys are interned to integers cached in the connection, and a per-(run, key) summary
 * is updated once per call, so that compare and ps never read the points themselves. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* A packed point: step, time_ms (int64) and value (IEEE double), little-endian, so that a store
 * file reads the same on any machine. One row per point would cap SQLite at well under 1M
 * points/s on our machines (docs/store.md has the numbers); a row per key per call does not. */
#define POINT_BYTES 24
/* Points per chunk row: bounds a row to ~100 KB however large the batch. */
#define CHUNK_MAX 4096

static void put_le64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void pack(unsigned char *p, int64_t step, int64_t time_ms, double value)
{
	uint64_t bits;

	memcpy(&bits, &value, sizeof(bits));
	put_le64(p, (uint64_t)step);
	put_le64(p + 8, (uint64_t)time_ms);
	put_le64(p + 16, bits);
}

static void unpack(const unsigned char *p, struct expt_metric_row *r)
{
	uint64_t bits = get_le64(p + 16);

	r->step = (int64_t)get_le64(p);
	r->time_ms = (int64_t)get_le64(p + 8);
	memcpy(&r->value, &bits, sizeof(bits));
}

static uint32_t hash_key(const char *s)
{
	return expt_fnv1a32(s, strlen(s));
}

void expt_store_keys_forget(struct expt_store *st)
{
	size_t i;

	for (i = 0; i < st->keys_cap; i++)
		free(st->keys[i].name);
	free(st->keys);
	st->keys = NULL;
	st->keys_cap = st->keys_n = 0;
}

void expt_store_metrics_release(struct expt_store *st)
{
	expt_store_keys_forget(st);
	free(st->pt_slot);
	free(st->slots);
	free(st->blob);
	st->pt_slot = NULL;
	st->slots = NULL;
	st->blob = NULL;
	st->pt_cap = st->slots_cap = st->blob_cap = 0;
	for (size_t i = 0; i < st->names_cap; i++)
		free(st->names[i]);
	free(st->names);
	st->names = NULL;
	st->names_cap = 0;
}

/* The name of a key id for readers. The table is loaded whole on a miss: keys are few, and a miss
 * happens once per key a connection has not seen. */
static const char *key_name(struct expt_store *st, int64_t id, struct expt_err *err)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (id > 0 && (size_t)id < st->names_cap && st->names[id])
		return st->names[id];
	if (expt_store_prepare(st, "SELECT id, name FROM metric_keys", &s, err))
		return NULL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t k = sqlite3_column_int64(s, 0);
		size_t cap = st->names_cap;
		int oom = 0;

		if (k <= 0 || k > INT32_MAX)
			continue;
		if ((size_t)k >= cap) {
			EXPT_TRY_GROW(st->names, (size_t)k + 1, cap, oom);
			if (!oom) {
				memset(st->names + st->names_cap, 0,
				       (cap - st->names_cap) * sizeof(char *));
				st->names_cap = cap;
			}
		}
		if (oom || (!st->names[k] && expt_store_col_dup(s, 1, &st->names[k]))) {
			/* The cache stays as it was, less this name: a later call loads it. */
			sqlite3_finalize(s);
			expt_store_nomem(err);
			return NULL;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		expt_store_dberr(st, err, "cannot read metric keys");
		return NULL;
	}
	if (id > 0 && (size_t)id < st->names_cap && st->names[id])
		return st->names[id];
	expt_err_set(err, EXPT_ESTORE, "metric key %lld is missing from the store", (long long)id);
	return NULL;
}

static struct expt_store_key *key_cell(struct expt_store_key *tab, size_t cap, const char *name,
				       uint32_t hash)
{
	size_t i = hash & (cap - 1);

	while (tab[i].name && (tab[i].hash != hash || strcmp(tab[i].name, name)))
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* Doubles the key cache; -1 when out of memory (the cache unchanged). */
static int keys_grow(struct expt_store *st)
{
	size_t cap = st->keys_cap ? st->keys_cap * 2 : 64, i;
	struct expt_store_key *tab = expt_calloc(cap, sizeof(*tab));

	if (!tab)
		return -1;
	for (i = 0; i < st->keys_cap; i++)
		if (st->keys[i].name)
			*key_cell(tab, cap, st->keys[i].name, st->keys[i].hash) = st->keys[i];
	free(st->keys);
	st->keys = tab;
	st->keys_cap = cap;
	return 0;
}

/* The cache entry of a key, interning it in the store (inside the caller's transaction) when
 * this connection has not seen it yet. The pointer lives until the next call. */
static int key_entry(struct expt_store *st, const char *name, struct expt_store_key **out,
		     struct expt_err *err)
{
	uint32_t hash = hash_key(name);
	struct expt_store_key *e;
	sqlite3_stmt *s;
	int64_t id;
	int rc;

	if (st->keys_cap) {
		e = key_cell(st->keys, st->keys_cap, name, hash);
		if (e->name) {
			*out = e;
			return 0;
		}
	}
	if (!(s = expt_store_stmt(st, STMT_KEY_GET, "SELECT id FROM metric_keys WHERE name = ?1",
				  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		sqlite3_reset(s);
	} else if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		if (!(s = expt_store_stmt(st, STMT_KEY_ADD,
					  "INSERT INTO metric_keys(name) VALUES (?1)", err)))
			return expt_store_stmt_failed(err);
		sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE) {
			sqlite3_reset(s);
			return expt_store_dberr(st, err, "cannot store a metric key");
		}
		sqlite3_reset(s);
		id = sqlite3_last_insert_rowid(st->db);
		st->keys_dirty = 1;
	} else {
		sqlite3_reset(s);
		return expt_store_dberr(st, err, "cannot read a metric key");
	}
	/* Out of memory here leaves the key in the store but not in the cache: the caller rolls
	 * the transaction back, and the key is looked up again next time. */
	if ((st->keys_n + 1) * 2 > st->keys_cap && keys_grow(st))
		return expt_store_nomem(err);
	e = key_cell(st->keys, st->keys_cap, name, hash);
	if (!(e->name = expt_strdup(name)))
		return expt_store_nomem(err);
	e->hash = hash;
	e->id = id;
	e->gen = 0;
	st->keys_n++;
	*out = e;
	return 0;
}

static void slot_add(struct expt_store_slot *sl, const struct expt_metric_point *p)
{
	if (!sl->count || p->step > sl->last_step ||
	    (p->step == sl->last_step && p->time_ms >= sl->last_time)) {
		sl->last = p->value;
		sl->last_step = p->step;
		sl->last_time = p->time_ms;
	}
	if (!isnan(p->value)) {
		if (!sl->has_minmax) {
			sl->min = sl->max = p->value;
			sl->has_minmax = 1;
		} else if (p->value < sl->min) {
			sl->min = p->value;
		} else if (p->value > sl->max) {
			sl->max = p->value;
		}
	}
	sl->count++;
}

/* Writes the chunks and the summary of one key of the batch. */
static int flush_slot(struct expt_store *st, int64_t run, const struct expt_store_slot *sl,
		      struct expt_err *err)
{
	sqlite3_stmt *c, *u;
	size_t done = 0;

	if (!(c = expt_store_stmt(st, STMT_CHUNK_ADD,
				  "INSERT INTO metric_chunks(run, key, n, data)"
				  " VALUES (?1, ?2, ?3, ?4)",
				  err)))
		return expt_store_stmt_failed(err);
	while (done < sl->count) {
		size_t k = sl->count - done < CHUNK_MAX ? sl->count - done : CHUNK_MAX;

		sqlite3_reset(c);
		sqlite3_bind_int64(c, 1, run);
		sqlite3_bind_int64(c, 2, sl->key_id);
		sqlite3_bind_int64(c, 3, (int64_t)k);
		sqlite3_bind_blob(c, 4, st->blob + (sl->start + done) * POINT_BYTES,
				  (int)(k * POINT_BYTES), SQLITE_STATIC);
		if (sqlite3_step(c) != SQLITE_DONE) {
			sqlite3_reset(c);
			return expt_store_dberr(st, err, "cannot store metrics");
		}
		done += k;
	}
	sqlite3_reset(c);

	/* The SET expressions see the row as it was: "last" moves to the batch's last point when
	 * that has a higher step, or the same step and a time at least as late. SQL's min()/max()
	 * are NULL when either side is, hence the coalesce (NULL stands for "every value NaN"). */
	if (!(u = expt_store_stmt(
		  st, STMT_SUMMARY_UPSERT,
		  "INSERT INTO metric_summaries(run, key, last, last_step, last_time, min, max,"
		  " count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		  " ON CONFLICT(run, key) DO UPDATE SET"
		  " last = CASE WHEN excluded.last_step > last_step OR (excluded.last_step ="
		  " last_step AND excluded.last_time >= last_time) THEN excluded.last"
		  " ELSE last END,"
		  " last_time = CASE WHEN excluded.last_step > last_step OR (excluded.last_step"
		  " = last_step AND excluded.last_time >= last_time) THEN excluded.last_time"
		  " ELSE last_time END,"
		  " last_step = max(last_step, excluded.last_step),"
		  " min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),"
		  " max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),"
		  " count = count + excluded.count",
		  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_int64(u, 1, run);
	sqlite3_bind_int64(u, 2, sl->key_id);
	sqlite3_bind_double(u, 3, sl->last); /* SQLite stores a NaN as NULL */
	sqlite3_bind_int64(u, 4, sl->last_step);
	sqlite3_bind_int64(u, 5, sl->last_time);
	if (sl->has_minmax) {
		sqlite3_bind_double(u, 6, sl->min);
		sqlite3_bind_double(u, 7, sl->max);
	}
	sqlite3_bind_int64(u, 8, (int64_t)sl->count);
	if (sqlite3_step(u) != SQLITE_DONE) {
		sqlite3_reset(u);
		return expt_store_dberr(st, err, "cannot update a metric summary");
	}
	sqlite3_reset(u);
	return 0;
}

int expt_store_add_metrics(struct expt_store *st, const char *run_id,
			   const struct expt_metric_point *pts, size_t n, struct expt_err *err)
{
	const char *prev = NULL;
	uint32_t slot = 0;
	size_t nslots = 0, i, pos = 0;
	int64_t run;
	int rc;

	if (!n)
		return 0;
	if ((rc = expt_store_begin(st, err)))
		return rc;
	if ((rc = expt_store_run_rowid(st, run_id, &run, err)))
		goto fail;
	if (++st->gen == 0) {
		for (i = 0; i < st->keys_cap; i++)
			st->keys[i].gen = 0;
		st->gen = 1;
	}
	EXPT_TRY_GROW(st->pt_slot, n, st->pt_cap, rc);
	if (rc) {
		rc = expt_store_nomem(err);
		goto fail;
	}

	/* Pass 1: each point's key slot (consecutive points usually share a key: no lookup). */
	for (i = 0; i < n; i++) {
		const char *key = pts[i].key;

		if (!prev || (key != prev && (!key || strcmp(key, prev)))) {
			struct expt_store_key *e = NULL;

			if (!key || !*key) {
				rc = expt_err_set(err, EXPT_EUSAGE, "metric point %zu has no key",
						  i + 1);
				goto fail;
			}
			if ((rc = key_entry(st, key, &e, err)))
				goto fail;
			if (e->gen != st->gen) {
				EXPT_TRY_GROW(st->slots, nslots + 1, st->slots_cap, rc);
				if (rc) {
					rc = expt_store_nomem(err);
					goto fail;
				}
				memset(&st->slots[nslots], 0, sizeof(st->slots[0]));
				st->slots[nslots].key_id = e->id;
				e->gen = st->gen;
				e->slot = (uint32_t)nslots++;
			}
			slot = e->slot;
			prev = key;
		}
		slot_add(&st->slots[slot], &pts[i]);
		st->pt_slot[i] = slot;
	}

	/* Pass 2: pack the points of each key contiguously, in call order. */
	for (i = 0; i < nslots; i++) {
		st->slots[i].start = st->slots[i].cur = pos;
		pos += st->slots[i].count;
	}
	EXPT_TRY_GROW(st->blob, n * POINT_BYTES, st->blob_cap, rc);
	if (rc) {
		rc = expt_store_nomem(err);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		struct expt_store_slot *sl = &st->slots[st->pt_slot[i]];
		pack(st->blob + sl->cur++ * POINT_BYTES, pts[i].step, pts[i].time_ms, pts[i].value);
	}
	for (i = 0; i < nslots; i++)
		if ((rc = flush_slot(st, run, &st->slots[i], err)))
			goto fail;
	return expt_store_commit(st, err);
fail:
	expt_store_rollback(st);
	return rc;
}

void expt_metric_summaries_release(struct expt_metric_summaries *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].run_id);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static double col_real(sqlite3_stmt *s, int i)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* Appends one summary row (columns key, last, min, max, last_step, count from col). */
static int push_summary(struct expt_store *st, sqlite3_stmt *s, int col, const char *run_id,
			struct expt_metric_summaries *out, struct expt_err *err)
{
	const char *name = key_name(st, sqlite3_column_int64(s, col), err);
	struct expt_metric_summary *m;
	char *key, *rid = NULL;
	int rc;

	if (!name)
		return expt_store_stmt_failed(err);
	EXPT_TRY_GROW(out->v, out->n + 1, out->cap, rc);
	if (rc || !(key = expt_strdup(name)))
		return expt_store_nomem(err);
	if (run_id && !(rid = expt_strdup(run_id))) {
		free(key);
		return expt_store_nomem(err);
	}
	m = &out->v[out->n++];
	m->key = key;
	m->run_id = rid;
	m->last = col_real(s, col + 1);
	m->min = col_real(s, col + 2);
	m->max = col_real(s, col + 3);
	m->last_step = sqlite3_column_int64(s, col + 4);
	m->count = sqlite3_column_int64(s, col + 5);
	return 0;
}

static int summary_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct expt_metric_summary *)a)->key,
		      ((const struct expt_metric_summary *)b)->key);
}

int expt_store_metric_summaries(struct expt_store *st, const char *run_id,
				struct expt_metric_summaries *out, struct expt_err *err)
{
	sqlite3_stmt *s;
	size_t base = out->n;
	int64_t run;
	int rc = 0, step;

	/* The run lookup is inside the query: each statement is a read transaction of its own (WAL
	 * locks, a few syscalls), and compare may call this for thousands of runs. */
	if (!(s = expt_store_stmt(
		  st, STMT_RUN_SUMMARIES,
		  "SELECT key, last, min, max, last_step, count FROM metric_summaries"
		  " WHERE run = (SELECT id FROM runs WHERE run_id = ?1)",
		  err)))
		return expt_store_stmt_failed(err);
	sqlite3_bind_text(s, 1, run_id ? run_id : "", -1, SQLITE_STATIC);
	while ((step = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = push_summary(st, s, 0, NULL, out, err)))
			break;
	if (!rc && step != SQLITE_DONE)
		rc = expt_store_dberr(st, err, "cannot read metric summaries");
	sqlite3_reset(s);
	if (rc) /* nothing half read is left behind */
		while (out->n > base) {
			out->n--;
			free(out->v[out->n].key);
			free(out->v[out->n].run_id);
		}
	if (!rc && out->n == base)
		rc = expt_store_run_rowid(st, run_id, &run, err); /* none: is there such a run? */
	if (!rc && out->n > base)
		qsort(out->v + base, out->n - base, sizeof(*out->v), summary_name_cmp);
	return rc;
}

struct run_ref {
	int64_t id;
	char *run_id;
};

static int run_ref_cmp(const void *a, const void *b)
{
	const struct run_ref *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

int expt_store_experiment_metric_summaries(struct expt_store *st, const char *experiment,
					   struct expt_metric_summaries *out, struct expt_err *err)
{
	/* Two sequential reads merged in C, not a join: the run ids come from an index (covering
	 * for an experiment, the run_id index otherwise) and the summaries from one range of their
	 * primary key. A join would seek twice per summary row, which costs several times more
	 * for the thousands of runs compare shows. */
	sqlite3_stmt *r = NULL, *s = NULL;
	struct run_ref *runs = NULL;
	size_t n = 0, cap = 0, i = 0, base = out->n;
	int rc, sorted = 1;

	if ((rc =
		 expt_store_prepare(st,
				    experiment ? "SELECT id, run_id FROM runs WHERE experiment = ?1"
					       : "SELECT id, run_id FROM runs",
				    &r, err)))
		goto out;
	if (experiment)
		sqlite3_bind_text(r, 1, experiment, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(r)) == SQLITE_ROW) {
		int oom;

		EXPT_TRY_GROW(runs, n + 1, cap, oom);
		if (oom || expt_store_col_dup(r, 1, &runs[n].run_id)) {
			rc = expt_store_nomem(err);
			goto out;
		}
		runs[n].id = sqlite3_column_int64(r, 0);
		if (n && runs[n].id < runs[n - 1].id)
			sorted = 0;
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot list runs");
		goto out;
	}
	rc = 0;
	if (!n)
		goto out;
	/* Row ids and seqs are both handed out under the write lock, so id order is creation
	 * order. */
	if (!sorted)
		qsort(runs, n, sizeof(*runs), run_ref_cmp);
	if ((rc = expt_store_prepare(st,
				     "SELECT run, key, last, min, max, last_step, count"
				     " FROM metric_summaries WHERE run BETWEEN ?1 AND ?2"
				     " ORDER BY run, key",
				     &s, err)))
		goto out;
	sqlite3_bind_int64(s, 1, runs[0].id);
	sqlite3_bind_int64(s, 2, runs[n - 1].id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t run = sqlite3_column_int64(s, 0);

		while (i < n && runs[i].id < run)
			i++;
		if (i == n)
			break;
		if (runs[i].id != run) /* a run of another experiment inside the range */
			continue;
		if ((rc = push_summary(st, s, 1, runs[i].run_id, out, err)))
			goto out;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = expt_store_dberr(st, err, "cannot read metric summaries");
		goto out;
	}
	rc = 0;
out:
	if (rc) /* nothing half read is left behind */
		while (out->n > base) {
			out->n--;
			free(out->v[out->n].key);
			free(out->v[out->n].run_id);
		}
	for (i = 0; i < n; i++)
		free(runs[i].run_id);
	free(runs);
	sqlite3_finalize(r);
	sqlite3_finalize(s);
	return rc;
}

struct hist_row {
	struct expt_metric_row r;
	size_t idx;
};

static int hist_cmp(const void *a, const void *b)
{
	const struct hist_row *x = a, *y = b;

	if (x->r.step != y->r.step)
		return x->r.step < y->r.step ? -1 : 1;
	if (x->r.time_ms != y->r.time_ms)
		return x->r.time_ms < y->r.time_ms ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int expt_store_metric_history(struct expt_store *st, const char *run_id, const char *key,
			      struct expt_metric_row **rows, size_t *n, struct expt_err *err)
{
	struct hist_row *h = NULL;
	size_t nh = 0, cap = 0, i;
	sqlite3_stmt *s = NULL;
	int64_t run;
	int rc;

	*rows = NULL;
	*n = 0;
	if ((rc = expt_store_run_rowid(st, run_id, &run, err)))
		return rc;
	if ((rc = expt_store_prepare(st,
				     "SELECT n, data FROM metric_chunks WHERE run = ?1 AND key ="
				     " (SELECT id FROM metric_keys WHERE name = ?2) ORDER BY id",
				     &s, err)))
		return rc;
	sqlite3_bind_int64(s, 1, run);
	sqlite3_bind_text(s, 2, key ? key : "", -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t k = sqlite3_column_int64(s, 0);
		const unsigned char *data = sqlite3_column_blob(s, 1);

		if (k < 0 || (int64_t)sqlite3_column_bytes(s, 1) != k * POINT_BYTES) {
			rc = expt_err_set(err, EXPT_ESTORE, "corrupt metric chunk for %s of run %s",
					  key, run_id);
			goto out;
		}
		EXPT_TRY_GROW(h, nh + (size_t)k, cap, rc);
		if (rc) {
			rc = expt_store_nomem(err);
			goto out;
		}
		for (i = 0; i < (size_t)k; i++, nh++) {
			unpack(data + i * POINT_BYTES, &h[nh].r);
			h[nh].idx = nh;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = expt_store_dberr(st, err, "cannot read metrics");
		goto out;
	}
	rc = 0;
	if (!nh)
		goto out;
	qsort(h, nh, sizeof(*h), hist_cmp);
	if (!(*rows = expt_malloc(nh * sizeof(**rows)))) {
		rc = expt_store_nomem(err);
		goto out;
	}
	for (i = 0; i < nh; i++)
		(*rows)[i] = h[i].r;
	*n = nh;
out:
	free(h);
	sqlite3_finalize(s);
	return rc;
}
