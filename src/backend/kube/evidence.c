/* What the cluster knows of a run (its Job's conditions, its pods' states, their events), for
 * expt debug, and saved beside the run's logs when it ends so that debug still explains it
 * after the cluster forgot. */
#include "kb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"

/* What the cluster knows of the run's Job and pods (conditions, states, events) as evidence
 * lines; for an active run also why it is pending. Returns 1 when the Job was found, 0 when it
 * is gone, -1 when the cluster could not be asked. */
int expt_kb_collect_evidence(struct kb *b, const char *jobname, const char *run_id, int active,
			     struct expt_diagnosis *d)
{
	struct expt_err e = EXPT_ERR_INIT;
	json_t *pods = NULL, *pod, *events = NULL, *ev, *job = NULL, *c;
	char *path, *q;
	size_t i;
	int found = -1;

	if (expt_kb_connect(b, &e))
		return -1;
	path = expt_xasprintf("%s/%s", expt_kb_jobs_path(b), jobname);
	if (!expt_kube_request(b->k, "GET", path, NULL, &job, NULL, &e)) {
		found = 1;
		json_array_foreach(expt_kb_jget(job, "status.conditions"), i, c)
		    expt_strv_pushf(&d->evidence, "job condition: %s=%s %s %s",
				    expt_kb_jstr(c, "type") ? expt_kb_jstr(c, "type") : "?",
				    expt_kb_jstr(c, "status") ? expt_kb_jstr(c, "status") : "?",
				    expt_kb_jstr(c, "reason") ? expt_kb_jstr(c, "reason") : "",
				    expt_kb_jstr(c, "message") ? expt_kb_jstr(c, "message") : "");
	} else if (e.code == EXPT_ENOTFOUND) {
		found = 0;
	}
	free(path);
	if (found < 0)
		return -1;
	q = expt_kb_selector(b, run_id);
	path = expt_xasprintf("/api/v1/namespaces/%s/pods?%s", expt_kb_namespace(b), q);
	free(q);
	expt_err_clear(&e);
	if (!expt_kube_request(b->k, "GET", path, NULL, &pods, NULL, &e)) {
		json_array_foreach(json_object_get(pods, "items"), i, pod)
		{
			const char *pn = expt_kb_jstr(pod, "metadata.name"), *wm = NULL, *wr;
			json_t *tm = expt_kb_terminated(pod), *pc;
			size_t j;
			expt_strv_pushf(
			    &d->evidence, "pod %s: phase %s%s%s", pn,
			    expt_kb_jstr(pod, "status.phase") ? expt_kb_jstr(pod, "status.phase")
							      : "?",
			    expt_kb_jstr(pod, "spec.nodeName") ? " on " : "",
			    expt_kb_jstr(pod, "spec.nodeName") ? expt_kb_jstr(pod, "spec.nodeName")
							       : "");
			json_array_foreach(expt_kb_jget(pod, "status.conditions"), j, pc)
			{
				const char *st = expt_kb_jstr(pc, "status");
				if (st && !strcmp(st, "False") && expt_kb_jstr(pc, "reason"))
					expt_strv_pushf(&d->evidence, "pod %s: %s=False %s: %s", pn,
							expt_kb_jstr(pc, "type"),
							expt_kb_jstr(pc, "reason"),
							expt_kb_jstr(pc, "message")
							    ? expt_kb_jstr(pc, "message")
							    : "");
			}
			if ((wr = expt_kb_waiting(pod, &wm)))
				expt_strv_pushf(&d->evidence, "pod %s: waiting: %s%s%s", pn, wr,
						wm ? ": " : "", wm ? wm : "");
			if (expt_kb_restarts(pod) > 0)
				expt_strv_pushf(&d->evidence,
						"pod %s: restarted %d times in place "
						"(restartPolicy OnFailure)",
						pn, expt_kb_restarts(pod));
			if (tm)
				expt_strv_pushf(
				    &d->evidence, "pod %s: terminated: exit code %lld%s%s", pn,
				    (long long)json_integer_value(json_object_get(tm, "exitCode")),
				    expt_kb_jstr(tm, "reason") ? ", reason " : "",
				    expt_kb_jstr(tm, "reason") ? expt_kb_jstr(tm, "reason") : "");
			/* Events: the scheduler's and the kubelet's account. */
			events = expt_kb_events(b, "Pod", pn);
			json_array_foreach(json_object_get(events, "items"), j, ev) expt_strv_pushf(
			    &d->evidence, "event %s %s: %s",
			    expt_kb_jstr(ev, "type") ? expt_kb_jstr(ev, "type") : "",
			    expt_kb_jstr(ev, "reason") ? expt_kb_jstr(ev, "reason") : "",
			    expt_kb_jstr(ev, "message") ? expt_kb_jstr(ev, "message") : "");
			json_decref(events);
			events = NULL;
			if (active) {
				const char *wr2, *wm2 = NULL;
				json_t *sched = NULL;
				json_array_foreach(expt_kb_jget(pod, "status.conditions"), j, sched)
				{
					const char *reason = expt_kb_jstr(sched, "reason");
					if (reason && !strcmp(reason, "Unschedulable")) {
						snprintf(d->cause, sizeof(d->cause),
							 "pending: the cluster cannot place it: %s",
							 expt_kb_jstr(sched, "message")
							     ? expt_kb_jstr(sched, "message")
							     : "");
						snprintf(d->hint, sizeof(d->hint),
							 "lower resources:, or change "
							 "kubernetes.node_selector / tolerations");
					}
				}
				if ((wr2 = expt_kb_waiting(pod, &wm2)))
					snprintf(d->cause, sizeof(d->cause), "pending: %s%s%s", wr2,
						 wm2 ? ": " : "", wm2 ? wm2 : "");
			}
		}
	}
	free(path);
	json_decref(pods);
	json_decref(job);
	return found;
}

char *expt_kb_evidence_path(const char *log_dir)
{
	return expt_xasprintf("%s/evidence.txt", log_dir);
}

/* At the end of a run, before anything deletes its Job: what the cluster knew, beside its
 * logs, for `expt debug` once the cluster has forgotten. */
void expt_kb_save_evidence(struct kb *b, const char *job, const char *log_dir)
{
	struct expt_diagnosis d;
	struct expt_buf buf = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	char *path;

	if (!log_dir)
		return;
	memset(&d, 0, sizeof(d));
	if (expt_kb_collect_evidence(b, job, job, 0, &d) >= 0 && d.evidence.n) {
		for (size_t i = 0; i < d.evidence.n; i++)
			expt_buf_addf(&buf, "%s\n", d.evidence.v[i]);
		path = expt_kb_evidence_path(log_dir);
		expt_write_file(path, buf.buf, buf.len, &e);
		free(path);
	}
	expt_buf_release(&buf);
	expt_diagnosis_release(&d);
}
