/* The container backend: each attempt a container created and started through the Docker Engine
 * API (Docker, or Podman's compatible service), its output followed through the multiplexed
 * log stream into the same per-run files as local, its end read from inspect. What to start when
 * is the scheduler's (sched.c); the log files, once written, are read as local reads them. */
#include "backend.h"
#include "docker_api.h"
#include "local_impl.h"
#include "sched.h"

#include "util/curl_dl.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/util.h"

#define LINE_CHUNK EXPT_LINE_PIECE
#define INSPECT_MS 500	       /* how often a running container is inspected */
#define DRAIN_MS 3000	       /* how long an exited container's log stream may take to end */
#define PULL_TIMEOUT_MS 600000 /* an image pull */
#define OUTPUT_MOUNT "/expt/output"
#define PARAMS_MOUNT "/expt/params.json"
#define LIB_MOUNT "/expt/lib/libexpt.so"
#define PY_MOUNT "/expt/python"
#define REF_PREFIX "container:"

enum { PULL_MISSING, PULL_ALWAYS, PULL_NEVER };
enum { CONFLICT_FAIL, CONFLICT_REPLACE, CONFLICT_NEW_ID };

/* What the spec says about containers, copied at open. */
struct conf {
	char *image;
	char *project;	   /* the spec's directory: mounted at the same path, the working dir */
	int64_t nano_cpus; /* 0 = no limit */
	char *network;	   /* NULL = the engine's default */
	int keep;	   /* keep finished containers */
	int keep_failed, keep_succeeded; /* cleanup: {failed: keep} / {succeeded: keep} */
	int on_conflict;		 /* CONFLICT_* */
	int pull;			 /* PULL_* */
	struct expt_strv ulimits;	 /* "name=soft:hard" */
	struct expt_strv binds;		 /* "/host:/ctr[:ro]" for inputs and outputs */
	struct expt_strv io;		 /* "inputs.NAME=/mount" as the run sees them */
	char *experiment;
	char *engine;	/* container.engine: NULL auto, "docker", "podman" */
	int code_image; /* container.code: image (the project is not mounted) */
	char *user;	/* container.user, NULL = the invoking uid:gid */
	/* libexpt and the Python binding of this expt, mounted read-only for the run: */
	char *lib;		   /* the host's libexpt.so (resolved), or NULL */
	char *py;		   /* the host's python/ directory of the binding, or NULL */
	struct expt_strv lib_deps; /* libraries libexpt needs beyond libc, host paths */
};

struct stream {
	int file; /* stdout.log or stderr.log, -1 if none */
	int file_errno;
	char *buf; /* partial line (LINE_CHUNK + 1) */
	size_t len;
};

/* The engine's part of an attempt (expt_sched_attempt.eng). */
struct att {
	struct ctr *c;
	struct expt_sched_attempt *a;
	char id[80];		   /* the container's id ("" before create) */
	CURL *logs;		   /* the follow=1 log stream, NULL when none */
	int logs_done;		   /* it ended */
	unsigned char hdr[8];	   /* a frame header being read */
	size_t hdr_len, remaining; /* of the header; of the current frame's payload */
	int which;		   /* the current frame's stream: 1 stdout, 2 stderr */
	struct stream out, err;
	int comb; /* output.log */
	int64_t next_inspect, exited_at;
	int64_t start_mono, start_wall; /* when the container was started */
	int succeeded;			/* it ended with exit code 0 (cleanup) */
	char *log_dir;			/* the job's (container-N.json), or NULL */
};

struct ctr {
	struct conf conf;
	int have_conf;
	char *db_path;
	struct expt_docker *d; /* connected on first use */
	CURLM *multi;
	struct expt_sched *sched, *cur;
	char node[64];
	int pulled;					   /* the image was pulled by this handle */
	void (*progress)(const char *text, void *payload); /* conf's */
	void *progress_payload;
	int letting_go; /* detach: released attempts keep running */
};

/* What becomes of an ended container: the spec's container.keep and cleanup, read from the
 * resolved spec (as JSON, so that a read command, which has only the run's record, decides as
 * the supervisor did). cleanup.failed / cleanup.succeeded "keep" keeps those; any duration
 * removes them once their end is recorded (nothing is left to remove them later). */
static void policy_from_json(struct conf *cf, const char *spec_json)
{
	json_t *j = spec_json ? json_loads(spec_json, 0, NULL) : NULL;
	json_t *cl = json_object_get(j, "cleanup");
	const char *f = json_string_value(json_object_get(cl, "failed"));
	const char *su = json_string_value(json_object_get(cl, "succeeded"));
	const char *oc = json_string_value(json_object_get(j, "on_conflict"));

	const char *eng =
	    json_string_value(json_object_get(json_object_get(j, "container"), "engine"));

	cf->keep = json_is_true(json_object_get(json_object_get(j, "container"), "keep"));
	free(cf->engine);
	cf->engine = eng && strcmp(eng, "auto") ? expt_xstrdup(eng) : NULL;
	cf->keep_failed = f && !strcmp(f, "keep");
	cf->keep_succeeded = su && !strcmp(su, "keep");
	cf->on_conflict = !oc || !strcmp(oc, "fail") ? CONFLICT_FAIL
			  : !strcmp(oc, "replace")   ? CONFLICT_REPLACE
						     : CONFLICT_NEW_ID;
	json_decref(j);
}

static int keeps(const struct conf *cf, int succeeded)
{
	return cf->keep || (succeeded ? cf->keep_succeeded : cf->keep_failed);
}

/* <log_dir>/container-<attempt>.json: the container of an attempt, where its output begins in
 * the run's log files (so that a later expt can complete them from the engine's log once the
 * supervisor is gone), and, once it ended, the engine's last word on it (State): the evidence
 * `expt debug` shows after the container is removed. */
static char *att_path(const char *log_dir, int num)
{
	return expt_xasprintf("%s/container-%d.json", log_dir, num);
}

static json_t *att_load(const char *log_dir, int num)
{
	struct expt_buf b = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	char *p = log_dir ? att_path(log_dir, num) : NULL;
	json_t *j = NULL;

	if (p && !expt_read_file(p, &b, &e))
		j = json_loadb(b.buf, b.len, 0, NULL);
	free(p);
	expt_buf_release(&b);
	return j;
}

static void att_save(const char *log_dir, int num, json_t *j)
{
	struct expt_err e = EXPT_ERR_INIT;
	char *p = att_path(log_dir, num), *text = json_dumps(j, JSON_COMPACT), *tmp;

	tmp = expt_xasprintf("%s.tmp", p);
	if (text && !expt_write_file(tmp, text, strlen(text), &e))
		rename(tmp, p);
	free(tmp);
	free(text);
	free(p);
}

static int connect_engine(struct ctr *c, struct expt_err *err)
{
	if (c->d)
		return 0;
	return expt_docker_open_engine(&c->d, c->conf.engine, err);
}

/* ---- the spec ---- */

static int ulimit_push(struct expt_strv *v, const char *name, const char *text)
{
	int64_t soft, hard;

	if (expt_spec_ulimit_parse(text, &soft, &hard))
		return -1;
	for (size_t i = 0; i < v->n; i++) {
		size_t k = strlen(name);
		if (!strncmp(v->v[i], name, k) && v->v[i][k] == '=') {
			free(v->v[i]);
			v->v[i] =
			    expt_xasprintf("%s=%lld:%lld", name, (long long)soft, (long long)hard);
			return 0;
		}
	}
	expt_strv_pushf(v, "%s=%lld:%lld", name, (long long)soft, (long long)hard);
	return 0;
}

/* libexpt and the Python binding of this expt, for runs whose image has neither: the library,
 * the libraries it needs that the C library does not provide (as `ldd` resolves them here: the
 * image shares this machine's C library ABI when it is the same distribution), and the
 * binding's directory. */
static void find_binding(struct conf *cf)
{
	struct expt_contract k;
	struct expt_buf b = EXPT_BUF_INIT;

	memset(&k, 0, sizeof(k));
	expt_local_binding_paths(&k);
	if (k.library) {
		const char *argv[] = {"ldd", NULL, NULL};
		cf->lib = realpath(k.library, NULL);
		argv[1] = cf->lib;
		expt_buf_init(&b, 1 << 16);
		if (cf->lib && !expt_spawn_capture(argv, 5000, &b) && b.buf) {
			for (char *line = b.buf; *line;) {
				size_t len = strcspn(line, "\n");
				char name[256], path[1024];
				if (sscanf(line, " %255s => %1023s", name, path) == 2 &&
				    path[0] == '/' && strncmp(name, "libc.so", 7) &&
				    strncmp(name, "libm.so", 7) && strncmp(name, "ld-linux", 8) &&
				    strncmp(name, "libpthread", 10) &&
				    strncmp(name, "libdl.so", 8) && strncmp(name, "librt.so", 8))
					expt_strv_pushf(&cf->lib_deps, "%s:/expt/lib/%s:ro", path,
							name);
				line += len + (line[len] == '\n');
			}
		}
	}
	if (k.pythonpath)
		cf->py = expt_abspath(k.pythonpath);
	expt_buf_release(&b);
	expt_contract_release(&k);
}

/* files: each local file bind-mounted read-only where the spec says: an absolute path as
 * written, a relative one under the run's working directory (the project's path, or with
 * container.code: image the image's, known when expt builds it: build.workdir). */
static int files_binds(struct conf *cf, const struct expt_spec *spec, struct expt_err *err)
{
	const char *wd = !cf->code_image			  ? cf->project
			 : spec->build.set && spec->build.workdir ? spec->build.workdir
			 : spec->build.set			  ? "/app"
								  : NULL;

	for (size_t i = 0; i < spec->files.n; i++) {
		const struct expt_kv *f = &spec->files.v[i];
		char *src = *f->value == '/' ? expt_xstrdup(f->value)
					     : expt_xasprintf("%s/%s", spec->dir, f->value);
		char *real = realpath(src, NULL);
		if (!real || access(real, R_OK)) {
			int rc = expt_err_errno(err, EXPT_EUSAGE, "files.%s: cannot read %s",
						f->key, src);
			free(src);
			free(real);
			return rc;
		}
		free(src);
		if (*f->key != '/' && !wd) {
			free(real);
			return expt_err_set(err, EXPT_EUSAGE,
					    "files.%s: a relative path in the run needs its "
					    "working directory, which "
					    "expt does not know for a prebuilt image with "
					    "container.code: image: write "
					    "it absolute",
					    f->key);
		}
		if (*f->key == '/')
			expt_strv_pushf(&cf->binds, "%s:%s:ro", real, f->key);
		else
			expt_strv_pushf(&cf->binds, "%s:%s/%s:ro", real, wd, f->key);
		free(real);
	}
	return 0;
}

static int conf_from_spec(struct conf *cf, const struct expt_spec *spec, struct expt_err *err)
{
	struct expt_strv host = EXPT_STRV_INIT;
	int rc;

	cf->image = spec->image ? expt_xstrdup(spec->image) : NULL;
	cf->project = expt_xstrdup(spec->dir);
	cf->experiment = expt_xstrdup(spec->name);
	cf->nano_cpus = spec->resources.cpu_milli * 1000000;
	cf->network = spec->container.network ? expt_xstrdup(spec->container.network) : NULL;
	policy_from_json(cf, spec->resolved_json);
	cf->code_image = spec->container.code && !strcmp(spec->container.code, "image");
	find_binding(cf);
	cf->user = spec->container.user ? expt_xstrdup(spec->container.user) : NULL;
	cf->keep |= spec->container.keep;
	cf->pull = !spec->container.pull || !strcmp(spec->container.pull, "missing") ? PULL_MISSING
		   : !strcmp(spec->container.pull, "always")			     ? PULL_ALWAYS
										     : PULL_NEVER;
	/* Without explicit limits a container inherits the engine's, which an engine without
	 * CAP_SYS_RESOURCE cannot set (start fails): these defaults, the spec's on top. */
	ulimit_push(&cf->ulimits, "nofile", "20000");
	ulimit_push(&cf->ulimits, "nproc", "32768");
	for (size_t i = 0; i < spec->container.ulimits.n; i++)
		ulimit_push(&cf->ulimits, spec->container.ulimits.v[i].key,
			    spec->container.ulimits.v[i].value);
	for (int in = 1; in >= 0; in--) {
		const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;
		for (size_t i = 0; i < ms->n; i++)
			if (strstr(ms->v[i].url, "://"))
				return expt_err_set(err, EXPT_EBACKEND,
						    "%s.%s: the container backend mounts paths of "
						    "this machine; '%s' needs the kubernetes "
						    "backend (or mount it here and give its path)",
						    in ? "inputs" : "outputs", ms->v[i].name,
						    ms->v[i].url);
	}
	/* The host paths as local resolves them (inputs must exist, outputs are created). */
	if ((rc = expt_local_mounts(spec, &host, err)))
		goto out;
	for (int in = 1; in >= 0; in--) {
		const struct expt_mounts *ms = in ? &spec->inputs : &spec->outputs;
		const char *sect = in ? "inputs" : "outputs";
		for (size_t i = 0; i < ms->n; i++) {
			const struct expt_mount *m = &ms->v[i];
			char *key = expt_xasprintf("%s.%s=", sect, m->name);
			for (size_t k = 0; k < host.n; k++)
				if (!strncmp(host.v[k], key, strlen(key)))
					expt_strv_pushf(&cf->binds, "%s:%s%s",
							host.v[k] + strlen(key), m->mount,
							m->readonly ? ":ro" : "");
			expt_strv_pushf(&cf->io, "%s%s", key, m->mount);
			free(key);
		}
	}
	rc = files_binds(cf, spec, err);
out:
	expt_strv_release(&host);
	return rc;
}

static void conf_release(struct conf *cf)
{
	free(cf->image);
	free(cf->project);
	free(cf->experiment);
	free(cf->network);
	free(cf->engine);
	free(cf->user);
	free(cf->lib);
	free(cf->py);
	expt_strv_release(&cf->lib_deps);
	expt_strv_release(&cf->ulimits);
	expt_strv_release(&cf->binds);
	expt_strv_release(&cf->io);
	memset(cf, 0, sizeof(*cf));
}

/* ---- the create body ---- */

static json_t *strv_json(const struct expt_strv *v)
{
	json_t *a = json_array();

	for (size_t i = 0; i < v->n; i++)
		json_array_append_new(a, json_string(v->v[i]));
	return a;
}

static int env_has(const struct expt_strv *env, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; i < env->n; i++)
		if (!strncmp(env->v[i], key, k) && env->v[i][k] == '=')
			return 1;
	return 0;
}

static json_t *create_body(const struct ctr *c, const struct expt_job *job, const char *gpus)
{
	const struct conf *cf = &c->conf;
	json_t *o = json_object(), *hc = json_object(), *labels = json_object();
	json_t *binds = strv_json(&cf->binds), *ul = json_array(), *env = strv_json(&job->env);
	char *user = cf->user ? expt_xstrdup(cf->user)
			      : expt_xasprintf("%u:%u", (unsigned)getuid(), (unsigned)getgid());

	json_object_set_new(labels, "expt.dev/experiment",
			    json_string(cf->experiment ? cf->experiment : ""));
	json_object_set_new(labels, "expt.dev/run", json_string(job->run_id));
	json_object_set_new(o, "Image", json_string(cf->image ? cf->image : ""));
	json_object_set_new(o, "Cmd", strv_json(&job->argv));
	json_object_set_new(o, "Env", env);
	if (gpus && *gpus) {
		json_array_append_new(env, json_sprintf("CUDA_VISIBLE_DEVICES=%s", gpus));
		json_array_append_new(env, json_string("CUDA_DEVICE_ORDER=PCI_BUS_ID"));
	}
	if (cf->project && !cf->code_image)
		json_object_set_new(o, "WorkingDir", json_string(cf->project));
	json_object_set_new(o, "User", json_string(user));
	json_object_set_new(o, "Labels", labels);
	json_object_set_new(o, "Tty", json_false());
	json_object_set_new(o, "AttachStdout", json_false());
	json_object_set_new(o, "AttachStderr", json_false());
	/* The run's output directory and params file at fixed paths; the project directory at its
	 * own path, so `command: python3 train.py` works unchanged; inputs and outputs at theirs.
	 */
	if (job->output_dir)
		json_array_insert_new(binds, 0,
				      json_sprintf("%s:%s", job->output_dir, OUTPUT_MOUNT));
	if (job->log_dir && job->params_json)
		json_array_insert_new(
		    binds, 1, json_sprintf("%s/params.json:%s:ro", job->log_dir, PARAMS_MOUNT));
	if (cf->project && !cf->code_image)
		json_array_insert_new(binds, 0, json_sprintf("%s:%s", cf->project, cf->project));
	/* libexpt and the binding, where the contract said (EXPT_LIBRARY, PYTHONPATH). */
	if (cf->lib) {
		json_array_append_new(binds, json_sprintf("%s:" LIB_MOUNT ":ro", cf->lib));
		for (size_t i = 0; i < cf->lib_deps.n; i++)
			json_array_append_new(binds, json_string(cf->lib_deps.v[i]));
		if (cf->lib_deps.n && !env_has(&job->env, "LD_LIBRARY_PATH"))
			json_array_append_new(env, json_string("LD_LIBRARY_PATH=/expt/lib"));
	}
	if (cf->py)
		json_array_append_new(binds, json_sprintf("%s:" PY_MOUNT ":ro", cf->py));
	json_object_set_new(hc, "Binds", binds);
	if (job->memory_bytes > 0) {
		json_object_set_new(hc, "Memory", json_integer(job->memory_bytes));
		json_object_set_new(hc, "MemorySwap", json_integer(job->memory_bytes));
	}
	if (cf->nano_cpus > 0)
		json_object_set_new(hc, "NanoCpus", json_integer(cf->nano_cpus));
	for (size_t i = 0; i < cf->ulimits.n; i++) {
		const char *eq = strchr(cf->ulimits.v[i], '=');
		long long soft = 0, hard = 0;
		char *name = expt_xstrndup(cf->ulimits.v[i], (size_t)(eq - cf->ulimits.v[i]));
		sscanf(eq + 1, "%lld:%lld", &soft, &hard);
		json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", name, "Soft",
						    (json_int_t)soft, "Hard", (json_int_t)hard));
		free(name);
	}
	json_object_set_new(hc, "Ulimits", ul);
	if (cf->network)
		json_object_set_new(hc, "NetworkMode", json_string(cf->network));
	if (gpus && *gpus) {
		json_t *ids = json_array();
		for (const char *p = gpus; *p;) {
			size_t len = strcspn(p, ",");
			json_array_append_new(ids, json_stringn(p, len));
			p += len + (p[len] == ',');
		}
		json_object_set_new(hc, "DeviceRequests",
				    json_pack("[{s:s,s:o,s:[[s]]}]", "Driver", "nvidia",
					      "DeviceIDs", ids, "Capabilities", "gpu"));
	}
	json_object_set_new(o, "HostConfig", hc);
	free(user);
	return o;
}

/* ---- output ---- */

static void write_all(struct stream *st, const char *p, size_t n)
{
	while (n && st->file >= 0 && !st->file_errno) {
		ssize_t w = write(st->file, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			st->file_errno = errno;
			break;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void deliver(struct att *t, int which, const char *line, size_t len)
{
	if (t->comb >= 0) {
		struct stream cs = {.file = t->comb};
		write_all(&cs, line, len);
		if (len != LINE_CHUNK)
			write_all(&cs, "\n", 1);
	}
	expt_sched_line(t->c->cur, t->a, which, line, len);
}

static void append(struct stream *st, const char *p, size_t n)
{
	if (!st->buf)
		st->buf = expt_xmalloc(LINE_CHUNK + 1);
	memcpy(st->buf + st->len, p, n);
	st->len += n;
	st->buf[st->len] = '\0';
}

/* Splits a frame's payload into lines (p is scratch and may be modified). */
static void feed(struct att *t, struct stream *st, int which, char *p, size_t n)
{
	write_all(st, p, n);
	while (n) {
		char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (st->len + take > LINE_CHUNK) {
			size_t room = LINE_CHUNK - st->len;
			append(st, p, room);
			deliver(t, which, st->buf, st->len);
			st->len = 0;
			p += room;
			n -= room;
			continue;
		}
		if (!nl) {
			append(st, p, take);
			return;
		}
		if (st->len) {
			append(st, p, take);
			deliver(t, which, st->buf, st->len);
			st->len = 0;
		} else {
			*nl = '\0';
			deliver(t, which, p, take);
		}
		p += take + 1;
		n -= take + 1;
	}
}

static void flush_partial(struct att *t)
{
	if (t->out.len)
		deliver(t, 1, t->out.buf, t->out.len);
	if (t->err.len)
		deliver(t, 2, t->err.buf, t->err.len);
	t->out.len = t->err.len = 0;
}

/* The multiplexed stream: frames of [stream, 0, 0, 0, size (big-endian uint32)] + payload,
 * decoded as the bytes come: a frame of any size, split anywhere, needs no buffer of its own. */
static size_t on_logs(char *p, size_t size, size_t nmemb, void *payload)
{
	struct att *t = payload;
	size_t n = size * nmemb, got = n;
	char scratch[16384];

	while (n) {
		if (!t->remaining) {
			size_t take = 8 - t->hdr_len < n ? 8 - t->hdr_len : n;
			memcpy(t->hdr + t->hdr_len, p, take);
			t->hdr_len += take;
			p += take;
			n -= take;
			if (t->hdr_len == 8) {
				const unsigned char *h = t->hdr;
				t->remaining = (size_t)h[4] << 24 | (size_t)h[5] << 16 |
					       (size_t)h[6] << 8 | h[7];
				t->which = h[0] == 2 ? 2 : 1;
				t->hdr_len = 0;
			}
			continue;
		}
		{
			size_t take = t->remaining < n ? t->remaining : n;
			if (take > sizeof(scratch))
				take = sizeof(scratch);
			memcpy(scratch, p, take); /* feed may write into it */
			feed(t, t->which == 2 ? &t->err : &t->out, t->which, scratch, take);
			t->remaining -= take;
			p += take;
			n -= take;
		}
	}
	return got;
}

static int open_log(const char *dir, const char *name, int *fd, struct expt_err *err)
{
	char *path = expt_xasprintf("%s/%s", dir, name);

	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*fd < 0)
		expt_err_errno(err, EXPT_EBACKEND, "cannot open log file %s", path);
	free(path);
	return *fd < 0 ? EXPT_EBACKEND : 0;
}

/* ---- talking to the engine ---- */

/* A pull as it goes: per layer, bytes done of its size (when the engine says), and its last
 * status; shown through the handle's progress callback. */
struct pull_view {
	struct ctr *c;
	const char *image;
	json_t *layers; /* id -> [current, total, done] */
	char last[160];
	int64_t shown_ms;
};

static void show_pull(struct pull_view *p, int force)
{
	int64_t now = expt_mono_ms(), cur = 0, total = 0;
	size_t ndone = 0, n = json_object_size(p->layers);
	char text[512], a[32], b[32];
	const char *k;
	json_t *v;

	if (!p->c->progress || (!force && now - p->shown_ms < 100))
		return;
	p->shown_ms = now;
	json_object_foreach(p->layers, k, v)
	{
		cur += json_integer_value(json_array_get(v, 0));
		total += json_integer_value(json_array_get(v, 1));
		ndone += json_is_true(json_array_get(v, 2));
	}
	if (total > 0) {
		expt_fmt_mem(cur, a, sizeof(a));
		expt_fmt_mem(total, b, sizeof(b));
		snprintf(text, sizeof(text), "pulling %s: %zu/%zu layers, %s of %s", p->image,
			 ndone, n, a, b);
	} else {
		snprintf(text, sizeof(text), "pulling %s: %zu/%zu layers%s%s", p->image, ndone, n,
			 p->last[0] ? ", " : "", p->last);
	}
	p->c->progress(text, p->c->progress_payload);
}

static void on_pull_line(const char *line, size_t len, void *payload)
{
	struct pull_view *p = payload;
	json_t *j = json_loadb(line, len, 0, NULL), *pd, *layer;
	const char *st = json_string_value(json_object_get(j, "status"));
	const char *id = json_string_value(json_object_get(j, "id"));

	if (!j)
		return;
	if (st)
		snprintf(p->last, sizeof(p->last), "%s%s%.12s", st, id ? " " : "", id ? id : "");
	if (id && st) {
		int done = strstr(st, "complete") || strstr(st, "Already exists") ||
			   strstr(st, "Pull complete");
		layer = json_object_get(p->layers, id);
		if (!layer) {
			layer = json_pack("[I,I,b]", (json_int_t)0, (json_int_t)0, 0);
			json_object_set_new(p->layers, id, layer);
		}
		pd = json_object_get(j, "progressDetail");
		if (json_integer_value(json_object_get(pd, "total")) > 0) {
			json_array_set_new(
			    layer, 0,
			    json_integer(json_integer_value(json_object_get(pd, "current"))));
			json_array_set_new(
			    layer, 1,
			    json_integer(json_integer_value(json_object_get(pd, "total"))));
		}
		if (done) {
			json_array_set_new(layer, 2, json_true());
			json_array_set(layer, 0, json_array_get(layer, 1));
		}
	}
	json_decref(j);
	show_pull(p, 0);
}

/* Pulls image; 0, or -1 with msg. A failure can come inside a 200 stream. */
static int pull(struct ctr *c, const char *image, char *msg, size_t n)
{
	struct pull_view view = {c, image, json_object(), "", 0};
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	char *q = expt_docker_escape(image), *path, *auth, *hdr = NULL, reg[256];
	long status;
	int rc = -1;

	path = expt_xasprintf("/images/create?fromImage=%s", q);
	/* Credentials for its registry, from the Docker client's config, as `docker pull`. */
	if ((auth = expt_docker_registry_auth(image, reg, sizeof(reg))))
		hdr = expt_xasprintf("X-Registry-Auth: %s", auth);
	free(auth);
	if (c->progress) {
		snprintf(view.last, sizeof(view.last), "asking the engine");
		show_pull(&view, 1);
	}
	if (expt_docker_call_lines(c->d, "POST", path, hdr, PULL_TIMEOUT_MS, on_pull_line, &view,
				   &status, &b, &e)) {
		snprintf(msg, n, "cannot pull %s: %s", image, e.msg);
		goto out;
	}
	if (status != 200) {
		char em[512];
		expt_docker_errmsg(&b, em, sizeof(em));
		snprintf(msg, n, "cannot pull image %s: %s%s", image, em,
			 hdr ? "" : " (no credentials for it in ~/.docker/config.json)");
		goto out;
	}
	rc = 0;
	for (const char *line = b.buf; *line;) {
		size_t len = strcspn(line, "\n");
		json_t *j = json_loadb(line, len, 0, NULL);
		const char *em = json_string_value(json_object_get(j, "error"));
		if (em) {
			snprintf(msg, n, "cannot pull image %s: %s%s", image, em,
				 hdr ? ""
				     : " (no credentials for its registry in "
				       "~/.docker/config.json)");
			rc = -1;
		}
		json_decref(j);
		line += len + (line[len] == '\n');
	}
out:
	if (c->progress)
		c->progress("", c->progress_payload);
	json_decref(view.layers);
	free(q);
	free(path);
	free(hdr);
	expt_buf_release(&b);
	return rc;
}

static void remove_container(struct ctr *c, const char *id);

/* Creates the container (pulling the image when the engine has none); 0 and t->id, or -1. */
static int create(struct ctr *c, struct expt_job *job, struct att *t, char *msg, size_t n)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	json_t *body = create_body(c, job, t->a->gpus), *j = NULL;
	char *text = json_dumps(body, JSON_COMPACT), *name, *path;
	long status = 0;
	int rc = -1;

	/* The run id is the container's name; a retry's attempts are told apart. */
	name = t->a->num > 1 ? expt_xasprintf("%s-%d", job->run_id, t->a->num)
			     : expt_xstrdup(job->run_id);
	path = expt_xasprintf("/containers/create?name=%s", name);
	/* container.pull: always pulls once per expt run, whatever the engine has. */
	if (c->conf.pull == PULL_ALWAYS && !c->pulled) {
		if (pull(c, c->conf.image, msg, n))
			goto out;
		c->pulled = 1;
	}
	for (int tries = 0, conflicts = 0; tries < 3; tries++) {
		char em[512];
		if (expt_docker_call(c->d, "POST", path, text, 0, &status, &b, &e)) {
			snprintf(msg, n, "%s", e.msg);
			goto out;
		}
		if (status == 201)
			break;
		expt_docker_errmsg(&b, em, sizeof(em));
		if (status == 404 && c->conf.pull == PULL_NEVER) {
			snprintf(msg, n,
				 "image %s is not on the engine, and container.pull is never: %s",
				 c->conf.image, em);
			goto out;
		}
		if (status == 404 && !c->pulled) {
			if (pull(c, c->conf.image, msg, n))
				goto out;
			c->pulled = 1;
			continue;
		}
		/* A container of that name is there already (a kept one of a store that was
		 * deleted, another tool's): on_conflict says whether to fail, replace it, or take a
		 * new name. */
		if ((status == 409 || strstr(em, "already in use")) && !conflicts++ &&
		    c->conf.on_conflict != CONFLICT_FAIL) {
			if (c->conf.on_conflict == CONFLICT_REPLACE) {
				remove_container(c, name);
			} else {
				char *nn = expt_xasprintf(
				    "%s-%04x", name, (unsigned)(expt_now_ms() ^ getpid()) & 0xffff);
				free(name);
				name = nn;
				free(path);
				path = expt_xasprintf("/containers/create?name=%s", name);
			}
			continue;
		}
		if (status == 404)
			snprintf(msg, n, "image %s not found: %s", c->conf.image, em);
		else if (status == 409 || strstr(em, "already in use")) /* Podman: 500 */
			snprintf(
			    msg, n,
			    "a container named %s already exists (remove it, or set on_conflict: "
			    "replace or new-id): %s",
			    name, em);
		else
			snprintf(msg, n, "cannot create the container: %s", em);
		goto out;
	}
	j = json_loads(b.buf, 0, NULL);
	if (!json_string_value(json_object_get(j, "Id"))) {
		snprintf(msg, n, "cannot create the container: the engine gave no id");
		goto out;
	}
	snprintf(t->id, sizeof(t->id), "%s", json_string_value(json_object_get(j, "Id")));
	rc = 0;
out:
	json_decref(j);
	json_decref(body);
	free(text);
	free(name);
	free(path);
	expt_buf_release(&b);
	return rc;
}

static void remove_container(struct ctr *c, const char *id)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	char *path = expt_xasprintf("/containers/%s?force=1&v=1", id);
	long status;

	expt_docker_call(c->d, "DELETE", path, NULL, 0, &status, &b, &e);
	free(path);
	expt_buf_release(&b);
}

/* What inspect says of a container: *j its JSON (caller decrefs), NULL with *status 404 when
 * the engine does not know it. -1 when the engine cannot be reached. */
static int inspect(struct ctr *c, const char *id, json_t **j, long *status, struct expt_err *err)
{
	struct expt_buf b = EXPT_BUF_INIT;
	char *q = expt_docker_escape(id), *path = expt_xasprintf("/containers/%s/json", q);
	int rc;

	*j = NULL;
	rc = expt_docker_call(c->d, "GET", path, NULL, 0, status, &b, err);
	if (!rc && *status == 200)
		*j = json_loads(b.buf, 0, NULL);
	free(q);
	free(path);
	expt_buf_release(&b);
	return rc ? -1 : 0;
}

/* The end of a container as an observation (phase EXITED). */
static void observed_from_state(json_t *state, int64_t memory, struct expt_observed *o)
{
	const char *error = json_string_value(json_object_get(state, "Error"));
	char lim[32];

	o->phase = EXPT_OBS_EXITED;
	o->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
	o->oom = json_is_true(json_object_get(state, "OOMKilled"));
	expt_fmt_mem(memory, lim, sizeof(lim));
	if (o->oom && memory > 0)
		snprintf(o->message, sizeof(o->message),
			 "OOMKilled: exceeded memory limit %s (exit code %d)", lim, o->exit_code);
	else if (o->oom)
		snprintf(o->message, sizeof(o->message), "OOMKilled (exit code %d)", o->exit_code);
	else if (error && *error)
		snprintf(o->message, sizeof(o->message), "exited with code %d: %s", o->exit_code,
			 error);
	else
		snprintf(o->message, sizeof(o->message), "exited with code %d", o->exit_code);
}

/* ---- completing the log files from the engine (no supervisor) ---- */

/* The engine's whole log of a container, split as the supervisor splits it: the raw bytes of
 * each stream, and output.log's lines in arrival order. */
struct demux {
	struct expt_buf out, err, comb;
	struct expt_buf part[2]; /* a line of stdout / stderr without its newline yet */
};

static void demux_comb_line(struct demux *d, struct expt_buf *pb)
{
	expt_buf_add(&d->comb, pb->buf ? pb->buf : "", pb->len);
	if (pb->len != LINE_CHUNK)
		expt_buf_addch(&d->comb, '\n');
	expt_buf_reset(pb);
}

static void demux_lines(struct demux *d, int which, const char *p, size_t n)
{
	struct expt_buf *pb = &d->part[which - 1];

	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (pb->len + take > LINE_CHUNK) {
			size_t room = LINE_CHUNK - pb->len;
			expt_buf_add(pb, p, room);
			demux_comb_line(d, pb);
			p += room;
			n -= room;
			continue;
		}
		expt_buf_add(pb, p, take);
		if (!nl)
			return;
		demux_comb_line(d, pb);
		p += take + 1;
		n -= take + 1;
	}
}

static void demux(struct demux *d, const struct expt_buf *body, int ended)
{
	const unsigned char *p = (const unsigned char *)body->buf;
	size_t left = body->len;

	while (left >= 8) {
		size_t size = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 | p[7];
		int which = p[0] == 2 ? 2 : 1;
		if (size > left - 8)
			size = left - 8; /* cut short: what there is */
		expt_buf_add(which == 2 ? &d->err : &d->out, p + 8, size);
		demux_lines(d, which, (const char *)p + 8, size);
		p += 8 + size;
		left -= 8 + size;
	}
	if (ended)
		for (int i = 0; i < 2; i++)
			if (d->part[i].len)
				demux_comb_line(d, &d->part[i]);
}

/* Appends to log_dir/name what data has beyond what the file holds from offset on. */
static void complete_file(const char *log_dir, const char *name, int64_t offset,
			  const struct expt_buf *data)
{
	char *path = expt_xasprintf("%s/%s", log_dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int64_t have = fd >= 0 ? (int64_t)lseek(fd, 0, SEEK_END) - offset : 0;

	if (have < 0)
		have = 0;
	if (fd >= 0 && (int64_t)data->len > have) {
		struct stream st = {.file = fd};
		write_all(&st, data->buf + have, data->len - (size_t)have);
	}
	if (fd >= 0)
		close(fd);
	free(path);
}

/* Completes attempt num's part of the run's log files from the engine's log of its container
 * (after the supervisor that wrote them is gone). 0, or -1 when there is nothing to read. */
static int harvest(struct ctr *c, const char *log_dir, int num, int ended)
{
	json_t *aj = att_load(log_dir, num);
	const char *id = json_string_value(json_object_get(aj, "id"));
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	struct demux d;
	char *path;
	long status = 0;
	int rc = -1;

	memset(&d, 0, sizeof(d));
	if (!id || connect_engine(c, &e)) {
		json_decref(aj);
		return -1;
	}
	path = expt_xasprintf("/containers/%s/logs?stdout=1&stderr=1", id);
	if (!expt_docker_call(c->d, "GET", path, NULL, 0, &status, &b, &e) && status == 200) {
		demux(&d, &b, ended);
		complete_file(log_dir, "stdout.log",
			      json_integer_value(json_object_get(aj, "stdout")), &d.out);
		complete_file(log_dir, "stderr.log",
			      json_integer_value(json_object_get(aj, "stderr")), &d.err);
		complete_file(log_dir, "output.log",
			      json_integer_value(json_object_get(aj, "output")), &d.comb);
		rc = 0;
	}
	expt_buf_release(&d.out);
	expt_buf_release(&d.err);
	expt_buf_release(&d.comb);
	expt_buf_release(&d.part[0]);
	expt_buf_release(&d.part[1]);
	expt_buf_release(&b);
	free(path);
	json_decref(aj);
	return rc;
}

/* RFC 3339 (the engine's StartedAt / FinishedAt) as ms since the epoch; 0 when unreadable. */
static int64_t rfc3339_ms(const char *t)
{
	struct tm tm;
	const char *rest;
	int64_t ms = 0;

	memset(&tm, 0, sizeof(tm));
	if (!t || !(rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)) || tm.tm_year < 100)
		return 0;
	if (*rest == '.') {
		int digits = 0;
		for (rest++; *rest >= '0' && *rest <= '9'; rest++)
			if (digits++ < 3)
				ms = ms * 10 + (*rest - '0');
		for (; digits < 3; digits++)
			ms *= 10;
	}
	ms += (int64_t)timegm(&tm) * 1000;
	if (*rest == '+' || *rest == '-') {
		int hh = 0, mm = 0;
		sscanf(rest + 1, "%d:%d", &hh, &mm);
		ms -= (*rest == '+' ? 1 : -1) * (int64_t)(hh * 60 + mm) * 60000;
	}
	return ms;
}

/* ---- the engine for the scheduler ---- */

static void release_att(struct ctr *c, struct att *t)
{
	if (t->logs) {
		EXPT_CURL->multi_remove_handle(c->multi, t->logs);
		EXPT_CURL->easy_cleanup(t->logs);
	}
	if (t->out.file >= 0)
		close(t->out.file);
	if (t->err.file >= 0)
		close(t->err.file);
	if (t->comb >= 0)
		close(t->comb);
	free(t->out.buf);
	free(t->err.buf);
	free(t->log_dir);
	free(t);
}

static void engine_release(void *eng, struct expt_sched_attempt *sa)
{
	struct ctr *c = eng;
	struct att *t = sa->eng;

	if (!t)
		return;
	/* An attempt that ended (or never properly started) leaves nothing behind, unless the
	 * spec keeps finished containers. */
	if (t->id[0] && !c->letting_go && (!t->exited_at || !keeps(&c->conf, t->succeeded)))
		remove_container(c, t->id);
	release_att(c, t);
	sa->eng = NULL;
}

static int engine_start(void *eng, struct expt_sched *s, struct expt_job *job,
			struct expt_sched_attempt *sa, char *msg, size_t n)
{
	struct ctr *c = eng;
	struct att *t = expt_xcalloc(1, sizeof(*t));
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	char *path = NULL, *url = NULL;
	long status = 0;
	int rc = -1;

	(void)s;
	t->c = c;
	t->a = sa;
	t->out.file = t->err.file = t->comb = -1;
	sa->eng = t;
	sa->node = c->node;
	if (!c->conf.image) {
		snprintf(msg, n, "the container backend needs an image (image: in the spec)");
		return -1;
	}
	if (connect_engine(c, &e))
		goto fail;
	if (job->output_dir && expt_mkdirs(job->output_dir, &e))
		goto fail;
	if (job->log_dir) {
		char *pf = expt_xasprintf("%s/params.json", job->log_dir);
		int bad = expt_mkdirs(job->log_dir, &e) ||
			  (sa->num == 1 && job->params_json &&
			   expt_write_file(pf, job->params_json, strlen(job->params_json), &e));
		free(pf);
		if (bad || open_log(job->log_dir, "stdout.log", &t->out.file, &e) ||
		    open_log(job->log_dir, "stderr.log", &t->err.file, &e) ||
		    open_log(job->log_dir, "output.log", &t->comb, &e))
			goto fail;
	}
	if (create(c, job, t, msg, n))
		goto out;
	if (job->log_dir) {
		/* Where this attempt's output begins in the log files: a later expt completes them
		 * from the engine's log when this process is gone before the container. */
		json_t *aj = json_pack("{s:s,s:I,s:I,s:I}", "id", t->id, "stdout",
				       (json_int_t)lseek(t->out.file, 0, SEEK_END), "stderr",
				       (json_int_t)lseek(t->err.file, 0, SEEK_END), "output",
				       (json_int_t)lseek(t->comb, 0, SEEK_END));
		t->log_dir = expt_xstrdup(job->log_dir);
		att_save(job->log_dir, sa->num, aj);
		json_decref(aj);
	}
	path = expt_xasprintf("/containers/%s/start", t->id);
	if (expt_docker_call(c->d, "POST", path, NULL, 0, &status, &b, &e))
		goto fail;
	if (status != 204 && status != 304) {
		char em[400];
		expt_docker_errmsg(&b, em, sizeof(em));
		snprintf(msg, n, "cannot start the container: %s", em);
		goto out; /* release removes it */
	}
	t->start_mono = expt_mono_ms();
	t->start_wall = expt_now_ms(); /* after a pull, which is not the run's time */
	t->next_inspect = t->start_mono + INSPECT_MS;
	free(path);
	path = expt_xasprintf("/containers/%s/logs?follow=1&stdout=1&stderr=1", t->id);
	url = expt_docker_url(c->d, path);
	t->logs = EXPT_CURL->easy_init();
	if (t->logs) {
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_UNIX_SOCKET_PATH, expt_docker_socket(c->d));
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_URL, url);
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_NOSIGNAL, 1L);
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_WRITEFUNCTION, on_logs);
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_WRITEDATA, t);
		EXPT_CURL->easy_setopt(t->logs, CURLOPT_PRIVATE, t);
		EXPT_CURL->multi_add_handle(c->multi, t->logs);
	} else {
		t->logs_done = 1; /* inspect alone will see the end */
	}
	snprintf(sa->ref, sizeof(sa->ref), REF_PREFIX "%.12s", t->id);
	rc = 0;
	goto out;
fail:
	snprintf(msg, n, "%s", e.msg);
out:
	free(path);
	free(url);
	expt_buf_release(&b);
	return rc;
}

static void engine_signal(void *eng, struct expt_sched_attempt *sa, int hard)
{
	struct ctr *c = eng;
	struct att *t = sa->eng;
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	char *path;
	long status;

	if (!t || !t->id[0] || t->exited_at)
		return;
	path = expt_xasprintf("/containers/%s/kill?signal=%s", t->id, hard ? "SIGKILL" : "SIGTERM");
	expt_docker_call(c->d, "POST", path, NULL, 0, &status, &b, &e);
	free(path);
	expt_buf_release(&b);
}

/* Adds the engine's State of an ended container to its attempt's file: what debug shows once
 * the container is removed. */
static void save_evidence(const char *log_dir, int num, json_t *state)
{
	json_t *aj = att_load(log_dir, num);

	if (!aj)
		aj = json_object();
	json_object_set(aj, "State", state);
	att_save(log_dir, num, aj);
	json_decref(aj);
}

/* Reports t's end from its State (or its disappearance). */
static void finish(struct ctr *c, struct att *t, json_t *state)
{
	struct expt_sched_attempt *sa = t->a;
	struct expt_job *job = expt_sched_job(c->cur, sa);
	struct expt_observed o;

	memset(&o, 0, sizeof(o));
	flush_partial(t);
	if (state) {
		observed_from_state(state, job->memory_bytes, &o);
		/* Podman on cgroup v1 never sets OOMKilled: a SIGKILL that expt did not send, under
		 * a memory limit, is taken for the kernel's OOM killer, and said to be a guess. */
		if (!o.oom && o.exit_code == 137 && job->memory_bytes > 0 && !sa->stopped &&
		    !sa->timed_out && !sa->killed) {
			char lim[32];
			expt_fmt_mem(job->memory_bytes, lim, sizeof(lim));
			o.oom = 1;
			snprintf(o.message, sizeof(o.message),
				 "killed by SIGKILL (exit code 137) under its memory limit %s: "
				 "out of memory, most likely (the engine did not say OOMKilled)",
				 lim);
		}
	} else {
		o.phase = EXPT_OBS_EXITED;
		o.exit_code = -1;
		snprintf(o.message, sizeof(o.message),
			 "the container %.12s disappeared before expt saw it end", t->id);
	}
	t->succeeded = state && o.exit_code == 0 && !o.oom;
	if (state && t->log_dir)
		save_evidence(t->log_dir, sa->num, state);
	o.start_ms = t->start_wall;
	o.end_ms = t->start_wall + (expt_mono_ms() - t->start_mono);
	snprintf(o.node, sizeof(o.node), "%s", c->node);
	if (t->out.file_errno || t->err.file_errno) {
		size_t len = strlen(o.message);
		snprintf(o.message + len, sizeof(o.message) - len, " (cannot write its log: %s)",
			 strerror(t->out.file_errno ? t->out.file_errno : t->err.file_errno));
	}
	expt_sched_ended(c->cur, sa, &o); /* releases t */
}

/* Inspects t when due; reports its end once the container exited and its output is read. */
static int check(struct ctr *c, struct att *t, int64_t now, struct expt_err *err)
{
	json_t *j, *state;
	const char *st;
	long status = 0;

	if (now < t->next_inspect)
		return 0;
	t->next_inspect = now + (t->logs_done ? 100 : INSPECT_MS);
	if (inspect(c, t->id, &j, &status, err))
		return -1;
	if (!j && status == 404) {
		t->a->ending = 1;
		finish(c, t, NULL);
		return 1;
	}
	state = json_object_get(j, "State");
	st = json_string_value(json_object_get(state, "Status"));
	if (json_is_true(json_object_get(state, "Running")) || (st && !strcmp(st, "created"))) {
		json_decref(j);
		return 0;
	}
	if (!t->exited_at) {
		t->exited_at = now;
		t->a->ending = 1;
	}
	/* Exited: report once the log stream has given everything (bounded). */
	if (t->logs_done || now - t->exited_at >= DRAIN_MS) {
		finish(c, t, state);
		json_decref(j);
		return 1;
	}
	t->next_inspect = now + 50;
	json_decref(j);
	return 0;
}

static int engine_wait(void *eng, struct expt_sched *s, int64_t ms, struct expt_err *err)
{
	struct ctr *c = eng;
	struct expt_sched_attempt *const *run;
	size_t nrun;
	int running = 0, left;
	CURLMsg *m;
	int64_t now;

	c->cur = s;
	EXPT_CURL->multi_poll(c->multi, NULL, 0, (int)(ms < 0 ? 0 : ms), NULL);
	EXPT_CURL->multi_perform(c->multi, &running);
	while ((m = EXPT_CURL->multi_info_read(c->multi, &left))) {
		struct att *t = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		EXPT_CURL->easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		if (t) {
			t->logs_done = 1;
			t->next_inspect = 0; /* the container has probably ended: look now */
		}
	}
	now = expt_mono_ms();
	run = expt_sched_running(s, &nrun);
	for (size_t i = 0; i < nrun;) {
		struct att *t = run[i]->eng;
		int r = t ? check(c, t, now, err) : 0;
		if (r < 0)
			return -1;
		if (r > 0) {
			run = expt_sched_running(s, &nrun); /* t was removed */
			continue;
		}
		i++;
	}
	return 0;
}

static const struct expt_sched_engine engine = {engine_start, engine_signal, engine_wait,
						engine_release, 0};

/* ---- the operations ---- */

static int ctr_open(void **state, const struct expt_backend_conf *conf, struct expt_err *err)
{
	struct ctr *c = expt_xcalloc(1, sizeof(*c));
	int rc;

	c->db_path = conf && conf->db_path ? expt_xstrdup(conf->db_path) : NULL;
	if (conf) {
		c->progress = conf->progress;
		c->progress_payload = conf->progress_payload;
	}
	if (conf && !conf->spec && conf->spec_json)
		policy_from_json(&c->conf, conf->spec_json); /* which engine, for read commands */
	if (conf && conf->spec) {
		c->have_conf = 1;
		if ((rc = conf_from_spec(&c->conf, conf->spec, err)) ||
		    (!conf->offline && (rc = connect_engine(c, err)))) {
			conf_release(&c->conf);
			free(c->db_path);
			free(c);
			return rc;
		}
	}
	*state = c;
	return 0;
}

static void teardown(struct ctr *c)
{
	expt_sched_free(c->sched);
	c->sched = c->cur = NULL;
	if (c->multi)
		EXPT_CURL->multi_cleanup(c->multi);
	c->multi = NULL;
}

static int ctr_submit(void *state, struct expt_job **jobs, size_t n,
		      const struct expt_exec_opts *opts, const struct expt_job_events *ev,
		      void *payload, struct expt_err *err)
{
	struct ctr *c = state;

	if (c->sched)
		return expt_err_set(err, EXPT_EBACKEND, "container backend: one submit per handle");
	if (gethostname(c->node, sizeof(c->node) - 1))
		c->node[0] = '\0';
	c->multi = EXPT_CURL->multi_init();
	if (!c->multi)
		return expt_err_set(err, EXPT_EBACKEND, "cannot initialise libcurl");
	c->sched = c->cur = expt_sched_new(jobs, n, opts, ev, payload, &engine, c);
	return 0;
}

static int ctr_watch(void *state, int64_t timeout_ms, struct expt_err *err)
{
	struct ctr *c = state;
	int r;

	if (!c->sched)
		return 1;
	c->cur = c->sched;
	if ((r = expt_sched_watch(c->sched, timeout_ms, err)))
		teardown(c);
	return r;
}

static void ctr_close(void *state)
{
	struct ctr *c = state;

	if (!c)
		return;
	if (c->sched) {
		struct expt_err e = EXPT_ERR_INIT;
		expt_sched_stop_all(c->sched, 1);
		while (!ctr_watch(c, 1000, &e))
			;
	}
	expt_docker_free(c->d);
	conf_release(&c->conf);
	free(c->db_path);
	free(c);
}

static int ctr_contract(void *state, const struct expt_run_rec *run, struct expt_contract *out,
			struct expt_err *err)
{
	struct ctr *c = state;

	(void)err;
	memset(out, 0, sizeof(*out));
	if (run) {
		out->output_dir = expt_xstrdup(OUTPUT_MOUNT);
		out->params_file = expt_xstrdup(PARAMS_MOUNT);
	}
	if (c->conf.lib)
		out->library = expt_xstrdup(LIB_MOUNT);
	if (c->conf.py)
		out->pythonpath = expt_xstrdup(PY_MOUNT);
	/* The store is not reachable from the container: libexpt writes its records on stdout,
	 * which the supervisor feeds into the store. */
	out->store = NULL;
	expt_strv_copy(&out->io, &c->conf.io);
	return 0;
}

static int ctr_render(void *state, const struct expt_job *job, json_t **out, struct expt_err *err)
{
	struct ctr *c = state;

	(void)err;
	*out = create_body(c, job, "");
	return 0;
}

/* The container id a run's ref names ("container:<id12>"), else its name (the run id). */
static const char *ref_id(const struct expt_run_rec *run)
{
	if (run->backend_ref && !strncmp(run->backend_ref, REF_PREFIX, strlen(REF_PREFIX)))
		return run->backend_ref + strlen(REF_PREFIX);
	return run->run_id;
}

/* An ended container of a run no expt process supervises: its output completed into the log
 * files, the engine's State kept beside them, then the container removed unless the spec's
 * cleanup keeps it. */
static void settle(struct ctr *c, const struct expt_run_rec *r, const char *id, json_t *state,
		   int succeeded)
{
	int num = r->attempt > 0 ? r->attempt : 1;
	struct conf cf;

	if (r->log_dir) {
		harvest(c, r->log_dir, num, 1);
		save_evidence(r->log_dir, num, state);
	}
	memset(&cf, 0, sizeof(cf));
	policy_from_json(&cf, r->spec_json);
	if (!keeps(&cf, succeeded))
		remove_container(c, id);
}

/* The newest container labelled expt.dev/run=run_id (a run whose container was created but
 * not recorded, or named otherwise by on_conflict: new-id): its id in id, 1; 0 when none. */
static int find_by_label(struct ctr *c, const char *run_id, char *id, size_t n)
{
	json_t *f = json_pack("{s:[s+]}", "label", "expt.dev/run=", run_id), *j = NULL, *v;
	char *text = json_dumps(f, JSON_COMPACT), *q = expt_docker_escape(text);
	char *path = expt_xasprintf("/containers/json?all=1&filters=%s", q);
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_buf b = EXPT_BUF_INIT;
	long status = 0;
	json_int_t newest = -1;
	size_t i;

	id[0] = '\0';
	if (!expt_docker_call(c->d, "GET", path, NULL, 0, &status, &b, &e) && status == 200)
		j = json_loads(b.buf, 0, NULL);
	json_array_foreach(j, i, v)
	{
		const char *cid = json_string_value(json_object_get(v, "Id"));
		json_int_t created = json_integer_value(json_object_get(v, "Created"));
		if (cid && created > newest) {
			newest = created;
			snprintf(id, n, "%s", cid);
		}
	}
	json_decref(j);
	json_decref(f);
	free(text);
	free(q);
	free(path);
	expt_buf_release(&b);
	return id[0] != '\0';
}

/* A run no expt process supervises any more (its supervisor was killed, or `-d` left it to the
 * engine): its log files are completed from the engine's log, and once the container ended, its
 * end is read from inspect, the evidence kept beside the logs, and the container removed as the
 * spec's cleanup says. */
static int ctr_poll(void *state, const struct expt_run_rec *runs, size_t n,
		    struct expt_observed *out, struct expt_err *err)
{
	struct ctr *c = state;
	int reach = -1;

	for (size_t i = 0; i < n; i++) {
		const struct expt_run_rec *r = &runs[i];
		json_t *j = NULL, *st;
		long status = 0;

		memset(&out[i], 0, sizeof(out[i]));
		out[i].exit_code = -1;
		out[i].attempt = r->attempt;
		const char *ref = ref_id(r);
		char found[80];

		if (expt_run_status_done(r->status))
			continue;
		if (reach < 0)
			reach = !connect_engine(c, err);
		if (!reach)
			continue; /* UNKNOWN: the engine cannot say */
		/* Queued (its supervisor died before it recorded the start), or not under the name
		 * recorded: the engine is asked by label. */
		if (r->status == EXPT_RUN_QUEUED) {
			if (!find_by_label(c, r->run_id, found, sizeof(found)))
				continue;
			ref = found;
		}
		if (inspect(c, ref, &j, &status, err))
			continue;
		if (!j && status == 404 && find_by_label(c, r->run_id, found, sizeof(found)) &&
		    strcmp(found, ref) && inspect(c, (ref = found), &j, &status, err))
			continue;
		st = json_object_get(j, "State");
		if (!j && status == 404) {
			out[i].phase = EXPT_OBS_GONE;
			snprintf(out[i].message, sizeof(out[i].message),
				 "the engine no longer knows its container %s, and no expt process "
				 "saw it end",
				 ref);
		} else if (json_is_true(json_object_get(st, "Running"))) {
			out[i].phase = EXPT_OBS_RUNNING;
			if (r->log_dir)
				harvest(c, r->log_dir, r->attempt > 0 ? r->attempt : 1, 0);
		} else if (j) {
			const char *s = json_string_value(json_object_get(st, "Status"));
			if (s && !strcmp(s, "created")) {
				out[i].phase = EXPT_OBS_PENDING;
				json_decref(j);
				continue;
			}
			observed_from_state(st, 0, &out[i]);
			out[i].final = 1;
			out[i].start_ms =
			    rfc3339_ms(json_string_value(json_object_get(st, "StartedAt")));
			out[i].end_ms =
			    rfc3339_ms(json_string_value(json_object_get(st, "FinishedAt")));
			if (r->node)
				snprintf(out[i].node, sizeof(out[i].node), "%s", r->node);
			settle(c, r, ref, st, out[i].exit_code == 0 && !out[i].oom);
		}
		json_decref(j);
	}
	expt_err_clear(err);
	return 0;
}

/* The log stream: local's over the run's files; for a run no expt process supervises, the
 * files are completed from the engine's log first (and every half second when following). */
struct clogs {
	void *local;
	struct ctr *c;
	char *log_dir;
	int attempt;
	int64_t next;
};

static int ctr_logs_open(void *state, const struct expt_run_rec *run,
			 const struct expt_logs_opts *o, void **stream, struct expt_err *err)
{
	struct ctr *c = state;
	struct clogs *l = expt_xcalloc(1, sizeof(*l));
	int rc;

	if (run->status == EXPT_RUN_RUNNING && run->supervisor_pid <= 0 && run->log_dir &&
	    run->backend_ref) {
		l->c = c;
		l->log_dir = expt_xstrdup(run->log_dir);
		l->attempt = run->attempt;
		harvest(c, l->log_dir, l->attempt, 0);
		l->next = expt_mono_ms() + 500;
	}
	if ((rc = expt_local_logs_open(state, run, o, &l->local, err))) {
		free(l->log_dir);
		free(l);
		return rc;
	}
	*stream = l;
	return 0;
}

static int ctr_logs_read(void *stream, int run_ended, expt_line_fn fn, void *payload, int *ended,
			 struct expt_err *err)
{
	struct clogs *l = stream;

	if (l->c && expt_mono_ms() >= l->next) {
		harvest(l->c, l->log_dir, l->attempt, run_ended);
		l->next = expt_mono_ms() + 500;
	}
	return expt_local_logs_read(l->local, run_ended, fn, payload, ended, err);
}

static void ctr_logs_close(void *stream)
{
	struct clogs *l = stream;

	if (!l)
		return;
	expt_local_logs_close(l->local);
	free(l->log_dir);
	free(l);
}

/* Lets go of the submitted jobs once all have started: the engine keeps their containers. */
static int ctr_detach(void *state, struct expt_err *err)
{
	struct ctr *c = state;

	(void)err;
	if (c->sched && !expt_sched_all_started(c->sched))
		return 0;
	if (c->sched) {
		c->letting_go = 1;
		expt_sched_let_go(c->sched);
		c->letting_go = 0;
		teardown(c);
	}
	return 1;
}

static int ctr_diagnose(void *state, const struct expt_run_rec *r, size_t nlines,
			struct expt_diagnosis *d, struct expt_err *err)
{
	struct ctr *c = state;
	const char *msg = r->message ? r->message : "";
	const char *reason = r->reason ? r->reason : "";
	int rc = expt_local_diagnose(state, r, nlines, d, err);
	json_t *j = NULL;
	long status = 0;

	if (rc)
		return rc;
	if (r->status == EXPT_RUN_RUNNING)
		snprintf(d->cause, sizeof(d->cause), "still running (%s)",
			 r->backend_ref ? r->backend_ref : "container");
	if (!strcmp(reason, "oom"))
		snprintf(
		    d->hint, sizeof(d->hint),
		    "the engine killed the container at its memory limit: raise "
		    "resources.memory (e.g. 'expt run resources.memory=4Gi') or use less memory");
	else if (!strcmp(reason, "error") && strstr(msg, "already exists"))
		snprintf(d->hint, sizeof(d->hint),
			 "a container with the run's name is left on the engine (a kept container "
			 "of a store that was deleted?): remove it ('docker rm' / 'podman rm' it), "
			 "then 'expt retry %s'",
			 r->run_id);
	else if (!strcmp(reason, "error") && strstr(msg, "image"))
		snprintf(d->hint, sizeof(d->hint),
			 "check 'image' in the spec: the engine must have it or be able to pull it "
			 "(docker pull / podman pull it by hand to see why)");
	else if (!strcmp(reason, "error"))
		snprintf(d->hint, sizeof(d->hint),
			 "check 'image', 'command' and the mounts in the spec; the engine's own "
			 "message is above");
	/* What the engine still knows about it (a kept or running container). */
	if (r->backend_ref && !connect_engine(c, err) && !inspect(c, ref_id(r), &j, &status, err) &&
	    j) {
		json_t *st = json_object_get(j, "State");
		const char *s = json_string_value(json_object_get(st, "Status"));
		const char *e = json_string_value(json_object_get(st, "Error"));
		expt_strv_pushf(&d->evidence, "container: %s %s", ref_id(r), s ? s : "?");
		expt_strv_pushf(&d->evidence, "exit code: %lld, OOMKilled: %s",
				(long long)json_integer_value(json_object_get(st, "ExitCode")),
				json_is_true(json_object_get(st, "OOMKilled")) ? "true" : "false");
		if (e && *e)
			expt_strv_pushf(&d->evidence, "engine error: %s", e);
	} else if (r->log_dir) {
		/* Removed already: what the engine said when it ended, kept beside the logs. */
		json_t *aj = att_load(r->log_dir, r->attempt > 0 ? r->attempt : 1);
		json_t *st = json_object_get(aj, "State");
		if (st) {
			const char *e = json_string_value(json_object_get(st, "Error"));
			expt_strv_pushf(&d->evidence, "container: %.12s (removed) ended %s",
					json_string_value(json_object_get(aj, "id")),
					json_string_value(json_object_get(st, "FinishedAt"))
					    ? json_string_value(json_object_get(st, "FinishedAt"))
					    : "?");
			expt_strv_pushf(
			    &d->evidence, "exit code: %lld, OOMKilled: %s",
			    (long long)json_integer_value(json_object_get(st, "ExitCode")),
			    json_is_true(json_object_get(st, "OOMKilled")) ? "true" : "false");
			if (e && *e)
				expt_strv_pushf(&d->evidence, "engine error: %s", e);
		}
		json_decref(aj);
	}
	json_decref(j);
	expt_err_clear(err);
	return 0;
}

static int ctr_stop(void *state, const struct expt_run_rec *run, int64_t grace_ms,
		    struct expt_err *err)
{
	struct ctr *c = state;
	struct expt_buf b = EXPT_BUF_INIT;
	char *path;
	long status = 0;
	int rc;

	if (c->sched && expt_sched_stop_job(c->sched, run->run_id))
		return 0;
	/* Queued in another expt process: its supervisor sees the stop in the store and never
	 * starts it. Running there: the engine stops the container, and that supervisor sees it
	 * end. */
	if (run->status != EXPT_RUN_RUNNING || !run->backend_ref)
		return 0;
	if ((rc = connect_engine(c, err)))
		return rc;
	path = expt_xasprintf("/containers/%s/stop?t=%lld", ref_id(run),
			      (long long)(grace_ms > 0 ? (grace_ms + 999) / 1000 : 0));
	rc = expt_docker_call(c->d, "POST", path, NULL, grace_ms + 30000, &status, &b, err);
	if (!rc && status != 204 && status != 304 && status != 404) {
		char em[512];
		expt_docker_errmsg(&b, em, sizeof(em));
		rc = expt_err_set(err, EXPT_EBACKEND, "cannot stop container %s: %s", ref_id(run),
				  em);
	}
	if (!rc && run->supervisor_pid <= 0) {
		/* No supervisor will see it end: settled here, as a read command would. */
		json_t *j = NULL;
		if (!inspect(c, ref_id(run), &j, &status, err) && j &&
		    !json_is_true(json_object_get(json_object_get(j, "State"), "Running")))
			settle(c, run, ref_id(run), json_object_get(j, "State"), 0);
		json_decref(j);
		expt_err_clear(err);
	}
	free(path);
	expt_buf_release(&b);
	return rc;
}

static int ctr_remove(void *state, const struct expt_run_rec *run, struct expt_err *err)
{
	struct ctr *c = state;
	struct expt_err e = EXPT_ERR_INIT;

	/* A kept container goes with its run; no engine is no reason to keep the run's files. */
	if (run->backend_ref && !connect_engine(c, &e))
		remove_container(c, ref_id(run));
	return expt_local_remove(state, run, err);
}

const struct expt_backend_ops expt_backend_container = {
    .name = "container",
    .caps = EXPT_BACKEND_DETACHED,
    .open = ctr_open,
    .close = ctr_close,
    .contract = ctr_contract,
    .render = ctr_render,
    .submit = ctr_submit,
    .watch = ctr_watch,
    .poll = ctr_poll,
    .logs_open = ctr_logs_open,
    .logs_read = ctr_logs_read,
    .logs_close = ctr_logs_close,
    .diagnose = ctr_diagnose,
    .stop = ctr_stop,
    .remove = ctr_remove,
    .detach = ctr_detach,
};
