/* The Kubernetes API client (client.h): every transfer (a request, a batch member, a stream)
 * is an easy handle on one curl multi handle, so that connections (HTTP/2 where offered) are
 * shared; credentials are attached per transfer. */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../util/curl_dl.h"
#include "../../util/util.h"

#define REQ_TIMEOUT_MS 60000
#define CONNECT_TIMEOUT_MS 10000
#define EXEC_TIMEOUT_MS 60000
#define ERRBODY_MAX (64u << 10)
/* Unread stream data kept before the stream is cut (a caller that stopped reading). */
#define STREAM_BUFFER_MAX (64u << 20)

struct xfer {
	struct expt_kube *k;
	CURL *h;
	struct curl_slist *headers;
	char *body;   /* request body text, owned */
	char *method; /* borrowed from the caller for the duration */
	char *path;   /* owned copy, for messages */
	struct expt_buf resp;
	long http;
	CURLcode result;
	int done;
	int retries;
	int reauthed;
	unsigned gen;	    /* the exec credential generation it was sent with */
	int64_t not_before; /* monotonic ms: a retry waits until then */
	char errbuf[CURL_ERROR_SIZE];
	struct expt_kube_stream *stream; /* NULL for a plain request */
};

struct expt_kube_stream {
	struct expt_kube *k;
	struct xfer *x;
	struct expt_buf errbody; /* a non-2xx body */
	size_t off;		 /* start of unread data in x->resp */
	int ended;
	int cut; /* the reader fell behind: the transfer was aborted */
	void *data;
	struct expt_kube_stream *next; /* k's list of open streams */
};

struct expt_kube {
	const struct expt_kube_config *cfg;
	const struct expt_curl *c;
	CURLM *multi;
	char *base; /* scheme://host:port used in URLs (tls_server_name as host when set) */
	struct curl_slist *connect_to;
	char *user_agent;
	/* exec plugin credential, cached for the life of this client (in memory only) */
	char *exec_token, *exec_cert, *exec_key;
	int64_t exec_expiry; /* wall ms; 0 = none given: good until a 401 */
	int exec_valid;
	unsigned exec_runs;
	unsigned exec_gen; /* bumped by every successful run of the plugin */
	/* token file, re-read every few seconds (bound service-account tokens rotate) */
	char *file_token;
	int64_t file_token_at; /* monotonic ms of the last read */
	struct expt_kube_stream *streams;
	struct expt_kube_watch **watches;
	size_t nwatches;
};

static int is_2xx(long s)
{
	return s >= 200 && s < 300;
}

/* --- small helpers --- */

char *expt_kube_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *r = expt_malloc(n * 3 + 1), *o = r;

	if (!r)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = 0;
	return r;
}

static void b64enc(struct expt_buf *b, const char *data, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)data;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		char q[4] = {tab[v >> 18], tab[v >> 12 & 63], tab[v >> 6 & 63], tab[v & 63]};

		expt_buf_add(b, q, 4);
	}
	if (i < len) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
		char q[4] = {tab[v >> 18], tab[v >> 12 & 63], i + 1 < len ? tab[v >> 6 & 63] : '=',
			     '='};

		expt_buf_add(b, q, 4);
	}
}

/* RFC 3339 ("2026-11-29T20:00:00Z", fractions and offsets allowed) to epoch ms; -1 if bad. */
static int64_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	int64_t t;
	const char *p;
	int off = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = (int64_t)timegm(&tm);
	p = s + 19;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == '+' || *p == '-') {
		int hh = 0, mm = 0;

		if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
			return -1;
		off = (hh * 60 + mm) * 60 * (*p == '+' ? 1 : -1);
	} else if (*p != 'Z' && *p != 'z') {
		return -1;
	}
	return (t - off) * 1000;
}

static char *jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? expt_xstrdup(s) : NULL;
}

void expt_kube_status_release(struct expt_kube_status *st)
{
	if (!st)
		return;
	free(st->reason);
	free(st->message);
	free(st->name);
	free(st->kind);
	free(st->group);
	for (size_t i = 0; i < st->ncauses; i++) {
		free(st->causes[i].reason);
		free(st->causes[i].message);
		free(st->causes[i].field);
	}
	free(st->causes);
	memset(st, 0, sizeof(*st));
}

/* Fills st from an error body: a Status when it is one, else its first bytes. */
static void decode_status(struct expt_kube_status *st, long http, const char *body, size_t len)
{
	json_t *j;
	json_error_t je;

	expt_kube_status_release(st);
	st->http = http;
	st->code = http;
	j = len ? json_loadb(body, len, 0, &je) : NULL;
	if (j && json_is_object(j) && json_is_string(json_object_get(j, "kind")) &&
	    !strcmp(json_string_value(json_object_get(j, "kind")), "Status")) {
		const json_t *d = json_object_get(j, "details"), *causes;
		size_t i;

		if (json_is_integer(json_object_get(j, "code")))
			st->code = (long)json_integer_value(json_object_get(j, "code"));
		st->reason = jstr(j, "reason");
		st->message = jstr(j, "message");
		if (json_is_object(d)) {
			st->name = jstr(d, "name");
			st->kind = jstr(d, "kind");
			st->group = jstr(d, "group");
			causes = json_object_get(d, "causes");
			if (json_is_array(causes) && json_array_size(causes)) {
				st->causes =
				    expt_xcalloc(json_array_size(causes), sizeof(*st->causes));
				for (i = 0; i < json_array_size(causes); i++) {
					const json_t *c = json_array_get(causes, i);

					if (!json_is_object(c))
						continue;
					st->causes[st->ncauses].reason = jstr(c, "reason");
					st->causes[st->ncauses].message = jstr(c, "message");
					st->causes[st->ncauses].field = jstr(c, "field");
					st->ncauses++;
				}
			}
		}
	} else if (len) {
		size_t n = len > 300 ? 300 : len;
		char *m = expt_xstrndup(body, n);

		for (char *p = m; *p; p++)
			if ((unsigned char)*p < ' ')
				*p = ' ';
		st->message = m;
	}
	json_decref(j);
}

static const char *http_reason(long s)
{
	switch (s) {
	case 400:
		return "BadRequest";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 422:
		return "Invalid";
	case 429:
		return "TooManyRequests";
	case 500:
		return "InternalError";
	case 503:
		return "ServiceUnavailable";
	case 504:
		return "Timeout";
	}
	return "";
}

static int code_for(long http)
{
	switch (http) {
	case 401:
	case 403:
		return EXPT_EDENIED;
	case 404:
		return EXPT_ENOTFOUND;
	case 409:
		return EXPT_ECONFLICT;
	case 400:
	case 422:
		return EXPT_EUSAGE;
	}
	return EXPT_EBACKEND;
}

/* err for a refused request: "METHOD PATH: message". */
static int refused(struct expt_err *err, const char *method, const char *path,
		   const struct expt_kube_status *st, const struct expt_kube_config *cfg)
{
	int code = code_for(st->http);
	const char *msg = st->message && *st->message ? st->message : NULL;
	const char *reason = st->reason && *st->reason ? st->reason : http_reason(st->http);

	if (st->http == 401)
		return expt_err_set(
		    err, code,
		    "%s %s: the cluster did not accept the credentials of user '%s' "
		    "(context '%s'): %s",
		    method, path, cfg->user_name ? cfg->user_name : "",
		    cfg->context ? cfg->context : "", msg ? msg : "Unauthorized");
	if (msg)
		return expt_err_set(err, code, "%s %s: %s (HTTP %ld %s)", method, path, msg,
				    st->http, reason);
	return expt_err_set(err, code, "%s %s: HTTP %ld %s", method, path, st->http, reason);
}

/* err for a transfer that got no answer. */
static int unreachable(struct expt_err *err, struct expt_kube *k, const char *method,
		       const char *path, CURLcode rc, const char *errbuf)
{
	const struct expt_kube_config *cfg = k->cfg;
	const char *detail = errbuf && *errbuf ? errbuf : k->c->easy_strerror(rc);

	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return expt_err_set(
		    err, EXPT_EBACKEND,
		    "cannot verify the TLS certificate of %s (cluster '%s' in %s): %s; the CA "
		    "trusted is %s",
		    cfg->server, cfg->cluster_name ? cfg->cluster_name : "",
		    cfg->cluster_file ? cfg->cluster_file : "?", detail,
		    cfg->ca_file  ? cfg->ca_file
		    : cfg->ca_pem ? "certificate-authority-data"
				  : "the system's (the cluster sets no certificate-authority)");
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
		return expt_err_set(err, EXPT_EUSAGE,
				    "the client certificate of user '%s' (%s) is not usable: %s",
				    cfg->user_name ? cfg->user_name : "",
				    cfg->user_file ? cfg->user_file : "?", detail);
	case CURLE_OPERATION_TIMEDOUT:
		return expt_err_set(err, EXPT_EBACKEND, "%s %s: no answer from %s in time: %s",
				    method, path, cfg->server, detail);
	default:
		return expt_err_set(
		    err, EXPT_EBACKEND, "%s %s: cannot reach the cluster at %s (context '%s'): %s",
		    method, path, cfg->server, cfg->context ? cfg->context : "", detail);
	}
}

/* --- exec credential plugins --- */

static void exec_clear(struct expt_kube *k)
{
	free(k->exec_token);
	free(k->exec_cert);
	free(k->exec_key);
	k->exec_token = k->exec_cert = k->exec_key = NULL;
	k->exec_valid = 0;
}

static char *exec_info(const struct expt_kube *k)
{
	const struct expt_kube_config *cfg = k->cfg;
	json_t *j = json_object(), *spec = json_object();
	char *r;

	json_object_set_new(j, "apiVersion", json_string(cfg->exec->api_version));
	json_object_set_new(j, "kind", json_string("ExecCredential"));
	json_object_set_new(spec, "interactive", json_false());
	if (cfg->exec->provide_cluster_info) {
		json_t *cl = json_object();

		json_object_set_new(cl, "server", json_string(cfg->server));
		if (cfg->tls_server_name)
			json_object_set_new(cl, "tls-server-name",
					    json_string(cfg->tls_server_name));
		if (cfg->insecure)
			json_object_set_new(cl, "insecure-skip-tls-verify", json_true());
		if (cfg->ca_pem) {
			struct expt_buf b = EXPT_BUF_INIT;

			b64enc(&b, cfg->ca_pem, cfg->ca_len);
			json_object_set_new(cl, "certificate-authority-data", json_string(b.buf));
			expt_buf_release(&b);
		}
		json_object_set_new(spec, "cluster", cl);
	}
	json_object_set_new(j, "spec", spec);
	r = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return r;
}

extern char **environ;

/* Runs the plugin: stdout into out, stderr into errout (both capped). Returns the exit status
 * (0..255), -1 when it could not start (errno), -2 when killed for taking too long. */
static int run_plugin(const struct expt_kube_exec *x, const char *info, struct expt_buf *out,
		      struct expt_buf *errout)
{
	int po[2], pe[2], status = 0, r = 0, open_fds = 2, err_no = 0;
	int ep[2]; /* exec failure: the child writes errno here */
	struct expt_strv env = {0};
	size_t nargs = 0;
	char **argv;
	pid_t pid;
	int64_t deadline = expt_mono_ms() + EXEC_TIMEOUT_MS;

	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(ep, O_CLOEXEC))
		return -1;
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "KUBERNETES_EXEC_INFO=", 21))
			expt_strv_push(&env, *e);
	for (char **e = x->env; *e; e++)
		expt_strv_push(&env, *e);
	expt_strv_pushf(&env, "KUBERNETES_EXEC_INFO=%s", info);
	while (x->args[nargs])
		nargs++;
	argv = expt_xcalloc(nargs + 2, sizeof(char *));
	argv[0] = x->command;
	for (size_t i = 0; i < nargs; i++)
		argv[i + 1] = x->args[i];
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		dup2(devnull, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvpe(argv[0], argv, expt_strv_argv(&env));
		err_no = errno;
		if (write(ep[1], &err_no, sizeof(err_no)) < 0)
			_exit(127);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	close(ep[1]);
	free(argv);
	expt_strv_release(&env);
	if (pid < 0) {
		close(po[0]);
		close(pe[0]);
		close(ep[0]);
		return -1;
	}
	while (open_fds > 0) {
		struct pollfd pf[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
		int64_t left = deadline - expt_mono_ms();
		char buf[4096];

		if (left <= 0) {
			kill(pid, SIGKILL);
			r = -2;
			break;
		}
		if (poll(pf, 2, (int)left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n > 0) {
				expt_buf_add(i ? errout : out, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(i ? pe[0] : po[0]);
				if (i)
					pe[0] = -1;
				else
					po[0] = -1;
				open_fds--;
			}
		}
		if (po[0] < 0 && pe[0] < 0)
			break;
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (read(ep[0], &err_no, sizeof(err_no)) == (ssize_t)sizeof(err_no)) {
		close(ep[0]);
		errno = err_no;
		return -1;
	}
	close(ep[0]);
	if (r)
		return r;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs the exec plugin and caches its credential. */
static int exec_refresh(struct expt_kube *k, struct expt_err *err)
{
	const struct expt_kube_exec *x = k->cfg->exec;
	struct expt_buf out = EXPT_BUF_INIT, errout = EXPT_BUF_INIT;
	char *info = exec_info(k);
	json_t *j = NULL, *st;
	json_error_t je;
	const char *kind, *av, *exp;
	int rc = 0, r;

	out.max = 1u << 20;
	errout.max = 4096;
	exec_clear(k);
	k->exec_runs++;
	r = run_plugin(x, info, &out, &errout);
	free(info);
	while (errout.len &&
	       (errout.buf[errout.len - 1] == '\n' || errout.buf[errout.len - 1] == ' '))
		expt_buf_setlen(&errout, errout.len - 1);
	if (r == -1) {
		rc = expt_err_set(err, EXPT_EUSAGE,
				  "cannot run the credential plugin '%s' of user '%s' (%s): %s%s%s",
				  x->command, k->cfg->user_name, k->cfg->user_file, strerror(errno),
				  x->install_hint ? "; " : "",
				  x->install_hint ? x->install_hint : "");
		goto out;
	}
	if (r == -2) {
		rc = expt_err_set(err, EXPT_EBACKEND,
				  "the credential plugin '%s' of user '%s' ran for more than %d s "
				  "(waiting for input? expt runs it without a terminal)",
				  x->command, k->cfg->user_name, EXEC_TIMEOUT_MS / 1000);
		goto out;
	}
	if (r != 0) {
		rc = expt_err_set(err, EXPT_EDENIED,
				  "the credential plugin '%s' of user '%s' failed (exit %d)%s%s",
				  x->command, k->cfg->user_name, r, errout.len ? ": " : "",
				  errout.buf);
		goto out;
	}
	j = json_loadb(out.buf, out.len, 0, &je);
	kind = json_string_value(json_object_get(j, "kind"));
	av = json_string_value(json_object_get(j, "apiVersion"));
	st = json_object_get(j, "status");
	if (!j || !kind || strcmp(kind, "ExecCredential") || !json_is_object(st)) {
		rc = expt_err_set(err, EXPT_EBACKEND,
				  "the credential plugin '%s' printed no ExecCredential with a "
				  "status%s%s",
				  x->command, j ? "" : ": ", j ? "" : je.text);
		goto out;
	}
	if (!av || strcmp(av, x->api_version)) {
		rc = expt_err_set(err, EXPT_EBACKEND,
				  "the credential plugin '%s' answered with apiVersion '%s', the "
				  "kubeconfig asks for '%s'",
				  x->command, av ? av : "", x->api_version);
		goto out;
	}
	k->exec_token = jstr(st, "token");
	k->exec_cert = jstr(st, "clientCertificateData");
	k->exec_key = jstr(st, "clientKeyData");
	if (!k->exec_token && !(k->exec_cert && k->exec_key)) {
		rc = expt_err_set(err, EXPT_EBACKEND,
				  "the credential plugin '%s' gave neither a token nor a client "
				  "certificate and key",
				  x->command);
		goto out;
	}
	exp = json_string_value(json_object_get(st, "expirationTimestamp"));
	k->exec_expiry = 0;
	if (exp && (k->exec_expiry = parse_rfc3339(exp)) < 0) {
		rc = expt_err_set(err, EXPT_EBACKEND,
				  "the credential plugin '%s' gave a bad expirationTimestamp '%s'",
				  x->command, exp);
		goto out;
	}
	k->exec_valid = 1;
	k->exec_gen++;
out:
	if (rc)
		exec_clear(k);
	json_decref(j);
	expt_buf_release(&out);
	expt_buf_release(&errout);
	return rc;
}

/* The bearer token to send now (borrowed), or NULL; refreshes exec and token-file credentials. */
static int current_token(struct expt_kube *k, const char **tok, struct expt_err *err)
{
	const struct expt_kube_config *cfg = k->cfg;

	*tok = NULL;
	if (cfg->exec) {
		/* refresh a little before expiry, so a request does not arrive with a dead token */
		if (!k->exec_valid || (k->exec_expiry && expt_now_ms() + 10000 >= k->exec_expiry)) {
			int rc = exec_refresh(k, err);

			if (rc)
				return rc;
		}
		*tok = k->exec_token;
		if (*tok || k->exec_cert)
			return 0;
	}
	if (cfg->token_file) {
		if (!k->file_token || expt_mono_ms() - k->file_token_at > 5000) {
			struct expt_buf b = EXPT_BUF_INIT;
			struct expt_err e = EXPT_ERR_INIT;
			char *t;

			b.max = 1u << 20;
			if (expt_read_file(cfg->token_file, &b, &e)) {
				expt_buf_release(&b);
				return expt_err_set(err, EXPT_EUSAGE,
						    "cannot read the token file of user '%s': %s",
						    cfg->user_name ? cfg->user_name : "", e.msg);
			}
			t = expt_buf_detach(&b, NULL);
			t = t ? t : expt_xstrdup("");
			for (size_t n = strlen(t);
			     n && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ');)
				t[--n] = 0;
			free(k->file_token);
			k->file_token = t;
			k->file_token_at = expt_mono_ms();
		}
		*tok = k->file_token;
		return 0;
	}
	*tok = cfg->token;
	return 0;
}

/* --- transfers --- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	struct xfer *x = p;
	size_t n = size * nmemb;

	if (x->stream) {
		struct expt_kube_stream *s = x->stream;
		long http = 0;

		x->k->c->easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &http);
		if (!is_2xx(http)) {
			expt_buf_add(&s->errbody, data, n > ERRBODY_MAX ? ERRBODY_MAX : n);
			return n;
		}
		if (x->resp.len - s->off + n > STREAM_BUFFER_MAX) {
			s->cut = 1;
			return 0; /* aborts the transfer */
		}
		if (s->off > 0 && s->off >= x->resp.len / 2) {
			memmove(x->resp.buf, x->resp.buf + s->off, x->resp.len - s->off);
			expt_buf_setlen(&x->resp, x->resp.len - s->off);
			s->off = 0;
		}
	}
	if (expt_buf_add(&x->resp, data, n))
		return 0;
	return n;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->h) {
		x->k->c->multi_remove_handle(x->k->multi, x->h);
		x->k->c->easy_cleanup(x->h);
	}
	if (x->headers)
		x->k->c->slist_free_all(x->headers);
	expt_buf_release(&x->resp);
	free(x->body);
	free(x->path);
	free(x);
}

/* Sets up x->h for method + path (credentials fetched now). Not yet added to the multi. */
static int xfer_prepare(struct expt_kube *k, struct xfer *x, const char *method,
			struct expt_err *err)
{
	const struct expt_curl *c = k->c;
	const struct expt_kube_config *cfg = k->cfg;
	const char *tok = NULL;
	char *url, *hdr;
	int rc;

	if ((rc = current_token(k, &tok, err)))
		return rc;
	x->gen = k->exec_gen;
	if (x->h) {
		c->multi_remove_handle(k->multi, x->h);
		c->easy_reset(x->h);
	} else {
		x->h = c->easy_init();
		if (!x->h)
			return expt_err_set(err, EXPT_EBACKEND, "curl_easy_init failed");
	}
	if (x->headers) {
		c->slist_free_all(x->headers);
		x->headers = NULL;
	}
	expt_buf_reset(&x->resp);
	x->http = 0;
	x->done = 0;
	x->result = CURLE_OK;
	x->errbuf[0] = 0;
	url = expt_xasprintf("%s%s", k->base, x->path);
	c->easy_setopt(x->h, CURLOPT_URL, url);
	free(url);
	c->easy_setopt(x->h, CURLOPT_PRIVATE, x);
	c->easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
	c->easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	c->easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
	c->easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	c->easy_setopt(x->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	c->easy_setopt(x->h, CURLOPT_PIPEWAIT, 1L);
	c->easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	c->easy_setopt(x->h, CURLOPT_TCP_KEEPALIVE, 1L);
	c->easy_setopt(x->h, CURLOPT_USERAGENT, k->user_agent);
	c->easy_setopt(x->h, CURLOPT_ACCEPT_ENCODING, "");
	if (!x->stream)
		c->easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)REQ_TIMEOUT_MS);
	if (k->connect_to)
		c->easy_setopt(x->h, CURLOPT_CONNECT_TO, k->connect_to);
	/* TLS: verification stays on unless the kubeconfig itself says insecure-skip-tls-verify */
	if (cfg->insecure) {
		c->easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 0L);
		c->easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else {
		c->easy_setopt(x->h, CURLOPT_SSL_VERIFYPEER, 1L);
		c->easy_setopt(x->h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (cfg->ca_pem) {
			struct curl_blob blob = {cfg->ca_pem, cfg->ca_len, CURL_BLOB_COPY};

			/* only the cluster's CA, as kubectl: not the system's bundle too */
			c->easy_setopt(x->h, CURLOPT_CAINFO, (char *)NULL);
			c->easy_setopt(x->h, CURLOPT_CAPATH, (char *)NULL);
			c->easy_setopt(x->h, CURLOPT_CAINFO_BLOB, &blob);
		}
	}
	{
		const char *cert = k->exec_cert ? k->exec_cert : cfg->cert_pem;
		const char *key = k->exec_cert ? k->exec_key : cfg->key_pem;

		if (cert && key) {
			struct curl_blob cb = {(void *)cert,
					       k->exec_cert ? strlen(cert) : cfg->cert_len,
					       CURL_BLOB_COPY};
			struct curl_blob kb = {
			    (void *)key, k->exec_cert ? strlen(key) : cfg->key_len, CURL_BLOB_COPY};

			c->easy_setopt(x->h, CURLOPT_SSLCERT_BLOB, &cb);
			c->easy_setopt(x->h, CURLOPT_SSLCERTTYPE, "PEM");
			c->easy_setopt(x->h, CURLOPT_SSLKEY_BLOB, &kb);
			c->easy_setopt(x->h, CURLOPT_SSLKEYTYPE, "PEM");
		}
	}
	if (tok && *tok) {
		hdr = expt_xasprintf("Authorization: Bearer %s", tok);
		x->headers = c->slist_append(x->headers, hdr);
		free(hdr);
	} else if (cfg->username && !cfg->exec) {
		c->easy_setopt(x->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		c->easy_setopt(x->h, CURLOPT_USERNAME, cfg->username);
		c->easy_setopt(x->h, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
	}
	x->headers = c->slist_append(x->headers, "Accept: application/json, */*");
	if (!strcmp(method, "GET")) {
		c->easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
	} else {
		int apply = !strcmp(method, "APPLY");

		/* Server-side apply is a PATCH of its own content type (JSON is YAML). */
		c->easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, apply ? "PATCH" : method);
		if (x->body) {
			x->headers = c->slist_append(
			    x->headers, apply ? "Content-Type: application/apply-patch+yaml"
					: !strcmp(method, "PATCH")
					    ? "Content-Type: application/merge-patch+json"
					    : "Content-Type: application/json");
			c->easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
			c->easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, (long)strlen(x->body));
		}
	}
	c->easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
	return 0;
}

static struct xfer *xfer_new(struct expt_kube *k, const char *method, const char *path,
			     const json_t *body)
{
	struct xfer *x = expt_xcalloc(1, sizeof(*x));

	x->k = k;
	x->method = (char *)method;
	x->path = expt_xstrdup(path);
	x->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	expt_buf_init(&x->resp, EXPT_KUBE_BODY_MAX);
	return x;
}

/* Runs the multi handle once and marks finished transfers done. */
static int drive(struct expt_kube *k, int wait_ms, struct expt_err *err)
{
	const struct expt_curl *c = k->c;
	int running = 0, left = 0;
	CURLMcode mc;
	CURLMsg *m;

	if (wait_ms > 0) {
		mc = c->multi_poll(k->multi, NULL, 0, wait_ms, NULL);
		if (mc != CURLM_OK)
			return expt_err_set(err, EXPT_EBACKEND, "curl_multi_poll failed (%d)",
					    (int)mc);
	}
	mc = c->multi_perform(k->multi, &running);
	if (mc != CURLM_OK)
		return expt_err_set(err, EXPT_EBACKEND, "curl_multi_perform failed (%d)", (int)mc);
	while ((m = c->multi_info_read(k->multi, &left))) {
		struct xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		c->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (!x)
			continue;
		x->result = m->data.result;
		c->easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
		x->done = 1;
		if (x->stream)
			x->stream->ended = 1;
	}
	return 0;
}

/* Retry-After in ms (seconds form only, as the API server sends), capped; 1 s when absent. */
static int64_t retry_after_ms(struct expt_kube *k, struct xfer *x)
{
	curl_off_t ra = 0;

	if (k->c->easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
		return 1000;
	return ra > 10 ? 10000 : (int64_t)ra * 1000;
}

/* After x finished: 1 when it should be sent again (429/503 with retries left, or a 401 with
 * an exec plugin not yet re-run for it), with x->not_before set; 0 when final. */
static int wants_retry(struct expt_kube *k, struct xfer *x, struct expt_err *err, int *rc)
{
	*rc = 0;
	if (x->result != CURLE_OK)
		return 0;
	if ((x->http == 429 || x->http == 503) && x->retries < EXPT_KUBE_RETRIES) {
		x->retries++;
		x->not_before = expt_mono_ms() + retry_after_ms(k, x);
		return 1;
	}
	if (x->http == 401 && k->cfg->exec && !x->reauthed) {
		x->reauthed = 1;
		/* another request of the batch may have re-run the plugin already */
		if (!k->exec_valid || k->exec_gen == x->gen) {
			*rc = exec_refresh(k, err);
			if (*rc)
				return 0;
		}
		x->not_before = 0;
		return 1;
	}
	return 0;
}

/* The outcome of a finished, final transfer. */
static int xfer_result(struct expt_kube *k, struct xfer *x, json_t **reply,
		       struct expt_kube_status *st, struct expt_err *err)
{
	struct expt_kube_status local = EXPT_KUBE_STATUS_INIT;
	struct expt_kube_status *s = st ? st : &local;
	int rc;

	if (reply)
		*reply = NULL;
	if (x->result != CURLE_OK) {
		expt_kube_status_release(s);
		if (x->result == CURLE_WRITE_ERROR && x->resp.len >= EXPT_KUBE_BODY_MAX)
			return expt_err_set(err, EXPT_EBACKEND,
					    "%s %s: the reply is larger than %u MiB", x->method,
					    x->path, EXPT_KUBE_BODY_MAX >> 20);
		return unreachable(err, k, x->method, x->path, x->result, x->errbuf);
	}
	if (!is_2xx(x->http)) {
		decode_status(s, x->http, x->resp.buf, x->resp.len);
		rc = refused(err, x->method, x->path, s, k->cfg);
		if (x->retries && err) {
			size_t n = strlen(err->msg);

			snprintf(err->msg + n, sizeof(err->msg) - n, ", still after %d retries",
				 x->retries);
		}
		expt_kube_status_release(&local);
		return rc;
	}
	if (reply && x->resp.len) {
		json_error_t je;

		*reply = json_loadb(x->resp.buf, x->resp.len, 0, &je);
		if (!*reply)
			return expt_err_set(err, EXPT_EBACKEND,
					    "%s %s: the server's reply is not JSON: %s", x->method,
					    x->path, je.text);
	}
	if (st) {
		expt_kube_status_release(st);
		st->http = x->http;
		st->code = x->http;
	}
	return 0;
}

int expt_kube_request(struct expt_kube *k, const char *method, const char *path_and_query,
		      const json_t *body, json_t **reply, struct expt_kube_status *st,
		      struct expt_err *err)
{
	struct expt_kube_req r = {0};
	int rc;

	r.method = method;
	r.path = path_and_query;
	r.body = body;
	r.want_reply = reply != NULL;
	rc = expt_kube_request_many(k, &r, 1, 1, NULL);
	if (reply)
		*reply = r.reply;
	else
		json_decref(r.reply);
	if (rc && err)
		*err = r.err;
	if (st) {
		expt_kube_status_release(st);
		*st = r.st;
	} else {
		expt_kube_status_release(&r.st);
	}
	return rc;
}

int expt_kube_request_text(struct expt_kube *k, const char *method, const char *path_and_query,
			   struct expt_buf *out, struct expt_kube_status *st, struct expt_err *err)
{
	struct expt_kube_req r = {0};
	int rc;

	r.method = method;
	r.path = path_and_query;
	r.text = out;
	rc = expt_kube_request_many(k, &r, 1, 1, NULL);
	if (rc && err)
		*err = r.err;
	if (st) {
		expt_kube_status_release(st);
		*st = r.st;
	} else {
		expt_kube_status_release(&r.st);
	}
	return rc;
}

int expt_kube_request_many(struct expt_kube *k, struct expt_kube_req *reqs, size_t n,
			   int concurrency, struct expt_err *err)
{
	struct xfer **xs;
	size_t next = 0, active = 0, finished = 0, nfailed = 0, first_failed = n;
	int rc = 0;

	if (concurrency <= 0)
		concurrency = 16;
	xs = expt_xcalloc(n ? n : 1, sizeof(*xs));
	for (size_t i = 0; i < n; i++) {
		reqs[i].reply = NULL;
		reqs[i].rc = 0;
		reqs[i].retries = 0;
		memset(&reqs[i].st, 0, sizeof(reqs[i].st));
		expt_err_clear(&reqs[i].err);
	}
	while (finished < n) {
		int64_t now = expt_mono_ms(), wait = 100;

		/* start new ones, and retries whose wait is over */
		for (size_t i = 0; i < next; i++) {
			struct xfer *x = xs[i];

			if (x && x->not_before < 0 && -x->not_before <= now) {
				x->not_before = 0;
				if ((reqs[i].rc = xfer_prepare(k, x, x->method, &reqs[i].err))) {
					x->done = 2; /* failed before sending */
				} else {
					k->c->multi_add_handle(k->multi, x->h);
				}
			}
		}
		while (next < n && active < (size_t)concurrency) {
			struct expt_kube_req *r = &reqs[next];
			struct xfer *x = xfer_new(k, r->method, r->path, r->body);

			xs[next] = x;
			if ((r->rc = xfer_prepare(k, x, r->method, &r->err)))
				x->done = 2;
			else
				k->c->multi_add_handle(k->multi, x->h);
			active++;
			next++;
		}
		if ((rc = drive(k, 0, err)))
			goto out;
		for (size_t i = 0; i < next; i++) {
			struct xfer *x = xs[i];
			int r2 = 0;

			if (!x || !x->done)
				continue;
			if (x->done == 1 && wants_retry(k, x, &reqs[i].err, &r2)) {
				x->done = 0;
				k->c->multi_remove_handle(k->multi, x->h);
				/* negative not_before: waiting to be re-sent at -not_before */
				x->not_before = -(x->not_before ? x->not_before : now);
				continue;
			}
			if (x->done == 1)
				reqs[i].rc =
				    r2 ? r2
				       : xfer_result(k, x,
						     reqs[i].want_reply ? &reqs[i].reply : NULL,
						     &reqs[i].st, &reqs[i].err);
			if (x->done == 1 && !reqs[i].rc && reqs[i].text &&
			    expt_buf_add(reqs[i].text, x->resp.buf, x->resp.len))
				reqs[i].rc =
				    expt_err_set(&reqs[i].err, EXPT_EBACKEND,
						 "%s %s: the reply is longer than %zu bytes",
						 x->method, x->path, reqs[i].text->max);
			reqs[i].retries = (unsigned)x->retries;
			if (reqs[i].rc) {
				nfailed++;
				if (first_failed == n)
					first_failed = i;
			}
			xfer_free(x);
			xs[i] = NULL;
			active--;
			finished++;
		}
		if (finished == n)
			break;
		for (size_t i = 0; i < next; i++)
			if (xs[i] && xs[i]->not_before < 0) {
				int64_t w = -xs[i]->not_before - now;

				if (w < wait)
					wait = w < 1 ? 1 : w;
			}
		if ((rc = drive(k, (int)wait, err)))
			goto out;
	}
	if (nfailed) {
		/* the first by index, so that the answer does not depend on timing */
		for (size_t i = 0; i < n; i++)
			if (reqs[i].rc) {
				first_failed = i;
				break;
			}
		rc = reqs[first_failed].rc;
		if (err) {
			if (n == 1)
				*err = reqs[first_failed].err;
			else
				expt_err_set(err, rc, "%zu of %zu requests failed; the first: %s",
					     nfailed, n, reqs[first_failed].err.msg);
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		xfer_free(xs[i]);
	free(xs);
	return rc;
}

/* --- open / close --- */

int expt_kube_open(struct expt_kube **out, const struct expt_kube_config *cfg, struct expt_err *err)
{
	const struct expt_curl *c = expt_curl(err);
	struct expt_kube *k;
	const char *hostport, *slash;
	int https;

	*out = NULL;
	if (!c)
		return EXPT_EBACKEND;
	https = !strncmp(cfg->server, "https://", 8);
	if (!https && strncmp(cfg->server, "http://", 7))
		return expt_err_set(err, EXPT_EUSAGE, "server %s: expected an https:// URL",
				    cfg->server);
	if (!https && (cfg->token || cfg->token_file || cfg->exec || cfg->password))
		return expt_err_set(err, EXPT_EUSAGE,
				    "server %s is plain http: expt will not send credentials "
				    "unencrypted",
				    cfg->server);
	k = expt_xcalloc(1, sizeof(*k));
	k->cfg = cfg;
	k->c = c;
	k->multi = c->multi_init();
	if (!k->multi) {
		free(k);
		return expt_err_set(err, EXPT_EBACKEND, "curl_multi_init failed");
	}
	c->multi_setopt(k->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	k->user_agent = expt_xasprintf("expt/%s", EXPT_VERSION);
	hostport = cfg->server + (https ? 8 : 7);
	slash = strchr(hostport, '/');
	if (cfg->tls_server_name && https) {
		/* verify against (and send SNI for) tls-server-name, connect to the server's
		 * address: the URL names tls-server-name, CONNECT_TO maps it to the real host */
		char *hp = slash ? expt_xstrndup(hostport, (size_t)(slash - hostport))
				 : expt_xstrdup(hostport);
		char *port = strrchr(hp, ':');
		char *ct;

		if (port && strchr(port, ']'))
			port = NULL;
		if (port)
			*port++ = 0;
		ct = expt_xasprintf("%s:%s:%s:%s", cfg->tls_server_name, port ? port : "443", hp,
				    port ? port : "443");
		k->connect_to = c->slist_append(NULL, ct);
		k->base = expt_xasprintf("https://%s:%s%s", cfg->tls_server_name,
					 port ? port : "443", slash ? slash : "");
		free(ct);
		free(hp);
	} else {
		k->base = expt_xstrdup(cfg->server);
	}
	*out = k;
	return 0;
}

const struct expt_kube_config *expt_kube_cfg(const struct expt_kube *k)
{
	return k->cfg;
}

unsigned expt_kube_exec_runs(const struct expt_kube *k)
{
	return k->exec_runs;
}

/* --- streams --- */

int expt_kube_stream_open(struct expt_kube *k, const char *path_and_query,
			  struct expt_kube_stream **out, struct expt_err *err)
{
	struct expt_kube_stream *s = expt_xcalloc(1, sizeof(*s));
	struct xfer *x = xfer_new(k, "GET", path_and_query, NULL);
	int rc;

	*out = NULL;
	x->stream = s;
	x->resp.max = 0; /* bounded by STREAM_BUFFER_MAX in on_body */
	s->k = k;
	s->x = x;
	expt_buf_init(&s->errbody, ERRBODY_MAX);
	if ((rc = xfer_prepare(k, x, "GET", err))) {
		x->stream = NULL;
		xfer_free(x);
		free(s);
		return rc;
	}
	k->c->multi_add_handle(k->multi, x->h);
	s->next = k->streams;
	k->streams = s;
	*out = s;
	return 0;
}

int expt_kube_pump(struct expt_kube *k, int timeout_ms, struct expt_err *err)
{
	int rc = drive(k, 0, err);

	if (rc || timeout_ms <= 0)
		return rc;
	return drive(k, timeout_ms, err);
}

int expt_kube_stream_line(struct expt_kube_stream *s, const char **line, size_t *len)
{
	struct expt_buf *b = &s->x->resp;
	size_t avail = b->len - s->off;
	char *start = b->buf + s->off, *nl;

	if (!avail)
		return 0;
	nl = memchr(start, '\n', avail);
	if (nl) {
		*nl = 0;
		*line = start;
		*len = (size_t)(nl - start);
		if (*len && start[*len - 1] == '\r')
			start[--*len] = 0;
		s->off += (size_t)(nl - start) + 1;
		return 1;
	}
	if (avail >= EXPT_KUBE_LINE_MAX || s->ended) {
		size_t n = avail >= EXPT_KUBE_LINE_MAX ? EXPT_KUBE_LINE_MAX : avail;

		/* the final line without '\n' (NUL-terminated by the buffer), or a piece of an
		 * overlong line (not NUL-terminated) */
		*line = start;
		*len = n;
		s->off += n;
		return 1;
	}
	return 0;
}

int expt_kube_stream_ended(struct expt_kube_stream *s, long *http_status, int *rc,
			   struct expt_kube_status *st, struct expt_err *err)
{
	struct xfer *x = s->x;
	long http = x->http;
	int r = 0;

	if (!s->ended || x->resp.len - s->off > 0)
		return 0;
	if (!http)
		s->k->c->easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &http);
	if (http_status)
		*http_status = http;
	if (s->cut) {
		r = expt_err_set(err, EXPT_EBACKEND,
				 "GET %s: more than %u MiB of unread stream data: cut", x->path,
				 STREAM_BUFFER_MAX >> 20);
	} else if (http && !is_2xx(http)) {
		struct expt_kube_status local = EXPT_KUBE_STATUS_INIT;
		struct expt_kube_status *sp = st ? st : &local;

		decode_status(sp, http, s->errbody.buf, s->errbody.len);
		r = refused(err, "GET", x->path, sp, s->k->cfg);
		expt_kube_status_release(&local);
	} else if (x->result != CURLE_OK) {
		r = unreachable(err, s->k, "GET", x->path, x->result, x->errbuf);
	}
	if (rc)
		*rc = r;
	return 1;
}

void expt_kube_stream_set_data(struct expt_kube_stream *s, void *data)
{
	s->data = data;
}

void *expt_kube_stream_data(const struct expt_kube_stream *s)
{
	return s->data;
}

void expt_kube_stream_close(struct expt_kube_stream *s)
{
	struct expt_kube_stream **pp;

	if (!s)
		return;
	for (pp = &s->k->streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	xfer_free(s->x);
	expt_buf_release(&s->errbody);
	free(s);
}

/* --- watch --- */

struct wevent {
	const char *type;
	json_t *obj;
};

struct expt_kube_watch {
	struct expt_kube *k;
	char *path, *query;
	char *rv;
	struct expt_kube_stream *s;
	struct wevent *q; /* FIFO: q[qhead..qn) */
	size_t qhead, qn, qcap;
	json_t *known; /* uid → the last object seen */
	int need_relist;
	int64_t next_open; /* monotonic ms */
	int64_t backoff;
	unsigned relists;
};

static void wq_push(struct expt_kube_watch *w, const char *type, json_t *obj)
{
	if (w->qhead > 0 && w->qn == w->qcap) {
		memmove(w->q, w->q + w->qhead, (w->qn - w->qhead) * sizeof(*w->q));
		w->qn -= w->qhead;
		w->qhead = 0;
	}
	if (w->qn == w->qcap) {
		w->qcap = w->qcap ? w->qcap * 2 : 64;
		w->q = expt_xrealloc(w->q, w->qcap * sizeof(*w->q));
	}
	w->q[w->qn].type = type;
	w->q[w->qn++].obj = obj;
}

static const char *obj_uid(const json_t *o)
{
	const json_t *md = json_object_get(o, "metadata");
	const char *uid = json_string_value(json_object_get(md, "uid"));

	return uid ? uid : json_string_value(json_object_get(md, "name"));
}

static const char *obj_rv(const json_t *o)
{
	return json_string_value(
	    json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

static void set_rv(struct expt_kube_watch *w, const char *rv)
{
	if (!rv)
		return;
	free(w->rv);
	w->rv = expt_xstrdup(rv);
}

/* Lists the collection (paginated) and queues the events that take the caller from what it
 * has seen (w->known) to what exists now. */
static int relist(struct expt_kube_watch *w, struct expt_err *err)
{
	json_t *now = json_object(), *page = NULL;
	char *cont = NULL;
	const char *kind = NULL;
	int rc = 0, restarted = 0;

	for (;;) {
		char *path, *esc = cont ? expt_kube_escape(cont) : NULL;
		const json_t *items, *md;
		json_t *item;
		size_t i;
		char kbuf[256];

		path = expt_xasprintf("%s?%s%slimit=500%s%s", w->path, w->query ? w->query : "",
				      w->query && *w->query ? "&" : "", esc ? "&continue=" : "",
				      esc ? esc : "");
		free(esc);
		json_decref(page);
		page = NULL;
		{
			struct expt_kube_status st = EXPT_KUBE_STATUS_INIT;

			rc = expt_kube_request(w->k, "GET", path, NULL, &page, &st, err);
			free(path);
			if (rc && st.code == 410 && cont && !restarted) {
				/* the continue token expired: list again from the start */
				expt_kube_status_release(&st);
				json_decref(now);
				now = json_object();
				free(cont);
				cont = NULL;
				restarted = 1;
				continue;
			}
			expt_kube_status_release(&st);
		}
		if (rc)
			goto out;
		items = json_object_get(page, "items");
		kind = json_string_value(json_object_get(page, "kind"));
		kbuf[0] = 0;
		if (kind && strlen(kind) > 4 && strlen(kind) < sizeof(kbuf) &&
		    !strcmp(kind + strlen(kind) - 4, "List"))
			snprintf(kbuf, sizeof(kbuf), "%.*s", (int)strlen(kind) - 4, kind);
		json_array_foreach(items, i, item)
		{
			const char *uid = obj_uid(item);

			if (!uid)
				continue;
			/* list items carry no kind: give them the list's, like watch events */
			if (kbuf[0] && !json_object_get(item, "kind"))
				json_object_set_new(item, "kind", json_string(kbuf));
			if (!json_object_get(item, "apiVersion") &&
			    json_object_get(page, "apiVersion"))
				json_object_set(item, "apiVersion",
						json_object_get(page, "apiVersion"));
			json_object_set(now, uid, item);
		}
		md = json_object_get(page, "metadata");
		free(cont);
		cont = json_string_value(json_object_get(md, "continue")) &&
			       *json_string_value(json_object_get(md, "continue"))
			   ? expt_xstrdup(json_string_value(json_object_get(md, "continue")))
			   : NULL;
		if (!cont) {
			set_rv(w, json_string_value(json_object_get(md, "resourceVersion")));
			break;
		}
	}
	{
		const char *uid;
		json_t *o;
		void *tmp;

		json_object_foreach(now, uid, o)
		{
			json_t *old = json_object_get(w->known, uid);

			if (!old) {
				wq_push(w, "ADDED", json_incref(o));
			} else {
				const char *a = obj_rv(old), *b = obj_rv(o);

				if (!a || !b || strcmp(a, b))
					wq_push(w, "MODIFIED", json_incref(o));
			}
		}
		json_object_foreach_safe(w->known, tmp, uid, o)
		{
			if (!json_object_get(now, uid))
				wq_push(w, "DELETED", json_incref(o));
		}
	}
	json_decref(w->known);
	w->known = now;
	now = NULL;
	w->need_relist = 0;
out:
	free(cont);
	json_decref(page);
	json_decref(now);
	return rc;
}

static int watch_start(struct expt_kube_watch *w, struct expt_err *err)
{
	char *path, *rv = expt_kube_escape(w->rv ? w->rv : "");
	int rc;

	path = expt_xasprintf("%s?%s%swatch=1&allowWatchBookmarks=true&resourceVersion=%s"
			      "&timeoutSeconds=%d",
			      w->path, w->query ? w->query : "", w->query && *w->query ? "&" : "",
			      rv, 300 + (int)(expt_mono_ms() % 300));
	free(rv);
	rc = expt_kube_stream_open(w->k, path, &w->s, err);
	free(path);
	return rc;
}

int expt_kube_watch_open(struct expt_kube *k, const char *collection_path, const char *query,
			 struct expt_kube_watch **out, struct expt_err *err)
{
	struct expt_kube_watch *w = expt_xcalloc(1, sizeof(*w));
	int rc;

	*out = NULL;
	w->k = k;
	w->path = expt_xstrdup(collection_path);
	w->query = query && *query ? expt_xstrdup(query) : NULL;
	w->known = json_object();
	w->backoff = 500;
	if ((rc = relist(w, err)) || (rc = watch_start(w, err))) {
		w->k = NULL;
		expt_kube_watch_close(w);
		return rc;
	}
	k->watches = expt_xrealloc(k->watches, (k->nwatches + 1) * sizeof(*k->watches));
	k->watches[k->nwatches++] = w;
	*out = w;
	return 0;
}

static void watch_broken(struct expt_kube_watch *w, int relist_too)
{
	expt_kube_stream_close(w->s);
	w->s = NULL;
	if (relist_too)
		w->need_relist = 1;
	w->next_open = expt_mono_ms() + w->backoff;
	w->backoff = w->backoff * 2 > 30000 ? 30000 : w->backoff * 2;
}

/* One watch event line. Returns 1 when an event was queued, 0 when none, -1 when the stream
 * must be abandoned (w already updated). */
static int watch_line(struct expt_kube_watch *w, const char *line, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(line, len, 0, &je), *obj;
	const char *type;

	if (!len) {
		json_decref(j);
		return 0;
	}
	type = json_string_value(json_object_get(j, "type"));
	obj = json_object_get(j, "object");
	if (!j || !type || !json_is_object(obj)) {
		json_decref(j);
		watch_broken(w, 0);
		return -1;
	}
	if (!strcmp(type, "BOOKMARK")) {
		set_rv(w, obj_rv(obj));
		json_decref(j);
		return 0;
	}
	if (!strcmp(type, "ERROR")) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));

		json_decref(j);
		if (code == 410) {
			/* too old: the events between are gone, relist now (no backoff) */
			watch_broken(w, 1);
			w->next_open = 0;
		} else {
			watch_broken(w, 0);
		}
		return -1;
	}
	w->backoff = 500; /* events flow: the connection is healthy */
	set_rv(w, obj_rv(obj));
	{
		const char *uid = obj_uid(obj), *t = NULL;

		if (!strcmp(type, "ADDED"))
			t = "ADDED";
		else if (!strcmp(type, "MODIFIED"))
			t = "MODIFIED";
		else if (!strcmp(type, "DELETED"))
			t = "DELETED";
		if (!t) {
			json_decref(j);
			return 0;
		}
		if (uid) {
			if (t[0] == 'D')
				json_object_del(w->known, uid);
			else
				json_object_set(w->known, uid, obj);
		}
		wq_push(w, t, json_incref(obj));
	}
	json_decref(j);
	return 1;
}

int expt_kube_watch_next(struct expt_kube_watch *w, const char **type, json_t **obj,
			 struct expt_err *err)
{
	int rc;

	*type = NULL;
	*obj = NULL;
	while (w->qhead == w->qn) {
		if (w->s) {
			const char *line;
			size_t len;
			long http = 0;
			int r = 0;
			struct expt_kube_status st = EXPT_KUBE_STATUS_INIT;
			struct expt_err e = EXPT_ERR_INIT;

			while (w->s && w->qhead == w->qn &&
			       expt_kube_stream_line(w->s, &line, &len))
				watch_line(w, line, len);
			if (w->qhead != w->qn)
				break;
			if (!w->s)
				continue;
			if (!expt_kube_stream_ended(w->s, &http, &r, &st, &e))
				return 0;
			if (st.code == 410 || http == 410) {
				watch_broken(w, 1);
				w->next_open = 0;
			} else if (!r) {
				/* a clean end (timeoutSeconds, apiserver restart): watch on */
				expt_kube_stream_close(w->s);
				w->s = NULL;
				w->next_open = 0;
			} else {
				/* refused (permissions revoked, namespace deleted): relist, whose
				 * error reaches the caller, rather than retry a watch forever */
				watch_broken(w, r == EXPT_EDENIED || r == EXPT_ENOTFOUND);
			}
			expt_kube_status_release(&st);
			continue;
		}
		if (expt_mono_ms() < w->next_open)
			return 0;
		if (w->need_relist) {
			rc = relist(w, err);
			if (rc == EXPT_EDENIED || rc == EXPT_ENOTFOUND)
				return rc;
			if (rc) {
				watch_broken(w, 1);
				return 0;
			}
			w->relists++;
		}
		if (watch_start(w, err)) {
			watch_broken(w, 0);
			return 0;
		}
		if (w->qhead == w->qn)
			return 0;
	}
	*type = w->q[w->qhead].type;
	*obj = w->q[w->qhead].obj;
	w->qhead++;
	return 1;
}

void expt_kube_watch_resume(struct expt_kube_watch *w, const char *rv)
{
	expt_kube_stream_close(w->s);
	w->s = NULL;
	set_rv(w, rv);
	w->next_open = 0;
}

const char *expt_kube_watch_rv(const struct expt_kube_watch *w)
{
	return w->rv ? w->rv : "";
}

unsigned expt_kube_watch_relists(const struct expt_kube_watch *w)
{
	return w->relists;
}

void expt_kube_watch_close(struct expt_kube_watch *w)
{
	if (!w)
		return;
	if (w->k)
		for (size_t i = 0; i < w->k->nwatches; i++)
			if (w->k->watches[i] == w) {
				w->k->watches[i] = w->k->watches[--w->k->nwatches];
				break;
			}
	expt_kube_stream_close(w->s);
	for (size_t i = w->qhead; i < w->qn; i++)
		json_decref(w->q[i].obj);
	free(w->q);
	json_decref(w->known);
	free(w->path);
	free(w->query);
	free(w->rv);
	free(w);
}

void expt_kube_close(struct expt_kube *k)
{
	if (!k)
		return;
	while (k->nwatches)
		expt_kube_watch_close(k->watches[0]);
	free(k->watches);
	while (k->streams)
		expt_kube_stream_close(k->streams);
	k->c->multi_cleanup(k->multi);
	if (k->connect_to)
		k->c->slist_free_all(k->connect_to);
	exec_clear(k);
	free(k->file_token);
	free(k->base);
	free(k->user_agent);
	free(k);
}

/* --- authorization --- */

int expt_kube_access_check(struct expt_kube *k, const char *verb, const char *group,
			   const char *resource, const char *ns, int *allowed, char **reason,
			   struct expt_err *err)
{
	json_t *body = json_object(), *ra = json_object(), *spec = json_object(), *reply = NULL;
	const json_t *st;
	const char *r;
	int rc;

	*allowed = 0;
	if (reason)
		*reason = NULL;
	json_object_set_new(body, "apiVersion", json_string("authorization.k8s.io/v1"));
	json_object_set_new(body, "kind", json_string("SelfSubjectAccessReview"));
	json_object_set_new(ra, "verb", json_string(verb));
	json_object_set_new(ra, "group", json_string(group ? group : ""));
	json_object_set_new(ra, "resource", json_string(resource));
	if (ns && *ns)
		json_object_set_new(ra, "namespace", json_string(ns));
	json_object_set_new(spec, "resourceAttributes", ra);
	json_object_set_new(body, "spec", spec);
	rc = expt_kube_request(k, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
			       body, &reply, NULL, err);
	json_decref(body);
	if (rc)
		return rc;
	st = json_object_get(reply, "status");
	*allowed = json_is_true(json_object_get(st, "allowed"));
	r = json_string_value(json_object_get(st, "reason"));
	if (!r)
		r = json_string_value(json_object_get(st, "evaluationError"));
	if (reason)
		*reason = expt_xstrdup(r ? r : "");
	json_decref(reply);
	return 0;
}
