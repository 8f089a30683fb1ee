/* libcurl, loaded when first needed (dlopen) rather than linked: a program that links it pays
 * for loading ~30 shared libraries at every start, and `expt ps` must start in a few ms. Only
 * the backends that talk HTTP use it. The curl types and constants come from <curl/curl.h>;
 * the functions are called through the table. Options are <curl/curl.h>'s constants given to
 * easy_setopt; one newer than the oldest libcurl supported (Debian 12's 7.88) must be checked
 * for CURLE_UNKNOWN_OPTION by its caller (CURLOPT_AWS_SIGV4, 7.75+, in mlflow/s3.c). Owner:
 * util/. */
#ifndef EXPT_UTIL_CURL_DL_H
#define EXPT_UTIL_CURL_DL_H

#include <curl/curl.h>

#include "err.h"

struct expt_curl {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *h);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	void (*easy_reset)(CURL *h);
	void (*easy_cleanup)(CURL *h);
	const char *(*easy_strerror)(CURLcode code);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_perform)(CURLM *m, int *running);
	CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd *fds, unsigned n, int ms, int *numfds);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
};

/* The table, loading libcurl (and curl_global_init) on the first call; NULL with err filled
 * (EXPT_EBACKEND: which library could not be loaded and why) when it cannot be had. Thread-safe;
 * the table lives as long as the process. */
const struct expt_curl *expt_curl(struct expt_err *err);
/* The table once expt_curl has loaded it (callers that already checked). */
#define EXPT_CURL (expt_curl(NULL))

#endif
