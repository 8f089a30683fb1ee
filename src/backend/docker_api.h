/* A small Docker Engine API client (Docker, or Podman's compatible service): HTTP/1.1 over the
 * engine's unix socket with libcurl, bodies read into capped buffers. Engine discovery and API
 * version negotiation live here; what to ask the engine is container.c's. Owner: backend/. */
#ifndef EXPT_BACKEND_DOCKER_API_H
#define EXPT_BACKEND_DOCKER_API_H

#include <stdint.h>

#include "../util/buf.h"
#include "../util/err.h"

/* Largest body read from the engine (an inspect, a pull's progress stream). */
#define EXPT_DOCKER_BODY_MAX (16u << 20)

struct expt_docker; /* a connection to one engine: its socket and the API version agreed */

/* Finds the engine: $DOCKER_HOST (unix:// only; when set, nothing else is tried), else
 * /var/run/docker.sock, /run/podman/podman.sock, $XDG_RUNTIME_DIR/podman/podman.sock; the first
 * that answers GET /version. The API version is the server's, capped at 1.41. EXPT_EBACKEND
 * naming every socket tried (and why each failed) when none answers. *out: expt_docker_free. */
int expt_docker_open(struct expt_docker **out, struct expt_err *err);
/* The same, for container.engine: want "docker" tries only Docker's socket, "podman" only
 * Podman's (DOCKER_HOST, when set, is still the only one tried), and an engine that answers as
 * the other one is refused, named in the error; NULL or "auto" is expt_docker_open. */
int expt_docker_open_engine(struct expt_docker **out, const char *want, struct expt_err *err);
void expt_docker_free(struct expt_docker *d); /* NULL is a no-op */

/* The socket path and the "/v1.41" prefix in use. Owned by d. */
const char *expt_docker_socket(const struct expt_docker *d);
const char *expt_docker_version(const struct expt_docker *d);

/* One request: method ("GET", "POST", "DELETE"), path under the version prefix ("/containers/
 * create?name=x"), body (JSON text) or NULL. *status is the HTTP status; resp (reset first) the
 * body, up to EXPT_DOCKER_BODY_MAX. timeout_ms 0: 30 s. Returns 0 whenever the engine answered
 * (whatever the status), EXPT_EBACKEND when it could not be reached. */
int expt_docker_call(struct expt_docker *d, const char *method, const char *path, const char *body,
		     int64_t timeout_ms, long *status, struct expt_buf *resp, struct expt_err *err);

/* The same with one more request header ("Name: value"), or NULL. */
int expt_docker_call_hdr(struct expt_docker *d, const char *method, const char *path,
			 const char *body, const char *header, int64_t timeout_ms, long *status,
			 struct expt_buf *resp, struct expt_err *err);

/* The same for a streamed answer (a pull's JSON lines of progress): each complete line goes to
 * fn as it arrives (line not NUL-terminated), and the whole body to resp as well. No body. */
int expt_docker_call_lines(struct expt_docker *d, const char *method, const char *path,
			   const char *header, int64_t timeout_ms,
			   void (*fn)(const char *line, size_t len, void *payload), void *payload,
			   long *status, struct expt_buf *resp, struct expt_err *err);

/* The X-Registry-Auth value (base64url JSON of username, password, serveraddress) for pulling
 * image: the `auths` entry of its registry in $DOCKER_CONFIG/config.json (default
 * ~/.docker/config.json), from `auth` (base64 "user:password") or `username`/`password`; NULL
 * when there is none (credential stores and helpers are not read). registry gets the registry
 * the image names. Caller frees. */
char *expt_docker_registry_auth(const char *image, char *registry, size_t n);

/* The engine's error text in an error body ({"message": "..."}), else the body itself. */
void expt_docker_errmsg(const struct expt_buf *resp, char *out, size_t n);

/* "http://d/v1.41" + path: the URL of path for a handle of the caller's own (a log stream). */
char *expt_docker_url(const struct expt_docker *d, const char *path);

/* s escaped for a URL query (caller frees). */
char *expt_docker_escape(const char *s);

#endif
