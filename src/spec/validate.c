/* Validation: the merged YAML tree checked field by field and turned into struct expt_spec.
 * Every problem is collected with its position; nothing stops at the first one. */
#include "internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

const char *const expt_spec_fields[] = {
    "name",	  "image",     "build",	    "command",	   "shell",    "args",	   "params",
    "sweep",	  "parallel",  "resources", "inputs",	   "outputs",  "env",	   "secrets",
    "files",	  "retries",   "timeout",   "on_conflict", "cleanup",  "tracking", "backend",
    "kubernetes", "container", "variants",  "workdir",	   "snapshot", NULL,
};

int expt_spec_is_field(const char *key)
{
	size_t i;

	for (i = 0; expt_spec_fields[i]; i++)
		if (!strcmp(expt_spec_fields[i], key))
			return 1;
	return 0;
}

struct vctx {
	struct expt_spec *spec;
	struct expt_diags *diags;
	const struct expt_ynode *root;
	struct expt_sweep *sweep;
	int errors; /* problems found by this pass */
};

void expt_spec_field_path(char *out, size_t n, const char *prefix, const char *key)
{
	size_t i;

	snprintf(out, n, "%s%s%s", prefix, *prefix ? "." : "", key);
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
}

static void problem(struct vctx *c, const struct expt_ynode *n, const char *field, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));
static void problem(struct vctx *c, const struct expt_ynode *n, const char *field, const char *fmt,
		    ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	expt_diag_at(c->diags, n, field, "%s", msg);
	c->errors++;
}

static void wrong(struct vctx *c, const struct expt_ynode *n, const char *field, const char *want)
{
	char d[96];

	expt_ynode_describe(n, d, sizeof(d));
	problem(c, n, field, "expected %s, got %s", want, d);
}

static void unknown_keys(struct vctx *c, const struct expt_ynode *map, const char *prefix,
			 const char *const *valid, size_t nvalid)
{
	size_t i, j;

	for (i = 0; i < map->n; i++) {
		const char *k = map->keys[i]->text;
		char field[320], hint[96];
		int known = 0;

		for (j = 0; j < nvalid && !known; j++)
			known = !strcmp(k, valid[j]);
		/* Top-level x-* keys are free, for YAML anchors to share (as in Compose files). */
		if (!*prefix && !strncmp(k, "x-", 2))
			known = 1;
		if (known)
			continue;
		expt_spec_field_path(field, sizeof(field), prefix, k);
		expt_suggest(hint, sizeof(hint), k, valid, nvalid);
		problem(c, map->keys[i], field, "unknown field%s", hint);
	}
}

/* Each getter returns 1 when the field is absent or null (unset), 0 when set, -1 when wrong. */

static int is_unset(const struct expt_ynode *n)
{
	return !n || expt_ynode_is_null(n);
}

static int want_map(struct vctx *c, const struct expt_ynode *n, const char *field)
{
	if (is_unset(n))
		return 1;
	if (n->kind != EXPT_Y_MAP) {
		wrong(c, n, field, "a map");
		return -1;
	}
	return 0;
}

static int get_str(struct vctx *c, const struct expt_ynode *n, const char *field, char **out)
{
	if (is_unset(n))
		return 1;
	if (n->kind != EXPT_Y_SCALAR) {
		wrong(c, n, field, "a string");
		return -1;
	}
	free(*out);
	*out = expt_xstrdup(n->text);
	return 0;
}

/* A non-empty string. */
static int get_word(struct vctx *c, const struct expt_ynode *n, const char *field, char **out)
{
	int r = get_str(c, n, field, out);

	if (!r && !**out) {
		problem(c, n, field, "expected a non-empty string");
		return -1;
	}
	return r;
}

static int get_bool(struct vctx *c, const struct expt_ynode *n, const char *field, int *out)
{
	if (is_unset(n))
		return 1;
	if (n->kind != EXPT_Y_SCALAR || n->type != EXPT_VT_BOOL) {
		wrong(c, n, field, "true or false");
		return -1;
	}
	*out = n->text[0] == 't' || n->text[0] == 'T';
	return 0;
}

static int get_int(struct vctx *c, const struct expt_ynode *n, const char *field, int min, int max,
		   int *out)
{
	char *canon = NULL, want[96];
	int v, ok;

	if (is_unset(n))
		return 1;
	if (n->kind == EXPT_Y_SCALAR && n->type == EXPT_VT_INT) {
		expt_scalar_type(n->text, &canon);
		ok = !expt_parse_int(canon, &v) && v >= min && v <= max;
		free(canon);
		if (ok) {
			*out = v;
			return 0;
		}
		if (max == INT_MAX)
			snprintf(want, sizeof(want), "an integer >= %d", min);
		else
			snprintf(want, sizeof(want), "an integer from %d to %d", min, max);
	} else {
		snprintf(want, sizeof(want), "an integer");
	}
	wrong(c, n, field, want);
	return -1;
}

static int get_enum(struct vctx *c, const struct expt_ynode *n, const char *field,
		    const char *const *choices, size_t nchoices, char **out)
{
	char want[256], hint[96];
	size_t i, len = 0;

	if (is_unset(n))
		return 1;
	if (n->kind == EXPT_Y_SCALAR)
		for (i = 0; i < nchoices; i++)
			if (!strcmp(n->text, choices[i])) {
				free(*out);
				*out = expt_xstrdup(choices[i]);
				return 0;
			}
	want[0] = '\0';
	for (i = 0; i < nchoices && len < sizeof(want); i++)
		len +=
		    (size_t)snprintf(want + len, sizeof(want) - len, "%s%s",
				     i == 0 ? "" : (i + 1 == nchoices ? " or " : ", "), choices[i]);
	{
		char d[96];
		expt_ynode_describe(n, d, sizeof(d));
		expt_suggest(hint, sizeof(hint), n->kind == EXPT_Y_SCALAR ? n->text : "", choices,
			     nchoices);
		problem(c, n, field, "expected %s, got %s%s", want, d, hint);
	}
	return -1;
}

static int get_duration(struct vctx *c, const struct expt_ynode *n, const char *field, int64_t *out)
{
	int64_t v;

	if (is_unset(n))
		return 1;
	if (n->kind == EXPT_Y_SCALAR && n->type != EXPT_VT_BOOL &&
	    !expt_parse_duration_ms(n->text, &v)) {
		*out = v;
		return 0;
	}
	wrong(c, n, field, "a duration like 90s, 30m or 2h");
	return -1;
}

/* Sets a kvs from a map of name: scalar; values are kept as written. */
static void get_kvs(struct vctx *c, const struct expt_ynode *map, const char *prefix,
		    struct expt_kvs *out, int env)
{
	size_t i;

	for (i = 0; i < map->n; i++) {
		const struct expt_ynode *k = map->keys[i], *v = map->vals[i];
		char field[320];
		struct expt_kv *kv;

		expt_spec_field_path(field, sizeof(field), prefix, k->text);
		if (env && !expt_env_name_ok(k->text)) {
			problem(c, k, field,
				"environment variable names hold letters, digits and '_', and do "
				"not start with a digit");
			continue;
		}
		if (env && !strncmp(k->text, "EXPT_", 5)) {
			problem(c, k, field, "EXPT_ variables are set by expt for each run");
			continue;
		}
		if (v->kind != EXPT_Y_SCALAR) {
			wrong(c, v, field, "a string");
			continue;
		}
		EXPT_ALLOC_GROW(out->v, out->n + 1, out->cap);
		kv = &out->v[out->n++];
		kv->key = expt_xstrdup(k->text);
		kv->value = expt_xstrdup(expt_ynode_is_null(v) ? "" : v->text);
	}
}

/* DNS-1123 subdomain: dot-separated labels, at most 253 characters (Secret, ServiceAccount). */
static int dns_subdomain_ok(const char *s)
{
	char label[254];
	const char *p = s, *dot;

	if (!*s || strlen(s) > 253)
		return 0;
	for (;;) {
		size_t n;
		dot = strchr(p, '.');
		n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(label))
			return 0;
		memcpy(label, p, n);
		label[n] = '\0';
		if (!expt_dns_label_ok(label))
			return 0;
		if (!dot)
			return 1;
		p = dot + 1;
	}
}

static const char dns_rule[] = "lowercase letters, digits and '-', starting and ending with a "
			       "letter or digit, at most 63 characters";

static void check_label(struct vctx *c, const struct expt_ynode *n, const char *field)
{
	char d[96], *fix;

	if (expt_dns_label_ok(n->text))
		return;
	expt_ynode_describe(n, d, sizeof(d));
	fix = expt_dns_label_from(n->text);
	if (*fix && strcmp(fix, n->text))
		problem(c, n, field, "expected a DNS-1123 label (%s), got %s; try '%s'", dns_rule,
			d, fix);
	else
		problem(c, n, field, "expected a DNS-1123 label (%s), got %s", dns_rule, d);
	free(fix);
}

/* ---- the fields ---- */

static void v_name(struct vctx *c, const struct expt_ynode *n)
{
	struct expt_spec *s = c->spec;
	const char *base;
	char *fix;

	if (!get_word(c, n, "name", &s->name)) {
		if (!expt_experiment_name_ok(s->name)) {
			char d[96];
			expt_ynode_describe(n, d, sizeof(d));
			problem(
			    c, n, "name",
			    "expected a name of letters, digits, '_', '.' and '-', starting with a "
			    "letter or digit, at most %d characters, got %s",
			    EXPT_NAME_MAX, d);
		}
		return;
	}
	if (!is_unset(n))
		return;
	/* No name: the project directory's, as it is when it is a name, else made DNS-safe
	 * (documented in docs/spec.md). */
	base = s->dir ? strrchr(s->dir, '/') : NULL;
	base = base ? base + 1 : (s->dir ? s->dir : "");
	if (expt_experiment_name_ok(base)) {
		s->name = expt_xstrdup(base);
		return;
	}
	fix = expt_dns_label_from(base);
	if (*fix) {
		s->name = fix;
		return;
	}
	free(fix);
	problem(c, c->root, "name",
		"required field is missing (the directory name cannot be made a DNS-1123 label)");
}

static void v_command(struct vctx *c, const struct expt_ynode *n)
{
	struct expt_spec *s = c->spec;
	struct expt_buf line = EXPT_BUF_INIT;
	const char *why = NULL;
	size_t i;

	if (is_unset(n)) {
		problem(c, c->root, "command", "required field is missing");
		return;
	}
	if (n->kind == EXPT_Y_MAP) {
		wrong(c, n, "command", "a command line or a list of words");
		return;
	}
	if (n->kind == EXPT_Y_SCALAR) {
		s->command_line = expt_xstrdup(n->text);
		if (expt_split_words(n->text, &s->command, &why)) {
			problem(c, n, "command", "%s", why);
			return;
		}
	} else {
		for (i = 0; i < n->n; i++) {
			const struct expt_ynode *w = n->vals[i];
			char field[64];

			snprintf(field, sizeof(field), "command[%zu]", i);
			if (w->kind != EXPT_Y_SCALAR || expt_ynode_is_null(w)) {
				wrong(c, w, field, "a string");
				continue;
			}
			expt_strv_push(&s->command, w->text);
			if (i)
				expt_buf_addch(&line, ' ');
			expt_buf_adds(&line, w->text);
		}
		s->command_line = expt_buf_detach(&line, NULL);
	}
	if (!s->command.n || !*s->command.v[0])
		problem(c, n, "command", "the command is empty");
}

struct name_set {
	const struct expt_strv *names;
	const struct expt_spec *spec;
};

static const char *known_name(const char *name, void *payload)
{
	const struct name_set *ns = payload;

	if (!strcmp(name, "run_id") || !strcmp(name, "output_dir") ||
	    expt_strv_find(ns->names, name) >= 0)
		return "";
	if (strchr(name, '.'))
		return expt_spec_io_path(ns->spec, NULL, name) ? "" : NULL;
	return NULL;
}

static void v_args(struct vctx *c, const struct expt_ynode *n)
{
	struct expt_spec *s = c->spec;
	struct expt_strv words = EXPT_STRV_INIT;
	struct expt_buf out = EXPT_BUF_INIT;
	struct name_set ns = {&s->param_names, s};
	const char *why = NULL;
	char bad[96], hint[96];
	size_t i;

	if (get_str(c, n, "args", &s->args))
		return;
	if (!strcmp(s->args, "auto") || !strcmp(s->args, "none"))
		return;
	if (expt_split_words(s->args, &words, &why)) {
		problem(c, n, "args", "%s", why);
		goto out;
	}
	for (i = 0; i < words.n; i++) {
		expt_buf_reset(&out);
		if (expt_template_expand(words.v[i], known_name, &ns, 0, &out, bad, sizeof(bad))) {
			expt_suggest(hint, sizeof(hint), bad, (const char *const *)s->param_names.v,
				     s->param_names.n);
			problem(c, n, "args",
				"'{%s}' names no param%s; placeholders are params, {run_id}, "
				"{output_dir}, {inputs.NAME} and {outputs.NAME}",
				bad, hint);
		}
	}
out:
	expt_strv_release(&words);
	expt_buf_release(&out);
}

static void v_params(struct vctx *c, const struct expt_ynode *n)
{
	struct expt_spec *s = c->spec;
	size_t i;

	if (want_map(c, n, "params"))
		return;
	for (i = 0; i < n->n; i++) {
		const struct expt_ynode *k = n->keys[i];
		struct expt_value v;
		char field[320];

		expt_spec_field_path(field, sizeof(field), "params", k->text);
		if (!expt_param_name_ok(k->text)) {
			if (!strcmp(k->text, "run_id") || !strcmp(k->text, "output_dir"))
				problem(c, k, field, "'%s' is reserved for the {%s} placeholder",
					k->text, k->text);
			else
				problem(c, k, field,
					"param names start with a letter or '_' and hold only "
					"letters, digits, '_' and '-' (at most 64)");
			continue;
		}
		expt_ynode_value(n->vals[i], &v);
		expt_params_set(&s->params, k->text, v.type, v.text);
		free(v.text);
	}
}

/* Every name a run can have, and no two that share an EXPT_PARAM_ variable. */
static void collect_param_names(struct vctx *c)
{
	struct expt_spec *s = c->spec;
	struct expt_sweep *sw = c->sweep;
	struct expt_strv envs = EXPT_STRV_INIT;
	size_t i, j;

	for (i = 0; i < s->params.n; i++)
		if (expt_strv_find(&s->param_names, s->params.v[i].name) < 0)
			expt_strv_push(&s->param_names, s->params.v[i].name);
	for (i = 0; i < sw->naxes; i++)
		if (expt_strv_find(&s->param_names, sw->axes[i].name) < 0)
			expt_strv_push(&s->param_names, sw->axes[i].name);
	for (i = 0; i < sw->ntrials; i++)
		for (j = 0; j < sw->trials[i].n; j++)
			if (expt_strv_find(&s->param_names, sw->trials[i].v[j].name) < 0)
				expt_strv_push(&s->param_names, sw->trials[i].v[j].name);
	for (i = 0; i < s->param_names.n; i++) {
		char *e = expt_param_env_name(s->param_names.v[i]);
		long at = expt_strv_find(&envs, e);
		if (at >= 0) {
			const struct expt_ynode *where = expt_ynode_get(c->root, "params");
			problem(c, where ? where : c->root, "params",
				"params '%s' and '%s' would both be passed as %s",
				s->param_names.v[at], s->param_names.v[i], e);
		}
		expt_strv_push_owned(&envs, e);
	}
	expt_strv_release(&envs);
}

static void v_resources(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"cpu", "memory", "gpu"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;
	int64_t x;

	if (want_map(c, n, "resources"))
		return;
	unknown_keys(c, n, "resources", keys, NELEM(keys));
	v = expt_ynode_get(n, "cpu");
	if (!is_unset(v)) {
		if (v->kind == EXPT_Y_SCALAR && v->type != EXPT_VT_BOOL &&
		    !expt_parse_millicpu(v->text, &x) && x > 0)
			s->resources.cpu_milli = x;
		else
			wrong(c, v, "resources.cpu", "a CPU quantity like 2, 0.5 or 500m");
	}
	v = expt_ynode_get(n, "memory");
	if (!is_unset(v)) {
		if (v->kind == EXPT_Y_SCALAR && v->type != EXPT_VT_BOOL &&
		    !expt_parse_bytes(v->text, &x) && x > 0)
			s->resources.memory_bytes = x;
		else
			wrong(c, v, "resources.memory", "a quantity like 512Mi or 2Gi");
	}
	get_int(c, expt_ynode_get(n, "gpu"), "resources.gpu", 0, 1024, &s->resources.gpu);
}

static int url_ok(const char *u)
{
	static const char *const schemes[] = {"nfs://", "pvc://", "s3://"};
	const char *sep = strstr(u, "://");
	size_t i;

	if (!*u)
		return 0;
	if (!sep)
		return 1; /* a path, relative to the spec's directory unless absolute */
	for (i = 0; i < NELEM(schemes); i++)
		if (!strncmp(u, schemes[i], strlen(schemes[i])))
			return u[strlen(schemes[i])] != '\0';
	return 0;
}

static void v_mounts(struct vctx *c, const struct expt_ynode *n, const char *section,
		     struct expt_mounts *out)
{
	int in = !strcmp(section, "inputs");
	const char *urlkey = in ? "from" : "to";
	const char *keys[] = {"mount", urlkey, "readonly"};
	size_t i;

	if (want_map(c, n, section))
		return;
	for (i = 0; i < n->n; i++) {
		const struct expt_ynode *k = n->keys[i], *v = n->vals[i];
		struct expt_mount m = {0};
		char field[320], sub[352];
		int bad = 0;

		expt_spec_field_path(field, sizeof(field), section, k->text);
		m.readonly = in;
		if (!expt_dns_label_ok(k->text)) {
			check_label(c, k, field);
			bad = 1;
		}
		if (v->kind == EXPT_Y_SCALAR && !expt_ynode_is_null(v)) {
			m.url = expt_xstrdup(v->text); /* shorthand: name: URL */
		} else if (v->kind == EXPT_Y_MAP) {
			const struct expt_ynode *x;
			unknown_keys(c, v, field, keys, NELEM(keys));
			expt_spec_field_path(sub, sizeof(sub), field, "mount");
			x = expt_ynode_get(v, "mount");
			if (!get_word(c, x, sub, &m.mount) && m.mount[0] != '/') {
				problem(c, x, sub, "expected an absolute path, got '%s'", m.mount);
				bad = 1;
			}
			expt_spec_field_path(sub, sizeof(sub), field, urlkey);
			x = expt_ynode_get(v, urlkey);
			if (get_word(c, x, sub, &m.url) > 0) {
				problem(c, v, sub, "required field is missing");
				bad = 1;
			}
			expt_spec_field_path(sub, sizeof(sub), field, "readonly");
			get_bool(c, expt_ynode_get(v, "readonly"), sub, &m.readonly);
		} else {
			wrong(c, v, field,
			      in ? "a path or URL, or {mount, from, readonly}"
				 : "a path or URL, or {mount, to, readonly}");
			bad = 1;
		}
		if (m.url && !url_ok(m.url)) {
			const struct expt_ynode *at =
			    v->kind == EXPT_Y_MAP ? expt_ynode_get(v, urlkey) : v;
			expt_spec_field_path(sub, sizeof(sub), field, urlkey);
			problem(c, at ? at : v, v->kind == EXPT_Y_MAP ? sub : field,
				"expected a path or an nfs://, pvc:// or s3:// URL, got '%s'",
				m.url);
			bad = 1;
		}
		if (bad || !m.url) {
			free(m.mount);
			free(m.url);
			continue;
		}
		if (!m.mount)
			m.mount = expt_xasprintf("/%s/%s", section, k->text);
		m.name = expt_xstrdup(k->text);
		EXPT_ALLOC_GROW(out->v, out->n + 1, out->cap);
		out->v[out->n++] = m;
	}
}

static void v_secrets(struct vctx *c, const struct expt_ynode *n)
{
	size_t i;

	if (is_unset(n))
		return;
	if (n->kind != EXPT_Y_SEQ) {
		wrong(c, n, "secrets", "a list of Secret names");
		return;
	}
	for (i = 0; i < n->n; i++) {
		const struct expt_ynode *v = n->vals[i];
		char field[64];

		snprintf(field, sizeof(field), "secrets[%zu]", i);
		if (v->kind != EXPT_Y_SCALAR || expt_ynode_is_null(v)) {
			wrong(c, v, field, "a Secret name");
			continue;
		}
		if (!dns_subdomain_ok(v->text)) {
			problem(c, v, field,
				"Secret names are DNS-1123 subdomains (lowercase letters, digits, "
				"'-' and '.'), got '%s'",
				v->text);
			continue;
		}
		expt_strv_push(&c->spec->secrets, v->text);
	}
}

static void v_files(struct vctx *c, const struct expt_ynode *n)
{
	struct expt_spec *s = c->spec;
	size_t i;

	if (want_map(c, n, "files"))
		return;
	for (i = 0; i < n->n; i++) {
		const struct expt_ynode *k = n->keys[i], *v = n->vals[i];
		char field[320];
		struct expt_kv *kv;

		expt_spec_field_path(field, sizeof(field), "files", k->text);
		if (!*k->text || !strcmp(k->text, "..") || !strncmp(k->text, "../", 3) ||
		    strstr(k->text, "/../") ||
		    (strlen(k->text) >= 3 && !strcmp(k->text + strlen(k->text) - 3, "/.."))) {
			problem(c, k, field, "the path in the run must not leave its directory");
			continue;
		}
		if (v->kind != EXPT_Y_SCALAR || expt_ynode_is_null(v) || !*v->text) {
			wrong(c, v, field, "a local file path");
			continue;
		}
		EXPT_ALLOC_GROW(s->files.v, s->files.n + 1, s->files.cap);
		kv = &s->files.v[s->files.n++];
		kv->key = expt_xstrdup(k->text);
		kv->value = expt_xstrdup(v->text);
	}
}

static void v_snapshot(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"exclude", "max_size"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;
	int64_t x;

	if (want_map(c, n, "snapshot"))
		return;
	unknown_keys(c, n, "snapshot", keys, NELEM(keys));
	v = expt_ynode_get(n, "exclude");
	if (!is_unset(v)) {
		if (v->kind != EXPT_Y_SEQ) {
			wrong(c, v, "snapshot.exclude", "a list of globs like data/* or *.ckpt");
		} else {
			for (size_t i = 0; i < v->n; i++) {
				char field[64];
				char *g = NULL;
				snprintf(field, sizeof(field), "snapshot.exclude[%zu]", i);
				if (!get_word(c, v->vals[i], field, &g))
					expt_strv_push(&s->snapshot.exclude, g);
				free(g);
			}
		}
	}
	v = expt_ynode_get(n, "max_size");
	if (!is_unset(v)) {
		if (v->kind == EXPT_Y_SCALAR && v->type != EXPT_VT_BOOL &&
		    !expt_parse_bytes(v->text, &x) && x > 0)
			s->snapshot.max_bytes = x;
		else
			wrong(c, v, "snapshot.max_size", "a quantity like 512Mi or 2Gi");
	}
}

static void v_cleanup(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"failed", "succeeded"};
	int64_t *dst[] = {&c->spec->cleanup_failed_ms, &c->spec->cleanup_succeeded_ms};
	size_t i;

	if (want_map(c, n, "cleanup"))
		return;
	unknown_keys(c, n, "cleanup", keys, NELEM(keys));
	for (i = 0; i < NELEM(keys); i++) {
		const struct expt_ynode *v = expt_ynode_get(n, keys[i]);
		char field[64];
		int64_t ms;

		snprintf(field, sizeof(field), "cleanup.%s", keys[i]);
		if (is_unset(v))
			continue;
		if (v->kind == EXPT_Y_SCALAR && !strcmp(v->text, "keep"))
			*dst[i] = -1;
		else if (v->kind == EXPT_Y_SCALAR && v->type != EXPT_VT_BOOL &&
			 !expt_parse_duration_ms(v->text, &ms))
			*dst[i] = ms;
		else
			wrong(c, v, field, "keep or a duration like 1h");
	}
}

static void v_tracking(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"uri", "tensorboard", "metrics_prefix", "sinks"};
	static const char *const sinks[] = {"store", "stdout",	    "console",
					    "jsonl", "tensorboard", "mlflow"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;
	size_t i;
	int uri_bad = 0, sinks_bad = 0;

	if (want_map(c, n, "tracking"))
		return;
	unknown_keys(c, n, "tracking", keys, NELEM(keys));
	v = expt_ynode_get(n, "uri");
	if (!get_word(c, v, "tracking.uri", &s->tracking.uri) &&
	    strncmp(s->tracking.uri, "http://", 7) && strncmp(s->tracking.uri, "https://", 8) &&
	    strncmp(s->tracking.uri, "mlflow://", 9) && (uri_bad = 1))
		wrong(c, v, "tracking.uri",
		      "an MLflow server's address: http://host:5000, https://host or "
		      "mlflow://host:5000");
	get_bool(c, expt_ynode_get(n, "tensorboard"), "tracking.tensorboard",
		 &s->tracking.tensorboard);
	v = expt_ynode_get(n, "metrics_prefix");
	if (!get_word(c, v, "tracking.metrics_prefix", &s->tracking.metrics_prefix) &&
	    strpbrk(s->tracking.metrics_prefix, "\r\n"))
		problem(c, v, "tracking.metrics_prefix", "must be on one line");
	v = expt_ynode_get(n, "sinks");
	if (is_unset(v))
		return;
	if (v->kind != EXPT_Y_SEQ) {
		wrong(c, v, "tracking.sinks", "a list of sinks");
		return;
	}
	for (i = 0; i < v->n; i++) {
		char field[64];
		char *sink = NULL;

		snprintf(field, sizeof(field), "tracking.sinks[%zu]", i);
		if (get_enum(c, v->vals[i], field, sinks, NELEM(sinks), &sink))
			sinks_bad = 1;
		else if (expt_strv_find(&s->tracking.sinks, sink) < 0)
			expt_strv_push(&s->tracking.sinks, sink);
		free(sink);
	}
	if (uri_bad || sinks_bad)
		return;
	/* A URI nothing sends to, or an mlflow sink with nowhere to send: both are mistakes. */
	if (s->tracking.uri && expt_strv_find(&s->tracking.sinks, "mlflow") < 0)
		problem(c, v, "tracking.sinks",
			"tracking.uri is set but the list leaves out mlflow: add mlflow (or remove "
			"tracking.uri)");
	else if (!s->tracking.uri && expt_strv_find(&s->tracking.sinks, "mlflow") >= 0)
		problem(c, v, "tracking.sinks",
			"names mlflow but tracking.uri is not set: say where the MLflow server is "
			"(tracking.uri: http://host:5000)");
}

static void v_tolerations(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"key", "operator", "value", "effect",
					   "tolerationSeconds"};
	static const char *const ops[] = {"Equal", "Exists"};
	static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute"};
	struct expt_buf b = EXPT_BUF_INIT;
	size_t i;

	if (is_unset(n))
		return;
	if (n->kind != EXPT_Y_SEQ) {
		wrong(c, n, "kubernetes.tolerations", "a list of tolerations");
		return;
	}
	for (i = 0; i < n->n; i++) {
		const struct expt_ynode *t = n->vals[i];
		char field[64], sub[96];
		char *tmp = NULL;
		int64_t secs;
		const struct expt_ynode *x;

		snprintf(field, sizeof(field), "kubernetes.tolerations[%zu]", i);
		if (t->kind != EXPT_Y_MAP) {
			wrong(c, t, field, "a map like {key: gpu, operator: Exists}");
			continue;
		}
		unknown_keys(c, t, field, keys, NELEM(keys));
		expt_spec_field_path(sub, sizeof(sub), field, "key");
		get_str(c, expt_ynode_get(t, "key"), sub, &tmp);
		expt_spec_field_path(sub, sizeof(sub), field, "value");
		get_str(c, expt_ynode_get(t, "value"), sub, &tmp);
		expt_spec_field_path(sub, sizeof(sub), field, "operator");
		get_enum(c, expt_ynode_get(t, "operator"), sub, ops, NELEM(ops), &tmp);
		expt_spec_field_path(sub, sizeof(sub), field, "effect");
		get_enum(c, expt_ynode_get(t, "effect"), sub, effects, NELEM(effects), &tmp);
		free(tmp);
		x = expt_ynode_get(t, "tolerationSeconds");
		expt_spec_field_path(sub, sizeof(sub), field, "tolerationSeconds");
		if (!is_unset(x) && (x->kind != EXPT_Y_SCALAR || x->type != EXPT_VT_INT ||
				     expt_parse_i64(x->text, &secs)))
			wrong(c, x, sub, "an integer");
	}
	expt_ynode_json(&b, n);
	free(c->spec->kubernetes.tolerations_json);
	c->spec->kubernetes.tolerations_json = expt_buf_detach(&b, NULL);
}

static void v_kubernetes(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"context",	     "namespace",	"node_selector",
					   "tolerations",    "service_account", "image_pull_policy",
					   "priority_class", "labels",		"annotations",
					   "pod_template",   "queue",		"start_timeout",
					   "max_in_flight"};
	static const char *const policies[] = {"Always", "IfNotPresent", "Never"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;

	if (want_map(c, n, "kubernetes"))
		return;
	unknown_keys(c, n, "kubernetes", keys, NELEM(keys));
	get_word(c, expt_ynode_get(n, "context"), "kubernetes.context", &s->kubernetes.context);
	v = expt_ynode_get(n, "namespace");
	if (!get_word(c, v, "kubernetes.namespace", &s->kubernetes.namespace_))
		check_label(c, v, "kubernetes.namespace");
	v = expt_ynode_get(n, "service_account");
	if (!get_word(c, v, "kubernetes.service_account", &s->kubernetes.service_account) &&
	    !dns_subdomain_ok(s->kubernetes.service_account))
		problem(c, v, "kubernetes.service_account",
			"ServiceAccount names are DNS-1123 subdomains (lowercase letters, digits, "
			"'-' and '.'), got '%s'",
			s->kubernetes.service_account);
	v = expt_ynode_get(n, "node_selector");
	if (!want_map(c, v, "kubernetes.node_selector"))
		get_kvs(c, v, "kubernetes.node_selector", &s->kubernetes.node_selector, 0);
	v_tolerations(c, expt_ynode_get(n, "tolerations"));
	get_enum(c, expt_ynode_get(n, "image_pull_policy"), "kubernetes.image_pull_policy",
		 policies, NELEM(policies), &s->kubernetes.image_pull_policy);
	v = expt_ynode_get(n, "priority_class");
	if (!get_word(c, v, "kubernetes.priority_class", &s->kubernetes.priority_class) &&
	    !dns_subdomain_ok(s->kubernetes.priority_class))
		problem(c, v, "kubernetes.priority_class",
			"PriorityClass names are DNS-1123 subdomains (lowercase letters, digits, "
			"'-' and '.'), got '%s'",
			s->kubernetes.priority_class);
	v = expt_ynode_get(n, "labels");
	if (!want_map(c, v, "kubernetes.labels"))
		get_kvs(c, v, "kubernetes.labels", &s->kubernetes.labels, 0);
	v = expt_ynode_get(n, "annotations");
	if (!want_map(c, v, "kubernetes.annotations"))
		get_kvs(c, v, "kubernetes.annotations", &s->kubernetes.annotations, 0);
	get_duration(c, expt_ynode_get(n, "start_timeout"), "kubernetes.start_timeout",
		     &s->kubernetes.start_timeout_ms);
	get_int(c, expt_ynode_get(n, "max_in_flight"), "kubernetes.max_in_flight", 1, 1000000,
		&s->kubernetes.max_in_flight);
	v = expt_ynode_get(n, "queue");
	if (!get_word(c, v, "kubernetes.queue", &s->kubernetes.queue) &&
	    !dns_subdomain_ok(s->kubernetes.queue))
		problem(c, v, "kubernetes.queue",
			"LocalQueue names are DNS-1123 subdomains (lowercase letters, digits, '-' "
			"and '.'), got '%s'",
			s->kubernetes.queue);
	v = expt_ynode_get(n, "pod_template");
	if (!want_map(c, v, "kubernetes.pod_template")) {
		struct expt_buf b = EXPT_BUF_INIT;
		expt_ynode_json(&b, v);
		free(s->kubernetes.pod_template_json);
		s->kubernetes.pod_template_json = expt_buf_detach(&b, NULL);
	}
}

/* container.ulimits values: N, or SOFT:HARD with SOFT <= HARD (as `docker run --ulimit`). */
int expt_spec_ulimit_parse(const char *text, int64_t *soft, int64_t *hard)
{
	const char *colon = strchr(text, ':');
	char *a = colon ? expt_xstrndup(text, (size_t)(colon - text)) : expt_xstrdup(text);
	int bad = expt_parse_i64(a, soft) || *soft < 0;

	free(a);
	if (bad)
		return -1;
	*hard = *soft;
	if (colon && (expt_parse_i64(colon + 1, hard) || *hard < *soft))
		return -1;
	return 0;
}

static void v_container(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"ulimits", "network", "keep", "pull",
					   "engine",  "code",	 "user"};
	static const char *const pulls[] = {"missing", "always", "never"};
	static const char *const engines[] = {"auto", "docker", "podman"};
	static const char *const codes[] = {"mount", "image"};
	static const char *const limits[] = {
	    "core",   "cpu",   "data", "fsize",	 "locks",  "memlock",	 "msgqueue", "nice",
	    "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;

	if (want_map(c, n, "container"))
		return;
	unknown_keys(c, n, "container", keys, NELEM(keys));
	get_word(c, expt_ynode_get(n, "network"), "container.network", &s->container.network);
	get_bool(c, expt_ynode_get(n, "keep"), "container.keep", &s->container.keep);
	get_enum(c, expt_ynode_get(n, "pull"), "container.pull", pulls, NELEM(pulls),
		 &s->container.pull);
	get_enum(c, expt_ynode_get(n, "engine"), "container.engine", engines, NELEM(engines),
		 &s->container.engine);
	get_enum(c, expt_ynode_get(n, "code"), "container.code", codes, NELEM(codes),
		 &s->container.code);
	get_word(c, expt_ynode_get(n, "user"), "container.user", &s->container.user);
	v = expt_ynode_get(n, "ulimits");
	if (want_map(c, v, "container.ulimits"))
		return;
	for (size_t i = 0; i < v->n; i++) {
		const struct expt_ynode *k = v->keys[i], *x = v->vals[i];
		char field[320], hint[96];
		int64_t soft, hard;
		size_t j;

		expt_spec_field_path(field, sizeof(field), "container.ulimits", k->text);
		for (j = 0; j < NELEM(limits) && strcmp(limits[j], k->text); j++)
			;
		if (j == NELEM(limits)) {
			expt_suggest(hint, sizeof(hint), k->text, limits, NELEM(limits));
			problem(c, k, field, "unknown limit%s", hint);
			continue;
		}
		if (x->kind != EXPT_Y_SCALAR || expt_spec_ulimit_parse(x->text, &soft, &hard)) {
			wrong(c, x, field, "N or SOFT:HARD (numbers, SOFT <= HARD)");
			continue;
		}
		EXPT_ALLOC_GROW(s->container.ulimits.v, s->container.ulimits.n + 1,
				s->container.ulimits.cap);
		s->container.ulimits.v[s->container.ulimits.n].key = expt_xstrdup(k->text);
		s->container.ulimits.v[s->container.ulimits.n++].value = expt_xstrdup(x->text);
	}
}

static void v_globs(struct vctx *c, const struct expt_ynode *v, const char *field,
		    struct expt_strv *out)
{
	if (is_unset(v))
		return;
	if (v->kind != EXPT_Y_SEQ) {
		wrong(c, v, field, "a list of globs like src/** or *.py");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		char f[96];
		char *g = NULL;
		snprintf(f, sizeof(f), "%s[%zu]", field, i);
		if (!get_word(c, v->vals[i], f, &g))
			expt_strv_push(out, g);
		free(g);
	}
}

/* A relative path that stays inside the project ("", "..", absolute: refused). */
static int inside_ok(const char *p)
{
	const char *s = p;

	if (*p == '/')
		return 0;
	while (*s) {
		size_t n = strcspn(s, "/");
		if (n == 2 && !strncmp(s, "..", 2))
			return 0;
		s += n;
		while (*s == '/')
			s++;
	}
	return 1;
}

static int platform_ok(const char *p)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
	size_t parts = 0;

	for (const char *s = p;; s++) {
		size_t n = strspn(s, ok);
		if (!n)
			return 0;
		parts++;
		s += n;
		if (!*s)
			break;
		if (*s != '/')
			return 0;
	}
	return parts == 2 || parts == 3;
}

static void v_build(struct vctx *c, const struct expt_ynode *n)
{
	static const char *const keys[] = {"base",	 "context",  "include",	   "exclude",
					   "workdir",	 "env",	     "entrypoint", "platform",
					   "repository", "insecure", "dockerfile"};
	struct expt_spec *s = c->spec;
	const struct expt_ynode *v;
	int at = expt_ynode_find(c->root, "build");
	const char *why = NULL;
	struct expt_imgref ref;

	if (is_unset(n))
		return;
	s->build.set = 1;
	s->build.line = n->line;
	s->build.col = n->col;
	if (n->kind == EXPT_Y_SCALAR) {
		/* build: DIR, as Compose writes it: DIR/Dockerfile. */
		s->build.context = expt_xstrdup(*n->text ? n->text : ".");
		s->build.dockerfile = expt_xstrdup("Dockerfile");
		if (!inside_ok(s->build.context))
			problem(
			    c, n, "build",
			    "expected a directory inside the project (relative, no ..), got '%s'",
			    n->text);
		problem(c, n, "build.repository",
			"required field is missing: build: DIR is a build context, and the image "
			"needs a name to be pushed to; write build: {context: %s, repository: "
			"HOST/NAME}",
			n->text);
		return;
	}
	if (n->kind != EXPT_Y_MAP) {
		wrong(c, n, "build", "a map (or a build context directory)");
		return;
	}
	unknown_keys(c, n, "build", keys, NELEM(keys));
	v = expt_ynode_get(n, "base");
	if (!get_word(c, v, "build.base", &s->build.base) &&
	    expt_imgref_parse(s->build.base, &ref, &why))
		problem(c, v, "build.base",
			"expected an image like python:3.12 or "
			"127.0.0.1:5000/team/base:v1 (%s), got '%s'",
			why, s->build.base);
	v = expt_ynode_get(n, "context");
	if (!get_word(c, v, "build.context", &s->build.context) && !inside_ok(s->build.context))
		problem(c, v, "build.context",
			"expected a directory inside the project (relative, no ..), got '%s'",
			s->build.context);
	v_globs(c, expt_ynode_get(n, "include"), "build.include", &s->build.include);
	v_globs(c, expt_ynode_get(n, "exclude"), "build.exclude", &s->build.exclude);
	v = expt_ynode_get(n, "workdir");
	if (!get_word(c, v, "build.workdir", &s->build.workdir) &&
	    (s->build.workdir[0] != '/' || strstr(s->build.workdir, "/../") ||
	     !strcmp(s->build.workdir, "/")))
		problem(c, v, "build.workdir", "expected an absolute directory like /app, got '%s'",
			s->build.workdir);
	v = expt_ynode_get(n, "env");
	if (!want_map(c, v, "build.env"))
		get_kvs(c, v, "build.env", &s->build.env, 1);
	v = expt_ynode_get(n, "entrypoint");
	if (!is_unset(v)) {
		s->build.entrypoint_set = 1;
		if (v->kind == EXPT_Y_SCALAR) {
			if (expt_split_words(v->text, &s->build.entrypoint, &why))
				problem(c, v, "build.entrypoint", "%s", why);
		} else if (v->kind == EXPT_Y_SEQ) {
			for (size_t i = 0; i < v->n; i++) {
				char f[64];
				snprintf(f, sizeof(f), "build.entrypoint[%zu]", i);
				if (v->vals[i]->kind != EXPT_Y_SCALAR ||
				    expt_ynode_is_null(v->vals[i]))
					wrong(c, v->vals[i], f, "a string");
				else
					expt_strv_push(&s->build.entrypoint, v->vals[i]->text);
			}
		} else {
			wrong(c, v, "build.entrypoint", "a command line or a list of words");
		}
	}
	v = expt_ynode_get(n, "platform");
	if (!get_word(c, v, "build.platform", &s->build.platform) &&
	    !platform_ok(s->build.platform))
		problem(c, v, "build.platform",
			"expected OS/ARCH or OS/ARCH/VARIANT like linux/amd64 or linux/arm64/v8, "
			"got '%s'",
			s->build.platform);
	v = expt_ynode_get(n, "repository");
	if (!get_word(c, v, "build.repository", &s->build.repository)) {
		if (expt_imgref_parse(s->build.repository, &ref, &why))
			problem(c, v, "build.repository",
				"expected an image name with its registry like "
				"127.0.0.1:5000/team/app or ghcr.io/org/app (%s), got '%s'",
				why, s->build.repository);
		else if (ref.tag[0] || ref.digest[0])
			problem(c, v, "build.repository",
				"expected a name without a tag or digest (expt tags the image with "
				"the digest of its content), got '%s'",
				s->build.repository);
		else if (!strcmp(ref.host, "index.docker.io") &&
			 strncmp(s->build.repository, "docker.io/", 10))
			problem(c, v, "build.repository",
				"expected the registry host first (docker.io/%s for Docker Hub, "
				"HOST:PORT/%s for another registry), got '%s'",
				s->build.repository, s->build.repository, s->build.repository);
	} else if (is_unset(v)) {
		problem(c, at >= 0 ? c->root->keys[at] : n, "build.repository",
			"required field is missing: the image name to push to, registry host "
			"included (127.0.0.1:5000/team/app)");
	}
	get_bool(c, expt_ynode_get(n, "insecure"), "build.insecure", &s->build.insecure);
	v = expt_ynode_get(n, "dockerfile");
	if (!get_word(c, v, "build.dockerfile", &s->build.dockerfile) &&
	    !inside_ok(s->build.dockerfile))
		problem(c, v, "build.dockerfile",
			"expected a file inside the build context (relative, no ..), got '%s'",
			s->build.dockerfile);
	if (s->build.dockerfile && s->build.base)
		problem(c, expt_ynode_get(n, "base"), "build.base",
			"base and dockerfile exclude each other: the Dockerfile's FROM names the "
			"base");
	else if (!s->build.dockerfile && !s->build.base)
		problem(c, at >= 0 ? c->root->keys[at] : n, "build.base",
			"required field is missing: the image the code goes on "
			"(127.0.0.1:5000/expt/python3:bookworm), or dockerfile: for a Dockerfile "
			"build");
	if (!s->build.context)
		s->build.context = expt_xstrdup(".");
	s->build.context_abs = strcmp(s->build.context, ".")
				   ? expt_xasprintf("%s/%s", s->dir, s->build.context)
				   : expt_xstrdup(s->dir);
	if (!s->build.workdir)
		s->build.workdir = expt_xstrdup("/app");
}

int expt_spec_validate(struct expt_spec *s, const struct expt_ynode *root, struct expt_sweep *sweep,
		       struct expt_diags *diags)
{
	static const char *const conflicts[] = {"fail", "replace", "new-id"};
	static const char *const workdirs[] = {"project", "snapshot", "output"};
	static const char *const backends[] = {"local", "container", "kubernetes"};
	struct vctx c = {s, diags, root, sweep, 0};
	const char *fields[sizeof(expt_spec_fields) / sizeof(expt_spec_fields[0])];
	const struct expt_ynode *v;
	size_t nf = 0, i;

	/* variants: was taken out before; it is not valid here (say, nested in a variant). */
	for (i = 0; expt_spec_fields[i]; i++)
		if (strcmp(expt_spec_fields[i], "variants"))
			fields[nf++] = expt_spec_fields[i];
	if (expt_ynode_find(root, "variants") >= 0)
		problem(&c, root->keys[expt_ynode_find(root, "variants")], "variants",
			"variants cannot be nested in a variant");
	unknown_keys(&c, root, "", fields, nf);

	v_name(&c, expt_ynode_get(root, "name"));
	get_word(&c, expt_ynode_get(root, "image"), "image", &s->image);
	v_build(&c, expt_ynode_get(root, "build"));
	v_command(&c, expt_ynode_get(root, "command"));
	get_bool(&c, expt_ynode_get(root, "shell"), "shell", &s->shell);
	v_params(&c, expt_ynode_get(root, "params"));
	if (expt_sweep_parse(sweep, expt_ynode_get(root, "sweep"),
			     expt_ynode_find(root, "sweep") >= 0
				 ? root->keys[expt_ynode_find(root, "sweep")]
				 : NULL,
			     diags))
		c.errors++;
	collect_param_names(&c);
	v_mounts(&c, expt_ynode_get(root, "inputs"), "inputs", &s->inputs);
	v_mounts(&c, expt_ynode_get(root, "outputs"), "outputs", &s->outputs);
	v_args(&c, expt_ynode_get(root, "args")); /* after the mounts it may name */
	get_int(&c, expt_ynode_get(root, "parallel"), "parallel", 1, 100000, &s->parallel);
	v_resources(&c, expt_ynode_get(root, "resources"));
	v = expt_ynode_get(root, "env");
	if (!want_map(&c, v, "env"))
		get_kvs(&c, v, "env", &s->env, 1);
	v_secrets(&c, expt_ynode_get(root, "secrets"));
	v_files(&c, expt_ynode_get(root, "files"));
	get_int(&c, expt_ynode_get(root, "retries"), "retries", 0, 100, &s->retries);
	get_duration(&c, expt_ynode_get(root, "timeout"), "timeout", &s->timeout_ms);
	get_enum(&c, expt_ynode_get(root, "on_conflict"), "on_conflict", conflicts,
		 NELEM(conflicts), &s->on_conflict);
	v_cleanup(&c, expt_ynode_get(root, "cleanup"));
	v_tracking(&c, expt_ynode_get(root, "tracking"));
	get_enum(&c, expt_ynode_get(root, "backend"), "backend", backends, NELEM(backends),
		 &s->backend);
	v_kubernetes(&c, expt_ynode_get(root, "kubernetes"));
	get_enum(&c, expt_ynode_get(root, "workdir"), "workdir", workdirs, NELEM(workdirs),
		 &s->workdir);
	v_snapshot(&c, expt_ynode_get(root, "snapshot"));
	v_container(&c, expt_ynode_get(root, "container"));

	/* Defaults that depend on other fields. */
	if (!s->tracking.sinks.n) {
		expt_strv_push(&s->tracking.sinks, "store");
		if (s->tracking.tensorboard)
			expt_strv_push(&s->tracking.sinks, "tensorboard");
		if (s->tracking.uri)
			expt_strv_push(&s->tracking.sinks, "mlflow");
	}
	if (s->image && !strcmp(s->image, "build") && !s->build.set)
		problem(&c, expt_ynode_get(root, "image"), "image",
			"image: build needs a build: section (docs/images.md)");
	if (strcmp(s->backend, "local") && !s->image && is_unset(expt_ynode_get(root, "build"))) {
		v = expt_ynode_get(root, "backend");
		problem(&c, v ? v : root, "image",
			"backend %s needs an image (or a build: section)", s->backend);
	}
	return c.errors ? -1 : 0;
}
