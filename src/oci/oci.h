/* `expt build`'s fast path: the project's files as one reproducible layer on a base image,
 * pushed to a registry by expt itself (no daemon). Owner: oci/. docs/images.md. */
#ifndef EXPT_OCI_OCI_H
#define EXPT_OCI_OCI_H

#include <stdint.h>

#include "spec/spec.h"
#include "util/err.h"

/* What happens to one blob, as it happens (for per-blob progress). */
struct expt_oci_event {
	const char *what;   /* "base layer", "code layer", "config", "manifest" */
	const char *digest; /* sha256:... */
	int64_t size;
	const char *state; /* "present" (already there), "mounted" (from the base's repository),
			      "downloading" (a base layer from another registry), "uploading",
			      "pushed"; downloading and uploading come again as bytes move */
	int64_t done;	   /* bytes moved so far while downloading or uploading */
};

struct expt_oci_build_opts {
	const char *docker_config; /* dir holding config.json; NULL: $DOCKER_CONFIG, ~/.docker */
	const char *platform;	   /* NULL: the spec's, else linux/<this machine's arch> */
	void (*progress)(const struct expt_oci_event *ev, void *payload); /* may be NULL */
	void *payload;
};

struct expt_oci_build_result {
	char ref[800];	   /* repository@sha256:... : what a run pins */
	char tag_ref[800]; /* repository:tag */
	char digest[72];   /* the manifest's */
	char tag[80];	   /* "src-" + 24 hex of a digest of what went in */
	char platform[128];
	char base_digest[72]; /* the base image's manifest (the platform's) */
	char layer_digest[72], layer_diff_id[72], config_digest[72];
	int64_t layer_size, layer_tar_size;
	size_t files; /* in the code layer */
	int blobs_present, blobs_mounted, blobs_pushed;
	int64_t bytes_pushed;
	char builder[32]; /* "" for the fast path; "podman", "buildah", "docker buildx" */
};

/* Builds the image of spec's build: section (base set, no dockerfile) and pushes it to
 * build.repository: base manifest (index → platform) and config fetched, the context's files
 * written as one layer under build.workdir, config (env, workdir, entrypoint) and manifest
 * made, and only the blobs the registry lacks pushed (base layers mounted from the base's
 * repository when it is on the same registry, copied otherwise). 0 with out filled, or the
 * error code with err filled (401/403/404, missing base, unsupported platform, unreachable
 * registry each say so). */
int expt_oci_build(const struct expt_spec *spec, const struct expt_oci_build_opts *opts,
		   struct expt_oci_build_result *out, struct expt_err *err);

/* "linux/amd64" etc. for this machine, into out (n >= 32). */
void expt_oci_host_platform(char *out, size_t n);

#endif
