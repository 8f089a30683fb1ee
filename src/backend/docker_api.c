/* The Docker Engine API over a unix socket: discovery, version negotiation, one request at a
 * time with a capped body. */
#include "docker_api.h"

#include "util/curl_dl.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/util.h"

#define MAX_API_MAJOR 1
#define MAX_API_MINOR 41
#define DEFAULT_TIMEOUT_MS 30000
#define PROBE_TIMEOUT_MS 5000

struct expt_docker {
	char *sock;
	char version[32]; /* "/v1.41" */
	CURL *c;
	int podman; /* the engine is Podman's service */
};

/* Where a body goes: the buffer, and for a stream (a pull's progress) each complete line to fn
 * as it arrives. */
struct sink {
	struct expt_buf *b;
	size_t scanned; /* bytes of b already handed out as lines */
	void (*fn)(const char *line, size_t len, void *payload);
	void *payload;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *payload)
{
	struct sink *k = payload;
	size_t n = size * nmemb;
	char *nl;

	if (expt_buf_add(k->b, p, n))
		return 0; /* curl stops with a write error */
	while (k->fn && (nl = memchr(k->b->buf + k->scanned, '\n', k->b->len - k->scanned))) {
		k->fn(k->b->buf + k->scanned, (size_t)(nl - (k->b->buf + k->scanned)), k->payload);
		k->scanned = (size_t)(nl - k->b->buf) + 1;
	}
	return n;
}

/* One request on c to sock; url complete. Returns 0 or EXPT_EBACKEND. */
static int request(CURL *c, const char *sock, const char *method, const char *url, const char *body,
		   const char *header, int64_t timeout_ms, long *status, struct expt_buf *resp,
		   struct sink *k, struct expt_err *err)
{
	struct curl_slist *hdr = NULL;
	struct sink plain = {resp, 0, NULL, NULL};
	CURLcode rc;

	if (!k)
		k = &plain;
	expt_buf_reset(resp);
	EXPT_CURL->easy_reset(c);
	EXPT_CURL->easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	EXPT_CURL->easy_setopt(c, CURLOPT_URL, url);
	EXPT_CURL->easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	EXPT_CURL->easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	EXPT_CURL->easy_setopt(c, CURLOPT_TIMEOUT_MS,
			       (long)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS));
	EXPT_CURL->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	EXPT_CURL->easy_setopt(c, CURLOPT_WRITEDATA, k);
	if (header)
		hdr = EXPT_CURL->slist_append(hdr, header);
	if (body)
		hdr = EXPT_CURL->slist_append(hdr, "Content-Type: application/json");
	if (hdr)
		EXPT_CURL->easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	if (body) {
		EXPT_CURL->easy_setopt(c, CURLOPT_POSTFIELDS, body);
		EXPT_CURL->easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (!strcmp(method, "POST")) {
		EXPT_CURL->easy_setopt(c, CURLOPT_POSTFIELDS, "");
		EXPT_CURL->easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
	}
	rc = EXPT_CURL->easy_perform(c);
	EXPT_CURL->slist_free_all(hdr);
	if (rc == CURLE_WRITE_ERROR)
		return expt_err_set(err, EXPT_EBACKEND,
				    "%s: the engine's answer to %s %s is larger than %u bytes",
				    sock, method, url, EXPT_DOCKER_BODY_MAX);
	if (rc != CURLE_OK)
		return expt_err_set(err, EXPT_EBACKEND, "%s: %s", sock,
				    EXPT_CURL->easy_strerror(rc));
	EXPT_CURL->easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* "1.41" → 1, 41; -1 when it is not a version. */
static int parse_version(const char *s, long *maj, long *min)
{
	char *end;

	if (!s)
		return -1;
	*maj = strtol(s, &end, 10);
	if (end == s || *end != '.')
		return -1;
	s = end + 1;
	*min = strtol(s, &end, 10);
	return end == s ? -1 : 0;
}

/* Asks sock for /version; 0 and d->version set when it answers as an engine, else why not in
 * why. */
static int probe(struct expt_docker *d, const char *sock, char *why, size_t n)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b;
	json_t *j = NULL;
	long status = 0, maj, min;
	int rc = -1;

	expt_buf_init(&b, 1 << 20);
	if (!expt_path_exists(sock)) {
		snprintf(why, n, "no such socket");
		goto out;
	}
	if (request(d->c, sock, "GET", "http://d/version", NULL, NULL, PROBE_TIMEOUT_MS, &status,
		    &b, NULL, &e)) {
		const char *colon = strstr(e.msg, ": ");
		snprintf(why, n, "%.400s", colon ? colon + 2 : e.msg);
		goto out;
	}
	j = json_loads(b.buf, 0, NULL);
	if (status != 200 || !json_is_object(j)) {
		snprintf(why, n, "answered HTTP %ld, not as a Docker Engine API", status);
		goto out;
	}
	if (parse_version(json_string_value(json_object_get(j, "ApiVersion")), &maj, &min)) {
		snprintf(why, n, "answered without an ApiVersion");
		goto out;
	}
	if (maj > MAX_API_MAJOR || (maj == MAX_API_MAJOR && min > MAX_API_MINOR)) {
		maj = MAX_API_MAJOR;
		min = MAX_API_MINOR;
	}
	snprintf(d->version, sizeof(d->version), "/v%ld.%ld", maj, min);
	{
		/* Podman's service names itself among the components ("Podman Engine"). */
		json_t *comps = json_object_get(j, "Components"), *v;
		size_t i;
		d->podman = 0;
		json_array_foreach(comps, i, v)
		{
			const char *name = json_string_value(json_object_get(v, "Name"));
			if (name && strstr(name, "Podman"))
				d->podman = 1;
		}
	}
	rc = 0;
out:
	json_decref(j);
	expt_buf_release(&b);
	return rc;
}

int expt_docker_open(struct expt_docker **out, struct expt_err *err)
{
	return expt_docker_open_engine(out, NULL, err);
}

int expt_docker_open_engine(struct expt_docker **out, const char *want, struct expt_err *err)
{
	int docker = want && !strcmp(want, "docker"), podman = want && !strcmp(want, "podman");
	struct expt_docker *d = expt_xcalloc(1, sizeof(*d));
	struct expt_strv cands = EXPT_STRV_INIT;
	struct expt_buf tried = EXPT_BUF_INIT;
	const char *host = getenv("DOCKER_HOST"), *xdg = getenv("XDG_RUNTIME_DIR");
	char why[512];
	int rc = 0;

	*out = NULL;
	if (!expt_curl(err)) /* loaded now: a container backend needs it, ps does not */
		return err->code;
	if (host && *host) {
		if (strncmp(host, "unix://", 7)) {
			rc = expt_err_set(err, EXPT_EBACKEND,
					  "DOCKER_HOST=%s: the container backend talks to the "
					  "engine over a unix socket (unix:///path)",
					  host);
			goto out;
		}
		expt_strv_push(&cands, host + 7);
	} else {
		if (!podman)
			expt_strv_push(&cands, "/var/run/docker.sock");
		if (!docker)
			expt_strv_push(&cands, "/run/podman/podman.sock");
		if (!docker && xdg && *xdg)
			expt_strv_pushf(&cands, "%s/podman/podman.sock", xdg);
	}
	d->c = EXPT_CURL->easy_init();
	if (!d->c) {
		rc = expt_err_set(err, EXPT_EBACKEND, "cannot initialise libcurl");
		goto out;
	}
	for (size_t i = 0; i < cands.n; i++) {
		if (!probe(d, cands.v[i], why, sizeof(why))) {
			if ((docker && d->podman) || (podman && !d->podman)) {
				snprintf(why, sizeof(why), "answers as %s, container.engine is %s",
					 d->podman ? "Podman" : "Docker", want);
			} else {
				d->sock = expt_xstrdup(cands.v[i]);
				*out = d;
				goto out;
			}
		}
		expt_buf_addf(&tried, "%s%s (%s)", i ? ", " : "", cands.v[i], why);
	}
	rc = expt_err_set(err, EXPT_EBACKEND,
			  "no container engine answers: tried %s; start Docker or Podman's service "
			  "(podman system service) or set DOCKER_HOST=unix:///path/to/socket",
			  tried.buf);
out:
	if (rc)
		expt_docker_free(d);
	expt_strv_release(&cands);
	expt_buf_release(&tried);
	return rc;
}

void expt_docker_free(struct expt_docker *d)
{
	if (!d)
		return;
	if (d->c)
		EXPT_CURL->easy_cleanup(d->c);
	free(d->sock);
	free(d);
}

const char *expt_docker_socket(const struct expt_docker *d)
{
	return d->sock;
}

const char *expt_docker_version(const struct expt_docker *d)
{
	return d->version;
}

char *expt_docker_url(const struct expt_docker *d, const char *path)
{
	return expt_xasprintf("http://d%s%s", d->version, path);
}

char *expt_docker_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	struct expt_buf b = EXPT_BUF_INIT;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-_.~", *p)) {
			expt_buf_addch(&b, (char)*p);
		} else {
			expt_buf_addch(&b, '%');
			expt_buf_addch(&b, hex[*p >> 4]);
			expt_buf_addch(&b, hex[*p & 15]);
		}
	}
	return expt_buf_detach(&b, NULL);
}

int expt_docker_call(struct expt_docker *d, const char *method, const char *path, const char *body,
		     int64_t timeout_ms, long *status, struct expt_buf *resp, struct expt_err *err)
{
	return expt_docker_call_hdr(d, method, path, body, NULL, timeout_ms, status, resp, err);
}

int expt_docker_call_hdr(struct expt_docker *d, const char *method, const char *path,
			 const char *body, const char *header, int64_t timeout_ms, long *status,
			 struct expt_buf *resp, struct expt_err *err)
{
	char *url = expt_docker_url(d, path);
	int rc;

	resp->max = EXPT_DOCKER_BODY_MAX;
	*status = 0;
	rc = request(d->c, d->sock, method, url, body, header, timeout_ms, status, resp, NULL, err);
	free(url);
	return rc;
}

int expt_docker_call_lines(struct expt_docker *d, const char *method, const char *path,
			   const char *header, int64_t timeout_ms,
			   void (*fn)(const char *line, size_t len, void *payload), void *payload,
			   long *status, struct expt_buf *resp, struct expt_err *err)
{
	char *url = expt_docker_url(d, path);
	struct sink k = {resp, 0, fn, payload};
	int rc;

	resp->max = EXPT_DOCKER_BODY_MAX;
	*status = 0;
	rc = request(d->c, d->sock, method, url, NULL, header, timeout_ms, status, resp, &k, err);
	free(url);
	return rc;
}

/* The registry an image reference names: its first component when that looks like a host
 * (a '.', a ':', or localhost), else Docker Hub. Caller frees. */
static char *registry_of(const char *image)
{
	const char *slash = strchr(image, '/');
	size_t len = slash ? (size_t)(slash - image) : 0;

	if (slash && (memchr(image, '.', len) || memchr(image, ':', len) ||
		      (len == 9 && !strncmp(image, "localhost", 9))))
		return expt_xstrndup(image, len);
	return expt_xstrdup("docker.io");
}

/* A config.json `auths` key as a bare host[:port] ("https://host:5000/v1/" -> "host:5000"). */
static int same_registry(const char *key, const char *reg)
{
	const char *k = key, *end;

	if (!strncmp(k, "https://", 8))
		k += 8;
	else if (!strncmp(k, "http://", 7))
		k += 7;
	end = k + strcspn(k, "/");
	if (!strcmp(reg, "docker.io") && (!strncmp(k, "index.docker.io", (size_t)(end - k)) ||
					  !strncmp(k, "docker.io", (size_t)(end - k))))
		return 1;
	return strlen(reg) == (size_t)(end - k) && !strncmp(k, reg, (size_t)(end - k));
}

char *expt_docker_registry_auth(const char *image, char *registry, size_t n)
{
	const char *dir = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
	char *path = dir && *dir     ? expt_xasprintf("%s/config.json", dir)
		     : home && *home ? expt_xasprintf("%s/.docker/config.json", home)
				     : NULL;
	char *reg = registry_of(image), *user = NULL, *pass = NULL, *out = NULL;
	json_t *j = path ? json_load_file(path, 0, NULL) : NULL, *v;
	const char *key;

	snprintf(registry, n, "%s", reg);
	json_object_foreach(json_object_get(j, "auths"), key, v)
	{
		const char *auth = json_string_value(json_object_get(v, "auth"));
		if (!same_registry(key, reg))
			continue;
		if (auth && *auth) {
			size_t len;
			char *plain = expt_base64_decode(auth, &len), *colon;
			if (plain && (colon = strchr(plain, ':'))) {
				user = expt_xstrndup(plain, (size_t)(colon - plain));
				pass = expt_xstrdup(colon + 1);
			}
			free(plain);
		} else if (json_string_value(json_object_get(v, "username"))) {
			user = expt_xstrdup(json_string_value(json_object_get(v, "username")));
			pass = expt_xstrdup(json_string_value(json_object_get(v, "password"))
						? json_string_value(json_object_get(v, "password"))
						: "");
		}
		break;
	}
	if (user) {
		json_t *a = json_pack("{s:s,s:s,s:s}", "username", user, "password", pass,
				      "serveraddress", reg);
		char *text = json_dumps(a, JSON_COMPACT);
		out = expt_base64_encode(text, strlen(text), 1);
		free(text);
		json_decref(a);
	}
	json_decref(j);
	free(path);
	free(reg);
	free(user);
	free(pass);
	return out;
}

void expt_docker_errmsg(const struct expt_buf *resp, char *out, size_t n)
{
	json_t *j = json_loads(resp->buf, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));
	size_t len;

	snprintf(out, n, "%s", m ? m : resp->buf);
	len = strlen(out);
	while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
		out[--len] = '\0';
	json_decref(j);
}
