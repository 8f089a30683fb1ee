/* The Kubernetes API client: one connection pool to one cluster (libcurl multi handle; HTTP/2
 * where the server offers it, so requests and streams share connections), TLS verified per the
 * kubeconfig and never silently off, credentials (client certificates, bearer tokens, token
 * files re-read, exec plugins cached in memory per expt_kube until they expire and re-run on
 * 401). Synchronous JSON requests, concurrent batches, multiplexed line streams (watch, logs)
 * and a list+watch helper that survives 410 Gone and closed streams. Not thread-safe: one
 * thread drives one expt_kube. Owner: backend/kube/. */
#ifndef EXPT_BACKEND_KUBE_CLIENT_H
#define EXPT_BACKEND_KUBE_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "../../util/buf.h"
#include "../../util/err.h"
#include "config.h"

/* Largest JSON reply read (a list page, an object). */
#define EXPT_KUBE_BODY_MAX (64u << 20)
/* Longest line a stream hands out; a longer one comes in pieces of this size. */
#define EXPT_KUBE_LINE_MAX (16u << 20)
/* 429 / 503 are retried this many times, waiting Retry-After (capped at 10 s; 1 s when absent). */
#define EXPT_KUBE_RETRIES 5

struct expt_kube; /* a connection to one cluster */

/* One cause of a Status (details.causes[]). Strings owned by the status; NULL if absent. */
struct expt_kube_cause {
	char *reason;  /* "FieldValueInvalid", "FieldValueRequired", ... */
	char *message; /* "Invalid value: ...: must be ..." */
	char *field;   /* "spec.template.spec.containers[0].image" */
};

/* What the API server said when it refused: its Status object, decoded. Caller-owned; release
 * with expt_kube_status_release (also fine when never filled). */
struct expt_kube_status {
	long http;     /* HTTP status of the reply; 0 when nothing was received */
	long code;     /* Status.code (usually == http) */
	char *reason;  /* "AlreadyExists", "NotFound", "Forbidden", "Invalid", "Expired"... */
	char *message; /* the server's sentence (or the body's first bytes if not a Status) */
	char *name;    /* details.name */
	char *kind;    /* details.kind */
	char *group;   /* details.group */
	struct expt_kube_cause *causes; /* details.causes */
	size_t ncauses;
};
#define EXPT_KUBE_STATUS_INIT                                                                      \
	{                                                                                          \
		0                                                                                  \
	}
void expt_kube_status_release(struct expt_kube_status *st);

/* Opens a client for cfg (borrowed: it must outlive k). Loads libcurl; contacts nothing yet
 * (the first request does, and reports unusable TLS material or credentials). *out:
 * expt_kube_close. EXPT_EBACKEND if libcurl cannot be loaded; EXPT_EUSAGE for an http://
 * server with credentials other than none. */
int expt_kube_open(struct expt_kube **out, const struct expt_kube_config *cfg,
		   struct expt_err *err);
/* Closes every stream and watch still open (their handles become invalid), then k. NULL ok. */
void expt_kube_close(struct expt_kube *k);
/* The config k was opened with (borrowed). */
const struct expt_kube_config *expt_kube_cfg(const struct expt_kube *k);
/* How many times the exec plugin ran in this process (tests; 0 without one). */
unsigned expt_kube_exec_runs(const struct expt_kube *k);

/* s escaped for a URL path segment or query value (caller frees; NULL only when out of memory). */
char *expt_kube_escape(const char *s);

/* One synchronous JSON request. method: "GET", "POST", "PUT", "PATCH" (sent as
 * application/merge-patch+json), "APPLY" (a PATCH sent as application/apply-patch+yaml:
 * server-side apply; the path needs ?fieldManager=...), "DELETE". path_and_query:
 * "/api/v1/namespaces?limit=10"; body (borrowed) or NULL. On 2xx returns 0 and *reply (caller
 * json_decref; NULL reply: discarded; *reply is NULL for an empty body). Otherwise returns a
 * code chosen by the HTTP status and fills err ("POST /apis/...: <server message>") and st
 * (may be NULL):
 *   401, 403 → EXPT_EDENIED; 404 → EXPT_ENOTFOUND; 409 → EXPT_ECONFLICT; 422, 400 →
 *   EXPT_EUSAGE; anything else (410 included: read st->code) → EXPT_EBACKEND.
 * A failure to connect (refused, DNS, TLS verification: the message says which) is
 * EXPT_EBACKEND with st->http = 0. 429 and 503 are retried (EXPT_KUBE_RETRIES, Retry-After);
 * 401 with an exec plugin re-runs the plugin once and retries. Streams open on k keep moving
 * (their data is buffered) while this waits. */
int expt_kube_request(struct expt_kube *k, const char *method, const char *path_and_query,
		      const json_t *body, json_t **reply, struct expt_kube_status *st,
		      struct expt_err *err);

/* The same for a reply that is not JSON (a pod's log without follow): a 2xx body is appended
 * to out (its cap bounds it: a longer body fails with EXPT_EBACKEND). */
int expt_kube_request_text(struct expt_kube *k, const char *method, const char *path_and_query,
			   struct expt_buf *out, struct expt_kube_status *st, struct expt_err *err);

/* One request of a batch: the caller fills the inputs, expt_kube_request_many the outputs. */
struct expt_kube_req {
	const char *method;	    /* in, borrowed */
	const char *path;	    /* in, borrowed: path and query */
	const json_t *body;	    /* in, borrowed; NULL for none */
	int want_reply;		    /* in: keep the reply's JSON in reply (else it is discarded) */
	struct expt_buf *text;	    /* in: non-NULL: a 2xx body is appended here as it is (not
				     * parsed; plain-text logs), up to text->max; want_reply 0 */
	void *data;		    /* in: the caller's, untouched */
	json_t *reply;		    /* out: caller json_decref (NULL unless want_reply and 2xx) */
	int rc;			    /* out: as expt_kube_request's return */
	struct expt_kube_status st; /* out: caller releases (expt_kube_status_release) */
	struct expt_err err;	    /* out: filled when rc != 0 */
	unsigned retries;	    /* out: times it was re-sent after a 429 or 503 */
};
/* Runs reqs[0..n) concurrently, at most `concurrency` in flight (<= 0: 16), over the shared
 * connections (HTTP/2 multiplexed where offered), each with the retries of expt_kube_request.
 * Every request runs (one failing does not stop the others). Returns 0 when all succeeded, else
 * the rc of the first failed one (in order) with err saying "N of M requests failed; the first:
 * ...". Inputs must not be changed until it returns. */
int expt_kube_request_many(struct expt_kube *k, struct expt_kube_req *reqs, size_t n,
			   int concurrency, struct expt_err *err);

/* --- streams: watch and follow=true logs, many at once on one client --- */
struct expt_kube_stream;

/* Starts a GET of path_and_query whose body is read as lines (a watch, a log). Returns at once;
 * expt_kube_pump moves it. *out: expt_kube_stream_close (or expt_kube_close). */
int expt_kube_stream_open(struct expt_kube *k, const char *path_and_query,
			  struct expt_kube_stream **out, struct expt_err *err);
/* Drives every open stream and waits up to timeout_ms (0: don't wait) for data on any. Returns
 * 0, or EXPT_EBACKEND when the multi handle itself failed (not when one stream did). */
int expt_kube_pump(struct expt_kube *k, int timeout_ms, struct expt_err *err);
/* The next complete line (without its '\n' or "\r\n", NUL-terminated; a final line without
 * '\n' once the stream ended; a longer line than EXPT_KUBE_LINE_MAX in pieces, those not
 * NUL-terminated), borrowed until the next call on s or on k (any request or pump moves data):
 * returns 1, or 0 when no complete line is buffered. Only 2xx bodies are handed out as lines;
 * an error body goes to expt_kube_stream_ended's st. */
int expt_kube_stream_line(struct expt_kube_stream *s, const char **line, size_t *len);
/* 1 when the stream has ended and all its lines were taken, else 0. Then *http_status (may be
 * NULL) is its HTTP status (0: no answer), and on failure (not 2xx, or the transfer broke) rc
 * and err are set and st (may be NULL) holds the decoded Status. rc 0 = a clean end. */
int expt_kube_stream_ended(struct expt_kube_stream *s, long *http_status, int *rc,
			   struct expt_kube_status *st, struct expt_err *err);
/* The caller's pointer, for telling streams apart. */
void expt_kube_stream_set_data(struct expt_kube_stream *s, void *data);
void *expt_kube_stream_data(const struct expt_kube_stream *s);
void expt_kube_stream_close(struct expt_kube_stream *s); /* NULL is a no-op */

/* --- list + watch: a collection's objects, kept converged --- */
struct expt_kube_watch;

/* Lists collection_path (e.g. "/apis/batch/v1/namespaces/NS/jobs"; paginated) with query
 * ("labelSelector=expt.dev%2Fexperiment%3Dx"; NULL or "" for none; already escaped), queues an
 * ADDED event per object, and watches from the list's resourceVersion with bookmarks. A 410
 * (in the stream or on opening it) relists; a stream that ends is reopened from the last
 * resourceVersion (backoff 0.5 s doubling to 30 s while it keeps failing). A relist emits
 * ADDED for objects not seen before, MODIFIED for those whose resourceVersion changed and
 * DELETED (the last object seen) for those gone meanwhile, so the caller's state converges.
 * The list is synchronous (its error returned here: EXPT_EDENIED, EXPT_ENOTFOUND...). The
 * watch keeps the last object seen of each (for the DELETED of a relist): memory in proportion
 * to the collection, so select (labelSelector) what you need.
 * *out: expt_kube_watch_close (or expt_kube_close). */
int expt_kube_watch_open(struct expt_kube *k, const char *collection_path, const char *query,
			 struct expt_kube_watch **out, struct expt_err *err);
/* The next event: returns 1 with *type ("ADDED", "MODIFIED", "DELETED"; static) and *obj
 * (caller json_decref); 0 when none is ready (call expt_kube_pump, then again); an error code
 * when the watch cannot go on (a relist refused: permissions revoked, namespace deleted), err
 * filled. BOOKMARK events are consumed here. Never blocks. */
int expt_kube_watch_next(struct expt_kube_watch *w, const char **type, json_t **obj,
			 struct expt_err *err);
/* Drops the stream and watches again from rv (a resourceVersion kept from earlier; one the
 * server no longer has makes the watch relist, as any 410 does). */
void expt_kube_watch_resume(struct expt_kube_watch *w, const char *rv);
/* The resourceVersion the watch has reached (borrowed; "" before the list). */
const char *expt_kube_watch_rv(const struct expt_kube_watch *w);
/* How many times it relisted after the first list (tests). */
unsigned expt_kube_watch_relists(const struct expt_kube_watch *w);
void expt_kube_watch_close(struct expt_kube_watch *w); /* NULL is a no-op */

/* --- authorization --- */
/* May the caller `verb` `resource` (group "" = core; "batch", ...) in namespace ns (NULL:
 * cluster-wide)? A SelfSubjectAccessReview: *allowed 1/0; *reason (caller frees; may be NULL)
 * the server's reason, "" if none. Returns non-zero only when the question could not be asked. */
int expt_kube_access_check(struct expt_kube *k, const char *verb, const char *group,
			   const char *resource, const char *ns, int *allowed, char **reason,
			   struct expt_err *err);

#endif
