/* expt plot EXPT METRIC: the curves of a sweep in the terminal (Unicode braille, a colour per run,
 * a legend), so that "which run learns best" needs no other tool. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt plot EXPERIMENT|RUN... METRIC [options]\n"
    "\n"
    "Draws METRIC against its step for every run, one colour per run, in Unicode braille\n"
    "(2x4 dots a character), with the value range on the left and a legend below.\n"
    "\n"
    "Options:\n"
    "      --by PARAM        name each curve by this param's value (default: the run id)\n"
    "      --width N         columns of the plot area (default 60)\n"
    "      --height N        rows of the plot area (default 15)\n"
    "      --log             a logarithmic value axis (values must be > 0)\n"
    "  -h, --help            this help\n";

static int cmd_plot(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_plot = {"plot", "draw a metric's curves in the terminal", usage,
				     CLI_NEED_STORE, cmd_plot};

struct curve {
	const struct expt_run_rec *run;
	struct expt_metric_row *rows;
	size_t n;
	char label[128];
};

/* Braille: dot (x, y) of a cell, x 0..1, y 0..3 from the top. */
static const unsigned char dot_bit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

static void put_braille(unsigned bits)
{
	unsigned cp = 0x2800 + bits;
	/* U+2800..U+28FF in UTF-8: E2 A0..A3 80..BF */
	putchar((char)(0xe0 | (cp >> 12)));
	putchar((char)(0x80 | ((cp >> 6) & 0x3f)));
	putchar((char)(0x80 | (cp & 0x3f)));
}

static const char *const palette[] = {"\033[36m", "\033[35m", "\033[33m", "\033[32m",
				      "\033[34m", "\033[31m", "\033[96m", "\033[95m"};
#define NPAL (sizeof(palette) / sizeof(palette[0]))

static void label_of(struct curve *c, const char *by)
{
	json_t *p = by ? cli_json_parse(c->run->params_json) : NULL, *v = json_object_get(p, by);

	if (v) {
		char *t = expt_json_param_text(v);
		snprintf(c->label, sizeof(c->label), "%s=%s", by, t ? t : "?");
		free(t);
	} else {
		snprintf(c->label, sizeof(c->label), "%s", c->run->run_id);
	}
	json_decref(p);
}

static int cmd_plot(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"by", required_argument, NULL, 'b'},
						 {"width", required_argument, NULL, 'W'},
						 {"height", required_argument, NULL, 'H'},
						 {"log", no_argument, NULL, 'L'},
						 {NULL, 0, NULL, 0}};
	struct expt_run_list l = {0};
	struct curve *cv = NULL;
	unsigned char *bits = NULL;
	int *owner = NULL;
	const char *by = NULL, *metric;
	int64_t width = 60, height = 15;
	int c, rc = 0, logy = 0, co = ctx->color_out;
	double ymin = INFINITY, ymax = -INFINITY, xmin = INFINITY, xmax = -INFINITY;
	size_t ncurves = 0, points = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		if (c == 'b')
			by = optarg;
		else if (c == 'L')
			logy = 1;
		else if (c == 'W' || c == 'H') {
			int64_t *v = c == 'W' ? &width : &height;
			if (expt_parse_i64(optarg, v) || *v < 4 || *v > 1000)
				return cli_usage_error(
				    ctx, &cli_cmd_plot,
				    "--%s needs a number from 4 to 1000, got '%s'",
				    c == 'W' ? "width" : "height", optarg);
		} else
			return cli_bad_option(ctx, &cli_cmd_plot, c, argv);
	}
	if (argc - optind < 2)
		return cli_usage_error(ctx, &cli_cmd_plot,
				       "name an experiment (or runs) and a metric");
	metric = argv[argc - 1];
	for (int i = optind; i < argc - 1; i++)
		if ((rc = cli_resolve_runs(ctx, argv[i], 0, &l, NULL)))
			goto out;
	cv = expt_xcalloc(l.n ? l.n : 1, sizeof(*cv));
	for (size_t i = 0; i < l.n; i++) {
		struct curve *k = &cv[ncurves];
		if ((rc = expt_store_metric_history(ctx->store, l.v[i].run_id, metric, &k->rows,
						    &k->n, &ctx->err)))
			goto out;
		if (!k->n)
			continue;
		k->run = &l.v[i];
		label_of(k, by);
		for (size_t j = 0; j < k->n; j++) {
			double y = k->rows[j].value, x;
			if (!isfinite(y) || (logy && y <= 0))
				continue;
			x = k->rows[j].step >= 0 ? (double)k->rows[j].step : (double)j;
			y = logy ? log10(y) : y;
			ymin = y < ymin ? y : ymin;
			ymax = y > ymax ? y : ymax;
			xmin = x < xmin ? x : xmin;
			xmax = x > xmax ? x : xmax;
			points++;
		}
		ncurves++;
	}
	if (!points) {
		rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND, "no run of %s has points of '%s'%s",
				  argv[optind], metric, logy ? " above 0" : "");
		goto out;
	}
	if (ymax == ymin)
		ymax = ymin + 1;
	if (xmax == xmin)
		xmax = xmin + 1;
	bits = expt_xcalloc((size_t)(width * height), 1);
	owner = expt_xcalloc((size_t)(width * height), sizeof(int));
	for (size_t i = 0; i < ncurves; i++) {
		int px = -1, py = -1;
		for (size_t j = 0; j < cv[i].n; j++) {
			double y = cv[i].rows[j].value, x;
			int dx, dy, steps;
			if (!isfinite(y) || (logy && y <= 0))
				continue;
			x = cv[i].rows[j].step >= 0 ? (double)cv[i].rows[j].step : (double)j;
			y = logy ? log10(y) : y;
			dx = (int)lround((x - xmin) / (xmax - xmin) * (double)(width * 2 - 1));
			dy = (int)lround((ymax - y) / (ymax - ymin) * (double)(height * 4 - 1));
			/* A line from the previous point, dot by dot. */
			steps = px < 0			      ? 0
				: abs(dx - px) > abs(dy - py) ? abs(dx - px)
							      : abs(dy - py);
			for (int s = 0; s <= steps; s++) {
				int x1 = steps ? px + (dx - px) * s / steps : dx;
				int y1 = steps ? py + (dy - py) * s / steps : dy;
				size_t cell = (size_t)(y1 / 4) * (size_t)width + (size_t)(x1 / 2);
				bits[cell] |= dot_bit[y1 % 4][x1 % 2];
				owner[cell] = (int)i + 1;
			}
			px = dx;
			py = dy;
		}
	}
	printf("%s%s%s\n", CLI_BOLD(co), metric, CLI_RESET(co));
	for (int64_t r = 0; r < height; r++) {
		double v = ymax - (ymax - ymin) * (double)r / (double)(height - 1);
		char lab[32] = "";
		if (r == 0 || r == height - 1 || r == height / 2)
			snprintf(lab, sizeof(lab), "%.4g", logy ? pow(10, v) : v);
		printf("%10s ┤", lab);
		for (int64_t col = 0; col < width; col++) {
			size_t cell = (size_t)(r * width + col);
			if (!bits[cell]) {
				putchar(' ');
				continue;
			}
			if (co)
				fputs(palette[(owner[cell] - 1) % NPAL], stdout);
			put_braille(bits[cell]);
			if (co)
				fputs(CLI_RESET(co), stdout);
		}
		putchar('\n');
	}
	printf("%10s └", "");
	for (int64_t col = 0; col < width; col++)
		fputs("─", stdout);
	printf("\n%11s %-.6g%*s%.6g  (step)\n", "", xmin, (int)(width > 16 ? width - 12 : 4), "",
	       xmax);
	for (size_t i = 0; i < ncurves; i++) {
		const struct expt_metric_row *last = &cv[i].rows[cv[i].n - 1];
		printf("  %s━━%s %s  (last %.6g, %zu points)\n", co ? palette[i % NPAL] : "",
		       CLI_RESET(co), cv[i].label, last->value, cv[i].n);
	}
out:
	for (size_t i = 0; cv && i < l.n; i++)
		free(cv[i].rows);
	free(cv);
	free(bits);
	free(owner);
	expt_run_list_release(&l);
	return rc;
}
