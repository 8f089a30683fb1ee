/* libcurl, loaded when first needed (curl_dl.h). */
#include "curl_dl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

static struct expt_curl table;
static int loaded; /* 1 loaded, -1 failed */
static char why[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"};
	void *h = NULL;

	for (size_t i = 0; !h && i < sizeof(names) / sizeof(names[0]); i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(why, sizeof(why), "cannot load libcurl (libcurl.so.4): %s", dlerror());
		loaded = -1;
		return;
	}
#define SYM(field, name)                                                                           \
	do {                                                                                       \
		*(void **)&table.field = dlsym(h, name);                                           \
		if (!table.field) {                                                                \
			snprintf(why, sizeof(why), "libcurl has no %s: too old?", name);           \
			loaded = -1;                                                               \
			return;                                                                    \
		}                                                                                  \
	} while (0)
	SYM(global_init, "curl_global_init");
	SYM(easy_init, "curl_easy_init");
	SYM(easy_setopt, "curl_easy_setopt");
	SYM(easy_perform, "curl_easy_perform");
	SYM(easy_getinfo, "curl_easy_getinfo");
	SYM(easy_reset, "curl_easy_reset");
	SYM(easy_cleanup, "curl_easy_cleanup");
	SYM(easy_strerror, "curl_easy_strerror");
	SYM(slist_append, "curl_slist_append");
	SYM(slist_free_all, "curl_slist_free_all");
	SYM(multi_init, "curl_multi_init");
	SYM(multi_add_handle, "curl_multi_add_handle");
	SYM(multi_remove_handle, "curl_multi_remove_handle");
	SYM(multi_perform, "curl_multi_perform");
	SYM(multi_poll, "curl_multi_poll");
	SYM(multi_info_read, "curl_multi_info_read");
	SYM(multi_cleanup, "curl_multi_cleanup");
	SYM(multi_setopt, "curl_multi_setopt");
#undef SYM
	if (table.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(why, sizeof(why), "libcurl could not be initialised");
		loaded = -1;
		return;
	}
	loaded = 1;
}

const struct expt_curl *expt_curl(struct expt_err *err)
{
	pthread_once(&once, load);
	if (loaded == 1)
		return &table;
	if (err)
		expt_err_set(err, EXPT_EBACKEND, "%s", why);
	return NULL;
}
