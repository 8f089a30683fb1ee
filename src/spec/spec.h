/* The experiment spec: expt.yaml (+ variant + command-line overrides) → typed struct expt_spec,
 * validated with file:line:col diagnostics, and its sweep expanded into run plans.
 * Owner: spec/. Everything returned is owned by the struct expt_spec it came from. */
#ifndef EXPT_SPEC_SPEC_H
#define EXPT_SPEC_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "../util/diag.h"
#include "../util/err.h"
#include "../util/strv.h"
#include "../util/yaml.h"

struct expt_param {
	char *name;
	struct expt_value value;
};

/* Ordered (spec order, then overrides in command-line order). */
struct expt_params {
	struct expt_param *v;
	size_t n, cap;
};

struct expt_kv {
	char *key, *value;
};

struct expt_kvs {
	struct expt_kv *v;
	size_t n, cap;
};

/* inputs/outputs entries: {name: {mount: /data, from|to: URL, readonly: bool}} */
struct expt_mount {
	char *name;
	char *mount; /* path inside the run (container/pod); for local, exposed as env */
	char *url;   /* "/abs/path" or "./rel" (hostPath), nfs://, pvc://, s3:// */
	int readonly;
};

struct expt_mounts {
	struct expt_mount *v;
	size_t n, cap;
};

/* One run of an expanded sweep. */
struct expt_run_plan {
	size_t index;		   /* 0-based position in the sweep */
	struct expt_params params; /* complete: spec params with this trial's values merged in */
};

struct expt_spec {
	char *path;    /* the spec file as given (for messages) */
	char *dir;     /* absolute directory of the spec file: the project dir and runs' cwd */
	char *name;    /* experiment name, DNS-1123 label */
	char *variant; /* chosen variant, NULL for the base */
	char *image;   /* NULL if unset */
	struct expt_strv command; /* argv from `command:` (string split shell-like, or a list) */
	int shell;		  /* run `command` through /bin/sh -c */
	char *args;		  /* "auto" (default), "none", or a template with {param} */
	struct expt_params params;
	int parallel; /* >= 1, default 1 */
	struct {
		int64_t cpu_milli;    /* 0 = unset */
		int64_t memory_bytes; /* 0 = unset */
		int gpu;	      /* 0 = none */
	} resources;
	struct expt_mounts inputs, outputs;
	struct expt_kvs env;	  /* spec order */
	struct expt_strv secrets; /* Kubernetes Secret names */
	struct expt_kvs files;	  /* path in run → local path */
	int retries;		  /* extra attempts after a failure, default 0 */
	int64_t timeout_ms;	  /* 0 = none */
	char *on_conflict;	  /* fail | replace | new-id */
	int64_t cleanup_failed_ms, cleanup_succeeded_ms; /* -1 = keep */
	char *backend; /* local (default) | container | kubernetes */
	struct {
		char *uri; /* NULL = embedded store only */
		int tensorboard;
		char *metrics_prefix;	/* stdout capture prefix, default "expt:" */
		struct expt_strv sinks; /* store, console, jsonl, tensorboard, mlflow */
	} tracking;
	struct {
		char *context, *namespace_, *service_account;
		struct expt_kvs node_selector;
		char *tolerations_json;	 /* "[]" when unset */
		char *image_pull_policy; /* Always | IfNotPresent | Never; NULL = the cluster's */
		char *priority_class;	 /* PriorityClass name, NULL = none */
		struct expt_kvs labels, annotations; /* added to every Job and its pods */
		char *pod_template_json;  /* deep-merged over the generated pod template; NULL */
		char *queue;		  /* Kueue LocalQueue (label kueue.x-k8s.io/queue-name) */
		int64_t start_timeout_ms; /* a Job with no running pod by then fails; 0 = never */
		int max_in_flight; /* unfinished expt Jobs in the namespace, all experiments; 0 =
				      no cap */
	} kubernetes;
	/* The sweep, expanded (grid product, trials list, or random samples); at least one run. */
	struct expt_run_plan *runs;
	size_t nruns;
	char *resolved_json; /* the whole resolved spec (after variant and overrides) as JSON */
	/* Added after the first cut (appended, so existing users are unaffected): */
	char *
	    command_line; /* `command:` as written (a list joined by spaces); shell: true runs it */
	struct expt_strv param_names; /* every param a run can have: spec params, then swept ones */
	/* Where a run runs: "project" (the spec's directory, default), "snapshot" (its own copy
	 * of the project's files, taken when `expt run` starts), "output" (its output dir). */
	char *workdir;
	struct {
		struct expt_strv exclude; /* globs of project paths left out of a snapshot */
		int64_t max_bytes;	  /* a bigger snapshot is refused; default 512Mi */
	} snapshot;
	struct {
		struct expt_kvs ulimits; /* name -> "N" or "SOFT:HARD" (validated) */
		char *network;		 /* HostConfig.NetworkMode; NULL = the engine's default */
		int keep;		 /* keep finished containers (default: removed) */
		char *pull;		 /* missing (default) | always | never */
		char *engine;		 /* auto (default) | docker | podman */
		char *code;		 /* mount (default) | image */
		char *user;		 /* "UID[:GID]" or a name; NULL = the invoking uid:gid */
	} container;
	/* build: how `expt build` makes the image (docs/spec.md, docs/images.md). set is 0 when
	 * the section is absent; a string `build: DIR` is {context: DIR, dockerfile: Dockerfile}.
	 */
	struct {
		int set;
		char *base;	   /* image the code layer goes on; NULL with dockerfile */
		char *context;	   /* directory, relative to the spec's; default "." */
		char *context_abs; /* context made absolute against dir */
		struct expt_strv include, exclude; /* globs of context paths */
		char *workdir;			   /* absolute, in the image; default /app */
		struct expt_kvs env;		   /* spec order */
		struct expt_strv entrypoint;	   /* argv; empty = the base image's */
		int entrypoint_set;
		char *platform;	  /* os/arch[/variant]; NULL = linux/<this machine's arch> */
		char *repository; /* host/path the image is pushed to, no tag */
		int insecure;	  /* plain HTTP, or TLS without verification */
		char *dockerfile; /* relative to context; NULL = the fast path */
		int line, col;	  /* where build: is, for errors found later */
	} build;
};

/* One problem found while loading; all are collected before failing. */
struct expt_spec_opts {
	const char *path;	      /* spec file; NULL = "expt.yaml" in the current directory */
	const char *variant;	      /* NULL = base */
	const char *const *overrides; /* "key=value" / "key=a,b,c" from the command line */
	size_t noverrides;
	const char *text; /* the spec itself (len bytes), read instead of path; path still
			     names it in messages and gives the run's directory */
	size_t len;
};

/* Loads, merges (variant, overrides), validates and expands. On success returns 0 and *out
 * (free with expt_spec_free). On bad input returns EXPT_EUSAGE with every problem in diags
 * (caller releases with expt_diags_release) and err summarising; other failures (file missing)
 * return their code in err. */
int expt_spec_load(struct expt_spec **out, const struct expt_spec_opts *opts,
		   struct expt_diags *diags, struct expt_err *err);
void expt_spec_free(struct expt_spec *spec); /* NULL is a no-op */

/* The run contract (DESIGN.md §1). argv: per `args` (auto → --key value; template with {param},
 * {run_id}, {output_dir}); with shell: true, argv is {"/bin/sh", "-c", "<command + args>"}. */
int expt_spec_run_argv(const struct expt_spec *spec, const struct expt_params *params,
		       const char *run_id, const char *output_dir, struct expt_strv *argv,
		       struct expt_err *err);
/* Appends "KEY=VALUE" entries for the run: spec env, EXPT_PARAM_<NAME> (upper-cased, non
 * alphanumerics → _), EXPT_RUN_ID, EXPT_EXPERIMENT, EXPT_OUTPUT_DIR, EXPT_PARAMS_FILE. */
void expt_spec_run_env(const struct expt_spec *spec, const struct expt_params *params,
		       const char *run_id, const char *output_dir, const char *params_file,
		       struct expt_strv *env);
/* The same, with the paths where the run finds its inputs and outputs on its backend: io holds
 * "inputs.NAME=path" / "outputs.NAME=path" entries (NULL, or a name missing from it: the spec's
 * mount path, as in a container). {inputs.NAME} / {outputs.NAME} in an args template and
 * EXPT_INPUT_<NAME> / EXPT_OUTPUT_<NAME> (upper-cased, '-' as '_') in the env take them. */
int expt_spec_run_argv_at(const struct expt_spec *spec, const struct expt_params *params,
			  const char *run_id, const char *output_dir, const struct expt_strv *io,
			  struct expt_strv *argv, struct expt_err *err);
void expt_spec_run_env_at(const struct expt_spec *spec, const struct expt_params *params,
			  const char *run_id, const char *output_dir, const char *params_file,
			  const struct expt_strv *io, struct expt_strv *env);
/* The path of "inputs.NAME" or "outputs.NAME" per io (see above); NULL when not declared. */
const char *expt_spec_io_path(const struct expt_spec *spec, const struct expt_strv *io,
			      const char *name);
/* {"lr": 0.01, "optimizer": "adam"} with JSON types from the value types; caller frees. */
char *expt_params_json(const struct expt_params *params);
const struct expt_value *expt_params_get(const struct expt_params *params, const char *name);
/* Sets name to a copy of (type, text): replaced in place when present, else appended. */
void expt_params_set(struct expt_params *params, const char *name, enum expt_vtype type,
		     const char *text);
/* Sets copies of every param of src in dst (as expt_params_set does). */
void expt_params_copy(struct expt_params *dst, const struct expt_params *src);
void expt_params_release(struct expt_params *params);

/* Is s an experiment name: letters, digits, '_', '.' and '-', starting with a letter or digit, at
 * most EXPT_NAME_MAX bytes (tf_mnist_summ, ResNet50.v2)? The names engines need (run ids,
 * container names, Kubernetes objects) are derived from it in one place, collision-safe:
 * expt_store_run_id_prefix. */
#define EXPT_NAME_MAX 128
int expt_experiment_name_ok(const char *s);
/* A container.ulimits value, "N" or "SOFT:HARD": 0, or -1 when malformed or SOFT > HARD. */
int expt_spec_ulimit_parse(const char *text, int64_t *soft, int64_t *hard);

/* Is s a DNS-1123 label (lowercase alnum and '-', starts/ends alnum, <= 63)? */
int expt_dns_label_ok(const char *s);

#endif
