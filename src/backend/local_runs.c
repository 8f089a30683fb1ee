/* The local backend's view of runs, supervised here or not: the run contract, what would be
 * run, their state, their output, why they ended, stop and remove; and its operations table.
 * Supervising (submit, watch) is local.c. */
#include "backend.h"
#include "local_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

int expt_local_mounts(const struct expt_spec *spec, struct expt_strv *io, struct expt_err *err)
{
	for (int in = 1; in >= 0; in--) {
		const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;
		const char *sect = in ? "inputs" : "outputs";
		for (size_t i = 0; i < ms->n; i++) {
			const struct expt_mount *m = &ms->v[i];
			char *path;
			int rc = 0;

			if (strstr(m->url, "://"))
				return expt_err_set(err, EXPT_EBACKEND,
						    "%s.%s: the local backend reads and writes "
						    "paths on this machine; "
						    "'%s' needs the container or kubernetes "
						    "backend (or mount it here "
						    "and give its path)",
						    sect, m->name, m->url);
			path = m->url[0] == '/' ? expt_xstrdup(m->url)
						: expt_xasprintf("%s/%s", spec->dir, m->url);
			if (in && !expt_path_exists(path))
				rc = expt_err_set(err, EXPT_EBACKEND, "%s.%s: %s does not exist",
						  sect, m->name, path);
			else if (!in)
				rc = expt_mkdirs(path, err);
			if (!rc)
				expt_strv_pushf(io, "%s.%s=%s", sect, m->name, path);
			free(path);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Where this expt binary lives; NULL if unknown. */
static char *exe_dir(void)
{
	char exe[4096], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return expt_xstrdup(exe);
}

/* The libexpt and Python binding beside this expt: in the build tree (build/libexpt.so,
 * python/expt/) or installed (PREFIX/lib). */
void expt_local_binding_paths(struct expt_contract *out)
{
	char *dir = exe_dir(), *lib, *py;

	if (!dir)
		return;
	lib = expt_xasprintf("%s/libexpt.so", dir);
	if (!expt_path_exists(lib)) {
		free(lib);
		lib = expt_xasprintf("%s/../lib/libexpt.so", dir);
	}
	if (expt_path_exists(lib))
		out->library = lib;
	else
		free(lib);
	py = expt_xasprintf("%s/../python/expt/__init__.py", dir);
	if (expt_path_exists(py))
		out->pythonpath = expt_xasprintf("%s/../python", dir);
	free(py);
	free(dir);
}

static int local_contract(void *state, const struct expt_run_rec *run, struct expt_contract *out,
			  struct expt_err *err)
{
	const char *db = expt_local_db_path(state);
	const struct expt_strv *io = expt_local_io(state);

	(void)err;
	memset(out, 0, sizeof(*out));
	if (run) {
		out->output_dir = expt_xstrdup(run->output_dir);
		out->params_file = expt_xasprintf("%s/params.json", run->log_dir);
	}
	out->store = db ? expt_xstrdup(db) : NULL;
	expt_local_binding_paths(out);
	if (io)
		expt_strv_copy(&out->io, io);
	return 0;
}

static json_t *strv_json(const struct expt_strv *v)
{
	json_t *a = json_array();

	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

static int local_render(void *state, const struct expt_job *job, json_t **out, struct expt_err *err)
{
	json_t *o = json_object(), *env = json_object();

	(void)state;
	(void)err;
	for (size_t i = 0; i < job->env.n; i++) {
		const char *eq = strchr(job->env.v[i], '=');
		char *k;
		if (!eq)
			continue;
		k = expt_xstrndup(job->env.v[i], (size_t)(eq - job->env.v[i]));
		json_object_set_new(env, k, json_string(eq + 1));
		free(k);
	}
	json_object_set_new(o, "run", json_string(job->run_id));
	json_object_set_new(o, "argv", strv_json(&job->argv));
	json_object_set_new(o, "env", env);
	json_object_set_new(o, "cwd", job->cwd ? json_string(job->cwd) : json_null());
	json_object_set_new(o, "gpus", json_integer(job->gpus));
	json_object_set_new(o, "memory_bytes", json_integer(job->memory_bytes));
	json_object_set_new(o, "timeout_ms", json_integer(job->timeout_ms));
	json_object_set_new(o, "retries", json_integer(job->retries));
	*out = o;
	return 0;
}

/* The process group named by a ref "pid:N" (or the pid column of older runs); 0 if none. */
static int ref_pid(const struct expt_run_rec *run)
{
	int64_t v;

	if (run->backend_ref && !strncmp(run->backend_ref, "pid:", 4) &&
	    !expt_parse_i64(run->backend_ref + 4, &v) && v > 1 && v < 1 << 30)
		return (int)v;
	return run->pid > 1 ? run->pid : 0;
}

/* What this machine knows of a local run is its process group: running while the group lives;
 * once it is gone nobody kept its exit status (the supervisor that would have reaped it is
 * gone too), so it is lost. A queued run, or one of another host, cannot be asked. */
static int local_poll(void *state, const struct expt_run_rec *runs, size_t n,
		      struct expt_observed *out, struct expt_err *err)
{
	char host[256] = "";

	(void)state;
	(void)err;
	expt_hostname(host, sizeof(host));
	for (size_t i = 0; i < n; i++) {
		int pid = ref_pid(&runs[i]);
		memset(&out[i], 0, sizeof(out[i]));
		out[i].exit_code = -1;
		out[i].attempt = runs[i].attempt;
		if (runs[i].status != EXPT_RUN_RUNNING ||
		    (runs[i].host && *runs[i].host && strcmp(runs[i].host, host)))
			out[i].phase = EXPT_OBS_UNKNOWN;
		else if (pid && expt_local_group_alive(pid))
			out[i].phase = EXPT_OBS_RUNNING;
		else {
			out[i].phase = EXPT_OBS_GONE;
			snprintf(
			    out[i].message, sizeof(out[i].message),
			    "its process group %d is gone, and the expt process that would have "
			    "recorded how it ended is gone too",
			    pid);
		}
	}
	return 0;
}

/* ---- logs: the files the supervisor writes ---- */

struct stream {
	char *path;
	int fd;
	int64_t offset; /* of the first byte of partial in the file */
	int64_t tail, from;
	struct expt_buf partial;
};

int expt_local_logs_open(void *state, const struct expt_run_rec *run,
			 const struct expt_logs_opts *o, void **out, struct expt_err *err)
{
	static const char *const files[] = {"output.log", "stdout.log", "stderr.log"};
	struct stream *s = expt_xcalloc(1, sizeof(*s));

	(void)state;
	(void)err;
	s->path = expt_xasprintf("%s/%s", run->log_dir ? run->log_dir : "/nonexistent",
				 files[o->which >= 0 && o->which <= 2 ? o->which : 0]);
	s->fd = -1;
	s->tail = o->tail;
	s->from = o->from;
	expt_buf_init(&s->partial, 0);
	*out = s;
	return 0;
}

/* Where the last `tail` lines of fd start. */
static off_t tail_start(int fd, int64_t tail)
{
	char chunk[65536];
	off_t end = lseek(fd, 0, SEEK_END), pos = end;
	int64_t lines = 0;

	if (tail == 0)
		return end; /* nothing old: only what comes next */
	while (pos > 0) {
		off_t from = pos > (off_t)sizeof(chunk) ? pos - (off_t)sizeof(chunk) : 0;
		ssize_t r = pread(fd, chunk, (size_t)(pos - from), from);
		if (r <= 0)
			break;
		for (ssize_t i = r - 1; i >= 0; i--)
			/* The N-th newline before the end (not counting the last byte's) starts
			 * the last N lines. */
			if (chunk[i] == '\n' && from + i != end - 1 && ++lines == tail)
				return from + i + 1;
		pos = from;
	}
	return 0;
}

static void emit(struct stream *s, const char *p, size_t len, expt_line_fn fn, void *payload)
{
	char *line = expt_xstrndup(p, len); /* NUL-terminated for the callback */
	fn(line, len, s->offset, payload);
	free(line);
}

int expt_local_logs_read(void *stream, int run_ended, expt_line_fn fn, void *payload, int *ended,
			 struct expt_err *err)
{
	struct stream *s = stream;
	char chunk[65536];
	int eof = 0;

	(void)err;
	*ended = 0;
	if (s->fd < 0) {
		s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0) {
			*ended = run_ended; /* no output was ever written */
			return 0;
		}
		if (s->tail >= 0)
			s->offset = lseek(s->fd, tail_start(s->fd, s->tail), SEEK_SET);
		else if (s->from > 0)
			s->offset = lseek(s->fd, s->from, SEEK_SET);
	}
	for (;;) {
		ssize_t r = read(s->fd, chunk, sizeof(chunk));
		const char *p, *nl;
		size_t rest;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			eof = 1;
			break;
		}
		expt_buf_add(&s->partial, chunk, (size_t)r);
		p = s->partial.buf;
		while ((nl = memchr(p, '\n', s->partial.len - (size_t)(p - s->partial.buf)))) {
			emit(s, p, (size_t)(nl - p), fn, payload);
			s->offset += nl + 1 - p;
			p = nl + 1;
		}
		/* A line still without a newline is delivered in pieces: a run that prints
		 * gigabytes without one must not grow this buffer. */
		while ((size_t)(s->partial.buf + s->partial.len - p) >= EXPT_LINE_PIECE) {
			emit(s, p, EXPT_LINE_PIECE, fn, payload);
			s->offset += EXPT_LINE_PIECE;
			p += EXPT_LINE_PIECE;
		}
		rest = s->partial.len - (size_t)(p - s->partial.buf);
		memmove(s->partial.buf, p, rest);
		expt_buf_setlen(&s->partial, rest);
		if ((size_t)r < sizeof(chunk))
			break;
	}
	if (run_ended && eof) {
		if (s->partial.len) {
			emit(s, s->partial.buf, s->partial.len, fn, payload);
			s->offset += (int64_t)s->partial.len;
			expt_buf_reset(&s->partial);
		}
		*ended = 1;
	}
	return 0;
}

void expt_local_logs_close(void *stream)
{
	struct stream *s = stream;

	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	expt_buf_release(&s->partial);
	free(s);
}

/* ---- why a run ended ---- */

static void cause_of_failure(const struct expt_run_rec *r, struct expt_diagnosis *d)
{
	char sig[32];
	const char *reason = r->reason ? r->reason : "";
	const char *msg = r->message ? r->message : "";
	size_t cn = sizeof(d->cause), hn = sizeof(d->hint);

	if (!strcmp(reason, "oom")) {
		snprintf(d->cause, cn, "out of memory: %s",
			 *msg ? msg : "exceeded its memory limit");
		snprintf(d->hint, hn,
			 "raise resources.memory (e.g. 'expt run resources.memory=4Gi') or use "
			 "less memory (smaller batch)");
	} else if (!strcmp(reason, "timeout")) {
		snprintf(d->cause, cn, "timeout: %s", *msg ? msg : "ran past its timeout");
		snprintf(d->hint, hn, "raise timeout in the spec (e.g. 'expt run timeout=2h')");
	} else if (!strcmp(reason, "supervisor-lost") || !strcmp(reason, "lost")) {
		snprintf(d->cause, cn, "its supervisor died: %s", msg);
		snprintf(d->hint, hn,
			 "the expt process driving it was killed (or the machine rebooted); rerun "
			 "with 'expt retry %s'",
			 r->run_id);
	} else if (!strcmp(reason, "error")) {
		snprintf(d->cause, cn, "could not start: %s", msg);
		snprintf(d->hint, hn,
			 "check 'command' in the spec and that the program is on PATH");
	} else if (r->signal) {
		snprintf(d->cause, cn, "killed by %s (signal %d)%s%s",
			 expt_signal_name(r->signal, sig, sizeof(sig)), r->signal, *msg ? ": " : "",
			 msg);
		if (r->signal == SIGKILL)
			snprintf(d->hint, hn,
				 "SIGKILL comes from outside the program: the kernel's OOM killer "
				 "(check 'dmesg'), a user, or another tool");
		else if (r->signal == SIGSEGV || r->signal == SIGABRT || r->signal == SIGBUS)
			snprintf(d->hint, hn,
				 "the program crashed; see the last lines of stderr below");
	} else {
		snprintf(d->cause, cn, "exited with code %d", r->exit_code);
		if (r->exit_code == 127)
			snprintf(d->hint, hn, "127 usually means a command was not found");
		else if (r->exit_code == 126)
			snprintf(d->hint, hn, "126 usually means a file is not executable");
		else
			snprintf(d->hint, hn, "see the last lines of stderr below");
	}
}

int expt_local_diagnose(void *state, const struct expt_run_rec *r, size_t nlines,
			struct expt_diagnosis *d, struct expt_err *err)
{
	const char *msg = r->message ? r->message : "";
	int pid = ref_pid(r);

	(void)state;
	(void)err;
	memset(d, 0, sizeof(*d));
	switch (r->status) {
	case EXPT_RUN_QUEUED:
	case EXPT_RUN_PENDING:
		snprintf(d->cause, sizeof(d->cause),
			 "queued: waiting for a free slot (parallel) or GPU");
		break;
	case EXPT_RUN_RUNNING:
		snprintf(d->cause, sizeof(d->cause), "still running (process group %d)", pid);
		snprintf(d->hint, sizeof(d->hint), "follow it with 'expt logs -f %s'", r->run_id);
		break;
	case EXPT_RUN_SUCCEEDED:
		snprintf(d->cause, sizeof(d->cause), "succeeded (exit code 0): nothing failed");
		break;
	case EXPT_RUN_STOPPED:
		snprintf(d->cause, sizeof(d->cause), "stopped on request%s%s", *msg ? ": " : "",
			 msg);
		snprintf(d->hint, sizeof(d->hint), "run it again with 'expt retry %s'", r->run_id);
		break;
	default:
		cause_of_failure(r, d);
		break;
	}
	if (r->log_dir) {
		snprintf(d->stderr_where, sizeof(d->stderr_where), "%s/stderr.log", r->log_dir);
		snprintf(d->stdout_where, sizeof(d->stdout_where), "%s/stdout.log", r->log_dir);
		expt_tail_lines(d->stderr_where, nlines, &d->stderr_tail);
		expt_tail_lines(d->stdout_where, nlines, &d->stdout_tail);
	}
	return 0;
}

static int local_stop(void *state, const struct expt_run_rec *run, int64_t grace_ms,
		      struct expt_err *err)
{
	int pid;

	if (state && expt_local_stop_job(state, run->run_id))
		return 0;
	/* Queued in another expt process: that supervisor sees the stop in the store and never
	 * starts it. Running there: its process group is signalled here, at once. */
	if (run->status != EXPT_RUN_RUNNING || !(pid = ref_pid(run)))
		return 0;
	return expt_local_stop_group(pid, grace_ms, err);
}

int expt_local_remove(void *state, const struct expt_run_rec *run, struct expt_err *err)
{
	char *dir, *slash;
	int rc = 0;

	(void)state;
	if (!run->log_dir)
		return 0;
	/* log_dir is <project>/.expt/runs/<id>/logs: remove <id>/. */
	dir = expt_xstrdup(run->log_dir);
	slash = strrchr(dir, '/');
	if (slash && !strcmp(slash, "/logs")) {
		*slash = '\0';
		rc = expt_remove_tree(dir, err);
	}
	free(dir);
	return rc;
}

const struct expt_backend_ops expt_backend_local = {
    .name = "local",
    .caps = 0,
    .open = expt_local_open,
    .close = expt_local_close,
    .contract = local_contract,
    .render = local_render,
    .submit = expt_local_submit,
    .watch = expt_local_watch,
    .poll = local_poll,
    .logs_open = expt_local_logs_open,
    .logs_read = expt_local_logs_read,
    .logs_close = expt_local_logs_close,
    .diagnose = expt_local_diagnose,
    .stop = local_stop,
    .remove = expt_local_remove,
};
