/* libcrypto (sha256, base64) and zlib (gzip), loaded when `expt build` first needs them
 * (dlopen), as libcurl is (util/curl_dl.h): linked, they cost every expt command a few ms of
 * start-up (libcrypto's relocations and initialisers), and only image builds use them. The
 * types and constants come from their headers; the functions through the table. Owner: oci/. */
#ifndef EXPT_OCI_DL_H
#define EXPT_OCI_DL_H

#include <openssl/evp.h>
#include <zlib.h>

#include "util/err.h"

struct expt_ocilibs {
	int (*EVP_Digest)(const void *data, size_t count, unsigned char *md, unsigned int *size,
			  const EVP_MD *type, ENGINE *impl);
	const EVP_MD *(*EVP_sha256)(void);
	EVP_MD_CTX *(*EVP_MD_CTX_new)(void);
	void (*EVP_MD_CTX_free)(EVP_MD_CTX *ctx);
	int (*EVP_DigestInit_ex)(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl);
	int (*EVP_DigestUpdate)(EVP_MD_CTX *ctx, const void *d, size_t cnt);
	int (*EVP_DigestFinal_ex)(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s);
	int (*EVP_EncodeBlock)(unsigned char *t, const unsigned char *f, int n);
	int (*EVP_DecodeBlock)(unsigned char *t, const unsigned char *f, int n);
	int (*deflateInit2_)(z_streamp strm, int level, int method, int windowBits, int memLevel,
			     int strategy, const char *version, int stream_size);
	int (*deflate)(z_streamp strm, int flush);
	int (*deflateEnd)(z_streamp strm);
	const char *(*zlibVersion)(void);
};

/* The table, loading both libraries on the first call; NULL with err filled (which library
 * could not be loaded) when they cannot be had. Thread-safe; lives as long as the process. */
const struct expt_ocilibs *expt_ocilibs(struct expt_err *err);

#endif
