/* Files, paths and clocks. */
#include "fs.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int expt_mkdirs(const char *path, struct expt_err *err)
{
	char *parent, *slash;
	int rc;

	/* Common case first: the parent exists, one mkdir. */
	if (!mkdir(path, 0755) || errno == EEXIST)
		return 0;
	if (errno != ENOENT)
		return expt_err_errno(err, EXPT_EFAIL, "cannot create directory '%s'", path);
	if (!(parent = expt_strdup(path)))
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	slash = strrchr(parent, '/');
	while (slash && slash > parent && slash[1] == '\0') { /* trailing slashes */
		*slash = '\0';
		slash = strrchr(parent, '/');
	}
	if (!slash || slash == parent) {
		free(parent);
		return expt_err_errno(err, EXPT_EFAIL, "cannot create directory '%s'", path);
	}
	*slash = '\0';
	rc = expt_mkdirs(parent, err);
	free(parent);
	if (rc)
		return rc;
	if (mkdir(path, 0755) && errno != EEXIST)
		return expt_err_errno(err, EXPT_EFAIL, "cannot create directory '%s'", path);
	return 0;
}

int expt_read_file(const char *path, struct expt_buf *b, struct expt_err *err)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return expt_err_errno(err, errno == ENOENT ? EXPT_ENOTFOUND : EXPT_EFAIL,
				      "cannot read '%s'", path);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = expt_err_errno(err, EXPT_EFAIL, "cannot read '%s'", path);
			break;
		}
		if (n == 0)
			break;
		if (expt_buf_add(b, chunk, (size_t)n)) {
			rc = b->oom ? expt_err_set(err, EXPT_ENOMEM, "out of memory reading '%s'",
						   path)
				    : expt_err_set(err, EXPT_EFAIL, "'%s' is larger than %zu bytes",
						   path, b->max);
			break;
		}
	}
	close(fd);
	return rc;
}

int expt_write_file(const char *path, const void *data, size_t len, struct expt_err *err)
{
	char *tmp = expt_asprintf("%s.tmp.%d", path, (int)getpid());
	const char *p = data;
	int fd, rc = 0;

	if (!tmp)
		return expt_err_set(err, EXPT_ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", path);
		goto out;
	}
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", path);
			close(fd);
			unlink(tmp);
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) || rename(tmp, path)) {
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", path);
		unlink(tmp);
	}
out:
	free(tmp);
	return rc;
}

int expt_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;

	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int expt_remove_tree(const char *path, struct expt_err *err)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (lstat(path, &st))
		return errno == ENOENT
			   ? 0
			   : expt_err_errno(err, EXPT_EFAIL, "cannot remove '%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		if (unlink(path) && errno != ENOENT)
			return expt_err_errno(err, EXPT_EFAIL, "cannot remove '%s'", path);
		return 0;
	}
	d = opendir(path);
	if (!d)
		return expt_err_errno(err, EXPT_EFAIL, "cannot remove '%s'", path);
	while (!rc && (e = readdir(d))) {
		char *child;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!(child = expt_asprintf("%s/%s", path, e->d_name))) {
			rc = expt_err_set(err, EXPT_ENOMEM, "out of memory");
			break;
		}
		rc = expt_remove_tree(child, err);
		free(child);
	}
	closedir(d);
	if (!rc && rmdir(path) && errno != ENOENT)
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot remove '%s'", path);
	return rc;
}

static int copy_file(const char *src, const char *dst, mode_t mode, struct expt_err *err)
{
	char chunk[65536];
	int in, out, rc = 0;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return expt_err_errno(err, EXPT_EFAIL, "cannot read '%s'", src);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode & 0777);
	if (out < 0) {
		close(in);
		return expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", dst);
	}
	for (;;) {
		ssize_t n = read(in, chunk, sizeof(chunk)), off = 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = expt_err_errno(err, EXPT_EFAIL, "cannot read '%s'", src);
			break;
		}
		if (!n)
			break;
		while (off < n) {
			ssize_t w = write(out, chunk + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", dst);
				goto done;
			}
			off += w;
		}
	}
done:
	close(in);
	if (close(out) && !rc)
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot write '%s'", dst);
	return rc;
}

int expt_copy_tree(const char *src, const char *dst, struct expt_err *err)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (lstat(src, &st))
		return expt_err_errno(err, EXPT_ENOTFOUND, "cannot read '%s'", src);
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (n < 0)
			return expt_err_errno(err, EXPT_EFAIL, "cannot read link '%s'", src);
		target[n] = '\0';
		if (symlink(target, dst) && errno != EEXIST)
			return expt_err_errno(err, EXPT_EFAIL, "cannot create link '%s'", dst);
		return 0;
	}
	if (!S_ISDIR(st.st_mode))
		return copy_file(src, dst, st.st_mode, err);
	if (mkdir(dst, 0755) && errno != EEXIST)
		return expt_err_errno(err, EXPT_EFAIL, "cannot create directory '%s'", dst);
	d = opendir(src);
	if (!d)
		return expt_err_errno(err, EXPT_EFAIL, "cannot read directory '%s'", src);
	while (!rc && (e = readdir(d))) {
		char *s, *t;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		s = expt_asprintf("%s/%s", src, e->d_name);
		t = expt_asprintf("%s/%s", dst, e->d_name);
		rc = s && t ? expt_copy_tree(s, t, err)
			    : expt_err_set(err, EXPT_ENOMEM, "out of memory");
		free(s);
		free(t);
	}
	closedir(d);
	return rc;
}

int expt_path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int expt_is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *expt_abspath(const char *p)
{
	char cwd[PATH_MAX];

	if (p[0] == '/')
		return expt_strdup(p);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (!strcmp(p, "."))
		return expt_strdup(cwd);
	return expt_asprintf("%s/%s", cwd, p);
}

int64_t expt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t expt_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void expt_fmt_time_iso(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void expt_fmt_time_local(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int expt_proc_stat(int pid, char *state, int64_t *start_time)
{
	char path[64], buf[1024], *p;
	long long start = 0;
	int fd, field;
	ssize_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: skip to the last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return -1;
	if (state)
		*state = p[2];
	for (field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	if (sscanf(p, "%lld", &start) != 1)
		return -1;
	if (start_time)
		*start_time = start;
	return 0;
}

int64_t expt_proc_start_time(int pid)
{
	int64_t start = 0;

	return expt_proc_stat(pid, NULL, &start) ? 0 : start;
}

void expt_hostname(char *out, size_t n)
{
	if (gethostname(out, n))
		out[0] = '\0';
	out[n - 1] = '\0';
}

void expt_tail_lines(const char *path, size_t n, struct expt_strv *out)
{
	struct expt_buf b = EXPT_BUF_INIT;
	char chunk[65536];
	off_t size, from;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	const char *p, *end;
	size_t count = 0;

	if (fd < 0)
		return;
	if (!n) { /* the walk back below would never stop: every line */
		close(fd);
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	from = size > 262144 ? size - 262144 : 0;
	lseek(fd, from, SEEK_SET);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r <= 0)
			break;
		expt_buf_add(&b, chunk, (size_t)r);
	}
	close(fd);
	end = b.buf + b.len;
	if (end > b.buf && end[-1] == '\n')
		end--;
	/* Walk back n newlines. */
	for (p = end; p > b.buf; p--)
		if (p[-1] == '\n' && ++count == n)
			break;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		expt_strv_push_owned(out, expt_xstrndup(p, (size_t)(stop - p)));
		p = nl ? nl + 1 : end;
	}
	expt_buf_release(&b);
}
