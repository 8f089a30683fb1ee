/* The CLI's side of MLflow: `expt run` creates each run's MLflow run before launch (so a script's
 * mlflow.start_run() attaches to it) and ends it from the real outcome; show, compare and sync
 * read and write runs on the server. Owner: cli/. */
#ifndef EXPT_CLI_MLFLOW_LINK_H
#define EXPT_CLI_MLFLOW_LINK_H

#include <jansson.h>

#include "mlflow/mlflow.h"
#include "snapshot.h"
#include "spec/spec.h"
#include "store/store.h"
#include "util/strv.h"

/* Store tags that link an expt run to its MLflow run. */
#define CLI_MLFLOW_TAG_RUN "mlflow.run_id"
#define CLI_MLFLOW_TAG_EXP "mlflow.experiment_id"
#define CLI_MLFLOW_TAG_URI "mlflow.tracking_uri"

/* One server, its experiment ids by name (a launch has one), and whether it already failed
 * (warned once; later runs do not wait on it again). Zero-initialised; release with
 * cli_mlflow_release. */
struct cli_mlflow {
	char *uri;
	struct expt_mlflow *m;
	char *exp_name, *exp_id;
	int broken;
	struct expt_err err; /* why it broke */
};
void cli_mlflow_release(struct cli_mlflow *mf);
/* Drops the connection (before fork()); the next call opens a new one. */
void cli_mlflow_disconnect(struct cli_mlflow *mf);
/* The client for uri (opened on first use). NULL with err filled. */
struct expt_mlflow *cli_mlflow_client(struct cli_mlflow *mf, const char *uri, struct expt_err *err);

/* Whether the spec sends runs to MLflow (tracking.uri set and mlflow among the sinks). */
int cli_mlflow_wanted(const struct expt_spec *spec);

/* What describes a run on the server, beside its params (read from the store). */
struct cli_mlflow_run_info {
	const char *backend, *host, *variant, *source;
	long sweep_index; /* -1: none */
	const struct cli_git *git;
};

/* "<run id>@<created ms>" (caller frees): the run's expt.run_key. */
char *cli_mlflow_run_key(const struct expt_run_rec *r);
/* Creates the MLflow run of expt run r (experiment r->experiment) with its params and tags,
 * records the link in the store (tags mlflow.run_id, mlflow.experiment_id,
 * mlflow.tracking_uri) and appends MLFLOW_TRACKING_URI, MLFLOW_RUN_ID, MLFLOW_EXPERIMENT_ID and
 * EXPT_MLFLOW_RUN_ID to env (may be NULL). *mlflow_run_id (caller frees; may be NULL) gets its id.
 * An existing run with r's expt.run_key is reused (idempotent), and EXPT_MLFLOW_RUN_KEY goes to
 * env even when the server cannot be reached, so the run's sink finds or makes the same run. */
int cli_mlflow_begin(struct cli_mlflow *mf, struct expt_store *st, const struct expt_run_rec *r,
		     const struct cli_mlflow_run_info *info, struct expt_strv *env,
		     char **mlflow_run_id, struct expt_err *err);
/* Ends an MLflow run with status (expt's name) at end_ms: mlflow_run_id, or when NULL the run
 * of the experiment tagged expt.run_key = run_key (the run's sink may have created it). */
int cli_mlflow_end(struct cli_mlflow *mf, const char *mlflow_run_id, const char *experiment,
		   const char *run_key, const char *status, int64_t end_ms, struct expt_err *err);

/* The MLflow run linked to an expt run (its store tags): *run (caller decrefs) the server's
 * {"info","data"}, *url (caller frees) the UI's address. 0 with *run NULL when the run is not
 * linked. */
int cli_mlflow_fetch(struct expt_store *st, const char *run_id, json_t **run, char **url,
		     struct expt_err *err);

/* Runs for cli_mlflow_fill: params and metrics are JSON objects it adds to (either may be NULL:
 * not wanted); mlflow_run and mlflow_status are filled (zero-initialise them). */
struct cli_mlflow_row {
	const char *run_id;
	json_t *params, *metrics;
	char mlflow_run[64];	/* the linked MLflow run's id (store tags); "" when not linked */
	char mlflow_status[16]; /* its status on the server (RUNNING, FINISHED, ...); "" unread */
};
/* For the rows linked to an MLflow run, adds what the server has and the store lacks: params
 * (as text) and metrics ({"last","step","source":"mlflow"}; the server keeps only the latest
 * value of each), and the run's id and status. One runs/search per 100 runs of a server and
 * experiment. Goes on past a server that cannot be read; the first such error is returned
 * (with the rows of the others filled). */
int cli_mlflow_fill(struct expt_store *st, struct cli_mlflow_row *rows, size_t n,
		    struct expt_err *err);

#endif
