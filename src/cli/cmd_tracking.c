/* expt tracking deploy|status|url: an MLflow tracking server in a Kubernetes cluster
 * (backend/kube/tracking.c builds and applies the objects). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/kube/tracking.h"
#include "cli.h"
#include "output.h"

static const char usage[] =
    "usage: expt tracking deploy --mode dev|deploy [OPTIONS]\n"
    "       expt tracking status [--name NAME] [-n NS] [-o text|json|yaml]\n"
    "       expt tracking url [--name NAME] [-n NS] [-o text|json]\n"
    "\n"
    "Puts an MLflow tracking server into the cluster of the kubeconfig (as kubectl finds\n"
    "it), says how it is doing, and prints the URI runs in the cluster reach it at.\n"
    "\n"
    "  dev     mlflow server on SQLite, artifacts on a PersistentVolumeClaim (or a\n"
    "          hostPath), one replica: a Deployment, a Service (and the PVC)\n"
    "  deploy  mlflow server on PostgreSQL (a StatefulSet with a generated password in a\n"
    "          Secret, or an external database whose URI is in a Secret), artifacts on\n"
    "          S3-compatible storage with credentials from a Secret\n"
    "\n"
    "deploy sends every object to the API server as a dry run first; only when all pass\n"
    "are they applied (server-side apply), so a refusal creates nothing. Running it\n"
    "again with the same options changes nothing; with other options, updates in place.\n"
    "\n"
    "Options (all subcommands):\n"
    "      --name NAME          the server's name (default mlflow): Deployment and Service\n"
    "  -n, --namespace NS       namespace (default the context's)\n"
    "      --kubeconfig FILES   kubeconfig file(s), ':'-separated (default $KUBECONFIG,\n"
    "                           ~/.kube/config, in-cluster)\n"
    "      --context NAME       context (default current-context)\n"
    "  -o, --output FORMAT      text (default), json or yaml\n"
    "Options of deploy:\n"
    "      --mode dev|deploy    which shape (required)\n"
    "      --dry-run            print the objects as a v1 List (-o yaml, the default, or\n"
    "                           json) for kubectl apply -f -; contacts no cluster\n"
    "      --image IMAGE        the MLflow image (default " EXPT_TRACKING_IMAGE ";\n"
    "                           deploy: the -full variant, which has psycopg2 and boto3)\n"
    "      --db-image IMAGE     PostgreSQL's image (default " EXPT_TRACKING_DB_IMAGE ")\n"
    "      --storage S          dev: pvc (default, 10Gi), pvc:SIZE or hostpath:/PATH\n"
    "      --storage-class SC   StorageClass of the PVCs (default the cluster's)\n"
    "      --db-size SIZE       deploy: the database's volume (default 10Gi)\n"
    "      --db-uri-secret S[:KEY]  deploy: an external database; its SQLAlchemy URI is\n"
    "                           key KEY (default uri) of Secret S (no PostgreSQL is made)\n"
    "      --artifacts s3://BUCKET[/PREFIX]  deploy: where artifacts go (required)\n"
    "      --s3-secret S        deploy: Secret with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
    "                           (and MLFLOW_S3_ENDPOINT_URL when --s3-endpoint is not given)\n"
    "      --s3-endpoint URL    deploy: the S3-compatible endpoint (MinIO, SeaweedFS, Ceph)\n"
    "      --allowed-host HOST  one more name clients may use (an Ingress); repeatable\n"
    "      --replicas N         deploy: server replicas (default 1)\n"
    "      --node-selector K=V  the pods run only on nodes with that label; repeatable\n"
    "      --toleration KEY     the pods tolerate taints with that key; repeatable\n"
    "      --wait / --no-wait   wait until the server is Available (default: on a terminal)\n"
    "      --timeout SECONDS    how long --wait waits (default 300)\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit codes: 0 done (status: available), 1 status: deployed but not available, or\n"
    "--wait timed out, 2 bad usage or objects the server refused as invalid, 3 nothing\n"
    "deployed under that name, 5 cluster unreachable, 8 not allowed (RBAC).\n";

static int cmd_tracking(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_tracking = {"tracking", "deploy an MLflow server into a cluster",
					 usage, 0, cmd_tracking};

struct conn {
	struct expt_kube_config_opts o;
	struct expt_kube_config *cfg;
	struct expt_kube *k;
};

static int load_cfg(struct cli_ctx *ctx, struct conn *c)
{
	struct expt_diags diags = {0};
	int rc = expt_kube_config_load(&c->cfg, &c->o, &diags, &ctx->err);

	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];

		expt_diag_format(&diags.v[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	expt_diags_release(&diags);
	return rc;
}

static void print_status_text(const json_t *s, int color)
{
	size_t i;
	json_t *e;

	printf("%s%s%s  %s  %s\n", CLI_BOLD(color), json_string_value(json_object_get(s, "name")),
	       CLI_RESET(color), json_string_value(json_object_get(s, "uri")),
	       json_is_true(json_object_get(s, "available")) ? "available" : "NOT available");
	printf("mode %s, image %s, ready %lld/%lld\n",
	       json_string_value(json_object_get(s, "mode")) ?: "?",
	       json_string_value(json_object_get(s, "image")) ?: "?",
	       (long long)json_integer_value(json_object_get(s, "ready_replicas")),
	       (long long)json_integer_value(json_object_get(s, "replicas")));
	json_array_foreach(json_object_get(s, "objects"), i, e)
	{
		char what[300];

		snprintf(what, sizeof(what), "%s/%s", json_string_value(json_object_get(e, "kind")),
			 json_string_value(json_object_get(e, "name")));
		printf("  %-40s %s\n", what, json_string_value(json_object_get(e, "ready")) ?: "");
	}
	json_array_foreach(json_object_get(s, "pods"), i, e)
	{
		const char *reason = json_string_value(json_object_get(e, "reason"));
		const char *msg = json_string_value(json_object_get(e, "message"));
		const char *hint = json_string_value(json_object_get(e, "hint"));
		char what[300];

		snprintf(what, sizeof(what), "Pod/%s",
			 json_string_value(json_object_get(e, "name")));
		printf("  %-40s %s%s%s%s\n", what,
		       json_string_value(json_object_get(e, "phase")) ?: "?",
		       json_is_true(json_object_get(e, "ready")) ? ", ready" : "",
		       reason ? ", " : "", reason ? reason : "");
		if (msg && *msg)
			printf("      %s\n", msg);
		if (hint)
			printf("      -> %s\n", hint);
	}
}

/* Waits until the Deployment is Available with every replica updated and ready. */
static int wait_available(struct cli_ctx *ctx, struct conn *c, const char *ns, const char *name,
			  long timeout_s, int progress)
{
	int64_t end = expt_mono_ms() + timeout_s * 1000;
	char last[512] = "";

	for (;;) {
		json_t *s = NULL;
		int rc = expt_kube_tracking_status(c->k, ns, name, &s, &ctx->err);
		char line[512];
		const char *why = "";
		size_t i;
		json_t *p;

		if (rc)
			return rc;
		json_array_foreach(json_object_get(s, "pods"), i,
				   p) if (json_object_get(p, "reason")) why =
		    json_string_value(json_object_get(p, "reason"));
		snprintf(line, sizeof(line), "waiting for %s: %lld/%lld ready%s%s", name,
			 (long long)json_integer_value(json_object_get(s, "ready_replicas")),
			 (long long)json_integer_value(json_object_get(s, "replicas")),
			 *why ? ", " : "", why);
		if (json_is_true(json_object_get(s, "available")) &&
		    json_integer_value(json_object_get(s, "ready_replicas")) >=
			json_integer_value(json_object_get(s, "replicas"))) {
			if (progress)
				fprintf(stderr, "\r\033[K");
			json_decref(s);
			return 0;
		}
		if (progress) {
			fprintf(stderr, "\r\033[K%s", line);
			fflush(stderr);
		} else if (strcmp(line, last)) {
			fprintf(stderr, "expt: %s\n", line);
		}
		snprintf(last, sizeof(last), "%s", line);
		if (expt_mono_ms() >= end) {
			if (progress)
				fprintf(stderr, "\n");
			print_status_text(s, 0);
			json_decref(s);
			return expt_err_set(&ctx->err, EXPT_EFAIL,
					    "%s is not available after %ld s (the objects stay; "
					    "'expt tracking status' follows it)",
					    name, timeout_s);
		}
		json_decref(s);
		usleep(1000 * 1000);
	}
}

static int do_deploy(struct cli_ctx *ctx, struct conn *c, struct expt_tracking_opts *t, int dry_run,
		     enum cli_output fmt, int wait, long timeout_s)
{
	char password[33];
	json_t *list = NULL;
	struct expt_tracking_applied *done = NULL;
	size_t ndone = 0;
	int rc;

	if (t->mode && !strcmp(t->mode, "deploy") && !t->db_uri_secret) {
		if ((rc = expt_kube_tracking_password(password, sizeof(password), &ctx->err)))
			return rc;
		t->db_password = password;
	}
	if ((rc = expt_kube_tracking_render(t, &list, &ctx->err)))
		return rc;
	if (dry_run) {
		cli_emit(stdout, list, fmt == CLI_OUT_JSON ? CLI_OUT_JSON : CLI_OUT_YAML);
		json_decref(list);
		return 0;
	}
	if ((rc = expt_kube_open(&c->k, c->cfg, &ctx->err)))
		goto out;
	rc = expt_kube_tracking_apply(c->k, t, list, &done, &ndone, &ctx->err);
	if (fmt == CLI_OUT_TEXT || fmt == CLI_OUT_WIDE) {
		for (size_t i = 0; i < ndone; i++)
			printf("%s/%s %s\n", done[i].kind, done[i].name, done[i].what);
	}
	if (rc)
		goto out;
	if (wait)
		rc = wait_available(ctx, c, t->ns, t->name, timeout_s, ctx->tty_err);
	if (fmt == CLI_OUT_JSON || fmt == CLI_OUT_YAML) {
		json_t *j = json_object(), *objs = json_array();
		char *uri = expt_kube_tracking_uri(t->name, t->ns);

		for (size_t i = 0; i < ndone; i++)
			json_array_append_new(objs, json_pack("{s:s, s:s, s:s}", "kind",
							      done[i].kind, "name", done[i].name,
							      "action", done[i].what));
		json_object_set_new(j, "uri", json_string(uri));
		json_object_set_new(j, "namespace", json_string(t->ns));
		json_object_set_new(j, "objects", objs);
		cli_emit(stdout, j, fmt);
		json_decref(j);
		free(uri);
	} else if (!rc) {
		char *uri = expt_kube_tracking_uri(t->name, t->ns);
		printf("tracking uri (in the cluster): %s\n", uri);
		free(uri);
	}
out:
	free(done);
	json_decref(list);
	return rc;
}

static int cmd_tracking(struct cli_ctx *ctx, int argc, char **argv)
{
	enum {
		O_NAME = 256,
		O_KCFG,
		O_CTX,
		O_MODE,
		O_DRY,
		O_IMAGE,
		O_DBIMAGE,
		O_STORAGE,
		O_SC,
		O_DBSIZE,
		O_DBURI,
		O_ART,
		O_S3SEC,
		O_S3EP,
		O_HOST,
		O_REPL,
		O_WAIT,
		O_NOWAIT,
		O_TIMEOUT,
		O_NODESEL,
		O_TOL
	};
	static const struct option longopts[] = {
	    {"name", required_argument, NULL, O_NAME},
	    {"namespace", required_argument, NULL, 'n'},
	    {"kubeconfig", required_argument, NULL, O_KCFG},
	    {"context", required_argument, NULL, O_CTX},
	    {"output", required_argument, NULL, 'o'},
	    {"mode", required_argument, NULL, O_MODE},
	    {"dry-run", no_argument, NULL, O_DRY},
	    {"image", required_argument, NULL, O_IMAGE},
	    {"db-image", required_argument, NULL, O_DBIMAGE},
	    {"storage", required_argument, NULL, O_STORAGE},
	    {"storage-class", required_argument, NULL, O_SC},
	    {"db-size", required_argument, NULL, O_DBSIZE},
	    {"db-uri-secret", required_argument, NULL, O_DBURI},
	    {"artifacts", required_argument, NULL, O_ART},
	    {"s3-secret", required_argument, NULL, O_S3SEC},
	    {"s3-endpoint", required_argument, NULL, O_S3EP},
	    {"allowed-host", required_argument, NULL, O_HOST},
	    {"replicas", required_argument, NULL, O_REPL},
	    {"wait", no_argument, NULL, O_WAIT},
	    {"no-wait", no_argument, NULL, O_NOWAIT},
	    {"timeout", required_argument, NULL, O_TIMEOUT},
	    {"node-selector", required_argument, NULL, O_NODESEL},
	    {"toleration", required_argument, NULL, O_TOL},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct expt_tracking_opts t = {0};
	struct conn c = {EXPT_KUBE_CONFIG_OPTS_INIT, NULL, NULL};
	enum cli_output fmt = CLI_OUT_TEXT;
	const char *hosts[33] = {0}, *nodesel[33] = {0}, *tols[33] = {0}, *sub, *fmt_s = NULL;
	size_t nhosts = 0, nsel = 0, ntol = 0;
	int ch, rc = 0, dry_run = 0, wait = ctx->tty_err;
	long timeout_s = 300;
	char *end;

	t.name = "mlflow";
	t.replicas = 1;
	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":n:o:h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_NAME:
			t.name = optarg;
			break;
		case 'n':
			c.o.ns = optarg;
			break;
		case O_KCFG:
			c.o.kubeconfig = optarg;
			break;
		case O_CTX:
			c.o.context = optarg;
			break;
		case 'o':
			fmt_s = optarg;
			if (cli_parse_output(optarg, &fmt) || fmt == CLI_OUT_WIDE)
				return cli_usage_error(ctx, &cli_cmd_tracking,
						       "-o: expected text, json or yaml, got '%s'",
						       optarg);
			break;
		case O_MODE:
			t.mode = optarg;
			break;
		case O_DRY:
			dry_run = 1;
			break;
		case O_IMAGE:
			t.image = optarg;
			break;
		case O_DBIMAGE:
			t.db_image = optarg;
			break;
		case O_STORAGE:
			t.storage = optarg;
			break;
		case O_SC:
			t.storage_class = optarg;
			break;
		case O_DBSIZE:
			t.db_size = optarg;
			break;
		case O_DBURI:
			t.db_uri_secret = optarg;
			break;
		case O_ART:
			t.artifacts = optarg;
			break;
		case O_S3SEC:
			t.s3_secret = optarg;
			break;
		case O_S3EP:
			t.s3_endpoint = optarg;
			break;
		case O_HOST:
			if (nhosts + 1 >= sizeof(hosts) / sizeof(hosts[0]))
				return cli_usage_error(ctx, &cli_cmd_tracking,
						       "--allowed-host: at most 32");
			hosts[nhosts++] = optarg;
			break;
		case O_NODESEL:
		case O_TOL:
			if ((ch == O_NODESEL ? nsel : ntol) + 1 >= 33)
				return cli_usage_error(ctx, &cli_cmd_tracking, "%s: at most 32",
						       ch == O_NODESEL ? "--node-selector"
								       : "--toleration");
			if (ch == O_NODESEL)
				nodesel[nsel++] = optarg;
			else
				tols[ntol++] = optarg;
			break;
		case O_REPL:
			t.replicas = (int)strtol(optarg, &end, 10);
			if (*end || end == optarg || t.replicas < 1)
				return cli_usage_error(ctx, &cli_cmd_tracking,
						       "--replicas: expected a whole number >= 1, "
						       "got '%s'",
						       optarg);
			break;
		case O_WAIT:
			wait = 1;
			break;
		case O_NOWAIT:
			wait = 0;
			break;
		case O_TIMEOUT:
			timeout_s = strtol(optarg, &end, 10);
			if (*end || end == optarg || timeout_s < 1)
				return cli_usage_error(
				    ctx, &cli_cmd_tracking,
				    "--timeout: expected seconds (a whole number "
				    ">= 1), got '%s'",
				    optarg);
			break;
		case 'h':
			cli_usage(&cli_cmd_tracking);
			return 0;
		default:
			return cli_bad_option(ctx, &cli_cmd_tracking, ch, argv);
		}
	}
	if (optind >= argc)
		return cli_usage_error(ctx, &cli_cmd_tracking, "deploy, status or url?");
	sub = argv[optind];
	if (optind + 1 < argc)
		return cli_usage_error(ctx, &cli_cmd_tracking, "unexpected argument '%s'",
				       argv[optind + 1]);
	if (strcmp(sub, "deploy") && strcmp(sub, "status") && strcmp(sub, "url"))
		return cli_usage_error(ctx, &cli_cmd_tracking,
				       "'%s': expected deploy, status or url", sub);
	if (strcmp(sub, "deploy") && (t.mode || dry_run))
		return cli_usage_error(ctx, &cli_cmd_tracking, "%s: only with deploy",
				       t.mode ? "--mode" : "--dry-run");
	if (!strcmp(sub, "deploy") && !t.mode)
		return cli_usage_error(ctx, &cli_cmd_tracking,
				       "--mode: deploy needs --mode dev or --mode deploy");
	t.extra_hosts = nhosts ? hosts : NULL;
	t.node_selector = nsel ? nodesel : NULL;
	t.tolerations = ntol ? tols : NULL;

	if (dry_run) {
		/* No cluster needed: the namespace is -n, else the context's if a kubeconfig is
		 * there, else default. */
		struct expt_diags diags = {0};
		struct expt_err e = EXPT_ERR_INIT;

		if (!c.o.ns && !expt_kube_config_load(&c.cfg, &c.o, &diags, &e))
			t.ns = c.cfg->ns;
		expt_diags_release(&diags);
		if (!t.ns)
			t.ns = c.o.ns ? c.o.ns : "default";
		if (!fmt_s)
			fmt = CLI_OUT_YAML;
		rc = do_deploy(ctx, &c, &t, 1, fmt, 0, 0);
		goto out;
	}
	if ((rc = load_cfg(ctx, &c)))
		goto out;
	t.ns = c.cfg->ns;
	if (!strcmp(sub, "deploy")) {
		rc = do_deploy(ctx, &c, &t, 0, fmt, wait, timeout_s);
	} else if (!strcmp(sub, "status")) {
		json_t *s = NULL;

		if ((rc = expt_kube_open(&c.k, c.cfg, &ctx->err)))
			goto out;
		if ((rc = expt_kube_tracking_status(c.k, t.ns, t.name, &s, &ctx->err)))
			goto out;
		if (fmt == CLI_OUT_TEXT)
			print_status_text(s, ctx->color_out);
		else
			cli_emit(stdout, s, fmt);
		if (!json_is_true(json_object_get(s, "available")))
			rc = EXPT_EFAIL; /* printed above; no second message */
		json_decref(s);
	} else {
		json_t *s = NULL;
		char *uri;

		/* The URI of a server that exists: a typo in --name is caught here. */
		if ((rc = expt_kube_open(&c.k, c.cfg, &ctx->err)))
			goto out;
		if ((rc = expt_kube_tracking_status(c.k, t.ns, t.name, &s, &ctx->err)))
			goto out;
		json_decref(s);
		uri = expt_kube_tracking_uri(t.name, t.ns);
		if (fmt == CLI_OUT_TEXT) {
			printf("%s\n", uri);
		} else {
			json_t *j = json_pack("{s:s, s:s, s:s}", "uri", uri, "name", t.name,
					      "namespace", t.ns);
			cli_emit(stdout, j, fmt);
			json_decref(j);
		}
		free(uri);
	}
out:
	expt_kube_close(c.k);
	expt_kube_config_free(c.cfg);
	return rc;
}
