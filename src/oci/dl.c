/* libcrypto and zlib, loaded when first needed (dl.h). */
#include "dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static struct expt_ocilibs table;
static int loaded; /* 1 loaded, -1 failed */
static char why[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *open_one(const char *const *names, size_t n, const char *what)
{
	void *h = NULL;

	for (size_t i = 0; !h && i < n; i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h)
		snprintf(why, sizeof(why), "cannot load %s: %s", what, dlerror());
	return h;
}

static void load(void)
{
	static const char *const crypto[] = {"libcrypto.so.3", "libcrypto.so"};
	static const char *const z[] = {"libz.so.1", "libz.so"};
	void *hc = open_one(crypto, 2, "libcrypto (libcrypto.so.3, Debian package libssl3)");
	void *hz = hc ? open_one(z, 2, "zlib (libz.so.1, Debian package zlib1g)") : NULL;

	loaded = -1;
	if (!hc || !hz)
		return;
#define SYM(h, field)                                                                              \
	do {                                                                                       \
		*(void **)&table.field = dlsym(h, #field);                                         \
		if (!table.field) {                                                                \
			snprintf(why, sizeof(why), "%s has no %s", h == hc ? "libcrypto" : "zlib", \
				 #field);                                                          \
			return;                                                                    \
		}                                                                                  \
	} while (0)
	SYM(hc, EVP_Digest);
	SYM(hc, EVP_sha256);
	SYM(hc, EVP_MD_CTX_new);
	SYM(hc, EVP_MD_CTX_free);
	SYM(hc, EVP_DigestInit_ex);
	SYM(hc, EVP_DigestUpdate);
	SYM(hc, EVP_DigestFinal_ex);
	SYM(hc, EVP_EncodeBlock);
	SYM(hc, EVP_DecodeBlock);
	SYM(hz, deflateInit2_);
	SYM(hz, deflate);
	SYM(hz, deflateEnd);
	SYM(hz, zlibVersion);
#undef SYM
	loaded = 1;
}

const struct expt_ocilibs *expt_ocilibs(struct expt_err *err)
{
	pthread_once(&once, load);
	if (loaded == 1)
		return &table;
	if (err)
		expt_err_set(err, EXPT_EBACKEND, "%s", why);
	return NULL;
}
