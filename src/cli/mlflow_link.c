/* Creating, ending and reading the MLflow runs of expt runs (see mlflow_link.h). */
#include "mlflow_link.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

void cli_mlflow_disconnect(struct cli_mlflow *mf)
{
	expt_mlflow_close(mf->m);
	mf->m = NULL;
}

void cli_mlflow_release(struct cli_mlflow *mf)
{
	cli_mlflow_disconnect(mf);
	free(mf->uri);
	free(mf->exp_name);
	free(mf->exp_id);
	memset(mf, 0, sizeof(*mf));
}

struct expt_mlflow *cli_mlflow_client(struct cli_mlflow *mf, const char *uri, struct expt_err *err)
{
	if (mf->m && mf->uri && !strcmp(mf->uri, uri))
		return mf->m;
	cli_mlflow_disconnect(mf);
	free(mf->uri);
	free(mf->exp_name);
	free(mf->exp_id);
	mf->exp_name = mf->exp_id = NULL;
	mf->uri = expt_xstrdup(uri);
	if (expt_mlflow_open(&mf->m, uri, err))
		return NULL;
	return mf->m;
}

char *cli_mlflow_run_key(const struct expt_run_rec *r)
{
	return expt_xasprintf("%s@%lld", r->run_id, (long long)r->created_ms);
}

int cli_mlflow_wanted(const struct expt_spec *spec)
{
	return spec->tracking.uri && expt_strv_find(&spec->tracking.sinks, "mlflow") >= 0;
}

static int experiment_id(struct cli_mlflow *mf, const char *name, struct expt_err *err)
{
	int rc;

	if (mf->exp_id && mf->exp_name && !strcmp(mf->exp_name, name))
		return 0;
	free(mf->exp_id);
	free(mf->exp_name);
	mf->exp_id = NULL;
	mf->exp_name = expt_xstrdup(name);
	if ((rc = expt_mlflow_experiment(mf->m, name, &mf->exp_id, err)))
		return rc;
	return 0;
}

static const char *user_name(void)
{
	const char *u = getenv("USER");
	struct passwd *pw;

	if (u && *u)
		return u;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : "unknown";
}

/* Params of the run from the store, to the server in batches of 100. */
static int log_params(struct cli_mlflow *mf, struct expt_store *st, const char *run_id,
		      const char *mrun, struct expt_err *err)
{
	struct expt_kv_rows p = {0};
	int rc;

	if ((rc = expt_store_get_params(st, run_id, &p, err)))
		return rc;
	for (size_t i = 0; i < p.n && !rc;) {
		json_t *req = json_pack("{s:s,s:[]}", "run_id", mrun, "params");
		json_t *arr = json_object_get(req, "params");
		char *body;
		for (size_t k = 0; i < p.n && k < EXPT_MLFLOW_BATCH_PARAMS; i++, k++) {
			char key[EXPT_MLFLOW_KEY_MAX + 1];
			char *v = expt_xstrndup(
			    p.values[i], expt_mlflow_utf8_cut(p.values[i], EXPT_MLFLOW_PARAM_MAX));
			expt_mlflow_key(key, sizeof(key), p.keys[i]);
			json_array_append_new(arr, json_pack("{s:s,s:s}", "key", key, "value", v));
			free(v);
		}
		body = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		rc = expt_mlflow_call(mf->m, "POST", "runs/log-batch", body, strlen(body), NULL,
				      err);
		free(body);
	}
	expt_kv_rows_release(&p);
	return rc;
}

int cli_mlflow_begin(struct cli_mlflow *mf, struct expt_store *st, const struct expt_run_rec *r,
		     const struct cli_mlflow_run_info *info, struct expt_strv *env,
		     char **mlflow_run_id, struct expt_err *err)
{
	const char *keys[16], *vals[16];
	char idx[32], *key = cli_mlflow_run_key(r);
	char *mrun = NULL;
	size_t n = 0;
	int rc;

	if (mlflow_run_id)
		*mlflow_run_id = NULL;
	if (env)
		expt_strv_pushf(env, "EXPT_MLFLOW_RUN_KEY=%s", key);
	if (mf->broken) {
		rc = 0; /* said once already: the run's sink makes its MLflow run */
		goto out;
	}
	if ((rc = experiment_id(mf, r->experiment, err)) ||
	    (rc = expt_mlflow_find_run(mf->m, mf->exp_id, key, &mrun, err)))
		goto out;
	if (!mrun) {
		keys[n] = "expt.run_id", vals[n++] = r->run_id;
		keys[n] = EXPT_MLFLOW_RUN_KEY, vals[n++] = key;
		keys[n] = "expt.experiment", vals[n++] = r->experiment;
		keys[n] = "mlflow.user", vals[n++] = user_name();
		keys[n] = "mlflow.source.type", vals[n++] = "LOCAL";
		if (info->backend)
			keys[n] = "expt.backend", vals[n++] = info->backend;
		if (info->host)
			keys[n] = "expt.host", vals[n++] = info->host;
		if (info->variant)
			keys[n] = "expt.variant", vals[n++] = info->variant;
		if (info->source)
			keys[n] = "mlflow.source.name", vals[n++] = info->source;
		if (info->sweep_index >= 0) {
			snprintf(idx, sizeof(idx), "%ld", info->sweep_index);
			keys[n] = "expt.sweep_index", vals[n++] = idx;
		}
		if (info->git && info->git->commit) {
			keys[n] = "mlflow.source.git.commit", vals[n++] = info->git->commit;
			keys[n] = "expt.git.commit", vals[n++] = info->git->commit;
			keys[n] = "expt.git.dirty", vals[n++] = info->git->dirty ? "true" : "false";
			if (info->git->branch)
				keys[n] = "mlflow.source.git.branch", vals[n++] = info->git->branch;
		}
		if ((rc = expt_mlflow_run_create(mf->m, mf->exp_id, r->run_id, 0, keys, vals, n,
						 &mrun, err)))
			goto out;
	}
	if ((rc = log_params(mf, st, r->run_id, mrun, err)))
		goto out;
	if ((rc = expt_store_batch_begin(st, err)))
		goto out;
	if ((rc = expt_store_set_tag(st, r->run_id, CLI_MLFLOW_TAG_RUN, mrun, err)) ||
	    (rc = expt_store_set_tag(st, r->run_id, CLI_MLFLOW_TAG_EXP, mf->exp_id, err)) ||
	    (rc = expt_store_set_tag(st, r->run_id, CLI_MLFLOW_TAG_URI, expt_mlflow_base(mf->m),
				     err))) {
		expt_store_batch_rollback(st);
		goto out;
	}
	if ((rc = expt_store_batch_commit(st, err)))
		goto out;
	if (env) {
		expt_strv_pushf(env, "MLFLOW_TRACKING_URI=%s", expt_mlflow_base(mf->m));
		expt_strv_pushf(env, "MLFLOW_RUN_ID=%s", mrun);
		expt_strv_pushf(env, "MLFLOW_EXPERIMENT_ID=%s", mf->exp_id);
		expt_strv_pushf(env, "EXPT_MLFLOW_RUN_ID=%s", mrun);
	}

	if (mlflow_run_id) {
		*mlflow_run_id = mrun;
		mrun = NULL;
	}
out:
	free(mrun);
	free(key);
	return rc;
}

int cli_mlflow_end(struct cli_mlflow *mf, const char *mlflow_run_id, const char *experiment,
		   const char *run_key, const char *status, int64_t end_ms, struct expt_err *err)
{
	char *found = NULL;
	int rc;

	if (!mlflow_run_id) {
		if ((rc = experiment_id(mf, experiment, err)) ||
		    (rc = expt_mlflow_find_run(mf->m, mf->exp_id, run_key, &found, err)))
			return rc;
		if (!found)
			return 0; /* no MLflow run was ever made for it */
		mlflow_run_id = found;
	}
	rc = expt_mlflow_run_update(mf->m, mlflow_run_id, expt_mlflow_status(status), end_ms, err);
	free(found);
	return rc;
}

int cli_mlflow_fetch(struct expt_store *st, const char *run_id, json_t **run, char **url,
		     struct expt_err *err)
{
	struct expt_kv_rows t = {0};
	const char *mrun = NULL, *exp = NULL, *uri = NULL;
	struct cli_mlflow mf = {0};
	int rc;

	*run = NULL;
	if (url)
		*url = NULL;
	if ((rc = expt_store_get_tags(st, run_id, &t, err)))
		return rc;
	for (size_t i = 0; i < t.n; i++) {
		if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_RUN))
			mrun = t.values[i];
		else if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_EXP))
			exp = t.values[i];
		else if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_URI))
			uri = t.values[i];
	}
	if (mrun && uri && cli_mlflow_client(&mf, uri, err)) {
		if (url && exp)
			*url = expt_mlflow_run_url(mf.m, exp, mrun);
		rc = expt_mlflow_run_get(mf.m, mrun, run, err);
	} else if (mrun && uri) {
		rc = err->code;
	}
	cli_mlflow_release(&mf);
	expt_kv_rows_release(&t);
	return rc;
}

/* Adds the server's params and latest metrics of run r (its {"info","data"}) to row. */
static void fill_row(struct cli_mlflow_row *row, json_t *r)
{
	json_t *data = json_object_get(r, "data"), *x;
	const char *status =
	    json_string_value(json_object_get(json_object_get(r, "info"), "status"));
	size_t i;

	snprintf(row->mlflow_status, sizeof(row->mlflow_status), "%s", status ? status : "");
	if (!row->params || !row->metrics)
		return;

	json_array_foreach(json_object_get(data, "params"), i, x)
	{
		const char *k = json_string_value(json_object_get(x, "key"));
		if (k && !json_object_get(row->params, k))
			json_object_set(row->params, k, json_object_get(x, "value"));
	}
	json_array_foreach(json_object_get(data, "metrics"), i, x)
	{
		const char *k = json_string_value(json_object_get(x, "key"));
		json_t *one;
		if (!k || json_object_get(row->metrics, k))
			continue;
		one = json_object();
		json_object_set_new(one, "last",
				    json_real(json_number_value(json_object_get(x, "value"))));
		json_object_set(one, "step", json_object_get(x, "step"));
		json_object_set_new(one, "source", json_string("mlflow"));
		json_object_set_new(row->metrics, k, one);
	}
}

int cli_mlflow_fill(struct expt_store *st, struct cli_mlflow_row *rows, size_t n,
		    struct expt_err *err)
{
	/* "uri\texperiment id" -> {mlflow run id: row index} */
	json_t *groups = json_object(), *g;
	const char *gk;
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		struct expt_kv_rows t = {0};
		struct expt_err e = EXPT_ERR_INIT;
		const char *mrun = NULL, *exp = NULL, *uri = NULL;
		if (expt_store_get_tags(st, rows[i].run_id, &t, &e))
			continue;
		for (size_t k = 0; k < t.n; k++) {
			if (!strcmp(t.keys[k], CLI_MLFLOW_TAG_RUN))
				mrun = t.values[k];
			else if (!strcmp(t.keys[k], CLI_MLFLOW_TAG_EXP))
				exp = t.values[k];
			else if (!strcmp(t.keys[k], CLI_MLFLOW_TAG_URI))
				uri = t.values[k];
		}
		if (mrun && exp && uri) {
			char *key = expt_xasprintf("%s\t%s", uri, exp);
			snprintf(rows[i].mlflow_run, sizeof(rows[i].mlflow_run), "%s", mrun);
			if (!(g = json_object_get(groups, key)))
				json_object_set_new(groups, key, g = json_object());
			json_object_set_new(g, mrun, json_integer((json_int_t)i));
			free(key);
		}
		expt_kv_rows_release(&t);
	}
	json_object_foreach(groups, gk, g)
	{
		struct cli_mlflow mf = {0};
		struct expt_err e = EXPT_ERR_INIT;
		char *uri = expt_xstrdup(gk), *tab = strchr(uri, '\t');
		const char *exp = tab + 1, *mrun;
		json_t *idx, *ids = json_array();
		*tab = '\0';
		json_object_foreach(g, mrun, idx) json_array_append_new(ids, json_string(mrun));
		for (size_t at = 0; cli_mlflow_client(&mf, uri, &e) && at < json_array_size(ids);
		     at += 100) {
			struct expt_buf f = EXPT_BUF_INIT;
			json_t *req, *rep = NULL, *x;
			char *body;
			size_t i;
			expt_buf_adds(&f, "attributes.run_id IN (");
			for (size_t k = at; k < at + 100 && k < json_array_size(ids); k++)
				expt_buf_addf(&f, "%s'%s'", k > at ? "," : "",
					      json_string_value(json_array_get(ids, k)));
			expt_buf_adds(&f, ")");
			req = json_pack("{s:[s],s:s,s:i}", "experiment_ids", exp, "filter", f.buf,
					"max_results", 1000);
			expt_buf_release(&f);
			body = json_dumps(req, JSON_COMPACT);
			json_decref(req);
			if (expt_mlflow_call(mf.m, "POST", "runs/search", body, strlen(body), &rep,
					     &e)) {
				free(body);
				break;
			}
			free(body);
			json_array_foreach(json_object_get(rep, "runs"), i, x)
			{
				const char *id = json_string_value(
				    json_object_get(json_object_get(x, "info"), "run_id"));
				if (id && (idx = json_object_get(g, id)))
					fill_row(&rows[json_integer_value(idx)], x);
			}
			json_decref(rep);
		}
		if (e.code && !first++ && err)
			*err = e;
		json_decref(ids);
		cli_mlflow_release(&mf);
		free(uri);
	}
	json_decref(groups);
	return first ? (err ? err->code : EXPT_EBACKEND) : 0;
}
