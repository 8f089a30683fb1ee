/* Files, paths and time: small helpers shared by every layer. */
#ifndef EXPT_UTIL_FS_H
#define EXPT_UTIL_FS_H

#include <stdint.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"
#include "strv.h"

/* mkdir -p with mode 0755. */
int expt_mkdirs(const char *path, struct expt_err *err);
/* Reads a whole file into b (respecting b->max). */
int expt_read_file(const char *path, struct expt_buf *b, struct expt_err *err);
/* Writes data to path atomically (temp file + rename). */
int expt_write_file(const char *path, const void *data, size_t len, struct expt_err *err);
/* Writes all n bytes to fd, retrying on EINTR and short writes; 0, or -1 with errno set. */
int expt_write_all(int fd, const void *data, size_t n);
/* rm -rf; missing path is not an error. */
int expt_remove_tree(const char *path, struct expt_err *err);
/* Copies a file or directory tree (regular files, dirs, symlinks). */
int expt_copy_tree(const char *src, const char *dst, struct expt_err *err);
int expt_path_exists(const char *path);
int expt_is_dir(const char *path);
/* Returns a malloc'd absolute path of p (not resolving symlinks); NULL on failure (no cwd, or
 * out of memory: errno is ENOMEM then). */
char *expt_abspath(const char *p);

/* Wall clock in milliseconds since the epoch, and a monotonic clock in ms. */
int64_t expt_now_ms(void);
int64_t expt_mono_ms(void);
/* "2026-11-26T03:31:23.123Z" (UTC); n >= 32. */
void expt_fmt_time_iso(int64_t ms, char *out, size_t n);
/* "2026-11-26 03:31:23" in local time; n >= 24. */
void expt_fmt_time_local(int64_t ms, char *out, size_t n);

/* Start time of a process (field 22 of /proc/<pid>/stat, clock ticks since boot), 0 if there is
 * no such process. With the pid it identifies a process even after pid reuse. */
int64_t expt_proc_start_time(int pid);
/* State letter ('R', 'S', 'Z', ...) and start time of a process; -1 if there is none. */
int expt_proc_stat(int pid, char *state, int64_t *start_time);
/* Short host name ("" if unknown); n >= 64. */
void expt_hostname(char *out, size_t n);

/* The last n lines of a file (reads at most the last 256 KiB). Missing file or n 0: no lines. */
void expt_tail_lines(const char *path, size_t n, struct expt_strv *out);

/* Runs argv (argv[0] searched in PATH; stdin and stderr /dev/null) and appends its stdout to
 * out (an append past out's cap ends the read). Killed past timeout_ms. 0 when it exited 0 and
 * all it printed was read; -1 otherwise (not found, failed, killed). */
int expt_spawn_capture(const char *const *argv, int64_t timeout_ms, struct expt_buf *out);
/* The same, with input (NUL-terminated, a few KiB at most) written to its stdin (NULL: stdin is
 * /dev/null): docker-credential-* helpers read the server URL there. */
int expt_spawn_capture_in(const char *const *argv, const char *input, int64_t timeout_ms,
			  struct expt_buf *out);
/* Runs argv (searched in PATH) with envp (NULL: this process's environment), stdin /dev/null and
 * stdout and stderr on fd (a terminal, a log file), until it ends: its exit status (128 + the
 * signal when killed by one), or -1 when it could not be started. For a builder whose output
 * the user should see as it comes. */
int expt_spawn_to_fd(const char *const *argv, char *const *envp, int fd);

#endif
