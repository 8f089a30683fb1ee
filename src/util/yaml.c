/* The YAML tree: built from libfyaml events so that every node keeps its file:line:col, with
 * anchors, aliases and merge keys resolved here under hard size limits. */
#include "yaml.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* libfyaml exports this but 0.7.12 does not declare it. Without it errors are only printed
 * through the output callback, so it is weak: when missing, we fall back to that text. */
void fy_diag_set_collect_errors(struct fy_diag *diag, bool collect_errors) __attribute__((weak));

/* ---- construction and destruction ---- */

struct expt_ynode *expt_ynode_new(enum expt_ykind kind, const char *file, int line, int col)
{
	struct expt_ynode *n = expt_xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->file = file;
	n->line = line;
	n->col = col;
	n->type = EXPT_VT_STR;
	return n;
}

struct expt_ynode *expt_ynode_plain(const char *text, const char *file, int line, int col)
{
	struct expt_ynode *n = expt_ynode_new(EXPT_Y_SCALAR, file, line, col);
	char *canon = NULL;

	n->text = expt_xstrdup(text);
	n->type = expt_scalar_type(text, &canon);
	free(canon);
	return n;
}

struct expt_ynode *expt_ynode_str(const char *text, const char *file, int line, int col)
{
	struct expt_ynode *n = expt_ynode_new(EXPT_Y_SCALAR, file, line, col);

	n->text = expt_xstrdup(text);
	n->type = EXPT_VT_STR;
	return n;
}

void expt_ynode_free(struct expt_ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++) {
		if (n->keys)
			expt_ynode_free(n->keys[i]);
		expt_ynode_free(n->vals[i]);
	}
	free(n->keys);
	free(n->vals);
	free(n->text);
	free(n);
}

struct expt_ynode *expt_ynode_copy(const struct expt_ynode *n)
{
	struct expt_ynode *c;
	size_t i;

	if (!n)
		return NULL;
	c = expt_ynode_new(n->kind, n->file, n->line, n->col);
	c->type = n->type;
	c->quoted = n->quoted;
	c->text = expt_xstrdup(n->text);
	if (n->n) {
		c->cap = n->n;
		c->vals = expt_xcalloc(n->n, sizeof(*c->vals));
		if (n->keys)
			c->keys = expt_xcalloc(n->n, sizeof(*c->keys));
		for (i = 0; i < n->n; i++) {
			if (n->keys)
				c->keys[i] = expt_ynode_copy(n->keys[i]);
			c->vals[i] = expt_ynode_copy(n->vals[i]);
		}
		c->n = n->n;
	}
	return c;
}

/* ---- map and list access ---- */

long expt_ynode_find(const struct expt_ynode *map, const char *key)
{
	size_t i;

	if (!map || map->kind != EXPT_Y_MAP)
		return -1;
	for (i = 0; i < map->n; i++)
		if (!strcmp(map->keys[i]->text, key))
			return (long)i;
	return -1;
}

const struct expt_ynode *expt_ynode_get(const struct expt_ynode *map, const char *key)
{
	long i = expt_ynode_find(map, key);

	return i < 0 ? NULL : map->vals[i];
}

struct expt_ynode *expt_ynode_getw(struct expt_ynode *map, const char *key)
{
	long i = expt_ynode_find(map, key);

	return i < 0 ? NULL : map->vals[i];
}

static void grow(struct expt_ynode *n, size_t want)
{
	size_t cap = n->cap;

	EXPT_ALLOC_GROW(n->vals, want, n->cap);
	if (n->kind == EXPT_Y_MAP && (n->cap != cap || !n->keys)) {
		n->keys = expt_xrealloc(n->keys, n->cap * sizeof(*n->keys));
	}
}

void expt_ynode_set_at(struct expt_ynode *map, const char *key, struct expt_ynode *val,
		       const struct expt_ynode *key_at)
{
	long i = expt_ynode_find(map, key);

	if (!key_at)
		key_at = val;
	if (i >= 0) {
		expt_ynode_free(map->vals[i]);
		map->vals[i] = val;
		return;
	}
	grow(map, map->n + 1);
	map->keys[map->n] = expt_ynode_str(key, key_at->file, key_at->line, key_at->col);
	map->vals[map->n] = val;
	map->n++;
}

void expt_ynode_set(struct expt_ynode *map, const char *key, struct expt_ynode *val)
{
	expt_ynode_set_at(map, key, val, NULL);
}

struct expt_ynode *expt_ynode_take(struct expt_ynode *map, const char *key)
{
	long i = expt_ynode_find(map, key);
	struct expt_ynode *v;

	if (i < 0)
		return NULL;
	v = map->vals[i];
	expt_ynode_free(map->keys[i]);
	memmove(map->keys + i, map->keys + i + 1, (map->n - (size_t)i - 1) * sizeof(*map->keys));
	memmove(map->vals + i, map->vals + i + 1, (map->n - (size_t)i - 1) * sizeof(*map->vals));
	map->n--;
	return v;
}

void expt_ynode_del(struct expt_ynode *map, const char *key)
{
	expt_ynode_free(expt_ynode_take(map, key));
}

void expt_ynode_push(struct expt_ynode *seq, struct expt_ynode *val)
{
	grow(seq, seq->n + 1);
	seq->vals[seq->n++] = val;
}

int expt_ynode_is_null(const struct expt_ynode *n)
{
	return n && n->kind == EXPT_Y_SCALAR && n->type == EXPT_VT_NULL;
}

void expt_ynode_merge(struct expt_ynode *base, const struct expt_ynode *over)
{
	size_t i;

	for (i = 0; i < over->n; i++) {
		const char *key = over->keys[i]->text;
		const struct expt_ynode *ov = over->vals[i];
		struct expt_ynode *bv = expt_ynode_getw(base, key);

		if (expt_ynode_is_null(ov))
			expt_ynode_del(base, key);
		else if (bv && bv->kind == EXPT_Y_MAP && ov->kind == EXPT_Y_MAP)
			expt_ynode_merge(bv, ov);
		else
			expt_ynode_set_at(base, key, expt_ynode_copy(ov), over->keys[i]);
	}
}

void expt_ynode_describe(const struct expt_ynode *n, char *out, size_t size)
{
	struct expt_buf b = EXPT_BUF_INIT;
	const unsigned char *p;
	size_t shown = 0;

	if (n->kind == EXPT_Y_MAP) {
		snprintf(out, size, "a map");
		return;
	}
	if (n->kind == EXPT_Y_SEQ) {
		snprintf(out, size, "a list");
		return;
	}
	expt_buf_addch(&b, '\'');
	for (p = (const unsigned char *)n->text; *p; p++) {
		if (++shown > 60) {
			expt_buf_adds(&b, "...");
			break;
		}
		/* Never let spec text drive the terminal. */
		if (*p < 0x20 || *p == 0x7f)
			expt_buf_addf(&b, "\\x%02x", *p);
		else
			expt_buf_addch(&b, (char)*p);
	}
	expt_buf_addch(&b, '\'');
	snprintf(out, size, "%s", b.buf);
	expt_buf_release(&b);
}

/* ---- scalars ---- */

static int all_of(const char *s, const char *set)
{
	if (!*s)
		return 0;
	return strspn(s, set) == strlen(s);
}

static int is_float_text(const char *s)
{
	const char *p = s;
	int digits = 0;

	if (*p == '+' || *p == '-')
		p++;
	if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF"))
		return 1;
	if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN")))
		return 1;
	while (isdigit((unsigned char)*p)) {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			p++;
			digits++;
		}
	}
	if (!digits)
		return 0;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return 0;
		while (isdigit((unsigned char)*p))
			p++;
	}
	return *p == '\0';
}

enum expt_vtype expt_scalar_type(const char *s, char **canon)
{
	char buf[64];

	*canon = NULL;
	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL")) {
		*canon = expt_xstrdup("");
		return EXPT_VT_NULL;
	}
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
		*canon = expt_xstrdup("true");
		return EXPT_VT_BOOL;
	}
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
		*canon = expt_xstrdup("false");
		return EXPT_VT_BOOL;
	}
	{
		const char *d = (*s == '+' || *s == '-') ? s + 1 : s;
		int base = 0;

		if (all_of(d, "0123456789"))
			base = 10;
		else if (d == s && !strncmp(s, "0o", 2) && all_of(s + 2, "01234567"))
			base = 8;
		else if (d == s && !strncmp(s, "0x", 2) && all_of(s + 2, "0123456789abcdefABCDEF"))
			base = 16;
		if (base) {
			char *end;
			long long v;

			errno = 0;
			v = strtoll(base == 10 ? s : s + 2, &end, base);
			if (!errno && !*end) {
				*canon = expt_xasprintf("%lld", v);
				return EXPT_VT_INT;
			}
			if (base != 10) /* too big for an int64: keep the text */
				return (*canon = expt_xstrdup(s)), EXPT_VT_STR;
			/* A decimal too big for int64 is still a number. */
		}
	}
	if (is_float_text(s)) {
		const char *p = s;
		double v;

		if (strstr(s, "inf") || strstr(s, "Inf") || strstr(s, "INF"))
			v = *p == '-' ? -INFINITY : INFINITY;
		else if (strstr(s, "nan") || strstr(s, "NaN") || strstr(s, "NAN"))
			v = NAN;
		else
			v = strtod(s, NULL); /* overflow gives ±HUGE_VAL: inf */
		expt_fmt_float(v, buf, sizeof(buf));
		*canon = expt_xstrdup(buf);
		return EXPT_VT_FLOAT;
	}
	*canon = expt_xstrdup(s);
	return EXPT_VT_STR;
}

static char *canon_of(const struct expt_ynode *n)
{
	char *canon = NULL;

	if (n->type == EXPT_VT_STR)
		return expt_xstrdup(n->text);
	expt_scalar_type(n->text, &canon);
	return canon;
}

void expt_ynode_json(struct expt_buf *b, const struct expt_ynode *n)
{
	size_t i;

	switch (n->kind) {
	case EXPT_Y_MAP:
		expt_buf_addch(b, '{');
		for (i = 0; i < n->n; i++) {
			if (i)
				expt_buf_addch(b, ',');
			expt_buf_add_json_str(b, n->keys[i]->text);
			expt_buf_addch(b, ':');
			expt_ynode_json(b, n->vals[i]);
		}
		expt_buf_addch(b, '}');
		return;
	case EXPT_Y_SEQ:
		expt_buf_addch(b, '[');
		for (i = 0; i < n->n; i++) {
			if (i)
				expt_buf_addch(b, ',');
			expt_ynode_json(b, n->vals[i]);
		}
		expt_buf_addch(b, ']');
		return;
	case EXPT_Y_SCALAR:
		break;
	}
	switch (n->type) {
	case EXPT_VT_NULL:
		expt_buf_adds(b, "null");
		break;
	case EXPT_VT_BOOL:
	case EXPT_VT_INT:
	case EXPT_VT_FLOAT: {
		char *c = canon_of(n);
		/* JSON has no infinities or NaN: those travel as strings. */
		if (n->type == EXPT_VT_FLOAT && (strstr(c, "inf") || strstr(c, "nan")))
			expt_buf_add_json_str(b, c);
		else
			expt_buf_adds(b, c);
		free(c);
		break;
	}
	default:
		expt_buf_add_json_str(b, n->text);
		break;
	}
}

void expt_ynode_value(const struct expt_ynode *n, struct expt_value *out)
{
	if (n->kind != EXPT_Y_SCALAR) {
		struct expt_buf b = EXPT_BUF_INIT;
		expt_ynode_json(&b, n);
		out->type = EXPT_VT_JSON;
		out->text = expt_buf_detach(&b, NULL);
		return;
	}
	out->type = n->type;
	out->text = canon_of(n);
}

/* ---- parsing ---- */

struct anchor {
	char *name;
	struct expt_ynode *node; /* an owned copy: the original may be freed or moved */
};

struct frame {
	struct expt_ynode *node;
	struct expt_ynode *key;	    /* maps: the key waiting for its value (owned until placed) */
	char *anchor;		    /* registered when the collection ends */
	struct expt_ynode **merges; /* maps: values of "<<" keys, applied at the end (borrowed) */
	size_t nmerges, mcap;
	struct expt_ynode *merge_owned; /* the "<<" value nodes, owned (a list) */
};

struct parser {
	const char *data; /* the document's bytes, for the raw text of single-quoted scalars */
	size_t len;
	const char *file;
	struct expt_diags *diags;
	struct frame stack[EXPT_YAML_MAX_DEPTH + 1];
	int depth;
	struct anchor *anchors;
	size_t nanchors, acap;
	size_t nodes; /* nodes created, aliases included */
	struct expt_ynode *root;
	int docs;
	int failed;
	struct expt_buf fyout; /* what libfyaml printed, for errors it does not collect */
};

static size_t count_nodes(const struct expt_ynode *n)
{
	size_t c = 1, i;

	for (i = 0; i < n->n; i++)
		c += (n->keys ? 1 : 0) + count_nodes(n->vals[i]);
	return c;
}

static void perr(struct parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void perr(struct parser *p, int line, int col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	expt_diag_add(p->diags, p->file, line, col, "", "%s", msg);
	p->failed = 1;
}

static void mark_of(struct fy_event *e, int *line, int *col)
{
	const struct fy_mark *m = fy_event_start_mark(e);

	*line = m ? m->line + 1 : 1;
	*col = m ? m->column + 1 : 1;
}

static int count(struct parser *p, size_t more, int line, int col);

static void free_frame(struct frame *f)
{
	expt_ynode_free(f->key);
	free(f->anchor);
	free(f->merges);
	expt_ynode_free(f->merge_owned);
	f->key = NULL;
	f->anchor = NULL;
	f->merges = NULL;
	f->merge_owned = NULL;
	f->nmerges = f->mcap = 0;
}

/* Takes ownership of name. The copy counts against the node budget like any alias would. */
static int add_anchor(struct parser *p, char *name, const struct expt_ynode *n)
{
	if (count(p, count_nodes(n), n->line, n->col)) {
		free(name);
		return -1;
	}
	EXPT_ALLOC_GROW(p->anchors, p->nanchors + 1, p->acap);
	p->anchors[p->nanchors].name = name;
	p->anchors[p->nanchors].node = expt_ynode_copy(n);
	p->nanchors++;
	return 0;
}

static struct expt_ynode *find_anchor(struct parser *p, const char *name)
{
	size_t i;

	/* Latest definition wins, as YAML says. */
	for (i = p->nanchors; i-- > 0;)
		if (!strcmp(p->anchors[i].name, name))
			return p->anchors[i].node;
	return NULL;
}

/* Places a finished node into its parent (or makes it the root). Takes ownership of n. */
static void place(struct parser *p, struct expt_ynode *n)
{
	struct frame *f;

	if (p->depth == 0) {
		if (p->root)
			expt_ynode_free(n);
		else
			p->root = n;
		return;
	}
	f = &p->stack[p->depth - 1];
	if (f->node->kind == EXPT_Y_SEQ) {
		expt_ynode_push(f->node, n);
		return;
	}
	if (!f->key) {
		if (n->kind != EXPT_Y_SCALAR) {
			perr(p, n->line, n->col, "map keys must be strings, not %s",
			     n->kind == EXPT_Y_MAP ? "maps" : "lists");
			/* Keep the pairing of keys and values in step. */
			f->key = expt_ynode_str("", p->file, n->line, n->col);
			expt_ynode_free(n);
			return;
		}
		n->type = EXPT_VT_STR; /* keys are names, whatever they look like */
		f->key = n;
		return;
	}
	if (!f->key->quoted && !strcmp(f->key->text, "<<")) {
		/* A merge key: its map (or list of maps) fills in keys this map lacks, at the end.
		 */
		if (!f->merge_owned)
			f->merge_owned = expt_ynode_new(EXPT_Y_SEQ, p->file, n->line, n->col);
		expt_ynode_push(f->merge_owned, n);
		expt_ynode_free(f->key);
		f->key = NULL;
		return;
	}
	if (f->node->n >= EXPT_YAML_MAX_MAP) {
		perr(p, f->key->line, f->key->col, "a map with more than %d entries",
		     EXPT_YAML_MAX_MAP);
		expt_ynode_free(n);
		expt_ynode_free(f->key);
		f->key = NULL;
		return;
	}
	grow(f->node, f->node->n + 1);
	f->node->keys[f->node->n] = f->key;
	f->node->vals[f->node->n] = n;
	f->node->n++;
	f->key = NULL;
}

static int cmp_key_index(const void *a, const void *b, void *payload)
{
	const struct expt_ynode *map = payload;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(map->keys[i]->text, map->keys[j]->text);

	return c ? c : (i < j ? -1 : i > j);
}

static void check_duplicates(struct parser *p, const struct expt_ynode *map)
{
	size_t *idx, i;

	if (map->n < 2)
		return;
	idx = expt_xmalloc(map->n * sizeof(*idx));
	for (i = 0; i < map->n; i++)
		idx[i] = i;
	qsort_r(idx, map->n, sizeof(*idx), cmp_key_index, (void *)map);
	for (i = 1; i < map->n; i++) {
		const struct expt_ynode *a = map->keys[idx[i - 1]], *b = map->keys[idx[i]];
		if (!strcmp(a->text, b->text)) {
			char d[96];
			expt_ynode_describe(b, d, sizeof(d));
			perr(p, b->line, b->col, "duplicate key %s (first at line %d)", d, a->line);
		}
	}
	free(idx);
}

static void apply_merges(struct parser *p, struct frame *f)
{
	struct expt_ynode *map = f->node;
	size_t i, j;

	if (!f->merge_owned)
		return;
	for (i = 0; i < f->merge_owned->n; i++) {
		const struct expt_ynode *src = f->merge_owned->vals[i];
		const struct expt_ynode *const *srcs = &src;
		size_t nsrcs = 1;

		if (src->kind == EXPT_Y_SEQ) {
			srcs = (const struct expt_ynode *const *)src->vals;
			nsrcs = src->n;
		}
		for (j = 0; j < nsrcs; j++) {
			const struct expt_ynode *m = srcs[j];
			size_t k;

			if (m->kind != EXPT_Y_MAP) {
				perr(p, m->line, m->col, "'<<' merges maps only");
				continue;
			}
			for (k = 0; k < m->n; k++) {
				if (expt_ynode_find(map, m->keys[k]->text) >= 0)
					continue;
				if (map->n >= EXPT_YAML_MAX_MAP) {
					perr(p, m->line, m->col, "a map with more than %d entries",
					     EXPT_YAML_MAX_MAP);
					return;
				}
				expt_ynode_set_at(map, m->keys[k]->text,
						  expt_ynode_copy(m->vals[k]), m->keys[k]);
			}
		}
	}
}

static int count(struct parser *p, size_t more, int line, int col)
{
	p->nodes += more;
	if (p->nodes > EXPT_YAML_MAX_NODES) {
		perr(p, line, col, "the document is too large (more than %d nodes)",
		     EXPT_YAML_MAX_NODES);
		return -1;
	}
	return 0;
}

static char *token_text(struct fy_token *t)
{
	size_t len = 0;
	const char *s;

	if (!t)
		return NULL;
	s = fy_token_get_text(t, &len);
	return s ? expt_xstrndup(s, len) : expt_xstrdup("");
}

/* Applies an explicit tag; returns -1 (after reporting) when the scalar does not fit it. */
static int apply_tag(struct parser *p, struct expt_ynode *n, struct fy_token *tag)
{
	const char *t = fy_token_get_text0(tag);
	static const char core[] = "tag:yaml.org,2002:";
	enum expt_vtype want;
	char *canon = NULL;
	enum expt_vtype got;

	if (!t)
		return 0;
	if (!strcmp(t, "!")) { /* the non-specific tag: a string */
		n->type = EXPT_VT_STR;
		return 0;
	}
	if (strncmp(t, core, sizeof(core) - 1))
		goto bad;
	t += sizeof(core) - 1;
	if (n->kind != EXPT_Y_SCALAR) {
		if ((n->kind == EXPT_Y_MAP && !strcmp(t, "map")) ||
		    (n->kind == EXPT_Y_SEQ && !strcmp(t, "seq")))
			return 0;
		goto bad;
	}
	if (!strcmp(t, "str")) {
		n->type = EXPT_VT_STR;
		return 0;
	}
	if (!strcmp(t, "int"))
		want = EXPT_VT_INT;
	else if (!strcmp(t, "float"))
		want = EXPT_VT_FLOAT;
	else if (!strcmp(t, "bool"))
		want = EXPT_VT_BOOL;
	else if (!strcmp(t, "null"))
		want = EXPT_VT_NULL;
	else
		goto bad;
	got = expt_scalar_type(n->text, &canon);
	free(canon);
	if (got == EXPT_VT_INT && want == EXPT_VT_FLOAT)
		got = EXPT_VT_FLOAT;
	if (got != want) {
		char d[96];
		expt_ynode_describe(n, d, sizeof(d));
		perr(p, n->line, n->col, "%s is not a valid !!%s", d, t);
		return -1;
	}
	n->type = want;
	if (want == EXPT_VT_FLOAT) {
		/* "!!float 3" is the float 3.0: store it so that it reads back as one. */
		char buf[64];
		expt_fmt_float(strtod(n->text, NULL), buf, sizeof(buf));
		if (strcmp(n->text, buf) && !strstr(n->text, "inf") && !strstr(n->text, "nan") &&
		    !strstr(n->text, "Inf") && !strstr(n->text, "NaN") && !strstr(n->text, "INF") &&
		    !strstr(n->text, "NAN")) {
			free(n->text);
			n->text = expt_xstrdup(buf);
		}
	}
	return 0;
bad : {
	const struct fy_mark *m = fy_token_start_mark(tag);
	perr(p, m ? m->line + 1 : n->line, m ? m->column + 1 : n->col, "unsupported tag '%s'",
	     fy_token_get_text0(tag));
	return -1;
}
}

/* The text of a single-quoted scalar from its raw bytes (between the quotes): '' is a quote,
 * and line breaks fold as YAML says (one break → a space, n breaks → n-1 newlines, blanks
 * around breaks dropped). Done here because libfyaml 0.7.12 leaks memory formatting such
 * scalars when they hold five or more '' (found by fuzzing). */
static char *single_quoted(const char *raw, size_t len)
{
	struct expt_buf b = EXPT_BUF_INIT;
	size_t i = 0;

	while (i < len) {
		char c = raw[i];

		if (c == '\'' && i + 1 < len && raw[i + 1] == '\'') {
			expt_buf_addch(&b, '\'');
			i += 2;
		} else if (c == '\n' || c == '\r') {
			size_t breaks = 0;

			while (b.len && (b.buf[b.len - 1] == ' ' || b.buf[b.len - 1] == '\t'))
				expt_buf_setlen(&b, b.len - 1);
			while (i < len && (raw[i] == '\n' || raw[i] == '\r' || raw[i] == ' ' ||
					   raw[i] == '\t')) {
				if (raw[i] == '\n' ||
				    (raw[i] == '\r' && (i + 1 >= len || raw[i + 1] != '\n')))
					breaks++;
				i++;
			}
			if (breaks == 1)
				expt_buf_addch(&b, ' ');
			else
				while (--breaks > 0)
					expt_buf_addch(&b, '\n');
		} else {
			expt_buf_addch(&b, c);
			i++;
		}
	}
	return expt_buf_detach(&b, NULL);
}

static int on_scalar(struct parser *p, struct fy_event *e)
{
	struct fy_token *v = e->scalar.value;
	struct expt_ynode *n;
	const char *s;
	char *own = NULL;
	size_t len = 0;
	int line, col, rc = -1;

	mark_of(e, &line, &col);
	if (count(p, 1, line, col))
		return -1;
	if (v && fy_token_scalar_style(v) == FYSS_SINGLE_QUOTED && p->data) {
		const struct fy_mark *a = fy_token_start_mark(v), *z = fy_token_end_mark(v);
		if (a && z && a->input_pos <= z->input_pos && z->input_pos <= p->len) {
			own = single_quoted(p->data + a->input_pos, z->input_pos - a->input_pos);
			len = strlen(own);
			s = own;
		}
	}
	if (!own)
		s = v ? fy_token_get_text(v, &len) : "";
	if (!s) {
		s = "";
		len = 0;
	}
	if (memchr(s, '\0', len)) {
		perr(p, line, col, "strings cannot contain NUL characters");
		goto out;
	}
	if (!expt_utf8_ok(s, len)) {
		perr(p, line, col, "invalid UTF-8");
		goto out;
	}
	/* libfyaml marks a quoted scalar at its first character inside the quotes; point at the
	 * opening quote, where the reader looks. */
	if (v &&
	    (fy_token_scalar_style(v) == FYSS_SINGLE_QUOTED ||
	     fy_token_scalar_style(v) == FYSS_DOUBLE_QUOTED) &&
	    col > 1)
		col--;
	n = expt_ynode_new(EXPT_Y_SCALAR, p->file, line, col);
	n->text = expt_xstrndup(s, len);
	n->quoted = v && fy_token_scalar_style(v) != FYSS_PLAIN;
	if (n->quoted) {
		n->type = EXPT_VT_STR;
	} else {
		char *canon = NULL;
		n->type = expt_scalar_type(n->text, &canon);
		free(canon);
	}
	if ((e->scalar.tag && apply_tag(p, n, e->scalar.tag)) ||
	    (e->scalar.anchor && add_anchor(p, token_text(e->scalar.anchor), n))) {
		expt_ynode_free(n);
		goto out;
	}
	place(p, n);
	rc = 0;
out:
	free(own);
	return rc;
}

static int on_alias(struct parser *p, struct fy_event *e)
{
	char *name = token_text(e->alias.anchor);
	struct expt_ynode *target, *c;
	int line, col, rc = -1;

	mark_of(e, &line, &col);
	if (col > 1) /* the mark is past the '*' */
		col--;
	target = name ? find_anchor(p, name) : NULL;
	if (!target) {
		perr(p, line, col, "unknown alias '*%s'", name ? name : "");
		goto out;
	}
	/* Aliases are expanded by copying, so the budget counts the copies: no alias bombs. */
	if (count(p, count_nodes(target), line, col))
		goto out;
	c = expt_ynode_copy(target);
	place(p, c);
	rc = 0;
out:
	free(name);
	return rc;
}

static int on_start(struct parser *p, struct fy_event *e, enum expt_ykind kind)
{
	struct fy_token *anchor, *tag;
	struct frame *f;
	int line, col;

	mark_of(e, &line, &col);
	if (p->depth >= EXPT_YAML_MAX_DEPTH) {
		perr(p, line, col, "nesting is deeper than %d levels", EXPT_YAML_MAX_DEPTH);
		return -1;
	}
	if (count(p, 1, line, col))
		return -1;
	anchor = kind == EXPT_Y_MAP ? e->mapping_start.anchor : e->sequence_start.anchor;
	tag = kind == EXPT_Y_MAP ? e->mapping_start.tag : e->sequence_start.tag;
	f = &p->stack[p->depth++];
	memset(f, 0, sizeof(*f));
	f->node = expt_ynode_new(kind, p->file, line, col);
	f->anchor = token_text(anchor);
	if (tag && apply_tag(p, f->node, tag))
		return -1;
	return 0;
}

static int on_end(struct parser *p)
{
	int rc = 0;

	struct frame *f = &p->stack[p->depth - 1];
	struct expt_ynode *n = f->node;

	if (n->kind == EXPT_Y_MAP) {
		check_duplicates(p, n);
		apply_merges(p, f);
	}
	if (f->anchor) {
		rc = add_anchor(p, f->anchor, n);
		f->anchor = NULL;
	}
	free_frame(f);
	f->node = NULL;
	p->depth--;
	place(p, n);
	return rc;
}

static void on_fy_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
	struct parser *p = user;

	(void)diag;
	/* Keep the first few lines only: what libfyaml says when it does not collect. */
	if (p->fyout.len < 512)
		expt_buf_add(&p->fyout, buf, len < 512 ? len : 512);
}

static void report_fy_errors(struct parser *p, struct fy_diag *diag, int line, int col)
{
	struct fy_diag_error *de;
	void *it = NULL;
	int any = 0;

	if (fy_diag_set_collect_errors) {
		while ((de = fy_diag_errors_iterate(diag, &it))) {
			if (de->type < FYET_ERROR)
				continue;
			perr(p, de->line > 0 ? de->line : line, de->column > 0 ? de->column : col,
			     "%s", de->msg ? de->msg : "invalid YAML");
			any = 1;
		}
	}
	if (!any) {
		/* Uncollected: "<input>:L:C: error: message" or "[ERR]: message". */
		char *msg = p->fyout.buf, *nl, *e;
		if ((e = strstr(msg, "error: ")))
			msg = e + 7;
		else if ((e = strstr(msg, "]: ")))
			msg = e + 3;
		if ((nl = strchr(msg, '\n')))
			*nl = '\0';
		perr(p, line, col, "%s", *msg ? msg : "invalid YAML");
	}
}

int expt_ynode_parse(const char *data, size_t len, const char *file, struct expt_ynode **out,
		     struct expt_diags *diags)
{
	struct parser p = {0};
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag = NULL;
	struct fy_parse_cfg cfg = {0};
	struct fy_parser *fyp = NULL;
	struct fy_event *e;
	int line = 1, col = 1, rc = EXPT_EUSAGE;
	const char *nul;
	size_t bad;

	*out = NULL;
	p.data = data;
	p.len = len;
	p.file = file;
	p.diags = diags;
	expt_buf_init(&p.fyout, 0);
	/* Checked here, before libfyaml sees the bytes: YAML is Unicode text, and 0.7.12 can
	 * loop forever on invalid UTF-8 (found by fuzzing). */
	nul = memchr(data, '\0', len);
	bad = expt_utf8_check(data, nul ? (size_t)(nul - data) : len);
	if (nul || bad < len) {
		const char *q, *stop = data + (bad < len ? bad : (size_t)(nul - data));
		for (q = data; q < stop; q++) {
			/* columns count characters, as libfyaml's do */
			if ((*q & 0xc0) != 0x80)
				col++;
			if (*q == '\n') {
				line++;
				col = 1;
			}
		}
		perr(&p, line, col,
		     bad < len && (!nul || data + bad < nul) ? "the file is not valid UTF-8"
							     : "the file contains a NUL byte");
		goto out;
	}
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL; /* the library never prints: everything goes through on_fy_output */
	dcfg.output_fn = on_fy_output;
	dcfg.user = &p;
	dcfg.colorize = false;
	diag = fy_diag_create(&dcfg);
	if (!diag) {
		perr(&p, 1, 1, "cannot create the YAML parser");
		goto out;
	}
	if (fy_diag_set_collect_errors)
		fy_diag_set_collect_errors(diag, true);
	cfg.flags =
	    FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE | FYPCF_DISABLE_RECYCLING;
	cfg.diag = diag;
	fyp = fy_parser_create(&cfg);
	if (!fyp || fy_parser_set_string(fyp, len ? data : "", len)) {
		perr(&p, 1, 1, "cannot create the YAML parser");
		goto out;
	}
	while ((e = fy_parser_parse(fyp))) {
		int r = 0;

		mark_of(e, &line, &col);
		switch (e->type) {
		case FYET_DOCUMENT_START:
			if (++p.docs > 1) {
				perr(&p, line, col, "expected one YAML document, found another");
				r = -1;
			}
			break;
		case FYET_SCALAR:
			r = on_scalar(&p, e);
			break;
		case FYET_ALIAS:
			r = on_alias(&p, e);
			break;
		case FYET_MAPPING_START:
			r = on_start(&p, e, EXPT_Y_MAP);
			break;
		case FYET_SEQUENCE_START:
			r = on_start(&p, e, EXPT_Y_SEQ);
			break;
		case FYET_MAPPING_END:
		case FYET_SEQUENCE_END:
			if (p.depth > 0)
				r = on_end(&p);
			break;
		default:
			break;
		}
		fy_parser_event_free(fyp, e);
		if (r)
			goto out;
	}
	if (fy_parser_get_stream_error(fyp)) {
		report_fy_errors(&p, diag, line, col);
		goto out;
	}
	if (!p.failed) {
		*out = p.root;
		p.root = NULL;
		rc = 0;
	}
out:
	while (p.depth > 0) {
		struct frame *f = &p.stack[--p.depth];
		expt_ynode_free(f->node);
		free_frame(f);
	}
	for (size_t i = 0; i < p.nanchors; i++) {
		free(p.anchors[i].name);
		expt_ynode_free(p.anchors[i].node);
	}
	free(p.anchors);
	expt_ynode_free(p.root);
	expt_buf_release(&p.fyout);
	if (fyp)
		fy_parser_destroy(fyp);
	if (diag)
		fy_diag_destroy(diag);
	return rc;
}
