/* Project file selection shared by `workdir: snapshot` and `expt build`: git's view of the tree
 * when there is one (or .dockerignore's when asked), then the spec's include/exclude globs. */
#include "projfiles.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include "util.h"

#define GIT_TIMEOUT_MS 60000

int expt_projfiles_match(const char *g, const char *path)
{
	char prefix[4096];

	if (!fnmatch(g, path, 0))
		return 1;
	for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		size_t n = (size_t)(s - path);
		if (n >= sizeof(prefix))
			break;
		memcpy(prefix, path, n);
		prefix[n] = '\0';
		if (!fnmatch(g, prefix, 0))
			return 1;
	}
	return 0;
}

static int any_match(const struct expt_strv *globs, const char *path)
{
	for (size_t i = 0; globs && i < globs->n; i++)
		if (expt_projfiles_match(globs->v[i], path))
			return 1;
	return 0;
}

/* Every file of a directory tree, relative to root, but .expt and .git at its top. */
static void walk(const char *root, const char *rel, struct expt_strv *out)
{
	char *dir = *rel ? expt_xasprintf("%s/%s", root, rel) : expt_xstrdup(root);
	DIR *d = opendir(dir);
	struct dirent *e;

	free(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		char *path, *abs;
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    (!*rel && (!strcmp(e->d_name, ".expt") || !strcmp(e->d_name, ".git"))))
			continue;
		path = *rel ? expt_xasprintf("%s/%s", rel, e->d_name) : expt_xstrdup(e->d_name);
		abs = expt_xasprintf("%s/%s", root, path);
		if (!lstat(abs, &st) && S_ISDIR(st.st_mode))
			walk(root, path, out);
		else
			expt_strv_push(out, path);
		free(abs);
		free(path);
	}
	closedir(d);
}

/* .dockerignore: one pattern a line; the last pattern that matches a path decides. */
static int dockerignored(const struct expt_strv *pats, const char *path)
{
	int ignored = 0;

	for (size_t i = 0; i < pats->n; i++) {
		const char *p = pats->v[i];
		int neg = *p == '!';
		if (neg)
			p++;
		if (expt_projfiles_match(p, path))
			ignored = !neg;
	}
	return ignored;
}

static void read_dockerignore(const char *path, struct expt_strv *pats)
{
	struct expt_buf b;
	struct expt_err e = EXPT_ERR_INIT;
	char *line, *save = NULL;

	expt_buf_init(&b, 4u << 20);
	if (!expt_read_file(path, &b, &e)) {
		for (line = b.buf; line && *line; line = save) {
			char *nl = strchr(line, '\n'), *p = line, *end;
			save = nl ? nl + 1 : NULL;
			if (nl)
				*nl = '\0';
			while (*p == ' ' || *p == '\t')
				p++;
			end = p + strlen(p);
			while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
				*--end = '\0';
			if (!*p || *p == '#')
				continue;
			{
				int neg = *p == '!';
				const char *q = p + neg;
				while (*q == '/')
					q++;
				if (!strncmp(q, "./", 2))
					q += 2;
				if (*q) {
					end = (char *)q + strlen(q);
					while (end > q && end[-1] == '/')
						*--end = '\0';
					expt_strv_pushf(pats, "%s%s", neg ? "!" : "", q);
				}
			}
		}
	}
	expt_buf_release(&b);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int expt_projfiles_list(const char *root, const struct expt_projfiles_opts *opts,
			struct expt_strv *out, struct expt_err *err)
{
	static const char *const ls_args[] = {"ls-files",	    "-z", "--cached", "--others",
					      "--exclude-standard", NULL};
	struct expt_buf list;
	struct expt_strv all = EXPT_STRV_INIT, pats = EXPT_STRV_INIT;
	char *di = expt_xasprintf("%s/.dockerignore", root);
	int use_di = opts && opts->dockerignore && expt_path_exists(di);
	const char *argv[16] = {"git", "-C", root};
	size_t n = 3;

	if (!expt_is_dir(root)) {
		free(di);
		errno = ENOTDIR;
		return expt_err_errno(err, EXPT_ENOTFOUND, "%s", root);
	}
	expt_buf_init(&list, 256u << 20);
	for (size_t i = 0; ls_args[i]; i++)
		argv[n++] = ls_args[i];
	argv[n] = NULL;
	if (use_di) {
		read_dockerignore(di, &pats);
		walk(root, "", &all);
	} else if (!expt_spawn_capture(argv, GIT_TIMEOUT_MS, &list)) {
		for (const char *p = list.buf; p < list.buf + list.len; p += strlen(p) + 1)
			if (*p)
				expt_strv_push(&all, p);
	} else {
		walk(root, "", &all);
	}
	for (size_t i = 0; i < all.n; i++) {
		const char *p = all.v[i];
		char *abs;
		struct stat st;
		/* The store (runs, their snapshots) and git's own files are never project files. */
		if (!strncmp(p, ".expt/", 6) || !strcmp(p, ".expt") || !strncmp(p, ".git/", 5) ||
		    !strcmp(p, ".git"))
			continue;
		if (use_di && dockerignored(&pats, p))
			continue;
		if (opts && opts->include && opts->include->n && !any_match(opts->include, p))
			continue;
		if (opts && any_match(opts->exclude, p))
			continue;
		/* git lists deleted-but-tracked files and submodules (directories): only what is
		 * there as a file or link. */
		abs = expt_xasprintf("%s/%s", root, p);
		if (!lstat(abs, &st) && !S_ISDIR(st.st_mode))
			expt_strv_push(out, p);
		free(abs);
	}
	if (out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	expt_buf_release(&list);
	expt_strv_release(&all);
	expt_strv_release(&pats);
	free(di);
	return 0;
}
