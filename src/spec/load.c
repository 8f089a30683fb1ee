/* Loading a spec: read the file, parse it, pick the variant (extends chains, cycles), apply the
 * command-line overrides, validate, expand the sweep and record the resolved spec as JSON. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int variant_name_ok(const char *s)
{
	const char *p;

	if (!*s || strlen(s) > 63)
		return 0;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
	return 1;
}

static const char *extends_of(const struct expt_ynode *v)
{
	const struct expt_ynode *e =
	    v && v->kind == EXPT_Y_MAP ? expt_ynode_get(v, "extends") : NULL;

	return e && e->kind == EXPT_Y_SCALAR && !expt_ynode_is_null(e) ? e->text : NULL;
}

/* Checks every variant, chosen or not: its shape, its keys and its extends. Full validation
 * happens on the chosen one only, after merging. */
static void check_variants(const struct expt_ynode *vs, struct expt_diags *diags)
{
	const char **fields, **names;
	size_t nf = 0, i, j;

	if (!vs || expt_ynode_is_null(vs))
		return;
	if (vs->kind != EXPT_Y_MAP) {
		char d[96];
		expt_ynode_describe(vs, d, sizeof(d));
		expt_diag_at(diags, vs, "variants", "expected a map of name: {fields}, got %s", d);
		return;
	}
	fields = expt_xcalloc(32, sizeof(*fields));
	for (i = 0; expt_spec_fields[i] && nf < 31; i++)
		if (strcmp(expt_spec_fields[i], "variants"))
			fields[nf++] = expt_spec_fields[i];
	fields[nf++] = "extends";
	names = expt_xcalloc(vs->n + 1, sizeof(*names));
	for (i = 0; i < vs->n; i++)
		names[i] = vs->keys[i]->text;
	for (i = 0; i < vs->n; i++) {
		const struct expt_ynode *k = vs->keys[i], *v = vs->vals[i];
		const struct expt_ynode *ext;
		char field[320], hint[96];

		snprintf(field, sizeof(field), "variants.%s", k->text);
		if (!variant_name_ok(k->text))
			expt_diag_at(
			    diags, k, field,
			    "variant names hold letters, digits, '-' and '_' (at most 63)");
		if (expt_ynode_is_null(v))
			continue;
		if (v->kind != EXPT_Y_MAP) {
			char d[96];
			expt_ynode_describe(v, d, sizeof(d));
			expt_diag_at(diags, v, field, "expected a map of fields, got %s", d);
			continue;
		}
		for (j = 0; j < v->n; j++) {
			const char *key = v->keys[j]->text;
			char sub[352];
			size_t f;
			int known = 0;

			for (f = 0; f < nf && !known; f++)
				known = !strcmp(key, fields[f]);
			known |= !strncmp(key, "x-", 2);
			snprintf(sub, sizeof(sub), "%s.%s", field, key);
			if (!strcmp(key, "variants"))
				expt_diag_at(diags, v->keys[j], sub,
					     "variants cannot be nested in a variant");
			else if (!known) {
				expt_suggest(hint, sizeof(hint), key, fields, nf);
				expt_diag_at(diags, v->keys[j], sub, "unknown field%s", hint);
			}
		}
		ext = expt_ynode_get(v, "extends");
		snprintf(field, sizeof(field), "variants.%s.extends", k->text);
		if (!ext || expt_ynode_is_null(ext))
			continue;
		if (ext->kind != EXPT_Y_SCALAR) {
			expt_diag_at(diags, ext, field, "expected the name of another variant");
			continue;
		}
		if (expt_ynode_find(vs, ext->text) < 0) {
			expt_suggest(hint, sizeof(hint), ext->text, names, vs->n);
			expt_diag_at(diags, ext, field, "no variant named '%s'%s", ext->text, hint);
			continue;
		}
		/* Follow the chain; a cycle is reported once, at its first member in the file. */
		{
			struct expt_buf chain = EXPT_BUF_INIT;
			const char *cur = k->text;
			size_t steps, first = i;
			int back = 0;

			expt_buf_adds(&chain, k->text);
			for (steps = 0; steps <= vs->n; steps++) {
				long at;
				cur = extends_of(expt_ynode_get(vs, cur));
				if (!cur || (at = expt_ynode_find(vs, cur)) < 0)
					break;
				expt_buf_addf(&chain, " -> %s", cur);
				if ((size_t)at < first)
					first = (size_t)at;
				if (!strcmp(cur, k->text)) {
					back = 1;
					break;
				}
			}
			if (back && first == i)
				expt_diag_at(diags, ext, field,
					     "variants extend each other in a "
					     "cycle: %s",
					     chain.buf);
			expt_buf_release(&chain);
		}
	}
	free(names);
	free(fields);
}

/* Merges the chosen variant (and what it extends) over root. 0, or -1 after reporting. */
static int apply_variant(struct expt_ynode *root, const struct expt_ynode *vs, const char *name,
			 const int at[2], const char *path, struct expt_diags *diags)
{
	const struct expt_ynode **chain = NULL;
	size_t n = 0, cap = 0, i;
	const char *cur = name;
	int rc = 0;

	if (!vs || vs->kind != EXPT_Y_MAP || expt_ynode_find(vs, name) < 0) {
		const char **names = NULL;
		char hint[96];
		size_t nn = vs && vs->kind == EXPT_Y_MAP ? vs->n : 0;

		names = expt_xcalloc(nn + 1, sizeof(*names));
		for (i = 0; i < nn; i++)
			names[i] = vs->keys[i]->text;
		expt_suggest(hint, sizeof(hint), name, names, nn);
		if (nn)
			expt_diag_add(diags, path, at[0], at[1], "variants",
				      "no variant named '%s'%s", name, hint);
		else
			expt_diag_add(diags, path, 0, 0, "variants",
				      "no variant named '%s': the spec defines no variants", name);
		free(names);
		return -1;
	}
	while (cur) {
		const struct expt_ynode *v = expt_ynode_get(vs, cur);
		if (!v || n > vs->n) { /* unknown parent or a cycle: already reported */
			rc = -1;
			break;
		}
		EXPT_ALLOC_GROW(chain, n + 1, cap);
		chain[n++] = v;
		cur = extends_of(v);
	}
	/* The furthest ancestor first, so that each variant overrides what it extends. */
	for (i = n; rc == 0 && i-- > 0;) {
		struct expt_ynode *v;
		if (chain[i]->kind != EXPT_Y_MAP)
			continue;
		v = expt_ynode_copy(chain[i]);
		expt_ynode_del(v, "extends");
		expt_ynode_merge(root, v);
		expt_ynode_free(v);
	}
	free(chain);
	return rc;
}

static struct expt_ynode *scalar(const char *text)
{
	return expt_ynode_plain(text, "", 0, 0);
}

static struct expt_ynode *string(const char *text)
{
	return expt_ynode_str(text, "", 0, 0);
}

/* The resolved spec: every field that is set, in documentation order, with the defaults that
 * matter written out. JSON is YAML, so it loads back as the same spec. */
static char *resolved_json(const struct expt_spec *s, const struct expt_ynode *root)
{
	struct expt_ynode *r = expt_ynode_new(EXPT_Y_MAP, "", 0, 0);
	struct expt_buf b = EXPT_BUF_INIT;
	char num[32];
	size_t i;

	for (i = 0; expt_spec_fields[i]; i++) {
		const char *f = expt_spec_fields[i];
		const struct expt_ynode *v = expt_ynode_get(root, f);
		struct expt_ynode *d = NULL;

		if (v && !expt_ynode_is_null(v)) {
			expt_ynode_set(r, f, expt_ynode_copy(v));
			continue;
		}
		if (!strcmp(f, "name"))
			d = string(s->name);
		else if (!strcmp(f, "shell"))
			d = scalar(s->shell ? "true" : "false");
		else if (!strcmp(f, "args"))
			d = string(s->args);
		else if (!strcmp(f, "params"))
			d = expt_ynode_new(EXPT_Y_MAP, "", 0, 0);
		else if (!strcmp(f, "parallel"))
			d = scalar((snprintf(num, sizeof(num), "%d", s->parallel), num));
		else if (!strcmp(f, "retries"))
			d = scalar((snprintf(num, sizeof(num), "%d", s->retries), num));
		else if (!strcmp(f, "on_conflict"))
			d = string(s->on_conflict);
		else if (!strcmp(f, "backend"))
			d = string(s->backend);
		if (d)
			expt_ynode_set(r, f, d);
	}
	expt_ynode_json(&b, r);
	expt_ynode_free(r);
	return expt_buf_detach(&b, NULL);
}

static void set_defaults(struct expt_spec *s)
{
	s->parallel = 1;
	s->args = expt_xstrdup("auto");
	s->on_conflict = expt_xstrdup("fail");
	s->backend = expt_xstrdup("local");
	s->workdir = expt_xstrdup("project");
	s->snapshot.max_bytes = 512LL << 20;
	s->cleanup_failed_ms = -1;
	s->cleanup_succeeded_ms = -1;
	s->tracking.metrics_prefix = expt_xstrdup("expt:");
	s->kubernetes.tolerations_json = expt_xstrdup("[]");
	s->kubernetes.start_timeout_ms = 600000; /* 10m */
}

static char *dir_of(const char *path)
{
	char *abs = expt_abspath(path), *slash;

	if (!abs)
		return expt_xstrdup(".");
	slash = strrchr(abs, '/');
	if (slash == abs)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return abs;
}

int expt_spec_load(struct expt_spec **out, const struct expt_spec_opts *opts,
		   struct expt_diags *diags, struct expt_err *err)
{
	struct expt_diags own = {0};
	struct expt_buf data = EXPT_BUF_INIT;
	struct expt_ynode *root = NULL, *variants = NULL;
	struct expt_sweep sweep = {0};
	struct expt_spec *s;
	const char *path = opts && opts->path ? opts->path : "expt.yaml";
	int64_t nruns;
	int variants_key[2] = {0, 0};
	size_t ndiags;
	int rc;

	*out = NULL;
	if (!diags)
		diags = &own;
	ndiags = diags->n; /* a caller's earlier problems are kept, and not counted as ours */
	s = expt_xcalloc(1, sizeof(*s));
	s->path = expt_xstrdup(path);
	s->dir = dir_of(path);
	set_defaults(s);
	if (opts && opts->variant)
		s->variant = expt_xstrdup(opts->variant);

	expt_buf_init(&data, EXPT_SPEC_MAX_BYTES);
	if (opts && opts->text) {
		if (opts->len > EXPT_SPEC_MAX_BYTES) {
			rc = expt_err_set(err, EXPT_EUSAGE, "%s: the spec is larger than %d bytes",
					  path, EXPT_SPEC_MAX_BYTES);
			goto out;
		}
		expt_buf_add(&data, opts->text, opts->len);
	} else if ((rc = expt_read_file(path, &data, err))) {
		goto out;
	}
	/* Node positions point at s->path, which lives as long as the tree (freed below). */
	if (expt_ynode_parse(data.buf, data.len, s->path, &root, diags))
		goto invalid;
	if (!root || expt_ynode_is_null(root)) {
		expt_diag_add(diags, s->path, 1, 1, "",
			      "the spec is empty; it needs at least a "
			      "command");
		goto invalid;
	}
	if (root->kind != EXPT_Y_MAP) {
		char d[96];
		expt_ynode_describe(root, d, sizeof(d));
		expt_diag_at(diags, root, "", "expected a map of fields at the top level, got %s",
			     d);
		goto invalid;
	}
	if (expt_ynode_find(root, "variants") >= 0) {
		const struct expt_ynode *k = root->keys[expt_ynode_find(root, "variants")];
		variants_key[0] = k->line;
		variants_key[1] = k->col;
	}
	variants = expt_ynode_take(root, "variants");
	check_variants(variants, diags);
	/* On an unknown variant, go on with the base: the other problems are worth seeing too. */
	if (s->variant)
		apply_variant(root, variants, s->variant, variants_key, s->path, diags);
	if (opts && opts->noverrides)
		expt_spec_apply_overrides(root, opts->overrides, opts->noverrides, diags);
	expt_spec_validate(s, root, &sweep, diags);
	if (diags->n > ndiags)
		goto invalid;
	nruns = expt_sweep_count(&sweep, diags);
	if (nruns < 0)
		goto invalid;
	expt_sweep_expand(&sweep, &s->params, &s->runs, &s->nruns);
	s->resolved_json = resolved_json(s, root);
	*out = s;
	s = NULL;
	rc = 0;
	goto out;
invalid:
	expt_diags_sort(diags);
	rc = expt_err_set(err, EXPT_EUSAGE, "%zu problem%s in the spec", diags->n - ndiags,
			  diags->n - ndiags == 1 ? "" : "s");
	expt_err_at(err, path, 0, 0, "");
out:
	expt_sweep_release(&sweep);
	expt_ynode_free(root);
	expt_ynode_free(variants);
	expt_buf_release(&data);
	expt_spec_free(s);
	expt_diags_release(&own);
	return rc;
}

static void kvs_release(struct expt_kvs *k)
{
	size_t i;

	for (i = 0; i < k->n; i++) {
		free(k->v[i].key);
		free(k->v[i].value);
	}
	free(k->v);
}

static void mounts_release(struct expt_mounts *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].name);
		free(m->v[i].mount);
		free(m->v[i].url);
	}
	free(m->v);
}

void expt_spec_free(struct expt_spec *s)
{
	size_t i;

	if (!s)
		return;
	free(s->path);
	free(s->dir);
	free(s->name);
	free(s->variant);
	free(s->image);
	expt_strv_release(&s->command);
	free(s->args);
	expt_params_release(&s->params);
	mounts_release(&s->inputs);
	mounts_release(&s->outputs);
	kvs_release(&s->env);
	expt_strv_release(&s->secrets);
	kvs_release(&s->files);
	free(s->on_conflict);
	free(s->workdir);
	expt_strv_release(&s->snapshot.exclude);
	free(s->backend);
	free(s->tracking.uri);
	free(s->tracking.metrics_prefix);
	expt_strv_release(&s->tracking.sinks);
	free(s->kubernetes.context);
	free(s->kubernetes.namespace_);
	free(s->kubernetes.service_account);
	kvs_release(&s->kubernetes.node_selector);
	free(s->kubernetes.tolerations_json);
	free(s->kubernetes.image_pull_policy);
	free(s->kubernetes.priority_class);
	kvs_release(&s->kubernetes.labels);
	kvs_release(&s->kubernetes.annotations);
	free(s->kubernetes.pod_template_json);
	free(s->kubernetes.queue);
	kvs_release(&s->container.ulimits);
	free(s->container.network);
	free(s->container.pull);
	free(s->build.base);
	free(s->build.context);
	free(s->build.context_abs);
	expt_strv_release(&s->build.include);
	expt_strv_release(&s->build.exclude);
	free(s->build.workdir);
	kvs_release(&s->build.env);
	expt_strv_release(&s->build.entrypoint);
	free(s->build.platform);
	free(s->build.repository);
	free(s->build.dockerfile);
	free(s->container.engine);
	free(s->container.code);
	free(s->container.user);
	for (i = 0; i < s->nruns; i++)
		expt_params_release(&s->runs[i].params);
	free(s->runs);
	free(s->resolved_json);
	free(s->command_line);
	expt_strv_release(&s->param_names);
	free(s);
}
