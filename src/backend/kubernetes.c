/* The Kubernetes backend: each run a batch/v1 Job in the namespace of the kubeconfig's context
 * (or the spec's), checked by the API server (access review, server-side dry run of every Job)
 * before any is created. The shared scheduler keeps `parallel` Jobs in flight; the cluster
 * places, retries (backoffLimit) and times out (activeDeadlineSeconds) them. One list+watch on
 * the experiment's Jobs and one on its pods tell what happens; each pod's log is followed into
 * the run's log files, which `expt logs` and `expt debug` read even after the cluster forgot the
 * pod. docs/backends.md (Kubernetes) says what a run becomes. */
#include "backend.h"
#include "local_impl.h"
#include "sched.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube/client.h"
#include "kube/config.h"
#include "kube/kb.h"
#include "kube/manifest.h"
#include "kube/tracking.h"
#include "util/base64.h"
#include "util/util.h"

#define DRAIN_MS 2000	       /* how long a finished pod's log stream may take to end */
#define GONE_WAIT_MS 30000     /* on_conflict: replace waits this long for the old Job to go */
#define CREATE_PARALLEL 32     /* concurrent creations */
#define CREATE_RETRY_MS 300000 /* how long creation is retried while the API server is away */
#define ROOM_RECHECK_MS 500    /* kubernetes.max_in_flight: how often a full namespace is asked */

static void schedule_cleanup(struct kb *b, struct katt *t);

/* ---- connecting ---- */

int expt_kb_connect(struct kb *b, struct expt_err *err)
{
	struct expt_kube_config_opts o = EXPT_KUBE_CONFIG_OPTS_INIT;
	struct expt_diags diags = {0};
	int rc;

	if (b->k)
		return 0;
	if (!b->cfg) {
		o.context = b->context;
		o.ns = b->ns;
		rc = expt_kube_config_load(&b->cfg, &o, &diags, err);
		if (rc && diags.n) {
			char line[1200];
			expt_diag_format(&diags.v[0], line, sizeof(line));
			expt_err_set(err, rc, "kubeconfig: %s%s", line,
				     diags.n > 1 ? " (and more problems)" : "");
		}
		expt_diags_release(&diags);
		if (rc)
			return rc;
	}
	return expt_kube_open(&b->k, b->cfg, err);
}

/* The namespace runs go to: the spec's, else the kubeconfig context's (without connecting). */
const char *expt_kb_namespace(struct kb *b)
{
	if (b->ns)
		return b->ns;
	if (!b->cfg) {
		struct expt_kube_config_opts o = EXPT_KUBE_CONFIG_OPTS_INIT;
		struct expt_diags diags = {0};
		struct expt_err e = EXPT_ERR_INIT;
		o.context = b->context;
		if (expt_kube_config_load(&b->cfg, &o, &diags, &e))
			b->cfg = NULL;
		expt_diags_release(&diags);
	}
	return b->cfg ? b->cfg->ns : NULL;
}

const char *expt_kb_jobs_path(struct kb *b)
{
	if (!b->jobs_path[0])
		snprintf(b->jobs_path, sizeof(b->jobs_path), "/apis/batch/v1/namespaces/%s/jobs",
			 expt_kb_namespace(b));
	return b->jobs_path;
}

/* labelSelector for everything of this experiment, escaped for a query. */
char *expt_kb_selector(struct kb *b, const char *run_id)
{
	char *sel = run_id ? expt_xasprintf("%s=%s", EXPT_KUBE_L_RUN, run_id)
			   : expt_xasprintf("%s=%s,%s=expt", EXPT_KUBE_L_EXPERIMENT, b->label,
					    EXPT_KUBE_L_MANAGED);
	char *esc = expt_kube_escape(sel);
	char *q = expt_xasprintf("labelSelector=%s", esc ? esc : "");

	free(sel);
	free(esc);
	return q;
}

/* ---- open / close / contract / render ---- */

/* A duration of the resolved spec ("10m"; "keep" and anything else: -1). */
static int64_t json_ms(const char *s)
{
	int64_t ms;

	return expt_parse_duration_ms(s, &ms) ? -1 : ms;
}

static void kb_spec_from_json(struct kb *b, const char *spec_json)
{
	json_t *j = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
	const char *s;

	if (!j)
		return;
	if ((s = expt_kb_jstr(j, "kubernetes.context")))
		b->context = expt_xstrdup(s);
	if ((s = expt_kb_jstr(j, "kubernetes.namespace")))
		b->ns = expt_xstrdup(s);
	if ((s = expt_kb_jstr(j, "name")) && !b->experiment)
		b->experiment = expt_xstrdup(s);
	/* What the end of a run nobody followed needs (kube/adopt.c). */
	if ((s = expt_kb_jstr(j, "cleanup.failed")))
		b->cleanup_failed_ms = json_ms(s);
	if ((s = expt_kb_jstr(j, "cleanup.succeeded")))
		b->cleanup_succeeded_ms = json_ms(s);
	if ((s = expt_kb_jstr(j, "kubernetes.start_timeout")))
		b->start_timeout_ms = json_ms(s);
	json_decref(j);
}

static int kb_open(void **state, const struct expt_backend_conf *conf, struct expt_err *err)
{
	struct kb *b = expt_xcalloc(1, sizeof(*b));

	(void)err;
	b->db_path = conf && conf->db_path ? expt_xstrdup(conf->db_path) : NULL;
	b->cleanup_failed_ms = b->cleanup_succeeded_ms = -1;
	b->start_timeout_ms = 600000;
	if (conf && conf->spec) {
		const struct expt_spec *spec = conf->spec;
		b->spec = spec;
		b->cleanup_failed_ms = spec->cleanup_failed_ms;
		b->cleanup_succeeded_ms = spec->cleanup_succeeded_ms;
		b->start_timeout_ms = spec->kubernetes.start_timeout_ms;
		b->context =
		    spec->kubernetes.context ? expt_xstrdup(spec->kubernetes.context) : NULL;
		b->ns =
		    spec->kubernetes.namespace_ ? expt_xstrdup(spec->kubernetes.namespace_) : NULL;
		b->experiment = expt_xstrdup(spec->name);
		b->on_conflict = spec->on_conflict ? expt_xstrdup(spec->on_conflict) : NULL;
		for (int in = 1; in >= 0; in--) {
			const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;
			for (size_t i = 0; i < ms->n; i++)
				expt_strv_pushf(&b->io, "%s.%s=%s", in ? "inputs" : "outputs",
						ms->v[i].name, ms->v[i].mount);
		}
	} else if (conf) {
		kb_spec_from_json(b, conf->spec_json);
	}
	if (b->experiment)
		expt_kube_experiment_label(b->experiment, b->label, sizeof(b->label));
	*state = b;
	return 0;
}

static void kb_close(void *state)
{
	struct kb *b = state;

	if (!b)
		return;
	expt_sched_free(b->sched);
	expt_kube_watch_close(b->jobs_w);
	expt_kube_watch_close(b->pods_w);
	expt_kube_close(b->k);
	expt_kube_config_free(b->cfg);
	free(b->live);
	free(b->queued);
	expt_strv_release(&b->io);
	expt_strv_release(&b->renamed);
	free(b->db_path);
	free(b->context);
	free(b->ns);
	free(b->experiment);
	free(b->on_conflict);
	free(b->tracking_uri);
	free(b);
}

/* The in-cluster URI of the MLflow server `expt tracking deploy` put into the runs' namespace:
 * the only one there, else the one named "mlflow"; NULL when none (or the cluster cannot be
 * asked: launching reports that itself). Looked up once. */
static const char *deployed_tracking_uri(struct kb *b)
{
	struct expt_err e = EXPT_ERR_INIT;
	json_t *reply = NULL, *svc, *pick = NULL;
	char *sel, *esc, *path;
	const char *ns;
	size_t i;

	if (b->tracking_looked)
		return b->tracking_uri;
	b->tracking_looked = 1;
	if (expt_kb_connect(b, &e) || !(ns = expt_kb_namespace(b)))
		return NULL;
	sel = expt_xasprintf("app.kubernetes.io/managed-by=expt,%s=mlflow,%s=server",
			     EXPT_TRACKING_L_NAME, EXPT_TRACKING_L_COMPONENT);
	esc = expt_kube_escape(sel);
	path =
	    expt_xasprintf("/api/v1/namespaces/%s/services?labelSelector=%s", ns, esc ? esc : "");
	if (!expt_kube_request(b->k, "GET", path, NULL, &reply, NULL, &e)) {
		json_t *items = json_object_get(reply, "items");
		json_array_foreach(items, i, svc)
		{
			const char *name = json_string_value(
			    json_object_get(json_object_get(svc, "metadata"), "name"));
			if (json_array_size(items) == 1 || (name && !strcmp(name, "mlflow")))
				pick = svc;
		}
		if (pick)
			b->tracking_uri =
			    expt_kube_tracking_uri(json_string_value(json_object_get(
						       json_object_get(pick, "metadata"), "name")),
						   ns);
	}
	json_decref(reply);
	free(path);
	free(esc);
	free(sel);
	return b->tracking_uri;
}

static int kb_contract(void *state, const struct expt_run_rec *run, struct expt_contract *out,
		       struct expt_err *err)
{
	struct kb *b = state;

	(void)err;
	memset(out, 0, sizeof(*out));
	if (run) {
		out->output_dir = expt_xstrdup(EXPT_KUBE_OUTPUT_DIR);
		out->params_file = expt_xstrdup(EXPT_KUBE_PARAMS_FILE);
		/* Only for runs about to be launched (a dry run's probe has no id): a plan never
		 * contacts the cluster. */
		if (b->spec && !b->spec->tracking.uri && run->run_id && run->id)
			out->tracking_uri = expt_xstrdup(deployed_tracking_uri(b));
	}
	/* A pod cannot reach the store: libexpt writes its records on stdout, which the
	 * supervisor reads from the pod's log and feeds into the store. */
	expt_strv_copy(&out->io, &b->io);
	return 0;
}

const char *expt_kb_job_name(struct kb *b, const char *run_id)
{
	size_t k = strlen(run_id);

	for (size_t i = 0; i < b->renamed.n; i++)
		if (!strncmp(b->renamed.v[i], run_id, k) && b->renamed.v[i][k] == '=')
			return b->renamed.v[i] + k + 1;
	return run_id;
}

const char *expt_kb_rename(struct kb *b, const char *run_id)
{
	unsigned r;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
		r = (unsigned)expt_mono_ms() ^ (unsigned)getpid();
	if (fd >= 0)
		close(fd);
	/* At most 63 characters: the run id cut to make room for "-" and 5 hex digits. */
	expt_strv_pushf(&b->renamed, "%s=%.57s-%05x", run_id, run_id, r & 0xfffff);
	return expt_kb_job_name(b, run_id);
}

/* The Job for job (the caller's). */
int expt_kb_manifest(struct kb *b, const struct expt_job *job, json_t **out, struct expt_err *err)
{
	struct expt_kube_run r;

	if (!b->spec)
		return expt_err_set(err, EXPT_EBACKEND, "kubernetes: no spec to build a Job from");
	if (!b->spec->image)
		return expt_err_set(err, EXPT_EUSAGE,
				    "image: the kubernetes backend runs each run in an image; set "
				    "image: (or a build: section)");
	memset(&r, 0, sizeof(r));
	r.run_id = job->run_id;
	r.name = expt_kb_job_name(b, job->run_id);
	r.index = job->index;
	r.argv = &job->argv;
	r.env = &job->env;
	r.params_json = job->params_json;
	r.namespace_ = expt_kb_namespace(b);
	return expt_kube_job_manifest(b->spec, &r, out, err);
}

/* A ConfigMap holds at most 1 MiB in all; base64 (binaryData) takes 4/3 of the bytes. */
#define FILES_MAX (700 * 1024)

int expt_kb_files_configmap(struct kb *b, const char *run_id, json_t **out, struct expt_err *err)
{
	const struct expt_spec *spec = b->spec;
	json_t *data, *labels;
	char *name;
	size_t total = 0;
	char exp_label[80];

	*out = NULL;
	if (!spec || !spec->files.n)
		return 0;
	data = json_object();
	for (size_t i = 0; i < spec->files.n; i++) {
		const struct expt_kv *f = &spec->files.v[i];
		struct expt_buf text = EXPT_BUF_INIT;
		struct expt_err e = EXPT_ERR_INIT;
		char key[32],
		    *path = *f->value == '/'
				? expt_xstrdup(f->value)
				: expt_xasprintf("%s/%s", spec->dir ? spec->dir : ".", f->value);
		char *b64;
		int r = expt_read_file(path, &text, &e);
		free(path);
		if (r) {
			json_decref(data);
			expt_buf_release(&text);
			return expt_err_set(err, EXPT_EUSAGE, "files.%s: %s", f->key, e.msg);
		}
		total += text.len;
		if (total > FILES_MAX) {
			json_decref(data);
			expt_buf_release(&text);
			return expt_err_set(
			    err, EXPT_EUSAGE,
			    "files.%s: the files come to more than %d KiB, more than a "
			    "ConfigMap holds: ship big files with inputs: (a PVC, NFS) "
			    "or in the image",
			    f->key, FILES_MAX / 1024);
		}
		snprintf(key, sizeof(key), "f%zu", i);
		b64 = expt_base64_encode(text.buf, text.len, 0);
		json_object_set_new(data, key, json_string(b64));
		free(b64);
		expt_buf_release(&text);
	}
	expt_kube_experiment_label(spec->name, exp_label, sizeof(exp_label));
	labels = json_pack("{s:s, s:s, s:s}", EXPT_KUBE_L_MANAGED, "expt", EXPT_KUBE_L_EXPERIMENT,
			   exp_label, EXPT_KUBE_L_RUN, run_id);
	name = expt_kube_files_name(expt_kb_job_name(b, run_id));
	*out = json_pack("{s:s, s:s, s:{s:s, s:s, s:o}, s:o}", "apiVersion", "v1", "kind",
			 "ConfigMap", "metadata", "name", name, "namespace", expt_kb_namespace(b),
			 "labels", labels, "binaryData", data);
	free(name);
	return 0;
}

/* The Job; with files: a List of their ConfigMap and the Job, in the order they are made. */
static int kb_render(void *state, const struct expt_job *job, json_t **out, struct expt_err *err)
{
	json_t *files = NULL;
	int rc = expt_kb_manifest(state, job, out, err);

	if (!rc && (rc = expt_kb_files_configmap(state, job->run_id, &files, err))) {
		json_decref(*out);
		*out = NULL;
	}
	if (files)
		*out = json_pack("{s:s, s:s, s:[o, o]}", "apiVersion", "v1", "kind", "List",
				 "items", files, *out);
	return rc;
}

/* ---- validate: nothing is created unless every Job would be accepted ---- */

/* ---- the engine: one Job per attempt of the scheduler ---- */

static void live_add(struct kb *b, struct katt *t)
{
	EXPT_ALLOC_GROW(b->live, b->nlive + 1, b->caplive);
	b->live[b->nlive++] = t;
}

static void live_del(struct kb *b, struct katt *t)
{
	for (size_t i = 0; i < b->nlive; i++)
		if (b->live[i] == t) {
			b->live[i] = b->live[--b->nlive];
			return;
		}
}

/* The attempt of the Job named name, or (pods, by their run label) of run run_id. */
static struct katt *live_find(struct kb *b, const char *name, const char *run_id)
{
	for (size_t i = 0; i < b->nlive; i++)
		if ((name && !strcmp(b->live[i]->name, name)) ||
		    (run_id && !strcmp(b->live[i]->job->run_id, run_id)))
			return b->live[i];
	return NULL;
}

static int open_log(const char *dir, const char *name, int *fd, struct expt_err *err)
{
	char *p = expt_xasprintf("%s/%s", dir, name);

	*fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	free(p);
	return *fd < 0 ? expt_err_errno(err, EXPT_EBACKEND, "cannot write %s/%s", dir, name) : 0;
}

/* Best effort: a log file that cannot be written (disk full) loses lines, not the run. */
static void write_all(int fd, const char *p, size_t n)
{
	if (fd >= 0)
		(void)expt_write_all(fd, p, n);
}

static int delete_job(struct kb *b, const char *name, int now, struct expt_err *err)
{
	char *path = expt_xasprintf("%s/%s?propagationPolicy=Background%s", expt_kb_jobs_path(b),
				    name, now ? "&gracePeriodSeconds=0" : "");
	int rc = expt_kube_request(b->k, "DELETE", path, NULL, NULL, NULL, err);

	free(path);
	return rc == EXPT_ENOTFOUND ? 0 : rc;
}

/* on_conflict: replace: the old Job deleted (its pods with it), and gone. */
static int replace_job(struct kb *b, const char *name, struct expt_err *err)
{
	char *path = expt_xasprintf("%s/%s", expt_kb_jobs_path(b), name);
	int64_t until = expt_mono_ms() + GONE_WAIT_MS;
	int rc;

	if ((rc = delete_job(b, name, 0, err)))
		goto out;
	for (;;) {
		struct expt_err e = EXPT_ERR_INIT;
		int r = expt_kube_request(b->k, "GET", path, NULL, NULL, NULL, &e);
		if (r == EXPT_ENOTFOUND)
			break;
		if (expt_mono_ms() > until) {
			rc =
			    expt_err_set(err, EXPT_EBACKEND,
					 "the existing Job %s was deleted but is still there after "
					 "%d s",
					 name, GONE_WAIT_MS / 1000);
			break;
		}
		nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
	}
out:
	free(path);
	return rc;
}

/* Starting an attempt only queues its Job: the next wait creates every queued Job at once,
 * concurrently over the shared connections (a sweep of 1,000 is not 1,000 round trips in a
 * row). A Job that cannot be created ends its run as could-not-start. */
static int engine_start(void *eng, struct expt_sched *s, struct expt_job *job,
			struct expt_sched_attempt *sa, char *msg, size_t n)
{
	struct kb *b = eng;
	struct katt *t = expt_xcalloc(1, sizeof(*t));
	struct expt_err e = EXPT_ERR_INIT;

	(void)s;
	t->b = b;
	t->a = sa;
	t->job = job;
	t->out_fd = t->comb_fd = -1;
	snprintf(t->name, sizeof(t->name), "%s", expt_kb_job_name(b, job->run_id));
	sa->eng = t;
	sa->node = "";
	live_add(b, t);
	if (job->log_dir && (expt_mkdirs(job->log_dir, &e) ||
			     open_log(job->log_dir, "stdout.log", &t->out_fd, &e) ||
			     open_log(job->log_dir, "output.log", &t->comb_fd, &e)))
		goto fail;
	if (expt_kb_manifest(b, job, &t->body, &e) ||
	    expt_kb_files_configmap(b, job->run_id, &t->files, &e))
		goto fail;
	snprintf(sa->ref, sizeof(sa->ref), "%s", t->name); /* the Job's name */
	EXPT_ALLOC_GROW(b->queued, b->nqueued + 1, b->capqueued);
	b->queued[b->nqueued++] = t;
	return 0;
fail:
	snprintf(msg, n, "%s", e.msg);
	return -1;
}

/* t ends without having run: its Job could not be created (or it was stopped first). */
static void end_unstarted(struct katt *t, const char *why)
{
	memset(&t->o, 0, sizeof(t->o));
	t->o.phase = EXPT_OBS_EXITED;
	t->o.exit_code = -1;
	t->o.spawn_failed = 1;
	t->o.start_ms = t->o.end_ms = expt_now_ms();
	snprintf(t->o.message, sizeof(t->o.message), "%.*s", (int)sizeof(t->o.message) - 1, why);
	t->done = 1;
	t->drain_until = expt_mono_ms();
}

/* The files: ConfigMaps of the runs about to be created, first (their pods mount them). One
 * that cannot be made ends its run. Server-side apply: a leftover of an earlier try is taken
 * over. */
static void create_files(struct kb *b, struct katt **ready, size_t n)
{
	struct expt_kube_req *reqs = expt_xcalloc(n, sizeof(*reqs));
	char **paths = expt_xcalloc(n, sizeof(*paths));
	struct expt_err e = EXPT_ERR_INIT;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		char *name;
		if (!ready[i]->files)
			continue;
		name = expt_kube_files_name(ready[i]->name);
		paths[m] = expt_xasprintf(
		    "/api/v1/namespaces/%s/configmaps/%s?fieldManager=expt&force=true",
		    expt_kb_namespace(b), name);
		free(name);
		reqs[m].method = "APPLY";
		reqs[m].path = paths[m];
		reqs[m].body = ready[i]->files;
		m++;
	}
	if (m)
		expt_kube_request_many(b->k, reqs, m, CREATE_PARALLEL, &e);
	for (size_t i = 0, j = 0; i < n; i++) {
		if (!ready[i]->files)
			continue;
		if (reqs[j].rc) {
			char msg[1200];
			snprintf(msg, sizeof(msg),
				 "its files: (ConfigMap) could not be created: %s",
				 reqs[j].err.msg);
			json_decref(ready[i]->files);
			ready[i]->files = NULL;
			json_decref(ready[i]->body);
			ready[i]->body = NULL;
			end_unstarted(ready[i], msg);
		}
		json_decref(reqs[j].reply);
		expt_kube_status_release(&reqs[j].st);
		free(paths[j]);
		j++;
	}
	free(reqs);
	free(paths);
}

/* The files: ConfigMap goes with its Job (the garbage collector deletes it when the Job goes),
 * or now when the Job could not be created (job NULL). */
static void own_files(struct kb *b, struct katt *t, const json_t *job)
{
	struct expt_err e = EXPT_ERR_INIT;
	char *name = expt_kube_files_name(t->name);
	char *path =
	    expt_xasprintf("/api/v1/namespaces/%s/configmaps/%s", expt_kb_namespace(b), name);
	const char *uid = expt_kb_jstr(job, "metadata.uid");

	if (uid) {
		json_t *patch =
		    json_pack("{s:{s:[{s:s, s:s, s:s, s:s}]}}", "metadata", "ownerReferences",
			      "apiVersion", "batch/v1", "kind", "Job", "name", t->name, "uid", uid);
		expt_kube_request(b->k, "PATCH", path, patch, NULL, NULL, &e);
		json_decref(patch);
	} else {
		expt_kube_request(b->k, "DELETE", path, NULL, NULL, NULL, &e);
	}
	json_decref(t->files);
	t->files = NULL;
	free(name);
	free(path);
}

/* Creates the queued Jobs whose time has come. One the API server did not answer (it restarts,
 * the network blinks) stays queued and is tried again with a growing delay, for up to
 * CREATE_RETRY_MS: a restart of the control plane in the middle of a sweep loses no run. */
static void create_queued(struct kb *b)
{
	struct expt_kube_req *reqs = expt_xcalloc(b->nqueued, sizeof(*reqs));
	struct katt **ready = expt_xcalloc(b->nqueued, sizeof(*ready));
	struct expt_err e = EXPT_ERR_INIT;
	const char *path = expt_kb_jobs_path(b);
	int64_t now = expt_mono_ms();
	size_t n = 0, keep = 0;

	int held;
	size_t room = expt_kb_room(b, &held);

	for (size_t i = 0; i < b->nqueued; i++) {
		struct katt *t = b->queued[i];
		if (t->retry_at <= now && !room) /* kubernetes.max_in_flight: asked again later */
			t->retry_at = now + ROOM_RECHECK_MS;
		if (t->retry_at > now) {
			b->queued[keep++] = t;
			continue;
		}
		room--;
		ready[n] = t;
		reqs[n].method = "POST";
		reqs[n].path = path;
		reqs[n].body = t->body;
		reqs[n].want_reply = t->files != NULL; /* its uid owns the files' ConfigMap */
		n++;
	}
	b->nqueued = keep;
	if (n) {
		size_t k = 0;
		create_files(b, ready, n);
		for (size_t i = 0; i < n; i++)
			if (!ready[i]->done) { /* else its files could not be created */
				ready[k] = ready[i];
				reqs[k++] = reqs[i];
			}
		n = k;
	}
	if (n)
		expt_kube_request_many(b->k, reqs, n, CREATE_PARALLEL, &e);
	for (size_t i = 0; i < n; i++) {
		struct katt *t = ready[i];
		int r = reqs[i].rc;
		struct expt_err e2 = EXPT_ERR_INIT;
		char msg[1200];

		if (r == EXPT_ECONFLICT && b->on_conflict && !strcmp(b->on_conflict, "replace")) {
			r = replace_job(b, t->name, &e2);
			if (!r) {
				json_decref(reqs[i].reply);
				reqs[i].reply = NULL;
				r = expt_kube_request(b->k, "POST", path, t->body, &reqs[i].reply,
						      NULL, &e2);
			}
		} else if (r) {
			e2 = reqs[i].err;
		}
		if (r && !reqs[i].st.http && r != EXPT_ECONFLICT) {
			/* No answer at all: the API server is away. Again later. */
			if (!t->first_try)
				t->first_try = now;
			if (now - t->first_try < CREATE_RETRY_MS) {
				t->backoff = t->backoff ? t->backoff * 2 : 250;
				if (t->backoff > 5000)
					t->backoff = 5000;
				t->retry_at = now + t->backoff;
				b->queued[b->nqueued++] = t;
				json_decref(reqs[i].reply);
				expt_kube_status_release(&reqs[i].st);
				continue;
			}
		}
		if (r == EXPT_ECONFLICT) {
			snprintf(
			    msg, sizeof(msg),
			    "a Job named %s already exists in namespace %s (on_conflict: fail); "
			    "delete it (kubectl delete job %s) or set on_conflict: replace or "
			    "new-id",
			    t->name, expt_kb_namespace(b), t->name);
			end_unstarted(t, msg);
		} else if (r) {
			end_unstarted(t, e2.msg);
		} else {
			t->created = 1;
			t->created_at = now;
		}
		if (t->files)
			own_files(b, t, r ? NULL : reqs[i].reply);
		json_decref(t->body);
		t->body = NULL;
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
	}
	if (held)
		expt_kb_room_done(b);
	free(reqs);
	free(ready);
}

static void engine_signal(void *eng, struct expt_sched_attempt *sa, int hard)
{
	struct kb *b = eng;
	struct katt *t = sa->eng;
	struct expt_err e = EXPT_ERR_INIT;

	if (!t || t->done)
		return;
	if (!t->created) { /* still queued here: it never reaches the cluster */
		for (size_t i = 0; i < b->nqueued; i++)
			if (b->queued[i] == t) {
				b->queued[i] = b->queued[--b->nqueued];
				break;
			}
		json_decref(t->body);
		t->body = NULL;
		end_unstarted(t, "stopped before its Job was created");
		return;
	}
	delete_job(b, t->name, hard, &e);
}

static void engine_release(void *eng, struct expt_sched_attempt *sa)
{
	struct kb *b = eng;
	struct katt *t = sa->eng;

	if (!t)
		return;
	live_del(b, t);
	json_decref(t->body);
	json_decref(t->files);
	expt_kube_stream_close(t->log);
	json_decref(t->last_pod);
	if (t->out_fd >= 0)
		close(t->out_fd);
	if (t->comb_fd >= 0)
		close(t->comb_fd);
	free(t);
	sa->eng = NULL;
}

/* How the run ended, from its Job and its last pod. */
static void outcome(struct katt *t, const json_t *jobobj)
{
	expt_kb_outcome(jobobj, t->last_pod, t->npods, t->name, &t->o);
	t->o.final = 0; /* the scheduler says */
	t->o.start_ms = t->a->start_ms;
	t->o.end_ms = expt_now_ms();
}

/* A line of the pod's log: whole into the run's files, in pieces of EXPT_LINE_PIECE to the
 * scheduler (as every engine delivers long lines). */
static void deliver(struct katt *t, const char *line, size_t len)
{
	write_all(t->out_fd, line, len);
	write_all(t->out_fd, "\n", 1);
	write_all(t->comb_fd, line, len);
	write_all(t->comb_fd, "\n", 1);
	while (len > EXPT_LINE_PIECE) {
		expt_sched_line(t->b->sched, t->a, 1, line, EXPT_LINE_PIECE);
		line += EXPT_LINE_PIECE;
		len -= EXPT_LINE_PIECE;
	}
	expt_sched_line(t->b->sched, t->a, 1, line, len);
}

static void drain_log(struct katt *t)
{
	const char *line;
	size_t len;

	while (t->log && expt_kube_stream_line(t->log, &line, &len) == 1) {
		if (t->skip > 0) { /* a reopened stream starts again from the pod's first line */
			t->skip -= (int64_t)len + 1;
			continue;
		}
		t->pod_bytes += (int64_t)len + 1;
		deliver(t, line, len);
	}
}

static const char *pod_phase(const struct katt *t)
{
	const char *ph = t->last_pod ? expt_kb_jstr(t->last_pod, "status.phase") : NULL;

	return ph ? ph : "";
}

/* Opens the followed pod's log stream again after it broke (the API server restarted, the
 * connection dropped) while the pod still runs; what was delivered is skipped. */
static void reopen_log(struct katt *t)
{
	struct expt_err e = EXPT_ERR_INIT;
	char *path;

	drain_log(t);
	expt_kube_stream_close(t->log);
	t->log = NULL;
	t->skip = t->pod_bytes;
	path = expt_xasprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s&follow=true",
			      expt_kb_namespace(t->b), t->pod, EXPT_KUBE_CONTAINER);
	if (expt_kube_stream_open(t->b->k, path, &t->log, &e))
		t->log = NULL;
	free(path);
	t->reopen_at = expt_mono_ms() + 1000;
}

/* Once the run ended, when its stream did not end cleanly: what the pod printed after the
 * stream broke (or that it did not bring before the end) is read from the pod's whole log,
 * beyond what was delivered. */
static void catch_up_log(struct katt *t)
{
	struct expt_buf text = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	char *path;

	if (!t->pod[0])
		return;
	text.max = 256u << 20;
	path = expt_xasprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s",
			      expt_kb_namespace(t->b), t->pod, EXPT_KUBE_CONTAINER);
	if (!expt_kube_request_text(t->b->k, "GET", path, &text, NULL, &e) &&
	    (int64_t)text.len > t->pod_bytes) {
		const char *p = text.buf + t->pod_bytes, *end = text.buf + text.len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
			t->pod_bytes += (int64_t)len + 1;
			deliver(t, p, len);
			p += len + 1;
		}
	}
	free(path);
	expt_buf_release(&text);
}

/* The followed pod's stream ended cleanly (a reopened one resent the whole log): nothing it
 * printed can be missing. */
static int log_clean(struct katt *t)
{
	struct expt_err e = EXPT_ERR_INIT;
	long http = 0;
	int rc = -1;

	return t->log && expt_kube_stream_ended(t->log, &http, &rc, NULL, &e) && rc == 0 &&
	       http / 100 == 2;
}

static int log_ended(struct katt *t)
{
	return !t->log || expt_kube_stream_ended(t->log, NULL, NULL, NULL, NULL);
}

static void follow_pod(struct katt *t, const char *pod)
{
	struct kb *b = t->b;
	struct expt_err e = EXPT_ERR_INIT;
	char *path;

	if (t->log) {
		drain_log(t);
		expt_kube_stream_close(t->log);
		t->log = NULL;
	}
	snprintf(t->pod, sizeof(t->pod), "%s", pod);
	t->pod_bytes = t->skip = 0;
	if (t->job->log_dir)
		expt_kb_pod_begins(t->job->log_dir, pod);
	path = expt_xasprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s&follow=true",
			      expt_kb_namespace(b), pod, EXPT_KUBE_CONTAINER);
	if (expt_kube_stream_open(b->k, path, &t->log, &e))
		t->log = NULL;
	free(path);
}

static void on_pod(struct kb *b, const char *type, json_t *pod)
{
	const char *run;
	const char *name = expt_kb_jstr(pod, "metadata.name"),
		   *phase = expt_kb_jstr(pod, "status.phase");
	const char *wmsg = NULL, *wr;
	struct katt *t;

	/* label keys hold dots and slashes: looked up directly */
	run = json_string_value(
	    json_object_get(expt_kb_jget(pod, "metadata.labels"), EXPT_KUBE_L_RUN));
	t = live_find(b, NULL, run);
	if (!t || !name || t->done)
		return;
	if (strcmp(type, "DELETED")) {
		if (strcmp(t->pod, name) &&
		    (!t->last_pod || strcmp(expt_kb_jstr(t->last_pod, "metadata.name"), name)))
			t->npods++;
		json_decref(t->last_pod);
		t->last_pod = json_incref(pod);
	}
	if (phase && (!strcmp(phase, "Running") || !strcmp(phase, "Succeeded") ||
		      !strcmp(phase, "Failed"))) {
		t->running = 1;
		if (strcmp(t->pod, name))
			follow_pod(t, name);
	}
	wr = expt_kb_waiting(pod, &wmsg);
	if (expt_kb_stuck(wr)) {
		/* It will not start by itself: end it now, saying why, rather than wait forever. */
		struct expt_err e = EXPT_ERR_INIT;
		memset(&t->o, 0, sizeof(t->o));
		t->o.phase = EXPT_OBS_EXITED;
		t->o.exit_code = -1;
		t->o.spawn_failed = 1;
		t->o.attempt = t->npods;
		t->o.start_ms = t->a->start_ms;
		t->o.end_ms = expt_now_ms();
		snprintf(t->o.message, sizeof(t->o.message), "could not start: %s%s%s", wr,
			 wmsg ? ": " : "", wmsg ? wmsg : "");
		t->done = 1;
		t->drain_until = expt_mono_ms();
		expt_kb_save_evidence(b, t->name, t->job->log_dir); /* before its Job goes */
		t->evidence_saved = 1;
		delete_job(b, t->name, 1, &e);
	}
}

static void on_job(struct kb *b, const char *type, json_t *job)
{
	const char *name = expt_kb_jstr(job, "metadata.name");
	struct katt *t = live_find(b, name, NULL);

	if (!t || t->done)
		return;
	if (!strcmp(type, "DELETED")) {
		outcome(t, NULL);
	} else if (expt_kb_condition(job, "Complete") || expt_kb_condition(job, "Failed") ||
		   expt_kb_condition(job, "SuccessCriteriaMet")) {
		outcome(t, job);
	} else {
		return;
	}
	t->done = 1;
	t->drain_until = expt_mono_ms() + DRAIN_MS;
}

static int pump_watch(struct kb *b, struct expt_kube_watch *w, int pods, struct expt_err *err)
{
	const char *type;
	json_t *obj;
	int r;

	while ((r = expt_kube_watch_next(w, &type, &obj, err)) == 1) {
		if (pods)
			on_pod(b, type, obj);
		else
			on_job(b, type, obj);
		json_decref(obj);
	}
	return r < 0 || r > 1 ? r : 0;
}

/* kubernetes.start_timeout: a Job whose pod never ran by then fails with the reason, instead
 * of sitting pending unnoticed. */
static void check_start_timeout(struct kb *b, struct katt *t)
{
	int64_t limit = b->start_timeout_ms;
	struct expt_err e = EXPT_ERR_INIT;
	char why[700], msg[900], dur[32];

	if (limit <= 0 || t->done || !t->created || t->running ||
	    expt_mono_ms() - t->created_at < limit)
		return;
	expt_kb_why_not_started(b, t->name, t->last_pod, why, sizeof(why));
	expt_fmt_duration(limit, dur, sizeof(dur));
	snprintf(msg, sizeof(msg), "did not start within %s (kubernetes.start_timeout): %s", dur,
		 why);
	expt_kb_save_evidence(b, t->name, t->job->log_dir);
	t->evidence_saved = 1;
	delete_job(b, t->name, 1, &e);
	end_unstarted(t, msg);
	t->o.attempt = t->npods;
}

/* Tells the scheduler's events how a created Job stands: pending with why (asked again every
 * few seconds while it waits, told when it changes), then running on its node. */
static void report_state(struct kb *b, struct katt *t)
{
	struct expt_observed o;
	int64_t now = expt_mono_ms();

	if (t->done || !t->created || t->shown == 2)
		return;
	memset(&o, 0, sizeof(o));
	if (t->running) {
		o.phase = EXPT_OBS_RUNNING;
		if (t->last_pod && expt_kb_jstr(t->last_pod, "spec.nodeName"))
			snprintf(o.node, sizeof(o.node), "%s",
				 expt_kb_jstr(t->last_pod, "spec.nodeName"));
		t->shown = 2;
		expt_sched_state(b->sched, t->a, &o);
		return;
	}
	/* A pod gets a moment to be placed before the first word on why it is not. */
	if (now < t->why_at || now - t->created_at < 1000)
		return;
	t->why_at = now + 3000;
	o.phase = EXPT_OBS_PENDING;
	expt_kb_why_not_started(b, t->name, t->last_pod, o.message, sizeof(o.message));
	if (t->shown == 1 && !strcmp(o.message, t->why))
		return;
	snprintf(t->why, sizeof(t->why), "%s", o.message);
	t->shown = 1;
	expt_sched_state(b->sched, t->a, &o);
}

static int engine_wait(void *eng, struct expt_sched *s, int64_t ms, struct expt_err *err)
{
	struct kb *b = eng;
	int rc;

	(void)s;
	if (b->nqueued) {
		create_queued(b);
		if (ms > 50)
			ms = 50; /* what was created moves at once; a retry is due soon */
	}
	if ((rc = expt_kube_pump(b->k, (int)(ms > 200 ? 200 : ms), err)))
		return -rc;
	if ((rc = pump_watch(b, b->jobs_w, 0, err)) || (rc = pump_watch(b, b->pods_w, 1, err)))
		return rc < 0 ? rc : -rc;
	for (size_t i = 0; i < b->nlive; i++) {
		check_start_timeout(b, b->live[i]);
		report_state(b, b->live[i]);
	}
	for (size_t i = 0; i < b->nlive;) {
		struct katt *t = b->live[i];
		drain_log(t);
		if (!t->done && t->log && log_ended(t) && strcmp(pod_phase(t), "Succeeded") &&
		    strcmp(pod_phase(t), "Failed") && expt_mono_ms() >= t->reopen_at)
			reopen_log(t);
		if (t->done && (log_ended(t) || expt_mono_ms() >= t->drain_until)) {
			struct expt_observed o;
			drain_log(t);
			if (t->created && t->running && !log_clean(t))
				catch_up_log(t);
			if (t->created && !t->evidence_saved)
				expt_kb_save_evidence(b, t->name, t->job->log_dir);
			schedule_cleanup(b, t);
			o = t->o;
			expt_sched_ended(b->sched, t->a, &o); /* releases t: live shrinks */
			continue;
		}
		i++;
	}
	return 0;
}

static const struct expt_sched_engine engine = {engine_start, engine_signal, engine_wait,
						engine_release, EXPT_SCHED_REMOTE};

static int kb_submit(void *state, struct expt_job **jobs, size_t n,
		     const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		     void *payload, struct expt_err *err)
{
	struct kb *b = state;
	char *q = NULL, *podpath = NULL;
	const char *path;
	int rc;

	if (b->sched)
		return expt_err_set(err, EXPT_EBACKEND,
				    "kubernetes backend: one submit per handle");
	if ((rc = expt_kb_connect(b, err)))
		return rc;
	/* Watch first, create after: nothing that happens to a Job is missed. */
	path = expt_kb_jobs_path(b);
	podpath = expt_xasprintf("/api/v1/namespaces/%s/pods", expt_kb_namespace(b));
	q = expt_kb_selector(b, NULL);
	if ((rc = expt_kube_watch_open(b->k, path, q, &b->jobs_w, err)) ||
	    (rc = expt_kube_watch_open(b->k, podpath, q, &b->pods_w, err)))
		goto out;
	b->sched = expt_sched_new(jobs, n, opts, ev, payload, &engine, b);
out:
	free(podpath);
	free(q);
	return rc;
}

static int kb_watch(void *state, int64_t timeout_ms, struct expt_err *err)
{
	struct kb *b = state;

	return b->sched ? expt_sched_watch(b->sched, timeout_ms, err) : 1;
}

/* ---- runs not supervised here ---- */

static const char *ref_job(const struct expt_run_rec *run)
{
	return run->backend_ref && *run->backend_ref ? run->backend_ref : run->run_id;
}

/* cleanup: the Job (with its pods) goes after the spec's delay for its outcome: the TTL
 * controller does it (ttlSecondsAfterFinished, set now that the outcome is known); keep: no
 * TTL. The run's logs and evidence stay here. */
void expt_kb_cleanup(struct kb *b, const char *job, int failed)
{
	int64_t ms = failed ? b->cleanup_failed_ms : b->cleanup_succeeded_ms;
	struct expt_err e = EXPT_ERR_INIT;
	json_t *patch;
	char *path;

	if (ms < 0)
		return;
	patch = json_pack("{s:{s:I}}", "spec", "ttlSecondsAfterFinished",
			  (json_int_t)((ms + 999) / 1000));
	path = expt_xasprintf("%s/%s", expt_kb_jobs_path(b), job);
	expt_kube_request(b->k, "PATCH", path, patch, NULL, NULL, &e);
	free(path);
	json_decref(patch);
}

static void schedule_cleanup(struct kb *b, struct katt *t)
{
	if (t->created)
		expt_kb_cleanup(b, t->name,
				t->o.exit_code != 0 || t->o.oom || t->o.timed_out ||
				    t->o.spawn_failed);
}

static int kb_diagnose(void *state, const struct expt_run_rec *r, size_t nlines,
		       struct expt_diagnosis *d, struct expt_err *err)
{
	struct kb *b = state;
	int rc = expt_local_diagnose(state, r, nlines, d, err);

	if (rc)
		return rc;
	if (r->status == EXPT_RUN_RUNNING) {
		snprintf(d->cause, sizeof(d->cause), "still running as Job %s", ref_job(r));
		snprintf(d->hint, sizeof(d->hint), "follow it with 'expt logs -f %s'", r->run_id);
	}
	/* stdout.log holds the pod's one stream (Kubernetes merges stdout and stderr). */
	if (r->log_dir) {
		expt_strv_release(&d->stderr_tail);
		d->stderr_where[0] = '\0';
	}
	if (r->status != EXPT_RUN_QUEUED) {
		int active = r->status == EXPT_RUN_RUNNING || r->status == EXPT_RUN_PENDING;
		int found = expt_kb_collect_evidence(b, ref_job(r), r->run_id, active, d);
		char *path = r->log_dir ? expt_kb_evidence_path(r->log_dir) : NULL;
		struct expt_strv saved = EXPT_STRV_INIT;
		/* The cluster forgot (cleanup, or by hand) or cannot be asked: what was saved. */
		if (found <= 0 && path)
			expt_tail_lines(path, 200, &saved);
		if (found <= 0 && saved.n) {
			expt_strv_pushf(
			    &d->evidence, "job: %s %s; saved when the run ended:", ref_job(r),
			    found ? "cannot be asked now" : "is no longer in the cluster");
			for (size_t i = 0; i < saved.n; i++)
				expt_strv_push(&d->evidence, saved.v[i]);
		} else if (!found) {
			expt_strv_pushf(&d->evidence, "job: %s is no longer in namespace %s",
					ref_job(r), expt_kb_namespace(b));
		}
		expt_strv_release(&saved);
		free(path);
	}
	return 0;
}

static int kb_stop(void *state, const struct expt_run_rec *run, int64_t grace_ms,
		   struct expt_err *err)
{
	struct kb *b = state;
	int rc;

	(void)grace_ms;
	if (b->sched && expt_sched_stop_job(b->sched, run->run_id))
		return 0;
	/* Queued in another expt process: that supervisor sees the stop in the store. */
	if (run->status != EXPT_RUN_RUNNING && run->status != EXPT_RUN_PENDING)
		return 0;
	if ((rc = expt_kb_connect(b, err)))
		return rc;
	return delete_job(b, ref_job(run), 0, err);
}

static int kb_remove(void *state, const struct expt_run_rec *run, struct expt_err *err)
{
	struct kb *b = state;
	struct expt_err e = EXPT_ERR_INIT;

	/* The Job and its pods go with the run; a cluster that cannot be reached keeps them
	 * (said in docs), the run's files here go anyway. */
	if (run->backend_ref && !expt_kb_connect(b, &e))
		delete_job(b, ref_job(run), 0, &e);
	return expt_local_remove(state, run, err);
}

/* expt run -d: lets go of the runs once every Job exists (and every one that could not be
 * created was reported): the cluster runs, retries and times them out without expt, and read
 * commands ask it how they go on (kube/adopt.c). */
static int kb_detach(void *state, struct expt_err *err)
{
	struct kb *b = state;

	(void)err;
	if (!b->sched)
		return 1;
	if (b->nqueued || !expt_sched_all_started(b->sched))
		return 0;
	for (size_t i = 0; i < b->nlive; i++)
		if (b->live[i]->done)
			return 0; /* its end is reported first */
	expt_sched_let_go(b->sched);
	return 1;
}

const struct expt_backend_ops expt_backend_kubernetes = {
    .name = "kubernetes",
    .caps = EXPT_BACKEND_MANIFESTS | EXPT_BACKEND_DETACHED | EXPT_BACKEND_ENGINE_LIMITS,
    .open = kb_open,
    .close = kb_close,
    .contract = kb_contract,
    .render = kb_render,
    .validate = expt_kb_validate,
    .submit = kb_submit,
    .watch = kb_watch,
    .poll = expt_kb_poll,
    .logs_open = expt_kb_logs_open,
    .logs_read = expt_kb_logs_read,
    .logs_close = expt_kb_logs_close,
    .diagnose = kb_diagnose,
    .stop = kb_stop,
    .remove = kb_remove,
    .detach = kb_detach,
};
