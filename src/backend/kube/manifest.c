/* spec + run -> a batch/v1 Job. What is generated, field by field, is in docs/backends.md
 * (Kubernetes); anything else a user needs goes through kubernetes.pod_template. */
#include "manifest.h"

#include <stdio.h>
#include <string.h>

#include "../../store/store.h"
#include "../../util/mem.h"

static int label_value_ok(const char *s)
{
	size_t n = strlen(s);

	if (n > 63)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9');
		if (!alnum && ((i == 0 || i == n - 1) || !strchr("-_.", ch)))
			return 0;
	}
	return 1;
}

void expt_kube_experiment_label(const char *experiment, char *out, size_t n)
{
	if (label_value_ok(experiment) && strlen(experiment) < n) {
		snprintf(out, n, "%s", experiment);
		return;
	}
	if (expt_store_run_id_prefix(experiment, out, n, NULL))
		snprintf(out, n, "unnamed");
}

/* A Kubernetes quantity for a byte count (exact: a plain integer is a valid quantity). */
static json_t *bytes_q(int64_t b)
{
	static const char *const suffix[] = {"Ki", "Mi", "Gi", "Ti"};
	int i = -1;

	while (i < 3 && b % 1024 == 0 && b >= 1024) {
		b /= 1024;
		i++;
	}
	return i < 0 ? json_sprintf("%lld", (long long)b)
		     : json_sprintf("%lld%s", (long long)b, suffix[i]);
}

static json_t *cpu_q(int64_t milli)
{
	return milli % 1000 ? json_sprintf("%lldm", (long long)milli)
			    : json_sprintf("%lld", (long long)(milli / 1000));
}

static json_t *resources(const struct expt_spec *spec)
{
	json_t *req = json_object(), *lim = json_object(), *r = json_object();

	if (spec->resources.cpu_milli) {
		json_object_set_new(req, "cpu", cpu_q(spec->resources.cpu_milli));
		json_object_set_new(lim, "cpu", cpu_q(spec->resources.cpu_milli));
	}
	if (spec->resources.memory_bytes) {
		json_object_set_new(req, "memory", bytes_q(spec->resources.memory_bytes));
		json_object_set_new(lim, "memory", bytes_q(spec->resources.memory_bytes));
	}
	if (spec->resources.gpu) {
		/* Extended resources: requests must equal limits. */
		json_object_set_new(req, "nvidia.com/gpu", json_sprintf("%d", spec->resources.gpu));
		json_object_set_new(lim, "nvidia.com/gpu", json_sprintf("%d", spec->resources.gpu));
	}
	if (json_object_size(req))
		json_object_set_new(r, "requests", req);
	else
		json_decref(req);
	if (json_object_size(lim))
		json_object_set_new(r, "limits", lim);
	else
		json_decref(lim);
	return r;
}

/* One input or output: its volume and its mount in the run's container. */
static int add_mount(const struct expt_spec *spec, const struct expt_mount *m, int in,
		     json_t *volumes, json_t *mounts, struct expt_err *err)
{
	json_t *vol = json_object(), *vm = json_object(), *src = json_object();
	char name[80];

	snprintf(name, sizeof(name), "%s-%s", in ? "in" : "out", m->name);
	json_object_set_new(vol, "name", json_string(name));
	json_object_set_new(vm, "name", json_string(name));
	json_object_set_new(vm, "mountPath", json_string(m->mount));
	if (m->readonly)
		json_object_set_new(vm, "readOnly", json_true());
	if (!strncmp(m->url, "nfs://", 6)) {
		const char *host = m->url + 6, *slash = strchr(host, '/');
		json_object_set_new(
		    src, "server",
		    json_stringn(host, slash ? (size_t)(slash - host) : strlen(host)));
		json_object_set_new(src, "path", json_string(slash ? slash : "/"));
		if (m->readonly)
			json_object_set_new(src, "readOnly", json_true());
		json_object_set_new(vol, "nfs", src);
	} else if (!strncmp(m->url, "pvc://", 6)) {
		const char *claim = m->url + 6, *slash = strchr(claim, '/');
		json_object_set_new(
		    src, "claimName",
		    json_stringn(claim, slash ? (size_t)(slash - claim) : strlen(claim)));
		if (m->readonly)
			json_object_set_new(src, "readOnly", json_true());
		if (slash && slash[1])
			json_object_set_new(vm, "subPath", json_string(slash + 1));
		json_object_set_new(vol, "persistentVolumeClaim", src);
	} else if (!strncmp(m->url, "s3://", 5)) {
		json_decref(vol);
		json_decref(vm);
		json_decref(src);
		return expt_err_set(
		    err, EXPT_EUSAGE,
		    "%s.%s: s3:// is not mounted by the kubernetes backend yet: "
		    "use a pvc:// or nfs:// volume, or read the bucket from the run",
		    in ? "inputs" : "outputs", m->name);
	} else {
		/* A path on the node: it must exist on every node a run can land on. */
		char *path = m->url[0] == '/' ? expt_xstrdup(m->url)
					      : expt_xasprintf("%s/%s", spec->dir, m->url);
		json_object_set_new(src, "path", json_string(path));
		json_object_set_new(src, "type",
				    json_string(in ? "Directory" : "DirectoryOrCreate"));
		free(path);
		json_object_set_new(vol, "hostPath", src);
	}
	json_array_append_new(volumes, vol);
	json_array_append_new(mounts, vm);
	return 0;
}

static void set_kvs(json_t *obj, const struct expt_kvs *kvs)
{
	for (size_t i = 0; i < kvs->n; i++)
		json_object_set_new(obj, kvs->v[i].key, json_string(kvs->v[i].value));
}

static json_t *name_index(const json_t *list, const char *name, size_t *at)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v)
	{
		const char *n = json_string_value(json_object_get(v, "name"));
		if (n && !strcmp(n, name)) {
			*at = i;
			return v;
		}
	}
	return NULL;
}

static int named_list(const json_t *v)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v) || !json_array_size(v))
		return 0;
	json_array_foreach(v, i, e) if (!json_is_string(json_object_get(e, "name"))) return 0;
	return 1;
}

void expt_kube_merge(json_t *base, const json_t *over)
{
	const char *k;
	json_t *ov;

	json_object_foreach((json_t *)over, k, ov)
	{
		json_t *bv = json_object_get(base, k);
		if (json_is_object(bv) && json_is_object(ov)) {
			expt_kube_merge(bv, ov);
		} else if (named_list(bv) && named_list(ov)) {
			size_t i, at;
			json_t *e;
			json_array_foreach(ov, i, e)
			{
				json_t *same = name_index(
				    bv, json_string_value(json_object_get(e, "name")), &at);
				if (same && json_is_object(same))
					expt_kube_merge(same, e);
				else
					json_array_append_new(bv, json_deep_copy(e));
			}
		} else {
			json_object_set_new(base, k, json_deep_copy(ov));
		}
	}
}

/* The working directory of the run's container, when expt knows it: the pod_template's
 * workingDir for the run's container, else build.workdir of an image expt builds. Borrowed. */
static const char *known_workdir(const struct expt_spec *spec, json_t *tmpl_over)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(tmpl_over, "spec"), "containers"), i, c)
	{
		const char *n = json_string_value(json_object_get(c, "name"));
		const char *wd = json_string_value(json_object_get(c, "workingDir"));
		if (n && !strcmp(n, EXPT_KUBE_CONTAINER) && wd && *wd == '/')
			return wd;
	}
	return spec->build.set ? (spec->build.workdir ? spec->build.workdir : "/app") : NULL;
}

/* files: one ConfigMap per run (created beside its Job, owned by it), each file mounted
 * read-only where the spec says (subPath: the directory around it stays the image's). */
static int add_files(const struct expt_spec *spec, const struct expt_kube_run *r, json_t *volumes,
		     json_t *mounts, struct expt_err *err)
{
	json_t *over = spec->kubernetes.pod_template_json
			   ? json_loads(spec->kubernetes.pod_template_json, 0, NULL)
			   : NULL;
	const char *wd = known_workdir(spec, over);
	json_t *items = json_array();
	char *cm = expt_kube_files_name(r->name ? r->name : r->run_id);
	int rc = 0;

	for (size_t i = 0; !rc && i < spec->files.n; i++) {
		const char *in_run = spec->files.v[i].key;
		char key[32], *target;
		if (*in_run != '/' && !wd) {
			rc = expt_err_set(
			    err, EXPT_EUSAGE,
			    "files.%s: a relative path in the run needs its working directory, "
			    "which "
			    "expt does not know for a prebuilt image on Kubernetes: write it "
			    "absolute "
			    "(e.g. /app/%s), or set workingDir of the container '%s' in "
			    "kubernetes.pod_template",
			    in_run, in_run, EXPT_KUBE_CONTAINER);
			break;
		}
		snprintf(key, sizeof(key), "f%zu", i);
		target =
		    *in_run == '/' ? expt_xstrdup(in_run) : expt_xasprintf("%s/%s", wd, in_run);
		json_array_append_new(items, json_pack("{s:s, s:s}", "key", key, "path", key));
		json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "name",
							"expt-files", "mountPath", target,
							"subPath", key, "readOnly", 1));
		free(target);
	}
	json_array_append_new(volumes, json_pack("{s:s, s:{s:s, s:o}}", "name", "expt-files",
						 "configMap", "name", cm, "items", items));
	free(cm);
	json_decref(over);
	return rc;
}

char *expt_kube_files_name(const char *job)
{
	return expt_xasprintf("%s-files", job);
}

int expt_kube_job_manifest(const struct expt_spec *spec, const struct expt_kube_run *r,
			   json_t **out, struct expt_err *err)
{
	json_t *job = NULL, *meta, *labels, *annotations, *jspec, *tmpl, *tmeta, *pspec, *ctr;
	json_t *env, *volumes, *mounts, *envfrom;
	char exp_label[80], index[32];
	int rc = 0;

	*out = NULL;
	expt_kube_experiment_label(spec->name, exp_label, sizeof(exp_label));
	snprintf(index, sizeof(index), "%zu", r->index);

	labels = json_object();
	set_kvs(labels, &spec->kubernetes.labels);
	json_object_set_new(labels, EXPT_KUBE_L_MANAGED, json_string("expt"));
	json_object_set_new(labels, EXPT_KUBE_L_EXPERIMENT, json_string(exp_label));
	json_object_set_new(labels, EXPT_KUBE_L_RUN, json_string(r->run_id));
	json_object_set_new(labels, EXPT_KUBE_L_INDEX, json_string(index));
	annotations = json_object();
	set_kvs(annotations, &spec->kubernetes.annotations);
	/* The name as written: label values cannot hold every experiment name. */
	json_object_set_new(annotations, EXPT_KUBE_L_EXPERIMENT, json_string(spec->name));

	job = json_object();
	json_object_set_new(job, "apiVersion", json_string("batch/v1"));
	json_object_set_new(job, "kind", json_string("Job"));
	meta = json_object();
	json_object_set_new(meta, "name", json_string(r->name ? r->name : r->run_id));
	if (r->namespace_)
		json_object_set_new(meta, "namespace", json_string(r->namespace_));
	json_object_set_new(meta, "labels", json_deep_copy(labels));
	/* Kueue admits (unsuspends) the Job: the cluster's queue, not expt, decides when. */
	if (spec->kubernetes.queue)
		json_object_set_new(json_object_get(meta, "labels"), "kueue.x-k8s.io/queue-name",
				    json_string(spec->kubernetes.queue));
	json_object_set_new(meta, "annotations", json_deep_copy(annotations));
	json_object_set_new(job, "metadata", meta);

	jspec = json_object();
	/* Retries are the Job controller's: each is a new pod (an attempt). */
	json_object_set_new(jspec, "backoffLimit", json_integer(spec->retries));
	if (spec->timeout_ms > 0)
		json_object_set_new(jspec, "activeDeadlineSeconds",
				    json_integer((spec->timeout_ms + 999) / 1000));
	json_object_set_new(job, "spec", jspec);

	tmpl = json_object();
	tmeta = json_object();
	json_object_set_new(annotations, EXPT_KUBE_A_PARAMS,
			    json_string(r->params_json ? r->params_json : "{}"));
	json_object_set_new(tmeta, "labels", labels);
	json_object_set_new(tmeta, "annotations", annotations);
	json_object_set_new(tmpl, "metadata", tmeta);
	pspec = json_object();
	json_object_set_new(pspec, "restartPolicy", json_string("Never"));
	if (spec->kubernetes.service_account)
		json_object_set_new(pspec, "serviceAccountName",
				    json_string(spec->kubernetes.service_account));
	if (spec->kubernetes.priority_class)
		json_object_set_new(pspec, "priorityClassName",
				    json_string(spec->kubernetes.priority_class));
	if (spec->kubernetes.node_selector.n) {
		json_t *ns = json_object();
		set_kvs(ns, &spec->kubernetes.node_selector);
		json_object_set_new(pspec, "nodeSelector", ns);
	}
	{
		json_t *tol = json_loads(
		    spec->kubernetes.tolerations_json ? spec->kubernetes.tolerations_json : "[]", 0,
		    NULL);
		if (json_array_size(tol))
			json_object_set_new(pspec, "tolerations", tol);
		else
			json_decref(tol);
	}

	ctr = json_object();
	json_object_set_new(ctr, "name", json_string(EXPT_KUBE_CONTAINER));
	json_object_set_new(ctr, "image", json_string(spec->image ? spec->image : ""));
	if (spec->kubernetes.image_pull_policy)
		json_object_set_new(ctr, "imagePullPolicy",
				    json_string(spec->kubernetes.image_pull_policy));
	{
		json_t *cmd = json_array();
		for (size_t i = 0; i < r->argv->n; i++)
			json_array_append_new(cmd, json_string(r->argv->v[i]));
		json_object_set_new(ctr, "command", cmd);
	}
	env = json_array();
	for (size_t i = 0; i < r->env->n; i++) {
		const char *kv = r->env->v[i], *eq = strchr(kv, '=');
		json_t *e = json_object();
		/* The project directory is this machine's: a pod does not have it. */
		if (!eq || !strncmp(kv, "EXPT_PROJECT_DIR=", 17)) {
			json_decref(e);
			continue;
		}
		json_object_set_new(e, "name", json_stringn(kv, (size_t)(eq - kv)));
		json_object_set_new(e, "value", json_string(eq + 1));
		json_array_append_new(env, e);
	}
	json_object_set_new(ctr, "env", env);
	if (spec->secrets.n) {
		envfrom = json_array();
		for (size_t i = 0; i < spec->secrets.n; i++)
			json_array_append_new(envfrom, json_pack("{s:{s:s}}", "secretRef", "name",
								 spec->secrets.v[i]));
		json_object_set_new(ctr, "envFrom", envfrom);
	}
	json_object_set_new(ctr, "resources", resources(spec));

	volumes = json_array();
	mounts = json_array();
	/* The params file: the pod's own annotation, through the downward API (no extra object
	 * to create, own or clean up). */
	json_array_append_new(volumes, json_pack("{s:s, s:{s:[{s:s, s:{s:s}}]}}", "name",
						 "expt-params", "downwardAPI", "items", "path",
						 "params.json", "fieldRef", "fieldPath",
						 "metadata.annotations['" EXPT_KUBE_A_PARAMS "']"));
	json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "name", "expt-params",
						"mountPath", EXPT_KUBE_PARAMS_DIR, "readOnly", 1));
	json_array_append_new(volumes, json_pack("{s:s, s:{}}", "name", "expt-output", "emptyDir"));
	json_array_append_new(mounts, json_pack("{s:s, s:s}", "name", "expt-output", "mountPath",
						EXPT_KUBE_OUTPUT_DIR));
	for (size_t i = 0; !rc && i < spec->inputs.n; i++)
		rc = add_mount(spec, &spec->inputs.v[i], 1, volumes, mounts, err);
	for (size_t i = 0; !rc && i < spec->outputs.n; i++)
		rc = add_mount(spec, &spec->outputs.v[i], 0, volumes, mounts, err);
	if (!rc && spec->files.n)
		rc = add_files(spec, r, volumes, mounts, err);
	json_object_set_new(ctr, "volumeMounts", mounts);
	json_object_set_new(pspec, "containers", json_pack("[o]", ctr));
	json_object_set_new(pspec, "volumes", volumes);
	json_object_set_new(tmpl, "spec", pspec);
	json_object_set_new(jspec, "template", tmpl);
	if (rc)
		goto out;

	if (spec->kubernetes.pod_template_json) {
		json_t *over = json_loads(spec->kubernetes.pod_template_json, 0, NULL);
		if (json_is_object(over))
			expt_kube_merge(tmpl, over);
		json_decref(over);
	}
	*out = job;
	job = NULL;
out:
	json_decref(job);
	return rc;
}
