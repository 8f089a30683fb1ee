/* expt logs: the output of every run of an experiment (or one run) in one stream. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli.h"
#include "output.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt logs EXPERIMENT|RUN [options]\n"
    "\n"
    "Prints the output (stdout and stderr, in the order they came) of a run, or of every\n"
    "run of an experiment with each line prefixed by its run id (colored on a terminal).\n"
    "\n"
    "Options:\n"
    "  -f, --follow          keep printing new lines until every run has ended\n"
    "                        (runs started later in the experiment are picked up)\n"
    "      --stderr          only stderr\n"
    "      --stdout          only stdout\n"
    "  -n, --tail N          start with the last N lines of each run\n"
    "      --no-prefix       do not prefix lines with the run id\n"
    "  -o, --output FORMAT   text (default); json: one {\"run\", \"line\"} object per line\n"
    "                        (JSON Lines, also with -f); yaml: one list item per line\n"
    "  -h, --help            this help\n";

static int cmd_logs(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_logs = {"logs", "print or follow the output of runs", usage,
				     CLI_NEED_STORE, cmd_logs};

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct source {
	char *run_id;
	struct expt_backend *be; /* borrowed from the follower */
	void *stream;		 /* the backend's log stream, NULL until opened */
	int done;		 /* the run has ended (then the stream's end is the end) */
	int ended;		 /* nothing more can come */
};

struct follower {
	struct source *v;
	size_t n, cap;
	struct expt_backend bes[8]; /* one handle per backend the runs use */
	size_t nbes;
	struct expt_logs_opts opts;
	int prefix, color;
	enum cli_output fmt; /* text, or json/yaml: one record per line, as it comes */
	struct cli_ctx *ctx;
	struct source *cur; /* the source whose lines are being emitted */
};

static struct source *find(struct follower *fw, const char *run_id)
{
	for (size_t i = 0; i < fw->n; i++)
		if (!strcmp(fw->v[i].run_id, run_id))
			return &fw->v[i];
	return NULL;
}

static void emit_line(const char *line, size_t len, int64_t offset, void *payload)
{
	struct follower *fw = payload;
	struct source *s = fw->cur;

	(void)offset;
	if (fw->fmt == CLI_OUT_JSON || fw->fmt == CLI_OUT_YAML) {
		json_t *o = json_object(), *t = cli_json_text(line);
		char *j;

		json_object_set_new(o, "run", json_string(s->run_id));
		json_object_set_new(o, "line", t);
		j = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (fw->fmt == CLI_OUT_JSON) {
			printf("%s\n", j ? j : "{}");
		} else {
			/* A YAML list, one item per line; flow mappings are valid YAML. */
			printf("- %s\n", j ? j : "{}");
		}
		free(j);
		json_decref(o);
		return;
	}
	if (fw->prefix)
		printf("%s%s%s | ", cli_run_color(s->run_id, fw->color), s->run_id,
		       CLI_RESET(fw->color));
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
}

/* Prints what is new in s (and the rest once the run is done). */
static void drain(struct follower *fw, struct source *s)
{
	struct expt_err e = EXPT_ERR_INIT;

	if (s->ended || !s->be)
		return;
	fw->cur = s;
	if (!s->stream)
		return;
	s->be->ops->logs_read(s->stream, s->done, emit_line, fw, &s->ended, &e);
	fflush(stdout);
}

/* The handle of the backend a run belongs to, opened on first use. */
static struct expt_backend *backend_for(struct follower *fw, const struct expt_run_rec *r)
{
	struct expt_backend_conf conf = {r->spec_json, fw->ctx->db_path, NULL, 0, NULL, NULL};
	struct expt_err e = EXPT_ERR_INIT;
	const char *name = r->backend ? r->backend : "local";

	for (size_t i = 0; i < fw->nbes; i++)
		if (!strcmp(fw->bes[i].ops->name, name))
			return &fw->bes[i];
	if (fw->nbes == sizeof(fw->bes) / sizeof(fw->bes[0]) ||
	    expt_backend_open(&fw->bes[fw->nbes], name, &conf, &e)) {
		char msg[1400];
		expt_err_format(&e, msg, sizeof(msg));
		fprintf(stderr, "expt logs: %s: %s\n", r->run_id, msg);
		return NULL;
	}
	return &fw->bes[fw->nbes++];
}

static void add_runs(struct follower *fw, const struct expt_run_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct source *s = find(fw, l->v[i].run_id);
		if (!s) {
			struct expt_err e = EXPT_ERR_INIT;
			EXPT_ALLOC_GROW(fw->v, fw->n + 1, fw->cap);
			s = &fw->v[fw->n++];
			memset(s, 0, sizeof(*s));
			s->run_id = expt_xstrdup(l->v[i].run_id);
			s->be = backend_for(fw, &l->v[i]);
			if (s->be && s->be->ops->logs_open(s->be->state, &l->v[i], &fw->opts,
							   &s->stream, &e)) {
				char msg[1400];
				expt_err_format(&e, msg, sizeof(msg));
				fprintf(stderr, "expt logs: %s: %s\n", s->run_id, msg);
				s->be = NULL;
			}
		}
		s->done = expt_run_status_done(l->v[i].status);
	}
}

static int cmd_logs(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"follow", no_argument, NULL, 'f'},	   {"stderr", no_argument, NULL, 'E'},
	    {"stdout", no_argument, NULL, 'O'},	   {"tail", required_argument, NULL, 'n'},
	    {"no-prefix", no_argument, NULL, 'P'}, {NULL, 0, NULL, 0},
	};
	struct follower fw;
	struct expt_run_list l = {0};
	int follow = 0, no_prefix = 0, is_run = 0, c, rc;
	const char *ref;

	memset(&fw, 0, sizeof(fw));
	fw.ctx = ctx;
	fw.opts.which = 0;
	fw.opts.tail = -1;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":fn:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			if ((rc = cli_opt_output(ctx, &cli_cmd_logs, optarg, &fw.fmt, 0)))
				return rc;
			break;
		case 'f':
			follow = 1;
			break;
		case 'E':
			fw.opts.which = 2;
			break;
		case 'O':
			fw.opts.which = 1;
			break;
		case 'P':
			no_prefix = 1;
			break;
		case 'n':
			if (expt_parse_i64(optarg, &fw.opts.tail) || fw.opts.tail < 0)
				return cli_usage_error(ctx, &cli_cmd_logs,
						       "--tail needs a number, got '%s'", optarg);
			break;
		default:
			return cli_bad_option(ctx, &cli_cmd_logs, c, argv);
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(ctx, &cli_cmd_logs, "expected one experiment or run");
	ref = argv[optind];
	if ((rc = cli_resolve_runs(ctx, ref, 1, &l, &is_run)))
		goto out;
	fw.opts.follow = follow;
	fw.prefix = !no_prefix && !is_run;
	fw.color = ctx->color_out;
	add_runs(&fw, &l);
	signal(SIGPIPE, SIG_DFL);
	if (follow) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_int;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for (unsigned turn = 1;; turn++) {
		int all_done = 1;
		for (size_t i = 0; i < fw.n; i++) {
			drain(&fw, &fw.v[i]);
			if (!fw.v[i].done || (fw.v[i].be && !fw.v[i].ended))
				all_done = 0;
		}
		if (!follow || all_done || interrupted)
			break;
		poll(NULL, 0, 200);
		/* Refresh states (and pick up new runs of the experiment) every second: runs no
		 * expt process follows are asked of their engine, which is not free. */
		if (turn % 5)
			continue;
		expt_run_list_release(&l);
		if ((rc = cli_resolve_runs(ctx, ref, 0, &l, NULL)))
			goto out;
		add_runs(&fw, &l);
	}
	/* A last pass so that lines written just before the end are not lost. */
	for (size_t i = 0; i < fw.n; i++)
		drain(&fw, &fw.v[i]);
	/* What no supervisor fed into the store of the ended runs' output, it gets now. */
	expt_run_list_release(&l);
	if (!cli_resolve_runs(ctx, ref, 1, &l, NULL))
		for (size_t i = 0; i < l.n; i++)
			cli_catch_up_output(ctx, &l.v[i]);
	else
		expt_err_clear(&ctx->err);
out:
	for (size_t i = 0; i < fw.n; i++) {
		if (fw.v[i].be)
			fw.v[i].be->ops->logs_close(fw.v[i].stream);
		free(fw.v[i].run_id);
	}
	for (size_t i = 0; i < fw.nbes; i++)
		expt_backend_close(&fw.bes[i]);
	free(fw.v);
	expt_run_list_release(&l);
	return rc;
}
