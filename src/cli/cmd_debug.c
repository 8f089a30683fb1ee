/* expt debug: why a run failed — the cause, the exact command and env, the last log lines; for
 * an experiment, its failed runs grouped by cause, one example of each. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli.h"
#include "output.h"
#include "resolve.h"
#include "runview.h"
#include "util/parse.h"

static const char usage[] =
    "usage: expt debug RUN|EXPT [options]\n"
    "\n"
    "Says why a run failed: the cause (exit code, signal, out of memory, timeout, the\n"
    "command could not start, its supervisor died), what to try, the exact argv and\n"
    "environment expt gave it, its attempts, and the last lines of its stderr.\n"
    "\n"
    "Given an experiment (a sweep), groups its failed runs by cause: each cause once,\n"
    "most frequent first, with the runs it hit, what to try and the last lines of one of\n"
    "them (the newest); then how many runs succeeded, are still active, were stopped.\n"
    "\n"
    "Options:\n"
    "  -n, --lines N         how many log lines to show (default 20; 5 per cause for an\n"
    "                        experiment)\n"
    "  -o, --output FORMAT   text (default), json or yaml\n"
    "  -h, --help            this help\n";

static int cmd_debug(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_debug = {"debug", "explain why a run failed, or an experiment's runs",
				      usage, CLI_NEED_STORE, cmd_debug};

/* One run: the cause, the command, the env, the events, the last lines. */
static int debug_run(struct cli_ctx *ctx, const struct expt_run_rec *r, int64_t nlines,
		     enum cli_output fmt)
{
	struct expt_kv_rows events = {0};
	struct expt_backend be = {0};
	struct expt_backend_conf conf = {0};
	struct expt_diagnosis d;
	char *cmd = NULL;
	int rc;

	memset(&d, 0, sizeof(d));
	if ((rc = expt_store_get_events(ctx->store, r->run_id, &events, &ctx->err)))
		goto out;
	/* The engine that ran it explains it, from what it still knows and what the store
	 * kept (a cluster may have forgotten the pod). */
	conf.spec_json = r->spec_json;
	conf.db_path = ctx->db_path;
	if ((rc = expt_backend_open(&be, r->backend, &conf, &ctx->err)) ||
	    (rc = be.ops->diagnose(be.state, r, (size_t)nlines, &d, &ctx->err)))
		goto out;
	cmd = cli_argv_line(r->argv_json);
	if (fmt != CLI_OUT_TEXT) {
		json_t *o = cli_run_json(r), *ev = json_array(), *a;
		json_object_set_new(o, "cause", json_string(d.cause));
		json_object_set_new(o, "hint", d.hint[0] ? json_string(d.hint) : json_null());
		for (size_t i = 0; i < events.n; i++) {
			json_t *e = json_object();
			char t[40];
			expt_fmt_time_iso(events.times ? events.times[i] : 0, t, sizeof(t));
			json_object_set_new(e, "time", json_string(t));
			json_object_set_new(e, "kind", json_string(events.keys[i]));
			json_object_set_new(
			    e, "message", cli_json_text(events.values[i] ? events.values[i] : ""));
			json_array_append_new(ev, e);
		}
		json_object_set_new(o, "events", ev);
		a = json_array();
		for (size_t i = 0; i < d.evidence.n; i++)
			json_array_append_new(a, cli_json_text(d.evidence.v[i]));
		json_object_set_new(o, "evidence", a);
		a = json_array();
		for (size_t i = 0; i < d.stderr_tail.n; i++)
			json_array_append_new(a, cli_json_text(d.stderr_tail.v[i]));
		json_object_set_new(o, "stderr_tail", a);
		a = json_array();
		for (size_t i = 0; i < d.stdout_tail.n; i++)
			json_array_append_new(a, cli_json_text(d.stdout_tail.v[i]));
		json_object_set_new(o, "stdout_tail", a);
		cli_emit(stdout, o, fmt);
		json_decref(o);
		goto out;
	}
	{
		int co = ctx->color_out;
		const char *st = expt_run_status_name(r->status);
		json_t *env = cli_json_parse(r->env_json), *v;
		const char *k;

		printf("%s%s%s  %s%s%s\n", CLI_BOLD(co), r->run_id, CLI_RESET(co),
		       cli_status_color(st, co), st, CLI_RESET(co));
		printf("  cause    %s\n", d.cause);
		if (d.hint[0])
			printf("  hint     %s\n", d.hint);
		if (r->node)
			printf("  node     %s\n", r->node);
		if (r->exit_code >= 0 && expt_run_status_done(r->status) && !r->signal)
			printf("  exit     code %d\n", r->exit_code);
		printf("  command  %s\n", cmd);
		if (env && json_object_size(env)) {
			printf("  env     ");
			json_object_foreach(env, k, v) printf(" %s=%s", k, json_string_value(v));
			printf("\n");
		}
		json_decref(env);
		for (size_t i = 0; i < d.evidence.n; i++)
			printf("%s  %s\n", i ? "" : "\n", d.evidence.v[i]);
		if (events.n) {
			printf("\n%sevents%s\n", CLI_BOLD(co), CLI_RESET(co));
			for (size_t i = 0; i < events.n; i++) {
				char t[32];
				expt_fmt_time_local(events.times ? events.times[i] : 0, t,
						    sizeof(t));
				printf("  %s  %-8s %s\n", t, events.keys[i],
				       events.values[i] ? events.values[i] : "");
			}
		}
		if (d.stderr_tail.n) {
			printf("\n%slast %zu lines of stderr%s (%s)\n", CLI_BOLD(co),
			       d.stderr_tail.n, CLI_RESET(co), d.stderr_where);
			for (size_t i = 0; i < d.stderr_tail.n; i++)
				printf("  | %s\n", d.stderr_tail.v[i]);
		} else if (d.stderr_where[0] && nlines) {
			printf("\n%sstderr is empty%s (%s)\n", CLI_DIM(co), CLI_RESET(co),
			       d.stderr_where);
		}
		if (d.stdout_tail.n && (!d.stderr_tail.n || r->status == EXPT_RUN_FAILED)) {
			printf("\n%slast %zu lines of stdout%s (%s)\n", CLI_BOLD(co),
			       d.stdout_tail.n, CLI_RESET(co), d.stdout_where);
			for (size_t i = 0; i < d.stdout_tail.n; i++)
				printf("  | %s\n", d.stdout_tail.v[i]);
		}
	}
out:
	free(cmd);
	expt_diagnosis_release(&d);
	expt_backend_close(&be);
	expt_kv_rows_release(&events);
	return rc;
}

/* ---- an experiment: its failed runs grouped by cause ---- */

#define IDS_SHOWN 10 /* run ids a text line names before "and N more" */

/* Backend handles opened for the runs, one per backend and spec (a sweep shares one spec). */
struct handles {
	struct {
		const char *name, *spec; /* borrowed from the run list */
		struct expt_backend be;	 /* be.ops NULL: it could not be opened, err says why */
		struct expt_err err;
	} v[8];
	size_t n, next;
};

/* The slot of r's backend, opened on first use (once: a backend that cannot be opened is not
 * retried for every run). */
static size_t handle_for(struct handles *h, struct cli_ctx *ctx, const struct expt_run_rec *r)
{
	struct expt_backend_conf conf = {r->spec_json, ctx->db_path, NULL, 0, NULL, NULL};
	const char *name = r->backend ? r->backend : "local";
	size_t i;

	for (i = 0; i < h->n; i++)
		if (!strcmp(h->v[i].name, name) &&
		    (h->v[i].spec == r->spec_json ||
		     (h->v[i].spec && r->spec_json && !strcmp(h->v[i].spec, r->spec_json))))
			return i;
	if (h->n < sizeof(h->v) / sizeof(h->v[0])) {
		i = h->n++;
	} else { /* the specs of many launches: reuse the slots in turn */
		i = h->next++ % h->n;
		expt_backend_close(&h->v[i].be);
	}
	h->v[i].name = name;
	h->v[i].spec = r->spec_json;
	memset(&h->v[i].be, 0, sizeof(h->v[i].be));
	h->v[i].err = (struct expt_err)EXPT_ERR_INIT;
	if (expt_backend_open(&h->v[i].be, name, &conf, &h->v[i].err))
		memset(&h->v[i].be, 0, sizeof(h->v[i].be));
	return i;
}

static void handles_release(struct handles *h)
{
	for (size_t i = 0; i < h->n; i++)
		expt_backend_close(&h->v[i].be);
}

/* r diagnosed by its backend; a failure to ask is itself the cause, so the run still counts. */
static void diagnose(struct handles *h, struct cli_ctx *ctx, const struct expt_run_rec *r,
		     size_t nlines, struct expt_diagnosis *d)
{
	size_t i = handle_for(h, ctx, r);
	struct expt_backend *be = &h->v[i].be;
	struct expt_err e = EXPT_ERR_INIT;
	char msg[900];

	memset(d, 0, sizeof(*d));
	if (be->ops && !be->ops->diagnose(be->state, r, nlines, d, &e))
		return;
	expt_diagnosis_release(d);
	memset(d, 0, sizeof(*d));
	expt_err_format(be->ops ? &e : &h->v[i].err, msg, sizeof(msg));
	snprintf(d->cause, sizeof(d->cause), "cannot be diagnosed: %s", msg);
	snprintf(d->hint, sizeof(d->hint), "see 'expt debug %s'", r->run_id);
}

struct group {
	char key[1200];
	size_t *runs; /* indexes into the run list, oldest first */
	size_t n, cap;
};

static int by_count(const void *a, const void *b)
{
	const struct group *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return x->runs[0] < y->runs[0] ? -1 : x->runs[0] > y->runs[0]; /* first seen first */
}

/* The lines shown for a cause's example: its stderr, or its stdout where that is all there is
 * (Kubernetes merges the two). */
static const struct expt_strv *example_tail(const struct expt_diagnosis *d, const char **which,
					    const char **where)
{
	int err = d->stderr_tail.n > 0 || !d->stdout_tail.n;

	*which = err ? "stderr" : "stdout";
	*where = err ? d->stderr_where : d->stdout_where;
	return err ? &d->stderr_tail : &d->stdout_tail;
}

static int debug_experiment(struct cli_ctx *ctx, const struct expt_run_list *l, int64_t nlines,
			    enum cli_output fmt)
{
	struct handles h;
	struct group *g = NULL;
	size_t ng = 0, gcap = 0, count[EXPT_RUN_NSTATUS] = {0};
	const char *name = l->n ? l->v[0].experiment : "";
	int co = ctx->color_out;
	json_t *o = NULL, *ja = NULL;

	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < l->n; i++) {
		const struct expt_run_rec *r = &l->v[i];
		struct expt_diagnosis d;
		char key[sizeof(g->key)];
		size_t j;

		count[r->status]++;
		if (r->status != EXPT_RUN_FAILED)
			continue;
		diagnose(&h, ctx, r, 0, &d);
		expt_diagnosis_cause_key(d.cause, r, key, sizeof(key));
		expt_diagnosis_release(&d);
		for (j = 0; j < ng && strcmp(g[j].key, key); j++)
			;
		if (j == ng) {
			EXPT_ALLOC_GROW(g, ng + 1, gcap);
			memset(&g[ng], 0, sizeof(g[ng]));
			snprintf(g[ng].key, sizeof(g[ng].key), "%s", key);
			ng++;
		}
		EXPT_ALLOC_GROW(g[j].runs, g[j].n + 1, g[j].cap);
		g[j].runs[g[j].n++] = i;
	}
	if (ng)
		qsort(g, ng, sizeof(*g), by_count);

	if (fmt != CLI_OUT_TEXT) {
		o = json_object();
		json_object_set_new(o, "experiment", json_string(name));
		json_object_set_new(o, "runs", json_integer((json_int_t)l->n));
		for (int s = 0; s < EXPT_RUN_NSTATUS; s++)
			json_object_set_new(o, expt_run_status_name((enum expt_run_status)s),
					    json_integer((json_int_t)count[s]));
		ja = json_array();
		json_object_set_new(o, "groups", ja);
	} else {
		printf("%s%s%s  %zu run%s", CLI_BOLD(co), name, CLI_RESET(co), l->n,
		       l->n == 1 ? "" : "s");
		printf(" · %s%zu failed%s", cli_status_color("failed", co), count[EXPT_RUN_FAILED],
		       CLI_RESET(co));
		if (ng)
			printf(" (%zu cause%s)", ng, ng == 1 ? "" : "s");
		printf(" · %s%zu succeeded%s", cli_status_color("succeeded", co),
		       count[EXPT_RUN_SUCCEEDED], CLI_RESET(co));
		printf(" · %zu still active (%zu running, %zu queued)",
		       count[EXPT_RUN_RUNNING] + count[EXPT_RUN_PENDING] + count[EXPT_RUN_QUEUED],
		       count[EXPT_RUN_RUNNING], count[EXPT_RUN_PENDING] + count[EXPT_RUN_QUEUED]);
		if (count[EXPT_RUN_STOPPED])
			printf(" · %zu stopped", count[EXPT_RUN_STOPPED]);
		printf("\n");
		if (!ng)
			printf("\nnothing failed%s\n", count[EXPT_RUN_RUNNING] +
							       count[EXPT_RUN_PENDING] +
							       count[EXPT_RUN_QUEUED]
							   ? " (yet)"
							   : "");
	}
	for (size_t k = 0; k < ng; k++) {
		/* The newest run of the cause is its example. */
		const struct expt_run_rec *ex = &l->v[g[k].runs[g[k].n - 1]];
		const struct expt_strv *tail;
		const char *which, *where;
		struct expt_diagnosis d;

		diagnose(&h, ctx, ex, (size_t)nlines, &d);
		tail = example_tail(&d, &which, &where);
		if (fmt != CLI_OUT_TEXT) {
			json_t *e = json_object(), *ids = json_array(), *t = json_array();
			for (size_t i = 0; i < g[k].n; i++)
				json_array_append_new(ids, json_string(l->v[g[k].runs[i]].run_id));
			for (size_t i = 0; i < tail->n; i++)
				json_array_append_new(t, cli_json_text(tail->v[i]));
			json_object_set_new(e, "cause", cli_json_text(g[k].key));
			json_object_set_new(e, "count", json_integer((json_int_t)g[k].n));
			json_object_set_new(e, "runs", ids);
			json_object_set_new(e, "hint",
					    d.hint[0] ? cli_json_text(d.hint) : json_null());
			json_object_set_new(e, "example", json_string(ex->run_id));
			json_object_set_new(e, "example_cause", cli_json_text(d.cause));
			json_object_set_new(e, "tail_of", json_string(which));
			json_object_set_new(e, "tail", t);
			json_array_append_new(ja, e);
		} else {
			printf("\n%s%s%s — %zu run%s: ", CLI_BOLD(co), g[k].key, CLI_RESET(co),
			       g[k].n, g[k].n == 1 ? "" : "s");
			for (size_t i = 0; i < g[k].n && i < IDS_SHOWN; i++)
				printf("%s%s", i ? ", " : "", l->v[g[k].runs[i]].run_id);
			if (g[k].n > IDS_SHOWN)
				printf(" and %zu more", g[k].n - IDS_SHOWN);
			printf("\n");
			if (d.hint[0])
				printf("  hint  %s\n", d.hint);
			if (tail->n) {
				printf("  %slast %zu line%s of %s's %s%s (%s)\n", CLI_DIM(co),
				       tail->n, tail->n == 1 ? "" : "s", ex->run_id, which,
				       CLI_RESET(co), where);
				for (size_t i = 0; i < tail->n; i++)
					printf("  | %s\n", tail->v[i]);
			} else if (nlines && *where) {
				printf("  %s%s's %s is empty%s (%s)\n", CLI_DIM(co), ex->run_id,
				       which, CLI_RESET(co), where);
			}
		}
		expt_diagnosis_release(&d);
	}
	if (o) {
		cli_emit(stdout, o, fmt);
		json_decref(o);
	} else if (ng) {
		printf("\n%sone run in full: expt debug %s · all failed runs again: expt retry %s "
		       "--failed%s\n",
		       CLI_DIM(co), l->v[g[0].runs[g[0].n - 1]].run_id, name, CLI_RESET(co));
	}
	for (size_t k = 0; k < ng; k++)
		free(g[k].runs);
	free(g);
	handles_release(&h);
	return 0;
}

static int cmd_debug(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"lines", required_argument, NULL, 'n'},
						 {"output", required_argument, NULL, 'o'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_list l = {0};
	enum cli_output fmt = CLI_OUT_TEXT;
	int64_t nlines = -1;
	int c, rc, is_run = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:o:", longopts, NULL)) != -1) {
		if (c == 'o') {
			if ((rc = cli_opt_output(ctx, &cli_cmd_debug, optarg, &fmt, 0)))
				return rc;
		} else if (c == 'n') {
			if (expt_parse_i64(optarg, &nlines) || nlines < 0)
				return cli_usage_error(ctx, &cli_cmd_debug,
						       "--lines needs a number, got '%s'", optarg);
		} else {
			return cli_bad_option(ctx, &cli_cmd_debug, c, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, &cli_cmd_debug, "expected one run id or experiment");
	/* A run id wins over an experiment of the same name, as everywhere. */
	if ((rc = cli_resolve_runs(ctx, argv[optind], 1, &l, &is_run)))
		goto out;
	if (is_run)
		rc = debug_run(ctx, &l.v[0], nlines < 0 ? 20 : nlines, fmt);
	else
		rc = debug_experiment(ctx, &l, nlines < 0 ? 5 : nlines, fmt);
out:
	expt_run_list_release(&l);
	return rc;
}
