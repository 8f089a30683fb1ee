/* Launching runs: records first (one transaction), then directories, the run contract, and the
 * supervisor that drives the backend and records what it reports. */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "mlflow_link.h"
#include "store/lifecycle.h"
#include "output.h"
#include "snapshot.h"
#include "track/ingest.h"

/* Set by signal handlers; read by the backend's loop. The only global, and it lives in cli/. */
static volatile sig_atomic_t stop_flag;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct run_state {
	struct expt_run_rec *rec;
	struct expt_job job;
	char *params_json;
	char *code_dir; /* workdir: snapshot: its own copy of the project */
	int started, done;
	int attempt;
	enum expt_run_status status;
	struct expt_ingest *ing; /* its stdout fed into the store (while it runs) */
	int64_t out_pos;	 /* bytes of its stdout so far */
	int stop_sent;		 /* a stop recorded by another process was passed to the backend */
	char *mlflow_run_id;	 /* the MLflow run created for it, NULL when none */
};

struct supervisor {
	struct cli_ctx *ctx;
	const struct expt_spec *spec;
	struct expt_backend be;
	struct expt_backend_conf conf;
	char *snapshot; /* workdir: snapshot: the project's files as `expt run` found them */
	struct cli_git git;
	struct run_state *runs;
	size_t n;
	const char *prefix; /* metrics capture prefix */
	int records;	    /* feed the stdout sink's records too (no store sink wrote them) */
	int progress;	    /* redraw a status line on stderr */
	int prefix_lines;   /* prefix output lines with the run id */
	int quiet;
	int detached; /* stderr is supervisor.log beside the store */
	int status_shown;
	size_t nrunning, nsucceeded, nfailed, nstopped;
	int64_t start_ms, last_flush_ms;
	struct expt_err err; /* first store error while supervising, reported once */
	int store_errors;
	struct cli_mlflow mlflow; /* tracking.uri with the mlflow sink: the server */
	int mlflow_on;
};

/* The MLflow server failed: said once; the runs go on without it. */
static void mlflow_error(struct supervisor *sv, const char *what, struct expt_err *e)
{
	char msg[1400];

	if (sv->mlflow.broken++)
		return;
	expt_err_format(e, msg, sizeof(msg));
	fprintf(stderr,
		"expt: warning: MLflow: %s: %s; the runs go on (their mlflow sink retries)\n", what,
		msg);
}

static void store_error(struct supervisor *sv, struct expt_err *e)
{
	char msg[1400];

	if (sv->store_errors++ == 0) {
		expt_err_format(e, msg, sizeof(msg));
		if (!sv->quiet || sv->detached)
			fprintf(stderr, "expt: warning: could not record to the store: %s\n", msg);
		sv->err = *e;
	}
}

static void clear_status(struct supervisor *sv)
{
	if (sv->progress && sv->status_shown) {
		fputs("\r\033[K", stderr);
		sv->status_shown = 0;
	}
}

static void draw_status(struct supervisor *sv)
{
	char dur[32];
	size_t queued = sv->n - sv->nrunning - sv->nsucceeded - sv->nfailed - sv->nstopped;
	int c = sv->ctx->color_err;

	if (!sv->progress)
		return;
	expt_fmt_duration(expt_mono_ms() - sv->start_ms, dur, sizeof(dur));
	fprintf(stderr,
		"\r\033[K%s[%zu/%zu]%s %srunning %zu%s · queued %zu · %ssucceeded %zu%s · %sfailed "
		"%zu%s",
		CLI_BOLD(c), sv->nsucceeded + sv->nfailed + sv->nstopped, sv->n, CLI_RESET(c),
		cli_status_color("running", c), sv->nrunning, CLI_RESET(c), queued,
		cli_status_color("succeeded", c), sv->nsucceeded, CLI_RESET(c),
		cli_status_color("failed", c), sv->nfailed, CLI_RESET(c));
	if (sv->nstopped)
		fprintf(stderr, " · stopped %zu", sv->nstopped);
	fprintf(stderr, "  %s", dur);
	fflush(stderr);
	sv->status_shown = 1;
}

static void flush_metrics(struct supervisor *sv, struct run_state *rs)
{
	struct expt_err e = EXPT_ERR_INIT;

	if (rs->ing && expt_ingest_flush(rs->ing, &e))
		store_error(sv, &e);
}

/* Metric lines and the stdout sink's records, fed into the store by position in the stream,
 * so that a later reader of the same output (expt logs) never counts a line twice. */
static void capture_metrics(struct supervisor *sv, struct run_state *rs, const char *line,
			    size_t len)
{
	struct expt_err e = EXPT_ERR_INIT;
	int64_t pos = rs->out_pos;

	/* Only the last piece of a line longer than EXPT_LINE_PIECE ends it. */
	rs->out_pos += (int64_t)len + (len == EXPT_LINE_PIECE ? 0 : 1);
	if (!rs->ing)
		rs->ing = expt_ingest_new(sv->ctx->store, rs->rec->run_id, sv->prefix, sv->records);
	if (expt_ingest_line(rs->ing, line, len, pos, rs->out_pos, &e))
		store_error(sv, &e);
}

/* A job may start (or start again) unless the store says it ended meanwhile: `expt stop` from
 * another process stops a queued run by recording it, and this is where that is honoured. */
static int ev_admit(struct expt_job *job, void *payload)
{
	struct supervisor *sv = payload;
	struct run_state *rs = job->data;
	struct expt_err e = EXPT_ERR_INIT;
	enum expt_run_status cur;

	return !expt_lifecycle_status(sv->ctx->store, rs->rec->run_id, &cur, &e) &&
	       expt_run_status_done(cur);
}

static void ev_started(struct expt_job *job, const struct expt_attempt_info *ai, void *payload)
{
	struct supervisor *sv = payload;
	struct run_state *rs = job->data;
	struct expt_transition t = EXPT_TRANSITION_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	int rc;

	t.from = EXPT_RUN_ACTIVE;
	t.to = EXPT_RUN_RUNNING;
	t.attempt = ai->attempt;
	t.pid = ai->pid;
	t.backend_ref = ai->ref;
	t.node = ai->node;
	t.gpus = ai->gpus ? ai->gpus : "";
	t.supervisor_pid = (int)getpid();
	t.supervisor_start = expt_proc_start_time((int)getpid());
	/* Stopped by `expt stop` between admission and start: the attempt is stopped at once and
	 * is the last. */
	rc = expt_lifecycle_move(sv->ctx->store, rs->rec->run_id, &t, NULL, &e);
	if (rc == EXPT_ECONFLICT) {
		sv->be.ops->stop(sv->be.state, rs->rec, 0, &e);
		return;
	}
	if (rc)
		store_error(sv, &e);
	if (!rs->started)
		sv->nrunning++;
	rs->started = 1;
	rs->attempt = ai->attempt;
	if (!sv->progress && !sv->quiet) {
		fprintf(stderr, "expt: %s started (%s%s%s%s)\n", rs->rec->run_id, ai->ref,
			ai->attempt > 1 ? ", retry" : "", ai->gpus && *ai->gpus ? ", GPU " : "",
			ai->gpus && *ai->gpus ? ai->gpus : "");
	}
	draw_status(sv);
}

/* The engine placed the attempt, or says why it cannot yet: ps shows `pending (Reason)` until
 * it runs, then the node. */
static void ev_state(struct expt_job *job, const struct expt_observed *o, void *payload)
{
	struct supervisor *sv = payload;
	struct run_state *rs = job->data;
	struct expt_transition t = EXPT_TRANSITION_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	t.from = EXPT_RUN_ACTIVE;
	t.to = o->phase == EXPT_OBS_RUNNING ? EXPT_RUN_RUNNING : EXPT_RUN_PENDING;
	t.message = t.to == EXPT_RUN_PENDING && o->message[0] ? o->message : NULL;
	t.node = o->node[0] ? o->node : NULL;
	t.event = t.to == EXPT_RUN_RUNNING ? "running" : "waiting";
	t.event_message = t.message ? t.message : (t.node ? t.node : "");
	if (expt_lifecycle_move(sv->ctx->store, rs->rec->run_id, &t, NULL, &e) &&
	    e.code != EXPT_ECONFLICT)
		store_error(sv, &e);
}

static void ev_line(struct expt_job *job, int fd, const char *line, size_t len, void *payload)
{
	struct supervisor *sv = payload;
	struct run_state *rs = job->data;

	if (fd == 1)
		capture_metrics(sv, rs, line, len);
	if (sv->quiet)
		return;
	clear_status(sv);
	{
		FILE *f = fd == 2 ? stderr : stdout;
		int c = fd == 2 ? sv->ctx->color_err : sv->ctx->color_out;
		if (sv->prefix_lines)
			fprintf(f, "%s%s%s | ", cli_run_color(rs->rec->run_id, c), rs->rec->run_id,
				CLI_RESET(c));
		fwrite(line, 1, len, f);
		fputc('\n', f);
		fflush(f);
	}
	draw_status(sv);
}

static void ev_finished(struct expt_job *job, const struct expt_observed *o, void *payload)
{
	struct supervisor *sv = payload;
	struct run_state *rs = job->data;
	struct expt_err e = EXPT_ERR_INIT;
	enum expt_run_status st;
	const char *reason;
	char dur[32];
	int c = sv->ctx->color_err, rc;

	flush_metrics(sv, rs);
	if (!o->final) {
		enum expt_run_status cur;
		char *msg;

		if (!expt_lifecycle_status(sv->ctx->store, rs->rec->run_id, &cur, &e) &&
		    expt_run_status_done(cur))
			return; /* stopped by `expt stop`: the next attempt is refused at admission
				 */
		msg = expt_xasprintf("attempt %d failed: %s; retrying", o->attempt, o->message);
		if (expt_store_add_event(sv->ctx->store, rs->rec->run_id, "retry", msg,
					 expt_now_ms(), &e))
			store_error(sv, &e);
		if (!sv->quiet) {
			clear_status(sv);
			fprintf(stderr, "expt: %s %s\n", rs->rec->run_id, msg);
			draw_status(sv);
		}
		free(msg);
		return;
	}
	/* One move decides: a run that `expt stop` ended keeps that end. */
	expt_lifecycle_outcome(o, &st, &reason);
	rc = expt_lifecycle_end(sv->ctx->store, rs->rec->run_id, o, &st, &e);
	if (rc && rc != EXPT_ECONFLICT)
		store_error(sv, &e);
	if (sv->mlflow_on) {
		enum expt_run_status fin = st;
		struct expt_err me = EXPT_ERR_INIT;
		char *key = cli_mlflow_run_key(rs->rec);
		if (rc == EXPT_ECONFLICT)
			expt_lifecycle_status(sv->ctx->store, rs->rec->run_id, &fin, &me);
		if (!cli_mlflow_client(&sv->mlflow, sv->spec->tracking.uri, &me) ||
		    cli_mlflow_end(&sv->mlflow, rs->mlflow_run_id, rs->rec->experiment, key,
				   expt_run_status_name(fin), o->end_ms ? o->end_ms : expt_now_ms(),
				   &me))
			mlflow_error(sv, "cannot end the run", &me);
		free(key);
	}
	expt_ingest_free(rs->ing); /* flushed above; a 10,000-run sweep must not keep 10,000 */
	rs->ing = NULL;
	if (rs->started)
		sv->nrunning--;
	rs->done = 1;
	rs->status = st;
	if (st == EXPT_RUN_SUCCEEDED)
		sv->nsucceeded++;
	else if (st == EXPT_RUN_FAILED)
		sv->nfailed++;
	else
		sv->nstopped++;
	if (sv->quiet)
		return;
	clear_status(sv);
	expt_fmt_duration(o->end_ms - o->start_ms, dur, sizeof(dur));
	if (st == EXPT_RUN_SUCCEEDED)
		fprintf(stderr, "expt: %s %ssucceeded%s in %s\n", rs->rec->run_id,
			cli_status_color("succeeded", c), CLI_RESET(c), dur);
	else
		fprintf(stderr, "expt: %s %s%s%s: %s\n", rs->rec->run_id,
			cli_status_color(expt_run_status_name(st), c), expt_run_status_name(st),
			CLI_RESET(c), rc == EXPT_ECONFLICT ? "stopped by 'expt stop'" : o->message);
	draw_status(sv);
}

/* `expt stop` in another process records the stop (and signals what it saw running); a run
 * that started meanwhile is stopped here, through the backend. */
static void enforce_stop(struct supervisor *sv, struct run_state *rs)
{
	struct expt_err e = EXPT_ERR_INIT;
	enum expt_run_status cur;

	if (!rs->started || rs->done || rs->stop_sent)
		return;
	if (!expt_lifecycle_status(sv->ctx->store, rs->rec->run_id, &cur, &e) &&
	    cur == EXPT_RUN_STOPPED) {
		rs->stop_sent = 1;
		sv->be.ops->stop(sv->be.state, rs->rec, 5000, &e);
	}
}

static void ev_tick(void *payload)
{
	struct supervisor *sv = payload;
	int64_t now = expt_mono_ms();

	if (now - sv->last_flush_ms >= 1000) {
		for (size_t i = 0; i < sv->n; i++) {
			flush_metrics(sv, &sv->runs[i]);
			enforce_stop(sv, &sv->runs[i]);
		}
		sv->last_flush_ms = now;
	}
	draw_status(sv);
}

static json_t *strv_json(const struct expt_strv *sv)
{
	json_t *a = json_array();

	for (size_t i = 0; i < sv->n; i++)
		json_array_append_new(a, json_string(sv->v[i]));
	return a;
}

static json_t *env_json(const struct expt_strv *env)
{
	json_t *o = json_object();

	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		char *k;
		if (!eq)
			continue;
		k = expt_xstrndup(env->v[i], (size_t)(eq - env->v[i]));
		json_object_set_new(o, k, json_string(eq + 1));
		free(k);
	}
	return o;
}

static int env_has(const struct expt_strv *env, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], key, klen) && env->v[i][klen] == '=')
			return 1;
	return 0;
}

static char *sinks_csv(const struct expt_spec *spec)
{
	struct expt_buf b = EXPT_BUF_INIT;

	for (size_t i = 0; i < spec->tracking.sinks.n; i++) {
		if (i)
			expt_buf_addch(&b, ',');
		expt_buf_adds(&b, spec->tracking.sinks.v[i]);
	}
	if (!b.len) {
		expt_buf_adds(&b, "store");
		if (spec->tracking.tensorboard)
			expt_buf_adds(&b, ",tensorboard");
	}
	return expt_buf_detach(&b, NULL);
}

/* The libexpt and Python binding that match this expt, as the run sees them (the backend's
 * contract): runs get EXPT_LIBRARY, and PYTHONPATH for a build tree's binding, unless the
 * environment already says otherwise. */
static void add_binding_env(const struct expt_contract *k, struct expt_strv *env)
{
	if (k->library && !getenv("EXPT_LIBRARY") && !env_has(env, "EXPT_LIBRARY"))
		expt_strv_pushf(env, "EXPT_LIBRARY=%s", k->library);
	if (k->pythonpath && !env_has(env, "PYTHONPATH")) {
		const char *old = getenv("PYTHONPATH");
		expt_strv_pushf(env, "PYTHONPATH=%s%s%s", k->pythonpath, old && *old ? ":" : "",
				old && *old ? old : "");
	}
}

int cli_run_argv_env(const struct expt_spec *spec, const struct expt_params *params,
		     const char *run_id, const struct expt_contract *k, struct expt_strv *argv,
		     struct expt_strv *env, struct expt_err *err)
{
	char *sinks;
	int rc;

	rc = expt_spec_run_argv_at(spec, params, run_id, k->output_dir, &k->io, argv, err);
	if (rc)
		return rc;
	expt_spec_run_env_at(spec, params, run_id, k->output_dir, k->params_file, &k->io, env);
	if (spec->dir)
		expt_strv_pushf(env, "EXPT_PROJECT_DIR=%s", spec->dir);
	if (k->store)
		expt_strv_pushf(env, "EXPT_STORE=%s", k->store);
	sinks = sinks_csv(spec);
	expt_strv_pushf(env, "EXPT_SINKS=%s", sinks);
	free(sinks);
	expt_strv_pushf(env, "EXPT_ARTIFACT_DIR=%s/artifacts", k->output_dir);
	if (spec->tracking.uri)
		expt_strv_pushf(env, "EXPT_TRACKING_URI=%s", spec->tracking.uri);
	if (spec->tracking.metrics_prefix)
		expt_strv_pushf(env, "EXPT_METRICS_PREFIX=%s", spec->tracking.metrics_prefix);
	add_binding_env(k, env);
	/* The server expt deployed where the run goes, for the script's own mlflow calls. */
	if (!spec->tracking.uri && k->tracking_uri && !env_has(env, "MLFLOW_TRACKING_URI"))
		expt_strv_pushf(env, "MLFLOW_TRACKING_URI=%s", k->tracking_uri);
	/* Live output needs line-buffered Python; the spec's own setting wins. */
	if (!env_has(env, "PYTHONUNBUFFERED"))
		expt_strv_push(env, "PYTHONUNBUFFERED=1");
	return 0;
}

/* The params, argv and env of one run, with the contract's paths as the backend says the run
 * sees them; recorded in the store. */
static int prepare_run(struct supervisor *sv, const struct expt_params *params,
		       struct run_state *rs, struct expt_err *err)
{
	struct cli_ctx *ctx = sv->ctx;
	const struct expt_spec *spec = sv->spec;
	struct expt_run_rec *r = rs->rec;
	struct expt_contract k;
	char *argv_s = NULL, *env_s = NULL, *spec_abs = NULL;
	json_t *j;
	int rc;

	memset(&k, 0, sizeof(k));
	if ((rc = sv->be.ops->contract(sv->be.state, r, &k, err)))
		goto out;
	rs->params_json = expt_params_json(params);
	if ((rc = cli_run_argv_env(spec, params, r->run_id, &k, &rs->job.argv, &rs->job.env, err)))
		goto out;
	if (sv->mlflow_on) {
		/* Before launch, so that the script's mlflow.start_run() attaches to it. */
		struct cli_mlflow_run_info mi = {sv->be.ops->name,
						 r->host,
						 r->variant,
						 spec->path,
						 sv->n > 1 ? (long)(rs - sv->runs) : -1,
						 &sv->git};
		struct expt_err me = EXPT_ERR_INIT;
		if (!sv->mlflow.broken && !cli_mlflow_client(&sv->mlflow, spec->tracking.uri, &me))
			mlflow_error(sv, "cannot reach the server", &me);
		if (cli_mlflow_begin(&sv->mlflow, ctx->store, r, &mi, &rs->job.env,
				     &rs->mlflow_run_id, &me))
			mlflow_error(sv, "cannot create the run", &me);
	}
	j = strv_json(&rs->job.argv);
	argv_s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	j = env_json(&rs->job.env);
	env_s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	/* One transaction for what a run is given (a sweep of 10,000 runs is 10,000 of them). */
	spec_abs = expt_abspath(spec->path);
	if ((rc = expt_store_batch_begin(ctx->store, err)))
		goto out;
	if ((rc = expt_store_set_argv_env(ctx->store, r->run_id, argv_s, env_s, err)) ||
	    (rc = expt_store_set_tag(ctx->store, r->run_id, "expt.spec",
				     spec_abs ? spec_abs : spec->path, err)) ||
	    (sv->git.commit &&
	     ((rc = expt_store_set_tag(ctx->store, r->run_id, "expt.git.commit", sv->git.commit,
				       err)) ||
	      (sv->git.branch && (rc = expt_store_set_tag(ctx->store, r->run_id, "expt.git.branch",
							  sv->git.branch, err))) ||
	      (rc = expt_store_set_tag(ctx->store, r->run_id, "expt.git.dirty",
				       sv->git.dirty ? "true" : "false", err)) ||
	      (sv->git.diff && (rc = expt_store_set_tag(ctx->store, r->run_id, "expt.git.diff",
							sv->git.diff, err)))))) {
		expt_store_batch_rollback(ctx->store);
		goto out;
	}
	if ((rc = expt_store_batch_commit(ctx->store, err)))
		goto out;
	rs->job.run_id = r->run_id;
	rs->job.cwd = spec->dir;
	if (!strcmp(spec->workdir, "output")) {
		rs->job.cwd = r->output_dir;
	} else if (sv->snapshot) {
		/* <run>/code beside <run>/output: its own files, copied as it starts. */
		char *slash = strrchr(r->output_dir, '/');
		rs->code_dir =
		    expt_xasprintf("%.*s/code", (int)(slash - r->output_dir), r->output_dir);
		rs->job.cwd = rs->code_dir;
		rs->job.copy_from = sv->snapshot;
	}
	rs->job.log_dir = r->log_dir;
	rs->job.output_dir = r->output_dir;
	rs->job.params_json = rs->params_json;
	rs->job.gpus = spec->resources.gpu;
	rs->job.memory_bytes = spec->resources.memory_bytes;
	rs->job.timeout_ms = spec->timeout_ms;
	rs->job.retries = spec->retries;
	rs->job.data = rs;
out:
	expt_contract_release(&k);
	free(argv_s);
	free(env_s);
	free(spec_abs);
	return rc;
}

static int supervise(struct supervisor *sv, int detached)
{
	struct expt_job_events ev = {ev_admit, ev_started, ev_line, ev_finished, ev_tick, ev_state};
	struct expt_exec_opts eo;
	struct expt_job **jobs;
	struct sigaction sa;
	size_t njobs = 0;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!detached)
		sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* expt_store_create_runs recorded this process as the supervisor (detach re-records). */
	jobs = expt_xcalloc(sv->n, sizeof(*jobs));
	for (size_t i = 0; i < sv->n; i++)
		if (!sv->runs[i].done)
			jobs[njobs++] = &sv->runs[i].job;
	memset(&eo, 0, sizeof(eo));
	eo.parallel = sv->spec->parallel > 0 ? sv->spec->parallel : 1;
	eo.stop_flag = &stop_flag;
	eo.grace_ms = 5000;
	sv->start_ms = sv->last_flush_ms = expt_mono_ms();
	draw_status(sv);
	rc = expt_backend_execute(&sv->be, jobs, njobs, &eo, &ev, sv, &sv->ctx->err);
	clear_status(sv);
	free(jobs);
	for (size_t i = 0; i < sv->n; i++)
		flush_metrics(sv, &sv->runs[i]);
	return rc;
}

static void print_summary(struct supervisor *sv)
{
	int c = sv->ctx->color_err;
	const char *first_failed = NULL;

	for (size_t i = 0; i < sv->n; i++)
		if (sv->runs[i].status == EXPT_RUN_FAILED && !first_failed)
			first_failed = sv->runs[i].rec->run_id;
	fprintf(stderr, "expt: %zu run%s: %s%zu succeeded%s", sv->n, sv->n == 1 ? "" : "s",
		cli_status_color("succeeded", c), sv->nsucceeded, CLI_RESET(c));
	if (sv->nfailed)
		fprintf(stderr, ", %s%zu failed%s", cli_status_color("failed", c), sv->nfailed,
			CLI_RESET(c));
	if (sv->nstopped)
		fprintf(stderr, ", %s%zu stopped%s", cli_status_color("stopped", c), sv->nstopped,
			CLI_RESET(c));
	fputc('\n', stderr);
	if (first_failed && sv->nfailed > 1)
		fprintf(stderr,
			"expt: see why with 'expt debug %s' (its failures by cause) or 'expt "
			"debug %s'\n",
			sv->spec->name, first_failed);
	else if (first_failed)
		fprintf(stderr, "expt: see why with 'expt debug %s'\n", first_failed);
	if (sv->nsucceeded && sv->n > 1)
		fprintf(stderr, "expt: compare with 'expt compare %s'\n", sv->spec->name);
}

/* Forks a supervisor that outlives this process. Returns in the parent once the child has
 * recorded itself as the supervisor of every run (so `expt ps` never sees an orphan). */
static int detach_and_supervise(struct supervisor *sv)
{
	struct cli_ctx *ctx = sv->ctx;
	int ready[2];
	pid_t pid;
	char c = 0;
	char *log_path;
	struct expt_err e = EXPT_ERR_INIT;

	if (pipe2(ready, O_CLOEXEC))
		return expt_err_errno(&ctx->err, EXPT_EFAIL, "cannot create a pipe");
	{
		/* Beside the database, which is where EXPT_HOME puts everything too. */
		char *dir = expt_xstrdup(ctx->db_path), *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		log_path = expt_xasprintf("%s/supervisor.log", slash ? dir : ".");
		free(dir);
	}
	/* SQLite connections (and an engine's) must not cross fork(): close here, reopen on both
	 * sides. */
	expt_store_close(ctx->store);
	ctx->store = NULL;
	expt_backend_close(&sv->be);
	cli_mlflow_disconnect(&sv->mlflow);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		free(log_path);
		close(ready[0]);
		close(ready[1]);
		return expt_err_errno(&ctx->err, EXPT_EFAIL, "cannot fork the supervisor");
	}
	if (pid == 0) {
		int fd, rc;
		close(ready[0]);
		setsid();
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd < 0) /* never keep the caller's stdout: `$(expt run -d)` would wait for us */
			fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		free(log_path);
		if (expt_store_open(&ctx->store, ctx->db_path, &e) ||
		    expt_backend_open(&sv->be, sv->spec->backend, &sv->conf, &e)) {
			char msg[1400];
			expt_err_format(&e, msg, sizeof(msg));
			fprintf(stderr, "expt supervisor: %s\n", msg);
			_exit(1);
		}
		sv->progress = 0;
		sv->quiet = 1;
		sv->detached = 1;
		for (size_t i = 0; i < sv->n; i++)
			if (!sv->runs[i].done &&
			    expt_store_mark_supervisor(ctx->store, sv->runs[i].rec->run_id,
						       (int)getpid(),
						       expt_proc_start_time((int)getpid()), &e))
				store_error(sv, &e);
		if (write(ready[1], "1", 1) < 0) {
			/* the parent is gone; keep supervising anyway */
		}
		close(ready[1]);
		rc = supervise(sv, 1);
		fprintf(stderr,
			"expt supervisor %d: %zu runs done (%zu succeeded, %zu failed, %zu "
			"stopped)\n",
			(int)getpid(), sv->n, sv->nsucceeded, sv->nfailed, sv->nstopped);
		_exit(rc ? 1 : 0);
	}
	free(log_path);
	close(ready[1]);
	while (read(ready[0], &c, 1) < 0 && errno == EINTR)
		;
	close(ready[0]);
	if (expt_store_open(&ctx->store, ctx->db_path, &ctx->err))
		return ctx->err.code;
	if (c != '1')
		return expt_err_set(&ctx->err, EXPT_EFAIL,
				    "the background supervisor failed to start (see supervisor.log "
				    "beside %s)",
				    ctx->db_path);
	for (size_t i = 0; i < sv->n; i++)
		printf("%s\n", sv->runs[i].rec->run_id);
	fprintf(stderr,
		"expt: %zu run%s started in the background (supervisor pid %d); follow with "
		"'expt logs -f %s'\n",
		sv->n, sv->n == 1 ? "" : "s", (int)pid, sv->spec->name);
	return 0;
}

/* Whether `expt run -d` can leave the runs to an engine that keeps them going without expt
 * (EXPT_BACKEND_DETACHED): when every run starts at once and nothing needs watching later. A
 * run that would wait for a slot (more runs than `parallel`) needs a supervisor, which -d then
 * forks as for local; so does a retry, a timeout or a GPU slot unless the engine enforces them
 * itself (EXPT_BACKEND_ENGINE_LIMITS). */
static int needs_no_supervisor(const struct supervisor *sv)
{
	size_t left = 0;

	if (!(sv->be.ops->caps & EXPT_BACKEND_DETACHED) || !sv->be.ops->detach)
		return 0;
	for (size_t i = 0; i < sv->n; i++)
		left += !sv->runs[i].done;
	if (left > (size_t)(sv->spec->parallel > 0 ? sv->spec->parallel : 1))
		return 0;
	return (sv->be.ops->caps & EXPT_BACKEND_ENGINE_LIMITS) ||
	       (sv->spec->retries == 0 && sv->spec->timeout_ms == 0 &&
		sv->spec->resources.gpu == 0);
}

/* `expt run -d` without a supervisor: starts every run through the engine, then lets go of
 * them; read commands ask the engine how they go on (ps, logs, debug). */
static int launch_detached(struct supervisor *sv)
{
	struct expt_job_events ev = {ev_admit, ev_started, ev_line, ev_finished, NULL, ev_state};
	struct cli_ctx *ctx = sv->ctx;
	struct expt_exec_opts eo;
	struct expt_job **jobs;
	size_t njobs = 0, left = 0;
	int rc, d;

	sv->quiet = 1;
	sv->progress = 0;
	jobs = expt_xcalloc(sv->n ? sv->n : 1, sizeof(*jobs));
	for (size_t i = 0; i < sv->n; i++)
		if (!sv->runs[i].done)
			jobs[njobs++] = &sv->runs[i].job;
	memset(&eo, 0, sizeof(eo));
	eo.parallel = njobs ? (int)njobs : 1;
	eo.stop_flag = &stop_flag;
	eo.grace_ms = 5000;
	rc = sv->be.ops->submit(sv->be.state, jobs, njobs, &eo, &ev, sv, &ctx->err);
	while (!rc && !(d = sv->be.ops->detach(sv->be.state, &ctx->err)))
		if (sv->be.ops->watch(sv->be.state, 200, &ctx->err) < 0)
			rc = ctx->err.code ? ctx->err.code : EXPT_EBACKEND;
	free(jobs);
	if (rc)
		return rc;
	/* Started and still going: the engine's now (supervisor 0: ps asks the engine). */
	for (size_t i = 0; i < sv->n; i++) {
		struct run_state *rs = &sv->runs[i];
		struct expt_err e = EXPT_ERR_INIT;
		if (!rs->started || rs->done)
			continue;
		left++;
		if (expt_store_batch_begin(ctx->store, &e))
			continue;
		if (expt_store_mark_supervisor(ctx->store, rs->rec->run_id, 0, 0, &e) ||
		    expt_store_add_event(ctx->store, rs->rec->run_id, "detached",
					 "expt run -d left it to the engine (no supervisor)",
					 expt_now_ms(), &e) ||
		    expt_store_batch_commit(ctx->store, &e)) {
			expt_store_batch_rollback(ctx->store);
			store_error(sv, &e);
		}
	}
	for (size_t i = 0; i < sv->n; i++)
		printf("%s\n", sv->runs[i].rec->run_id);
	fprintf(stderr,
		"expt: %zu run%s started on the %s engine, which keeps %s going without expt; "
		"follow with 'expt logs -f %s'\n",
		left, left == 1 ? "" : "s", sv->be.ops->name, left == 1 ? "it" : "them",
		sv->spec->name);
	if (sv->nfailed)
		fprintf(stderr, "expt: %zu run%s failed to start: see 'expt ps %s'\n", sv->nfailed,
			sv->nfailed == 1 ? "" : "s", sv->spec->name);
	return 0;
}

/* Before any run exists: the git state of the project (recorded on every run), and with
 * workdir: snapshot its files as they are now, in <store>/launches/<time>-<pid>/. */
static int take_snapshot(struct supervisor *sv)
{
	struct cli_ctx *ctx = sv->ctx;
	const struct expt_spec *spec = sv->spec;
	char *dir = expt_xstrdup(ctx->db_path), *slash = strrchr(dir, '/'), *launch, *diff;
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0;

	if (slash)
		*slash = '\0';
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	launch = expt_xasprintf("%s/launches/%s-%d", slash ? dir : ".", stamp, (int)getpid());
	diff = expt_xasprintf("%s/git.diff", launch);
	if ((rc = expt_mkdirs(launch, &ctx->err)))
		goto out;
	if (cli_git_state(spec->dir, &sv->git, diff))
		memset(&sv->git, 0, sizeof(sv->git)); /* not a git work tree */
	if (!strcmp(spec->workdir, "snapshot")) {
		sv->snapshot = expt_xasprintf("%s/code", launch);
		rc = cli_snapshot_take(spec->dir, &spec->snapshot.exclude, spec->snapshot.max_bytes,
				       sv->snapshot, &ctx->err);
	}
	if (rc || (!sv->git.diff && !sv->snapshot))
		expt_remove_tree(launch, &(struct expt_err){0}); /* nothing kept: no empty dirs */
out:
	free(launch);
	free(diff);
	free(dir);
	return rc;
}

/* The engine's account of slow work before a run starts (an image pull), on one line of the
 * terminal that the next output replaces. */
static void show_progress(const char *text, void *payload)
{
	struct supervisor *sv = payload;

	if (sv->detached)
		return;
	fprintf(stderr, "\r\033[K%s", text);
	if (!*text)
		fflush(stderr);
}

/* The engine checks every run before any is handed to it (the Kubernetes API server's dry run).
 * When it refuses, the runs just recorded go again: nothing is left half-created (their ids
 * are not reused). */
static int validate_runs(struct supervisor *sv)
{
	struct cli_ctx *ctx = sv->ctx;
	struct expt_job **jobs = expt_xcalloc(sv->n ? sv->n : 1, sizeof(*jobs));
	size_t n = 0;
	int rc;

	for (size_t i = 0; i < sv->n; i++)
		if (!sv->runs[i].done)
			jobs[n++] = &sv->runs[i].job;
	rc = n ? sv->be.ops->validate(sv->be.state, jobs, n, &ctx->err) : 0;
	free(jobs);
	if (!rc)
		return 0;
	for (size_t i = 0; i < sv->n; i++) {
		struct expt_err e = EXPT_ERR_INIT;
		expt_store_delete_run(ctx->store, sv->runs[i].rec->run_id, &e);
	}
	return rc;
}

/* files: ships files to runs that do not have this machine's (containers, pods). A local run
 * has them already, at their local paths: an entry that puts a file elsewhere is not done here,
 * and says so rather than pass in silence. */
static void warn_local_files(const struct expt_spec *spec, const struct expt_backend_ops *ops)
{
	if (strcmp(ops->name, "local"))
		return;
	for (size_t i = 0; i < spec->files.n; i++) {
		const struct expt_kv *f = &spec->files.v[i];
		char *want = *f->key == '/' ? expt_xstrdup(f->key)
					    : expt_xasprintf("%s/%s", spec->dir, f->key);
		char *have = *f->value == '/' ? expt_xstrdup(f->value)
					      : expt_xasprintf("%s/%s", spec->dir, f->value);
		char *rw = realpath(want, NULL), *rh = realpath(have, NULL);
		if (!rw || !rh || strcmp(rw, rh))
			fprintf(
			    stderr,
			    "expt: warning: files.%s: the local backend does not copy files (a "
			    "local run reads %s where it is); container and kubernetes runs get "
			    "it at %s\n",
			    f->key, f->value, f->key);
		free(want);
		free(have);
		free(rw);
		free(rh);
	}
}

int cli_launch(struct cli_ctx *ctx, const struct expt_spec *spec, const struct expt_params *params,
	       const char *const *retry_of, size_t n, const struct cli_launch_opts *opts)
{
	struct supervisor sv;
	struct expt_run_new *news = NULL;
	struct expt_run_list list = {0};
	char **pjson = NULL;
	char *sinks = NULL;
	int rc = 0;

	memset(&sv, 0, sizeof(sv));
	sv.ctx = ctx;
	sv.spec = spec;
	sv.conf.spec_json = spec->resolved_json;
	sv.conf.db_path = ctx->db_path;
	sv.conf.spec = spec;
	if (ctx->tty_err && !opts->quiet) {
		sv.conf.progress = show_progress;
		sv.conf.progress_payload = &sv;
	}
	if ((rc = expt_backend_open(&sv.be, spec->backend, &sv.conf, &ctx->err)))
		return rc;
	warn_local_files(spec, sv.be.ops);
	news = expt_xcalloc(n, sizeof(*news));
	pjson = expt_xcalloc(n, sizeof(*pjson));
	for (size_t i = 0; i < n; i++) {
		pjson[i] = expt_params_json(&params[i]);
		news[i].params_json = pjson[i];
		news[i].variant = spec->variant;
		news[i].retry_of = retry_of ? retry_of[i] : NULL;
	}
	if (expt_store_readonly(ctx->store)) {
		rc = expt_err_set(&ctx->err, EXPT_ESTORE,
				  "store %s is read-only (its file system or files are not "
				  "writable): this needs to write to it",
				  ctx->db_path);
		goto out;
	}
	if ((rc = take_snapshot(&sv)))
		goto out;
	rc = expt_store_create_runs(ctx->store, spec->name, sv.be.ops->name, spec->resolved_json,
				    news, n, &list, &ctx->err);
	if (rc)
		goto out;

	sv.n = list.n;
	sv.runs = expt_xcalloc(sv.n, sizeof(*sv.runs));
	sv.mlflow_on = cli_mlflow_wanted(spec);
	sv.prefix = spec->tracking.metrics_prefix ? spec->tracking.metrics_prefix : "expt:";
	/* Records on stdout come from libexpt's stdout sink: when the spec also names the store
	 * sink, the run wrote them to the store itself. */
	sv.records = !(expt_strv_find(&spec->tracking.sinks, "store") >= 0 &&
		       expt_strv_find(&spec->tracking.sinks, "stdout") >= 0);
	for (size_t i = 0; i < sv.n; i++) {
		struct run_state *rs = &sv.runs[i];
		struct expt_err e = EXPT_ERR_INIT;
		rs->rec = &list.v[i];
		if (prepare_run(&sv, &params[i], rs, &e)) {
			struct expt_observed o;
			char msg[1400];
			expt_err_format(&e, msg, sizeof(msg));
			memset(&o, 0, sizeof(o));
			o.phase = EXPT_OBS_EXITED;
			o.exit_code = -1;
			o.spawn_failed = o.final = 1;
			snprintf(o.message, sizeof(o.message), "%.*s", (int)sizeof(o.message) - 1,
				 msg);
			expt_lifecycle_end(ctx->store, rs->rec->run_id, &o, NULL, &e);
			fprintf(stderr, "expt: %s failed before starting: %s\n", rs->rec->run_id,
				msg);
			rs->done = 1;
			rs->status = EXPT_RUN_FAILED;
			sv.nfailed++;
			continue;
		}
	}

	for (size_t i = 0; i < sv.n; i++)
		sv.runs[i].job.index = i;
	if (sv.be.ops->validate && (rc = validate_runs(&sv)))
		goto out;
	sv.quiet = opts->quiet;
	sv.prefix_lines = sv.n > 1;
	sv.progress = !opts->quiet && ctx->tty_err && sv.n > 1;
	if (opts->detach) {
		rc = needs_no_supervisor(&sv) ? launch_detached(&sv) : detach_and_supervise(&sv);
		goto out;
	}
	rc = supervise(&sv, 0);
	if (!rc) {
		print_summary(&sv);
		if (stop_flag || sv.nstopped)
			rc = EXPT_EINTR;
		else if (sv.nfailed)
			rc = EXPT_EFAIL;
		else if (sv.store_errors) {
			/* The runs went well but the store missed some of it: say so in the exit
			 * code, not only in the warning. */
			ctx->err = sv.err;
			rc = EXPT_ESTORE;
		}
	}
out:
	expt_backend_close(&sv.be);
	cli_mlflow_release(&sv.mlflow);
	free(sv.snapshot);
	cli_git_release(&sv.git);
	if (sv.runs)
		for (size_t i = 0; i < sv.n; i++) {
			free(sv.runs[i].params_json);
			free(sv.runs[i].code_dir);
			free(sv.runs[i].mlflow_run_id);
			expt_ingest_free(sv.runs[i].ing);
			expt_strv_release(&sv.runs[i].job.argv);
			expt_strv_release(&sv.runs[i].job.env);
		}
	free(sv.runs);
	for (size_t i = 0; pjson && i < n; i++)
		free(pjson[i]);
	free(pjson);
	free(news);
	free(sinks);
	expt_run_list_release(&list);
	return rc;
}
