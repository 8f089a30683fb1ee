/* expt retry: rerun failed (or chosen) runs under new ids, linked to the old ones. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "launch.h"
#include "output.h"
#include "resolve.h"
#include "specopts.h"

static const char usage[] =
    "usage: expt retry EXPERIMENT|RUN... [options] [KEY=VALUE ...]\n"
    "\n"
    "Runs runs again under new ids (each linked to the run it retries), with the same\n"
    "params and the spec as it was resolved for the original run. KEY=VALUE overrides\n"
    "spec fields for the retry (e.g. resources.memory=4Gi after an out-of-memory).\n"
    "For an experiment, --failed (the default) retries its failed runs; --stopped adds\n"
    "stopped ones. A run named explicitly is retried whatever its status.\n"
    "\n"
    "Options:\n"
    "      --failed          retry failed runs (default for experiments)\n"
    "      --stopped         also retry stopped runs\n"
    "  -d, --detach          as for expt run\n"
    "  -q, --quiet           as for expt run\n"
    "  -h, --help            this help\n";

static int cmd_retry(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_retry = {"retry", "rerun failed runs under new ids", usage,
				      CLI_NEED_STORE, cmd_retry};

static void value_from_json(json_t *v, struct expt_value *out)
{
	char buf[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		out->type = EXPT_VT_STR;
		out->text = expt_xstrdup(json_string_value(v));
		break;
	case JSON_INTEGER:
		out->type = EXPT_VT_INT;
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		out->text = expt_xstrdup(buf);
		break;
	case JSON_REAL:
		out->type = EXPT_VT_FLOAT;
		expt_fmt_double(json_real_value(v), buf, sizeof(buf));
		out->text = expt_xstrdup(buf);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		out->type = EXPT_VT_BOOL;
		out->text = expt_xstrdup(json_is_true(v) ? "true" : "false");
		break;
	case JSON_NULL:
		out->type = EXPT_VT_NULL;
		out->text = expt_xstrdup("");
		break;
	default:
		out->type = EXPT_VT_JSON;
		out->text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

static void params_from_json(const char *text, struct expt_params *out)
{
	json_t *o = cli_json_parse(text), *v;
	const char *k;

	memset(out, 0, sizeof(*out));
	json_object_foreach(o, k, v)
	{
		struct expt_param *p;
		EXPT_ALLOC_GROW(out->v, out->n + 1, out->cap);
		p = &out->v[out->n++];
		p->name = expt_xstrdup(k);
		value_from_json(v, &p->value);
	}
	json_decref(o);
}

/* The spec of an earlier run: its resolved snapshot (with overrides on top when given), read
 * from memory, with the original spec file's path and directory restored so that retries of
 * retries run where the first run did. */
static int load_run_spec(struct cli_ctx *ctx, const struct expt_run_rec *r,
			 const struct expt_strv *overrides, struct expt_spec **out)
{
	struct cli_specopts so;
	struct expt_kv_rows tags = {0};
	char *origin = NULL, *label = NULL;
	int rc;

	memset(&so, 0, sizeof(so));
	if (!r->spec_json)
		return expt_err_set(&ctx->err, EXPT_EFAIL, "%s has no recorded spec to retry from",
				    r->run_id);
	if ((rc = expt_store_get_tags(ctx->store, r->run_id, &tags, &ctx->err)))
		goto out;
	for (size_t i = 0; i < tags.n; i++)
		if (!strcmp(tags.keys[i], "expt.spec") && tags.values[i])
			origin = expt_xstrdup(tags.values[i]);
	/* Messages about the snapshot name the run it comes from. */
	label = expt_xasprintf("%s (the spec recorded for %s)", origin ? origin : "expt.yaml",
			       r->run_id);
	so.file = label;
	so.text = r->spec_json;
	if (overrides)
		expt_strv_copy(&so.overrides, overrides);
	rc = cli_load_spec(ctx, &so, out);
	if (rc || !origin)
		goto out;
	free((*out)->path);
	(*out)->path = origin;
	free((*out)->dir);
	(*out)->dir = expt_xstrdup(origin);
	{
		char *slash = strrchr((*out)->dir, '/');
		if (slash && slash != (*out)->dir)
			*slash = '\0';
	}
	origin = NULL;
out:
	cli_specopts_release(&so);
	expt_kv_rows_release(&tags);
	free(origin);
	free(label);
	return rc;
}

/* Does an override value sweep (an unescaped comma)? */
static int sweeps(const char *value)
{
	for (const char *p = value; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == ',')
			return 1;
	}
	return 0;
}

/* The params of run r, exactly as its plan had them: the plan of the snapshot spec (base) whose
 * params print the same, else rebuilt from the recorded JSON. Then param overrides are applied
 * with the types the spec gives them (from with, the snapshot with overrides). */
static int retry_params(struct cli_ctx *ctx, const struct expt_spec *base,
			const struct expt_spec *with, const struct expt_strv *overrides,
			const struct expt_run_rec *r, struct expt_params *out)
{
	int found = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < base->nruns && !found && r->params_json; i++) {
		char *pj = expt_params_json(&base->runs[i].params);
		if (!strcmp(pj, r->params_json)) {
			expt_params_copy(out, &base->runs[i].params);
			found = 1;
		}
		free(pj);
	}
	if (!found)
		params_from_json(r->params_json, out);
	for (size_t i = 0; overrides && i < overrides->n; i++) {
		const char *eq = strchr(overrides->v[i], '=');
		char *key = expt_xstrndup(overrides->v[i], (size_t)(eq - overrides->v[i]));
		const char *name = !strncmp(key, "params.", 7) ? key + 7 : key;
		const struct expt_value *v;

		if (name == key + 7 || expt_params_get(out, name)) {
			if (sweeps(eq + 1)) {
				free(key);
				return expt_err_set(
				    &ctx->err, EXPT_EUSAGE,
				    "%s: a retry reruns one run; it cannot sweep a param "
				    "(use expt run for that)",
				    overrides->v[i]);
			}
			v = expt_params_get(&with->params, name);
			if (v)
				expt_params_set(out, name, v->type, v->text);
		}
		free(key);
	}
	return 0;
}

static int cmd_retry(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"failed", no_argument, NULL, 'F'},
	    {"stopped", no_argument, NULL, 'S'},
	    {"detach", no_argument, NULL, 'd'},
	    {"quiet", no_argument, NULL, 'q'},
	    {NULL, 0, NULL, 0},
	};
	struct expt_strv refs = EXPT_STRV_INIT, overrides = EXPT_STRV_INIT;
	struct expt_run_list l = {0};
	struct cli_launch_opts lo;
	int mask = 1 << EXPT_RUN_FAILED, c, rc = 0, worst = 0;

	memset(&lo, 0, sizeof(lo));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":dq", longopts, NULL)) != -1) {
		switch (c) {
		case 'F':
			break;
		case 'S':
			mask |= 1 << EXPT_RUN_STOPPED;
			break;
		case 'd':
			lo.detach = 1;
			break;
		case 'q':
			lo.quiet = 1;
			break;
		default:
			return cli_bad_option(ctx, &cli_cmd_retry, c, argv);
		}
	}
	for (int i = optind; i < argc; i++) {
		if (strchr(argv[i], '='))
			expt_strv_push(&overrides, argv[i]);
		else
			expt_strv_push(&refs, argv[i]);
	}
	if (!refs.n) {
		rc = cli_usage_error(ctx, &cli_cmd_retry, "name an experiment or runs");
		goto out;
	}
	for (size_t i = 0; i < refs.n; i++) {
		struct expt_run_list one = {0};
		int is_run = 0;
		if ((rc = cli_resolve_runs(ctx, refs.v[i], 1, &one, &is_run))) {
			expt_run_list_release(&one);
			goto out;
		}
		for (size_t k = 0; k < one.n; k++) {
			if (is_run || (mask & (1 << one.v[k].status))) {
				EXPT_ALLOC_GROW(l.v, l.n + 1, l.cap);
				l.v[l.n++] = one.v[k];
			} else {
				expt_run_rec_release(&one.v[k]);
			}
		}
		free(one.v);
	}
	if (!l.n) {
		fprintf(stderr, "expt retry: no failed run to retry\n");
		goto out;
	}
	/* Runs sharing one spec snapshot are launched together (one sweep, one progress view). */
	for (size_t i = 0; i < l.n;) {
		struct expt_spec *spec = NULL, *base = NULL;
		struct expt_params *params;
		const char **retry_of;
		size_t j = i, n;

		while (j < l.n && l.v[j].spec_json && l.v[i].spec_json &&
		       !strcmp(l.v[j].spec_json, l.v[i].spec_json) &&
		       !strcmp(l.v[j].experiment, l.v[i].experiment))
			j++;
		if (j == i)
			j = i + 1;
		n = j - i;
		if ((rc = load_run_spec(ctx, &l.v[i], NULL, &base)) ||
		    (rc = load_run_spec(ctx, &l.v[i], &overrides, &spec))) {
			expt_spec_free(base);
			goto out;
		}
		params = expt_xcalloc(n, sizeof(*params));
		retry_of = expt_xcalloc(n, sizeof(*retry_of));
		for (size_t k = 0; k < n && !rc; k++) {
			rc = retry_params(ctx, base, spec, &overrides, &l.v[i + k], &params[k]);
			retry_of[k] = l.v[i + k].run_id;
			if (!rc && !lo.quiet)
				fprintf(stderr, "expt: retrying %s\n", l.v[i + k].run_id);
		}
		expt_spec_free(base);
		base = NULL;
		if (rc) {
			for (size_t k = 0; k < n; k++)
				expt_params_release(&params[k]);
			free(params);
			free(retry_of);
			expt_spec_free(spec);
			goto out;
		}
		rc = cli_launch(ctx, spec, params, retry_of, n, &lo);
		for (size_t k = 0; k < n; k++)
			expt_params_release(&params[k]);
		free(params);
		free(retry_of);
		expt_spec_free(spec);
		if (rc == EXPT_EINTR)
			goto out;
		if (rc && rc != EXPT_EFAIL)
			goto out;
		if (rc)
			worst = rc;
		rc = 0;
		i = j;
	}
	rc = worst;
out:
	expt_run_list_release(&l);
	expt_strv_release(&refs);
	expt_strv_release(&overrides);
	return rc;
}
