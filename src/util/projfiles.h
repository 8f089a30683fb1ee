/* Which files of a project go somewhere else (a run's snapshot, an image layer): one selection
 * rule for every user of it. docs/spec.md (workdir: snapshot, build.include/exclude). */
#ifndef EXPT_UTIL_PROJFILES_H
#define EXPT_UTIL_PROJFILES_H

#include "err.h"
#include "strv.h"

struct expt_projfiles_opts {
	const struct expt_strv *include; /* NULL/empty: everything; else only paths a glob matches
					    (or that lie under a directory one matches) */
	const struct expt_strv *exclude; /* globs of paths left out (a directory: all under it) */
	int dockerignore; /* honour root/.dockerignore when present (then git is not asked) */
};

/* Lists the files (and symlinks) of root, relative to it, sorted bytewise, into out: in a git
 * work tree the tracked files and the untracked ones git does not ignore (its .gitignore rules),
 * elsewhere every file; .expt/ and .git/ never. With opts->dockerignore and a .dockerignore in
 * root, its patterns (globs, '#' comments, '!' re-includes, a leading '/' ignored) decide
 * instead of git. Then include and exclude apply. 0, or -1 with err filled (root unreadable). */
int expt_projfiles_list(const char *root, const struct expt_projfiles_opts *opts,
			struct expt_strv *out, struct expt_err *err);

/* Does a glob match path, or a directory path lies under ("data" matches data/x/y)? */
int expt_projfiles_match(const char *glob, const char *path);

#endif
