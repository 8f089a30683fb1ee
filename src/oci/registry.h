/* The OCI distribution client used by `expt build`: requests to one registry with its
 * authentication (anonymous, Basic, Bearer tokens with scopes), credentials from Docker's
 * config.json and its credential helpers, and the parsers for what registries send. Owner: oci/.
 * Protocol notes: docs/images.md. */
#ifndef EXPT_OCI_REGISTRY_H
#define EXPT_OCI_REGISTRY_H

#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/strv.h"

/* A WWW-Authenticate challenge: scheme ("Basic", "Bearer") and its parameters. */
struct expt_oci_challenge {
	char scheme[16];
	char realm[1024], service[256], scope[512], error[64];
};
/* Parses the first challenge of a WWW-Authenticate value (quoted and bare parameter values,
 * backslash escapes). 0, or -1 when hdr is not a challenge. */
int expt_oci_challenge_parse(const char *hdr, struct expt_oci_challenge *out);

/* Media types (the OCI and Docker schema 2 families). */
#define EXPT_OCI_MT_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define EXPT_OCI_MT_INDEX "application/vnd.oci.image.index.v1+json"
#define EXPT_OCI_MT_CONFIG "application/vnd.oci.image.config.v1+json"
#define EXPT_OCI_MT_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"
#define EXPT_DOCKER_MT_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define EXPT_DOCKER_MT_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define EXPT_DOCKER_MT_CONFIG "application/vnd.docker.container.image.v1+json"
#define EXPT_DOCKER_MT_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"

/* From an index (len bytes of JSON), the digest of the manifest for platform "os/arch[/variant]"
 * into digest (n >= 72). An entry without a platform counts as linux/amd64. 0 when found; 1 when
 * the index has no such platform (have lists the ones it has, "linux/amd64, linux/arm64/v8");
 * -1 when the JSON is not an index. */
int expt_oci_index_pick(const char *json, size_t len, const char *platform, char *digest, size_t n,
			char *have, size_t nhave);

/* Credentials for a registry host: user/secret, or an identity token. */
struct expt_oci_creds {
	char *user, *secret, *identity_token;
	char source[600]; /* where they came from, for messages ("~/.docker/config.json") */
};
/* Looks host up in DOCKER_CONFIG/config.json (dir NULL: $DOCKER_CONFIG, else ~/.docker):
 * credHelpers, then auths (host, https://host, http://host; Docker Hub's key for index.docker.io),
 * then credsStore; helpers are run as docker-credential-NAME get. No entry: 0 with nothing set
 * (anonymous). -1 with err filled when the file or a helper is broken. Release with
 * expt_oci_creds_release. */
int expt_oci_creds_lookup(const char *dir, const char *host, struct expt_oci_creds *out,
			  struct expt_err *err);
void expt_oci_creds_release(struct expt_oci_creds *c);

/* One registry, one connection. */
struct expt_oci_reg;
struct expt_oci_resp {
	long status;
	struct expt_buf body;
	char *location, *digest, *content_type; /* headers; NULL when absent */
};
/* Opens a client for host (plain HTTP when insecure or a loopback host, HTTPS otherwise), with
 * creds (copied; NULL = anonymous) and the scopes to ask tokens for ("repository:a/b:push,pull",
 * push scope first). NULL with err filled when libcurl cannot be loaded. Free with
 * expt_oci_reg_free. */
struct expt_oci_reg *expt_oci_reg_new(const char *host, int insecure,
				      const struct expt_oci_creds *creds,
				      const struct expt_strv *scopes, struct expt_err *err);
void expt_oci_reg_free(struct expt_oci_reg *r);
const char *expt_oci_reg_host(const struct expt_oci_reg *r);
/* One request, authenticated as the registry asks (one retry after a 401 challenge). path is
 * "/v2/..." or an absolute URL (an upload Location); headers NULL-terminated "Name: value";
 * body may be NULL. resp (released with expt_oci_resp_release) holds any status: the caller
 * judges it. 0, or -1 with err filled when no answer came (unreachable, TLS, token server). */
int expt_oci_reg_do(struct expt_oci_reg *r, const char *method, const char *path,
		    const char *const *headers, const void *body, size_t len, size_t body_max,
		    struct expt_oci_resp *resp, struct expt_err *err);
void expt_oci_resp_release(struct expt_oci_resp *resp);
/* For the requests made until changed back (-1, -1): the answer's body goes to out_fd (when
 * >= 0) instead of resp->body, and the request body is read from in_fd (when >= 0: in_len bytes
 * from its start) instead of body: blobs that need not fit in memory. */
void expt_oci_reg_set_files(struct expt_oci_reg *r, int out_fd, int in_fd, int64_t in_len);

/* Reports the bytes of request and answer bodies as they move (fn may be NULL: none), at most
 * a few times a second, for the requests made until it is changed. */
void expt_oci_reg_set_progress(struct expt_oci_reg *r,
			       void (*fn)(int64_t up, int64_t down, void *payload), void *payload);
/* An error for an unexpected status: "HOST: 401 ... " with the registry's own error text and a
 * hint for 401/403/404. what says what was asked ("pushing the manifest"). Returns its code. */
int expt_oci_status_err(struct expt_oci_reg *r, const struct expt_oci_resp *resp, const char *what,
			struct expt_err *err);

#endif
