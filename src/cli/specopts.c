/* Spec loading for commands, with every diagnostic printed at once, and the plan view. */
#include "specopts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "launch.h"
#include "output.h"

int cli_specopts_option(struct cli_specopts *o, int c, const char *arg)
{
	switch (c) {
	case 'f':
		o->file = arg;
		return 1;
	case 'v':
		o->variant = arg;
		return 1;
	case 'p':
		expt_strv_pushf(&o->overrides, "parallel=%s", arg);
		return 1;
	case 'B':
		expt_strv_pushf(&o->overrides, "backend=%s", arg);
		return 1;
	case 'C':
		expt_strv_pushf(&o->overrides, "kubernetes.context=%s", arg);
		return 1;
	case 'N':
		expt_strv_pushf(&o->overrides, "kubernetes.namespace=%s", arg);
		return 1;
	default:
		return 0;
	}
}

int cli_specopts_args(struct cli_ctx *ctx, const struct cli_cmd *cmd, struct cli_specopts *o,
		      int argc, char **argv, int first)
{
	for (int i = first; i < argc; i++) {
		if (!strchr(argv[i], '='))
			return cli_usage_error(
			    ctx, cmd, "'%s' is not KEY=VALUE (a param or spec override)", argv[i]);
		expt_strv_push(&o->overrides, argv[i]);
	}
	return 0;
}

int cli_load_spec(struct cli_ctx *ctx, struct cli_specopts *o, struct expt_spec **out)
{
	struct expt_spec_opts so;
	struct expt_diags diags = {0};
	int rc;

	memset(&so, 0, sizeof(so));
	so.path = o->file;
	so.text = o->text;
	so.len = o->text ? strlen(o->text) : 0;
	so.variant = o->variant;
	so.overrides = (const char *const *)o->overrides.v;
	so.noverrides = o->overrides.n;
	rc = expt_spec_load(out, &so, &diags, &ctx->err);
	if (rc && diags.n) {
		char line[2048];
		for (size_t i = 0; i < diags.n; i++) {
			expt_diag_format(&diags.v[i], line, sizeof(line));
			fprintf(stderr, "%s%s%s\n", ctx->color_err ? "\033[31m" : "", line,
				CLI_RESET(ctx->color_err));
		}
		expt_err_set(&ctx->err, EXPT_EUSAGE, "%zu problem%s in the spec; nothing was run",
			     diags.n, diags.n == 1 ? "" : "s");
		rc = EXPT_EUSAGE;
	}
	expt_diags_release(&diags);
	return rc;
}

void cli_specopts_release(struct cli_specopts *o)
{
	expt_strv_release(&o->overrides);
}

/* The seq the next run of experiment would get: from the store the working directory is in,
 * read only; 1 when there is none. */
static int64_t next_seq(const char *experiment)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_store *st = NULL;
	struct expt_experiment_list l = {0};
	char *cwd = expt_abspath("."), *db = NULL, *proj = NULL;
	int64_t seq = 1;

	if (cwd && !expt_store_locate(cwd, 0, &db, &proj, &e) && !expt_store_open(&st, db, &e) &&
	    !expt_store_list_experiments(st, &l, &e))
		for (size_t i = 0; i < l.n; i++)
			if (!strcmp(l.v[i].name, experiment))
				seq = l.v[i].next_seq;
	expt_experiment_list_release(&l);
	expt_store_close(st);
	free(cwd);
	free(db);
	free(proj);
	return seq;
}

int cli_print_plan(struct cli_ctx *ctx, const struct expt_spec *spec, enum cli_output fmt)
{
	json_t *root = json_object(), *runs = json_array();
	struct expt_backend_conf conf = {spec->resolved_json, ctx->db_path, spec, 1, NULL, NULL};
	struct expt_backend be = {0};
	struct expt_contract kc;
	json_t *items = NULL;
	char prefix[EXPT_RUN_PREFIX_MAX + 1];
	int64_t seq = 1;
	int rc = 0;

	/* The backend says where the run finds its files (and refuses what it cannot run), as
	 * for `expt run`; per-run paths stay placeholders. */
	memset(&kc, 0, sizeof(kc));
	if ((rc = expt_backend_open(&be, spec->backend, &conf, &ctx->err)) ||
	    (rc = be.ops->contract(be.state, NULL, &kc, &ctx->err))) {
		json_decref(root);
		json_decref(runs);
		expt_backend_close(&be);
		return rc;
	}
	if ((be.ops->caps & EXPT_BACKEND_MANIFESTS) &&
	    (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML)) {
		/* What would be sent, with the ids the next `expt run` would give. */
		items = json_array();
		expt_contract_release(&kc);
		memset(&kc, 0, sizeof(kc));
		{
			struct expt_run_rec probe = {0};
			if ((rc = be.ops->contract(be.state, &probe, &kc, &ctx->err)) ||
			    (rc = expt_store_run_id_prefix(spec->name, prefix, sizeof(prefix),
							   &ctx->err)))
				goto out;
		}
		seq = next_seq(spec->name);
	} else {
		free(kc.output_dir);
		free(kc.params_file);
		kc.output_dir = expt_xstrdup("<output_dir>");
		kc.params_file = expt_xstrdup("<params_file>");
	}
	/* Only a local run reaches the store (a container's or a pod's records travel on stdout):
	 * the plan shows where, or a placeholder without one. */
	if (!kc.store && !items && !strcmp(be.ops->name, "local"))
		kc.store = expt_xstrdup("<store>");

	for (size_t i = 0; i < spec->nruns; i++) {
		const struct expt_run_plan *rp = &spec->runs[i];
		struct expt_strv argv = EXPT_STRV_INIT, env = EXPT_STRV_INIT;
		char *id = items ? expt_xasprintf("%s-%lld", prefix, (long long)(seq + (int64_t)i))
				 : expt_xasprintf("%s-<n%zu>", spec->name, i + 1);
		char *pj = expt_params_json(&rp->params);
		json_t *run = json_object(), *a = json_array(), *e = json_object();

		if ((rc = cli_run_argv_env(spec, &rp->params, id, &kc, &argv, &env, &ctx->err))) {
			free(id);
			free(pj);
			json_decref(run);
			json_decref(a);
			json_decref(e);
			break;
		}
		for (size_t k = 0; k < argv.n; k++)
			json_array_append_new(a, json_string(argv.v[k]));
		for (size_t k = 0; k < env.n; k++) {
			const char *eq = strchr(env.v[k], '=');
			char *key = eq ? expt_xstrndup(env.v[k], (size_t)(eq - env.v[k])) : NULL;
			if (key)
				json_object_set_new(e, key, json_string(eq + 1));
			free(key);
		}
		if (items) {
			struct expt_job job;
			json_t *obj = NULL;
			memset(&job, 0, sizeof(job));
			job.run_id = id;
			job.argv = argv;
			job.env = env;
			job.params_json = pj;
			job.index = i;
			rc = be.ops->render(be.state, &job, &obj, &ctx->err);
			/* A run of several objects (a Job and its ConfigMap) comes as a List. */
			if (json_is_array(json_object_get(obj, "items")))
				json_array_extend(items, json_object_get(obj, "items"));
			else if (obj)
				json_array_append(items, obj);
			json_decref(obj);
		}
		json_object_set_new(run, "index", json_integer((json_int_t)i + 1));
		json_object_set_new(run, "params", json_loads(pj, 0, NULL));
		json_object_set_new(run, "argv", a);
		json_object_set_new(run, "env", e);
		if (!items) {
			/* What the backend would send for it (the container's create body, the
			 * Job), made without asking the engine anything. */
			struct expt_job job;
			json_t *req = NULL;
			struct expt_err re = EXPT_ERR_INIT;
			memset(&job, 0, sizeof(job));
			job.run_id = id;
			job.argv = argv;
			job.env = env;
			job.cwd = spec->dir;
			job.log_dir = "<log_dir>";
			job.output_dir = "<output_dir>";
			job.params_json = pj;
			job.gpus = spec->resources.gpu;
			job.memory_bytes = spec->resources.memory_bytes;
			job.timeout_ms = spec->timeout_ms;
			job.retries = spec->retries;
			job.index = i;
			if (!be.ops->render(be.state, &job, &req, &re))
				json_object_set_new(run, "request", req);
		}
		json_array_append_new(runs, run);
		expt_strv_release(&argv);
		expt_strv_release(&env);
		free(id);
		free(pj);
		if (rc)
			break;
	}
	if (rc)
		goto out;
	if (items) {
		json_t *list = json_pack("{s:s, s:s, s:O}", "apiVersion", "v1", "kind", "List",
					 "items", items);
		cli_emit(stdout, list, fmt);
		json_decref(list);
		goto out;
	}
	json_object_set_new(root, "experiment", json_string(spec->name));
	json_object_set_new(root, "variant",
			    spec->variant ? json_string(spec->variant) : json_null());
	json_object_set_new(root, "backend", json_string(spec->backend ? spec->backend : "local"));
	json_object_set_new(root, "parallel", json_integer(spec->parallel));
	json_object_set_new(root, "runs", runs);
	runs = NULL;
	if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
		json_t *s = cli_json_parse(spec->resolved_json);
		json_object_set_new(root, "spec", s ? s : json_null());
		cli_emit(stdout, root, fmt);
		goto out;
	}
	{
		int c = ctx->color_out;
		json_t *r;
		size_t i;
		printf("%sexperiment%s %s%s%s  backend %s  parallel %d  %zu run%s\n", CLI_BOLD(c),
		       CLI_RESET(c), spec->name, spec->variant ? "  variant " : "",
		       spec->variant ? spec->variant : "", spec->backend ? spec->backend : "local",
		       spec->parallel, spec->nruns, spec->nruns == 1 ? "" : "s");
		json_array_foreach(json_object_get(root, "runs"), i, r)
		{
			json_t *v;
			const char *k;
			size_t j;
			printf("\n%srun %zu%s\n  params:", CLI_BOLD(c), i + 1, CLI_RESET(c));
			json_object_foreach(json_object_get(r, "params"), k, v)
			{
				char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
				printf(" %s=%s", k, t ? t : "?");
				free(t);
			}
			printf("\n  argv:  ");
			json_array_foreach(json_object_get(r, "argv"), j, v)
			{
				const char *s = json_string_value(v);
				int plain = *s && !strpbrk(s, " \t\"'$\\`");
				printf("%s%s%s%s", j ? " " : "", plain ? "" : "'", s,
				       plain ? "" : "'");
			}
			printf("\n  env:   ");
			j = 0;
			json_object_foreach(json_object_get(r, "env"), k, v)
			{
				if (!strncmp(k, "EXPT_PARAM_", 11))
					continue;
				printf("%s%s=%s", j++ ? " " : "", k, json_string_value(v));
			}
			printf("\n");
		}
	}
out:
	expt_backend_close(&be);
	expt_contract_release(&kc);
	json_decref(items);
	json_decref(runs);
	json_decref(root);
	return rc;
}
