/* The MLflow tracking REST client: one curl easy handle, JSON in and out, errors as values. */
#include "mlflow.h"

#include "util/curl_dl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

#define TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 5000
#define REPLY_MAX (64u << 20)

struct expt_mlflow {
	char *base; /* http://host:port[/prefix] */
	char *user, *password, *token;
	char *ca_path, *client_cert;
	int insecure;
	CURL *c;
	struct expt_buf reply;
	long last_status; /* 0: no answer */
	char last_code[64];
};

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? expt_strdup(v) : NULL;
}

int expt_mlflow_open(struct expt_mlflow **out, const char *uri, struct expt_err *err)
{
	struct expt_mlflow *m;
	const char *rest;
	const char *ins;
	size_t len;

	*out = NULL;
	if (!strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8))
		rest = NULL;
	else if (!strncmp(uri, "mlflow://", 9))
		rest = uri + 9;
	else
		return expt_err_set(err, EXPT_EUSAGE,
				    "tracking URI '%s': expected http://HOST:PORT, https://… or "
				    "mlflow://HOST:PORT",
				    uri);
	if (!expt_curl(err))
		return err ? err->code : EXPT_EBACKEND;
	if (!(m = expt_calloc(1, sizeof(*m))))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	m->base = rest ? expt_asprintf("http://%s", rest) : expt_strdup(uri);
	if (m->base) {
		len = strlen(m->base);
		while (len && m->base[len - 1] == '/')
			m->base[--len] = '\0';
	}
	m->user = env_dup("MLFLOW_TRACKING_USERNAME");
	m->password = env_dup("MLFLOW_TRACKING_PASSWORD");
	m->token = env_dup("MLFLOW_TRACKING_TOKEN");
	m->ca_path = env_dup("MLFLOW_TRACKING_SERVER_CERT_PATH");
	m->client_cert = env_dup("MLFLOW_TRACKING_CLIENT_CERT_PATH");
	ins = getenv("MLFLOW_TRACKING_INSECURE_TLS");
	m->insecure = ins && (!strcasecmp(ins, "true") || !strcmp(ins, "1"));
	expt_buf_init(&m->reply, REPLY_MAX);
	m->c = EXPT_CURL->easy_init();
	if (!m->base || !m->c) {
		expt_mlflow_close(m);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	*out = m;
	return 0;
}

void expt_mlflow_close(struct expt_mlflow *m)
{
	if (!m)
		return;
	if (m->c)
		EXPT_CURL->easy_cleanup(m->c);
	free(m->base);
	free(m->user);
	free(m->password);
	free(m->token);
	free(m->ca_path);
	free(m->client_cert);
	expt_buf_release(&m->reply);
	free(m);
}

const char *expt_mlflow_base(const struct expt_mlflow *m)
{
	return m->base;
}

int expt_mlflow_retryable(const struct expt_mlflow *m)
{
	long s = m->last_status;
	return s == 0 || s >= 500 || s == 429 || s == 401 || s == 403 || s == 408;
}

const char *expt_mlflow_error_code(const struct expt_mlflow *m)
{
	return m->last_code;
}

/* A URL query value, escaped. Caller frees. */
static char *qesc(const char *s)
{
	struct expt_buf b = EXPT_BUF_INIT;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			expt_buf_addch(&b, (char)*p);
		else
			expt_buf_addf(&b, "%%%02X", *p);
	}
	return expt_buf_detach(&b, NULL);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *payload)
{
	struct expt_buf *b = payload;
	size_t n = size * nmemb;

	return expt_buf_add(b, p, n) ? 0 : n;
}

/* Fills err from an error answer in m->reply. */
static int answer_error(struct expt_mlflow *m, const char *method, const char *path,
			struct expt_err *err)
{
	json_t *j = json_loadb(m->reply.buf, m->reply.len, 0, NULL);
	const char *code = NULL, *msg = NULL;
	char text[300];
	const char *q = strchr(path, '?');
	int rc = EXPT_EBACKEND;

	if (j) {
		code = json_string_value(json_object_get(j, "error_code"));
		msg = json_string_value(json_object_get(j, "message"));
	}
	snprintf(m->last_code, sizeof(m->last_code), "%s", code ? code : "");
	if (!msg) {
		/* Plain-text errors: basic-auth's 401, the host check's 403. */
		size_t n = m->reply.len < sizeof(text) - 1 ? m->reply.len : sizeof(text) - 1;
		memcpy(text, m->reply.buf, n);
		text[n] = '\0';
		for (char *p = text; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		msg = text;
	}
	if (code && !strcmp(code, "RESOURCE_DOES_NOT_EXIST"))
		rc = EXPT_ENOTFOUND;
	expt_err_set(err, rc, "MLflow server %s: %s %.*s: HTTP %ld%s%s%s%s%s", m->base, method,
		     (int)(q ? (size_t)(q - path) : strlen(path)), path, m->last_status,
		     code ? " " : "", code ? code : "", *msg ? ": " : "", msg,
		     m->last_status == 401 ? " (set MLFLOW_TRACKING_USERNAME and "
					     "MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)"
					   : "");
	json_decref(j);
	return rc;
}

/* One request to url (complete): a POST of body, a PUT of the file up (size bytes), or a GET.
 * path names the call in messages. */
static int request(struct expt_mlflow *m, const char *method, const char *url, const char *path,
		   const char *body, size_t len, FILE *up, int64_t size, json_t **reply,
		   struct expt_err *err)
{
	struct curl_slist *hdr = NULL, *h2;
	char *auth = NULL;
	CURLcode rc;
	int ret = 0;

	if (reply)
		*reply = NULL;
	m->last_status = 0;
	m->last_code[0] = '\0';
	expt_buf_reset(&m->reply);
	EXPT_CURL->easy_reset(m->c);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_URL, url);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_NOSIGNAL, 1L);
	if (up) {
		/* A file takes as long as it takes; a transfer that stalls does not. */
		EXPT_CURL->easy_setopt(m->c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_LOW_SPEED_TIME, 30L);
	} else {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
	}
	EXPT_CURL->easy_setopt(m->c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_WRITEFUNCTION, on_body);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_WRITEDATA, &m->reply);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_USERAGENT, "expt/" EXPT_VERSION);
	if (m->user && m->password) {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_USERNAME, m->user);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_PASSWORD, m->password);
	} else if (m->token) {
		if (!(auth = expt_asprintf("Authorization: Bearer %s", m->token)))
			goto nomem;
		if (!(h2 = EXPT_CURL->slist_append(hdr, auth)))
			goto nomem;
		hdr = h2;
	}
	if (m->insecure) {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_SSL_VERIFYPEER, 0L);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (m->ca_path)
		EXPT_CURL->easy_setopt(m->c, CURLOPT_CAINFO, m->ca_path);
	if (m->client_cert)
		EXPT_CURL->easy_setopt(m->c, CURLOPT_SSLCERT, m->client_cert);
	if (!strcmp(method, "POST")) {
		if (!(h2 = EXPT_CURL->slist_append(hdr, "Content-Type: application/json")))
			goto nomem;
		hdr = h2;
		/* No "Expect: 100-continue" (curl's default past 1 KiB): the server does not
		 * answer it, and curl would wait a second before every batch. */
		if (!(h2 = EXPT_CURL->slist_append(hdr, "Expect:")))
			goto nomem;
		hdr = h2;
		EXPT_CURL->easy_setopt(m->c, CURLOPT_POST, 1L);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_POSTFIELDS, body ? body : "{}");
		EXPT_CURL->easy_setopt(m->c, CURLOPT_POSTFIELDSIZE, (long)(body ? len : 2));
	} else if (up) {
		if (!(h2 = EXPT_CURL->slist_append(hdr, "Expect:")))
			goto nomem;
		hdr = h2;
		EXPT_CURL->easy_setopt(m->c, CURLOPT_UPLOAD, 1L);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_READDATA, up);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	}
	if (hdr)
		EXPT_CURL->easy_setopt(m->c, CURLOPT_HTTPHEADER, hdr);
	rc = EXPT_CURL->easy_perform(m->c);
	if (rc == CURLE_WRITE_ERROR) {
		ret = expt_err_set(err, EXPT_EBACKEND,
				   "MLflow server %s: the answer to %s %s is over %u bytes",
				   m->base, method, path, REPLY_MAX);
		goto out;
	}
	if (rc != CURLE_OK) {
		ret = expt_err_set(err, EXPT_EBACKEND, "MLflow server %s: %s %s: %s", m->base,
				   method, path, EXPT_CURL->easy_strerror(rc));
		goto out;
	}
	EXPT_CURL->easy_getinfo(m->c, CURLINFO_RESPONSE_CODE, &m->last_status);
	if (m->last_status < 200 || m->last_status > 299) {
		ret = answer_error(m, method, path, err);
		goto out;
	}
	if (reply) {
		json_error_t je;
		if (!(*reply = json_loadb(m->reply.buf, m->reply.len, 0, &je))) {
			m->last_status = 0;
			ret = expt_err_set(err, EXPT_EBACKEND,
					   "MLflow server %s: %s %s: the answer is not JSON (%s)",
					   m->base, method, path, je.text);
		}
	}
	goto out;
nomem:
	ret = expt_err_set(err, EXPT_ENOMEM, "out of memory");
out:
	EXPT_CURL->slist_free_all(hdr);
	free(auth);
	return ret;
}

int expt_mlflow_call(struct expt_mlflow *m, const char *method, const char *path, const char *body,
		     size_t len, json_t **reply, struct expt_err *err)
{
	char *url = expt_asprintf("%s/api/2.0/mlflow/%s", m->base, path);
	int rc;

	if (!url)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	rc = request(m, method, url, path, body, len, NULL, 0, reply, err);
	free(url);
	return rc;
}

/* A path in a URL: every byte but unreserved ones and '/' escaped. Caller frees. */
static char *pesc(const char *s)
{
	struct expt_buf b = EXPT_BUF_INIT;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~/", *p))
			expt_buf_addch(&b, (char)*p);
		else
			expt_buf_addf(&b, "%%%02X", *p);
	}
	return expt_buf_detach(&b, NULL);
}

int expt_mlflow_artifact_put(struct expt_mlflow *m, const char *path, const char *file,
			     struct expt_err *err)
{
	FILE *f = fopen(file, "rb");
	char *esc, *url;
	int64_t size = -1;
	int rc;

	if (!f)
		return expt_err_errno(err, EXPT_EFAIL, "cannot read %s", file);
	if (!fseeko(f, 0, SEEK_END))
		size = (int64_t)ftello(f);
	rewind(f);
	esc = pesc(path);
	url = esc ? expt_asprintf("%s/api/2.0/mlflow-artifacts/artifacts/%s", m->base, esc) : NULL;
	free(esc);
	if (!url) {
		fclose(f);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	rc = request(m, "PUT", url, "mlflow-artifacts/artifacts", NULL, 0, f, size, NULL, err);
	free(url);
	fclose(f);
	return rc;
}

int expt_mlflow_artifact_list(struct expt_mlflow *m, const char *path, json_t **files,
			      struct expt_err *err)
{
	char *q = qesc(path),
	     *url = q ? expt_asprintf("%s/api/2.0/mlflow-artifacts/artifacts?path=%s", m->base, q)
		      : NULL;
	json_t *rep = NULL;
	int rc;

	*files = NULL;
	free(q);
	if (!url)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	rc = request(m, "GET", url, "mlflow-artifacts/artifacts", NULL, 0, NULL, 0, &rep, err);
	free(url);
	if (rc)
		return rc;
	*files = json_incref(json_object_get(rep, "files"));
	if (!*files)
		*files = json_array();
	json_decref(rep);
	return 0;
}

static size_t on_file(char *p, size_t size, size_t nmemb, void *payload)
{
	return fwrite(p, size, nmemb, payload);
}

int expt_mlflow_artifact_get(struct expt_mlflow *m, const char *path, const char *dest,
			     struct expt_err *err)
{
	char *esc = pesc(path),
	     *url = esc ? expt_asprintf("%s/api/2.0/mlflow-artifacts/artifacts/%s", m->base, esc)
			: NULL;
	FILE *f;
	CURLcode rc;
	int ret = 0;

	free(esc);
	if (!url)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	if (!(f = fopen(dest, "wb"))) {
		free(url);
		return expt_err_errno(err, EXPT_EFAIL, "cannot write %s", dest);
	}
	/* The body goes to the file; only an error answer is read into memory (below). */
	EXPT_CURL->easy_reset(m->c);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_URL, url);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_NOSIGNAL, 1L);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_LOW_SPEED_TIME, 30L);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_FAILONERROR, 1L);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_WRITEFUNCTION, on_file);
	EXPT_CURL->easy_setopt(m->c, CURLOPT_WRITEDATA, f);
	if (m->user && m->password) {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_USERNAME, m->user);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_PASSWORD, m->password);
	} else if (m->token) {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_XOAUTH2_BEARER, m->token);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
	}
	if (m->insecure) {
		EXPT_CURL->easy_setopt(m->c, CURLOPT_SSL_VERIFYPEER, 0L);
		EXPT_CURL->easy_setopt(m->c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (m->ca_path)
		EXPT_CURL->easy_setopt(m->c, CURLOPT_CAINFO, m->ca_path);
	rc = EXPT_CURL->easy_perform(m->c);
	if (fclose(f) && rc == CURLE_OK)
		ret = expt_err_errno(err, EXPT_EFAIL, "cannot write %s", dest);
	if (rc == CURLE_HTTP_RETURNED_ERROR) {
		EXPT_CURL->easy_getinfo(m->c, CURLINFO_RESPONSE_CODE, &m->last_status);
		ret = expt_err_set(err, m->last_status == 404 ? EXPT_ENOTFOUND : EXPT_EBACKEND,
				   "MLflow server %s: GET mlflow-artifacts/artifacts/%s: HTTP %ld",
				   m->base, path, m->last_status);
	} else if (rc != CURLE_OK) {
		ret = expt_err_set(err, EXPT_EBACKEND, "MLflow server %s: GET %s: %s", m->base,
				   path, EXPT_CURL->easy_strerror(rc));
	}
	if (ret)
		unlink(dest);
	free(url);
	return ret;
}

int expt_mlflow_artifact_root(const char *artifact_uri, char **path)
{
	const char *p;

	*path = NULL;
	if (strncmp(artifact_uri, "mlflow-artifacts:", 17))
		return -1;
	p = artifact_uri + 17;
	if (!strncmp(p, "//", 2)) { /* mlflow-artifacts://host:port/path */
		p = strchr(p + 2, '/');
		if (!p)
			p = "";
	}
	while (*p == '/')
		p++;
	return (*path = expt_strdup(p)) ? 0 : -2;
}

/* The string member key of a reply, duplicated; NULL with err filled when absent. */
static int reply_str(struct expt_mlflow *m, json_t *obj, const char *key, const char *what,
		     char **out, struct expt_err *err)
{
	const char *s = json_string_value(json_object_get(obj, key));

	if (!s)
		return expt_err_set(err, EXPT_EBACKEND, "MLflow server %s: %s: no %s in the answer",
				    m->base, what, key);
	if (!(*out = expt_strdup(s)))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	return 0;
}

int expt_mlflow_experiment(struct expt_mlflow *m, const char *name, char **id, struct expt_err *err)
{
	json_t *req, *rep = NULL;
	char *body, *q, *path;
	int rc;

	*id = NULL;
	/* Create, and on RESOURCE_ALREADY_EXISTS look it up: no race between two creators. */
	if (!(req = json_pack("{s:s}", "name", name)) || !(body = json_dumps(req, JSON_COMPACT))) {
		json_decref(req);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	json_decref(req);
	rc = expt_mlflow_call(m, "POST", "experiments/create", body, strlen(body), &rep, err);
	free(body);
	if (!rc) {
		rc = reply_str(m, rep, "experiment_id", "experiments/create", id, err);
		json_decref(rep);
		return rc;
	}
	if (strcmp(m->last_code, "RESOURCE_ALREADY_EXISTS"))
		return rc;
	if (!(q = qesc(name)) ||
	    !(path = expt_asprintf("experiments/get-by-name?experiment_name=%s", q))) {
		free(q);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	free(q);
	expt_err_clear(err);
	rc = expt_mlflow_call(m, "GET", path, NULL, 0, &rep, err);
	free(path);
	if (rc)
		return rc;
	rc = reply_str(m, json_object_get(rep, "experiment"), "experiment_id",
		       "experiments/get-by-name", id, err);
	json_decref(rep);
	return rc;
}

int expt_mlflow_find_run(struct expt_mlflow *m, const char *exp_id, const char *key, char **run_id,
			 struct expt_err *err)
{
	json_t *req, *rep = NULL, *runs;
	char *filter, *body;
	int rc;

	*run_id = NULL;
	/* Keys are [a-z0-9-@]: nothing to quote inside the filter's string. */
	if (strchr(key, '\'') || strchr(key, '\\'))
		return 0;
	if (!(filter = expt_asprintf("tags.`" EXPT_MLFLOW_RUN_KEY "` = '%s'", key)))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	req = json_pack("{s:[s],s:s,s:i,s:s}", "experiment_ids", exp_id, "filter", filter,
			"max_results", 1, "run_view_type", "ACTIVE_ONLY");
	free(filter);
	if (!req || !(body = json_dumps(req, JSON_COMPACT))) {
		json_decref(req);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	json_decref(req);
	rc = expt_mlflow_call(m, "POST", "runs/search", body, strlen(body), &rep, err);
	free(body);
	if (rc)
		return rc;
	runs = json_object_get(rep, "runs");
	if (json_array_size(runs))
		rc = reply_str(m, json_object_get(json_array_get(runs, 0), "info"), "run_id",
			       "runs/search", run_id, err);
	json_decref(rep);
	return rc;
}

int expt_mlflow_run_create(struct expt_mlflow *m, const char *exp_id, const char *name,
			   int64_t start_ms, const char *const *tag_keys,
			   const char *const *tag_values, size_t ntags, char **run_id,
			   struct expt_err *err)
{
	json_t *req, *tags, *rep = NULL;
	char *body;
	int rc;

	*run_id = NULL;
	if (!start_ms)
		start_ms = expt_now_ms();
	tags = json_array();
	req = json_pack("{s:s,s:s,s:I,s:o}", "experiment_id", exp_id, "run_name", name,
			"start_time", (json_int_t)start_ms, "tags", tags);
	for (size_t i = 0; req && i < ntags; i++)
		if (!strcmp(tag_keys[i], "mlflow.user") &&
		    json_object_set_new(req, "user_id", json_string(tag_values[i])))
			json_decref(req), req = NULL;
	if (!req)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	for (size_t i = 0; i < ntags; i++) {
		char kb[EXPT_MLFLOW_KEY_MAX + 1];
		char *v;
		size_t vl = expt_mlflow_utf8_cut(tag_values[i], EXPT_MLFLOW_TAG_MAX);
		expt_mlflow_key(kb, sizeof(kb), tag_keys[i]);
		if (!(v = expt_strndup(tag_values[i], vl)) ||
		    json_array_append_new(tags, json_pack("{s:s,s:s}", "key", kb, "value", v))) {
			free(v);
			json_decref(req);
			return expt_err_set(err, EXPT_ENOMEM, "out of memory");
		}
		free(v);
	}
	if (json_array_append_new(tags,
				  json_pack("{s:s,s:s}", "key", "mlflow.runName", "value", name)) ||
	    !(body = json_dumps(req, JSON_COMPACT))) {
		json_decref(req);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	json_decref(req);
	rc = expt_mlflow_call(m, "POST", "runs/create", body, strlen(body), &rep, err);
	free(body);
	if (rc)
		return rc;
	rc = reply_str(m, json_object_get(json_object_get(rep, "run"), "info"), "run_id",
		       "runs/create", run_id, err);
	json_decref(rep);
	return rc;
}

int expt_mlflow_run_update(struct expt_mlflow *m, const char *run_id, const char *status,
			   int64_t end_ms, struct expt_err *err)
{
	json_t *req;
	char *body;
	int rc;

	req = json_pack("{s:s,s:s}", "run_id", run_id, "status", status);
	if (req && end_ms > 0 && json_object_set_new(req, "end_time", json_integer(end_ms)))
		json_decref(req), req = NULL;
	if (!req || !(body = json_dumps(req, JSON_COMPACT))) {
		json_decref(req);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	json_decref(req);
	rc = expt_mlflow_call(m, "POST", "runs/update", body, strlen(body), NULL, err);
	free(body);
	return rc;
}

int expt_mlflow_run_get(struct expt_mlflow *m, const char *run_id, json_t **run,
			struct expt_err *err)
{
	json_t *rep = NULL;
	char *q = qesc(run_id), *path = q ? expt_asprintf("runs/get?run_id=%s", q) : NULL;
	int rc;

	*run = NULL;
	free(q);
	if (!path)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	rc = expt_mlflow_call(m, "GET", path, NULL, 0, &rep, err);
	free(path);
	if (rc)
		return rc;
	*run = json_incref(json_object_get(rep, "run"));
	json_decref(rep);
	if (!*run)
		return expt_err_set(err, EXPT_EBACKEND, "MLflow server %s: runs/get: no run",
				    m->base);
	return 0;
}

char *expt_mlflow_run_url(const struct expt_mlflow *m, const char *exp_id, const char *run_id)
{
	return expt_asprintf("%s/#/experiments/%s/runs/%s", m->base, exp_id, run_id);
}

const char *expt_mlflow_status(const char *s)
{
	if (!s)
		return "RUNNING";
	if (!strcmp(s, "succeeded"))
		return "FINISHED";
	if (!strcmp(s, "failed"))
		return "FAILED";
	if (!strcmp(s, "stopped"))
		return "KILLED";
	return "RUNNING";
}

size_t expt_mlflow_key(char *out, size_t cap, const char *key)
{
	size_t n = 0, max = cap - 1 < EXPT_MLFLOW_KEY_MAX ? cap - 1 : EXPT_MLFLOW_KEY_MAX;
	size_t comp = 0; /* where the current path component starts */

	for (const unsigned char *p = (const unsigned char *)key; *p && n < max; p++) {
		char c = (char)*p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ' ' || c == '/'))
			c = '_';
		if (c == '/') {
			if (n == comp)
				continue; /* no leading '/', no "//" */
			comp = n + 1;
		}
		out[n++] = c;
	}
	while (n && out[n - 1] == '/')
		n--;
	out[n] = '\0';
	/* The server wants a normalized path: no "." or ".." component. */
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && out[j] != '/')
			j++;
		if ((j - i == 1 && out[i] == '.') ||
		    (j - i == 2 && out[i] == '.' && out[i + 1] == '.'))
			memset(out + i, '_', j - i);
		i = j + 1;
	}
	if (!n && cap > 1) {
		out[0] = '_';
		out[1] = '\0';
		n = 1;
	}
	return n;
}

size_t expt_mlflow_utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}
