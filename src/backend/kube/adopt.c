/* Runs no expt process follows: `expt run -d` left them to the cluster, or their supervisor
 * went. What ps, logs, show and debug need of them is read from the cluster when asked: the
 * Job's state and end (the same outcome the supervisor derives), the run's log files completed
 * from its pods' logs (so that metrics reach the store and logs still read after the cluster
 * forgot), the evidence saved and the spec's cleanup applied once it ended. */
#include "kb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../local_impl.h"
#include "../../util/util.h"
#include "manifest.h"

#define LOG_MAX (256u << 20) /* a pod's log read back at most this big */

/* ---- pods.json: where each pod's output begins in the run's log files ---- */

static int64_t file_size(const char *dir, const char *name)
{
	char *p = expt_xasprintf("%s/%s", dir, name);
	struct stat st;
	int64_t n = stat(p, &st) ? 0 : (int64_t)st.st_size;

	free(p);
	return n;
}

/* An exclusive lock on the run's pods.json (two expt processes completing the same files would
 * write a line twice); -1 when it cannot be had. */
static int lock_pods(const char *log_dir)
{
	char *p = expt_xasprintf("%s/pods.lock", log_dir);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

	free(p);
	if (fd >= 0 && flock(fd, LOCK_EX)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static json_t *load_pods(const char *log_dir)
{
	char *p = expt_xasprintf("%s/pods.json", log_dir);
	json_t *j = json_load_file(p, 0, NULL);

	free(p);
	if (!json_is_array(json_object_get(j, "pods"))) {
		json_decref(j);
		j = json_pack("{s:[]}", "pods");
	}
	return j;
}

static void save_pods(const char *log_dir, const json_t *j)
{
	char *p = expt_xasprintf("%s/pods.json", log_dir);
	char *tmp = expt_xasprintf("%s.tmp", p);

	if (!json_dump_file(j, tmp, JSON_COMPACT))
		rename(tmp, p);
	free(p);
	free(tmp);
}

static json_t *pod_entry(json_t *pods, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(pods, "pods"), i, e)
	{
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && !strcmp(n, name))
			return e;
	}
	return NULL;
}

/* Records that pod's output begins where the log files end now (once per pod). */
static json_t *begin_entry(const char *log_dir, json_t *pods, const char *pod)
{
	json_t *e = pod_entry(pods, pod);

	if (e)
		return e;
	e = json_pack("{s:s, s:I, s:I, s:b}", "name", pod, "out",
		      (json_int_t)file_size(log_dir, "stdout.log"), "comb",
		      (json_int_t)file_size(log_dir, "output.log"), "done", 0);
	json_array_append_new(json_object_get(pods, "pods"), e);
	return e;
}

void expt_kb_pod_begins(const char *log_dir, const char *pod)
{
	int fd = lock_pods(log_dir);
	json_t *pods = load_pods(log_dir);

	begin_entry(log_dir, pods, pod);
	save_pods(log_dir, pods);
	json_decref(pods);
	if (fd >= 0)
		close(fd);
}

/* Appends to dir/name what data holds beyond what the file has after base. */
static void complete_file(const char *dir, const char *name, int64_t base, const char *data,
			  size_t len)
{
	int64_t have = file_size(dir, name) - base;
	char *p;
	int fd;

	if (have < 0)
		have = 0;
	if ((int64_t)len <= have)
		return;
	p = expt_xasprintf("%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	free(p);
	if (fd < 0)
		return;
	(void)expt_write_all(fd, data + have, len - (size_t)have);
	close(fd);
}

/* ---- the run's pods ---- */

static int older(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	const char *tx = expt_kb_jstr(x, "metadata.creationTimestamp"),
		   *ty = expt_kb_jstr(y, "metadata.creationTimestamp");
	int c = strcmp(tx ? tx : "", ty ? ty : "");

	if (c)
		return c;
	tx = expt_kb_jstr(x, "metadata.name");
	ty = expt_kb_jstr(y, "metadata.name");
	return strcmp(tx ? tx : "", ty ? ty : "");
}

/* The run's pods, oldest first (borrowed from *list, which the caller json_decrefs). */
static int run_pods(struct kb *b, const char *run_id, json_t **list, json_t ***v, size_t *n,
		    struct expt_err *err)
{
	char *q = expt_kb_selector(b, run_id);
	char *path = expt_xasprintf("/api/v1/namespaces/%s/pods?%s", expt_kb_namespace(b), q);
	json_t *items, *p;
	size_t i;
	int rc = expt_kube_request(b->k, "GET", path, NULL, list, NULL, err);

	free(q);
	free(path);
	*v = NULL;
	*n = 0;
	if (rc)
		return rc;
	items = json_object_get(*list, "items");
	*v = expt_xcalloc(json_array_size(items) + 1, sizeof(**v));
	json_array_foreach(items, i, p)(*v)[(*n)++] = p;
	qsort(*v, *n, sizeof(**v), older);
	return 0;
}

static int pod_ended(const json_t *pod)
{
	const char *ph = expt_kb_jstr(pod, "status.phase");

	return ph && (!strcmp(ph, "Succeeded") || !strcmp(ph, "Failed"));
}

static int pod_ran(const json_t *pod)
{
	const char *ph = expt_kb_jstr(pod, "status.phase");

	return pod_ended(pod) || (ph && !strcmp(ph, "Running"));
}

/* Completes the run's log files from its pods' logs, oldest pod first: what each pod printed
 * beyond what the files already hold from it (a supervisor that followed it part of the way
 * recorded where it began). A running pod's last partial line waits for its newline. */
static void harvest(struct kb *b, const char *log_dir, json_t **pods, size_t npods)
{
	struct expt_err me = EXPT_ERR_INIT;
	json_t *rec;
	int fd;

	if (!log_dir || expt_mkdirs(log_dir, &me) || (fd = lock_pods(log_dir)) < 0)
		return;
	rec = load_pods(log_dir);
	for (size_t i = 0; i < npods; i++) {
		const char *name = expt_kb_jstr(pods[i], "metadata.name");
		json_t *e = name ? pod_entry(rec, name) : NULL;
		struct expt_buf text = EXPT_BUF_INIT;
		struct expt_err err = EXPT_ERR_INIT;
		int ended = pod_ended(pods[i]);
		size_t len;
		char *path;

		if (!name || (e && json_is_true(json_object_get(e, "done"))))
			continue;
		if (!pod_ran(pods[i]))
			break; /* nothing printed yet, and nothing after it either */
		text.max = LOG_MAX;
		path = expt_xasprintf("/api/v1/namespaces/%s/pods/%s/log?container=%s",
				      expt_kb_namespace(b), name, EXPT_KUBE_CONTAINER);
		if (expt_kube_request_text(b->k, "GET", path, &text, NULL, &err)) {
			free(path);
			expt_buf_release(&text);
			break; /* later pods wait for this one's output */
		}
		free(path);
		e = begin_entry(log_dir, rec, name);
		len = text.len;
		if (!ended)
			while (len && text.buf[len - 1] != '\n')
				len--;
		else if (len && text.buf[len - 1] != '\n')
			len += !expt_buf_add(&text, "\n", 1);
		complete_file(log_dir, "stdout.log", json_integer_value(json_object_get(e, "out")),
			      text.buf, len);
		complete_file(log_dir, "output.log", json_integer_value(json_object_get(e, "comb")),
			      text.buf, len);
		if (ended)
			json_object_set_new(e, "done", json_true());
		expt_buf_release(&text);
	}
	save_pods(log_dir, rec);
	json_decref(rec);
	close(fd);
}

/* RFC 3339 from the API server ("2026-11-29T22:46:54Z") as ms since the epoch; 0 unreadable. */
static int64_t api_time_ms(const char *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!t || !strptime(t, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm) * 1000;
}

/* ---- poll ---- */

/* A run that ended in the cluster with nobody following it: the evidence kept and the spec's
 * cleanup applied, as the supervisor does when it sees the end. */
static void settle(struct kb *b, const struct expt_run_rec *r, const char *job,
		   const struct expt_observed *o)
{
	if (r->log_dir)
		expt_kb_save_evidence(b, job, r->log_dir);
	expt_kb_cleanup(b, job, o->exit_code != 0 || o->oom || o->timed_out || o->spawn_failed);
}

static void observe(struct kb *b, const struct expt_run_rec *r, struct expt_observed *o)
{
	const char *name = r->backend_ref && *r->backend_ref ? r->backend_ref : r->run_id;
	struct expt_err e = EXPT_ERR_INIT;
	json_t *job = NULL, *list = NULL, **pods = NULL, *last;
	size_t npods = 0;
	char *path = expt_xasprintf("%s/%s", expt_kb_jobs_path(b), name);
	int rc = expt_kube_request(b->k, "GET", path, NULL, &job, NULL, &e);

	free(path);
	if (rc == EXPT_ENOTFOUND && r->status != EXPT_RUN_QUEUED) {
		o->phase = EXPT_OBS_GONE;
		snprintf(o->message, sizeof(o->message), "its Job %s is gone from namespace %s",
			 name, expt_kb_namespace(b));
	}
	if (rc || run_pods(b, r->run_id, &list, &pods, &npods, &e))
		goto out;
	last = npods ? pods[npods - 1] : NULL;
	harvest(b, r->log_dir, pods, npods);
	if (expt_kb_condition(job, "Complete") || expt_kb_condition(job, "Failed") ||
	    expt_kb_condition(job, "SuccessCriteriaMet")) {
		json_t *c = expt_kb_condition(job, "Failed");
		expt_kb_outcome(job, last, (int)npods, name, o);
		o->start_ms = api_time_ms(expt_kb_jstr(job, "status.startTime"));
		o->end_ms = api_time_ms(c ? expt_kb_jstr(c, "lastTransitionTime")
					  : expt_kb_jstr(job, "status.completionTime"));
		settle(b, r, name, o);
		goto out;
	}
	o->attempt = npods > 0 ? (int)npods : r->attempt;
	if (last && expt_kb_jstr(last, "spec.nodeName"))
		snprintf(o->node, sizeof(o->node), "%s", expt_kb_jstr(last, "spec.nodeName"));
	if (last && pod_ran(last)) {
		o->phase = EXPT_OBS_RUNNING;
		goto out;
	}
	{
		/* Not running: stuck for good, past kubernetes.start_timeout, or waiting (why). */
		const char *wm = NULL, *wr = last ? expt_kb_waiting(last, &wm) : NULL;
		int64_t since = api_time_ms(expt_kb_jstr(job, "metadata.creationTimestamp"));
		char why[700];
		expt_kb_why_not_started(b, name, last, why, sizeof(why));
		o->phase = EXPT_OBS_PENDING;
		snprintf(o->message, sizeof(o->message), "%.500s", why);
		if (expt_kb_stuck(wr) || (b->start_timeout_ms > 0 && since > 0 &&
					  expt_now_ms() - since > b->start_timeout_ms)) {
			char dur[32];
			o->phase = EXPT_OBS_EXITED;
			o->final = 1;
			o->spawn_failed = 1;
			o->exit_code = -1;
			o->start_ms = since;
			o->end_ms = expt_now_ms();
			expt_fmt_duration(b->start_timeout_ms, dur, sizeof(dur));
			if (expt_kb_stuck(wr))
				snprintf(o->message, sizeof(o->message), "could not start: %.480s",
					 why);
			else
				snprintf(o->message, sizeof(o->message),
					 "did not start within %s (kubernetes.start_timeout): "
					 "%.400s",
					 dur, why);
			if (r->log_dir)
				expt_kb_save_evidence(b, name, r->log_dir);
			path = expt_xasprintf("%s/%s?propagationPolicy=Background",
					      expt_kb_jobs_path(b), name);
			expt_kube_request(b->k, "DELETE", path, NULL, NULL, NULL, &e);
			free(path);
		}
	}
out:
	free(pods);
	json_decref(list);
	json_decref(job);
}

int expt_kb_poll(void *state, const struct expt_run_rec *runs, size_t n, struct expt_observed *out,
		 struct expt_err *err)
{
	struct kb *b = state;
	int reach = -1;

	(void)err;
	for (size_t i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].exit_code = -1;
		out[i].attempt = runs[i].attempt;
		if (expt_run_status_done(runs[i].status))
			continue;
		if (reach < 0) {
			struct expt_err e = EXPT_ERR_INIT;
			reach = expt_kb_connect(b, &e) ? 0 : 1;
		}
		if (reach)
			observe(b, &runs[i], &out[i]);
		/* else UNKNOWN: the cluster cannot be asked now */
	}
	return 0;
}

/* ---- logs: local's over the run's files, completed from the pods while nobody follows ---- */

struct klogs {
	void *local;
	struct kb *b;
	char *run_id, *log_dir;
	int64_t next;
};

static void refresh(struct klogs *l)
{
	struct expt_err e = EXPT_ERR_INIT;
	json_t *list = NULL, **pods = NULL;
	size_t n = 0;

	if (!run_pods(l->b, l->run_id, &list, &pods, &n, &e))
		harvest(l->b, l->log_dir, pods, n);
	free(pods);
	json_decref(list);
	l->next = expt_mono_ms() + 1000;
}

int expt_kb_logs_open(void *state, const struct expt_run_rec *run, const struct expt_logs_opts *o,
		      void **stream, struct expt_err *err)
{
	struct kb *b = state;
	struct klogs *l = expt_xcalloc(1, sizeof(*l));
	struct expt_err e = EXPT_ERR_INIT;
	int rc;

	if (!expt_run_status_done(run->status) && run->status != EXPT_RUN_QUEUED &&
	    run->supervisor_pid <= 0 && run->log_dir && !expt_kb_connect(b, &e)) {
		l->b = b;
		l->run_id = expt_xstrdup(run->run_id);
		l->log_dir = expt_xstrdup(run->log_dir);
		refresh(l);
	}
	if ((rc = expt_local_logs_open(state, run, o, &l->local, err))) {
		expt_kb_logs_close(l);
		return rc;
	}
	*stream = l;
	return 0;
}

int expt_kb_logs_read(void *stream, int run_ended, expt_line_fn fn, void *payload, int *ended,
		      struct expt_err *err)
{
	struct klogs *l = stream;

	if (l->b && (run_ended || expt_mono_ms() >= l->next))
		refresh(l);
	if (run_ended)
		l->b = NULL; /* what the pods printed is in the files now */
	return expt_local_logs_read(l->local, run_ended, fn, payload, ended, err);
}

void expt_kb_logs_close(void *stream)
{
	struct klogs *l = stream;

	if (!l)
		return;
	if (l->local)
		expt_local_logs_close(l->local);
	free(l->run_id);
	free(l->log_dir);
	free(l);
}
