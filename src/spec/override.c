/* Command-line overrides ("key=value", "lr=0.1,0.01"): applied to the merged YAML tree before
 * validation, so a bad value is reported like one in the file, at "<command line>: argument N". */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

struct ov {
	struct expt_diags *diags;
	int col; /* 1-based index of the argument */
	const char *arg;
};

static void ov_err(struct ov *o, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ov_err(struct ov *o, const char *field, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	expt_diag_add(o->diags, EXPT_CMDLINE, 0, o->col, field, "%s", msg);
}

static size_t nfields(void)
{
	size_t n = 0;

	while (expt_spec_fields[n])
		n++;
	return n;
}

static void relocate(struct expt_ynode *n, int col)
{
	size_t i;

	n->file = EXPT_CMDLINE;
	n->line = 0;
	n->col = col;
	for (i = 0; i < n->n; i++) {
		if (n->keys)
			relocate(n->keys[i], col);
		relocate(n->vals[i], col);
	}
}

/* One value: 'quoted' or "quoted" is a string, anything else is typed like a YAML plain
 * scalar. */
static struct expt_ynode *piece_node(const char *raw, size_t len, int col)
{
	char *t = expt_xstrndup(raw, len);
	struct expt_ynode *n;

	if (len >= 2 && (raw[0] == '\'' || raw[0] == '"') && raw[len - 1] == raw[0]) {
		t[len - 1] = '\0';
		n = expt_ynode_str(t + 1, EXPT_CMDLINE, 0, col);
		n->quoted = 1;
	} else {
		n = expt_ynode_plain(t, EXPT_CMDLINE, 0, col);
	}
	free(t);
	return n;
}

/* Splits a value on commas that are neither escaped (\,) nor inside quotes; returns a list. */
static struct expt_ynode *split_values(struct ov *o, const char *field, const char *val)
{
	struct expt_ynode *list = expt_ynode_new(EXPT_Y_SEQ, EXPT_CMDLINE, 0, o->col);
	struct expt_buf cur = EXPT_BUF_INIT;
	const char *p;
	char quote = 0;

	for (p = val;; p++) {
		if (*p == '\\' && p[1] == ',') {
			expt_buf_addch(&cur, ',');
			p++;
			continue;
		}
		if (quote && *p == quote)
			quote = 0;
		else if (!quote && (*p == '\'' || *p == '"') && cur.len == 0)
			quote = *p;
		if (*p == '\0' || (*p == ',' && !quote)) {
			if (!cur.len && (*p == ',' || list->n)) {
				ov_err(o, field, "empty value in '%s'", o->arg);
				expt_ynode_free(list);
				list = NULL;
				break;
			}
			expt_ynode_push(list, piece_node(cur.buf, cur.len, o->col));
			expt_buf_reset(&cur);
			if (!*p)
				break;
			continue;
		}
		expt_buf_addch(&cur, *p);
	}
	expt_buf_release(&cur);
	return list;
}

/* A flow collection ([a, b] or {k: v}) parsed as YAML; NULL after reporting. */
static struct expt_ynode *flow_value(struct ov *o, const char *field, const char *val)
{
	struct expt_diags tmp = {0};
	struct expt_ynode *n = NULL;

	if (expt_ynode_parse(val, strlen(val), EXPT_CMDLINE, &n, &tmp) || !n) {
		ov_err(o, field, "invalid value: %s", tmp.n ? tmp.v[0].msg : "empty");
		expt_ynode_free(n);
		n = NULL;
	} else {
		relocate(n, o->col);
	}
	expt_diags_release(&tmp);
	return n;
}

static int declared(const struct expt_ynode *root, const char *name)
{
	const struct expt_ynode *sw = expt_ynode_get(root, "sweep");
	const struct expt_ynode *trials;
	size_t i;

	if (expt_ynode_find(expt_ynode_get(root, "params"), name) >= 0)
		return 1;
	if (!sw || sw->kind != EXPT_Y_MAP)
		return 0;
	if (!expt_sweep_is_long(sw))
		return expt_ynode_find(sw, name) >= 0;
	if (expt_ynode_find(expt_ynode_get(sw, "params"), name) >= 0)
		return 1;
	trials = expt_ynode_get(sw, "trials");
	for (i = 0; trials && trials->kind == EXPT_Y_SEQ && i < trials->n; i++)
		if (expt_ynode_find(trials->vals[i], name) >= 0)
			return 1;
	return 0;
}

static struct expt_ynode *child_map(struct expt_ynode *parent, const char *key, int col)
{
	struct expt_ynode *m = expt_ynode_getw(parent, key);

	if (!m || expt_ynode_is_null(m)) {
		m = expt_ynode_new(EXPT_Y_MAP, EXPT_CMDLINE, 0, col);
		expt_ynode_set(parent, key, m);
	}
	return m;
}

/* Sets param name: one value pins it (in params and in any sweep of it); several make it a
 * sweep axis. Takes ownership of vals (a list). */
static void set_param(struct ov *o, struct expt_ynode *root, const char *name,
		      struct expt_ynode *vals)
{
	struct expt_ynode *sw = expt_ynode_getw(root, "sweep");
	struct expt_ynode *params, *axes = NULL;
	enum expt_sweep_method m = expt_sweep_method_of(sw);
	char field[128];
	size_t i;

	snprintf(field, sizeof(field), "params.%s", name);
	if (sw && sw->kind != EXPT_Y_MAP)
		m = EXPT_SWEEP_NONE; /* a malformed sweep: validation reports it */
	if (vals->n == 1) {
		params = expt_ynode_getw(root, "params");
		if (!params || params->kind != EXPT_Y_MAP) {
			if (params && !expt_ynode_is_null(params)) {
				ov_err(o, field, "the spec's params is not a map");
				goto out;
			}
			params = child_map(root, "params", o->col);
		}
		expt_ynode_set(params, name, expt_ynode_copy(vals->vals[0]));
	}
	if (m == EXPT_SWEEP_LIST) {
		struct expt_ynode *trials = expt_ynode_getw(sw, "trials");
		if (vals->n > 1) {
			ov_err(o, field,
			       "cannot sweep '%s' here: the spec's sweep is a list of trials; give "
			       "one value to set it in every trial",
			       name);
			goto out;
		}
		for (i = 0; trials && trials->kind == EXPT_Y_SEQ && i < trials->n; i++)
			if (trials->vals[i]->kind == EXPT_Y_MAP &&
			    expt_ynode_find(trials->vals[i], name) >= 0)
				expt_ynode_set(trials->vals[i], name,
					       expt_ynode_copy(vals->vals[0]));
		goto out;
	}
	if (m == EXPT_SWEEP_NONE) {
		if (vals->n == 1)
			goto out;
		if (sw && sw->kind != EXPT_Y_MAP)
			goto out;
		sw = child_map(root, "sweep", o->col);
		axes = sw;
	} else if (expt_sweep_is_long(sw)) {
		axes = expt_ynode_getw(sw, "params");
		if (axes && axes->kind != EXPT_Y_MAP)
			goto out; /* validation reports the malformed sweep.params */
		if (!axes)
			axes = child_map(sw, "params", o->col);
	} else {
		axes = sw;
	}
	/* A swept param given one value is pinned to it: the axis keeps one value (in a random
	 * sweep it still takes its draw, so the other params' values do not move). */
	if (vals->n > 1 || expt_ynode_find(axes, name) >= 0) {
		expt_ynode_set(axes, name, vals);
		vals = NULL;
	}
out:
	expt_ynode_free(vals);
}

static void set_field(struct ov *o, struct expt_ynode *root, char **comps, size_t ncomps,
		      struct expt_ynode *val)
{
	struct expt_ynode *cur = root;
	char field[320] = "";
	size_t i, len = 0;

	for (i = 0; i + 1 < ncomps; i++) {
		struct expt_ynode *next = expt_ynode_getw(cur, comps[i]);

		len += (size_t)snprintf(field + len, sizeof(field) - len, "%s%s", i ? "." : "",
					comps[i]);
		if (len >= sizeof(field))
			len = sizeof(field) - 1;
		if (next && !expt_ynode_is_null(next) && next->kind != EXPT_Y_MAP) {
			ov_err(o, field, "is not a map, so '%s' cannot be set", o->arg);
			expt_ynode_free(val);
			return;
		}
		cur = child_map(cur, comps[i], o->col);
	}
	/* null unsets a field (its default applies), as in a variant. */
	if (expt_ynode_is_null(val)) {
		expt_ynode_del(cur, comps[ncomps - 1]);
		expt_ynode_free(val);
		return;
	}
	expt_ynode_set(cur, comps[ncomps - 1], val);
}

static void apply_one(struct ov *o, struct expt_ynode *root)
{
	const char *arg = o->arg, *eq = strchr(arg, '=');
	struct expt_strv comps = EXPT_STRV_INIT;
	struct expt_ynode *vals = NULL;
	char *key = NULL, hint[96];
	const char *val, *p, *q;
	int is_param;

	if (!expt_utf8_ok(arg, strlen(arg))) {
		ov_err(o, "", "invalid UTF-8");
		return;
	}
	if (!eq || eq == arg) {
		ov_err(o, "", "expected key=value, got '%s'", arg);
		return;
	}
	key = expt_xstrndup(arg, (size_t)(eq - arg));
	val = eq + 1;
	for (p = key;; p = q + 1) {
		q = strchr(p, '.');
		if ((q ? (size_t)(q - p) : strlen(p)) == 0) {
			ov_err(o, "", "empty name in '%s'", key);
			goto out;
		}
		if (comps.n >= 16) {
			ov_err(o, "", "'%.64s' nests more than 16 levels", key);
			goto out;
		}
		expt_strv_push_owned(&comps, expt_xstrndup(p, q ? (size_t)(q - p) : strlen(p)));
		if (!q)
			break;
	}
	is_param = !strcmp(comps.v[0], "params") || !expt_spec_is_field(comps.v[0]);
	if (!strcmp(comps.v[0], "variants")) {
		ov_err(o, "variants",
		       "variants cannot be set from the command line; choose one "
		       "with -v NAME");
		goto out;
	}
	if (is_param) {
		const char *name =
		    comps.n > 1 && !strcmp(comps.v[0], "params") ? comps.v[1] : comps.v[0];
		char field[128];

		snprintf(field, sizeof(field), "params.%s", name);
		if (!strcmp(comps.v[0], "params") && comps.n == 1) {
			is_param = 0; /* params={...}: the whole map, as a field */
		} else if (comps.n > (strcmp(comps.v[0], "params") ? 1u : 2u)) {
			expt_suggest(hint, sizeof(hint), comps.v[0], expt_spec_fields, nfields());
			if (strcmp(comps.v[0], "params"))
				ov_err(o, comps.v[0], "unknown field%s", hint);
			else
				ov_err(o, field, "param names cannot contain '.'");
			goto out;
		} else if (!strcmp(name, "run_id") || !strcmp(name, "output_dir")) {
			ov_err(o, field, "'%s' is reserved for the {%s} placeholder", name, name);
			goto out;
		} else if (!expt_param_name_ok(name)) {
			ov_err(o, field,
			       "param names start with a letter or '_' and hold only letters, "
			       "digits, '_' and '-' (at most 64)");
			goto out;
		} else if (strcmp(comps.v[0], "params") && !declared(root, name)) {
			expt_suggest(hint, sizeof(hint), name, expt_spec_fields, nfields());
			ov_err(o, name,
			       "not a field and not a param of this spec%s; write params.%s=... to "
			       "add a new param",
			       hint, name);
			goto out;
		}
		if (is_param) {
			if (*val == '[' || *val == '{') {
				struct expt_ynode *one = flow_value(o, field, val);
				if (!one)
					goto out;
				vals = expt_ynode_new(EXPT_Y_SEQ, EXPT_CMDLINE, 0, o->col);
				expt_ynode_push(vals, one);
			} else if (!(vals = split_values(o, field, val))) {
				goto out;
			}
			set_param(o, root, name, vals);
			vals = NULL;
			goto out;
		}
	}
	{
		char field[320];
		struct expt_ynode *v;

		snprintf(field, sizeof(field), "%s", key);
		if (*val == '[' || *val == '{') {
			v = flow_value(o, field, val);
		} else {
			vals = split_values(o, field, val);
			if (!vals)
				goto out;
			if (vals->n > 1) {
				ov_err(o, field,
				       "only params can take several values (a sweep); write \\, "
				       "for a literal comma");
				goto out;
			}
			v = vals->vals[0];
			vals->n = 0;
		}
		if (v)
			set_field(o, root, comps.v, comps.n, v);
	}
out:
	expt_ynode_free(vals);
	expt_strv_release(&comps);
	free(key);
}

int expt_spec_apply_overrides(struct expt_ynode *root, const char *const *args, size_t n,
			      struct expt_diags *diags)
{
	size_t before = diags->n, i;

	for (i = 0; i < n; i++) {
		struct ov o = {diags, (int)i + 1, args[i] ? args[i] : ""};
		apply_one(&o, root);
	}
	return diags->n > before ? -1 : 0;
}
