/* Image references as docker tags write them (`127.0.0.1:5000/team/app:v1`, `ghcr.io/org/app`,
 * `python:3.12`, `repo@sha256:...`): parsed once for the spec's checks and the registry client. */
#ifndef EXPT_UTIL_IMGREF_H
#define EXPT_UTIL_IMGREF_H

#include <stddef.h>

struct expt_imgref {
	char host[256];	 /* registry host[:port]; "index.docker.io" for Docker Hub */
	char repo[512];	 /* path in the registry; Docker Hub's one-part names get "library/" */
	char tag[129];	 /* "" when none ("latest" is the caller's default) */
	char digest[80]; /* "sha256:<64 hex>" or "" */
};

/* Parses s. The first '/'-separated part is a registry host when it holds '.' or ':' or is
 * "localhost"; otherwise the image is on Docker Hub. Path parts are lowercase letters, digits
 * and single '.', '_', '__' or '-' between them. 0, or -1 with why (a static string) set. */
int expt_imgref_parse(const char *s, struct expt_imgref *out, const char **why);

/* Is host a loopback registry (localhost, 127.x, [::1]) that Docker talks plain HTTP to? */
int expt_imgref_host_is_local(const char *host);

#endif
