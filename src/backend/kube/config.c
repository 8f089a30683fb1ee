/* The kubeconfig loader (config.h): files found and merged as kubectl merges them, one context
 * resolved, every problem located at FILE:LINE:COL with its field path. */
#include "config.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "../../util/yaml.h"
#include "../../util/util.h"

/* One named entry of clusters/users/contexts: the first file that names it wins. */
struct entry {
	const char *name;
	const struct expt_ynode *body; /* the cluster / user / context map (may be NULL) */
	const struct expt_ynode *at;   /* the list item, for locations */
	const char *file;
	const char *list; /* "clusters", "users", "contexts" */
	size_t index;	  /* position in its file's list */
};

struct entries {
	struct entry *v;
	size_t n, cap;
};

/* The state of one load: the parsed files (kept until resolution is done) and the merged maps. */
struct loader {
	struct expt_diags *diags;
	int no_file_refs;
	char **files; /* owned paths, borrowed by the trees */
	struct expt_ynode **trees;
	size_t nfiles;
	struct entries clusters, users, contexts;
	const struct expt_ynode *current; /* current-context node, first file that sets it */
	const char *current_file;
	unsigned problems; /* diags added by this load */
};

static void problem(struct loader *L, const struct expt_ynode *n, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void problem(struct loader *L, const struct expt_ynode *n, const char *field,
		    const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	expt_diag_at(L->diags, n, field, "%s", msg);
	L->problems++;
}

static const char *kind_name(const struct expt_ynode *n)
{
	return n->kind == EXPT_Y_MAP ? "a map" : n->kind == EXPT_Y_SEQ ? "a list" : "a scalar";
}

/* The string value of map[key]: NULL when absent or null; a diag when not a scalar. */
static const char *get_str(struct loader *L, const struct expt_ynode *map, const char *key,
			   const char *path)
{
	const struct expt_ynode *v = map ? expt_ynode_get(map, key) : NULL;
	char field[512];

	if (!v || expt_ynode_is_null(v))
		return NULL;
	if (v->kind != EXPT_Y_SCALAR) {
		snprintf(field, sizeof(field), "%s.%s", path, key);
		problem(L, v, field, "expected a string, got %s", kind_name(v));
		return NULL;
	}
	return v->text;
}

static int get_bool(struct loader *L, const struct expt_ynode *map, const char *key,
		    const char *path)
{
	const struct expt_ynode *v = map ? expt_ynode_get(map, key) : NULL;
	char field[512], what[96];

	if (!v || expt_ynode_is_null(v))
		return 0;
	if (v->kind == EXPT_Y_SCALAR && v->type == EXPT_VT_BOOL)
		return !strcmp(v->text, "true") || !strcmp(v->text, "True") ||
		       !strcmp(v->text, "TRUE");
	/* kubectl's YAML reads a quoted "true" as a bool too */
	if (v->kind == EXPT_Y_SCALAR && (!strcmp(v->text, "true") || !strcmp(v->text, "false")))
		return !strcmp(v->text, "true");
	snprintf(field, sizeof(field), "%s.%s", path, key);
	expt_ynode_describe(v, what, sizeof(what));
	problem(L, v, field, "expected true or false, got %s", what);
	return 0;
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 (padding optional, line breaks and spaces ignored, as Go's decoder of
 * []byte fields ignores \r and \n). Returns 0 and a malloc'd buffer, or -1 with *bad the
 * offset of the first offending character. */
static int b64decode(const char *s, char **out, size_t *outlen, size_t *bad)
{
	size_t n = strlen(s), o = 0, q = 0, pad = 0;
	unsigned acc = 0;
	char *r = expt_xmalloc(n / 4 * 3 + 4);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		v = b64val(c);
		if (v < 0 || pad) {
			*bad = i;
			free(r);
			return -1;
		}
		acc = acc << 6 | (unsigned)v;
		if (++q == 4) {
			r[o++] = (char)(acc >> 16);
			r[o++] = (char)(acc >> 8);
			r[o++] = (char)acc;
			q = 0;
			acc = 0;
		}
	}
	if (q == 1 || pad > 2 || (pad && (q + pad) % 4)) {
		*bad = n;
		free(r);
		return -1;
	}
	if (q == 2) {
		r[o++] = (char)(acc >> 4);
	} else if (q == 3) {
		r[o++] = (char)(acc >> 10);
		r[o++] = (char)(acc >> 2);
	}
	r[o] = 0;
	*out = r;
	*outlen = o;
	return 0;
}

/* A path from a kubeconfig, made absolute against the directory of the file that named it. */
static char *resolve_path(const char *p, const char *file)
{
	char *copy, *dir, *r;

	if (p[0] == '/' || !file || !strchr(file, '/'))
		return expt_xstrdup(p);
	if (p[0] == '~' && p[1] == '/' && getenv("HOME"))
		return expt_xasprintf("%s%s", getenv("HOME"), p + 1);
	copy = expt_xstrdup(file);
	dir = dirname(copy);
	r = expt_xasprintf("%s/%s", dir, p);
	free(copy);
	return r;
}

/* PEM material from KEY-data (base64) or KEY (a file), the -data winning as in kubectl. */
static int load_blob(struct loader *L, const struct expt_ynode *map, const char *file,
		     const char *key, const char *path, char **out, size_t *len, char **from_file,
		     struct expt_err *err)
{
	char dkey[96], field[512];
	const char *data, *fpath;
	const struct expt_ynode *at;
	size_t bad = 0;

	snprintf(dkey, sizeof(dkey), "%s-data", key);
	data = get_str(L, map, dkey, path);
	if (data && *data) {
		at = expt_ynode_get(map, dkey);
		if (b64decode(data, out, len, &bad) < 0) {
			snprintf(field, sizeof(field), "%s.%s", path, dkey);
			problem(L, at, field,
				"expected base64 (the PEM file encoded, as `base64 -w0 FILE` "
				"writes it), got a bad character or length at offset %zu",
				bad);
			return -1;
		}
		if (*len == 0 || !memmem(*out, *len, "-----BEGIN", 10)) {
			snprintf(field, sizeof(field), "%s.%s", path, dkey);
			problem(L, at, field,
				"expected base64 of PEM text (-----BEGIN ...), got %zu bytes that "
				"are not PEM",
				*len);
			free(*out);
			*out = NULL;
			return -1;
		}
		return 0;
	}
	fpath = get_str(L, map, key, path);
	if (fpath && *fpath && !L->no_file_refs) {
		struct expt_buf b = EXPT_BUF_INIT;
		char *abs = resolve_path(fpath, file);
		struct expt_err e = EXPT_ERR_INIT;

		b.max = EXPT_KUBE_CONFIG_MAX;
		at = expt_ynode_get(map, key);
		if (expt_read_file(abs, &b, &e)) {
			snprintf(field, sizeof(field), "%s.%s", path, key);
			expt_err_set(err, EXPT_EUSAGE, "cannot read %s: %s", abs, e.msg);
			expt_err_at(err, at->file, at->line, at->col, field);
			expt_buf_release(&b);
			free(abs);
			return -2;
		}
		*out = expt_buf_detach(&b, len);
		if (!*out)
			*out = expt_xstrdup("");
		if (from_file)
			*from_file = abs;
		else
			free(abs);
	}
	return 0;
}

static void entries_add(struct entries *es, const struct entry *e)
{
	if (es->n == es->cap) {
		es->cap = es->cap ? es->cap * 2 : 8;
		es->v = expt_xrealloc(es->v, es->cap * sizeof(*es->v));
	}
	es->v[es->n++] = *e;
}

static const struct entry *entries_find(const struct entries *es, const char *name)
{
	for (size_t i = 0; i < es->n; i++)
		if (!strcmp(es->v[i].name, name))
			return &es->v[i];
	return NULL;
}

/* "a, b, c" (at most 20), or "none". */
static void entries_names(const struct entries *es, char *out, size_t n)
{
	size_t o = 0;

	out[0] = 0;
	if (!es->n) {
		snprintf(out, n, "none");
		return;
	}
	for (size_t i = 0; i < es->n && i < 20 && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s%s", i ? ", " : "", es->v[i].name);
	if (es->n > 20 && o < n)
		snprintf(out + o, n - o, ", ... (%zu in all)", es->n);
}

/* Adds one file's clusters/users/contexts (names not seen before) and current-context. */
static void merge_file(struct loader *L, const struct expt_ynode *root, const char *file)
{
	static const char *const lists[] = {"clusters", "users", "contexts"};
	static const char *const bodies[] = {"cluster", "user", "context"};
	struct entries *dst[] = {&L->clusters, &L->users, &L->contexts};
	const struct expt_ynode *cur;

	if (!root)
		return;
	if (root->kind != EXPT_Y_MAP) {
		problem(L, root, "",
			"expected a kubeconfig (a map with clusters, users, "
			"contexts), got %s",
			kind_name(root));
		return;
	}
	for (size_t l = 0; l < 3; l++) {
		const struct expt_ynode *seq = expt_ynode_get(root, lists[l]);

		if (!seq || expt_ynode_is_null(seq))
			continue;
		if (seq->kind != EXPT_Y_SEQ) {
			problem(L, seq, lists[l], "expected a list, got %s", kind_name(seq));
			continue;
		}
		for (size_t i = 0; i < seq->n; i++) {
			const struct expt_ynode *item = seq->vals[i], *body;
			char path[128];
			const char *name;
			struct entry e;

			snprintf(path, sizeof(path), "%s[%zu]", lists[l], i);
			if (item->kind != EXPT_Y_MAP) {
				problem(L, item, path, "expected a map with name and %s, got %s",
					bodies[l], kind_name(item));
				continue;
			}
			name = get_str(L, item, "name", path);
			if (!name || !*name) {
				problem(L, item, path, "has no name");
				continue;
			}
			body = expt_ynode_get(item, bodies[l]);
			if (body && expt_ynode_is_null(body))
				body = NULL;
			if (body && body->kind != EXPT_Y_MAP) {
				char field[160];

				snprintf(field, sizeof(field), "%s.%s", path, bodies[l]);
				problem(L, body, field, "expected a map, got %s", kind_name(body));
				continue;
			}
			if (entries_find(dst[l], name))
				continue; /* an earlier file named it first: that one wins */
			e.name = name;
			e.body = body;
			e.at = item;
			e.file = file;
			e.list = lists[l];
			e.index = i;
			entries_add(dst[l], &e);
		}
	}
	cur = expt_ynode_get(root, "current-context");
	if (cur && cur->kind != EXPT_Y_SCALAR) {
		problem(L, cur, "current-context", "expected a context name, got %s",
			kind_name(cur));
	} else if (cur && !expt_ynode_is_null(cur) && *cur->text && !L->current) {
		L->current = cur;
		L->current_file = file;
	}
}

static void exec_free(struct expt_kube_exec *x)
{
	if (!x)
		return;
	free(x->api_version);
	free(x->command);
	for (char **p = x->args; p && *p; p++)
		free(*p);
	free(x->args);
	for (char **p = x->env; p && *p; p++)
		free(*p);
	free(x->env);
	free(x->install_hint);
	free(x->interactive_mode);
	free(x);
}

void expt_kube_config_free(struct expt_kube_config *c)
{
	if (!c)
		return;
	free(c->context);
	free(c->cluster_name);
	free(c->user_name);
	free(c->server);
	free(c->ns);
	free(c->ca_pem);
	free(c->ca_file);
	free(c->tls_server_name);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->token);
	free(c->token_file);
	free(c->username);
	free(c->password);
	exec_free(c->exec);
	free(c->context_file);
	free(c->cluster_file);
	free(c->user_file);
	free(c);
}

static struct expt_kube_exec *load_exec(struct loader *L, const struct expt_ynode *x,
					const char *path)
{
	struct expt_kube_exec *r;
	const struct expt_ynode *args, *env;
	const char *s;
	char field[512];
	size_t n;

	if (x->kind != EXPT_Y_MAP) {
		problem(L, x, path, "expected a map (apiVersion, command, args, env), got %s",
			kind_name(x));
		return NULL;
	}
	r = expt_xcalloc(1, sizeof(*r));
	s = get_str(L, x, "apiVersion", path);
	if (!s || !*s) {
		problem(L, x, path,
			"has no apiVersion (client.authentication.k8s.io/v1 or v1beta1)");
	} else if (strcmp(s, "client.authentication.k8s.io/v1") &&
		   strcmp(s, "client.authentication.k8s.io/v1beta1")) {
		snprintf(field, sizeof(field), "%s.apiVersion", path);
		problem(L, expt_ynode_get(x, "apiVersion"), field,
			"expected client.authentication.k8s.io/v1 or v1beta1, got '%s'", s);
	}
	r->api_version = expt_xstrdup(s ? s : "client.authentication.k8s.io/v1");
	s = get_str(L, x, "command", path);
	if (!s || !*s)
		problem(L, x, path, "has no command (the credential plugin to run)");
	r->command = expt_xstrdup(s ? s : "");
	args = expt_ynode_get(x, "args");
	n = args && args->kind == EXPT_Y_SEQ ? args->n : 0;
	r->args = expt_xcalloc(n + 1, sizeof(char *));
	if (args && !expt_ynode_is_null(args) && args->kind != EXPT_Y_SEQ) {
		snprintf(field, sizeof(field), "%s.args", path);
		problem(L, args, field, "expected a list of strings, got %s", kind_name(args));
	}
	for (size_t i = 0, o = 0; i < n; i++) {
		if (args->vals[i]->kind != EXPT_Y_SCALAR) {
			snprintf(field, sizeof(field), "%s.args[%zu]", path, i);
			problem(L, args->vals[i], field, "expected a string, got %s",
				kind_name(args->vals[i]));
			continue;
		}
		r->args[o++] = expt_xstrdup(args->vals[i]->text);
	}
	env = expt_ynode_get(x, "env");
	n = env && env->kind == EXPT_Y_SEQ ? env->n : 0;
	r->env = expt_xcalloc(n + 1, sizeof(char *));
	if (env && !expt_ynode_is_null(env) && env->kind != EXPT_Y_SEQ) {
		snprintf(field, sizeof(field), "%s.env", path);
		problem(L, env, field, "expected a list of {name, value}, got %s", kind_name(env));
	}
	for (size_t i = 0, o = 0; i < n; i++) {
		const char *name, *value;
		char p2[512];

		snprintf(p2, sizeof(p2), "%s.env[%zu]", path, i);
		if (env->vals[i]->kind != EXPT_Y_MAP) {
			problem(L, env->vals[i], p2, "expected a map {name, value}, got %s",
				kind_name(env->vals[i]));
			continue;
		}
		name = get_str(L, env->vals[i], "name", p2);
		value = get_str(L, env->vals[i], "value", p2);
		if (!name || !*name || strchr(name, '=')) {
			problem(L, env->vals[i], p2, "expected a variable name in name");
			continue;
		}
		r->env[o++] = expt_xasprintf("%s=%s", name, value ? value : "");
	}
	r->provide_cluster_info = get_bool(L, x, "provideClusterInfo", path);
	s = get_str(L, x, "installHint", path);
	r->install_hint = s && *s ? expt_xstrdup(s) : NULL;
	s = get_str(L, x, "interactiveMode", path);
	r->interactive_mode = s && *s ? expt_xstrdup(s) : NULL;
	return r;
}

/* Checks that server is an http(s) URL with a host; returns the URL without trailing '/'. */
static char *check_server(struct loader *L, const struct expt_ynode *at, const char *s,
			  const char *field)
{
	const char *host;
	char *r;
	size_t n;

	if (!strncmp(s, "https://", 8))
		host = s + 8;
	else if (!strncmp(s, "http://", 7))
		host = s + 7;
	else {
		problem(L, at, field,
			"expected an https:// URL (like https://10.0.0.1:6443), got '%s'", s);
		return NULL;
	}
	if (!*host || *host == '/') {
		problem(L, at, field, "expected a host in the URL, got '%s'", s);
		return NULL;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\') {
			problem(L, at, field,
				"expected a URL without spaces or control characters");
			return NULL;
		}
	r = expt_xstrdup(s);
	n = strlen(r);
	while (n > 0 && r[n - 1] == '/')
		r[--n] = 0;
	return r;
}

static void list_error(struct expt_err *err, const char *what, const char *name,
		       const struct entries *es, const char *files)
{
	char names[1024];

	entries_names(es, names, sizeof(names));
	expt_err_set(err, EXPT_EUSAGE, "%s '%s' not found in %s; %s there: %s", what, name, files,
		     !strcmp(what, "context")	? "contexts"
		     : !strcmp(what, "cluster") ? "clusters"
						: "users",
		     names);
}

/* Resolves the context named by opts or current-context from the merged entries. */
static int resolve(struct loader *L, const struct expt_kube_config_opts *opts, const char *files,
		   struct expt_kube_config **out, struct expt_err *err)
{
	struct expt_kube_config *c = expt_xcalloc(1, sizeof(*c));
	const struct entry *ctx, *cl, *us;
	const char *name, *s, *cname, *uname;
	char path[160], field[256];
	int rc = EXPT_EUSAGE, r, r2;

	name = opts && opts->context ? opts->context : L->current ? L->current->text : NULL;
	if (!name) {
		char names[1024];

		entries_names(&L->contexts, names, sizeof(names));
		expt_err_set(err, EXPT_EUSAGE,
			     "no current-context in %s and no context chosen (--context or "
			     "kubernetes.context); contexts there: %s",
			     files, names);
		goto out;
	}
	ctx = entries_find(&L->contexts, name);
	if (!ctx) {
		list_error(err, "context", name, &L->contexts, files);
		if (!(opts && opts->context) && L->current)
			expt_err_at(err, L->current->file, L->current->line, L->current->col,
				    "current-context");
		goto out;
	}
	c->context = expt_xstrdup(name);
	c->context_file = expt_xstrdup(ctx->file);
	snprintf(path, sizeof(path), "contexts[%zu].context", ctx->index);
	cname = get_str(L, ctx->body, "cluster", path);
	uname = get_str(L, ctx->body, "user", path);
	s = get_str(L, ctx->body, "namespace", path);
	c->ns = expt_xstrdup(opts && opts->ns && *opts->ns ? opts->ns : s && *s ? s : "default");
	if (!cname || !*cname) {
		expt_err_set(err, EXPT_EUSAGE, "context '%s' names no cluster", name);
		expt_err_at(err, ctx->at->file, ctx->at->line, ctx->at->col, path);
		goto out;
	}
	cl = entries_find(&L->clusters, cname);
	if (!cl) {
		const struct expt_ynode *at = expt_ynode_get(ctx->body, "cluster");

		list_error(err, "cluster", cname, &L->clusters, files);
		snprintf(field, sizeof(field), "%s.cluster", path);
		expt_err_at(err, at->file, at->line, at->col, field);
		goto out;
	}
	c->cluster_name = expt_xstrdup(cname);
	c->cluster_file = expt_xstrdup(cl->file);
	snprintf(path, sizeof(path), "clusters[%zu].cluster", cl->index);
	s = get_str(L, cl->body, "server", path);
	if (!s || !*s) {
		expt_err_set(err, EXPT_EUSAGE, "cluster '%s' has no server", cname);
		expt_err_at(err, cl->at->file, cl->at->line, cl->at->col, path);
		goto out;
	}
	snprintf(field, sizeof(field), "%s.server", path);
	c->server = check_server(L, expt_ynode_get(cl->body, "server"), s, field);
	c->insecure = get_bool(L, cl->body, "insecure-skip-tls-verify", path);
	s = get_str(L, cl->body, "tls-server-name", path);
	c->tls_server_name = s && *s ? expt_xstrdup(s) : NULL;
	r = load_blob(L, cl->body, cl->file, "certificate-authority", path, &c->ca_pem, &c->ca_len,
		      &c->ca_file, err);
	if (r == -2)
		goto out;
	if (c->insecure && c->ca_pem) {
		/* kubectl refuses the pair: a CA and "don't verify" contradict each other. */
		snprintf(field, sizeof(field), "%s.insecure-skip-tls-verify", path);
		problem(L, expt_ynode_get(cl->body, "insecure-skip-tls-verify"), field,
			"set together with a certificate authority: choose one (kubectl refuses "
			"this too)");
	}

	c->user_name = expt_xstrdup(uname ? uname : "");
	if (uname && *uname) {
		us = entries_find(&L->users, uname);
		if (!us) {
			const struct expt_ynode *at = expt_ynode_get(ctx->body, "user");

			list_error(err, "user", uname, &L->users, files);
			snprintf(field, sizeof(field), "contexts[%zu].context.user", ctx->index);
			expt_err_at(err, at->file, at->line, at->col, field);
			goto out;
		}
		c->user_file = expt_xstrdup(us->file);
		snprintf(path, sizeof(path), "users[%zu].user", us->index);
		r = load_blob(L, us->body, us->file, "client-certificate", path, &c->cert_pem,
			      &c->cert_len, NULL, err);
		if (r == -2)
			goto out;
		r2 = load_blob(L, us->body, us->file, "client-key", path, &c->key_pem, &c->key_len,
			       NULL, err);
		if (r2 == -2)
			goto out;
		if (!r && !r2 && !c->cert_pem != !c->key_pem)
			problem(L, us->at, path,
				"has a client %s but no client %s: both are needed",
				c->cert_pem ? "certificate" : "key",
				c->cert_pem ? "key" : "certificate");
		s = get_str(L, us->body, "token", path);
		c->token = s && *s ? expt_xstrdup(s) : NULL;
		s = get_str(L, us->body, "tokenFile", path);
		c->token_file = s && *s ? resolve_path(s, us->file) : NULL;
		s = get_str(L, us->body, "username", path);
		c->username = s && *s ? expt_xstrdup(s) : NULL;
		s = get_str(L, us->body, "password", path);
		c->password = s ? expt_xstrdup(s) : NULL;
		if (us->body && expt_ynode_get(us->body, "exec") &&
		    !expt_ynode_is_null(expt_ynode_get(us->body, "exec"))) {
			snprintf(field, sizeof(field), "%s.exec", path);
			c->exec = load_exec(L, expt_ynode_get(us->body, "exec"), field);
			/* as kubectl: a relative command with a '/' is relative to the file */
			if (c->exec && strchr(c->exec->command, '/') &&
			    c->exec->command[0] != '/') {
				char *abs = resolve_path(c->exec->command, us->file);

				free(c->exec->command);
				c->exec->command = abs;
			}
		}
		if (us->body && expt_ynode_get(us->body, "auth-provider"))
			problem(L, expt_ynode_get(us->body, "auth-provider"), path,
				"auth-provider plugins are gone from kubectl since 1.26: use an "
				"exec plugin (gke-gcloud-auth-plugin, kubelogin, aws eks "
				"get-token)");
	}
	if (L->problems) {
		expt_err_set(err, EXPT_EUSAGE, "the kubeconfig has %u problem%s", L->problems,
			     L->problems == 1 ? "" : "s");
		goto out;
	}
	*out = c;
	c = NULL;
	rc = 0;
out:
	expt_kube_config_free(c);
	return rc;
}

static void loader_release(struct loader *L)
{
	for (size_t i = 0; i < L->nfiles; i++) {
		expt_ynode_free(L->trees[i]);
		free(L->files[i]);
	}
	free(L->trees);
	free(L->files);
	free(L->clusters.v);
	free(L->users.v);
	free(L->contexts.v);
}

static int add_doc(struct loader *L, const char *data, size_t len, const char *file)
{
	struct expt_ynode *root = NULL;
	size_t i = L->nfiles;
	int rc;

	L->files = expt_xrealloc(L->files, (i + 1) * sizeof(char *));
	L->trees = expt_xrealloc(L->trees, (i + 1) * sizeof(*L->trees));
	L->files[i] = expt_xstrdup(file);
	L->trees[i] = NULL;
	L->nfiles++;
	rc = expt_ynode_parse(data, len, L->files[i], &root, L->diags);
	if (rc) {
		L->problems++;
		return rc;
	}
	L->trees[i] = root;
	merge_file(L, root, L->files[i]);
	return 0;
}

int expt_kube_config_parse(struct expt_kube_config **out, const char *data, size_t len,
			   const char *file, const struct expt_kube_config_opts *opts,
			   struct expt_diags *diags, struct expt_err *err)
{
	struct loader L = {0};
	int rc;

	*out = NULL;
	L.diags = diags;
	L.no_file_refs = opts && opts->no_file_refs;
	add_doc(&L, data, len, file);
	if (L.problems) {
		rc = expt_err_set(err, EXPT_EUSAGE, "%s is not a valid kubeconfig", file);
		goto out;
	}
	rc = resolve(&L, opts, file, out, err);
out:
	loader_release(&L);
	return rc;
}

static char *read_small(const char *path, struct expt_err *err)
{
	struct expt_buf b = EXPT_BUF_INIT;
	char *r;
	size_t n;

	b.max = 1u << 20;
	if (expt_read_file(path, &b, err)) {
		expt_buf_release(&b);
		return NULL;
	}
	r = expt_buf_detach(&b, &n);
	return r ? r : expt_xstrdup("");
}

static char *trim(char *s)
{
	size_t n = strlen(s);
	char *p = s;

	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	memmove(s, p, strlen(p) + 1);
	return s;
}

int expt_kube_config_in_cluster(struct expt_kube_config **out,
				const struct expt_kube_config_opts *opts, struct expt_err *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = opts && opts->sa_dir ? opts->sa_dir : EXPT_KUBE_SA_DIR;
	const char *pod_ns = getenv("POD_NAMESPACE");
	struct expt_kube_config *c;
	struct expt_err e = EXPT_ERR_INIT;
	char *path, *ns = NULL;
	struct expt_buf b = EXPT_BUF_INIT;

	*out = NULL;
	if (!host || !*host || !port || !*port)
		return expt_err_set(err, EXPT_ENOTFOUND,
				    "not in a cluster: KUBERNETES_SERVICE_HOST and "
				    "KUBERNETES_SERVICE_PORT are not both set");
	c = expt_xcalloc(1, sizeof(*c));
	c->in_cluster = 1;
	c->context = expt_xstrdup("in-cluster");
	c->cluster_name = expt_xstrdup("in-cluster");
	c->user_name = expt_xstrdup("in-cluster");
	c->server = strchr(host, ':') ? expt_xasprintf("https://[%s]:%s", host, port)
				      : expt_xasprintf("https://%s:%s", host, port);
	c->token_file = expt_xasprintf("%s/token", dir);
	if (!expt_path_exists(c->token_file)) {
		expt_err_set(err, EXPT_ENOTFOUND,
			     "in a cluster (KUBERNETES_SERVICE_HOST is set) but no service-account "
			     "token at %s (automountServiceAccountToken: false?)",
			     c->token_file);
		expt_kube_config_free(c);
		return EXPT_ENOTFOUND;
	}
	path = expt_xasprintf("%s/ca.crt", dir);
	b.max = EXPT_KUBE_CONFIG_MAX;
	if (expt_read_file(path, &b, &e)) {
		expt_err_set(err, EXPT_EUSAGE, "in-cluster CA: %s", e.msg);
		expt_buf_release(&b);
		free(path);
		expt_kube_config_free(c);
		return EXPT_EUSAGE;
	}
	c->ca_pem = expt_buf_detach(&b, &c->ca_len);
	c->ca_file = path;
	if (opts && opts->ns && *opts->ns) {
		c->ns = expt_xstrdup(opts->ns);
	} else if (pod_ns && *pod_ns) {
		c->ns = expt_xstrdup(pod_ns);
	} else {
		path = expt_xasprintf("%s/namespace", dir);
		ns = expt_path_exists(path) ? read_small(path, &e) : NULL;
		free(path);
		c->ns = ns && *trim(ns) ? ns : expt_xstrdup("default");
		if (c->ns != ns)
			free(ns);
	}
	c->context_file = expt_xstrdup(dir);
	c->cluster_file = expt_xstrdup(dir);
	c->user_file = expt_xstrdup(dir);
	*out = c;
	return 0;
}

int expt_kube_config_load(struct expt_kube_config **out, const struct expt_kube_config_opts *opts,
			  struct expt_diags *diags, struct expt_err *err)
{
	const char *list = opts ? opts->kubeconfig : NULL;
	int explicit_path = list && *list;
	struct loader L = {0};
	struct expt_buf tried = EXPT_BUF_INIT;
	char *copy = NULL, *home_cfg = NULL;
	size_t found = 0;
	int rc = 0;

	*out = NULL;
	L.diags = diags;
	L.no_file_refs = opts && opts->no_file_refs;
	if (!explicit_path) {
		list = getenv("KUBECONFIG");
		if (!list || !*list) {
			const char *home = getenv("HOME");

			home_cfg = home ? expt_xasprintf("%s/.kube/config", home) : NULL;
			list = home_cfg;
		}
	}
	copy = expt_xstrdup(list ? list : "");
	for (char *p = copy, *next; p; p = next) {
		struct expt_buf b = EXPT_BUF_INIT;
		struct expt_err e = EXPT_ERR_INIT;
		int seen = 0;

		next = strchr(p, ':');
		if (next)
			*next++ = 0;
		if (!*p)
			continue;
		for (size_t i = 0; i < L.nfiles; i++)
			seen |= !strcmp(L.files[i], p);
		if (seen)
			continue; /* kubectl reads a file named twice once */
		expt_buf_addf(&tried, "%s%s", tried.len ? ", " : "", p);
		if (!expt_path_exists(p)) {
			if (explicit_path) {
				rc = expt_err_set(err, EXPT_ENOTFOUND, "no kubeconfig at %s", p);
				goto out;
			}
			continue;
		}
		b.max = EXPT_KUBE_CONFIG_MAX;
		if (expt_read_file(p, &b, &e)) {
			rc = expt_err_set(err, EXPT_EUSAGE, "cannot read the kubeconfig %s: %s", p,
					  e.msg);
			expt_buf_release(&b);
			goto out;
		}
		found++;
		add_doc(&L, b.buf, b.len, p);
		expt_buf_release(&b);
	}
	if (!found) {
		const char *host = getenv("KUBERNETES_SERVICE_HOST");

		if (host && *host) {
			rc = expt_kube_config_in_cluster(out, opts, err);
			goto out;
		}
		rc =
		    expt_err_set(err, EXPT_ENOTFOUND,
				 "no kubeconfig found (tried %s) and not inside a cluster; point "
				 "$KUBECONFIG or --kubeconfig at one",
				 tried.len ? tried.buf : "$KUBECONFIG, ~/.kube/config: HOME unset");
		goto out;
	}
	if (L.problems) {
		rc = expt_err_set(err, EXPT_EUSAGE, "the kubeconfig has %u problem%s", L.problems,
				  L.problems == 1 ? "" : "s");
		goto out;
	}
	rc = resolve(&L, opts, tried.buf, out, err);
out:
	loader_release(&L);
	expt_buf_release(&tried);
	free(copy);
	free(home_cfg);
	return rc;
}
