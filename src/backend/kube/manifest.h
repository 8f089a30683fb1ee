/* The Kubernetes objects of a run, built in memory from the spec: one batch/v1 Job per run
 * (what `expt run --dry-run -o yaml` prints and what the backend sends). Pure: no I/O.
 * Owner: backend/kube. */
#ifndef EXPT_BACKEND_KUBE_MANIFEST_H
#define EXPT_BACKEND_KUBE_MANIFEST_H

#include <jansson.h>
#include <stddef.h>

#include "../../spec/spec.h"
#include "../../util/err.h"
#include "../../util/strv.h"

/* Where a run finds the contract's files inside its pod. */
#define EXPT_KUBE_OUTPUT_DIR "/expt/output"
#define EXPT_KUBE_PARAMS_DIR "/expt/params"
#define EXPT_KUBE_PARAMS_FILE EXPT_KUBE_PARAMS_DIR "/params.json"
/* The run's container in its pod. */
#define EXPT_KUBE_CONTAINER "run"

/* Labels and annotations expt puts on what it creates. */
#define EXPT_KUBE_L_EXPERIMENT "expt.dev/experiment"
#define EXPT_KUBE_L_RUN "expt.dev/run"
#define EXPT_KUBE_L_INDEX "expt.dev/sweep-index"
#define EXPT_KUBE_L_MANAGED "app.kubernetes.io/managed-by"
#define EXPT_KUBE_A_PARAMS "expt.dev/params"

/* One run, as the manifest needs it. Borrowed. */
struct expt_kube_run {
	const char *run_id; /* a DNS-1123 label of at most 63 characters */
	const char *name;   /* the Job's name: run_id, or another (on_conflict: new-id); NULL:
			       run_id */
	size_t index;	    /* 0-based position in the sweep */
	const struct expt_strv *argv; /* the run's argv (the container's command) */
	const struct expt_strv *env;  /* "KEY=VALUE" */
	const char *params_json;      /* the run's params, given to it as EXPT_PARAMS_FILE */
	const char *namespace_;	      /* where the Job goes */
};

/* The Job for run r. *job is the caller's (json_decref). EXPT_EUSAGE with err naming the spec
 * field when the spec asks for what a Job cannot do (an s3:// mount). */
int expt_kube_job_manifest(const struct expt_spec *spec, const struct expt_kube_run *r,
			   json_t **job, struct expt_err *err);

/* The name of the ConfigMap that carries a run's files: (caller frees), from its Job's name. The
 * Job mounts it; the backend creates it beside the Job, owned by it. */
char *expt_kube_files_name(const char *job);

/* The value of the expt.dev/experiment label for experiment: the name itself when it is a valid
 * label value, else the run-id prefix derived from it (DNS-safe, with a hash). out has at least
 * 64 bytes. */
void expt_kube_experiment_label(const char *experiment, char *out, size_t n);

/* Merges over into base: maps key by key (recursively), lists of objects that carry a "name"
 * (containers, volumes, env) entry by entry on the name (new names appended), anything else
 * replaced. over is borrowed. */
void expt_kube_merge(json_t *base, const json_t *over);

#endif
