/* The registry client: authentication (WWW-Authenticate → Basic or a Bearer token), Docker's
 * credentials, and the index platform picker. docs/images.md, REFERENCE §3 for the protocol. */
#include "registry.h"

#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <jansson.h>
#include <strings.h>
#include <sys/utsname.h>

#include "dl.h"
#include "util/curl_dl.h"
#include "util/util.h"

#define TIMEOUT_MS 300000L
#define CONNECT_TIMEOUT_MS 15000L

/* ---- WWW-Authenticate ---- */

static void copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	if (l >= n)
		l = n - 1;
	memcpy(dst, src, l);
	dst[l] = '\0';
}

int expt_oci_challenge_parse(const char *h, struct expt_oci_challenge *out)
{
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!h)
		return -1;
	while (*h == ' ' || *h == '\t')
		h++;
	n = strcspn(h, " \t,");
	if (!n || n >= sizeof(out->scheme))
		return -1;
	memcpy(out->scheme, h, n);
	h += n;
	for (;;) {
		char key[32], val[1024];
		size_t kl, vl = 0;
		while (*h == ' ' || *h == '\t' || *h == ',')
			h++;
		if (!*h)
			break;
		kl = strcspn(h, "= \t,");
		if (h[kl] != '=') /* a second challenge's scheme (or junk): stop at this one */
			break;
		if (kl >= sizeof(key))
			kl = sizeof(key) - 1;
		memcpy(key, h, kl);
		key[kl] = '\0';
		h = strchr(h, '=') + 1;
		if (*h == '"') {
			for (h++; *h && *h != '"'; h++) {
				if (*h == '\\' && h[1])
					h++;
				if (vl + 1 < sizeof(val))
					val[vl++] = *h;
			}
			if (*h == '"')
				h++;
		} else {
			for (; *h && *h != ',' && *h != ' ' && *h != '\t'; h++)
				if (vl + 1 < sizeof(val))
					val[vl++] = *h;
		}
		val[vl] = '\0';
		if (!strcasecmp(key, "realm"))
			copy(out->realm, sizeof(out->realm), val);
		else if (!strcasecmp(key, "service"))
			copy(out->service, sizeof(out->service), val);
		else if (!strcasecmp(key, "scope"))
			copy(out->scope, sizeof(out->scope), val);
		else if (!strcasecmp(key, "error"))
			copy(out->error, sizeof(out->error), val);
	}
	return 0;
}

/* ---- index → platform ---- */

int expt_oci_index_pick(const char *text, size_t len, const char *platform, char *digest, size_t n,
			char *have, size_t nhave)
{
	json_t *root = json_loadb(text, len, 0, NULL), *ms;
	char want_os[64] = "", want_arch[64] = "", want_var[64] = "";
	size_t i, hl = 0;
	int rc = 1;

	if (have && nhave)
		have[0] = '\0';
	sscanf(platform, "%63[^/]/%63[^/]/%63s", want_os, want_arch, want_var);
	ms = json_object_get(root, "manifests");
	if (!json_is_array(ms)) {
		json_decref(root);
		return -1;
	}
	for (i = 0; i < json_array_size(ms); i++) {
		json_t *m = json_array_get(ms, i), *p = json_object_get(m, "platform");
		const char *os = "linux", *arch = "amd64", *var = "";
		const char *d = json_string_value(json_object_get(m, "digest"));
		if (json_is_object(p)) {
			os = json_string_value(json_object_get(p, "os"));
			arch = json_string_value(json_object_get(p, "architecture"));
			var = json_string_value(json_object_get(p, "variant"));
			os = os ? os : "";
			arch = arch ? arch : "";
			var = var ? var : "";
		}
		if (!d)
			continue;
		/* attestations and other non-images carry "unknown/unknown": not a choice */
		if (have && strcmp(os, "unknown") && hl + 1 < nhave)
			hl += (size_t)snprintf(have + hl, nhave - hl, "%s%s/%s%s%s", hl ? ", " : "",
					       os, arch, *var ? "/" : "", var);
		if (hl >= nhave)
			hl = nhave - 1;
		if (rc == 1 && !strcmp(os, want_os) && !strcmp(arch, want_arch) &&
		    (!*want_var || !strcmp(var, want_var))) {
			snprintf(digest, n, "%s", d);
			rc = 0;
		}
	}
	json_decref(root);
	return rc;
}

/* ---- credentials ---- */

void expt_oci_creds_release(struct expt_oci_creds *c)
{
	if (!c)
		return;
	free(c->user);
	free(c->secret);
	free(c->identity_token);
	memset(c, 0, sizeof(*c));
}

static int run_helper(const char *helper, const char *server, struct expt_oci_creds *out,
		      const char *cfg, struct expt_err *err)
{
	char prog[320];
	const char *argv[] = {prog, "get", NULL};
	struct expt_buf b;
	json_t *j;
	const char *u, *s;
	int rc = 0;

	snprintf(prog, sizeof(prog), "docker-credential-%s", helper);
	expt_buf_init(&b, 1u << 20);
	if (expt_spawn_capture_in(argv, server, 30000, &b)) {
		/* Helpers exit non-zero with "credentials not found": anonymous then, unless
		 * nothing ran at all. */
		if (strstr(b.buf, "not found") || strstr(b.buf, "credentials not found")) {
			expt_buf_release(&b);
			return 0;
		}
		expt_err_set(err, EXPT_EUSAGE,
			     "%s names the credential helper %s for %s, and `%s get` failed%s%s",
			     cfg, helper, server, prog, b.len ? ": " : " (is it installed?)",
			     b.len ? b.buf : "");
		expt_buf_release(&b);
		return -1;
	}
	j = json_loadb(b.buf, b.len, 0, NULL);
	u = json_string_value(json_object_get(j, "Username"));
	s = json_string_value(json_object_get(j, "Secret"));
	if (!s) {
		rc = expt_err_set(err, EXPT_EUSAGE, "%s get (for %s): no Secret in what it printed",
				  prog, server);
	} else if (u && !strcmp(u, "<token>")) {
		out->identity_token = expt_xstrdup(s);
	} else {
		out->user = expt_xstrdup(u ? u : "");
		out->secret = expt_xstrdup(s);
	}
	snprintf(out->source, sizeof(out->source), "%s (credential helper %s)", cfg, prog);
	json_decref(j);
	expt_buf_release(&b);
	return rc ? -1 : 0;
}

/* The auths entry for host: keys are host, a URL of it, or a URL with a path. */
static json_t *auths_entry(json_t *auths, const char *host)
{
	const char *key;
	json_t *v;

	json_object_foreach(auths, key, v)
	{
		const char *k = key;
		size_t hl = strlen(host);
		if (!strncmp(k, "https://", 8))
			k += 8;
		else if (!strncmp(k, "http://", 7))
			k += 7;
		if (!strncmp(k, host, hl) && (k[hl] == '\0' || k[hl] == '/'))
			return v;
		if (!strcmp(host, "index.docker.io") && !strncmp(k, "index.docker.io", 15))
			return v;
	}
	return NULL;
}

int expt_oci_creds_lookup(const char *dir, const char *host, struct expt_oci_creds *out,
			  struct expt_err *err)
{
	char path[512];
	struct expt_buf b;
	json_t *root = NULL, *v;
	json_error_t je;
	const char *helper;
	const char *server = host;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!dir)
		dir = getenv("DOCKER_CONFIG");
	if (dir && *dir)
		snprintf(path, sizeof(path), "%s/config.json", dir);
	else
		snprintf(path, sizeof(path), "%s/.docker/config.json",
			 getenv("HOME") ? getenv("HOME") : "");
	if (!expt_path_exists(path))
		return 0;
	if (!strcmp(host, "index.docker.io"))
		server = "https://index.docker.io/v1/";
	expt_buf_init(&b, 16u << 20);
	if (expt_read_file(path, &b, err)) {
		expt_buf_release(&b);
		return -1;
	}
	root = json_loadb(b.buf, b.len, 0, &je);
	expt_buf_release(&b);
	if (!json_is_object(root)) {
		expt_err_set(err, EXPT_EUSAGE, "%s:%d:%d: not a JSON object%s%s", path, je.line,
			     je.column, root ? "" : ": ", root ? "" : je.text);
		json_decref(root);
		return -1;
	}
	helper = json_string_value(json_object_get(json_object_get(root, "credHelpers"), host));
	if (helper) {
		rc = run_helper(helper, server, out, path, err);
		goto out;
	}
	v = auths_entry(json_object_get(root, "auths"), host);
	if (v) {
		const char *auth = json_string_value(json_object_get(v, "auth"));
		const char *tok = json_string_value(json_object_get(v, "identitytoken"));
		snprintf(out->source, sizeof(out->source), "%s (auths)", path);
		if (tok && *tok)
			out->identity_token = expt_xstrdup(tok);
		if (auth && *auth) {
			size_t al = strlen(auth);
			unsigned char *dec = expt_xmalloc(al + 4);
			const struct expt_ocilibs *l = expt_ocilibs(err);
			int dl =
			    l ? l->EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)al) : -2;
			char *colon;
			if (dl == -2) {
				free(dec);
				rc = -1;
				goto out;
			}
			if (dl < 0) {
				free(dec);
				rc = expt_err_set(
				    err, EXPT_EUSAGE,
				    "%s: auths.%s.auth is not base64 of user:password", path, host);
				goto out;
			}
			/* EVP_DecodeBlock counts the '=' padding as zero bytes. */
			while (al && auth[al - 1] == '=') {
				al--;
				dl--;
			}
			dec[dl] = '\0';
			colon = strchr((char *)dec, ':');
			if (!colon) {
				free(dec);
				rc = expt_err_set(
				    err, EXPT_EUSAGE,
				    "%s: auths.%s.auth is not base64 of user:password", path, host);
				goto out;
			}
			*colon = '\0';
			out->user = expt_xstrdup((char *)dec);
			out->secret = expt_xstrdup(colon + 1);
			free(dec);
		}
		if (out->user || out->identity_token)
			goto out;
	}
	helper = json_string_value(json_object_get(root, "credsStore"));
	if (helper && *helper)
		rc = run_helper(helper, server, out, path, err);
out:
	json_decref(root);
	if (rc)
		expt_oci_creds_release(out);
	return rc ? -1 : 0;
}

/* ---- the client ---- */

struct expt_oci_reg {
	const struct expt_curl *c;
	CURL *h;
	char host[256];
	char base[300]; /* scheme://host */
	struct expt_oci_creds creds;
	struct expt_strv scopes;
	char *authz; /* "Authorization: ..." once known; NULL = anonymous so far */
	void (*progress)(int64_t up, int64_t down, void *payload);
	void *payload;
	int64_t last_ms;
	int out_fd, in_fd;
	int64_t in_len;
};

void expt_oci_reg_set_files(struct expt_oci_reg *r, int out_fd, int in_fd, int64_t in_len)
{
	r->out_fd = out_fd;
	r->in_fd = in_fd;
	r->in_len = in_len;
}

static size_t to_fd(char *p, size_t size, size_t nmemb, void *payload)
{
	const int *fd = payload;
	size_t n = size * nmemb;

	return expt_write_all(*fd, p, n) ? 0 : n;
}

static size_t from_fd(char *p, size_t size, size_t nmemb, void *payload)
{
	const int *fd = payload;
	ssize_t n;

	do
		n = read(*fd, p, size * nmemb);
	while (n < 0 && errno == EINTR);
	return n < 0 ? CURL_READFUNC_ABORT : (size_t)n;
}

void expt_oci_reg_set_progress(struct expt_oci_reg *r,
			       void (*fn)(int64_t up, int64_t down, void *payload), void *payload)
{
	r->progress = fn;
	r->payload = payload;
}

static int on_xfer(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		   curl_off_t ulnow)
{
	struct expt_oci_reg *r = p;
	int64_t now = expt_mono_ms();

	(void)dltotal;
	(void)ultotal;
	if (now - r->last_ms >= 200 && (ulnow || dlnow)) {
		r->last_ms = now;
		r->progress((int64_t)ulnow, (int64_t)dlnow, r->payload);
	}
	return 0;
}

const char *expt_oci_reg_host(const struct expt_oci_reg *r)
{
	return r->host;
}

struct expt_oci_reg *expt_oci_reg_new(const char *host, int insecure,
				      const struct expt_oci_creds *creds,
				      const struct expt_strv *scopes, struct expt_err *err)
{
	const struct expt_curl *c = expt_curl(err);
	struct expt_oci_reg *r;

	if (!c)
		return NULL;
	r = expt_xcalloc(1, sizeof(*r));
	r->c = c;
	r->h = c->easy_init();
	if (!r->h) {
		free(r);
		expt_err_set(err, EXPT_EBACKEND, "cannot initialise libcurl");
		return NULL;
	}
	snprintf(r->host, sizeof(r->host), "%s", host);
	snprintf(r->base, sizeof(r->base), "%s://%s",
		 insecure || expt_imgref_host_is_local(host) ? "http" : "https",
		 !strcmp(host, "index.docker.io") ? "registry-1.docker.io" : host);
	if (creds) {
		r->creds.user = expt_xstrdup(creds->user);
		r->creds.secret = expt_xstrdup(creds->secret);
		r->creds.identity_token = expt_xstrdup(creds->identity_token);
		snprintf(r->creds.source, sizeof(r->creds.source), "%s", creds->source);
	}
	if (scopes)
		expt_strv_copy(&r->scopes, scopes);
	r->out_fd = r->in_fd = -1;
	return r;
}

void expt_oci_reg_free(struct expt_oci_reg *r)
{
	if (!r)
		return;
	r->c->easy_cleanup(r->h);
	expt_oci_creds_release(&r->creds);
	expt_strv_release(&r->scopes);
	free(r->authz);
	free(r);
}

void expt_oci_resp_release(struct expt_oci_resp *resp)
{
	expt_buf_release(&resp->body);
	free(resp->location);
	free(resp->digest);
	free(resp->content_type);
	resp->location = resp->digest = resp->content_type = NULL;
}

struct hdrs {
	struct expt_oci_resp *resp;
	char *www;
};

static void set_hdr(char **dst, const char *v, size_t n)
{
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	free(*dst);
	*dst = expt_xstrndup(v, n);
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *payload)
{
	struct hdrs *h = payload;
	size_t n = size * nmemb;
	static const struct {
		const char *name;
		size_t off;
	} want[] = {{"location:", offsetof(struct expt_oci_resp, location)},
		    {"docker-content-digest:", offsetof(struct expt_oci_resp, digest)},
		    {"content-type:", offsetof(struct expt_oci_resp, content_type)}};

	if (n >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100, a redirect) */
		free(h->resp->location);
		free(h->resp->digest);
		free(h->resp->content_type);
		h->resp->location = h->resp->digest = h->resp->content_type = NULL;
		free(h->www);
		h->www = NULL;
		return n;
	}
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		size_t wl = strlen(want[i].name);
		if (n > wl && !strncasecmp(p, want[i].name, wl))
			set_hdr((char **)((char *)h->resp + want[i].off), p + wl, n - wl);
	}
	if (n > 17 && !strncasecmp(p, "www-authenticate:", 17) && !h->www)
		set_hdr(&h->www, p + 17, n - 17);
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *payload)
{
	struct expt_buf *b = payload;
	size_t n = size * nmemb;

	return expt_buf_add(b, p, n) ? 0 : n;
}

static int perform(struct expt_oci_reg *r, const char *method, const char *url,
		   const char *const *headers, const char *authz, const void *body, size_t len,
		   struct expt_oci_resp *resp, char **www, struct expt_err *err)
{
	const struct expt_curl *c = r->c;
	struct curl_slist *hl = NULL;
	struct hdrs h = {resp, NULL};
	CURLcode cc;

	expt_buf_reset(&resp->body);
	resp->status = 0;
	c->easy_reset(r->h);
	c->easy_setopt(r->h, CURLOPT_URL, url);
	c->easy_setopt(r->h, CURLOPT_NOSIGNAL, 1L);
	c->easy_setopt(r->h, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
	c->easy_setopt(r->h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	c->easy_setopt(r->h, CURLOPT_USERAGENT, "expt/" EXPT_VERSION);
	if (r->out_fd >= 0) {
		if (ftruncate(r->out_fd, 0) || lseek(r->out_fd, 0, SEEK_SET) < 0)
			return expt_err_errno(err, EXPT_EFAIL, "a temporary file");
		c->easy_setopt(r->h, CURLOPT_WRITEFUNCTION, to_fd);
		c->easy_setopt(r->h, CURLOPT_WRITEDATA, &r->out_fd);
	} else {
		c->easy_setopt(r->h, CURLOPT_WRITEFUNCTION, on_body);
		c->easy_setopt(r->h, CURLOPT_WRITEDATA, &resp->body);
	}
	c->easy_setopt(r->h, CURLOPT_HEADERFUNCTION, on_header);
	c->easy_setopt(r->h, CURLOPT_HEADERDATA, &h);
	for (size_t i = 0; headers && headers[i]; i++)
		hl = c->slist_append(hl, headers[i]);
	if (authz)
		hl = c->slist_append(hl, authz);
	hl = c->slist_append(hl, "Expect:");
	if (r->progress) {
		r->last_ms = expt_mono_ms();
		c->easy_setopt(r->h, CURLOPT_NOPROGRESS, 0L);
		c->easy_setopt(r->h, CURLOPT_XFERINFOFUNCTION, on_xfer);
		c->easy_setopt(r->h, CURLOPT_XFERINFODATA, r);
	}
	c->easy_setopt(r->h, CURLOPT_HTTPHEADER, hl);
	if (!strcmp(method, "HEAD")) {
		c->easy_setopt(r->h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(method, "GET")) {
		/* Blobs may be served from elsewhere (a redirect to storage). */
		c->easy_setopt(r->h, CURLOPT_FOLLOWLOCATION, 1L);
	} else if (r->in_fd >= 0) {
		if (lseek(r->in_fd, 0, SEEK_SET) < 0) { /* again after a 401 */
			c->slist_free_all(hl);
			return expt_err_errno(err, EXPT_EFAIL, "a temporary file");
		}
		c->easy_setopt(r->h, CURLOPT_UPLOAD, 1L);
		c->easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
		c->easy_setopt(r->h, CURLOPT_READFUNCTION, from_fd);
		c->easy_setopt(r->h, CURLOPT_READDATA, &r->in_fd);
		c->easy_setopt(r->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->in_len);
	} else {
		c->easy_setopt(r->h, CURLOPT_CUSTOMREQUEST, method);
		c->easy_setopt(r->h, CURLOPT_POSTFIELDS, body ? body : "");
		c->easy_setopt(r->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
	}
	cc = c->easy_perform(r->h);
	c->slist_free_all(hl);
	if (cc == CURLE_WRITE_ERROR) {
		free(h.www);
		return expt_err_set(err, EXPT_EBACKEND, "%s: the answer to %s %s is too large",
				    r->host, method, url);
	}
	if (cc != CURLE_OK) {
		free(h.www);
		return expt_err_set(err, EXPT_EBACKEND, "cannot reach the registry %s (%s): %s",
				    r->host, r->base, c->easy_strerror(cc));
	}
	c->easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &resp->status);
	if (www)
		*www = h.www;
	else
		free(h.www);
	return 0;
}

static char *basic_header(const char *user, const char *pass)
{
	char *plain = expt_xasprintf("%s:%s", user ? user : "", pass ? pass : "");
	size_t pl = strlen(plain);
	char *enc = expt_xmalloc(4 * ((pl + 2) / 3) + 1), *out;

	const struct expt_ocilibs *l = expt_ocilibs(NULL);

	/* Loaded already: expt_oci_build asks for the libraries before any request. */
	if (l)
		l->EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)plain, (int)pl);
	else
		enc[0] = '\0';
	out = expt_xasprintf("Authorization: Basic %s", enc);
	memset(plain, 0, pl);
	free(plain);
	free(enc);
	return out;
}

static void url_escape(struct expt_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || strchr("-._~", ch))
			expt_buf_addch(b, (char)ch);
		else
			expt_buf_addf(b, "%%%02X", ch);
	}
}

static int fetch_token_now(struct expt_oci_reg *r, const struct expt_oci_challenge *ch,
			   struct expt_err *err);

/* The token flow: GET realm?service=S&scope=... (Basic credentials when we have them). */
static int fetch_token(struct expt_oci_reg *r, const struct expt_oci_challenge *ch,
		       struct expt_err *err)
{
	/* The token request is a request of its own: not to or from the blob files. */
	int out_fd = r->out_fd, in_fd = r->in_fd, rc;

	r->out_fd = r->in_fd = -1;
	rc = fetch_token_now(r, ch, err);
	r->out_fd = out_fd;
	r->in_fd = in_fd;
	return rc;
}

static int fetch_token_now(struct expt_oci_reg *r, const struct expt_oci_challenge *ch,
			   struct expt_err *err)
{
	struct expt_buf url = EXPT_BUF_INIT;
	struct expt_oci_resp resp = {0};
	char *basic = NULL;
	json_t *j = NULL;
	const char *tok;
	int rc = 0;

	expt_buf_init(&resp.body, 1u << 20);
	expt_buf_adds(&url, ch->realm);
	expt_buf_addch(&url, strchr(ch->realm, '?') ? '&' : '?');
	if (ch->service[0]) {
		expt_buf_adds(&url, "service=");
		url_escape(&url, ch->service);
	}
	for (size_t i = 0; i < r->scopes.n; i++) {
		expt_buf_adds(&url, "&scope=");
		url_escape(&url, r->scopes.v[i]);
	}
	/* A scope the registry named that we did not ask for. */
	if (ch->scope[0] && expt_strv_find(&r->scopes, ch->scope) < 0) {
		expt_buf_adds(&url, "&scope=");
		url_escape(&url, ch->scope);
	}
	if (r->creds.identity_token) {
		/* An identity token is a refresh token: the OAuth2 form POST. */
		struct expt_buf form = EXPT_BUF_INIT;
		const char *const hdr[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
		expt_buf_adds(&form, "grant_type=refresh_token&client_id=expt&refresh_token=");
		url_escape(&form, r->creds.identity_token);
		expt_buf_adds(&form, "&service=");
		url_escape(&form, ch->service);
		for (size_t i = 0; i < r->scopes.n; i++) {
			expt_buf_adds(&form, "&scope=");
			url_escape(&form, r->scopes.v[i]);
		}
		rc = perform(r, "POST", ch->realm, hdr, NULL, form.buf, form.len, &resp, NULL, err);
		expt_buf_release(&form);
		if (rc)
			goto out;
	}
	if (!r->creds.identity_token || resp.status == 404 || resp.status == 405) {
		if (r->creds.user)
			basic = basic_header(r->creds.user, r->creds.secret);
		if ((rc = perform(r, "GET", url.buf, NULL, basic, NULL, 0, &resp, NULL, err)))
			goto out;
	}
	if (resp.status == 401 || resp.status == 403) {
		rc = expt_err_set(
		    err, EXPT_EBACKEND, "%s: the token server %s refused %s (HTTP %ld)%s%s",
		    r->host, ch->realm,
		    r->creds.user || r->creds.identity_token ? "the credentials"
							     : "anonymous access",
		    resp.status, r->creds.source[0] ? "; they come from " : "", r->creds.source);
		goto out;
	}
	if (resp.status != 200) {
		rc = expt_err_set(err, EXPT_EBACKEND, "%s: the token server %s answered HTTP %ld",
				  r->host, ch->realm, resp.status);
		goto out;
	}
	j = json_loadb(resp.body.buf, resp.body.len, 0, NULL);
	tok = json_string_value(json_object_get(j, "token"));
	if (!tok || !*tok)
		tok = json_string_value(json_object_get(j, "access_token"));
	if (!tok || !*tok) {
		rc = expt_err_set(err, EXPT_EBACKEND, "%s: the token server %s sent no token",
				  r->host, ch->realm);
		goto out;
	}
	free(r->authz);
	r->authz = expt_xasprintf("Authorization: Bearer %s", tok);
out:
	json_decref(j);
	free(basic);
	expt_buf_release(&url);
	expt_oci_resp_release(&resp);
	return rc ? -1 : 0;
}

int expt_oci_reg_do(struct expt_oci_reg *r, const char *method, const char *path,
		    const char *const *headers, const void *body, size_t len, size_t body_max,
		    struct expt_oci_resp *resp, struct expt_err *err)
{
	char *url = !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8)
			? expt_xstrdup(path)
			: expt_xasprintf("%s%s", r->base, path);
	char *www = NULL;
	struct expt_oci_challenge ch;
	int rc;

	if (!resp->body.cap && !resp->body.max)
		expt_buf_init(&resp->body, body_max ? body_max : (64u << 20));
	rc = perform(r, method, url, headers, r->authz, body, len, resp, &www, err);
	if (!rc && resp->status == 401 && www && !expt_oci_challenge_parse(www, &ch)) {
		int retry = 0;
		if (!strcasecmp(ch.scheme, "Basic") && r->creds.user && !r->authz) {
			r->authz = basic_header(r->creds.user, r->creds.secret);
			retry = 1;
		} else if (!strcasecmp(ch.scheme, "Bearer") && ch.realm[0]) {
			if ((rc = fetch_token(r, &ch, err)))
				goto out;
			retry = 1;
		}
		if (retry)
			rc = perform(r, method, url, headers, r->authz, body, len, resp, NULL, err);
	}
out:
	free(www);
	free(url);
	return rc ? -1 : 0;
}

int expt_oci_status_err(struct expt_oci_reg *r, const struct expt_oci_resp *resp, const char *what,
			struct expt_err *err)
{
	json_t *j = json_loadb(resp->body.buf, resp->body.len, 0, NULL);
	json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
	const char *code = json_string_value(json_object_get(e0, "code"));
	const char *msg = json_string_value(json_object_get(e0, "message"));
	char detail[400] = "";
	const char *hint = "";

	if (code || msg)
		snprintf(detail, sizeof(detail), ": %s%s%s", code ? code : "",
			 code && msg ? " " : "", msg ? msg : "");
	if (resp->status == 401)
		hint = r->creds.user || r->creds.identity_token
			   ? "; the credentials were refused: check them (docker login, or "
			     "auths in $DOCKER_CONFIG/config.json)"
			   : "; no credentials for this registry: run docker login HOST, or add "
			     "auths (or credHelpers) for it in $DOCKER_CONFIG/config.json";
	else if (resp->status == 403)
		hint = "; the account may read but not write this repository (or not at all)";
	expt_err_set(err, EXPT_EBACKEND, "%s: %s: HTTP %ld%s%s%s%s%s", r->host, what, resp->status,
		     resp->status == 401   ? " Unauthorized"
		     : resp->status == 403 ? " Forbidden"
		     : resp->status == 404 ? " Not Found"
					   : "",
		     detail, hint,
		     resp->status == 401 && r->creds.source[0] ? "; they come from " : "",
		     resp->status == 401 ? r->creds.source : "");
	json_decref(j);
	return EXPT_EBACKEND;
}
