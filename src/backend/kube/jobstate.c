/* What a Job's and its pods' JSON say about a run (conditions, container states, restarts,
 * how it ended, why it waits): shared by the engine (kubernetes.c), what later expt processes
 * read of unfollowed runs (adopt.c) and debug's evidence (evidence.c). */
#include "kb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../util/util.h"

/* The value at a dotted path ("status.phase"); NULL when any part is missing. Keys holding dots
 * (labels) are looked up with json_object_get directly. */
json_t *expt_kb_jget(const json_t *o, const char *path)
{
	char key[128];
	const char *dot;

	while (o && (dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return o ? json_object_get(o, path) : NULL;
}

const char *expt_kb_jstr(const json_t *o, const char *path)
{
	return json_string_value(expt_kb_jget(o, path));
}

json_t *expt_kb_condition(const json_t *obj, const char *type)
{
	json_t *c;
	size_t i;

	json_array_foreach(expt_kb_jget(obj, "status.conditions"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *st = json_string_value(json_object_get(c, "status"));
		if (t && st && !strcmp(t, type) && !strcmp(st, "True"))
			return c;
	}
	return NULL;
}

/* The container's terminated state in a pod: state, else lastState (after a restart). */
json_t *expt_kb_terminated(const json_t *pod)
{
	json_t *cs;
	size_t i;

	json_array_foreach(expt_kb_jget(pod, "status.containerStatuses"), i, cs)
	{
		json_t *tm = expt_kb_jget(cs, "state.terminated");
		if (!tm)
			tm = expt_kb_jget(cs, "lastState.terminated");
		if (tm)
			return tm;
	}
	return NULL;
}

/* The waiting reason of the pod's container ("ImagePullBackOff"...) and its message. */
const char *expt_kb_waiting(const json_t *pod, const char **message)
{
	json_t *cs;
	size_t i;

	json_array_foreach(expt_kb_jget(pod, "status.containerStatuses"), i, cs)
	{
		const char *r = expt_kb_jstr(cs, "state.waiting.reason");
		if (r) {
			*message = expt_kb_jstr(cs, "state.waiting.message");
			return r;
		}
	}
	return NULL;
}

int expt_kb_restarts(const json_t *pod)
{
	json_t *cs;
	size_t i;
	int n = 0;

	json_array_foreach(expt_kb_jget(pod, "status.containerStatuses"), i, cs) n +=
	    (int)json_integer_value(json_object_get(cs, "restartCount"));
	return n;
}

/* Reasons that mean the pod will not start without someone changing something. */
int expt_kb_stuck(const char *reason)
{
	static const char *const r[] = {"ImagePullBackOff", "InvalidImageName",
					"CreateContainerConfigError", "ErrImageNeverPull"};

	for (size_t i = 0; reason && i < sizeof(r) / sizeof(r[0]); i++)
		if (!strcmp(reason, r[i]))
			return 1;
	return 0;
}

void expt_kb_outcome(const json_t *jobobj, const json_t *last_pod, int npods, const char *name,
		     struct expt_observed *o)
{
	json_t *c, *tm = last_pod ? expt_kb_terminated(last_pod) : NULL;
	const char *reason;

	memset(o, 0, sizeof(*o));
	o->phase = EXPT_OBS_EXITED;
	o->exit_code = -1;
	o->final = 1;
	/* Each pod is an attempt, and so is each restart in place (CrashLoopBackOff). */
	o->attempt = (npods > 0 ? npods : 1) + (last_pod ? expt_kb_restarts(last_pod) : 0);
	if (last_pod && expt_kb_jstr(last_pod, "spec.nodeName"))
		snprintf(o->node, sizeof(o->node), "%s", expt_kb_jstr(last_pod, "spec.nodeName"));
	if (last_pod && expt_kb_jstr(last_pod, "status.reason") &&
	    !strcmp(expt_kb_jstr(last_pod, "status.reason"), "Evicted"))
		snprintf(o->message, sizeof(o->message), "evicted from its node: %s",
			 expt_kb_jstr(last_pod, "status.message")
			     ? expt_kb_jstr(last_pod, "status.message")
			     : "");
	else if (tm) {
		json_int_t code = json_integer_value(json_object_get(tm, "exitCode"));
		const char *r = json_string_value(json_object_get(tm, "reason"));
		o->exit_code = (int)code;
		o->signal = (int)json_integer_value(json_object_get(tm, "signal"));
		o->oom = r && !strcmp(r, "OOMKilled");
		if (o->oom)
			snprintf(o->message, sizeof(o->message),
				 "OOMKilled: out of memory (exit code %d)", o->exit_code);
		else if (code)
			snprintf(o->message, sizeof(o->message), "exited with code %d%s%s%s",
				 o->exit_code, r ? " (" : "", r ? r : "", r ? ")" : "");
		if (code && expt_kb_restarts(last_pod) > 0) {
			size_t len = strlen(o->message);
			snprintf(o->message + len, sizeof(o->message) - len,
				 ", after %d restarts in place (CrashLoopBackOff)",
				 expt_kb_restarts(last_pod));
		}
	}
	if (!jobobj) {
		if (!tm)
			snprintf(o->message, sizeof(o->message),
				 "the Job %s was deleted before it ended", name);
		return;
	}
	if (expt_kb_condition(jobobj, "Complete") ||
	    expt_kb_condition(jobobj, "SuccessCriteriaMet")) {
		o->exit_code = 0;
		o->message[0] = '\0';
		return;
	}
	c = expt_kb_condition(jobobj, "Failed");
	if (!c)
		c = expt_kb_condition(jobobj, "FailureTarget");
	reason = c ? json_string_value(json_object_get(c, "reason")) : NULL;
	if (reason && !strcmp(reason, "DeadlineExceeded")) {
		char dur[32];
		o->timed_out = 1;
		expt_fmt_duration(
		    json_integer_value(expt_kb_jget(jobobj, "spec.activeDeadlineSeconds")) * 1000,
		    dur, sizeof(dur));
		snprintf(o->message, sizeof(o->message),
			 "timed out after %s (the Job's activeDeadlineSeconds)", dur);
	}
	if (o->exit_code == 0)
		o->exit_code = -1; /* failed, whatever the last pod said */
	if (!o->message[0])
		snprintf(o->message, sizeof(o->message), "the Job failed%s%s%s%s",
			 reason ? ": " : "", reason ? reason : "",
			 c && expt_kb_jstr(c, "message") ? ": " : "",
			 c && expt_kb_jstr(c, "message") ? expt_kb_jstr(c, "message") : "");
}

/* The events about object kind/name ({"items": [...]}, the caller's; NULL when the cluster
 * cannot say). */
json_t *expt_kb_events(struct kb *b, const char *kind, const char *name)
{
	struct expt_err e = EXPT_ERR_INIT;
	char *sel = expt_xasprintf("involvedObject.name=%s,involvedObject.kind=%s", name, kind);
	char *esc = expt_kube_escape(sel);
	char *path = expt_xasprintf("/api/v1/namespaces/%s/events?fieldSelector=%s",
				    expt_kb_namespace(b), esc ? esc : "");
	json_t *events = NULL;

	if (expt_kube_request(b->k, "GET", path, NULL, &events, NULL, &e))
		events = NULL;
	free(sel);
	free(esc);
	free(path);
	return events;
}

/* Why a created Job has no running pod: the latest pod's scheduling condition or waiting
 * state, else the Job's own events (a quota or an admission webhook refusing its pods shows only
 * as a FailedCreate event). */
void expt_kb_why_not_started(struct kb *b, const char *job, const json_t *last_pod, char *out,
			     size_t n)
{
	json_t *c, *events = NULL, *ev;
	const char *wm = NULL, *wr;
	size_t i;

	out[0] = '\0';
	if (last_pod) {
		json_array_foreach(expt_kb_jget(last_pod, "status.conditions"), i, c)
		{
			const char *st = expt_kb_jstr(c, "status"),
				   *reason = expt_kb_jstr(c, "reason");
			if (st && !strcmp(st, "False") && reason) {
				snprintf(out, n, "%s: %s", reason,
					 expt_kb_jstr(c, "message") ? expt_kb_jstr(c, "message")
								    : "");
				return;
			}
		}
		if ((wr = expt_kb_waiting(last_pod, &wm))) {
			snprintf(out, n, "%s%s%s", wr, wm ? ": " : "", wm ? wm : "");
			return;
		}
	}
	{
		events = expt_kb_events(b, "Job", job);
		json_array_foreach(json_object_get(events, "items"), i, ev)
		{
			const char *type = expt_kb_jstr(ev, "type");
			if (type && !strcmp(type, "Warning"))
				snprintf(
				    out, n, "%s: %s",
				    expt_kb_jstr(ev, "reason") ? expt_kb_jstr(ev, "reason") : "",
				    expt_kb_jstr(ev, "message") ? expt_kb_jstr(ev, "message") : "");
		}
		json_decref(events);
	}
	if (!out[0])
		snprintf(out, n, "%s",
			 last_pod ? "its pod is still pending" : "no pod was created");
}
