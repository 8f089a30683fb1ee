/* The S3 client of s3.h: one curl easy handle, requests signed by libcurl (SigV4). */
#include "s3.h"

#include "util/curl_dl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/util.h"

#define CONNECT_TIMEOUT_MS 5000
#define TIMEOUT_MS 60000
#define REPLY_MAX (16u << 20)

struct expt_s3 {
	char *endpoint; /* http(s)://host[:port] without a trailing '/'; NULL: AWS */
	char *shown;	/* for messages */
	char *key_id, *secret, *token, *region;
	char *sigv4; /* "aws:amz:REGION:s3" */
	int insecure;
	CURL *c;
	struct expt_buf reply;
	long last_status; /* 0: no answer */
};

static char *env_dup(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? expt_strdup(v) : NULL;
}

int expt_s3_parse_uri(const char *uri, char **bucket, char **prefix)
{
	const char *p, *slash;
	size_t n;

	*bucket = *prefix = NULL;
	if (strncmp(uri, "s3://", 5) || !uri[5] || uri[5] == '/')
		return -1;
	p = uri + 5;
	slash = strchr(p, '/');
	*bucket = slash ? expt_strndup(p, (size_t)(slash - p)) : expt_strdup(p);
	p = slash ? slash : "";
	while (*p == '/')
		p++;
	n = strlen(p);
	while (n && p[n - 1] == '/')
		n--;
	*prefix = expt_strndup(p, n);
	if (!*bucket || !*prefix) {
		free(*bucket);
		free(*prefix);
		*bucket = *prefix = NULL;
		return -2;
	}
	return 0;
}

int expt_s3_open(struct expt_s3 **out, struct expt_err *err)
{
	struct expt_s3 *s;
	const char *ep = getenv("MLFLOW_S3_ENDPOINT_URL"), *region, *ins;
	size_t len;

	*out = NULL;
	if (ep && *ep && strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))
		return expt_err_set(err, EXPT_EUSAGE,
				    "MLFLOW_S3_ENDPOINT_URL '%s': expected http://HOST:PORT or "
				    "https://…",
				    ep);
	if (!getenv("AWS_ACCESS_KEY_ID") || !*getenv("AWS_ACCESS_KEY_ID") ||
	    !getenv("AWS_SECRET_ACCESS_KEY") || !*getenv("AWS_SECRET_ACCESS_KEY"))
		return expt_err_set(err, EXPT_EUSAGE,
				    "the artifacts go to S3, and AWS_ACCESS_KEY_ID and "
				    "AWS_SECRET_ACCESS_KEY are not both set (set them, and "
				    "MLFLOW_S3_ENDPOINT_URL for a server other than AWS)");
	if (!expt_curl(err))
		return err ? err->code : EXPT_EBACKEND;
	if (!(s = expt_calloc(1, sizeof(*s))))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	region = getenv("AWS_DEFAULT_REGION");
	if (!region || !*region)
		region = getenv("AWS_REGION");
	if (!region || !*region)
		region = "us-east-1";
	s->region = expt_strdup(region);
	s->key_id = env_dup("AWS_ACCESS_KEY_ID");
	s->secret = env_dup("AWS_SECRET_ACCESS_KEY");
	s->token = env_dup("AWS_SESSION_TOKEN");
	if (ep && *ep) {
		s->endpoint = expt_strdup(ep);
		if (s->endpoint) {
			len = strlen(s->endpoint);
			while (len && s->endpoint[len - 1] == '/')
				s->endpoint[--len] = '\0';
		}
		s->shown = s->endpoint ? expt_strdup(s->endpoint) : NULL;
	} else {
		s->shown = expt_asprintf("AWS S3 (%s)", region);
	}
	s->sigv4 = expt_asprintf("aws:amz:%s:s3", region);
	ins = getenv("MLFLOW_S3_IGNORE_TLS");
	s->insecure = ins && (!strcasecmp(ins, "true") || !strcmp(ins, "1"));
	expt_buf_init(&s->reply, REPLY_MAX);
	s->c = EXPT_CURL->easy_init();
	if (!s->region || !s->key_id || !s->secret || !s->shown || !s->sigv4 || !s->c ||
	    (ep && *ep && !s->endpoint)) {
		expt_s3_close(s);
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

void expt_s3_close(struct expt_s3 *s)
{
	if (!s)
		return;
	if (s->c)
		EXPT_CURL->easy_cleanup(s->c);
	free(s->endpoint);
	free(s->shown);
	free(s->key_id);
	free(s->secret);
	free(s->token);
	free(s->region);
	free(s->sigv4);
	expt_buf_release(&s->reply);
	free(s);
}

const char *expt_s3_endpoint(const struct expt_s3 *s)
{
	return s->shown;
}

int expt_s3_retryable(const struct expt_s3 *s)
{
	long st = s->last_status;
	return st == 0 || st >= 500 || st == 429 || st == 408;
}

/* s escaped as SigV4's canonical form wants it: every byte but A-Z a-z 0-9 - . _ ~ as %XX
 * (upper case), and '/' too unless keep_slash. Appended to b; -1 when out of memory. */
static int esc(struct expt_buf *b, const char *s, int keep_slash)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			 (*p >= '0' && *p <= '9') || strchr("-._~", *p) ||
			 (keep_slash && *p == '/');
		if (ok ? expt_buf_addch(b, (char)*p) : expt_buf_addf(b, "%%%02X", *p))
			return -1;
	}
	return 0;
}

/* The URL of key in bucket (path-style on a custom endpoint, virtual-hosted on AWS), with query
 * (already canonical: names sorted, values escaped; may be NULL). Caller frees. */
static char *object_url(const struct expt_s3 *s, const char *bucket, const char *key,
			const char *query)
{
	struct expt_buf b = EXPT_BUF_INIT;
	int bad;

	if (s->endpoint)
		bad = expt_buf_addf(&b, "%s/", s->endpoint) || esc(&b, bucket, 0) ||
		      expt_buf_addch(&b, '/');
	else
		bad = expt_buf_addf(&b, "https://%s.s3.%s.amazonaws.com/", bucket, s->region);
	bad = bad || esc(&b, key, 1) || (query && expt_buf_addf(&b, "?%s", query));
	if (bad) {
		expt_buf_release(&b);
		return NULL;
	}
	return expt_buf_detach(&b, NULL);
}

/* The text of the first <tag>…</tag> in xml[0..len), XML entities decoded; NULL when absent
 * (caller frees). *next (may be NULL) points past it. */
static char *xml_text(const char *xml, size_t len, const char *tag, const char **next)
{
	char open[64], close[64];
	const char *a, *z, *end = xml + len;
	struct expt_buf b = EXPT_BUF_INIT;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!(a = memmem(xml, len, open, strlen(open))))
		return NULL;
	a += strlen(open);
	if (!(z = memmem(a, (size_t)(end - a), close, strlen(close))))
		return NULL;
	if (next)
		*next = z + strlen(close);
	for (const char *p = a; p < z; p++) {
		static const struct {
			const char *ent;
			char c;
		} ents[] = {{"&amp;", '&'},
			    {"&lt;", '<'},
			    {"&gt;", '>'},
			    {"&quot;", '"'},
			    {"&apos;", '\''}};
		size_t i;
		if (*p != '&') {
			expt_buf_addch(&b, *p);
			continue;
		}
		for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++)
			if ((size_t)(z - p) >= strlen(ents[i].ent) &&
			    !strncmp(p, ents[i].ent, strlen(ents[i].ent)))
				break;
		if (i < sizeof(ents) / sizeof(ents[0])) {
			expt_buf_addch(&b, ents[i].c);
			p += strlen(ents[i].ent) - 1;
		} else if (p[1] == '#') { /* &#NN; or &#xNN; (ASCII only: what S3 escapes) */
			char *e;
			long v = p[2] == 'x' ? strtol(p + 3, &e, 16) : strtol(p + 2, &e, 10);
			if (*e == ';' && v > 0 && v < 128) {
				expt_buf_addch(&b, (char)v);
				p = e;
			} else {
				expt_buf_addch(&b, '&');
			}
		} else {
			expt_buf_addch(&b, '&');
		}
	}
	return expt_buf_detach(&b, NULL);
}

/* Fills err from the error answer in s->reply for method on s3://bucket/key. */
static int answer_error(struct expt_s3 *s, const char *method, const char *bucket, const char *key,
			struct expt_err *err)
{
	char *code = xml_text(s->reply.buf, s->reply.len, "Code", NULL);
	char *msg = xml_text(s->reply.buf, s->reply.len, "Message", NULL);
	const char *hint = "";
	int rc = EXPT_EBACKEND;

	if (s->last_status == 403) {
		rc = EXPT_EDENIED;
		hint = " (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that this key may "
		       "use the bucket)";
	} else if (s->last_status == 404) {
		rc = EXPT_ENOTFOUND;
		if (code && !strcmp(code, "NoSuchBucket"))
			hint = " (the bucket does not exist: create it, or fix the experiment's "
			       "artifact location)";
	}
	expt_err_set(err, rc, "S3 %s: %s s3://%s/%s: HTTP %ld%s%s%s%s%s", s->shown, method, bucket,
		     key, s->last_status, code ? " " : "", code ? code : "",
		     msg && *msg ? ": " : "", msg ? msg : "", hint);
	free(code);
	free(msg);
	return rc;
}

struct down {
	struct expt_s3 *s;
	FILE *f; /* the object's bytes go here when the answer is a 2xx */
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *payload)
{
	struct down *d = payload;
	size_t n = size * nmemb;
	long st = 0;

	if (d->f) {
		EXPT_CURL->easy_getinfo(d->s->c, CURLINFO_RESPONSE_CODE, &st);
		if (st >= 200 && st <= 299)
			return fwrite(p, 1, n, d->f);
	}
	return expt_buf_add(&d->s->reply, p, n) ? 0 : n;
}

/* One signed request: PUT of up (size bytes), or GET (into down when not NULL, else into
 * s->reply). op names it in messages ("PUT", "GET", "LIST"); a LIST is a GET of the bucket
 * (query says what), key then only names the prefix in messages. */
static int request(struct expt_s3 *s, const char *op, const char *bucket, const char *key,
		   const char *query, FILE *up, int64_t size, FILE *down, struct expt_err *err)
{
	struct curl_slist *hdr = NULL, *h2;
	struct down d = {s, down};
	char *url = object_url(s, bucket, strcmp(op, "LIST") ? key : "", query), *tok = NULL;
	CURLcode rc;
	int ret = 0;

	s->last_status = 0;
	expt_buf_reset(&s->reply);
	if (!url)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	EXPT_CURL->easy_reset(s->c);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_URL, url);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_NOSIGNAL, 1L);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	if (up || down) {
		/* A file takes as long as it takes; a transfer that stalls does not. */
		EXPT_CURL->easy_setopt(s->c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		EXPT_CURL->easy_setopt(s->c, CURLOPT_LOW_SPEED_TIME, 30L);
	} else {
		EXPT_CURL->easy_setopt(s->c, CURLOPT_TIMEOUT_MS, (long)TIMEOUT_MS);
	}
	EXPT_CURL->easy_setopt(s->c, CURLOPT_WRITEFUNCTION, on_body);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_WRITEDATA, &d);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_USERAGENT, "expt/" EXPT_VERSION);
	if (EXPT_CURL->easy_setopt(s->c, CURLOPT_AWS_SIGV4, s->sigv4) != CURLE_OK) {
		ret = expt_err_set(err, EXPT_EBACKEND,
				   "S3 %s: this libcurl cannot sign requests for S3 (AWS SigV4 "
				   "needs libcurl 7.75 or later)",
				   s->shown);
		goto out;
	}
	EXPT_CURL->easy_setopt(s->c, CURLOPT_USERNAME, s->key_id);
	EXPT_CURL->easy_setopt(s->c, CURLOPT_PASSWORD, s->secret);
	if (s->insecure) {
		EXPT_CURL->easy_setopt(s->c, CURLOPT_SSL_VERIFYPEER, 0L);
		EXPT_CURL->easy_setopt(s->c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	/* The body is not hashed (a file is streamed): S3 takes that when it is said so, and
	 * libcurl signs the header's value as the payload's hash. */
	if (!(h2 = EXPT_CURL->slist_append(hdr, "x-amz-content-sha256: UNSIGNED-PAYLOAD")))
		goto nomem;
	hdr = h2;
	if (s->token) {
		if (!(tok = expt_asprintf("x-amz-security-token: %s", s->token)) ||
		    !(h2 = EXPT_CURL->slist_append(hdr, tok)))
			goto nomem;
		hdr = h2;
	}
	if (up) {
		/* No "Expect:" header to turn 100-continue off: libcurl would sign the empty
		 * header it does not send. S3 servers answer 100-continue. */
		EXPT_CURL->easy_setopt(s->c, CURLOPT_UPLOAD, 1L);
		EXPT_CURL->easy_setopt(s->c, CURLOPT_READDATA, up);
		EXPT_CURL->easy_setopt(s->c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
	}
	EXPT_CURL->easy_setopt(s->c, CURLOPT_HTTPHEADER, hdr);
	rc = EXPT_CURL->easy_perform(s->c);
	EXPT_CURL->easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->last_status);
	if (rc == CURLE_WRITE_ERROR) {
		ret = expt_err_set(err, down ? EXPT_EFAIL : EXPT_EBACKEND,
				   down ? "cannot write the object s3://%s/%s to its file"
					: "S3: the answer about s3://%s/%s is too large",
				   bucket, key);
		goto out;
	}
	if (rc != CURLE_OK) {
		s->last_status = 0;
		ret = expt_err_set(err, EXPT_EBACKEND, "S3 %s: %s s3://%s/%s: %s", s->shown, op,
				   bucket, key, EXPT_CURL->easy_strerror(rc));
		goto out;
	}
	if (s->last_status < 200 || s->last_status > 299)
		ret = answer_error(s, op, bucket, key, err);
	goto out;
nomem:
	ret = expt_err_set(err, EXPT_ENOMEM, "out of memory");
out:
	EXPT_CURL->slist_free_all(hdr);
	free(tok);
	free(url);
	return ret;
}

int expt_s3_put(struct expt_s3 *s, const char *bucket, const char *key, const char *file,
		struct expt_err *err)
{
	FILE *f = fopen(file, "rb");
	int64_t size = -1;
	int rc;

	if (!f)
		return expt_err_errno(err, EXPT_EFAIL, "cannot read %s", file);
	if (!fseeko(f, 0, SEEK_END))
		size = (int64_t)ftello(f);
	rewind(f);
	rc = request(s, "PUT", bucket, key, NULL, f, size, NULL, err);
	fclose(f);
	return rc;
}

int expt_s3_list(struct expt_s3 *s, const char *bucket, const char *prefix, json_t **files,
		 struct expt_err *err)
{
	struct expt_buf q = EXPT_BUF_INIT;
	char *pfx = *prefix ? expt_asprintf("%s/", prefix) : expt_strdup(""), *token = NULL;
	json_t *out = json_array();
	size_t plen = pfx ? strlen(pfx) : 0;
	int rc = 0;

	*files = NULL;
	if (!pfx || !out) {
		rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
		goto out;
	}
	for (int page = 0; page < 100000; page++) {
		const char *p, *next;
		char *v, *k, *sz;
		/* The query in canonical order (names sorted), as SigV4 signs it. */
		expt_buf_reset(&q);
		if ((token && (expt_buf_adds(&q, "continuation-token=") || esc(&q, token, 0) ||
			       expt_buf_addch(&q, '&'))) ||
		    expt_buf_adds(&q, "list-type=2&prefix=") || esc(&q, pfx, 0)) {
			rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
			goto out;
		}
		if ((rc = request(s, "LIST", bucket, pfx, q.buf, NULL, 0, NULL, err)))
			goto out;
		p = s->reply.buf;
		next = p;
		while ((v = xml_text(p, s->reply.len - (size_t)(p - s->reply.buf), "Contents",
				     &next))) {
			k = xml_text(v, strlen(v), "Key", NULL);
			sz = xml_text(v, strlen(v), "Size", NULL);
			if (k && strlen(k) > plen && !strncmp(k, pfx, plen))
				json_array_append_new(
				    out, json_pack("{s:s,s:I}", "path", k + plen, "file_size",
						   (json_int_t)(sz ? strtoll(sz, NULL, 10) : 0)));
			free(k);
			free(sz);
			free(v);
			p = next;
		}
		v = xml_text(s->reply.buf, s->reply.len, "IsTruncated", NULL);
		free(token);
		token = v && !strcmp(v, "true")
			    ? xml_text(s->reply.buf, s->reply.len, "NextContinuationToken", NULL)
			    : NULL;
		free(v);
		if (!token)
			break;
	}
	*files = out;
	out = NULL;
out:
	json_decref(out);
	expt_buf_release(&q);
	free(pfx);
	free(token);
	return rc;
}

int expt_s3_get(struct expt_s3 *s, const char *bucket, const char *key, const char *dest,
		struct expt_err *err)
{
	FILE *f = fopen(dest, "wb");
	int rc;

	if (!f)
		return expt_err_errno(err, EXPT_EFAIL, "cannot write %s", dest);
	rc = request(s, "GET", bucket, key, NULL, NULL, 0, f, err);
	if (fclose(f) && !rc)
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot write %s", dest);
	if (rc)
		unlink(dest);
	return rc;
}
