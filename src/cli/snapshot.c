/* The project as a run sees it: a snapshot of its files taken when `expt run` starts
 * (workdir: snapshot), and the git state it was taken from (commit, branch, dirty, the diff). */
#include "snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

#define GIT_TIMEOUT_MS 60000

/* Runs git -C dir with args; its stdout (up to cap bytes) into out. 0 when it exited 0. */
static int git(const char *dir, const char *const *args, struct expt_buf *out, size_t cap)
{
	const char *argv[16] = {"git", "-C", dir};
	size_t n = 3;
	struct expt_buf tmp;
	int rc;

	for (size_t i = 0; args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	expt_buf_init(&tmp, cap);
	rc = expt_spawn_capture(argv, GIT_TIMEOUT_MS, &tmp);
	if (!rc && out)
		expt_buf_add(out, tmp.buf, tmp.len);
	expt_buf_release(&tmp);
	return rc;
}

int cli_snapshot_take(const char *project, const struct expt_strv *exclude, int64_t max_bytes,
		      const char *dir, struct expt_err *err)
{
	struct expt_projfiles_opts sel = {NULL, exclude, 0};
	struct expt_strv files = EXPT_STRV_INIT;
	int64_t total = 0;
	int rc;

	/* In a git work tree its tracked files and the untracked ones it does not ignore. */
	rc = expt_projfiles_list(project, &sel, &files, err);
	for (size_t i = 0; i < files.n && !rc; i++) {
		char *src = expt_xasprintf("%s/%s", project, files.v[i]);
		struct stat st;
		if (!lstat(src, &st) && !S_ISDIR(st.st_mode)) {
			total += S_ISREG(st.st_mode) ? st.st_size : 0;
			if (total > max_bytes) {
				char cap[32];
				expt_fmt_bytes(max_bytes, cap, sizeof(cap));
				rc = expt_err_set(
				    err, EXPT_EUSAGE,
				    "workdir: snapshot: the project's files pass %s "
				    "(snapshot.max_size) at %s; leave data out with "
				    "snapshot.exclude (e.g. [data, '*.ckpt']) or raise "
				    "snapshot.max_size",
				    cap, files.v[i]);
			} else {
				char *dst = expt_xasprintf("%s/%s", dir, files.v[i]);
				char *slash = strrchr(dst, '/');
				*slash = '\0';
				rc = expt_mkdirs(dst, err);
				*slash = '/';
				if (!rc)
					rc = expt_copy_tree(src, dst, err);
				free(dst);
			}
		}
		free(src);
	}
	(void)total;
	expt_strv_release(&files);
	return rc;
}

static char *first_line(struct expt_buf *b)
{
	char *nl = memchr(b->buf, '\n', b->len);

	return expt_xstrndup(b->buf, nl ? (size_t)(nl - b->buf) : b->len);
}

int cli_git_state(const char *project, struct cli_git *out, const char *diff_path)
{
	static const char *const head[] = {"rev-parse", "HEAD", NULL};
	static const char *const branch[] = {"rev-parse", "--abbrev-ref", "HEAD", NULL};
	static const char *const status[] = {"status", "--porcelain", "--untracked-files=no", NULL};
	static const char *const diff[] = {"diff", "HEAD", NULL};
	struct expt_buf b = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	memset(out, 0, sizeof(*out));
	if (git(project, head, &b, 4096)) {
		expt_buf_release(&b);
		return -1;
	}
	out->commit = first_line(&b);
	expt_buf_reset(&b);
	if (!git(project, branch, &b, 4096))
		out->branch = first_line(&b);
	expt_buf_reset(&b);
	if (!git(project, status, &b, 1u << 20))
		out->dirty = b.len > 0;
	expt_buf_reset(&b);
	if (out->dirty && diff_path && !git(project, diff, &b, 64u << 20) &&
	    !expt_write_file(diff_path, b.buf, b.len, &e))
		out->diff = expt_xstrdup(diff_path);
	expt_buf_release(&b);
	return 0;
}

void cli_git_release(struct cli_git *g)
{
	free(g->commit);
	free(g->branch);
	free(g->diff);
	memset(g, 0, sizeof(*g));
}
