/* An MLflow tracking server in a cluster (`expt tracking deploy|status|url`): the objects of the
 * two shapes (dev: SQLite and artifacts on a volume; deploy: PostgreSQL and S3-compatible
 * artifacts) built in memory, applied with server-side apply after a server-side dry run of
 * all of them, and read back as a status. What is generated is in docs/tracking.md ("Deploying
 * MLflow into a cluster"). Owner: backend/kube. */
#ifndef EXPT_BACKEND_KUBE_TRACKING_H
#define EXPT_BACKEND_KUBE_TRACKING_H

#include <jansson.h>

#include "../../util/err.h"
#include "client.h"

/* Pinned defaults: the MLflow release the test venv runs, and a PostgreSQL release. */
#define EXPT_TRACKING_MLFLOW_VERSION "3.17.2"
#define EXPT_TRACKING_IMAGE "ghcr.io/mlflow/mlflow:v" EXPT_TRACKING_MLFLOW_VERSION
/* Upstream's plain image has neither psycopg2 nor boto3 (mlflow/mlflow#9513, #8342); the -full
 * variant has the database drivers and the cloud storage clients (mlflow docker/README). */
#define EXPT_TRACKING_IMAGE_FULL EXPT_TRACKING_IMAGE "-full"
#define EXPT_TRACKING_DB_IMAGE "docker.io/library/postgres:17.6-bookworm"
#define EXPT_TRACKING_PORT 5000
#define EXPT_TRACKING_FIELD_MANAGER "expt"

/* Labels on every object. */
#define EXPT_TRACKING_L_NAME "app.kubernetes.io/name"
#define EXPT_TRACKING_L_INSTANCE "app.kubernetes.io/instance"
#define EXPT_TRACKING_L_COMPONENT "app.kubernetes.io/component"
#define EXPT_TRACKING_A_MODE "expt.dev/tracking-mode"
/* On the Secret whose password expt generated: kept as it is on a later deploy. */
#define EXPT_TRACKING_A_GENERATED "expt.dev/generated"

/* What to deploy; strings borrowed. NULL means the default in brackets. */
struct expt_tracking_opts {
	const char *mode;	   /* "dev" or "deploy" (required) */
	const char *name;	   /* ["mlflow"] the Service's and the Deployment's name */
	const char *ns;		   /* namespace (required: the caller resolves the context's) */
	const char *image;	   /* [EXPT_TRACKING_IMAGE; deploy: EXPT_TRACKING_IMAGE_FULL] */
	const char *db_image;	   /* [EXPT_TRACKING_DB_IMAGE] */
	const char *storage;	   /* dev: ["pvc"], "pvc:SIZE", "hostpath:/ABS/PATH" */
	const char *storage_class; /* PVCs' storageClassName [the cluster's default] */
	const char *db_size;	   /* deploy: the database's PVC ["10Gi"] */
	const char *db_uri_secret; /* deploy: "SECRET[:KEY]" (KEY ["uri"]): an external DB */
	const char *db_password;   /* deploy without db_uri_secret: the generated password
				    * (letters and digits only: it goes into a URI) */
	const char *artifacts;	   /* deploy: "s3://BUCKET[/PREFIX]" (required) */
	const char *s3_endpoint;   /* deploy: MLFLOW_S3_ENDPOINT_URL [from the Secret, if there] */
	const char *s3_secret;	   /* deploy: Secret with AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY */
	const char *const *extra_hosts;	  /* more --allowed-hosts (an Ingress name); NULL-ended */
	const char *const *node_selector; /* "KEY=VALUE" for the pods' nodeSelector; NULL-ended */
	const char *const *tolerations;	  /* taint keys the pods tolerate (Exists); NULL-ended */
	int replicas;			  /* [1] */
};

/* Checks o and builds the objects as one v1 List (what `kubectl apply -f -` takes), in apply
 * order. *list: caller json_decref. EXPT_EUSAGE with err naming the flag ("--storage: ...")
 * for a bad value or a missing one. Pure: no I/O. */
int expt_kube_tracking_render(const struct expt_tracking_opts *o, json_t **list,
			      struct expt_err *err);

/* The --allowed-hosts value for a server named name in namespace ns (caller frees): the
 * Service's in-cluster names with and without the port, localhost, and the private address
 * ranges (clients that use the ClusterIP or a pod IP); extra appended. */
char *expt_kube_tracking_allowed_hosts(const char *name, const char *ns, const char *const *extra);

/* The in-cluster URI of the server (caller frees). */
char *expt_kube_tracking_uri(const char *name, const char *ns);

/* A random password of n-1 letters and digits into out (size n) from /dev/urandom. */
int expt_kube_tracking_password(char *out, size_t n, struct expt_err *err);

/* What an apply did to one object. */
struct expt_tracking_applied {
	char kind[32], name[256];
	const char *what; /* "created", "configured", "unchanged", "kept" (a generated Secret
			   * that exists already: never regenerated) */
};

/* Applies list (from render; changed: a generated Secret that exists is dropped from it) in
 * namespace ns: first the namespace and the Secrets o names (--s3-secret, --db-uri-secret)
 * must exist, then every object is sent as a server-side dry run, and only when all pass are
 * they applied (server-side apply, field manager "expt", so a second deploy with the same
 * flags changes nothing). *done (caller frees) / *ndone: one entry per object. Refusals:
 * EXPT_EDENIED (RBAC), EXPT_EUSAGE (invalid: err names the object and the field), each
 * saying that nothing was created when the dry run failed. */
int expt_kube_tracking_apply(struct expt_kube *k, const struct expt_tracking_opts *o, json_t *list,
			     struct expt_tracking_applied **done, size_t *ndone,
			     struct expt_err *err);

/* The deployment named name in ns as it is now (*out: caller json_decref):
 * {name, namespace, uri, mode, image, replicas, ready_replicas, available,
 *  objects: [{kind, name, ready?}], pods: [{name, component, phase, ready, reason, message,
 *  hint}]} where hint explains a waiting reason (ImagePullBackOff, CrashLoopBackOff, an
 * unbound PVC...). EXPT_ENOTFOUND when no object of it exists. */
int expt_kube_tracking_status(struct expt_kube *k, const char *ns, const char *name, json_t **out,
			      struct expt_err *err);

#endif
