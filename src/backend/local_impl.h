/* Internals of the local backend shared between its files (gpu.c, memlimit.c, local.c) and its
 * unit tests; nothing outside src/backend/ includes this. */
#ifndef EXPT_BACKEND_LOCAL_IMPL_H
#define EXPT_BACKEND_LOCAL_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"
#include "../util/strv.h"

/* GPU ids from a list "0,1" (spaces around ids allowed; "none" or "" = no GPU). Appends to ids.
 * Returns 0, or EXPT_EUSAGE on an empty or malformed id ("0,,1", "0 1"). */
int expt_gpus_parse_list(const char *list, struct expt_strv *ids, struct expt_err *err);
/* Ids ("0", "1") of the "GPU <n>: ..." lines of `nvidia-smi -L` output; MIG lines are skipped. */
void expt_gpus_parse_smi(const char *text, struct expt_strv *ids);

/* How memory limits are enforced on this machine. */
enum expt_mem_method {
	EXPT_MEM_NONE = 0, /* not at all (no usable cgroup and no /proc) */
	EXPT_MEM_CGROUP2,  /* a cgroup v2 per attempt: memory.max, oom_kill from memory.events */
	EXPT_MEM_CGROUP1,  /* a cgroup v1 memory cgroup per attempt: memory.limit_in_bytes */
	EXPT_MEM_WATCHDOG, /* the supervisor sums the RSS of the process group and kills it */
};

struct expt_memlimit {
	enum expt_mem_method method;
	char dir[4096]; /* cgroup directory under which per-attempt cgroups are created */
	char why[512];	/* why no cgroup is used ("" when one is), for warnings and docs */
};

/* Finds the best method. $EXPT_MEMORY_LIMIT_METHOD=watchdog skips the cgroup probes (tests and
 * users whose cgroup setup misbehaves); "cgroup" refuses the watchdog fallback (method NONE). */
void expt_memlimit_probe(struct expt_memlimit *ml);
/* "cgroup v2", "cgroup v1", "rss watchdog", "none". */
const char *expt_mem_method_name(enum expt_mem_method m);

/* Creates the cgroup name under ml->dir with the limit; *dir (malloc'd, caller frees) is its
 * path and *procs_fd (O_CLOEXEC, caller closes) its cgroup.procs for the child to join. */
int expt_memcg_create(const struct expt_memlimit *ml, const char *name, int64_t limit, char **dir,
		      int *procs_fd, struct expt_err *err);
/* After an attempt: how many processes the kernel OOM-killed in it and its peak usage (-1 when
 * the kernel does not say). */
void expt_memcg_result(const struct expt_memlimit *ml, const char *dir, int64_t *oom_kills,
		       int64_t *peak);
/* Removes an attempt's cgroup; -1 while it still has processes (try again later). */
int expt_memcg_remove(const char *dir);

/* What /proc says about a process group. */
struct expt_pgrp_usage {
	int pgid;    /* in: the group */
	int nlive;   /* out: members that are not zombies */
	int64_t rss; /* out: sum of their resident set sizes in bytes */
};

/* One pass over /proc fills every group of g. Returns 0, -1 when /proc cannot be read. */
int expt_proc_scan(struct expt_pgrp_usage *g, size_t n);
/* Sum of the proportional set sizes (shared pages divided among their users) of the group's
 * members, from smaps_rollup; -1 when unavailable. Slower than the RSS sum, used to confirm. */
int64_t expt_pgrp_pss(int pgid);

/* "64Mi", "1.5Gi", "71Mi" (rounded): memory sizes in messages. n >= 32. */
void expt_fmt_mem(int64_t bytes, char *out, size_t n);

/* The local backend's operations (local.c: supervising; local_runs.c: the rest and the table). */
struct expt_backend_conf;
struct expt_contract;
struct expt_job;
struct expt_exec_opts;
struct expt_job_events;
int expt_local_open(void **state, const struct expt_backend_conf *conf, struct expt_err *err);
void expt_local_close(void *state);
int expt_local_submit(void *state, struct expt_job **jobs, size_t n,
		      const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		      void *payload, struct expt_err *err);
int expt_local_watch(void *state, int64_t timeout_ms, struct expt_err *err);
/* 1 when run_id is a job this handle supervises, now told to stop (queued: ended as stopped;
 * running: SIGTERM now, SIGKILL after the grace period); 0 when it is not one of them. */
int expt_local_stop_job(void *state, const char *run_id);
/* inputs/outputs of spec as host paths ("inputs.NAME=/abs/path"): a path relative to the spec's
 * directory made absolute, an input that must exist, an output directory created. Other URLs
 * (nfs://, pvc://, s3://) are refused: this machine does not mount them. */
struct expt_spec;
int expt_local_mounts(const struct expt_spec *spec, struct expt_strv *io, struct expt_err *err);
const struct expt_strv *expt_local_io(void *state);
/* The store path the handle was opened with (NULL: none). */
const char *expt_local_db_path(void *state);
/* Whether any member of the process group lives (zombies do not count). */
int expt_local_group_alive(int pgid);
/* SIGTERM to a process group this process does not supervise, SIGKILL after grace_ms (waits). */
int expt_local_stop_group(int pid, int64_t grace_ms, struct expt_err *err);

/* The local backend's view of a run's log files, its diagnosis and removal: shared with the
 * container backend, whose supervisor writes the same files (local_runs.c). */
struct expt_run_rec;
struct expt_logs_opts;
struct expt_diagnosis;
int expt_local_logs_open(void *state, const struct expt_run_rec *run,
			 const struct expt_logs_opts *o, void **stream, struct expt_err *err);
int expt_local_logs_read(void *stream, int run_ended,
			 void (*fn)(const char *line, size_t len, int64_t offset, void *payload),
			 void *payload, int *ended, struct expt_err *err);
void expt_local_logs_close(void *stream);
int expt_local_diagnose(void *state, const struct expt_run_rec *run, size_t nlines,
			struct expt_diagnosis *out, struct expt_err *err);
int expt_local_remove(void *state, const struct expt_run_rec *run, struct expt_err *err);
/* The libexpt and Python binding beside this expt (build tree or installed): out->library and
 * out->pythonpath, host paths, or left NULL. */
void expt_local_binding_paths(struct expt_contract *out);

#endif
