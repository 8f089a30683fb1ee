/* The project as a run sees it: a snapshot of its files (workdir: snapshot) and the git state it
 * was taken from. docs/spec.md (workdir). */
#ifndef EXPT_CLI_SNAPSHOT_H
#define EXPT_CLI_SNAPSHOT_H

#include <stdint.h>

#include "cli.h"

/* Copies project's files into dir (created): in a git work tree the tracked files and the
 * untracked ones git does not ignore, elsewhere every file but .expt/ and .git/; paths that
 * match an exclude glob (or lie under a directory that does) are left out. Refuses, with a
 * clear message and EXPT_EUSAGE, once the files pass max_bytes. */
int cli_snapshot_take(const char *project, const struct expt_strv *exclude, int64_t max_bytes,
		      const char *dir, struct expt_err *err);

/* The git state of project: commit, branch ("HEAD" when detached), dirty (tracked files
 * changed), and when dirty the diff against HEAD written to diff_path (diff set). -1 when
 * project is not in a git work tree (or git is missing). Release with cli_git_release. */
struct cli_git {
	char *commit, *branch, *diff;
	int dirty;
};
int cli_git_state(const char *project, struct cli_git *out, const char *diff_path);
void cli_git_release(struct cli_git *g);

#endif
