/* A small S3 client for MLflow artifact stores at s3://BUCKET/PREFIX: put a file, list the
 * objects under a prefix (ListObjectsV2), get one into a file. Requests are signed with AWS
 * Signature V4 by libcurl (CURLOPT_AWS_SIGV4; libcurl is loaded with dlopen through
 * util/curl_dl.h). Configured from the environment as MLflow's own S3 store is (boto3):
 *   MLFLOW_S3_ENDPOINT_URL  a custom endpoint (SeaweedFS, Ceph, ...): path-style requests
 *                           ENDPOINT/BUCKET/KEY; unset: AWS, https://BUCKET.s3.REGION.amazonaws.com
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  the credentials (required)
 *   AWS_SESSION_TOKEN       temporary credentials' token (sent as x-amz-security-token)
 *   AWS_DEFAULT_REGION, else AWS_REGION, else us-east-1: the region signed for
 *   MLFLOW_S3_IGNORE_TLS=true  do not verify the endpoint's certificate
 * One handle is one connection; not shared between threads. It never prints. Owner: mlflow/. */
#ifndef EXPT_MLFLOW_S3_H
#define EXPT_MLFLOW_S3_H

#include <jansson.h>

#include "../util/err.h"

struct expt_s3; /* opaque */

/* Splits an artifact URI "s3://BUCKET[/PREFIX]" into *bucket and *prefix (no leading or trailing
 * '/'; "" when none; caller frees both). -1 when uri is not an s3:// URI, -2 when out of memory. */
int expt_s3_parse_uri(const char *uri, char **bucket, char **prefix);

/* Constructor, from the environment (above). Loads libcurl. EXPT_EUSAGE when the credentials
 * are not set or the endpoint is not http(s)://, EXPT_EBACKEND when libcurl cannot be loaded,
 * EXPT_ENOMEM. The caller frees with expt_s3_close. */
int expt_s3_open(struct expt_s3 **out, struct expt_err *err);
void expt_s3_close(struct expt_s3 *s); /* NULL is a no-op */
/* The endpoint, for messages ("http://127.0.0.1:8333", or "AWS S3 (REGION)"); borrowed. */
const char *expt_s3_endpoint(const struct expt_s3 *s);
/* Whether the last failed request may succeed when repeated: no answer, a 5xx, 429, 408. A 403
 * is not (the credentials are read once, at open). */
int expt_s3_retryable(const struct expt_s3 *s);

/* Uploads the regular file `file` as object key of bucket (PutObject; overwrites). Errors name
 * s3://BUCKET/KEY: EXPT_EDENIED for 403 (with the variables to check), EXPT_ENOTFOUND for a
 * bucket that does not exist, EXPT_EBACKEND otherwise, EXPT_EFAIL when file cannot be read. */
int expt_s3_put(struct expt_s3 *s, const char *bucket, const char *key, const char *file,
		struct expt_err *err);
/* Every object below prefix/ (recursively; "" lists the bucket): *files (caller decrefs) an array
 * of {"path": key relative to prefix/, "file_size": bytes}. Errors as expt_s3_put. */
int expt_s3_list(struct expt_s3 *s, const char *bucket, const char *prefix, json_t **files,
		 struct expt_err *err);
/* Downloads object key into dest (created or truncated; removed on failure). EXPT_ENOTFOUND
 * when there is no such object; other errors as expt_s3_put. */
int expt_s3_get(struct expt_s3 *s, const char *bucket, const char *key, const char *dest,
		struct expt_err *err);

#endif
