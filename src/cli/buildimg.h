/* Building the spec's image from other commands (expt run --build, image: build). */
#ifndef EXPT_CLI_BUILDIMG_H
#define EXPT_CLI_BUILDIMG_H

#include "cli.h"
#include "oci/oci.h"
#include "spec/spec.h"

/* Builds and pushes the image of spec's build: section (docs/images.md); per-blob progress on
 * stderr when it is a terminal and not quiet. platform NULL: the spec's or this machine's.
 * 0 with res filled, or the error code with ctx->err filled. */
int cli_build_image(struct cli_ctx *ctx, const struct expt_spec *spec, const char *platform,
		    int quiet, struct expt_oci_build_result *res);

/* The Dockerfile path (build.dockerfile): the first builder that works (docker buildx, podman,
 * buildah) builds and pushes; its output goes to stderr on a terminal (else to a log whose last
 * lines a failure quotes). res gets ref, digest, tag, tag_ref, platform and builder. */
int cli_build_dockerfile(struct cli_ctx *ctx, const struct expt_spec *spec, const char *platform,
			 int quiet, struct expt_oci_build_result *res);

#endif
