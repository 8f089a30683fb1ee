/* Records, the metric key table, and the small encoders the sinks share (JSON numbers, base64,
 * PNG header, histogram buckets). */
#include "track.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

struct expt_rec *expt_rec_new(void)
{
	struct expt_rec *r = expt_calloc(1, sizeof(*r));

	if (r)
		atomic_init(&r->refs, 1);
	return r;
}

void expt_rec_ref(struct expt_rec *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void expt_rec_unref(struct expt_rec *r)
{
	if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(r->key);
	free(r->value);
	free(r->png);
	free(r->limits);
	free(r->counts);
	free(r);
}

void expt_keys_init(struct expt_keys *k)
{
	memset(k, 0, sizeof(*k));
}

void expt_keys_release(struct expt_keys *k)
{
	for (uint32_t i = 0; i < k->n; i++)
		free(k->chunks[i / EXPT_KEYS_CHUNK][i % EXPT_KEYS_CHUNK]);
	for (size_t c = 0; c < EXPT_KEYS_MAX_CHUNKS && k->chunks[c]; c++)
		free(k->chunks[c]);
	free(k->index);
	expt_keys_init(k);
}

static uint32_t key_hash(const char *s, size_t len)
{
	return expt_fnv1a32(s, len);
}

static void index_put(struct expt_keys_slot *idx, size_t cap, uint32_t id, uint32_t hash)
{
	size_t i = hash & (cap - 1);

	while (idx[i].id1)
		i = (i + 1) & (cap - 1);
	idx[i].id1 = id + 1;
	idx[i].hash = hash;
}

int expt_keys_intern(struct expt_keys *k, const char *key, size_t len, uint32_t *id)
{
	uint32_t h = key_hash(key, len);
	size_t i;

	if (k->index_cap) {
		for (i = h & (k->index_cap - 1); k->index[i].id1;
		     i = (i + 1) & (k->index_cap - 1)) {
			const char *name;
			if (k->index[i].hash != h)
				continue;
			name = expt_keys_name(k, k->index[i].id1 - 1);
			if (!strncmp(name, key, len) && !name[len]) {
				*id = k->index[i].id1 - 1;
				return 0;
			}
		}
	}
	if (k->n >= (uint32_t)EXPT_KEYS_CHUNK * EXPT_KEYS_MAX_CHUNKS)
		return -1;
	/* Keep the index at most half full. */
	if ((size_t)(k->n + 1) * 2 > k->index_cap) {
		size_t ncap = k->index_cap ? k->index_cap * 2 : 64;
		struct expt_keys_slot *nidx = expt_calloc(ncap, sizeof(*nidx));
		if (!nidx)
			return -2;
		for (i = 0; i < k->index_cap; i++)
			if (k->index[i].id1)
				index_put(nidx, ncap, k->index[i].id1 - 1, k->index[i].hash);
		free(k->index);
		k->index = nidx;
		k->index_cap = ncap;
	}
	if (!k->chunks[k->n / EXPT_KEYS_CHUNK] &&
	    !(k->chunks[k->n / EXPT_KEYS_CHUNK] = expt_calloc(EXPT_KEYS_CHUNK, sizeof(char *))))
		return -2;
	if (!(k->chunks[k->n / EXPT_KEYS_CHUNK][k->n % EXPT_KEYS_CHUNK] = expt_strndup(key, len)))
		return -2;
	index_put(k->index, k->index_cap, k->n, h);
	*id = k->n++;
	return 0;
}

void expt_json_double(struct expt_buf *b, double v)
{
	char tmp[40];

	if (isnan(v)) {
		expt_buf_adds(b, "\"NaN\"");
		return;
	}
	if (isinf(v)) {
		expt_buf_adds(b, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
		return;
	}
	expt_fmt_double(v, tmp, sizeof(tmp));
	expt_buf_adds(b, tmp);
}

void expt_base64(struct expt_buf *b, const unsigned char *d, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];
	size_t i;

	expt_buf_grow(b, (len + 2) / 3 * 4);
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		q[0] = tab[v >> 18];
		q[1] = tab[(v >> 12) & 63];
		q[2] = tab[(v >> 6) & 63];
		q[3] = tab[v & 63];
		expt_buf_add(b, q, 4);
	}
	if (i < len) {
		uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < len ? (uint32_t)d[i + 1] << 8 : 0);
		q[0] = tab[v >> 18];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		q[3] = '=';
		expt_buf_add(b, q, 4);
	}
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int expt_png_info(const unsigned char *d, size_t len, uint32_t *w, uint32_t *h, uint32_t *ch)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

	/* Signature, then the IHDR chunk: length 13, "IHDR", width, height, depth, color type. */
	if (len < 33 || memcmp(d, sig, 8) || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4))
		return -1;
	*w = be32(d + 16);
	*h = be32(d + 20);
	switch (d[25]) {
	case 0: /* grayscale */
		*ch = 1;
		break;
	case 4: /* grayscale + alpha */
		*ch = 2;
		break;
	case 2: /* RGB */
	case 3: /* palette: decoded as RGB */
		*ch = 3;
		break;
	case 6: /* RGBA */
		*ch = 4;
		break;
	default:
		return -1;
	}
	if (!*w || !*h)
		return -1;
	return 0;
}

int expt_histogram_values(struct expt_rec *r, const double *values, size_t n, size_t k)
{
	double lo = INFINITY, hi = -INFINITY, w;
	size_t num = 0;
	int wide;

	r->sum = r->sum_squares = 0;
	for (size_t i = 0; i < n; i++) {
		double v = values[i];
		if (!isfinite(v))
			continue;
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		r->sum += v;
		r->sum_squares += v * v;
		num++;
	}
	r->num = (double)num;
	if (!num) {
		r->min = r->max = 0;
		r->nb = 0;
		return 0;
	}
	r->min = lo;
	r->max = hi;
	if (lo == hi)
		k = 1;
	r->limits = expt_calloc(k, sizeof(double));
	r->counts = expt_calloc(k, sizeof(double));
	if (!r->limits || !r->counts)
		return -1; /* the record's unref frees what was allocated */
	r->nb = k;
	/* hi - lo overflows for values spanning more than DBL_MAX: then every width and limit
	 * is computed from scaled ends, which stay finite. */
	wide = !isfinite(hi - lo);
	w = wide ? hi / (double)k - lo / (double)k : (hi - lo) / (double)k;
	for (size_t i = 0; i < k; i++) {
		double t = (double)(i + 1) / (double)k;
		if (i + 1 == k)
			r->limits[i] = hi;
		else
			r->limits[i] = wide ? lo * (1 - t) + hi * t : lo + w * (double)(i + 1);
	}
	for (size_t i = 0; i < n; i++) {
		double v = values[i], x;
		size_t b;
		if (!isfinite(v))
			continue;
		/* Bucket i holds (limits[i-1], limits[i]]; the first also holds min. The estimate
		 * is checked before the cast (a NaN or huge double to size_t is undefined). */
		x = !(w > 0) ? 0 : wide ? (v / (double)k - lo / (double)k) / w : (v - lo) / w;
		if (!(x >= 0))
			b = 0;
		else if (x >= (double)k)
			b = k - 1;
		else
			b = (size_t)x;
		while (b > 0 && v <= r->limits[b - 1])
			b--;
		while (b + 1 < k && v > r->limits[b])
			b++;
		r->counts[b] += 1;
	}
	return 0;
}

int expt_histogram_buckets(struct expt_rec *r, const double *edges, const double *counts, size_t nb)
{
	if (!nb)
		return -1;
	for (size_t i = 0; i < nb; i++) {
		if (!isfinite(edges[i]) || !isfinite(edges[i + 1]) || !(edges[i] < edges[i + 1]) ||
		    !isfinite(counts[i]) || counts[i] < 0)
			return -1;
	}
	r->limits = expt_calloc(nb, sizeof(double));
	r->counts = expt_calloc(nb, sizeof(double));
	if (!r->limits || !r->counts)
		return -2;
	r->nb = nb;
	r->min = edges[0];
	r->max = edges[nb];
	r->num = r->sum = r->sum_squares = 0;
	for (size_t i = 0; i < nb; i++) {
		/* Without the values, the sums take each value at its bucket's center. */
		double c = (edges[i] + edges[i + 1]) / 2;
		r->limits[i] = edges[i + 1];
		r->counts[i] = counts[i];
		r->num += counts[i];
		r->sum += counts[i] * c;
		r->sum_squares += counts[i] * c * c;
	}
	return 0;
}

int expt_param_type(const char *v, double *num)
{
	if (!strcmp(v, "true") || !strcmp(v, "True")) {
		*num = 1;
		return 2;
	}
	if (!strcmp(v, "false") || !strcmp(v, "False")) {
		*num = 0;
		return 2;
	}
	if (!expt_parse_double(v, num))
		return 1;
	return 0;
}

/* ---- files the store and stdout sinks write ---- */

#define NAME_MAX_KEEP 96 /* bytes of a long key kept in its file name, before the hash */

/* Keys become file names: anything but [A-Za-z0-9._-] turns into '_'. A key too long for a
 * file name (the limit is 255 bytes) keeps its first NAME_MAX_KEEP bytes and gets a hash of the
 * whole key, so that long keys with one prefix stay apart. */
static void safe_name(struct expt_buf *b, const char *key)
{
	size_t len = strlen(key);
	size_t keep = len > NAME_MAX_KEEP * 2 ? NAME_MAX_KEEP : len;
	for (size_t i = 0; i < keep; i++) {
		char c = key[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
		expt_buf_addch(b, ok ? c : '_');
	}
	if (len > NAME_MAX_KEEP * 2)
		expt_buf_addf(b, "-%016llx", (unsigned long long)expt_fnv1a64(key, len));
	if (!strcmp(key, ".") || !strcmp(key, ".."))
		expt_buf_addch(b, '_');
}

/* Errors no retry can cure: the entry is rejected (skipped and counted) instead. */
static int permanent_errno(int e)
{
	return e == ENAMETOOLONG || e == EINVAL || e == EILSEQ;
}

int expt_image_write(const struct expt_sink_ctx *ctx, const struct expt_ev *e, uint64_t *seq,
		     char **out, struct expt_err *err)
{
	const struct expt_rec *r = e->u.rec;
	struct expt_buf name = EXPT_BUF_INIT;
	char *dir, *path = NULL;
	int rc, saved = 0;

	*out = NULL;
	safe_name(&name, r->key);
	dir = name.oom ? NULL : expt_asprintf("%s/images/%s", ctx->artifact_dir, name.buf);
	expt_buf_release(&name);
	if (!dir)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	if (strlen(dir) + 64 >= PATH_MAX) {
		expt_err_set(err, EXPT_EFAIL, "image '%s': path under '%s' too long", r->key,
			     ctx->artifact_dir);
		free(dir);
		return EXPT_SINK_REJECTED;
	}
	if ((rc = expt_mkdirs(dir, err))) {
		saved = errno;
		goto out;
	}
	/* The same key and step twice (two handles, or a retried write) must not overwrite. */
	do {
		free(path);
		if (e->step >= 0)
			path = expt_asprintf("%s/step-%lld-%llu.png", dir, (long long)e->step,
					     (unsigned long long)(*seq)++);
		else
			path = expt_asprintf("%s/t-%lld-%llu.png", dir, (long long)e->time_ms,
					     (unsigned long long)(*seq)++);
	} while (path && !access(path, F_OK));
	if (!path) {
		rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = expt_write_file(path, r->png, r->png_len, err))) {
		saved = errno;
		goto out;
	}
out:
	free(dir);
	if (rc) {
		free(path);
		return permanent_errno(saved) ? EXPT_SINK_REJECTED : rc;
	}
	*out = path;
	return 0;
}

static void add_doubles(struct expt_buf *b, const char *k, const double *v, size_t n)
{
	expt_buf_addf(b, ",\"%s\":[", k);
	for (size_t i = 0; i < n; i++) {
		if (i)
			expt_buf_addch(b, ',');
		expt_json_double(b, v[i]);
	}
	expt_buf_addch(b, ']');
}

void expt_histogram_fields(struct expt_buf *b, const struct expt_ev *e)
{
	const struct expt_rec *r = e->u.rec;

	expt_buf_adds(b, "\"key\":");
	expt_buf_add_json_str(b, r->key);
	if (e->step >= 0)
		expt_buf_addf(b, ",\"step\":%lld", (long long)e->step);
	expt_buf_adds(b, ",\"min\":");
	expt_json_double(b, r->min);
	expt_buf_adds(b, ",\"max\":");
	expt_json_double(b, r->max);
	expt_buf_adds(b, ",\"num\":");
	expt_json_double(b, r->num);
	expt_buf_adds(b, ",\"sum\":");
	expt_json_double(b, r->sum);
	expt_buf_adds(b, ",\"sum_squares\":");
	expt_json_double(b, r->sum_squares);
	add_doubles(b, "limits", r->limits, r->nb);
	add_doubles(b, "counts", r->counts, r->nb);
}

void expt_histogram_json(struct expt_buf *b, const struct expt_ev *e)
{
	expt_buf_addch(b, '{');
	expt_histogram_fields(b, e);
	expt_buf_addch(b, '}');
}
