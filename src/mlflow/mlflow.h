/* A small client of the MLflow tracking REST API (../shared/REFERENCE.md section 1), over libcurl
 * (loaded with dlopen through util/curl_dl.h). Used by the mlflow sink (track/), by `expt run`'s
 * supervisor (it creates and ends each run's MLflow run) and by `expt sync`/`show`/`compare`.
 * One handle is one connection; it is not shared between threads. It never prints; it does not
 * abort when memory runs out (the sink runs inside programs). Owner: mlflow/. */
#ifndef EXPT_MLFLOW_MLFLOW_H
#define EXPT_MLFLOW_MLFLOW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

struct expt_mlflow; /* opaque */

/* Request limits of the server (mlflow/utils/validation.py). */
#define EXPT_MLFLOW_BATCH_METRICS 1000
#define EXPT_MLFLOW_BATCH_PARAMS 100
#define EXPT_MLFLOW_BATCH_TAGS 100
#define EXPT_MLFLOW_BATCH_BODY 900000 /* bytes; the server's cap is 1,000,000 */
#define EXPT_MLFLOW_KEY_MAX 250
#define EXPT_MLFLOW_PARAM_MAX 6000
#define EXPT_MLFLOW_TAG_MAX 8000

/* Constructor. uri: http(s)://host[:port][/prefix], or mlflow://host[:port] (read as http).
 * Reads the credentials (MLFLOW_TRACKING_USERNAME + _PASSWORD: Basic; else MLFLOW_TRACKING_TOKEN:
 * Bearer) and TLS settings (MLFLOW_TRACKING_INSECURE_TLS=true, MLFLOW_TRACKING_SERVER_CERT_PATH)
 * from the environment now. Loads libcurl. EXPT_EUSAGE for a URI it cannot use, EXPT_EBACKEND
 * when libcurl cannot be loaded, EXPT_ENOMEM. The caller frees with expt_mlflow_close. */
int expt_mlflow_open(struct expt_mlflow **out, const char *uri, struct expt_err *err);
void expt_mlflow_close(struct expt_mlflow *m); /* NULL is a no-op */
/* The tracking URI as http(s)://… without a trailing slash; borrowed, lives with m. */
const char *expt_mlflow_base(const struct expt_mlflow *m);
/* Whether the last failed call may succeed when repeated (no answer, a 5xx, 429), as opposed to
 * an answer no retry changes (400 INVALID_PARAMETER_VALUE, 404, …). 401/403 count as retryable:
 * credentials may be fixed while a run goes on. */
int expt_mlflow_retryable(const struct expt_mlflow *m);
/* The error_code of the last failed answer ("RESOURCE_ALREADY_EXISTS"), "" when none. */
const char *expt_mlflow_error_code(const struct expt_mlflow *m);

/* One call: method "GET" or "POST", path below /api/2.0/mlflow/ ("runs/create", or
 * "runs/get?run_id=…" for a GET), body JSON (POST; may be NULL). *reply (may be NULL: ignored)
 * gets the parsed answer of a 2xx (caller decrefs). Errors: EXPT_EBACKEND (no answer, or an
 * error answer: the message names the server, the call, the HTTP status and the server's
 * message), EXPT_ENOTFOUND for RESOURCE_DOES_NOT_EXIST, EXPT_ENOMEM. */
int expt_mlflow_call(struct expt_mlflow *m, const char *method, const char *path, const char *body,
		     size_t len, json_t **reply, struct expt_err *err);

/* Get-or-create the experiment called name; *id (caller frees) its id. */
int expt_mlflow_experiment(struct expt_mlflow *m, const char *name, char **id,
			   struct expt_err *err);
/* The tag that names an expt run across stores (run ids are unique only within one store):
 * "<run id>@<creation time in ms>". */
#define EXPT_MLFLOW_RUN_KEY "expt.run_key"
/* A run of experiment exp_id whose tag expt.run_key is key: *run_id (caller frees) its id, or
 * NULL when there is none (returns 0). */
int expt_mlflow_find_run(struct expt_mlflow *m, const char *exp_id, const char *key, char **run_id,
			 struct expt_err *err);
/* Creates a run: name as run_name and mlflow.runName, start_ms (0: now), tags (n pairs, may be
 * 0). *run_id (caller frees). */
int expt_mlflow_run_create(struct expt_mlflow *m, const char *exp_id, const char *name,
			   int64_t start_ms, const char *const *tag_keys,
			   const char *const *tag_values, size_t ntags, char **run_id,
			   struct expt_err *err);
/* Ends a run: status RUNNING, FINISHED, FAILED or KILLED; end_ms 0: none sent. */
int expt_mlflow_run_update(struct expt_mlflow *m, const char *run_id, const char *status,
			   int64_t end_ms, struct expt_err *err);
/* The run's {"info":…,"data":…} (caller decrefs). */
int expt_mlflow_run_get(struct expt_mlflow *m, const char *run_id, json_t **run,
			struct expt_err *err);
/* Uploads file (a regular file) as the artifact path (relative to the artifact proxy's root:
 * "<exp>/<run>/artifacts/model.pt") through the server's artifact proxy
 * (PUT /api/2.0/mlflow-artifacts/artifacts/<path>); the same path again overwrites. */
int expt_mlflow_artifact_put(struct expt_mlflow *m, const char *path, const char *file,
			     struct expt_err *err);
/* Lists a directory of the proxy: *files (caller decrefs) an array of {path, is_dir,
 * file_size}, paths relative to the proxy's root. */
int expt_mlflow_artifact_list(struct expt_mlflow *m, const char *path, json_t **files,
			      struct expt_err *err);
/* Downloads the file path of the proxy into dest (created or truncated; removed on failure).
 * EXPT_ENOTFOUND when the server has no such file. */
int expt_mlflow_artifact_get(struct expt_mlflow *m, const char *path, const char *dest,
			     struct expt_err *err);
/* The proxy path of a run's artifact_uri "mlflow-artifacts:[//host]/1/abc/artifacts" into *path
 * ("1/abc/artifacts"; caller frees). -1 when the URI is not served by the proxy (s3://, a local
 * path, ...), -2 when out of memory. */
int expt_mlflow_artifact_root(const char *artifact_uri, char **path);
/* The MLflow UI's address of a run: <base>/#/experiments/<exp>/runs/<run> (caller frees; NULL
 * when out of memory). */
char *expt_mlflow_run_url(const struct expt_mlflow *m, const char *exp_id, const char *run_id);

/* The status MLflow gives to expt's ("succeeded" → FINISHED, "failed" → FAILED, "stopped" →
 * KILLED, anything else → RUNNING); static. */
const char *expt_mlflow_status(const char *expt_status);
/* Appends key as MLflow accepts it to b (at most EXPT_MLFLOW_KEY_MAX bytes): every byte other
 * than ASCII letters, digits, '_', '-', '.', ' ' and '/' becomes '_', a leading '/' is dropped,
 * "//" collapses and ".." becomes "__". Returns how many bytes it appended. */
size_t expt_mlflow_key(char *out, size_t cap, const char *key);
/* How many bytes of s (at most max) end on a UTF-8 character boundary. */
size_t expt_mlflow_utf8_cut(const char *s, size_t max);

#endif
