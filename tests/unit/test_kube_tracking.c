/* The MLflow server's objects (backend/kube/tracking.c): one coherent set per mode, labelled,
 * --allowed-hosts listing the in-cluster names, probes on /health, credentials only through
 * Secrets, bad flag values refused with the flag named. The API server's verdict on these
 * objects is tests/cluster/t_tracking.sh (server-side dry run and apply). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/kube/tracking.h"

#define PASSWORD "Secr3tPassw0rdThatMustNotLeak"

static json_t *render(const struct expt_tracking_opts *o, int *rc, struct expt_err *err)
{
	json_t *list = NULL;

	*rc = expt_kube_tracking_render(o, &list, err);
	return list;
}

static json_t *find(const json_t *list, const char *kind, const char *name)
{
	size_t i;
	json_t *o;

	json_array_foreach(json_object_get(list, "items"), i, o)
	{
		const char *n =
		    json_string_value(json_object_get(json_object_get(o, "metadata"), "name"));
		if (!strcmp(json_string_value(json_object_get(o, "kind")), kind) &&
		    (!name || !strcmp(n, name)))
			return o;
	}
	return NULL;
}

static json_t *container(const json_t *workload)
{
	return json_array_get(
	    json_object_get(
		json_object_get(json_object_get(json_object_get(workload, "spec"), "template"),
				"spec"),
		"containers"),
	    0);
}

/* The argument after flag in the container's command, or NULL. */
static const char *arg_after(const json_t *ctr, const char *flag)
{
	const json_t *cmd = json_object_get(ctr, "command");

	for (size_t i = 0; i + 1 < json_array_size(cmd); i++)
		if (!strcmp(json_string_value(json_array_get(cmd, i)), flag))
			return json_string_value(json_array_get(cmd, i + 1));
	return NULL;
}

static int has_host(const char *list, const char *host)
{
	size_t n = strlen(host);

	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && !strncmp(p, host, n))
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

static void check_labels(const json_t *list, const char *instance)
{
	size_t i;
	json_t *o;

	json_array_foreach(json_object_get(list, "items"), i, o)
	{
		const json_t *l = json_object_get(json_object_get(o, "metadata"), "labels");
		assert_string_equal(
		    json_string_value(json_object_get(l, "app.kubernetes.io/managed-by")), "expt");
		assert_string_equal(json_string_value(json_object_get(l, "app.kubernetes.io/name")),
				    "mlflow");
		assert_string_equal(
		    json_string_value(json_object_get(l, "app.kubernetes.io/instance")), instance);
	}
}

static void test_dev(void **state)
{
	struct expt_tracking_opts o = {0};
	struct expt_err err = EXPT_ERR_INIT;
	json_t *list, *dep, *ctr, *svc, *pvc, *probe;
	const char *hosts;
	int rc;

	(void)state;
	o.mode = "dev";
	o.ns = "team-a";
	list = render(&o, &rc, &err);
	assert_int_equal(rc, 0);
	assert_string_equal(json_string_value(json_object_get(list, "kind")), "List");
	assert_int_equal(json_array_size(json_object_get(list, "items")), 3);
	check_labels(list, "mlflow");
	dep = find(list, "Deployment", "mlflow");
	svc = find(list, "Service", "mlflow");
	pvc = find(list, "PersistentVolumeClaim", "mlflow-data");
	assert_non_null(dep);
	assert_non_null(svc);
	assert_non_null(pvc);
	ctr = container(dep);
	assert_string_equal(json_string_value(json_object_get(ctr, "image")), EXPT_TRACKING_IMAGE);
	assert_string_equal(arg_after(ctr, "--backend-store-uri"), "sqlite:////mlflow/mlflow.db");
	assert_string_equal(arg_after(ctr, "--host"), "0.0.0.0");
	assert_non_null(arg_after(ctr, "--serve-artifacts"));
	hosts = arg_after(ctr, "--allowed-hosts");
	assert_non_null(hosts);
	assert_true(has_host(hosts, "mlflow"));
	assert_true(has_host(hosts, "mlflow:5000"));
	assert_true(has_host(hosts, "mlflow.team-a"));
	assert_true(has_host(hosts, "mlflow.team-a:5000"));
	assert_true(has_host(hosts, "mlflow.team-a.svc"));
	assert_true(has_host(hosts, "mlflow.team-a.svc:5000"));
	assert_true(has_host(hosts, "mlflow.team-a.svc.cluster.local"));
	assert_true(has_host(hosts, "mlflow.team-a.svc.cluster.local:5000"));
	assert_true(has_host(hosts, "localhost"));
	assert_true(has_host(hosts, "localhost:*"));
	assert_true(has_host(hosts, "10.*")); /* the ClusterIP: the default list is replaced */
	assert_false(has_host(hosts, "*"));
	/* Probes on /health on the named port. */
	probe = json_object_get(ctr, "readinessProbe");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(probe, "httpGet"), "path")),
	    "/health");
	probe = json_object_get(ctr, "livenessProbe");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(probe, "httpGet"), "path")),
	    "/health");
	assert_non_null(
	    json_object_get(json_object_get(json_object_get(ctr, "resources"), "requests"), "cpu"));
	assert_non_null(json_object_get(
	    json_object_get(json_object_get(ctr, "resources"), "requests"), "memory"));
	/* SQLite on one volume: never two pods at once. */
	assert_string_equal(json_string_value(json_object_get(
				json_object_get(json_object_get(dep, "spec"), "strategy"), "type")),
			    "Recreate");
	assert_int_equal(
	    json_integer_value(json_object_get(
		json_array_get(json_object_get(json_object_get(svc, "spec"), "ports"), 0), "port")),
	    5000);
	json_decref(list);

	/* hostPath storage: no PVC. */
	o.storage = "hostpath:/srv/mlflow";
	o.name = "exp";
	list = render(&o, &rc, &err);
	assert_int_equal(rc, 0);
	assert_null(find(list, "PersistentVolumeClaim", NULL));
	check_labels(list, "exp");
	dep = find(list, "Deployment", "exp");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(
		    json_array_get(
			json_object_get(
			    json_object_get(
				json_object_get(json_object_get(dep, "spec"), "template"), "spec"),
			    "volumes"),
			0),
		    "hostPath"),
		"path")),
	    "/srv/mlflow");
	json_decref(list);
}

static void test_deploy_secrets(void **state)
{
	struct expt_tracking_opts o = {0};
	struct expt_err err = EXPT_ERR_INIT;
	json_t *list, *dep, *ctr, *sts, *secret;
	char *text;
	int rc;

	(void)state;
	o.mode = "deploy";
	o.ns = "prod";
	o.db_password = PASSWORD;
	o.artifacts = "s3://mlflow-artifacts/team";
	o.s3_secret = "s3-creds";
	o.s3_endpoint = "http://seaweedfs.storage:8333";
	list = render(&o, &rc, &err);
	assert_int_equal(rc, 0);
	check_labels(list, "mlflow");
	dep = find(list, "Deployment", "mlflow");
	sts = find(list, "StatefulSet", "mlflow-postgres");
	secret = find(list, "Secret", "mlflow-postgres");
	assert_non_null(dep);
	assert_non_null(sts);
	assert_non_null(secret);
	assert_non_null(find(list, "Service", "mlflow-postgres"));
	assert_non_null(find(list, "Service", "mlflow"));
	/* The password is in the Secret, and nowhere in the Deployment or the StatefulSet. */
	text = json_dumps(secret, 0);
	assert_non_null(strstr(text, PASSWORD));
	free(text);
	text = json_dumps(dep, 0);
	assert_null(strstr(text, PASSWORD));
	assert_null(strstr(text, "stringData"));
	free(text);
	text = json_dumps(sts, 0);
	assert_null(strstr(text, PASSWORD));
	free(text);
	ctr = container(dep);
	assert_string_equal(arg_after(ctr, "--artifacts-destination"),
			    "s3://mlflow-artifacts/team");
	assert_null(
	    arg_after(ctr, "--backend-store-uri")); /* from the env, built from the Secret */
	{
		size_t i;
		json_t *e;
		int n_secret = 0, uri = 0;

		json_array_foreach(json_object_get(ctr, "env"), i, e)
		{
			const char *name = json_string_value(json_object_get(e, "name"));
			const json_t *ref =
			    json_object_get(json_object_get(e, "valueFrom"), "secretKeyRef");
			if (!strcmp(name, "AWS_ACCESS_KEY_ID") ||
			    !strcmp(name, "AWS_SECRET_ACCESS_KEY")) {
				assert_non_null(ref);
				assert_null(json_object_get(e, "value"));
				assert_string_equal(json_string_value(json_object_get(ref, "name")),
						    "s3-creds");
				n_secret++;
			}
			if (!strcmp(name, "DB_PASSWORD")) {
				assert_non_null(ref);
				n_secret++;
			}
			if (!strcmp(name, "MLFLOW_BACKEND_STORE_URI")) {
				assert_string_equal(
				    json_string_value(json_object_get(e, "value")),
				    "postgresql://"
				    "mlflow:$(DB_PASSWORD)@mlflow-postgres.prod.svc:5432/"
				    "mlflow");
				uri = 1;
			}
			if (!strcmp(name, "MLFLOW_S3_ENDPOINT_URL"))
				assert_string_equal(json_string_value(json_object_get(e, "value")),
						    "http://seaweedfs.storage:8333");
		}
		assert_int_equal(n_secret, 3);
		assert_true(uri);
	}
	json_decref(list);

	/* An external database: its URI from the Secret, no PostgreSQL of ours. */
	o.db_uri_secret = "ext-db:url";
	o.db_password = NULL;
	list = render(&o, &rc, &err);
	assert_int_equal(rc, 0);
	assert_null(find(list, "StatefulSet", NULL));
	assert_null(find(list, "Secret", NULL));
	{
		size_t i;
		json_t *e;
		int found = 0;

		json_array_foreach(
		    json_object_get(container(find(list, "Deployment", NULL)), "env"), i, e)
		{
			const json_t *ref =
			    json_object_get(json_object_get(e, "valueFrom"), "secretKeyRef");
			if (strcmp(json_string_value(json_object_get(e, "name")),
				   "MLFLOW_BACKEND_STORE_URI"))
				continue;
			assert_string_equal(json_string_value(json_object_get(ref, "name")),
					    "ext-db");
			assert_string_equal(json_string_value(json_object_get(ref, "key")), "url");
			found = 1;
		}
		assert_true(found);
	}
	json_decref(list);
}

static void test_bad_values(void **state)
{
	static const struct {
		const char *mode, *name, *storage, *artifacts, *s3_secret, *flag;
	} cases[] = {
	    {"prod", NULL, NULL, NULL, NULL, "--mode"},
	    {NULL, NULL, NULL, NULL, NULL, "--mode"},
	    {"dev", "My_Server", NULL, NULL, NULL, "--name"},
	    {"dev", NULL, "nfs:/x", NULL, NULL, "--storage"},
	    {"dev", NULL, "pvc:ten", NULL, NULL, "--storage"},
	    {"dev", NULL, "hostpath:relative", NULL, NULL, "--storage"},
	    {"dev", NULL, NULL, "s3://b", NULL, "--artifacts"},
	    {"deploy", NULL, NULL, NULL, "s", "--artifacts"},
	    {"deploy", NULL, NULL, "gs://b", "s", "--artifacts"},
	    {"deploy", NULL, NULL, "s3://b", NULL, "--s3-secret"},
	    {"deploy", NULL, "pvc", "s3://b", "s", "--storage"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct expt_tracking_opts o = {0};
		struct expt_err err = EXPT_ERR_INIT;
		json_t *list;
		int rc;

		o.mode = cases[i].mode;
		o.name = cases[i].name;
		o.ns = "ns";
		o.storage = cases[i].storage;
		o.artifacts = cases[i].artifacts;
		o.s3_secret = cases[i].s3_secret;
		o.db_password = "p";
		list = render(&o, &rc, &err);
		if (rc != EXPT_EUSAGE || strncmp(err.msg, cases[i].flag, strlen(cases[i].flag)))
			fail_msg("case %zu: rc %d, message '%s', wanted %s", i, rc, err.msg,
				 cases[i].flag);
		assert_null(list);
	}
}

static void test_placement(void **state)
{
	const char *sel[] = {"kubernetes.io/hostname=node-real", NULL};
	const char *tol[] = {"expt-test/real-node", NULL};
	const char *bad[] = {"no-equals-sign", NULL};
	struct expt_tracking_opts o = {0};
	struct expt_err err = EXPT_ERR_INIT;
	json_t *list, *pod;
	int rc;

	(void)state;
	o.mode = "deploy";
	o.ns = "ns";
	o.db_password = "p";
	o.artifacts = "s3://b";
	o.s3_secret = "s";
	o.node_selector = sel;
	o.tolerations = tol;
	list = render(&o, &rc, &err);
	assert_int_equal(rc, 0);
	/* The server and the database both go where they are told. */
	pod = json_object_get(
	    json_object_get(json_object_get(find(list, "Deployment", NULL), "spec"), "template"),
	    "spec");
	assert_string_equal(json_string_value(json_object_get(json_object_get(pod, "nodeSelector"),
							      "kubernetes.io/hostname")),
			    "node-real");
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(pod, "tolerations"), 0), "key")),
			    "expt-test/real-node");
	pod = json_object_get(
	    json_object_get(json_object_get(find(list, "StatefulSet", NULL), "spec"), "template"),
	    "spec");
	assert_non_null(json_object_get(pod, "nodeSelector"));
	assert_non_null(json_object_get(pod, "tolerations"));
	json_decref(list);
	o.node_selector = bad;
	list = render(&o, &rc, &err);
	assert_int_equal(rc, EXPT_EUSAGE);
	assert_non_null(strstr(err.msg, "--node-selector: expected KEY=VALUE"));
	assert_null(list);
}

static void test_password(void **state)
{
	char a[33], b[33];
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	assert_int_equal(expt_kube_tracking_password(a, sizeof(a), &err), 0);
	assert_int_equal(expt_kube_tracking_password(b, sizeof(b), &err), 0);
	assert_int_equal(strlen(a), 32);
	assert_int_equal(
	    strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 32);
	assert_string_not_equal(a, b);
}

static void test_uri(void **state)
{
	char *u = expt_kube_tracking_uri("mlflow", "team-a");

	(void)state;
	assert_string_equal(u, "http://mlflow.team-a.svc.cluster.local:5000");
	free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dev),	       cmocka_unit_test(test_deploy_secrets),
	    cmocka_unit_test(test_bad_values), cmocka_unit_test(test_password),
	    cmocka_unit_test(test_placement),  cmocka_unit_test(test_uri),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
