/* Unit tests of the local backend: real processes, exit causes, limits, GPU slots, stop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/local_impl.h"
#include "util/util.h"

#define MAXA 4 /* attempts recorded per job */

/* What one job saw through the callbacks. */
struct jrec {
	int nstart, nfin;
	int pid[MAXA];
	char gpus[MAXA][32];
	int64_t t_start[MAXA], t_end[MAXA]; /* monotonic ms, from the callbacks */
	struct expt_observed ex[MAXA];
	struct expt_buf out, err; /* lines joined with '\n' */
	size_t nlines[3];
	size_t longest;
	struct run *run;
};

/* What the whole execute call saw. */
struct run {
	int running, max_running;
	volatile sig_atomic_t stop;
	int64_t stop_after_ms; /* set stop from the tick callback this long after t0; 0 = never */
	int64_t t0;
	int ticks;
	int lines_before_start; /* lines of a job that has not started: must stay 0 */
};

struct fixture {
	char dir[64];
	struct expt_job jobs[8];
	struct jrec recs[8];
	struct expt_job *ptrs[8];
	char *paths[8][2]; /* stdout.log, stderr.log of each job */
	size_t n;
	struct run run;
};

static void on_started(struct expt_job *job, const struct expt_attempt_info *ai, void *payload)
{
	struct jrec *r = job->data;
	struct run *run = payload;
	int pid = ai->pid, attempt = ai->attempt;
	const char *gpus = ai->gpus;

	assert_int_equal(attempt, r->nstart + 1);
	if (r->nstart < MAXA) {
		r->pid[r->nstart] = pid;
		snprintf(r->gpus[r->nstart], sizeof(r->gpus[0]), "%s", gpus);
		r->t_start[r->nstart] = expt_mono_ms();
	}
	r->nstart++;
	run->running++;
	if (run->running > run->max_running)
		run->max_running = run->running;
}

static void on_line(struct expt_job *job, int fd, const char *line, size_t len, void *payload)
{
	struct jrec *r = job->data;
	struct expt_buf *b = fd == 1 ? &r->out : &r->err;
	struct run *run = payload;

	assert_true(fd == 1 || fd == 2);
	assert_int_equal(line[len], '\0');
	if (r->nstart == r->nfin && !strstr(line, "[expt]"))
		run->lines_before_start++;
	if (b->len)
		expt_buf_addch(b, '\n');
	expt_buf_add(b, line, len);
	r->nlines[fd]++;
	if (len > r->longest)
		r->longest = len;
}

static void on_finished(struct expt_job *job, const struct expt_observed *ex, void *payload)
{
	struct jrec *r = job->data;
	struct run *run = payload;

	if (r->nfin < MAXA) {
		r->ex[r->nfin] = *ex;
		r->t_end[r->nfin] = expt_mono_ms();
	}
	assert_int_equal(ex->attempt, r->nfin + 1);
	if (r->nstart > r->nfin)
		run->running--;
	r->nfin++;
}

static void on_tick(void *payload)
{
	struct run *run = payload;

	run->ticks++;
	if (run->stop_after_ms && expt_mono_ms() - run->t0 >= run->stop_after_ms)
		run->stop = 1;
}

static const struct expt_job_events events = {NULL,	   on_started, on_line,
					      on_finished, on_tick,    NULL};

static int setup(void **state)
{
	struct fixture *f = expt_xcalloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/expt-test-local-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	unsetenv("EXPT_MEMORY_LIMIT_METHOD");
	unsetenv("EXPT_GPUS");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct expt_err e = EXPT_ERR_INIT;

	for (size_t i = 0; i < f->n; i++) {
		expt_strv_release(&f->jobs[i].argv);
		expt_strv_release(&f->jobs[i].env);
		free((char *)f->jobs[i].log_dir);
		free(f->paths[i][0]);
		free(f->paths[i][1]);
		expt_buf_release(&f->recs[i].out);
		expt_buf_release(&f->recs[i].err);
	}
	expt_remove_tree(f->dir, &e);
	free(f);
	unsetenv("EXPT_MEMORY_LIMIT_METHOD");
	unsetenv("EXPT_GPUS");
	return 0;
}

/* Adds a job running argv (NULL-terminated); logs go to <dir>/<id>/{stdout,stderr}. */
static struct expt_job *add(struct fixture *f, const char *arg0, ...)
{
	struct expt_job *j = &f->jobs[f->n];
	struct jrec *r = &f->recs[f->n];
	const char *a;
	va_list ap;

	assert_true(f->n < 8);
	memset(j, 0, sizeof(*j));
	j->run_id = "job";
	expt_strv_push(&j->argv, arg0);
	va_start(ap, arg0);
	while ((a = va_arg(ap, const char *)))
		expt_strv_push(&j->argv, a);
	va_end(ap);
	j->log_dir = expt_xasprintf("%s/logs/%zu", f->dir, f->n);
	f->paths[f->n][0] = expt_xasprintf("%s/stdout.log", j->log_dir);
	f->paths[f->n][1] = expt_xasprintf("%s/stderr.log", j->log_dir);
	expt_buf_init(&r->out, 0);
	expt_buf_init(&r->err, 0);
	r->run = &f->run;
	j->data = r;
	f->ptrs[f->n] = j;
	f->n++;
	return j;
}

static struct expt_job *add_sh(struct fixture *f, const char *script)
{
	return add(f, "sh", "-c", script, NULL);
}

/* Runs every job; returns the elapsed milliseconds. */
static int64_t execute(struct fixture *f, int parallel, const char *gpu_list, int64_t grace_ms)
{
	struct expt_exec_opts o;
	struct expt_err e = EXPT_ERR_INIT;
	int rc;

	memset(&o, 0, sizeof(o));
	o.parallel = parallel;
	o.gpu_list = gpu_list;
	o.stop_flag = &f->run.stop;
	o.grace_ms = grace_ms;
	f->run.t0 = expt_mono_ms();
	{
		struct expt_backend b;
		assert_int_equal(expt_backend_open(&b, "local", NULL, &e), 0);
		rc = expt_backend_execute(&b, f->ptrs, f->n, &o, &events, &f->run, &e);
		expt_backend_close(&b);
	}
	if (rc)
		fail_msg("execute: %s", e.msg);
	for (size_t i = 0; i < f->n; i++) {
		assert_true(f->recs[i].nfin >= 1);
		assert_int_equal(
		    f->recs[i].ex[(f->recs[i].nfin > MAXA ? MAXA : f->recs[i].nfin) - 1].final, 1);
	}
	assert_int_equal(f->run.running, 0);
	assert_int_equal(f->run.lines_before_start, 0);
	return expt_mono_ms() - f->run.t0;
}

static const struct expt_observed *last(const struct fixture *f, size_t i)
{
	return &f->recs[i].ex[f->recs[i].nfin - 1];
}

static void assert_group_gone(int pgid)
{
	assert_true(pgid > 1);
	assert_int_equal(kill(-pgid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

static char *slurp(const char *path)
{
	struct expt_buf b = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	if (expt_read_file(path, &b, &e))
		fail_msg("%s", e.msg);
	return expt_buf_detach(&b, NULL);
}

/* ---- exit causes ---- */

static void test_exit_code(void **state)
{
	struct fixture *f = *state;

	add_sh(f, "exit 3");
	add(f, "true", NULL);
	execute(f, 2, NULL, 0);
	assert_int_equal(last(f, 0)->exit_code, 3);
	assert_int_equal(last(f, 0)->signal, 0);
	assert_int_equal(last(f, 0)->attempt, 1);
	assert_string_equal(last(f, 0)->message, "exited with code 3");
	assert_false(last(f, 0)->oom || last(f, 0)->timed_out || last(f, 0)->stopped ||
		     last(f, 0)->spawn_failed);
	assert_true(last(f, 0)->end_ms >= last(f, 0)->start_ms);
	assert_int_equal(last(f, 1)->exit_code, 0);
	assert_string_equal(last(f, 1)->message, "exited with code 0");
	assert_group_gone(f->recs[0].pid[0]);
}

static void test_killed_by_signal(void **state)
{
	struct fixture *f = *state;

	add_sh(f, "kill -9 $$");
	execute(f, 1, NULL, 0);
	assert_int_equal(last(f, 0)->exit_code, -1);
	assert_int_equal(last(f, 0)->signal, 9);
	assert_string_equal(last(f, 0)->message, "killed by SIGKILL");
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	int64_t ms;

	add(f, "sleep", "30", NULL)->timeout_ms = 300;
	ms = execute(f, 1, NULL, 0);
	assert_true(ms >= 250 && ms < 2000);
	assert_true(last(f, 0)->timed_out);
	assert_int_equal(last(f, 0)->signal, SIGTERM);
	assert_string_equal(last(f, 0)->message, "timed out after 300ms");
	assert_group_gone(f->recs[0].pid[0]);
}

static void test_timeout_ignoring_term(void **state)
{
	struct fixture *f = *state;
	int64_t ms;

	/* Ignores SIGTERM: killed after the grace period. */
	add_sh(f, "trap '' TERM; sleep 30; sleep 30")->timeout_ms = 200;
	ms = execute(f, 1, NULL, 300);
	assert_true(ms >= 450 && ms < 2500);
	assert_true(last(f, 0)->timed_out);
	assert_int_equal(last(f, 0)->signal, SIGKILL);
	assert_non_null(strstr(last(f, 0)->message, "timed out after 200ms (killed with SIGKILL"));
	assert_group_gone(f->recs[0].pid[0]);
}

static void check_oom(struct fixture *f)
{
	int64_t ms;

	/* Allocates and touches 200 MB, then would sleep: the limit must end it first. */
	add(f, "python3", "-c", "import time\nb = bytearray(200 << 20)\ntime.sleep(20)", NULL)
	    ->memory_bytes = 64 << 20;
	add_sh(f, "exit 0")->memory_bytes = 64 << 20;
	ms = execute(f, 2, NULL, 0);
	assert_true(ms < 8000);
	assert_true(last(f, 0)->oom);
	assert_int_equal(last(f, 0)->signal, SIGKILL);
	assert_non_null(strstr(last(f, 0)->message, "exceeded memory limit 64Mi"));
	assert_false(last(f, 1)->oom);
	assert_int_equal(last(f, 1)->exit_code, 0);
	assert_group_gone(f->recs[0].pid[0]);
}

static void test_memory_limit(void **state)
{
	const char *m = expt_local_memory_method();

	print_message("memory limits on this machine: %s\n", m);
	assert_true(!strcmp(m, "cgroup v2") || !strcmp(m, "cgroup v1") ||
		    !strcmp(m, "rss watchdog") || !strcmp(m, "none"));
	if (!strcmp(m, "none"))
		skip();
	check_oom(*state);
}

static void test_memory_limit_watchdog(void **state)
{
	struct fixture *f = *state;

	setenv("EXPT_MEMORY_LIMIT_METHOD", "watchdog", 1);
	assert_string_equal(expt_local_memory_method(), "rss watchdog");
	check_oom(f);
	/* The watchdog saw the allocation on its way up, past the limit. */
	assert_non_null(strstr(last(f, 0)->message, "(peak "));
}

static void test_command_not_found(void **state)
{
	struct fixture *f = *state;
	char *noexec = expt_xasprintf("%s/noexec.sh", f->dir);
	int fd = open(noexec, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	close(fd);
	add(f, "expt-no-such-command-xyz", "arg", NULL);
	add(f, noexec, NULL);
	add(f, "true", NULL)->cwd = "/nonexistent-expt-dir";
	add(f, "./missing", NULL);
	execute(f, 4, NULL, 0);
	for (size_t i = 0; i < 4; i++) {
		assert_true(last(f, i)->spawn_failed);
		assert_int_equal(f->recs[i].nstart, 0);
		assert_int_equal(f->recs[i].nfin, 1);
	}
	assert_string_equal(last(f, 0)->message, "command not found: expt-no-such-command-xyz");
	assert_non_null(strstr(last(f, 1)->message, "permission denied: "));
	assert_string_equal(last(f, 2)->message,
			    "cannot change directory to /nonexistent-expt-dir: No such file or "
			    "directory");
	assert_string_equal(last(f, 3)->message, "no such file: ./missing");
	free(noexec);
}

/* ---- scheduling ---- */

static void test_parallel(void **state)
{
	struct fixture *f = *state;
	int64_t ms;

	for (int i = 0; i < 4; i++)
		add(f, "sleep", "0.3", NULL);
	ms = execute(f, 2, NULL, 0);
	assert_int_equal(f->run.max_running, 2);
	assert_true(ms >= 550 && ms < 1500);
	/* The third started only once one of the first two had ended. */
	assert_true(f->recs[2].t_start[0] >= (f->recs[0].t_end[0] < f->recs[1].t_end[0]
						  ? f->recs[0].t_end[0]
						  : f->recs[1].t_end[0]));
	for (int i = 0; i < 4; i++)
		assert_int_equal(last(f, (size_t)i)->exit_code, 0);
}

static void test_gpu_slots(void **state)
{
	struct fixture *f = *state;

	add_sh(f, "echo cvd=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER; sleep 0.2")->gpus = 1;
	add_sh(f, "echo cvd=$CUDA_VISIBLE_DEVICES; sleep 0.2")->gpus = 1;
	/* Needs no GPU: starts at once although the job before it waits for one. */
	add_sh(f, "echo cvd=${CUDA_VISIBLE_DEVICES-unset}")->gpus = 0;
	add_sh(f, "true")->gpus = 2;
	execute(f, 3, "0", 0);
	assert_string_equal(f->recs[0].out.buf, "cvd=0 order=PCI_BUS_ID");
	assert_string_equal(f->recs[1].out.buf, "cvd=0");
	assert_string_equal(f->recs[0].gpus[0], "0");
	assert_string_equal(f->recs[1].gpus[0], "0");
	assert_true(f->recs[1].t_start[0] >= f->recs[0].t_end[0]);
	assert_true(f->recs[2].t_start[0] < f->recs[0].t_end[0]);
	assert_string_equal(f->recs[2].gpus[0], "");
	assert_true(!strcmp(f->recs[2].out.buf, "cvd=unset") ||
		    getenv("CUDA_VISIBLE_DEVICES")); /* 0-GPU jobs inherit */
	assert_true(last(f, 3)->spawn_failed);
	assert_int_equal(f->recs[3].nstart, 0);
	assert_string_equal(last(f, 3)->message,
			    "needs 2 GPUs, this machine has 1 (set EXPT_GPUS to override)");
}

static void test_gpu_env_override(void **state)
{
	struct fixture *f = *state;

	/* EXPT_GPUS when the caller gives no list; the job's own CUDA_VISIBLE_DEVICES loses. */
	setenv("EXPT_GPUS", "2,3", 1);
	add_sh(f, "echo $CUDA_VISIBLE_DEVICES")->gpus = 2;
	expt_strv_push(&f->jobs[0].env, "CUDA_VISIBLE_DEVICES=7");
	execute(f, 1, NULL, 0);
	assert_string_equal(f->recs[0].out.buf, "2,3");
	assert_string_equal(f->recs[0].gpus[0], "2,3");
}

static void test_gpu_detect_and_parse(void **state)
{
	struct expt_strv ids = EXPT_STRV_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	(void)state;
	setenv("EXPT_GPUS", "1, 3", 1);
	assert_int_equal(expt_gpus_detect(&ids, &e), 0);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.v[0], "1");
	assert_string_equal(ids.v[1], "3");
	expt_strv_release(&ids);
	setenv("EXPT_GPUS", "none", 1);
	assert_int_equal(expt_gpus_detect(&ids, &e), 0);
	assert_int_equal(ids.n, 0);
	assert_int_equal(expt_gpus_parse_list("0,,1", &ids, &e), EXPT_EUSAGE);
	assert_non_null(strstr(e.msg, "bad GPU list '0,,1'"));
	expt_strv_release(&ids);
	assert_int_equal(expt_gpus_parse_list("0,0", &ids, &e), EXPT_EUSAGE);
	expt_strv_release(&ids);
	expt_gpus_parse_smi("GPU 0: NVIDIA H200 (UUID: GPU-0f1e)\n"
			    "  MIG 1g.18gb     Device  0: (UUID: MIG-aa)\n"
			    "GPU 1: NVIDIA H200 (UUID: GPU-2b3c)\n"
			    "garbage\nGPU x: no\n",
			    &ids);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.v[0], "0");
	assert_string_equal(ids.v[1], "1");
	expt_strv_release(&ids);
}

static void test_retries(void **state)
{
	struct fixture *f = *state;
	char *script = expt_xasprintf("n=$(cat %s/count 2>/dev/null || echo 0); n=$((n+1)); "
				      "echo $n > %s/count; echo attempt $n; [ $n -ge 3 ]",
				      f->dir, f->dir);

	add_sh(f, script)->retries = 2;
	add_sh(f, "exit 1")->retries = 1;
	add(f, "expt-no-such-command-xyz", NULL)->retries = 3;
	execute(f, 1, NULL, 0);
	assert_int_equal(f->recs[0].nstart, 3);
	assert_int_equal(f->recs[0].nfin, 3);
	assert_int_equal(f->recs[0].ex[0].final, 0);
	assert_int_equal(f->recs[0].ex[0].exit_code, 1);
	assert_int_equal(f->recs[0].ex[1].final, 0);
	assert_int_equal(f->recs[0].ex[2].final, 1);
	assert_int_equal(f->recs[0].ex[2].exit_code, 0);
	assert_string_equal(f->recs[0].out.buf, "attempt 1\nattempt 2\nattempt 3");
	assert_int_equal(f->recs[1].nfin, 2);
	assert_int_equal(last(f, 1)->exit_code, 1);
	/* A command that cannot start will not start on a retry either. */
	assert_int_equal(f->recs[2].nfin, 1);
	free(script);
}

static void test_timeout_is_retried(void **state)
{
	struct fixture *f = *state;
	struct expt_job *j = add(f, "sleep", "30", NULL);

	j->timeout_ms = 100;
	j->retries = 1;
	execute(f, 1, NULL, 0);
	assert_int_equal(f->recs[0].nfin, 2);
	assert_true(f->recs[0].ex[0].timed_out && !f->recs[0].ex[0].final);
	assert_true(f->recs[0].ex[1].timed_out && f->recs[0].ex[1].final);
}

/* ---- stop ---- */

static void test_stop_flag(void **state)
{
	struct fixture *f = *state;
	int64_t ms;

	add_sh(f, "sleep 30 & sleep 30")->retries = 3;
	add_sh(f, "trap '' TERM; sleep 30 & sleep 30");
	add(f, "sleep", "30", NULL);
	f->run.stop_after_ms = 300;
	ms = execute(f, 2, NULL, 400);
	assert_true(ms < 3000);
	assert_true(f->run.ticks >= 1);
	for (size_t i = 0; i < 3; i++) {
		assert_true(last(f, i)->stopped);
		assert_int_equal(f->recs[i].nfin, 1); /* no retry after a stop */
	}
	assert_string_equal(last(f, 0)->message, "stopped");
	assert_int_equal(last(f, 0)->signal, SIGTERM);
	assert_string_equal(last(f, 1)->message,
			    "stopped (killed with SIGKILL after the grace period)");
	assert_int_equal(f->recs[2].nstart, 0);
	assert_string_equal(last(f, 2)->message, "stopped before it started");
	assert_group_gone(f->recs[0].pid[0]);
	assert_group_gone(f->recs[1].pid[0]);
}

static void test_stop_flag_before_start(void **state)
{
	struct fixture *f = *state;

	add(f, "true", NULL);
	f->run.stop = 1;
	execute(f, 1, NULL, 0);
	assert_int_equal(f->recs[0].nstart, 0);
	assert_true(last(f, 0)->stopped);
}

static void test_leftover_children_killed(void **state)
{
	struct fixture *f = *state;
	int64_t ms;

	/* The leader exits at once; the background sleep must not outlive the run. */
	add_sh(f, "sleep 30 & echo started");
	ms = execute(f, 1, NULL, 0);
	assert_true(ms < 2000);
	assert_int_equal(last(f, 0)->exit_code, 0);
	assert_string_equal(f->recs[0].out.buf, "started");
	assert_group_gone(f->recs[0].pid[0]);
}

static void test_stop_function(void **state)
{
	struct expt_err e = EXPT_ERR_INIT;
	int64_t t;
	int st;
	pid_t pid;

	(void)state;
	assert_int_equal(expt_local_stop_group(1, 100, &e), EXPT_EUSAGE);
	assert_int_equal(expt_local_stop_group(0, 100, &e), EXPT_EUSAGE);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGTERM, SIG_IGN);
		execlp("sleep", "sleep", "30", (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	poll(NULL, 0, 50);
	t = expt_mono_ms();
	assert_int_equal(expt_local_stop_group(pid, 300, &e), 0);
	t = expt_mono_ms() - t;
	assert_true(t >= 250 && t < 2000);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* Already gone: nothing to do, no error. */
	assert_int_equal(expt_local_stop_group(pid, 300, &e), 0);
}

/* ---- output, environment, process set-up ---- */

static void test_output(void **state)
{
	struct fixture *f = *state;
	char *out, *err;

	add_sh(f, "echo out1; echo err1 >&2; echo out2; printf partial");
	add_sh(f, "head -c 150000 /dev/zero | tr '\\000' a; echo; echo after");
	execute(f, 2, NULL, 0);
	assert_string_equal(f->recs[0].out.buf, "out1\nout2\npartial");
	assert_string_equal(f->recs[0].err.buf, "err1");
	out = slurp(f->paths[0][0]);
	err = slurp(f->paths[0][1]);
	assert_string_equal(out, "out1\nout2\npartial");
	assert_string_equal(err, "err1\n");
	free(out);
	free(err);
	/* 150000 bytes without a newline: 65536 + 65536 + 18928, then "after". */
	assert_int_equal(f->recs[1].nlines[1], 4);
	assert_int_equal(f->recs[1].longest, 65536);
	assert_int_equal(f->recs[1].out.len, 150000 + 3 + 5);
	out = slurp(f->paths[1][0]);
	assert_int_equal(strlen(out), 150000 + 1 + 6);
	free(out);
}

static void test_output_appends(void **state)
{
	struct fixture *f = *state;
	char *out;

	add_sh(f, "echo one")->retries = 0;
	execute(f, 1, NULL, 0);
	f->recs[0].nstart = f->recs[0].nfin = 0;
	execute(f, 1, NULL, 0);
	out = slurp(f->paths[0][0]);
	assert_string_equal(out, "one\none\n");
	free(out);
}

static void test_env_cwd_stdin(void **state)
{
	struct fixture *f = *state;
	struct expt_job *j;
	char *want;

	setenv("EXPT_TEST_INHERITED", "base", 1);
	setenv("EXPT_TEST_OVERRIDDEN", "base", 1);
	j = add_sh(f, "echo $EXPT_TEST_INHERITED $EXPT_TEST_OVERRIDDEN $EXPT_TEST_NEW; pwd; "
		      "readlink /proc/self/fd/0");
	expt_strv_push(&j->env, "EXPT_TEST_OVERRIDDEN=first");
	expt_strv_push(&j->env, "EXPT_TEST_NEW=new");
	expt_strv_push(&j->env, "EXPT_TEST_OVERRIDDEN=job");
	j->cwd = f->dir;
	execute(f, 1, NULL, 0);
	want = expt_xasprintf("base job new\n%s\n/dev/null", f->dir);
	assert_string_equal(f->recs[0].out.buf, want);
	free(want);
	unsetenv("EXPT_TEST_INHERITED");
	unsetenv("EXPT_TEST_OVERRIDDEN");
}

static void test_path_from_job_env(void **state)
{
	struct fixture *f = *state;
	char *bin = expt_xasprintf("%s/bin", f->dir), *tool, *path;
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_job *j;

	assert_int_equal(expt_mkdirs(bin, &e), 0);
	tool = expt_xasprintf("%s/expt-test-tool", bin);
	assert_int_equal(expt_write_file(tool, "echo tool ran\n", 14, &e), 0);
	chmod(tool, 0755);
	/* Found through the job's PATH; no "#!" line: run by /bin/sh as execvp does. */
	j = add(f, "expt-test-tool", NULL);
	path = expt_xasprintf("PATH=%s:/usr/bin:/bin", bin);
	expt_strv_push(&j->env, path);
	execute(f, 1, NULL, 0);
	assert_int_equal(last(f, 0)->exit_code, 0);
	assert_string_equal(f->recs[0].out.buf, "tool ran");
	free(bin);
	free(tool);
	free(path);
}

static void test_child_process_state(void **state)
{
	struct fixture *f = *state;
	struct sigaction ign, old_int;
	sigset_t usr1, old_mask;
	int leak = open("/dev/null", O_RDONLY); /* deliberately not close-on-exec */

	assert_true(leak >= 3);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &old_int);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old_mask);
	/* grep is the exec'd process: its own dispositions, mask and descriptors. */
	add(f, "grep", "-E", "^(SigIgn|SigBlk)", "/proc/self/status", NULL);
	add(f, "ls", "/proc/self/fd", NULL);
	execute(f, 2, NULL, 0);
	sigaction(SIGINT, &old_int, NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	close(leak);
	{
		/* glibc reserves signals 32..SIGRTMIN-1 and refuses sigaction on them, so an
		 * ignored disposition inherited from whoever started the test cannot be reset. */
		unsigned long long blk = 1, ignored = 1, reserved = 0;
		assert_int_equal(
		    sscanf(f->recs[0].out.buf, "SigBlk:\t%llx\nSigIgn:\t%llx", &blk, &ignored), 2);
		for (int sig = 32; sig < SIGRTMIN; sig++)
			reserved |= 1ULL << (sig - 1);
		assert_int_equal(blk, 0);
		assert_int_equal(ignored & ~reserved, 0);
	}
	/* 0, 1, 2 and the directory ls reads: nothing of the supervisor's. */
	assert_string_equal(f->recs[1].out.buf, "0\n1\n2\n3");
}

static void test_sigchld_ignored_by_caller(void **state)
{
	struct fixture *f = *state;
	struct sigaction ign, old;

	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGCHLD, &ign, &old);
	add_sh(f, "exit 3");
	execute(f, 1, NULL, 0);
	sigaction(SIGCHLD, NULL, &ign);
	sigaction(SIGCHLD, &old, NULL);
	assert_int_equal(last(f, 0)->exit_code, 3);
	assert_true(ign.sa_handler == SIG_IGN); /* the caller's setting is back */
}

static void test_started_gets_group_leader(void **state)
{
	struct fixture *f = *state;

	add_sh(f, "cut -d' ' -f5 /proc/$$/stat; echo $$");
	execute(f, 1, NULL, 0);
	{
		char *want = expt_xasprintf("%d\n%d", f->recs[0].pid[0], f->recs[0].pid[0]);
		assert_string_equal(f->recs[0].out.buf, want);
		free(want);
	}
}

static void test_backend_find(void **state)
{
	(void)state;
	assert_ptr_equal(expt_backend_find("local"), &expt_backend_local);
	assert_null(expt_backend_find("nope"));
	assert_null(expt_backend_find(NULL));
}

static void test_fmt_mem(void **state)
{
	char b[32];

	(void)state;
	expt_fmt_mem(64 << 20, b, sizeof(b));
	assert_string_equal(b, "64Mi");
	expt_fmt_mem((71 << 20) + 300000, b, sizeof(b));
	assert_string_equal(b, "71Mi");
	expt_fmt_mem(3LL << 30, b, sizeof(b));
	assert_string_equal(b, "3Gi");
	expt_fmt_mem((3LL << 30) + (1LL << 29), b, sizeof(b));
	assert_string_equal(b, "3.5Gi");
	expt_fmt_mem(1000000000, b, sizeof(b));
	assert_string_equal(b, "954Mi");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_exit_code),
	    T(test_killed_by_signal),
	    T(test_timeout),
	    T(test_timeout_ignoring_term),
	    T(test_memory_limit),
	    T(test_memory_limit_watchdog),
	    T(test_command_not_found),
	    T(test_parallel),
	    T(test_gpu_slots),
	    T(test_gpu_env_override),
	    T(test_gpu_detect_and_parse),
	    T(test_retries),
	    T(test_timeout_is_retried),
	    T(test_stop_flag),
	    T(test_stop_flag_before_start),
	    T(test_leftover_children_killed),
	    T(test_stop_function),
	    T(test_output),
	    T(test_output_appends),
	    T(test_env_cwd_stdin),
	    T(test_path_from_job_env),
	    T(test_child_process_state),
	    T(test_sigchld_ignored_by_caller),
	    T(test_started_gets_group_leader),
	    T(test_backend_find),
	    T(test_fmt_mem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
