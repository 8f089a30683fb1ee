/* Reproducible image layers: a tar of project files written the same way on every machine
 * (sorted entries, fixed mtime, uid/gid 0, executable bit kept), gzip with a fixed header and
 * level, and the sha256 digests an image refers to them by. Owner: oci/. docs/images.md. */
#ifndef EXPT_OCI_LAYER_H
#define EXPT_OCI_LAYER_H

#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"
#include "util/strv.h"

/* The mtime of every entry: 1 s after the epoch (0 upsets some tools), as Jib writes. */
#define EXPT_OCI_LAYER_MTIME 1

/* "sha256:<64 hex>" of data into out (n >= 72). */
void expt_oci_sha256(const void *data, size_t len, char *out, size_t n);

/* Appends to tar (released by the caller) the files of root named in files (relative paths, as
 * expt_projfiles_list gives them), placed under dest (an absolute directory in the image, e.g.
 * "/app"), with every parent directory as its own entry, sorted bytewise, and the two zero
 * blocks that end an archive. Regular files get mode 0755 when their owner may execute them,
 * else 0644; directories 0755; symlinks are kept as links. 0, or -1 with err filled (a file
 * unreadable, or tar over its cap). */
int expt_oci_layer_tar(const char *root, const struct expt_strv *files, const char *dest,
		       struct expt_buf *tar, struct expt_err *err);

/* gzip of data (level 6, header mtime 0, no name) appended to out: the same bytes for the same
 * input with the same zlib. 0, or -1 with err filled. */
int expt_oci_gzip(const void *data, size_t len, struct expt_buf *out, struct expt_err *err);

#endif
