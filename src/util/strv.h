/* A NULL-terminated, growable vector of owned strings (argv, env, lists). */
#ifndef EXPT_UTIL_STRV_H
#define EXPT_UTIL_STRV_H

#include <stddef.h>

struct expt_strv {
	char **v; /* v[n] == NULL once anything was pushed; NULL while empty */
	size_t n;
	size_t cap;
};

#define EXPT_STRV_INIT                                                                             \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* Copies s; these abort when out of memory (CLI). */
void expt_strv_push(struct expt_strv *sv, const char *s);
/* Takes ownership of s (allocated with malloc). */
void expt_strv_push_owned(struct expt_strv *sv, char *s);
void expt_strv_pushf(struct expt_strv *sv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same, non-aborting (library): 0, or -1 when out of memory, sv unchanged (add_owned then
 * frees s; NULL s is taken as a failed allocation and returns -1). */
int expt_strv_add(struct expt_strv *sv, const char *s);
int expt_strv_add_owned(struct expt_strv *sv, char *s);
int expt_strv_addf(struct expt_strv *sv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void expt_strv_copy(struct expt_strv *dst, const struct expt_strv *src);
void expt_strv_release(struct expt_strv *sv);
/* Returns the index of s, or -1. */
long expt_strv_find(const struct expt_strv *sv, const char *s);
/* A NULL-terminated array, valid until the next change; never NULL. */
char *const *expt_strv_argv(struct expt_strv *sv);

#endif
