/* What the Kubernetes backend's files share (kubernetes.c: the operations and the engine;
 * kube/jobstate.c: what a Job's and its pods' JSON say about a run; kube/validate.c: the checks
 * before anything is created; kube/inflight.c: kubernetes.max_in_flight; kube/evidence.c: what
 * the cluster knows of a run, for expt debug; kube/adopt.c: runs no expt process follows).
 * Internal to src/backend; nothing else includes it. Owner: backend/kube. */
#ifndef EXPT_BACKEND_KUBE_KB_H
#define EXPT_BACKEND_KUBE_KB_H

#include <jansson.h>
#include <stddef.h>

#include "../backend.h"
#include "../sched.h"
#include "client.h"
#include "config.h"

struct kb {
	char *db_path;
	const struct expt_spec *spec; /* launching; NULL for read-only commands */
	char *context, *ns;	      /* from the spec (NULL: the kubeconfig's) */
	char *experiment;
	char *on_conflict;
	struct expt_strv io; /* "inputs.NAME=/mount" */
	struct expt_kube_config *cfg;
	struct expt_kube *k;
	char label[80];	     /* expt.dev/experiment value */
	char jobs_path[320]; /* /apis/batch/v1/namespaces/NS/jobs, once the namespace is known */
	int tracking_looked; /* looked for a deployed MLflow server (tracking_uri: what it found) */
	char *tracking_uri;
	int64_t cleanup_failed_ms, cleanup_succeeded_ms; /* -1: keep */
	int64_t start_timeout_ms;			 /* 0: none */
	struct expt_strv renamed; /* "RUN=JOB": on_conflict: new-id gave the run's Job this name */
	/* supervising */
	struct expt_sched *sched;
	struct expt_kube_watch *jobs_w, *pods_w;
	struct katt **live; /* attempts in flight */
	size_t nlive, caplive;
	struct katt **queued; /* started, their Jobs not created yet (the next wait creates them) */
	size_t nqueued, capqueued;
};

/* The engine's part of an attempt: one Job. */
struct katt {
	struct kb *b;
	struct expt_sched_attempt *a;
	struct expt_job *job;
	char name[64];
	char pod[256];	  /* the pod whose log is followed ("" none yet) */
	int npods;	  /* pods seen (attempts the Job controller made) */
	json_t *last_pod; /* the latest pod seen */
	json_t *body;	  /* the Job, until it is created */
	json_t *files;	  /* its files: ConfigMap (spec files:), until it is owned by the Job */
	int created;	  /* the API server accepted it */
	int evidence_saved;
	int64_t first_try, retry_at, backoff; /* creation retried while the API server is away */
	int64_t created_at;		      /* monotonic ms */
	int running;			      /* a pod of it ran (or ended) */
	struct expt_kube_stream *log;
	int64_t pod_bytes;   /* of the followed pod's log, delivered (whole lines, with newlines) */
	int64_t skip;	     /* bytes of a reopened stream already delivered: not again */
	int64_t reopen_at;   /* a broken stream of a running pod is reopened then (monotonic ms) */
	int shown;	     /* last reported of it: 0 nothing, 1 pending, 2 running */
	char why[512];	     /* the pending reason last reported */
	int64_t why_at;	     /* when to ask again why it waits (monotonic ms) */
	int out_fd, comb_fd; /* stdout.log, output.log */
	int done;	     /* the Job ended (or went): report once the log drained */
	int64_t drain_until;
	struct expt_observed o;
};

/* JSON at a dotted path ("status.phase"); NULL when a part is missing. Keys holding dots
 * (labels) are looked up with json_object_get directly. Borrowed from o. */
json_t *expt_kb_jget(const json_t *o, const char *path);
const char *expt_kb_jstr(const json_t *o, const char *path);
/* Loads the kubeconfig and opens b->k on first use. */
int expt_kb_connect(struct kb *b, struct expt_err *err);
/* The runs' namespace: the spec's, else the kubeconfig context's (without connecting). */
const char *expt_kb_namespace(struct kb *b);
/* /apis/batch/v1/namespaces/NS/jobs (owned by b). */
const char *expt_kb_jobs_path(struct kb *b);
/* "labelSelector=..." for the experiment's objects, or one run's; caller frees. */
char *expt_kb_selector(struct kb *b, const char *run_id);
/* The ConfigMap of the spec's files: for run_id (NULL *out when the spec has none); err names
 * files.PATH when a local file cannot be read or they are too big for a ConfigMap. */
int expt_kb_files_configmap(struct kb *b, const char *run_id, json_t **out, struct expt_err *err);
/* The name of run_id's Job: run_id, unless on_conflict: new-id named it otherwise. Borrowed. */
const char *expt_kb_job_name(struct kb *b, const char *run_id);
/* A name of its own for run_id's Job, whose name is taken (on_conflict: new-id); recorded. */
const char *expt_kb_rename(struct kb *b, const char *run_id);
/* The Job for job; *out the caller's. */
int expt_kb_manifest(struct kb *b, const struct expt_job *job, json_t **out, struct expt_err *err);
/* A pod's container terminated state (state, else lastState), and its waiting reason (with
 * *message); NULL when none. Borrowed from pod. */
json_t *expt_kb_terminated(const json_t *pod);
const char *expt_kb_waiting(const json_t *pod, const char **message);

/* The condition of type with status True, or NULL. Borrowed from obj. */
json_t *expt_kb_condition(const json_t *obj, const char *type);
/* How many times the pod's container was restarted in place (restartPolicy OnFailure: each a
 * retry the Job counts against backoffLimit). */
int expt_kb_restarts(const json_t *pod);
/* A waiting reason that means the pod will not start without someone changing something. */
int expt_kb_stuck(const char *reason);
/* How a run ended, from its Job (NULL: deleted before it ended), its newest pod and the number
 * of pods it had (attempts). Fills *o whole (start_ms/end_ms 0). */
void expt_kb_outcome(const json_t *job, const json_t *last_pod, int npods, const char *name,
		     struct expt_observed *o);
/* Why a created Job has no running pod, as one line (the scheduler's Unschedulable message, a
 * waiting reason, or the Job's FailedCreate event). */
void expt_kb_why_not_started(struct kb *b, const char *job, const json_t *last_pod, char *out,
			     size_t n);
/* The spec's cleanup for a Job that ended (failed or not): its ttlSecondsAfterFinished set. */
void expt_kb_cleanup(struct kb *b, const char *job, int failed);
/* <log_dir>/pods.json: where each pod's output begins in the run's log files; the supervisor
 * records a pod when it starts following it, so that a later expt can complete the files from
 * the pod's log (kube/adopt.c) if the supervisor goes. */
void expt_kb_pod_begins(const char *log_dir, const char *pod);

/* kube/jobstate.c also: the events about object kind/name ({"items": [...]}, the caller's;
 * NULL when the cluster cannot say). */
json_t *expt_kb_events(struct kb *b, const char *kind, const char *name);

/* kube/inflight.c: how many more Jobs kubernetes.max_in_flight lets into the namespace now
 * (SIZE_MAX without a cap; 0 while it is full or another expt is counting); when *held, the
 * caller creates at most that many and then calls expt_kb_room_done. */
size_t expt_kb_room(struct kb *b, int *held);
void expt_kb_room_done(struct kb *b);

/* kube/adopt.c: runs no expt process follows (expt run -d, or their supervisor gone): state,
 * end and log files read from the cluster. The backend's poll and logs operations. */
int expt_kb_poll(void *state, const struct expt_run_rec *runs, size_t n, struct expt_observed *out,
		 struct expt_err *err);
int expt_kb_logs_open(void *state, const struct expt_run_rec *run, const struct expt_logs_opts *o,
		      void **stream, struct expt_err *err);
int expt_kb_logs_read(void *stream, int run_ended, expt_line_fn fn, void *payload, int *ended,
		      struct expt_err *err);
void expt_kb_logs_close(void *stream);

/* The backend's validate operation (kube/validate.c). */
int expt_kb_validate(void *state, struct expt_job **jobs, size_t n, struct expt_err *err);

/* kube/evidence.c: the Job's conditions, its pods' states and events as d->evidence lines (for
 * an active run also why it is pending, in d->cause and d->hint). 1 when the Job was found, 0
 * when it is gone, -1 when the cluster could not be asked. */
int expt_kb_collect_evidence(struct kb *b, const char *jobname, const char *run_id, int active,
			     struct expt_diagnosis *d);
/* <log_dir>/evidence.txt (caller frees), and writing it now from what the cluster knows of job
 * (before anything deletes it). */
char *expt_kb_evidence_path(const char *log_dir);
void expt_kb_save_evidence(struct kb *b, const char *job, const char *log_dir);

#endif
