/* expt build's fast path: base manifest and config in, one code layer, new config and
 * manifest out, only missing blobs pushed. docs/images.md. */
#include "oci.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/utsname.h>

#include "dl.h"
#include "layer.h"
#include "registry.h"
#include "util/util.h"

#define MANIFEST_MAX (4u << 20)
#define CONFIG_MAX (8u << 20)
#define BLOB_MAX ((size_t)8 << 30)
#define HISTORY_TIME "1970-01-01T00:00:01Z"

static const char accept_all[] = "Accept: " EXPT_OCI_MT_MANIFEST ", " EXPT_OCI_MT_INDEX
				 ", " EXPT_DOCKER_MT_MANIFEST ", " EXPT_DOCKER_MT_LIST;

void expt_oci_host_platform(char *out, size_t n)
{
	struct utsname u;
	const char *arch = "amd64";

	if (!uname(&u)) {
		if (!strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64"))
			arch = "arm64";
		else if (!strncmp(u.machine, "armv7", 5))
			arch = "arm/v7";
		else if (!strcmp(u.machine, "ppc64le"))
			arch = "ppc64le";
		else if (!strcmp(u.machine, "s390x"))
			arch = "s390x";
		else if (!strcmp(u.machine, "riscv64"))
			arch = "riscv64";
	}
	snprintf(out, n, "linux/%s", arch);
}

struct ctx {
	const struct expt_oci_build_opts *opts;
	struct expt_oci_build_result *out;
	struct expt_oci_reg *src, *dst; /* dst may be src */
	struct expt_imgref b, d;
	const char *base_name;
};

static void event(struct ctx *c, const char *what, const char *digest, int64_t size,
		  const char *state)
{
	struct expt_oci_event ev = {what, digest, size, state, 0};

	if (c->opts && c->opts->progress)
		c->opts->progress(&ev, c->opts->payload);
}

/* The blob moving now, for byte progress. */
struct moving {
	struct ctx *c;
	const char *what, *digest;
	int64_t size;
};

static void on_bytes(int64_t up, int64_t down, void *payload)
{
	struct moving *m = payload;
	struct expt_oci_event ev = {m->what, m->digest, m->size, up ? "uploading" : "downloading",
				    up ? up : down};

	m->c->opts->progress(&ev, m->c->opts->payload);
}

/* Byte progress for the next requests on r (NULL what: off). */
static void watch(struct ctx *c, struct expt_oci_reg *r, struct moving *m, const char *what,
		  const char *digest, int64_t size)
{
	if (!c->opts || !c->opts->progress)
		return;
	if (!what) {
		expt_oci_reg_set_progress(r, NULL, NULL);
		return;
	}
	m->c = c;
	m->what = what;
	m->digest = digest;
	m->size = size;
	expt_oci_reg_set_progress(r, on_bytes, m);
}

static int is_index(const char *mt)
{
	return mt && (!strcmp(mt, EXPT_OCI_MT_INDEX) || !strcmp(mt, EXPT_DOCKER_MT_LIST));
}

/* GET a manifest of the base; checks the digest when asked by digest. */
static int get_manifest(struct ctx *c, const char *ref, struct expt_oci_resp *resp, char **mt,
			struct expt_err *err)
{
	const char *const hdr[] = {accept_all, NULL};
	char *path = expt_xasprintf("/v2/%s/manifests/%s", c->b.repo, ref);
	json_t *j;
	int rc;

	rc = expt_oci_reg_do(c->src, "GET", path, hdr, NULL, 0, MANIFEST_MAX, resp, err);
	free(path);
	if (rc)
		return -1;
	if (resp->status == 404) {
		expt_err_set(err, EXPT_ENOTFOUND,
			     "the base image %s is not in the registry %s (no such repository, "
			     "tag or digest: HTTP 404 for %s/manifests/%s); push it first or fix "
			     "build.base",
			     c->base_name, c->b.host, c->b.repo, ref);
		return -1;
	}
	if (resp->status != 200) {
		char what[700];
		snprintf(what, sizeof(what), "reading the base image %s", c->base_name);
		expt_oci_status_err(c->src, resp, what, err);
		return -1;
	}
	if (!strncmp(ref, "sha256:", 7)) {
		char dig[72];
		expt_oci_sha256(resp->body.buf, resp->body.len, dig, sizeof(dig));
		if (strcmp(dig, ref)) {
			expt_err_set(err, EXPT_EBACKEND,
				     "%s: the manifest served for %s has digest %s: refusing it",
				     c->b.host, ref, dig);
			return -1;
		}
	}
	j = json_loadb(resp->body.buf, resp->body.len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		expt_err_set(err, EXPT_EBACKEND, "%s: the manifest of %s is not JSON", c->b.host,
			     c->base_name);
		return -1;
	}
	*mt = expt_xstrdup(json_string_value(json_object_get(j, "mediaType")));
	if (!*mt && resp->content_type)
		*mt = expt_xstrndup(resp->content_type, strcspn(resp->content_type, ";"));
	if (!*mt && json_object_get(j, "manifests"))
		*mt = expt_xstrdup(EXPT_OCI_MT_INDEX);
	if (!*mt)
		*mt = expt_xstrdup(EXPT_OCI_MT_MANIFEST);
	json_decref(j);
	return 0;
}

/* GET a blob of the base into resp, checking its digest. */
static int get_blob(struct ctx *c, const char *digest, size_t max, struct expt_oci_resp *resp,
		    struct expt_err *err)
{
	char *path = expt_xasprintf("/v2/%s/blobs/%s", c->b.repo, digest);
	char dig[72];
	int rc = expt_oci_reg_do(c->src, "GET", path, NULL, NULL, 0, max, resp, err);

	free(path);
	if (rc)
		return -1;
	if (resp->status != 200) {
		char what[200];
		snprintf(what, sizeof(what), "reading blob %s of %s", digest, c->base_name);
		expt_oci_status_err(c->src, resp, what, err);
		return -1;
	}
	expt_oci_sha256(resp->body.buf, resp->body.len, dig, sizeof(dig));
	if (strcmp(dig, digest)) {
		expt_err_set(err, EXPT_EBACKEND, "%s: blob %s arrived with digest %s", c->b.host,
			     digest, dig);
		return -1;
	}
	return 0;
}

/* PUT data at an upload session (location), or at a new one. */
static int upload(struct ctx *c, const char *location, const void *data, size_t len,
		  const char *digest, struct expt_err *err)
{
	struct expt_oci_resp resp = {0};
	char *loc = location ? expt_xstrdup(location) : NULL, *url = NULL;
	const char *const put_hdr[] = {"Content-Type: application/octet-stream", NULL};
	int rc = -1;

	if (!loc) {
		char *path = expt_xasprintf("/v2/%s/blobs/uploads/", c->d.repo);
		rc = expt_oci_reg_do(c->dst, "POST", path, NULL, NULL, 0, 1u << 20, &resp, err);
		free(path);
		if (rc)
			goto out;
		rc = -1;
		if (resp.status != 202 || !resp.location) {
			expt_oci_status_err(c->dst, &resp, "starting an upload", err);
			goto out;
		}
		loc = expt_xstrdup(resp.location);
	}
	url = expt_xasprintf("%s%sdigest=%s", loc, strchr(loc, '?') ? "&" : "?", digest);
	if (expt_oci_reg_do(c->dst, "PUT", url, put_hdr, data, len, 1u << 20, &resp, err))
		goto out;
	if (resp.status != 201 && resp.status != 204) {
		char what[120];
		snprintf(what, sizeof(what), "uploading blob %s", digest);
		expt_oci_status_err(c->dst, &resp, what, err);
		goto out;
	}
	c->out->blobs_pushed++;
	c->out->bytes_pushed += (int64_t)len;
	rc = 0;
out:
	free(url);
	free(loc);
	expt_oci_resp_release(&resp);
	return rc;
}

/* 1 when dst has the blob, 0 when not, -1 on error. */
static int has_blob(struct ctx *c, const char *digest, struct expt_err *err)
{
	struct expt_oci_resp resp = {0};
	char *path = expt_xasprintf("/v2/%s/blobs/%s", c->d.repo, digest);
	int rc = expt_oci_reg_do(c->dst, "HEAD", path, NULL, NULL, 0, 1u << 20, &resp, err);

	free(path);
	if (!rc) {
		if (resp.status == 200)
			rc = 1;
		else if (resp.status == 404)
			rc = 0;
		else {
			char what[120];
			snprintf(what, sizeof(what), "checking for blob %s", digest);
			expt_oci_status_err(c->dst, &resp, what, err);
			rc = -1;
		}
	} else {
		rc = -1;
	}
	expt_oci_resp_release(&resp);
	return rc;
}

/* A blob we have in memory: HEAD, then upload when missing. */
static int push_own(struct ctx *c, const char *what, const void *data, size_t len,
		    const char *digest, struct expt_err *err)
{
	int has = has_blob(c, digest, err);

	if (has < 0)
		return -1;
	if (has) {
		c->out->blobs_present++;
		event(c, what, digest, (int64_t)len, "present");
		return 0;
	}
	struct moving m;

	event(c, what, digest, (int64_t)len, "uploading");
	watch(c, c->dst, &m, what, digest, (int64_t)len);
	has = upload(c, NULL, data, len, digest, err);
	watch(c, c->dst, &m, NULL, NULL, 0);
	if (has)
		return -1;
	event(c, what, digest, (int64_t)len, "pushed");
	return 0;
}

/* sha256 of what fd holds, into out (n >= 72); -1 on a read error. */
static int sha256_fd(int fd, char *out, size_t n)
{
	const struct expt_ocilibs *l = expt_ocilibs(NULL);
	EVP_MD_CTX *md = l ? l->EVP_MD_CTX_new() : NULL;
	unsigned char buf[1 << 16], h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	ssize_t got;
	size_t o;
	int rc = 0;

	if (!md || lseek(fd, 0, SEEK_SET) < 0)
		rc = -1;
	if (!rc)
		l->EVP_DigestInit_ex(md, l->EVP_sha256(), NULL);
	while (!rc && (got = read(fd, buf, sizeof(buf))) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			rc = -1;
		else
			l->EVP_DigestUpdate(md, buf, (size_t)got);
	}
	if (!rc) {
		l->EVP_DigestFinal_ex(md, h, &hl);
		o = (size_t)snprintf(out, n, "sha256:");
		for (unsigned i = 0; i < hl && o + 2 < n; i++)
			o += (size_t)snprintf(out + o, n - o, "%02x", h[i]);
	}
	if (md)
		l->EVP_MD_CTX_free(md);
	return rc;
}

/* A base layer from another registry (or one the mount did not take): through a temporary file,
 * so that a layer of gigabytes needs no memory; its digest checked before it is uploaded. */
static int copy_blob(struct ctx *c, const char *digest, int64_t size, const char *location,
		     struct expt_err *err)
{
	struct expt_oci_resp resp = {0};
	struct moving m;
	char tmpl[4096], got[72];
	const char *tmp = getenv("TMPDIR");
	char *path = expt_xasprintf("/v2/%s/blobs/%s", c->b.repo, digest);
	struct stat st;
	int fd, rc = -1;

	snprintf(tmpl, sizeof(tmpl), "%s/expt-blob-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0) {
		free(path);
		return expt_err_errno(err, EXPT_EFAIL, "a temporary file in %s", tmpl), -1;
	}
	unlink(tmpl);
	event(c, "base layer", digest, size, "downloading");
	watch(c, c->src, &m, "base layer", digest, size);
	expt_oci_reg_set_files(c->src, fd, -1, 0);
	rc = expt_oci_reg_do(c->src, "GET", path, NULL, NULL, 0, 1u << 20, &resp, err);
	expt_oci_reg_set_files(c->src, -1, -1, 0);
	watch(c, c->src, &m, NULL, NULL, 0);
	if (rc)
		goto out;
	rc = -1;
	if (resp.status != 200) {
		char what[200];
		snprintf(what, sizeof(what), "reading blob %s of %s", digest, c->base_name);
		expt_oci_status_err(c->src, &resp, what, err);
		goto out;
	}
	if (sha256_fd(fd, got, sizeof(got)) || fstat(fd, &st)) {
		expt_err_errno(err, EXPT_EFAIL, "reading back blob %s", digest);
		goto out;
	}
	if (strcmp(got, digest)) {
		expt_err_set(err, EXPT_EBACKEND, "%s: blob %s arrived with digest %s", c->b.host,
			     digest, got);
		goto out;
	}
	event(c, "base layer", digest, size, "uploading");
	watch(c, c->dst, &m, "base layer", digest, size);
	expt_oci_reg_set_files(c->dst, -1, fd, (int64_t)st.st_size);
	rc = upload(c, location, NULL, (size_t)st.st_size, digest, err);
	expt_oci_reg_set_files(c->dst, -1, -1, 0);
	watch(c, c->dst, &m, NULL, NULL, 0);
out:
	close(fd);
	free(path);
	expt_oci_resp_release(&resp);
	return rc;
}

/* A base layer: HEAD; mount from the base's repository on the same registry; else copy. */
static int push_base(struct ctx *c, const char *digest, int64_t size, struct expt_err *err)
{
	struct expt_oci_resp resp = {0};
	char *location = NULL;
	int has = has_blob(c, digest, err), rc = -1;

	if (has < 0)
		return -1;
	if (has) {
		c->out->blobs_present++;
		event(c, "base layer", digest, size, "present");
		return 0;
	}
	if (c->src == c->dst) {
		char *path = expt_xasprintf("/v2/%s/blobs/uploads/?mount=%s&from=%s", c->d.repo,
					    digest, c->b.repo);
		int r = expt_oci_reg_do(c->dst, "POST", path, NULL, NULL, 0, 1u << 20, &resp, err);
		free(path);
		if (r)
			goto out;
		if (resp.status == 201) {
			c->out->blobs_mounted++;
			event(c, "base layer", digest, size, "mounted");
			rc = 0;
			goto out;
		}
		if (resp.status == 202 && resp.location)
			location = expt_xstrdup(resp.location); /* not mounted: upload there */
	}
	if (copy_blob(c, digest, size, location, err))
		goto out;
	event(c, "base layer", digest, size, "pushed");
	rc = 0;
out:
	free(location);
	expt_oci_resp_release(&resp);
	return rc;
}

/* Sets NAME=VALUE in a config's Env list, replacing an entry of the same name. */
static void env_set(json_t *env, const char *name, const char *value)
{
	size_t nl = strlen(name), i;
	char *kv = expt_xasprintf("%s=%s", name, value);

	for (i = 0; i < json_array_size(env); i++) {
		const char *e = json_string_value(json_array_get(env, i));
		if (e && !strncmp(e, name, nl) && e[nl] == '=') {
			json_array_set_new(env, i, json_string(kv));
			free(kv);
			return;
		}
	}
	json_array_append_new(env, json_string(kv));
	free(kv);
}

/* The new config: the base's, with the layer's diff_id, a history entry and the runtime
 * settings of build:. Returns compact JSON (caller frees) or NULL. */
static char *make_config(const struct expt_spec *spec, json_t *cfg, const char *diff_id,
			 size_t nfiles)
{
	json_t *rc = json_object_get(cfg, "config"), *rootfs, *ids, *hist, *env;
	json_t *h;
	char comment[600];

	if (!json_is_object(rc)) {
		rc = json_object();
		json_object_set_new(cfg, "config", rc);
	}
	rootfs = json_object_get(cfg, "rootfs");
	if (!json_is_object(rootfs)) {
		rootfs = json_object();
		json_object_set_new(cfg, "rootfs", rootfs);
		json_object_set_new(rootfs, "type", json_string("layers"));
	}
	ids = json_object_get(rootfs, "diff_ids");
	if (!json_is_array(ids)) {
		ids = json_array();
		json_object_set_new(rootfs, "diff_ids", ids);
	}
	json_array_append_new(ids, json_string(diff_id));
	hist = json_object_get(cfg, "history");
	if (!json_is_array(hist)) {
		hist = json_array();
		json_object_set_new(cfg, "history", hist);
	}
	snprintf(comment, sizeof(comment), "%zu files of the project in %s", nfiles,
		 spec->build.workdir);
	h = json_pack("{s:s, s:s, s:s}", "created", HISTORY_TIME, "created_by", "expt build",
		      "comment", comment);
	json_array_append_new(hist, h);
	env = json_object_get(rc, "Env");
	if (!json_is_array(env)) {
		env = json_array();
		json_object_set_new(rc, "Env", env);
	}
	for (size_t i = 0; i < spec->build.env.n; i++)
		env_set(env, spec->build.env.v[i].key, spec->build.env.v[i].value);
	if (!json_array_size(env))
		json_object_del(rc, "Env");
	json_object_set_new(rc, "WorkingDir", json_string(spec->build.workdir));
	if (spec->build.entrypoint_set) {
		json_t *ep = json_array();
		for (size_t i = 0; i < spec->build.entrypoint.n; i++)
			json_array_append_new(ep, json_string(spec->build.entrypoint.v[i]));
		json_object_set_new(rc, "Entrypoint", ep);
		/* As a Dockerfile's ENTRYPOINT does: the base's CMD was written for its own. */
		json_object_del(rc, "Cmd");
	}
	return json_dumps(cfg, JSON_COMPACT);
}

int expt_oci_build(const struct expt_spec *spec, const struct expt_oci_build_opts *opts,
		   struct expt_oci_build_result *out, struct expt_err *err)
{
	struct ctx c;
	struct expt_oci_creds bc = {0}, dc = {0};
	struct expt_strv scopes = EXPT_STRV_INIT, files = EXPT_STRV_INIT;
	struct expt_oci_resp man = {0}, cfgblob = {0}, put = {0};
	struct expt_buf tar = EXPT_BUF_INIT, gz = EXPT_BUF_INIT, mb = EXPT_BUF_INIT;
	struct expt_projfiles_opts sel = {&spec->build.include, &spec->build.exclude, 1};
	char *mt = NULL, *cfg_text = NULL, *mpath = NULL;
	const char *why = NULL, *dconf = opts ? opts->docker_config : NULL;
	char platform[128], dig[72];
	json_t *mj = NULL, *cj = NULL, *layers;
	int explicit_platform, oci, rc = -1;
	const char *lmt = EXPT_OCI_MT_LAYER;

	memset(out, 0, sizeof(*out));
	memset(&c, 0, sizeof(c));
	c.opts = opts;
	c.out = out;
	c.base_name = spec->build.base;
	if (!spec->build.set || !spec->build.base || !spec->build.repository) {
		expt_err_set(err, EXPT_EUSAGE,
			     "%s: the spec has no build: section with base and repository",
			     spec->path);
		return EXPT_EUSAGE;
	}
	if (expt_imgref_parse(spec->build.base, &c.b, &why) ||
	    expt_imgref_parse(spec->build.repository, &c.d, &why)) {
		expt_err_set(err, EXPT_EUSAGE, "%s: build: %s", spec->path, why);
		return EXPT_EUSAGE;
	}
	if (!expt_ocilibs(err))
		return err->code;
	explicit_platform = (opts && opts->platform) || spec->build.platform;
	if (opts && opts->platform)
		snprintf(platform, sizeof(platform), "%s", opts->platform);
	else if (spec->build.platform)
		snprintf(platform, sizeof(platform), "%s", spec->build.platform);
	else
		expt_oci_host_platform(platform, sizeof(platform));

	if (expt_oci_creds_lookup(dconf, c.b.host, &bc, err) ||
	    (strcmp(c.b.host, c.d.host) && expt_oci_creds_lookup(dconf, c.d.host, &dc, err)))
		goto out;
	/* Push scope first (as ggcr asks); pull on the base's repository. */
	if (!strcmp(c.b.host, c.d.host)) {
		expt_strv_pushf(&scopes, "repository:%s:push,pull", c.d.repo);
		if (strcmp(c.b.repo, c.d.repo))
			expt_strv_pushf(&scopes, "repository:%s:pull", c.b.repo);
		c.src = c.dst = expt_oci_reg_new(c.b.host, spec->build.insecure, &bc, &scopes, err);
		if (!c.src)
			goto out;
	} else {
		expt_strv_pushf(&scopes, "repository:%s:pull", c.b.repo);
		c.src = expt_oci_reg_new(c.b.host, spec->build.insecure, &bc, &scopes, err);
		expt_strv_release(&scopes);
		expt_strv_pushf(&scopes, "repository:%s:push,pull", c.d.repo);
		if (c.src)
			c.dst = expt_oci_reg_new(c.d.host, spec->build.insecure, &dc, &scopes, err);
		if (!c.dst)
			goto out;
	}

	/* 1. The base: its manifest for the platform, and its config. */
	if (get_manifest(&c,
			 c.b.digest[0] ? c.b.digest
			 : c.b.tag[0]  ? c.b.tag
				       : "latest",
			 &man, &mt, err))
		goto out;
	if (is_index(mt)) {
		char have[512];
		int p = expt_oci_index_pick(man.body.buf, man.body.len, platform, dig, sizeof(dig),
					    have, sizeof(have));
		if (p < 0) {
			expt_err_set(err, EXPT_EBACKEND,
				     "the base image %s: its index is not valid", spec->build.base);
			goto out;
		}
		if (p > 0) {
			expt_err_set(err, EXPT_EUSAGE,
				     "the base image %s has no %s image (it has %s); set "
				     "build.platform to one of those",
				     spec->build.base, platform, *have ? have : "none");
			goto out;
		}
		free(mt);
		mt = NULL;
		expt_oci_resp_release(&man);
		if (get_manifest(&c, dig, &man, &mt, err))
			goto out;
		if (is_index(mt)) {
			expt_err_set(err, EXPT_EBACKEND,
				     "the base image %s: nested indexes are "
				     "not supported",
				     spec->build.base);
			goto out;
		}
	}
	expt_oci_sha256(man.body.buf, man.body.len, out->base_digest, sizeof(out->base_digest));
	mj = json_loadb(man.body.buf, man.body.len, 0, NULL);
	layers = json_object_get(mj, "layers");
	{
		const char *cd =
		    json_string_value(json_object_get(json_object_get(mj, "config"), "digest"));
		if (!cd || !json_is_array(layers) ||
		    json_integer_value(json_object_get(mj, "schemaVersion")) != 2) {
			expt_err_set(
			    err, EXPT_EUSAGE,
			    "the base image %s: its manifest (%s) is not an image manifest of "
			    "schema 2",
			    spec->build.base, mt);
			goto out;
		}
		if (get_blob(&c, cd, CONFIG_MAX, &cfgblob, err))
			goto out;
	}
	cj = json_loadb(cfgblob.body.buf, cfgblob.body.len, 0, NULL);
	if (!json_is_object(cj)) {
		expt_err_set(err, EXPT_EBACKEND, "the base image %s: its config is not JSON",
			     spec->build.base);
		goto out;
	}
	{
		const char *os = json_string_value(json_object_get(cj, "os"));
		const char *arch = json_string_value(json_object_get(cj, "architecture"));
		const char *var = json_string_value(json_object_get(cj, "variant"));
		char have[128];
		snprintf(have, sizeof(have), "%s/%s%s%s", os ? os : "?", arch ? arch : "?",
			 var ? "/" : "", var ? var : "");
		if (explicit_platform && strncmp(have, platform, strlen(platform))) {
			expt_err_set(err, EXPT_EUSAGE,
				     "the base image %s is %s only, not %s (build.platform)",
				     spec->build.base, have, platform);
			goto out;
		}
		snprintf(out->platform, sizeof(out->platform), "%s", have);
	}
	oci = !strcmp(mt, EXPT_OCI_MT_MANIFEST);
	if (!oci)
		lmt = EXPT_DOCKER_MT_LAYER;

	/* 2. The code layer. */
	if (expt_projfiles_list(spec->build.context_abs, &sel, &files, err))
		goto out;
	out->files = files.n;
	if (expt_oci_layer_tar(spec->build.context_abs, &files, spec->build.workdir, &tar, err) ||
	    expt_oci_gzip(tar.buf, tar.len, &gz, err))
		goto out;
	expt_oci_sha256(tar.buf, tar.len, out->layer_diff_id, sizeof(out->layer_diff_id));
	expt_oci_sha256(gz.buf, gz.len, out->layer_digest, sizeof(out->layer_digest));
	out->layer_size = (int64_t)gz.len;
	out->layer_tar_size = (int64_t)tar.len;

	/* 3. Config and manifest, in the base's family. */
	cfg_text = make_config(spec, cj, out->layer_diff_id, files.n);
	if (!cfg_text) {
		expt_err_set(err, EXPT_ENOMEM, "out of memory");
		goto out;
	}
	expt_oci_sha256(cfg_text, strlen(cfg_text), out->config_digest, sizeof(out->config_digest));
	expt_buf_addf(&mb,
		      "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
		      "\"digest\":\"%s\",\"size\":%zu},\"layers\":[",
		      oci ? EXPT_OCI_MT_MANIFEST : EXPT_DOCKER_MT_MANIFEST,
		      oci ? EXPT_OCI_MT_CONFIG : EXPT_DOCKER_MT_CONFIG, out->config_digest,
		      strlen(cfg_text));
	for (size_t i = 0; i < json_array_size(layers); i++) {
		char *d = json_dumps(json_array_get(layers, i), JSON_COMPACT);
		expt_buf_addf(&mb, "%s,", d ? d : "null");
		free(d);
	}
	expt_buf_addf(&mb, "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":%zu}]}", lmt,
		      out->layer_digest, gz.len);
	expt_oci_sha256(mb.buf, mb.len, out->digest, sizeof(out->digest));
	snprintf(out->tag, sizeof(out->tag), "src-%.24s", out->digest + 7);
	snprintf(out->ref, sizeof(out->ref), "%s@%s", spec->build.repository, out->digest);
	snprintf(out->tag_ref, sizeof(out->tag_ref), "%s:%s", spec->build.repository, out->tag);

	/* 4. Push what the registry lacks: base layers, the code layer, config, manifest. */
	for (size_t i = 0; i < json_array_size(layers); i++) {
		json_t *l = json_array_get(layers, i);
		const char *d = json_string_value(json_object_get(l, "digest"));
		if (d &&
		    push_base(&c, d, (int64_t)json_integer_value(json_object_get(l, "size")), err))
			goto out;
	}
	if (push_own(&c, "code layer", gz.buf, gz.len, out->layer_digest, err) ||
	    push_own(&c, "config", cfg_text, strlen(cfg_text), out->config_digest, err))
		goto out;
	{
		char ct[120];
		const char *const hdr[] = {ct, NULL};
		snprintf(ct, sizeof(ct), "Content-Type: %s",
			 oci ? EXPT_OCI_MT_MANIFEST : EXPT_DOCKER_MT_MANIFEST);
		mpath = expt_xasprintf("/v2/%s/manifests/%s", c.d.repo, out->tag);
		event(&c, "manifest", out->digest, (int64_t)mb.len, "uploading");
		if (expt_oci_reg_do(c.dst, "PUT", mpath, hdr, mb.buf, mb.len, 1u << 20, &put, err))
			goto out;
		if (put.status != 201 && put.status != 200) {
			expt_oci_status_err(c.dst, &put, "pushing the manifest", err);
			goto out;
		}
		if (put.digest && strcmp(put.digest, out->digest)) {
			expt_err_set(err, EXPT_EBACKEND,
				     "%s: the registry stored the manifest as %s, expt computed %s",
				     c.d.host, put.digest, out->digest);
			goto out;
		}
		event(&c, "manifest", out->digest, (int64_t)mb.len, "pushed");
	}
	rc = 0;
out:
	if (rc && !err->code)
		expt_err_set(err, EXPT_EFAIL, "expt build failed");
	json_decref(mj);
	json_decref(cj);
	free(mt);
	free(cfg_text);
	free(mpath);
	expt_oci_resp_release(&man);
	expt_oci_resp_release(&cfgblob);
	expt_oci_resp_release(&put);
	expt_buf_release(&tar);
	expt_buf_release(&gz);
	expt_buf_release(&mb);
	expt_strv_release(&scopes);
	expt_strv_release(&files);
	expt_oci_creds_release(&bc);
	expt_oci_creds_release(&dc);
	if (c.dst != c.src)
		expt_oci_reg_free(c.dst);
	expt_oci_reg_free(c.src);
	return rc ? err->code : 0;
}
