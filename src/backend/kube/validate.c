/* The Kubernetes backend's checks before anything is created: the namespace, the right to create
 * Jobs (an access review), the Secrets and PVCs the spec names, then a server-side dry run of
 * every Job; what the API server would refuse, translated back to spec fields and grouped across
 * runs. docs/backends.md (Before anything is created). */
#include "kb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"

#define VALIDATE_PARALLEL 16 /* concurrent dry-run requests */

/* The spec field a Job field comes from, for messages. */
static const char *spec_field(const char *field)
{
	static const struct {
		const char *prefix, *spec;
	} map[] = {
	    {"metadata.name", "name (the run id)"},
	    {"metadata.labels", "kubernetes.labels"},
	    {"metadata.annotations", "kubernetes.annotations"},
	    {"spec.template.metadata.labels", "kubernetes.labels"},
	    {"spec.template.labels", "kubernetes.labels"},
	    {"spec.template.annotations", "kubernetes.annotations"},
	    {"spec.template.metadata.annotations", "kubernetes.annotations"},
	    {"spec.template.spec.containers[0].image", "image"},
	    {"spec.template.spec.containers[0].resources", "resources"},
	    {"spec.template.spec.containers[0].env", "env"},
	    {"spec.template.spec.containers[0].envFrom", "secrets"},
	    {"spec.template.spec.containers[0].command", "command"},
	    {"spec.template.spec.containers[0].imagePullPolicy", "kubernetes.image_pull_policy"},
	    {"spec.template.spec.containers[0].volumeMounts", "inputs/outputs (mount)"},
	    {"spec.template.spec.volumes", "inputs/outputs"},
	    {"spec.template.spec.nodeSelector", "kubernetes.node_selector"},
	    {"spec.template.spec.tolerations", "kubernetes.tolerations"},
	    {"spec.template.spec.serviceAccountName", "kubernetes.service_account"},
	    {"spec.template.spec.priorityClassName", "kubernetes.priority_class"},
	    {"spec.activeDeadlineSeconds", "timeout"},
	    {"spec.backoffLimit", "retries"},
	    {"spec.template", "kubernetes.pod_template"},
	};

	for (size_t i = 0; field && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(field, map[i].prefix, strlen(map[i].prefix)))
			return map[i].spec;
	return NULL;
}

/* One thing the API server refused, and the runs it refused it for: a sweep of 100 runs with one
 * bad label is one line, not 200 (the Job's labels and its pods' are the same spec field). */
struct refusal {
	char *key;  /* spec field and message: what makes two refusals the same */
	char *text; /* as shown */
	struct expt_strv runs;
};

struct refusals {
	struct refusal *v;
	size_t n, cap;
};

static void refuse(struct refusals *rs, const char *run_id, const char *sfield, const char *field,
		   const char *msg)
{
	char *key = expt_xasprintf("%s: %s", sfield ? sfield : (field ? field : ""), msg);
	struct refusal *r = NULL;

	for (size_t i = 0; i < rs->n && !r; i++)
		if (!strcmp(rs->v[i].key, key))
			r = &rs->v[i];
	if (!r) {
		EXPT_ALLOC_GROW(rs->v, rs->n + 1, rs->cap);
		r = &rs->v[rs->n++];
		memset(r, 0, sizeof(*r));
		r->key = key;
		key = NULL;
		if (sfield && field)
			r->text = expt_xasprintf("%s (%s): %s", sfield, field, msg);
		else if (sfield || field)
			r->text = expt_xasprintf("%s: %s", sfield ? sfield : field, msg);
		else
			r->text = expt_xstrdup(msg);
	}
	if (expt_strv_find(&r->runs, run_id) < 0)
		expt_strv_push(&r->runs, run_id);
	free(key);
}

static void explain(struct refusals *rs, const char *run_id, const struct expt_kube_status *st,
		    const struct expt_err *e)
{
	if (!st->ncauses) {
		refuse(rs, run_id, NULL, NULL, st->message && *st->message ? st->message : e->msg);
		return;
	}
	for (size_t i = 0; i < st->ncauses; i++) {
		const struct expt_kube_cause *c = &st->causes[i];
		refuse(rs, run_id, spec_field(c->field), c->field,
		       c->message ? c->message : (c->reason ? c->reason : "invalid"));
	}
}

static void refusals_print(struct refusals *rs, struct expt_buf *out)
{
	for (size_t i = 0; i < rs->n; i++) {
		const struct refusal *r = &rs->v[i];
		if (r->runs.n <= 3) {
			expt_buf_adds(out, "\n  ");
			for (size_t j = 0; j < r->runs.n; j++)
				expt_buf_addf(out, "%s%s", j ? ", " : "", r->runs.v[j]);
		} else {
			expt_buf_addf(out, "\n  %s ... %s (%zu runs)", r->runs.v[0],
				      r->runs.v[r->runs.n - 1], r->runs.n);
		}
		expt_buf_addf(out, ": %s", r->text);
	}
}

static void refusals_release(struct refusals *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->v[i].key);
		free(rs->v[i].text);
		expt_strv_release(&rs->v[i].runs);
	}
	free(rs->v);
}

/* Objects the Jobs refer to that must exist first: Secrets and PVCs. */
static int check_refs(struct kb *b, struct expt_buf *problems, struct expt_err *err)
{
	const struct expt_spec *spec = b->spec;
	const char *ns = expt_kb_namespace(b);
	int rc = 0;

	for (size_t i = 0; i < spec->secrets.n; i++) {
		struct expt_err e = EXPT_ERR_INIT;
		char *path =
		    expt_xasprintf("/api/v1/namespaces/%s/secrets/%s", ns, spec->secrets.v[i]);
		int r = expt_kube_request(b->k, "GET", path, NULL, NULL, NULL, &e);
		free(path);
		if (r == EXPT_ENOTFOUND)
			expt_buf_addf(
			    problems,
			    "\n  secrets[%zu]: Secret '%s' does not exist in namespace %s", i,
			    spec->secrets.v[i], ns);
		else if (r && r != EXPT_EDENIED) /* reading Secrets may be forbidden: fine */
			return expt_err_set(err, r, "%s", e.msg);
	}
	for (int in = 1; in >= 0; in--) {
		const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;
		for (size_t i = 0; i < ms->n; i++) {
			const char *u = ms->v[i].url, *claim, *slash;
			struct expt_err e = EXPT_ERR_INIT;
			char *name, *path;
			int r;
			if (strncmp(u, "pvc://", 6))
				continue;
			claim = u + 6;
			slash = strchr(claim, '/');
			name = slash ? expt_xstrndup(claim, (size_t)(slash - claim))
				     : expt_xstrdup(claim);
			path = expt_xasprintf("/api/v1/namespaces/%s/persistentvolumeclaims/%s", ns,
					      name);
			r = expt_kube_request(b->k, "GET", path, NULL, NULL, NULL, &e);
			if (r == EXPT_ENOTFOUND)
				expt_buf_addf(
				    problems,
				    "\n  %s.%s: PersistentVolumeClaim '%s' does not exist in "
				    "namespace %s",
				    in ? "inputs" : "outputs", ms->v[i].name, name, ns);
			else if (r && r != EXPT_EDENIED)
				rc = expt_err_set(err, r, "%s", e.msg);
			free(name);
			free(path);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* files: readable, small enough, and a ConfigMap of them accepted (a dry run of the first
 * run's: the others differ only by name). */
static int check_files(struct kb *b, const struct expt_job *job, struct expt_buf *problems,
		       struct expt_err *err)
{
	struct expt_err e = EXPT_ERR_INIT;
	json_t *cm = NULL;
	char *path, *reason = NULL;
	int rc = 0, allowed = 0, r;

	if (!b->spec || !b->spec->files.n)
		return 0;
	if (expt_kb_files_configmap(b, job->run_id, &cm, &e)) {
		expt_buf_addf(problems, "\n  %s", e.msg);
		return 0;
	}
	if ((rc = expt_kube_access_check(b->k, "create", "", "configmaps", expt_kb_namespace(b),
					 &allowed, &reason, err)))
		goto out;
	if (!allowed) {
		expt_buf_addf(
		    problems, "\n  files: this user may not create ConfigMaps in namespace %s%s%s",
		    expt_kb_namespace(b), reason && *reason ? ": " : "", reason ? reason : "");
		goto out;
	}
	path = expt_xasprintf("/api/v1/namespaces/%s/configmaps?dryRun=All", expt_kb_namespace(b));
	r = expt_kube_request(b->k, "POST", path, cm, NULL, NULL, &e);
	free(path);
	if (r == EXPT_EUSAGE || r == EXPT_EDENIED)
		expt_buf_addf(problems, "\n  files: the API server refuses their ConfigMap: %s",
			      e.msg);
	else if (r && r != EXPT_ECONFLICT)
		rc = expt_err_set(err, r, "%s", e.msg);
out:
	free(reason);
	json_decref(cm);
	return rc;
}

int expt_kb_validate(void *state, struct expt_job **jobs, size_t n, struct expt_err *err)
{
	struct kb *b = state;
	struct expt_kube_req *reqs = NULL;
	struct expt_buf problems = EXPT_BUF_INIT;
	struct refusals refused = {0};
	json_t **bodies = NULL;
	char *path = NULL, *reason = NULL;
	const char *ns;
	int rc, allowed = 0;
	size_t nbad = 0;

	if ((rc = expt_kb_connect(b, err)))
		return rc;
	ns = expt_kb_namespace(b);
	/* Namespace and permission first: one clear sentence instead of n refusals. */
	{
		struct expt_err e = EXPT_ERR_INIT;
		char *nsp = expt_xasprintf("/api/v1/namespaces/%s", ns);
		int r = expt_kube_request(b->k, "GET", nsp, NULL, NULL, NULL, &e);
		free(nsp);
		if (r == EXPT_ENOTFOUND) {
			rc = expt_err_set(
			    err, EXPT_EUSAGE,
			    "namespace '%s' does not exist on %s (kubernetes.namespace, "
			    "or the context's namespace); nothing was created",
			    ns, b->cfg->server);
			goto out;
		}
		if (r && r != EXPT_EDENIED) { /* cannot even ask: unreachable, TLS... */
			rc = expt_err_set(err, r, "%s", e.msg);
			goto out;
		}
	}
	if ((rc = expt_kube_access_check(b->k, "create", "batch", "jobs", ns, &allowed, &reason,
					 err)))
		goto out;
	if (!allowed) {
		rc = expt_err_set(
		    err, EXPT_EDENIED,
		    "%s (context %s) may not create Jobs in namespace %s%s%s; nothing "
		    "was created",
		    b->cfg->user_name && *b->cfg->user_name ? b->cfg->user_name : "this user",
		    b->cfg->context, ns, reason && *reason ? ": " : "", reason ? reason : "");
		goto out;
	}
	if (b->spec && b->spec->kubernetes.max_in_flight > 0) {
		int ok = 0;
		char *why = NULL;
		if ((rc = expt_kube_access_check(b->k, "create", "coordination.k8s.io", "leases",
						 ns, &ok, &why, err)))
			goto out;
		if (!ok)
			expt_buf_addf(
			    &problems,
			    "\n  kubernetes.max_in_flight: this user may not create Leases "
			    "(coordination.k8s.io) in namespace %s, under which the cap is "
			    "counted%s%s",
			    ns, why && *why ? ": " : "", why ? why : "");
		free(why);
	}
	if ((rc = check_refs(b, &problems, err)) ||
	    (n && (rc = check_files(b, jobs[0], &problems, err))))
		goto out;

	reqs = expt_xcalloc(n ? n : 1, sizeof(*reqs));
	bodies = expt_xcalloc(n ? n : 1, sizeof(*bodies));
	path = expt_xasprintf("%s?dryRun=All", expt_kb_jobs_path(b));
	for (size_t i = 0; i < n; i++) {
		if ((rc = expt_kb_manifest(b, jobs[i], &bodies[i], err)))
			goto out;
		reqs[i].method = "POST";
		reqs[i].path = path;
		reqs[i].body = bodies[i];
	}
	expt_kube_request_many(b->k, reqs, n, VALIDATE_PARALLEL, err);
	expt_err_clear(err);
	for (size_t i = 0; i < n; i++) {
		if (!reqs[i].rc)
			continue;
		if (reqs[i].rc == EXPT_ECONFLICT) {
			if (b->on_conflict && !strcmp(b->on_conflict, "replace"))
				continue; /* replaced as it starts */
			if (b->on_conflict && !strcmp(b->on_conflict, "new-id")) {
				expt_kb_rename(b, jobs[i]->run_id); /* its Job named otherwise */
				continue;
			}
			char *m = expt_xasprintf(
			    "a Job of that name already exists in namespace %s "
			    "(on_conflict: %s; 'replace' deletes it first, 'new-id' names "
			    "the run's Job otherwise)",
			    ns, b->on_conflict ? b->on_conflict : "fail");
			nbad++;
			refuse(&refused, jobs[i]->run_id, "on_conflict", NULL, m);
			free(m);
			continue;
		}
		if (reqs[i].rc != EXPT_EUSAGE && reqs[i].rc != EXPT_EDENIED) {
			rc = expt_err_set(err, reqs[i].rc, "%s", reqs[i].err.msg);
			goto out;
		}
		nbad++;
		explain(&refused, jobs[i]->run_id, &reqs[i].st, &reqs[i].err);
	}
	refusals_print(&refused, &problems);
	if (problems.len)
		rc = expt_err_set(
		    err, EXPT_EUSAGE, "the API server (%s) would refuse %s; nothing was created:%s",
		    b->cfg->server, nbad ? "these Jobs" : "what the spec refers to", problems.buf);
out:
	for (size_t i = 0; reqs && i < n; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
		json_decref(bodies[i]);
	}
	free(reqs);
	free(bodies);
	free(path);
	free(reason);
	refusals_release(&refused);
	expt_buf_release(&problems);
	return rc;
}
