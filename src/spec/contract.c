/* The run contract: the argv, environment and params file every run gets, plus the word
 * splitting, placeholder and quoting rules behind them. Nothing here goes through a shell
 * unless the spec says shell: true, and even then every substituted value is quoted. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* ---- params ---- */

const struct expt_value *expt_params_get(const struct expt_params *params, const char *name)
{
	size_t i;

	if (!params)
		return NULL;
	for (i = 0; i < params->n; i++)
		if (!strcmp(params->v[i].name, name))
			return &params->v[i].value;
	return NULL;
}

void expt_params_set(struct expt_params *params, const char *name, enum expt_vtype type,
		     const char *text)
{
	struct expt_param *p;
	size_t i;

	for (i = 0; i < params->n; i++) {
		if (!strcmp(params->v[i].name, name)) {
			char *t = expt_xstrdup(text ? text : "");
			free(params->v[i].value.text);
			params->v[i].value.type = type;
			params->v[i].value.text = t;
			return;
		}
	}
	EXPT_ALLOC_GROW(params->v, params->n + 1, params->cap);
	p = &params->v[params->n++];
	p->name = expt_xstrdup(name);
	p->value.type = type;
	p->value.text = expt_xstrdup(text ? text : "");
}

void expt_params_copy(struct expt_params *dst, const struct expt_params *src)
{
	size_t i;

	if (!src)
		return;
	for (i = 0; i < src->n; i++)
		expt_params_set(dst, src->v[i].name, src->v[i].value.type, src->v[i].value.text);
}

void expt_params_release(struct expt_params *params)
{
	size_t i;

	if (!params)
		return;
	for (i = 0; i < params->n; i++) {
		free(params->v[i].name);
		free(params->v[i].value.text);
	}
	free(params->v);
	params->v = NULL;
	params->n = params->cap = 0;
}

static void add_json_value(struct expt_buf *b, const struct expt_value *v)
{
	switch (v->type) {
	case EXPT_VT_NULL:
		expt_buf_adds(b, "null");
		break;
	case EXPT_VT_BOOL:
		expt_buf_adds(b, !strcmp(v->text, "true") ? "true" : "false");
		break;
	case EXPT_VT_INT:
	case EXPT_VT_FLOAT:
		/* JSON has no infinities or NaN; those few values travel as strings. */
		if (!*v->text || strstr(v->text, "inf") || strstr(v->text, "nan"))
			expt_buf_add_json_str(b, v->text);
		else
			expt_buf_adds(b, v->text);
		break;
	case EXPT_VT_JSON:
		expt_buf_adds(b, *v->text ? v->text : "null");
		break;
	default:
		expt_buf_add_json_str(b, v->text);
		break;
	}
}

char *expt_params_json(const struct expt_params *params)
{
	struct expt_buf b = EXPT_BUF_INIT;
	size_t i;

	expt_buf_addch(&b, '{');
	for (i = 0; params && i < params->n; i++) {
		if (i)
			expt_buf_addch(&b, ',');
		expt_buf_add_json_str(&b, params->v[i].name);
		expt_buf_addch(&b, ':');
		add_json_value(&b, &params->v[i].value);
	}
	expt_buf_addch(&b, '}');
	return expt_buf_detach(&b, NULL);
}

/* ---- names ---- */

int expt_experiment_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > EXPT_NAME_MAX || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return 0;
	return 1;
}

int expt_dns_label_ok(const char *s)
{
	size_t i, n;

	if (!s)
		return 0;
	n = strlen(s);
	if (n < 1 || n > 63)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && (c != '-' || i == 0 || i == n - 1))
			return 0;
	}
	return 1;
}

char *expt_dns_label_from(const char *s)
{
	struct expt_buf b = EXPT_BUF_INIT;
	const char *p;

	for (p = s; *p && b.len < 63; p++) {
		char c = (char)tolower((unsigned char)*p);
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			expt_buf_addch(&b, c);
		else if (b.len && b.buf[b.len - 1] != '-')
			expt_buf_addch(&b, '-');
	}
	while (b.len && b.buf[b.len - 1] == '-')
		expt_buf_setlen(&b, b.len - 1);
	if (!b.len)
		expt_buf_adds(&b, "");
	return expt_buf_detach(&b, NULL);
}

int expt_param_name_ok(const char *name)
{
	size_t i, n = strlen(name);

	if (n < 1 || n > 64 || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!(isalnum(c) || c == '_' || c == '-'))
			return 0;
	}
	/* These two are placeholders of the args template, filled per run by expt. */
	return strcmp(name, "run_id") && strcmp(name, "output_dir");
}

char *expt_param_env_name(const char *name)
{
	char *s = expt_xasprintf("EXPT_PARAM_%s", name), *p;

	for (p = s + 11; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	return s;
}

int expt_env_name_ok(const char *name)
{
	const char *p = name;

	if (!(isalpha((unsigned char)*p) || *p == '_'))
		return 0;
	for (p++; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return 0;
	return 1;
}

/* ---- words, placeholders, quoting ---- */

int expt_split_words(const char *s, struct expt_strv *out, const char **why)
{
	struct expt_buf w = EXPT_BUF_INIT;
	int inword = 0, rc = 0;
	const char *p = s;

	while (*p) {
		char c = *p;

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (inword) {
				expt_strv_push_owned(out, expt_buf_detach(&w, NULL));
				inword = 0;
			}
			p++;
			continue;
		}
		inword = 1;
		if (c == '\'') {
			const char *end = strchr(p + 1, '\'');
			if (!end) {
				*why = "unterminated ' quote";
				rc = -1;
				goto out;
			}
			expt_buf_add(&w, p + 1, (size_t)(end - p - 1));
			p = end + 1;
		} else if (c == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1] && strchr("\"\\$`\n", p[1])) {
					p++;
					if (*p == '\n') /* a line continuation */
						continue;
				}
				expt_buf_addch(&w, *p);
			}
			if (*p != '"') {
				*why = "unterminated \" quote";
				rc = -1;
				goto out;
			}
			p++;
		} else if (c == '\\') {
			if (p[1] == '\n') {
				p += 2;
				continue;
			}
			if (p[1]) {
				expt_buf_addch(&w, p[1]);
				p += 2;
			} else {
				expt_buf_addch(&w, '\\');
				p++;
			}
		} else {
			expt_buf_addch(&w, c);
			p++;
		}
	}
	if (inword)
		expt_strv_push_owned(out, expt_buf_detach(&w, NULL));
out:
	expt_buf_release(&w);
	return rc;
}

void expt_sh_quote(struct expt_buf *b, const char *text)
{
	const char *p;

	expt_buf_addch(b, '\'');
	for (p = text; *p; p++) {
		if (*p == '\'')
			expt_buf_adds(b, "'\\''");
		else
			expt_buf_addch(b, *p);
	}
	expt_buf_addch(b, '\'');
}

static size_t placeholder_len(const char *p)
{
	size_t n = 0;

	/* {name} with a param-like name, or {inputs.NAME} / {outputs.NAME}; anything else
	 * ({"a": 1}, { x }) is literal text. */
	while (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-' ||
	       (p[n] == '.' && n && p[n + 1] != '}'))
		n++;
	return p[n] == '}' ? n : 0;
}

int expt_template_expand(const char *word, expt_lookup_fn lookup, void *payload, int quote,
			 struct expt_buf *out, char *bad, size_t badn)
{
	const char *p = word;

	while (*p) {
		size_t n;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			expt_buf_addch(out, p[0]);
			p += 2;
		} else if (p[0] == '{' && (n = placeholder_len(p + 1)) > 0) {
			char name[80];
			const char *val;

			if (n >= sizeof(name)) {
				snprintf(bad, badn, "%.*s", (int)(sizeof(name) - 1), p + 1);
				return -1;
			}
			memcpy(name, p + 1, n);
			name[n] = '\0';
			val = lookup(name, payload);
			if (!val) {
				snprintf(bad, badn, "%s", name);
				return -1;
			}
			if (quote)
				expt_sh_quote(out, val);
			else
				expt_buf_adds(out, val);
			p += n + 2;
		} else {
			expt_buf_addch(out, *p++);
		}
	}
	return 0;
}

/* ---- argv and env ---- */

struct run_lookup {
	const struct expt_params *params;
	const char *run_id, *output_dir;
	const struct expt_spec *spec;
	const struct expt_strv *io;
};

const char *expt_spec_io_path(const struct expt_spec *spec, const struct expt_strv *io,
			      const char *name)
{
	const struct expt_mounts *ms = NULL;
	const char *dot = strchr(name, '.');
	size_t len = strlen(name);

	if (io)
		for (size_t i = 0; i < io->n; i++)
			if (!strncmp(io->v[i], name, len) && io->v[i][len] == '=')
				return io->v[i] + len + 1;
	if (dot && (size_t)(dot - name) == 6 && !strncmp(name, "inputs", 6))
		ms = &spec->inputs;
	else if (dot && (size_t)(dot - name) == 7 && !strncmp(name, "outputs", 7))
		ms = &spec->outputs;
	for (size_t i = 0; ms && i < ms->n; i++)
		if (!strcmp(ms->v[i].name, dot + 1))
			return ms->v[i].mount;
	return NULL;
}

static const char *run_lookup(const char *name, void *payload)
{
	const struct run_lookup *l = payload;
	const struct expt_value *v;

	if (!strcmp(name, "run_id"))
		return l->run_id ? l->run_id : "";
	if (!strcmp(name, "output_dir"))
		return l->output_dir ? l->output_dir : "";
	if (strchr(name, '.'))
		return expt_spec_io_path(l->spec, l->io, name);
	v = expt_params_get(l->params, name);
	return v ? v->text : NULL;
}

static int is_auto(const char *args)
{
	return !args || !strcmp(args, "auto");
}

int expt_spec_run_argv(const struct expt_spec *spec, const struct expt_params *params,
		       const char *run_id, const char *output_dir, struct expt_strv *argv,
		       struct expt_err *err)
{
	return expt_spec_run_argv_at(spec, params, run_id, output_dir, NULL, argv, err);
}

int expt_spec_run_argv_at(const struct expt_spec *spec, const struct expt_params *params,
			  const char *run_id, const char *output_dir, const struct expt_strv *io,
			  struct expt_strv *argv, struct expt_err *err)
{
	struct run_lookup l = {params, run_id, output_dir, spec, io};
	struct expt_strv words = EXPT_STRV_INIT, out = EXPT_STRV_INIT;
	struct expt_buf line = EXPT_BUF_INIT, w = EXPT_BUF_INIT;
	const char *why = NULL;
	char bad[96];
	size_t i;
	int rc = 0;

	if (spec->shell) {
		expt_buf_adds(&line, spec->command_line ? spec->command_line : "");
		if (is_auto(spec->args)) {
			for (i = 0; params && i < params->n; i++) {
				if (params->v[i].value.type == EXPT_VT_NULL)
					continue;
				/* Param names are [A-Za-z0-9_-]: safe unquoted. */
				expt_buf_addf(&line, " --%s ", params->v[i].name);
				expt_sh_quote(&line, params->v[i].value.text);
			}
		} else if (strcmp(spec->args, "none")) {
			expt_buf_addch(&line, ' ');
			if (expt_template_expand(spec->args, run_lookup, &l, 1, &line, bad,
						 sizeof(bad))) {
				rc = expt_err_set(err, EXPT_EUSAGE, "'{%s}' names no param", bad);
				expt_err_at(err, spec->path, 0, 0, "args");
				goto out;
			}
		}
		expt_strv_push(&out, "/bin/sh");
		expt_strv_push(&out, "-c");
		expt_strv_push_owned(&out, expt_buf_detach(&line, NULL));
		goto done;
	}
	expt_strv_copy(&out, &spec->command);
	if (is_auto(spec->args)) {
		for (i = 0; params && i < params->n; i++) {
			/* null means "not set": the program's own default applies. */
			if (params->v[i].value.type == EXPT_VT_NULL)
				continue;
			expt_strv_pushf(&out, "--%s", params->v[i].name);
			expt_strv_push(&out, params->v[i].value.text);
		}
	} else if (strcmp(spec->args, "none")) {
		if (expt_split_words(spec->args, &words, &why)) {
			rc = expt_err_set(err, EXPT_EUSAGE, "%s", why);
			expt_err_at(err, spec->path, 0, 0, "args");
			goto out;
		}
		for (i = 0; i < words.n; i++) {
			expt_buf_reset(&w);
			if (expt_template_expand(words.v[i], run_lookup, &l, 0, &w, bad,
						 sizeof(bad))) {
				rc = expt_err_set(err, EXPT_EUSAGE, "'{%s}' names no param", bad);
				expt_err_at(err, spec->path, 0, 0, "args");
				goto out;
			}
			expt_strv_push(&out, w.buf);
		}
	}
done:
	for (i = 0; i < out.n; i++)
		expt_strv_push(argv, out.v[i]);
out:
	expt_strv_release(&words);
	expt_strv_release(&out);
	expt_buf_release(&line);
	expt_buf_release(&w);
	return rc;
}

void expt_spec_run_env(const struct expt_spec *spec, const struct expt_params *params,
		       const char *run_id, const char *output_dir, const char *params_file,
		       struct expt_strv *env)
{
	expt_spec_run_env_at(spec, params, run_id, output_dir, params_file, NULL, env);
}

/* EXPT_INPUT_<NAME>=path for each input (outputs likewise), NAME upper-cased, '-' as '_'. */
static void io_env(const struct expt_spec *spec, const struct expt_strv *io, int in,
		   struct expt_strv *env)
{
	const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;

	for (size_t i = 0; i < ms->n; i++) {
		char *key = expt_xasprintf("%s.%s", in ? "inputs" : "outputs", ms->v[i].name);
		char *var = expt_xasprintf("EXPT_%s_%s", in ? "INPUT" : "OUTPUT", ms->v[i].name);
		const char *path = expt_spec_io_path(spec, io, key);

		for (char *p = var + (in ? 11 : 12); *p; p++)
			*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
		if (path)
			expt_strv_pushf(env, "%s=%s", var, path);
		free(var);
		free(key);
	}
}

void expt_spec_run_env_at(const struct expt_spec *spec, const struct expt_params *params,
			  const char *run_id, const char *output_dir, const char *params_file,
			  const struct expt_strv *io, struct expt_strv *env)
{
	size_t i;

	for (i = 0; i < spec->env.n; i++)
		expt_strv_pushf(env, "%s=%s", spec->env.v[i].key, spec->env.v[i].value);
	for (i = 0; params && i < params->n; i++) {
		char *name = expt_param_env_name(params->v[i].name);
		expt_strv_pushf(env, "%s=%s", name, params->v[i].value.text);
		free(name);
	}
	if (run_id)
		expt_strv_pushf(env, "EXPT_RUN_ID=%s", run_id);
	if (spec->name)
		expt_strv_pushf(env, "EXPT_EXPERIMENT=%s", spec->name);
	if (output_dir)
		expt_strv_pushf(env, "EXPT_OUTPUT_DIR=%s", output_dir);
	if (params_file)
		expt_strv_pushf(env, "EXPT_PARAMS_FILE=%s", params_file);
	io_env(spec, io, 1, env);
	io_env(spec, io, 0, env);
}
