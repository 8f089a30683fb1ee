/* Memory limits for the local backend: a cgroup per attempt (v2, else v1) where this machine lets
 * expt create one below its own cgroup, else a watchdog fed by /proc (process-group RSS). */
#include "local_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/util.h"

const char *expt_mem_method_name(enum expt_mem_method m)
{
	switch (m) {
	case EXPT_MEM_CGROUP2:
		return "cgroup v2";
	case EXPT_MEM_CGROUP1:
		return "cgroup v1";
	case EXPT_MEM_WATCHDOG:
		return "rss watchdog";
	default:
		return "none";
	}
}

void expt_fmt_mem(int64_t bytes, char *out, size_t n)
{
	const int64_t ki = 1024, mi = ki * 1024, gi = mi * 1024;

	if (bytes >= gi && bytes % gi == 0)
		snprintf(out, n, "%lldGi", (long long)(bytes / gi));
	else if (bytes >= gi)
		snprintf(out, n, "%.1fGi", (double)bytes / (double)gi);
	else if (bytes >= mi && bytes % mi == 0)
		snprintf(out, n, "%lldMi", (long long)(bytes / mi));
	else if (bytes >= mi)
		snprintf(out, n, "%.0fMi", (double)bytes / (double)mi);
	else if (bytes >= ki)
		snprintf(out, n, "%.0fKi", (double)bytes / (double)ki);
	else
		snprintf(out, n, "%lld", (long long)bytes);
}

/* Small file helpers: cgroup files are tiny, and failures here only mean "no cgroup". */
static int read_small(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;

	if (fd < 0)
		return -1;
	while (len + 1 < n) {
		ssize_t r = read(fd, out + len, n - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	out[len] = '\0';
	close(fd);
	return (int)len;
}

static int write_small(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0, e;
	ssize_t w;

	if (fd < 0)
		return -1;
	do
		w = write(fd, s, strlen(s));
	while (w < 0 && errno == EINTR);
	if (w < 0)
		rc = -1;
	e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Parses the decimal number at *p and advances; -1 if there is none. */
static int64_t num(const char **p)
{
	int64_t v = 0;
	int any = 0;

	while (**p >= '0' && **p <= '9') {
		if (v < INT64_MAX / 10)
			v = v * 10 + (**p - '0');
		(*p)++;
		any = 1;
	}
	return any ? v : -1;
}

/* Value of "key N" in a flat-keyed cgroup file (memory.events, memory.oom_control). */
static int64_t keyed(const char *path, const char *key)
{
	char text[2048];
	size_t kl = strlen(key);
	const char *p = text;

	if (read_small(path, text, sizeof(text)) < 0)
		return -1;
	while (*p) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			p += kl + 1;
			return num(&p);
		}
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return -1;
}

/* Is word an item of the list s, items separated by any of seps? */
static int has_item(const char *s, const char *word, const char *seps)
{
	size_t wl = strlen(word);

	while (*s) {
		size_t l = strcspn(s, seps);
		if (l == wl && !strncmp(s, word, wl))
			return 1;
		s += l;
		if (*s)
			s++;
	}
	return 0;
}

/* Splits a mountinfo line (modified in place) and returns the mount root, mount point, file
 * system type and super options; -1 if malformed. */
static int mountinfo_fields(char *line, char **root, char **mnt, char **fstype, char **opts)
{
	char *f[32];
	int nf = 0, dash = -1;
	char *p = line;

	while (*p && nf < 32) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		f[nf] = p;
		while (*p && *p != ' ')
			p++;
		if (*p)
			*p++ = '\0';
		if (dash < 0 && !strcmp(f[nf], "-"))
			dash = nf;
		nf++;
	}
	if (dash < 5 || dash + 3 >= nf)
		return -1;
	*root = f[3];
	*mnt = f[4];
	*fstype = f[dash + 1];
	*opts = f[dash + 3];
	return 0;
}

/* The cgroup directory of this process in the hierarchy whose mountinfo line matches (cgroup2,
 * or cgroup v1 with the memory controller). */
static int own_cgroup_dir(int v2, char *out, size_t n)
{
	struct expt_buf mi = EXPT_BUF_INIT, cg = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	char *mroot = NULL, *mnt = NULL, *path = NULL;
	char *line, *next;
	int rc = -1;

	expt_buf_init(&mi, 4 << 20);
	expt_buf_init(&cg, 1 << 20);
	if (expt_read_file("/proc/self/mountinfo", &mi, &e) ||
	    expt_read_file("/proc/self/cgroup", &cg, &e))
		goto out;
	for (line = mi.buf; line && *line; line = next) {
		char *root, *m, *fs, *opts;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (mountinfo_fields(line, &root, &m, &fs, &opts))
			continue;
		if (v2 ? !strcmp(fs, "cgroup2")
		       : !strcmp(fs, "cgroup") && has_item(opts, "memory", ",")) {
			mroot = root;
			mnt = m;
			break;
		}
	}
	if (!mnt)
		goto out;
	/* /proc/self/cgroup: "0::/path" for v2, "4:memory:/path" (controllers listed) for v1. */
	for (line = cg.buf; line && *line; line = next) {
		char *c1, *c2;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		c1 = strchr(line, ':');
		c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		if (v2 ? !strcmp(line, "0:") : has_item(c1 + 1, "memory", ",")) {
			path = c2 + 1;
			break;
		}
	}
	if (!path)
		goto out;
	/* A mount of a sub-tree (containers) shows the paths below its root. */
	if (strcmp(mroot, "/") && !strncmp(path, mroot, strlen(mroot)))
		path += strlen(mroot);
	if ((size_t)snprintf(out, n, "%s%s", mnt, strcmp(path, "/") ? path : "") >= n)
		goto out;
	rc = 0;
out:
	expt_buf_release(&mi);
	expt_buf_release(&cg);
	return rc;
}

/* Can a child cgroup with the given limit file be made and removed under dir? */
static int try_child(const char *dir, const char *limit_file, char *why, size_t n)
{
	char *probe = expt_xasprintf("%s/expt-probe-%d", dir, (int)getpid());
	char *f = expt_xasprintf("%s/%s", probe, limit_file);
	int rc = -1;

	if (mkdir(probe, 0755) && errno != EEXIST) {
		snprintf(why, n, "cannot create a cgroup under %.120s: %.60s", dir,
			 strerror(errno));
		goto out;
	}
	if (access(f, W_OK))
		snprintf(why, n, "cgroups under %.120s have no writable %s", dir, limit_file);
	else
		rc = 0;
	rmdir(probe);
out:
	free(probe);
	free(f);
	return rc;
}

static int probe_v2(struct expt_memlimit *ml, char *why, size_t n)
{
	char text[1024], *f;
	int ok;

	if (own_cgroup_dir(1, ml->dir, sizeof(ml->dir))) {
		snprintf(why, n, "no cgroup v2 hierarchy");
		return -1;
	}
	f = expt_xasprintf("%s/cgroup.controllers", ml->dir);
	ok = read_small(f, text, sizeof(text)) >= 0 && has_item(text, "memory", " \n");
	free(f);
	if (!ok) {
		snprintf(why, n, "cgroup v2 (%.120s) has no memory controller", ml->dir);
		return -1;
	}
	f = expt_xasprintf("%s/cgroup.subtree_control", ml->dir);
	ok = read_small(f, text, sizeof(text)) >= 0 && has_item(text, "memory", " \n");
	/* Enabling it fails (EBUSY) in a non-root cgroup that holds processes, expt's own among
	 * them; expt does not move itself, so then it falls back. */
	if (!ok && write_small(f, "+memory")) {
		snprintf(why, n,
			 "cannot enable the cgroup v2 memory controller below %.120s: %.60s",
			 ml->dir, strerror(errno));
		free(f);
		return -1;
	}
	free(f);
	return try_child(ml->dir, "memory.max", why, n);
}

static int probe_v1(struct expt_memlimit *ml, char *why, size_t n)
{
	if (own_cgroup_dir(0, ml->dir, sizeof(ml->dir))) {
		snprintf(why, n, "no cgroup v1 memory hierarchy");
		return -1;
	}
	return try_child(ml->dir, "memory.limit_in_bytes", why, n);
}

void expt_memlimit_probe(struct expt_memlimit *ml)
{
	const char *force = getenv("EXPT_MEMORY_LIMIT_METHOD");
	char why2[250] = "", why1[250] = "";

	memset(ml, 0, sizeof(*ml));
	if (force && !strcmp(force, "watchdog")) {
		snprintf(ml->why, sizeof(ml->why), "EXPT_MEMORY_LIMIT_METHOD=watchdog");
	} else {
		if (!probe_v2(ml, why2, sizeof(why2))) {
			ml->method = EXPT_MEM_CGROUP2;
			return;
		}
		if (!probe_v1(ml, why1, sizeof(why1))) {
			ml->method = EXPT_MEM_CGROUP1;
			return;
		}
		ml->dir[0] = '\0';
		snprintf(ml->why, sizeof(ml->why), "%s; %s", why2, why1);
		if (force && !strcmp(force, "cgroup"))
			return;
	}
	if (!access("/proc/self/stat", R_OK))
		ml->method = EXPT_MEM_WATCHDOG;
	else
		snprintf(ml->why + strlen(ml->why), sizeof(ml->why) - strlen(ml->why),
			 "; /proc is not readable");
}

int expt_memcg_create(const struct expt_memlimit *ml, const char *name, int64_t limit, char **dir,
		      int *procs_fd, struct expt_err *err)
{
	char *d = expt_xasprintf("%s/%s", ml->dir, name), *f = NULL;
	char val[32];
	int rc = 0;

	*procs_fd = -1;
	snprintf(val, sizeof(val), "%lld", (long long)limit);
	/* A leftover from a supervisor that died at the wrong moment has the same name only when
	 * its pid was reused; it is empty then, so it can go. */
	if (mkdir(d, 0755) && (errno != EEXIST || rmdir(d) || mkdir(d, 0755))) {
		rc = expt_err_errno(err, EXPT_EBACKEND, "cannot create cgroup %s", d);
		goto out;
	}
	f = expt_xasprintf("%s/%s", d,
			   ml->method == EXPT_MEM_CGROUP2 ? "memory.max" : "memory.limit_in_bytes");
	if (write_small(f, val)) {
		rc = expt_err_errno(err, EXPT_EBACKEND, "cannot write %s", f);
		rmdir(d);
		goto out;
	}
	free(f);
	/* Without these, a machine with swap lets the run page out instead of hitting the limit;
	 * and on v2 an OOM kill takes the whole attempt, not one process of it. Best effort: the
	 * files do not exist everywhere. */
	if (ml->method == EXPT_MEM_CGROUP2) {
		f = expt_xasprintf("%s/memory.swap.max", d);
		write_small(f, "0");
		free(f);
		f = expt_xasprintf("%s/memory.oom.group", d);
		write_small(f, "1");
	} else {
		f = expt_xasprintf("%s/memory.memsw.limit_in_bytes", d);
		write_small(f, val);
	}
	free(f);
	f = expt_xasprintf("%s/cgroup.procs", d);
	*procs_fd = open(f, O_WRONLY | O_CLOEXEC);
	if (*procs_fd < 0) {
		rc = expt_err_errno(err, EXPT_EBACKEND, "cannot open %s", f);
		rmdir(d);
	}
out:
	free(f);
	if (rc)
		free(d);
	else
		*dir = d;
	return rc;
}

void expt_memcg_result(const struct expt_memlimit *ml, const char *dir, int64_t *oom_kills,
		       int64_t *peak)
{
	char *f;
	char text[64];

	if (ml->method == EXPT_MEM_CGROUP2) {
		f = expt_xasprintf("%s/memory.events", dir);
		*oom_kills = keyed(f, "oom_kill");
		free(f);
		f = expt_xasprintf("%s/memory.peak", dir); /* Linux >= 5.19 */
	} else {
		f = expt_xasprintf("%s/memory.oom_control", dir);
		*oom_kills = keyed(f, "oom_kill"); /* Linux >= 4.13 */
		free(f);
		f = expt_xasprintf("%s/memory.max_usage_in_bytes", dir);
	}
	*peak = -1;
	if (read_small(f, text, sizeof(text)) > 0) {
		const char *p = text;
		*peak = num(&p);
	}
	free(f);
}

int expt_memcg_remove(const char *dir)
{
	if (!rmdir(dir) || errno == ENOENT)
		return 0;
	return -1;
}

/* Reads /proc/<pid>/stat: state, process group and RSS pages. */
static int proc_stat(const char *pid, char *state, int *pgrp, int64_t *rss_pages)
{
	char path[300], text[1024];
	const char *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	if (read_small(path, text, sizeof(text)) <= 0)
		return -1;
	/* The command name (field 2) may hold spaces and parentheses: fields restart after the
	 * last ')'. */
	p = strrchr(text, ')');
	if (!p || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	for (field = 4; field <= 24; field++) {
		while (*p && *p != ' ')
			p++;
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (field == 5) {
			int64_t v = num(&p);
			if (v < 0)
				return -1;
			*pgrp = (int)v;
		} else if (field == 24) {
			*rss_pages = num(&p);
			return 0;
		}
	}
	return -1;
}

int expt_proc_scan(struct expt_pgrp_usage *g, size_t n)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	long page = sysconf(_SC_PAGESIZE);

	for (size_t i = 0; i < n; i++) {
		g[i].nlive = 0;
		g[i].rss = 0;
	}
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char state;
		int pgrp;
		int64_t rss = 0;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (proc_stat(de->d_name, &state, &pgrp, &rss))
			continue; /* gone meanwhile */
		if (state == 'Z' || state == 'X')
			continue;
		for (size_t i = 0; i < n; i++) {
			if (g[i].pgid != pgrp)
				continue;
			g[i].nlive++;
			if (rss > 0)
				g[i].rss += rss * page;
		}
	}
	closedir(d);
	return 0;
}

int64_t expt_pgrp_pss(int pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int64_t sum = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char state, path[300], text[4096];
		int pgrp;
		int64_t rss;
		const char *p;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (proc_stat(de->d_name, &state, &pgrp, &rss) || pgrp != pgid || state == 'Z')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/smaps_rollup", de->d_name);
		if (read_small(path, text, sizeof(text)) <= 0)
			continue;
		p = strstr(text, "\nPss:");
		if (!p) {
			sum = -1;
			break;
		}
		p += 5;
		while (*p == ' ')
			p++;
		rss = num(&p);
		if (rss > 0)
			sum += rss * 1024; /* kB */
	}
	closedir(d);
	return sum;
}
