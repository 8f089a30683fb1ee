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
	char *path;
	int fd;
	struct expt_buf partial;
	int done; /* the run has ended (then EOF means the end) */
};

struct follower {
	struct source *v;
	size_t n, cap;
	const char *file; /* output.log, stdout.log or stderr.log */
	int prefix, color;
	enum cli_output fmt; /* text, or json/yaml: one record per line, as it comes */
	int64_t tail;
};

static struct source *find(struct follower *fw, const char *run_id)
{
	for (size_t i = 0; i < fw->n; i++)
		if (!strcmp(fw->v[i].run_id, run_id))
			return &fw->v[i];
	return NULL;
}

static void emit_line(struct follower *fw, struct source *s, const char *line, size_t len)
{
	if (fw->fmt == CLI_OUT_JSON || fw->fmt == CLI_OUT_YAML) {
		char *text = expt_xstrndup(line, len);
		json_t *o = json_object(), *t = cli_json_text(text);
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
		free(text);
		json_decref(o);
		return;
	}
	if (fw->prefix)
		printf("%s%s%s | ", cli_run_color(s->run_id, fw->color), s->run_id,
		       CLI_RESET(fw->color));
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
}

/* Reads what is new in s; prints complete lines (and the rest when the run is done). */
static void drain(struct follower *fw, struct source *s)
{
	char chunk[65536];

	if (s->fd < 0) {
		s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0)
			return;
		if (fw->tail >= 0) {
			/* Skip to the last N lines: count newlines backwards. */
			off_t end = lseek(s->fd, 0, SEEK_END), pos = end;
			int64_t lines = 0;
			if (fw->tail == 0)
				goto found; /* nothing old: only what comes next */
			while (pos > 0 && lines < fw->tail) {
				off_t from =
				    pos > (off_t)sizeof(chunk) ? pos - (off_t)sizeof(chunk) : 0;
				ssize_t r = pread(s->fd, chunk, (size_t)(pos - from), from);
				if (r <= 0)
					break;
				for (ssize_t i = r - 1; i >= 0; i--) {
					/* The N-th newline before the end (not counting
					 * the last byte's) starts the last N lines. */
					if (chunk[i] == '\n' && !(from + i == end - 1) &&
					    ++lines == fw->tail) {
						pos = from + i + 1;
						goto found;
					}
				}
				pos = from;
			}
			pos = 0;
		found:
			lseek(s->fd, pos, SEEK_SET);
		}
	}
	for (;;) {
		ssize_t r = read(s->fd, chunk, sizeof(chunk));
		const char *p, *nl;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		expt_buf_add(&s->partial, chunk, (size_t)r);
		p = s->partial.buf;
		while ((nl = memchr(p, '\n', s->partial.len - (size_t)(p - s->partial.buf)))) {
			emit_line(fw, s, p, (size_t)(nl - p));
			p = nl + 1;
		}
		{
			size_t rest = s->partial.len - (size_t)(p - s->partial.buf);
			memmove(s->partial.buf, p, rest);
			expt_buf_setlen(&s->partial, rest);
		}
	}
	if (s->done && s->partial.len) {
		emit_line(fw, s, s->partial.buf, s->partial.len);
		expt_buf_reset(&s->partial);
	}
	fflush(stdout);
}

static void add_runs(struct follower *fw, const struct expt_run_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct source *s = find(fw, l->v[i].run_id);
		if (!s) {
			EXPT_ALLOC_GROW(fw->v, fw->n + 1, fw->cap);
			s = &fw->v[fw->n++];
			memset(s, 0, sizeof(*s));
			s->run_id = expt_xstrdup(l->v[i].run_id);
			s->path = expt_xasprintf(
			    "%s/%s", l->v[i].log_dir ? l->v[i].log_dir : "/nonexistent", fw->file);
			s->fd = -1;
			expt_buf_init(&s->partial, 0);
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
	fw.file = "output.log";
	fw.tail = -1;
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
			fw.file = "stderr.log";
			break;
		case 'O':
			fw.file = "stdout.log";
			break;
		case 'P':
			no_prefix = 1;
			break;
		case 'n':
			if (expt_parse_i64(optarg, &fw.tail) || fw.tail < 0)
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
	if ((rc = cli_resolve_runs(ctx, ref, 0, &l, &is_run)))
		goto out;
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
	for (;;) {
		int all_done = 1;
		for (size_t i = 0; i < fw.n; i++) {
			drain(&fw, &fw.v[i]);
			if (!fw.v[i].done)
				all_done = 0;
		}
		if (!follow || all_done || interrupted)
			break;
		poll(NULL, 0, 200);
		/* Refresh states (and pick up new runs of the experiment). */
		expt_run_list_release(&l);
		if ((rc = cli_resolve_runs(ctx, ref, 0, &l, NULL)))
			goto out;
		add_runs(&fw, &l);
	}
	/* A last pass so that lines written just before the end are not lost. */
	for (size_t i = 0; i < fw.n; i++)
		drain(&fw, &fw.v[i]);
out:
	for (size_t i = 0; i < fw.n; i++) {
		if (fw.v[i].fd >= 0)
			close(fw.v[i].fd);
		free(fw.v[i].run_id);
		free(fw.v[i].path);
		expt_buf_release(&fw.v[i].partial);
	}
	free(fw.v);
	expt_run_list_release(&l);
	return rc;
}
