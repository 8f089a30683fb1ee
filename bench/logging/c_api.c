/* Logging benchmark through the C API: points per second from the first log call until
 * expt_run_finish returns, i.e. until every point is committed to the sinks (the store by
 * default). Usage: c_api [-s SINKS] [-n POINTS] [-k KEYS] [-m single|batch] DIR
 * Prints one line: "<mode> <sinks> <points> <seconds> <points/s>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "expt.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	const char *sinks = "store", *mode = "single";
	long points = 5000000, nkeys = 10;
	char **keys;
	double *vals, t0, t1;
	expt_run *run;
	int c;

	while ((c = getopt(argc, argv, "s:n:k:m:")) != -1) {
		switch (c) {
		case 's':
			sinks = optarg;
			break;
		case 'n':
			points = strtol(optarg, NULL, 10);
			break;
		case 'k':
			nkeys = strtol(optarg, NULL, 10);
			break;
		case 'm':
			mode = optarg;
			break;
		default:
			fprintf(stderr,
				"usage: c_api [-s SINKS] [-n POINTS] [-k KEYS] [-m single|batch] "
				"DIR\n");
			return 2;
		}
	}
	if (optind != argc - 1 || nkeys < 1 || points < nkeys || chdir(argv[optind])) {
		fprintf(stderr, "c_api: bad arguments or directory\n");
		return 2;
	}
	keys = calloc((size_t)nkeys, sizeof(char *));
	vals = calloc((size_t)nkeys, sizeof(double));
	for (long k = 0; k < nkeys; k++) {
		keys[k] = malloc(32);
		snprintf(keys[k], 32, "metric_%ld", k);
	}
	o.sinks = sinks;
	o.experiment = "bench";
	if (expt_run_open(&run, &o, &e)) {
		fprintf(stderr, "c_api: %s\n", e.message);
		return 1;
	}
	t0 = now();
	if (!strcmp(mode, "batch")) {
		/* One call per step with every key. */
		for (long step = 0; step < points / nkeys; step++) {
			for (long k = 0; k < nkeys; k++)
				vals[k] = (double)(step * nkeys + k) * 0.001;
			expt_log_metrics(run, (size_t)nkeys, (const char *const *)keys, vals, step,
					 0);
		}
	} else {
		/* One call per point. */
		for (long step = 0; step < points / nkeys; step++)
			for (long k = 0; k < nkeys; k++)
				expt_log_metric(run, keys[k], (double)(step * nkeys + k) * 0.001,
						step);
	}
	if (expt_run_finish(run, NULL, &e)) {
		fprintf(stderr, "c_api: %s\n", e.message);
		return 1;
	}
	t1 = now();
	points = points / nkeys * nkeys;
	printf("%s %s %ld %.3f %.0f\n", mode, sinks, points, t1 - t0, (double)points / (t1 - t0));
	for (long k = 0; k < nkeys; k++)
		free(keys[k]);
	free(keys);
	free(vals);
	return 0;
}
