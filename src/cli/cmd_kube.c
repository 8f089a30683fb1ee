/* expt __kube: a hidden debugging command over the Kubernetes client (backend/kube): one raw
 * API request, a batch, a watch, an access check, or the resolved kubeconfig. The cluster
 * tests (tests/cluster/t_kube_client.sh) drive the client through it. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/kube/client.h"
#include "cli.h"

static const char usage[] =
    "usage: expt __kube [OPTIONS] METHOD PATH [BODY|-]\n"
    "       expt __kube [OPTIONS] many N CONCURRENCY METHOD PATH BODY   ({i} in PATH and BODY:\n"
    "                                                                  the index)\n"
    "       expt __kube [OPTIONS] watch PATH [QUERY]\n"
    "       expt __kube [OPTIONS] stream PATH...      (lines of each, prefixed [i], all at once)\n"
    "       expt __kube [OPTIONS] can VERB GROUP RESOURCE [NAMESPACE]\n"
    "       expt __kube [OPTIONS] config\n"
    "\n"
    "Talks to the cluster of the kubeconfig as expt does (a debugging aid; not a stable\n"
    "interface). PATH may contain {ns}: the namespace in use. A reply is printed as JSON; a\n"
    "refusal prints the decoded Status as JSON on stdout and the error on stderr.\n"
    "\n"
    "Options:\n"
    "      --kubeconfig FILES   kubeconfig file(s), ':'-separated (default $KUBECONFIG,\n"
    "                           ~/.kube/config, in-cluster)\n"
    "      --context NAME       context (default current-context)\n"
    "  -n, --namespace NS       namespace (default the context's)\n"
    "      --repeat N           send the request N times (one connection, one credential)\n"
    "      --raw                print the reply as it is (not JSON: a pod's log)\n"
    "      --events N           watch: stop after N events; stream: after N lines\n"
    "      --timeout-ms MS      watch, stream: stop after MS milliseconds (default 30000)\n"
    "      --resume-rv RV       watch: after the list, watch again from RV (\"1\" forces the\n"
    "                           410 Gone path)\n"
    "  -h, --help               this help\n";

static int cmd_kube(struct cli_ctx *ctx, int argc, char **argv);

/* Hidden (no summary). */
const struct cli_cmd cli_cmd_kube = {"__kube", NULL, usage, 0, cmd_kube};

static void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (s)
		printf("%s\n", s);
	free(s);
}

static void print_status(const struct expt_kube_status *st)
{
	json_t *j = json_object(), *causes = json_array();

	json_object_set_new(j, "http", json_integer(st->http));
	json_object_set_new(j, "code", json_integer(st->code));
	json_object_set_new(j, "reason", json_string(st->reason ? st->reason : ""));
	json_object_set_new(j, "message", json_string(st->message ? st->message : ""));
	json_object_set_new(j, "name", json_string(st->name ? st->name : ""));
	json_object_set_new(j, "kind", json_string(st->kind ? st->kind : ""));
	for (size_t i = 0; i < st->ncauses; i++) {
		json_t *c = json_object();

		json_object_set_new(c, "reason",
				    json_string(st->causes[i].reason ? st->causes[i].reason : ""));
		json_object_set_new(
		    c, "message", json_string(st->causes[i].message ? st->causes[i].message : ""));
		json_object_set_new(c, "field",
				    json_string(st->causes[i].field ? st->causes[i].field : ""));
		json_array_append_new(causes, c);
	}
	json_object_set_new(j, "causes", causes);
	print_json(j);
	json_decref(j);
}

/* s with every "{ns}" replaced by ns and every "{i}" by i (caller frees). */
static char *subst(const char *s, const char *ns, long i)
{
	struct expt_buf b = EXPT_BUF_INIT;

	while (*s) {
		if (!strncmp(s, "{ns}", 4)) {
			expt_buf_adds(&b, ns);
			s += 4;
		} else if (!strncmp(s, "{i}", 3) && i >= 0) {
			expt_buf_addf(&b, "%ld", i);
			s += 3;
		} else {
			expt_buf_addch(&b, *s++);
		}
	}
	return expt_buf_detach(&b, NULL);
}

static int load_body(struct cli_ctx *ctx, const char *text, json_t **out)
{
	json_error_t je;

	*out = NULL;
	if (!text)
		return 0;
	if (!strcmp(text, "-"))
		*out = json_loadf(stdin, 0, &je);
	else
		*out = json_loads(text, 0, &je);
	if (!*out)
		return expt_err_set(&ctx->err, EXPT_EUSAGE, "BODY is not JSON: %s (line %d)",
				    je.text, je.line);
	return 0;
}

static int do_config(const struct expt_kube_config *c)
{
	json_t *j = json_object();

	json_object_set_new(j, "context", json_string(c->context));
	json_object_set_new(j, "cluster", json_string(c->cluster_name));
	json_object_set_new(j, "user", json_string(c->user_name ? c->user_name : ""));
	json_object_set_new(j, "server", json_string(c->server));
	json_object_set_new(j, "namespace", json_string(c->ns));
	json_object_set_new(j, "ca",
			    json_string(c->ca_file  ? c->ca_file
					: c->ca_pem ? "certificate-authority-data"
						    : "system"));
	json_object_set_new(j, "insecure", json_boolean(c->insecure));
	json_object_set_new(j, "tls_server_name",
			    c->tls_server_name ? json_string(c->tls_server_name) : json_null());
	json_object_set_new(j, "auth",
			    json_string(c->exec		? "exec"
					: c->token_file ? "token-file"
					: c->token	? "token"
					: c->cert_pem	? "client-certificate"
					: c->username	? "basic"
							: "none"));
	if (c->exec)
		json_object_set_new(j, "exec_command", json_string(c->exec->command));
	json_object_set_new(j, "in_cluster", json_boolean(c->in_cluster));
	json_object_set_new(j, "context_file", json_string(c->context_file ? c->context_file : ""));
	print_json(j);
	json_decref(j);
	return 0;
}

static int do_watch(struct cli_ctx *ctx, struct expt_kube *k, const char *path, const char *query,
		    long events, long timeout_ms, const char *resume_rv)
{
	struct expt_kube_watch *w = NULL;
	int64_t end = expt_mono_ms() + timeout_ms;
	long seen = 0;
	int rc;

	if ((rc = expt_kube_watch_open(k, path, query, &w, &ctx->err)))
		return rc;
	if (resume_rv)
		expt_kube_watch_resume(w, resume_rv);
	printf("# listed\n");
	fflush(stdout);
	while (events < 0 || seen < events) {
		const char *type;
		json_t *obj;
		int r = expt_kube_watch_next(w, &type, &obj, &ctx->err);

		if (r < 0 || r > 1) {
			rc = r;
			break;
		}
		if (r == 1) {
			const json_t *md = json_object_get(obj, "metadata");

			printf("%s %s/%s\n", type,
			       json_string_value(json_object_get(obj, "kind"))
				   ? json_string_value(json_object_get(obj, "kind"))
				   : "?",
			       json_string_value(json_object_get(md, "name"))
				   ? json_string_value(json_object_get(md, "name"))
				   : "?");
			fflush(stdout);
			json_decref(obj);
			seen++;
			continue;
		}
		if (expt_mono_ms() >= end)
			break;
		if ((rc = expt_kube_pump(k, 200, &ctx->err)))
			break;
	}
	printf("# relists %u\n", expt_kube_watch_relists(w));
	expt_kube_watch_close(w);
	return rc;
}

/* Follows every path at once on one client; prints "[i] line", then "[i] end HTTP rc" and the
 * error of a stream that failed. */
static int do_stream(struct cli_ctx *ctx, struct expt_kube *k, int n, char **paths, long lines,
		     long timeout_ms)
{
	struct expt_kube_stream **s = expt_xcalloc((size_t)n, sizeof(*s));
	int64_t end = expt_mono_ms() + timeout_ms;
	long seen = 0;
	int open_n = 0, rc = 0;

	for (int i = 0; i < n && !rc; i++) {
		char *p = subst(paths[i], expt_kube_cfg(k)->ns, -1);

		rc = expt_kube_stream_open(k, p, &s[i], &ctx->err);
		free(p);
		open_n += !rc;
	}
	while (!rc && open_n > 0 && (lines < 0 || seen < lines) && expt_mono_ms() < end) {
		for (int i = 0; i < n; i++) {
			const char *line;
			size_t len;
			long http = 0;
			int src = 0;
			struct expt_err e = EXPT_ERR_INIT;

			if (!s[i])
				continue;
			while ((lines < 0 || seen < lines) &&
			       expt_kube_stream_line(s[i], &line, &len)) {
				printf("[%d] %.*s\n", i, (int)len, line);
				seen++;
			}
			if (expt_kube_stream_ended(s[i], &http, &src, NULL, &e)) {
				printf("[%d] end %ld %d%s%s\n", i, http, src, src ? " " : "",
				       e.msg);
				expt_kube_stream_close(s[i]);
				s[i] = NULL;
				open_n--;
			}
		}
		fflush(stdout);
		if (open_n > 0 && (lines < 0 || seen < lines))
			rc = expt_kube_pump(k, 200, &ctx->err);
	}
	for (int i = 0; i < n; i++)
		expt_kube_stream_close(s[i]);
	free(s);
	return rc;
}

static int do_many(struct cli_ctx *ctx, struct expt_kube *k, char **argv)
{
	long n = strtol(argv[0], NULL, 10), conc = strtol(argv[1], NULL, 10);
	struct expt_kube_req *reqs;
	json_t **bodies;
	char **paths;
	long nfail = 0;
	unsigned long retried = 0;
	int rc = 0;

	if (n <= 0 || n > 100000 || conc <= 0)
		return expt_err_set(&ctx->err, EXPT_EUSAGE, "many: N and CONCURRENCY must be > 0");
	reqs = expt_xcalloc((size_t)n, sizeof(*reqs));
	bodies = expt_xcalloc((size_t)n, sizeof(*bodies));
	paths = expt_xcalloc((size_t)n, sizeof(*paths));
	for (long i = 0; i < n && !rc; i++) {
		char *b = subst(argv[4], expt_kube_cfg(k)->ns, i);

		paths[i] = subst(argv[3], expt_kube_cfg(k)->ns, i);
		rc = load_body(ctx, b, &bodies[i]);
		free(b);
		reqs[i].method = argv[2];
		reqs[i].path = paths[i];
		reqs[i].body = bodies[i];
	}
	if (!rc) {
		rc = expt_kube_request_many(k, reqs, (size_t)n, (int)conc, &ctx->err);
		for (long i = 0; i < n; i++) {
			nfail += reqs[i].rc != 0;
			retried += reqs[i].retries;
		}
		printf("%ld ok, %ld failed\n", n - nfail, nfail);
		if (retried)
			printf("# %lu retries after 429/503\n", retried);
	}
	for (long i = 0; i < n; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
		json_decref(bodies[i]);
		free(paths[i]);
	}
	free(reqs);
	free(bodies);
	free(paths);
	return rc;
}

static int cmd_kube(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"kubeconfig", required_argument, NULL, 'K'},
						 {"context", required_argument, NULL, 'C'},
						 {"namespace", required_argument, NULL, 'n'},
						 {"repeat", required_argument, NULL, 'r'},
						 {"events", required_argument, NULL, 'e'},
						 {"timeout-ms", required_argument, NULL, 't'},
						 {"resume-rv", required_argument, NULL, 'R'},
						 {"raw", no_argument, NULL, 'W'},
						 {"help", no_argument, NULL, 'h'},
						 {NULL, 0, NULL, 0}};
	struct expt_kube_config_opts o = EXPT_KUBE_CONFIG_OPTS_INIT;
	struct expt_kube_config *cfg = NULL;
	struct expt_diags diags = {0};
	struct expt_kube *k = NULL;
	long repeat = 1, events = -1, timeout_ms = 30000;
	const char *resume_rv = NULL;
	int c, rc, raw = 0;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'K':
			o.kubeconfig = optarg;
			break;
		case 'C':
			o.context = optarg;
			break;
		case 'n':
			o.ns = optarg;
			break;
		case 'r':
			repeat = strtol(optarg, NULL, 10);
			break;
		case 'e':
			events = strtol(optarg, NULL, 10);
			break;
		case 't':
			timeout_ms = strtol(optarg, NULL, 10);
			break;
		case 'R':
			resume_rv = optarg;
			break;
		case 'W':
			raw = 1;
			break;
		case 'h':
			cli_usage(&cli_cmd_kube);
			return 0;
		default:
			return cli_bad_option(ctx, &cli_cmd_kube, c, argv);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return cli_usage_error(ctx, &cli_cmd_kube, "what to do?");
	rc = expt_kube_config_load(&cfg, &o, &diags, &ctx->err);
	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];

		expt_diag_format(&diags.v[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	expt_diags_release(&diags);
	if (rc)
		return rc;
	if (!strcmp(argv[0], "config")) {
		rc = do_config(cfg);
		goto out;
	}
	if ((rc = expt_kube_open(&k, cfg, &ctx->err)))
		goto out;
	if (!strcmp(argv[0], "watch") && argc >= 2) {
		char *p = subst(argv[1], cfg->ns, -1);

		rc = do_watch(ctx, k, p, argc > 2 ? argv[2] : NULL, events, timeout_ms, resume_rv);
		free(p);
	} else if (!strcmp(argv[0], "stream") && argc >= 2) {
		rc = do_stream(ctx, k, argc - 1, argv + 1, events, timeout_ms);
	} else if (!strcmp(argv[0], "many") && argc == 6) {
		rc = do_many(ctx, k, argv + 1);
	} else if (!strcmp(argv[0], "can") && argc >= 4) {
		int allowed = 0;
		char *reason = NULL;

		rc = expt_kube_access_check(k, argv[1], argv[2], argv[3], argc > 4 ? argv[4] : NULL,
					    &allowed, &reason, &ctx->err);
		if (!rc)
			printf("%s%s%s\n", allowed ? "yes" : "no", reason && *reason ? " " : "",
			       reason ? reason : "");
		free(reason);
	} else if (argc == 2 || argc == 3) {
		char *p = subst(argv[1], cfg->ns, -1);
		json_t *body = NULL;

		rc = load_body(ctx, argc == 3 ? argv[2] : NULL, &body);
		for (long i = 0; !rc && i < repeat; i++) {
			struct expt_kube_status st = EXPT_KUBE_STATUS_INIT;
			json_t *reply = NULL;

			if (raw) {
				struct expt_buf out = EXPT_BUF_INIT;

				out.max = EXPT_KUBE_BODY_MAX;
				rc = expt_kube_request_text(k, argv[0], p, &out, &st, &ctx->err);
				fwrite(out.buf, 1, out.len, stdout);
				expt_buf_release(&out);
			} else {
				rc = expt_kube_request(k, argv[0], p, body, &reply, &st, &ctx->err);
			}
			if (rc && st.http)
				print_status(&st);
			else if (!rc && reply)
				print_json(reply);
			json_decref(reply);
			expt_kube_status_release(&st);
		}
		if (cfg->exec)
			fprintf(stderr, "# exec plugin runs: %u\n", expt_kube_exec_runs(k));
		json_decref(body);
		free(p);
	} else {
		rc = cli_usage_error(ctx, &cli_cmd_kube, "unknown form '%s' with %d arguments",
				     argv[0], argc - 1);
	}
out:
	expt_kube_close(k);
	expt_kube_config_free(cfg);
	return rc;
}
