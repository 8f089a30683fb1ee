/* The scheduler every backend shares: queue, parallel, GPU slots, retries, timeouts, admission
 * and stop, driving an engine through struct expt_sched_engine. */
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local_impl.h"
#include "util/util.h"

#define POLL_MS 50  /* upper bound on a wait: the stop flag is seen this fast */
#define TICK_MS 200 /* ev->tick period */
#define DEFAULT_GRACE_MS 5000

enum { J_PENDING, J_RUNNING, J_DONE };

struct expt_sched {
	struct expt_job **jobs;
	size_t n;
	const struct expt_exec_opts *opts;
	const struct expt_job_events *ev;
	void *payload;
	const struct expt_sched_engine *engine;
	void *eng;
	int *jstate;   /* J_* per job */
	int *jattempt; /* attempts started per job */
	size_t lo;     /* no pending job below this index */
	size_t ndone;
	struct expt_sched_attempt **run;
	size_t nrun, caprun;
	size_t parallel;
	int64_t grace;
	int stopping, dirty, gpus_checked, failed;
	struct expt_strv gpu_ids;
	char *gpu_busy;
	int64_t next_tick;
};

struct expt_sched *expt_sched_new(struct expt_job **jobs, size_t n,
				  const struct expt_exec_opts *opts,
				  const struct expt_job_events *ev, void *payload,
				  const struct expt_sched_engine *engine, void *eng)
{
	struct expt_sched *s = expt_xcalloc(1, sizeof(*s));

	s->jobs = jobs;
	s->n = n;
	s->opts = opts;
	s->ev = ev;
	s->payload = payload;
	s->engine = engine;
	s->eng = eng;
	s->parallel = opts->parallel > 0 ? (size_t)opts->parallel : 1;
	s->grace = opts->grace_ms > 0 ? opts->grace_ms : DEFAULT_GRACE_MS;
	s->jstate = expt_xcalloc(n ? n : 1, sizeof(int));
	s->jattempt = expt_xcalloc(n ? n : 1, sizeof(int));
	s->dirty = 1;
	s->next_tick = expt_mono_ms() + TICK_MS;
	return s;
}

void expt_sched_free(struct expt_sched *s)
{
	if (!s)
		return;
	free(s->jstate);
	free(s->jattempt);
	free(s->run);
	free(s->gpu_busy);
	expt_strv_release(&s->gpu_ids);
	free(s);
}

struct expt_job *expt_sched_job(struct expt_sched *s, const struct expt_sched_attempt *a)
{
	return s->jobs[a->job];
}

struct expt_sched_attempt *const *expt_sched_running(struct expt_sched *s, size_t *n)
{
	*n = s->nrun;
	return s->run;
}

void expt_sched_state(struct expt_sched *s, struct expt_sched_attempt *a,
		      const struct expt_observed *o)
{
	if (s->ev->state)
		s->ev->state(s->jobs[a->job], o, s->payload);
}

void expt_sched_line(struct expt_sched *s, struct expt_sched_attempt *a, int fd, const char *line,
		     size_t len)
{
	if (s->ev->line)
		s->ev->line(s->jobs[a->job], fd, line, len, s->payload);
}

/* ---- ends ---- */

static void release_attempt(struct expt_sched *s, struct expt_sched_attempt *a)
{
	for (int i = 0; i < a->ngpu; i++)
		s->gpu_busy[a->gpu[i]] = 0;
	if (a->eng)
		s->engine->release(s->eng, a);
	free(a->gpu);
	free(a->gpus);
	free(a);
}

/* Reports the end of an attempt and frees it; o is complete but for final. */
static void conclude(struct expt_sched *s, struct expt_sched_attempt *a, struct expt_observed *o,
		     int failed)
{
	struct expt_job *job = s->jobs[a->job];
	int retry = failed && !o->stopped && !o->spawn_failed && !s->stopping &&
		    a->num <= job->retries && !(s->engine->flags & EXPT_SCHED_REMOTE);
	size_t i = a->job;

	o->phase = EXPT_OBS_EXITED;
	o->final = !retry;
	release_attempt(s, a);
	if (retry) {
		s->jstate[i] = J_PENDING;
		if (i < s->lo)
			s->lo = i;
	} else {
		s->jstate[i] = J_DONE;
		s->ndone++;
	}
	s->dirty = 1;
	if (s->ev->finished)
		s->ev->finished(job, o, s->payload);
}

static void remove_running(struct expt_sched *s, struct expt_sched_attempt *a)
{
	for (size_t i = 0; i < s->nrun; i++) {
		if (s->run[i] == a) {
			memmove(s->run + i, s->run + i + 1, (s->nrun - i - 1) * sizeof(*s->run));
			s->nrun--;
			return;
		}
	}
}

void expt_sched_ended(struct expt_sched *s, struct expt_sched_attempt *a, struct expt_observed *o)
{
	struct expt_job *job = s->jobs[a->job];
	char dur[32];
	const char *killed = a->killed ? " (killed with SIGKILL after the grace period)" : "";
	int failed = o->exit_code != 0 || o->oom || a->timed_out || a->stopped;

	if (!(s->engine->flags & EXPT_SCHED_REMOTE) || o->attempt <= 0)
		o->attempt = a->num;
	o->stopped = a->stopped;
	/* A remote engine times runs out itself and says so. */
	o->timed_out = a->timed_out || ((s->engine->flags & EXPT_SCHED_REMOTE) && o->timed_out);
	/* What expt did to it says more than how it died: stopped, then out of memory (the
	 * engine's account), then timed out. */
	if (o->stopped) {
		snprintf(o->message, sizeof(o->message), "stopped%s", killed);
	} else if (!o->oom && o->timed_out) {
		expt_fmt_duration(job->timeout_ms, dur, sizeof(dur));
		snprintf(o->message, sizeof(o->message), "timed out after %s%s", dur, killed);
	}
	remove_running(s, a);
	conclude(s, a, o, failed);
}

/* A job that ends without running: it cannot (spawn_failed) or it was stopped while queued. */
static void finish_unstarted(struct expt_sched *s, size_t i, int stopped, const char *msg)
{
	struct expt_observed o;

	memset(&o, 0, sizeof(o));
	o.phase = EXPT_OBS_EXITED;
	o.exit_code = -1;
	o.stopped = stopped;
	o.spawn_failed = !stopped;
	o.attempt = s->jattempt[i] + 1;
	o.final = 1;
	o.start_ms = o.end_ms = expt_now_ms();
	snprintf(o.message, sizeof(o.message), "%s", msg);
	s->jstate[i] = J_DONE;
	s->ndone++;
	s->dirty = 1;
	if (s->ev->finished)
		s->ev->finished(s->jobs[i], &o, s->payload);
}

/* ---- starting ---- */

static int take_gpus(struct expt_sched *s, struct expt_sched_attempt *a, int want)
{
	struct expt_buf b = EXPT_BUF_INIT;

	a->gpu = expt_xcalloc((size_t)(want > 0 ? want : 1), sizeof(int));
	for (size_t g = 0; g < s->gpu_ids.n && a->ngpu < want; g++) {
		if (s->gpu_busy[g])
			continue;
		s->gpu_busy[g] = 1;
		a->gpu[a->ngpu++] = (int)g;
		if (b.len)
			expt_buf_addch(&b, ',');
		expt_buf_adds(&b, s->gpu_ids.v[g]);
	}
	a->gpus = expt_buf_detach(&b, NULL);
	return a->ngpu == want ? 0 : -1;
}

static size_t free_gpus(const struct expt_sched *s)
{
	size_t n = 0;

	for (size_t g = 0; g < s->gpu_ids.n; g++)
		n += !s->gpu_busy[g];
	return n;
}

/* Jobs that can never run here finish at once; the rest wait for their GPUs. */
static void check_gpus(struct expt_sched *s)
{
	struct expt_err e = EXPT_ERR_INIT;
	int want = 0, bad;
	char msg[512];

	s->gpus_checked = 1;
	if (s->engine->flags & EXPT_SCHED_REMOTE)
		return; /* the cluster's GPUs, not this machine's */
	for (size_t i = 0; i < s->n; i++)
		if (s->jobs[i]->gpus > want)
			want = s->jobs[i]->gpus;
	if (!want)
		return;
	bad = s->opts->gpu_list ? expt_gpus_parse_list(s->opts->gpu_list, &s->gpu_ids, &e)
				: expt_gpus_detect(&s->gpu_ids, &e);
	s->gpu_busy = expt_xcalloc(s->gpu_ids.n + 1, 1);
	for (size_t i = 0; i < s->n; i++) {
		int g = s->jobs[i]->gpus;
		if (g <= 0)
			continue;
		if (bad) {
			finish_unstarted(s, i, 0, e.msg);
		} else if ((size_t)g > s->gpu_ids.n) {
			snprintf(msg, sizeof(msg),
				 "needs %d GPU%s, this machine has %zu (set EXPT_GPUS to override)",
				 g, g == 1 ? "" : "s", s->gpu_ids.n);
			finish_unstarted(s, i, 0, msg);
		}
	}
}

static void start(struct expt_sched *s, size_t i)
{
	struct expt_job *job = s->jobs[i];
	struct expt_sched_attempt *a = expt_xcalloc(1, sizeof(*a));
	struct expt_observed o;
	char msg[512];

	a->job = i;
	a->num = ++s->jattempt[i];
	a->node = "";
	s->jstate[i] = J_RUNNING;
	take_gpus(s, a, job->gpus > 0 && !(s->engine->flags & EXPT_SCHED_REMOTE) ? job->gpus : 0);
	a->start_ms = expt_now_ms();
	EXPT_ALLOC_GROW(s->run, s->nrun + 1, s->caprun);
	s->run[s->nrun++] = a;
	msg[0] = '\0';
	if (!job->argv.n || !job->argv.v[0][0])
		snprintf(msg, sizeof(msg), "empty command");
	else if (!s->engine->start(s->eng, s, job, a, msg, sizeof(msg)))
		msg[0] = '\0';
	else if (!msg[0])
		snprintf(msg, sizeof(msg), "could not start");
	if (msg[0]) {
		memset(&o, 0, sizeof(o));
		o.exit_code = -1;
		o.spawn_failed = 1;
		o.start_ms = o.end_ms = expt_now_ms();
		snprintf(o.message, sizeof(o.message), "%s", msg);
		remove_running(s, a);
		o.attempt = a->num;
		conclude(s, a, &o, 1);
		return;
	}
	if (job->timeout_ms > 0 && !(s->engine->flags & EXPT_SCHED_REMOTE))
		a->deadline = expt_mono_ms() + job->timeout_ms;
	if (s->ev->started) {
		struct expt_attempt_info ai = {a->ref, a->num, a->gpus, a->node, a->pid};
		s->ev->started(job, &ai, s->payload);
	}
}

/* FIFO, except that a job waiting for GPUs does not hold up later jobs that need none. Later
 * jobs that need GPUs wait behind it, so that a job wanting many GPUs is not starved by a stream
 * of jobs wanting one. */
static void dispatch(struct expt_sched *s)
{
	int gpu_blocked = 0;

	s->dirty = 0;
	while (s->lo < s->n && s->jstate[s->lo] != J_PENDING)
		s->lo++;
	for (size_t i = s->lo; i < s->n && s->nrun < s->parallel && !s->stopping; i++) {
		struct expt_job *job = s->jobs[i];
		if (s->jstate[i] != J_PENDING)
			continue;
		if (job->gpus > 0 && !(s->engine->flags & EXPT_SCHED_REMOTE) &&
		    (gpu_blocked || free_gpus(s) < (size_t)job->gpus)) {
			gpu_blocked = 1;
			continue;
		}
		/* A stop recorded while the job waited: it never starts. */
		if (s->ev->admit && s->ev->admit(job, s->payload)) {
			finish_unstarted(s, i, 1, "stopped before it started");
			continue;
		}
		start(s, i);
	}
}

/* ---- stopping and timers ---- */

static void soft_stop(struct expt_sched *s, struct expt_sched_attempt *a, int64_t now)
{
	if (a->kill_at || a->ending)
		return; /* already on its way out */
	s->engine->signal(s->eng, a, 0);
	a->kill_at = now + s->grace;
}

void expt_sched_stop_all(struct expt_sched *s, int hard)
{
	int64_t now = expt_mono_ms();

	s->stopping = 1;
	if (hard)
		s->grace = 0;
	for (size_t i = 0; i < s->n; i++)
		if (s->jstate[i] == J_PENDING)
			finish_unstarted(s, i, 1, "stopped before it started");
	for (size_t i = 0; i < s->nrun; i++) {
		struct expt_sched_attempt *a = s->run[i];
		if (a->ending)
			continue;
		a->stopped = 1;
		soft_stop(s, a, now);
	}
}

int expt_sched_stop_job(struct expt_sched *s, const char *run_id)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->jobs[i]->run_id, run_id))
			continue;
		if (s->jstate[i] == J_PENDING) {
			finish_unstarted(s, i, 1, "stopped before it started");
		} else if (s->jstate[i] == J_RUNNING) {
			for (size_t k = 0; k < s->nrun; k++) {
				struct expt_sched_attempt *a = s->run[k];
				if (a->job != i || a->ending)
					continue;
				a->stopped = 1;
				soft_stop(s, a, expt_mono_ms());
			}
		}
		return 1;
	}
	return 0;
}

static void check_timers(struct expt_sched *s, struct expt_sched_attempt *a, int64_t now)
{
	if (a->ending)
		return;
	if (a->deadline && now >= a->deadline && !a->timed_out) {
		a->timed_out = 1;
		soft_stop(s, a, now);
	}
	if (a->kill_at && now >= a->kill_at) {
		s->engine->signal(s->eng, a, 1);
		a->kill_at = 0;
		a->killed = 1;
	}
}

/* How long the engine may wait before a timer of ours is due. */
static int64_t wait_ms(struct expt_sched *s, int64_t now, int64_t max_ms)
{
	int64_t t = POLL_MS;

	if (max_ms >= 0 && max_ms < t)
		t = max_ms;
	if (s->ev->tick && s->next_tick - now < t)
		t = s->next_tick - now;
	for (size_t i = 0; i < s->nrun; i++) {
		struct expt_sched_attempt *a = s->run[i];
		if (a->ending)
			continue;
		if (a->deadline && !a->timed_out && a->deadline - now < t)
			t = a->deadline - now;
		if (a->kill_at && a->kill_at - now < t)
			t = a->kill_at - now;
	}
	return t < 0 ? 0 : t;
}

int expt_sched_turn(struct expt_sched *s, int64_t max_ms, struct expt_err *err)
{
	int64_t now = expt_mono_ms();

	if (!s->gpus_checked)
		check_gpus(s);
	if (!s->stopping && s->opts->stop_flag && *s->opts->stop_flag)
		expt_sched_stop_all(s, 0);
	if (s->dirty && !s->stopping)
		dispatch(s);
	if (s->ndone == s->n && !s->nrun)
		return s->failed ? -1 : 1;
	if (s->engine->wait(s->eng, s, wait_ms(s, now, max_ms), err) < 0 && !s->failed) {
		/* Nothing sensible is left but to end every run. */
		s->failed = 1;
		expt_sched_stop_all(s, 1);
	}
	now = expt_mono_ms();
	for (size_t i = 0; i < s->nrun; i++)
		check_timers(s, s->run[i], now);
	if (s->ev->tick && now >= s->next_tick) {
		s->ev->tick(s->payload);
		s->next_tick = expt_mono_ms() + TICK_MS;
	}
	return 0;
}

int expt_sched_all_started(const struct expt_sched *s)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->jstate[i] == J_PENDING)
			return 0;
	return 1;
}

void expt_sched_let_go(struct expt_sched *s)
{
	while (s->nrun) {
		struct expt_sched_attempt *a = s->run[--s->nrun];
		s->jstate[a->job] = J_DONE;
		s->ndone++;
		release_attempt(s, a);
	}
}

int expt_sched_watch(struct expt_sched *s, int64_t timeout_ms, struct expt_err *err)
{
	int64_t end = expt_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	for (;;) {
		int64_t left = end - expt_mono_ms();
		int r = expt_sched_turn(s, left > 0 ? left : 0, err);
		if (r || expt_mono_ms() >= end)
			return r;
	}
}
