/* The MLflow tracking server's objects (dev and deploy shapes), applied all-or-nothing with
 * server-side apply, and its status read back. docs/tracking.md says what is generated. */
#include "tracking.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../util/buf.h"
#include "../../util/mem.h"

/* DNS-1035 label: what a Service name must be. */
static int dns1035(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (!n || n > max || s[0] < 'a' || s[0] > 'z' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* A Kubernetes quantity of bytes, roughly checked: digits, then an optional binary or decimal
 * suffix (the API server has the last word in the dry run). */
static int quantity_ok(const char *s)
{
	static const char *const suffix[] = {"", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"};
	size_t d = strspn(s, "0123456789");

	if (!d)
		return 0;
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++)
		if (!strcmp(s + d, suffix[i]))
			return 1;
	return 0;
}

char *expt_kube_tracking_uri(const char *name, const char *ns)
{
	return expt_xasprintf("http://%s.%s.svc.cluster.local:%d", name, ns, EXPT_TRACKING_PORT);
}

char *expt_kube_tracking_allowed_hosts(const char *name, const char *ns, const char *const *extra)
{
	struct expt_buf b = EXPT_BUF_INIT;
	const char *fmt[] = {"%s", "%s.%s", "%s.%s.svc", "%s.%s.svc.cluster.local"};

	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		char host[600];

		snprintf(host, sizeof(host), fmt[i], name, ns);
		expt_buf_addf(&b, "%s%s,%s:%d", b.len ? "," : "", host, host, EXPT_TRACKING_PORT);
	}
	/* Setting the list replaces MLflow's default (localhost and private addresses): keep
	 * them, for port-forwards, the ClusterIP and pod IPs. /health is never checked. */
	expt_buf_adds(&b, ",localhost,localhost:*,127.0.0.1,127.0.0.1:*,10.*,192.168.*");
	for (int i = 16; i < 32; i++)
		expt_buf_addf(&b, ",172.%d.*", i);
	for (size_t i = 0; extra && extra[i]; i++)
		expt_buf_addf(&b, ",%s", extra[i]);
	return expt_buf_detach(&b, NULL);
}

int expt_kube_tracking_password(char *out, size_t n, struct expt_err *err)
{
	static const char alnum[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	unsigned char raw[256];
	size_t got = 0;
	int fd;

	if (n < 2 || n > sizeof(raw))
		return expt_err_set(err, EXPT_EFAIL, "password length %zu out of range", n);
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return expt_err_errno(err, EXPT_EFAIL, "cannot open /dev/urandom");
	while (got < n - 1) {
		ssize_t r = read(fd, raw + got, n - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			close(fd);
			return expt_err_errno(err, EXPT_EFAIL, "cannot read /dev/urandom");
		}
		got += (size_t)r;
	}
	close(fd);
	/* 248 = 4 * 62: no bias. */
	for (size_t i = 0; i < n - 1; i++)
		out[i] = alnum[raw[i] % 62];
	out[n - 1] = 0;
	return 0;
}

static json_t *labels(const struct expt_tracking_opts *o, const char *component)
{
	return json_pack("{s:s, s:s, s:s, s:s}", "app.kubernetes.io/managed-by", "expt",
			 EXPT_TRACKING_L_NAME, "mlflow", EXPT_TRACKING_L_INSTANCE, o->name,
			 EXPT_TRACKING_L_COMPONENT, component);
}

static json_t *object(const char *api, const char *kind, const char *name,
		      const struct expt_tracking_opts *o, const char *component)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:{s:s}}}", "apiVersion", api, "kind", kind,
			 "metadata", "name", name, "namespace", o->ns, "labels",
			 labels(o, component), "annotations", EXPT_TRACKING_A_MODE, o->mode);
}

static json_t *selector(const struct expt_tracking_opts *o, const char *component)
{
	return json_pack("{s:s, s:s, s:s}", EXPT_TRACKING_L_NAME, "mlflow",
			 EXPT_TRACKING_L_INSTANCE, o->name, EXPT_TRACKING_L_COMPONENT, component);
}

static json_t *env_value(const char *name, const char *value)
{
	return json_pack("{s:s, s:s}", "name", name, "value", value);
}

static json_t *env_secret(const char *name, const char *secret, const char *key, int optional)
{
	return json_pack("{s:s, s:{s:{s:s, s:s, s:b}}}", "name", name, "valueFrom", "secretKeyRef",
			 "name", secret, "key", key, "optional", optional);
}

static json_t *http_probe(int initial, int period, int failures)
{
	return json_pack("{s:{s:s, s:s}, s:i, s:i, s:i, s:i}", "httpGet", "path", "/health", "port",
			 "http", "initialDelaySeconds", initial, "periodSeconds", period,
			 "timeoutSeconds", 5, "failureThreshold", failures);
}

static json_t *pvc_spec(const char *size, const char *storage_class)
{
	json_t *s = json_pack("{s:[s], s:{s:{s:s}}}", "accessModes", "ReadWriteOnce", "resources",
			      "requests", "storage", size);
	if (storage_class)
		json_object_set_new(s, "storageClassName", json_string(storage_class));
	return s;
}

/* nodeSelector and tolerations of a pod spec (where the server and the database may run). */
static void place(json_t *pod, const struct expt_tracking_opts *o)
{
	json_t *sel = json_object(), *tol = json_array();

	for (size_t i = 0; o->node_selector && o->node_selector[i]; i++) {
		const char *kv = o->node_selector[i], *eq = strchr(kv, '=');
		char key[256];

		snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
		json_object_set_new(sel, key, json_string(eq + 1));
	}
	for (size_t i = 0; o->tolerations && o->tolerations[i]; i++)
		json_array_append_new(
		    tol, json_pack("{s:s, s:s}", "key", o->tolerations[i], "operator", "Exists"));
	if (json_object_size(sel))
		json_object_set(pod, "nodeSelector", sel);
	if (json_array_size(tol))
		json_object_set(pod, "tolerations", tol);
	json_decref(sel);
	json_decref(tol);
}

/* Parses "SECRET[:KEY]". */
static void secret_key(const char *s, char *name, size_t n, const char **key)
{
	const char *colon = strchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : strlen(s);

	snprintf(name, n, "%.*s", (int)len, s);
	*key = colon ? colon + 1 : "uri";
}

static int check(const struct expt_tracking_opts *o, struct expt_err *err)
{
	int dev;

	if (!o->mode || (strcmp(o->mode, "dev") && strcmp(o->mode, "deploy")))
		return expt_err_set(err, EXPT_EUSAGE, "--mode: expected dev or deploy, got '%s'",
				    o->mode ? o->mode : "");
	dev = !strcmp(o->mode, "dev");
	/* name-postgres must stay a DNS label; 40 leaves room for pod name suffixes too. */
	if (!dns1035(o->name, 40))
		return expt_err_set(err, EXPT_EUSAGE,
				    "--name: expected a DNS label (lower-case letters, digits and "
				    "'-', starting with a letter, at most 40 characters), got '%s'",
				    o->name);
	if (!o->ns || !*o->ns)
		return expt_err_set(err, EXPT_EUSAGE, "--namespace: empty");
	if (o->replicas < 1 || o->replicas > 100)
		return expt_err_set(err, EXPT_EUSAGE, "--replicas: expected 1 to 100, got %d",
				    o->replicas);
	if (dev && o->replicas != 1)
		return expt_err_set(err, EXPT_EUSAGE,
				    "--replicas: dev mode runs one replica (SQLite is one file on "
				    "one volume); use --mode deploy for more");
	if (o->storage && strcmp(o->storage, "pvc")) {
		if (!strncmp(o->storage, "pvc:", 4)) {
			if (!quantity_ok(o->storage + 4))
				return expt_err_set(err, EXPT_EUSAGE,
						    "--storage: expected a size like 10Gi after "
						    "'pvc:', got '%s'",
						    o->storage + 4);
		} else if (strncmp(o->storage, "hostpath:/", 10)) {
			return expt_err_set(err, EXPT_EUSAGE,
					    "--storage: expected pvc, pvc:SIZE or "
					    "hostpath:/ABSOLUTE/PATH, got '%s'",
					    o->storage);
		}
	}
	for (size_t i = 0; o->node_selector && o->node_selector[i]; i++) {
		const char *eq = strchr(o->node_selector[i], '=');
		if (!eq || eq == o->node_selector[i] || eq - o->node_selector[i] > 250)
			return expt_err_set(err, EXPT_EUSAGE,
					    "--node-selector: expected KEY=VALUE, got '%s'",
					    o->node_selector[i]);
	}
	if (o->db_size && !quantity_ok(o->db_size))
		return expt_err_set(err, EXPT_EUSAGE,
				    "--db-size: expected a size like 10Gi, got '%s'", o->db_size);
	if (dev) {
		const char *only = o->artifacts	      ? "--artifacts"
				   : o->s3_secret     ? "--s3-secret"
				   : o->s3_endpoint   ? "--s3-endpoint"
				   : o->db_uri_secret ? "--db-uri-secret"
				   : o->db_size	      ? "--db-size"
						      : NULL;
		if (only)
			return expt_err_set(err, EXPT_EUSAGE, "%s: only with --mode deploy", only);
		return 0;
	}
	if (o->storage)
		return expt_err_set(err, EXPT_EUSAGE,
				    "--storage: only with --mode dev (deploy keeps artifacts on "
				    "S3: --artifacts s3://BUCKET)");
	if (!o->artifacts)
		return expt_err_set(
		    err, EXPT_EUSAGE,
		    "--artifacts: --mode deploy keeps artifacts on S3-compatible "
		    "storage: give --artifacts s3://BUCKET[/PREFIX] and --s3-secret");
	if (strncmp(o->artifacts, "s3://", 5) || !o->artifacts[5] || o->artifacts[5] == '/')
		return expt_err_set(err, EXPT_EUSAGE,
				    "--artifacts: expected s3://BUCKET[/PREFIX], got '%s'",
				    o->artifacts);
	if (!o->s3_secret)
		return expt_err_set(err, EXPT_EUSAGE,
				    "--s3-secret: the Secret holding AWS_ACCESS_KEY_ID and "
				    "AWS_SECRET_ACCESS_KEY is needed with --artifacts");
	if (o->s3_endpoint && strncmp(o->s3_endpoint, "http://", 7) &&
	    strncmp(o->s3_endpoint, "https://", 8))
		return expt_err_set(err, EXPT_EUSAGE,
				    "--s3-endpoint: expected an http:// or https:// URL, got '%s'",
				    o->s3_endpoint);
	if (!o->db_uri_secret && (!o->db_password || !*o->db_password))
		return expt_err_set(err, EXPT_EFAIL, "no database password");
	if (o->db_uri_secret && (o->db_uri_secret[0] == ':' || !*o->db_uri_secret))
		return expt_err_set(err, EXPT_EUSAGE,
				    "--db-uri-secret: expected SECRET[:KEY], got '%s'",
				    o->db_uri_secret);
	return 0;
}

static json_t *service(const struct expt_tracking_opts *o, const char *name, const char *component,
		       int port, int headless)
{
	json_t *svc = object("v1", "Service", name, o, component);

	json_object_set_new(
	    svc, "spec",
	    json_pack("{s:o, s:[{s:s, s:i, s:s, s:s}]}", "selector", selector(o, component),
		      "ports", "name", port == EXPT_TRACKING_PORT ? "http" : "postgres", "port",
		      port, "targetPort", port == EXPT_TRACKING_PORT ? "http" : "postgres",
		      "protocol", "TCP"));
	if (headless)
		json_object_set_new(json_object_get(svc, "spec"), "clusterIP", json_string("None"));
	return svc;
}

/* The database: a generated-password Secret, a headless Service, a one-pod StatefulSet. */
static void add_postgres(const struct expt_tracking_opts *o, json_t *items)
{
	char *name = expt_xasprintf("%s-postgres", o->name);
	json_t *secret = object("v1", "Secret", name, o, "database");
	json_t *sts = object("apps/v1", "StatefulSet", name, o, "database");
	json_t *ctr;

	json_object_set_new(json_object_get(json_object_get(secret, "metadata"), "annotations"),
			    EXPT_TRACKING_A_GENERATED, json_string("true"));
	json_object_set_new(secret, "type", json_string("Opaque"));
	json_object_set_new(secret, "stringData",
			    json_pack("{s:s, s:s, s:s}", "POSTGRES_USER", "mlflow",
				      "POSTGRES_PASSWORD", o->db_password, "POSTGRES_DB",
				      "mlflow"));
	json_array_append_new(items, secret);
	json_array_append_new(items, service(o, name, "database", 5432, 1));

	ctr = json_pack("{s:s, s:s, s:[{s:s, s:i}], s:[{s:{s:s}}], s:[o], s:[{s:s, s:s}],"
			" s:{s:{s:[s,s,s,s,s]}, s:i, s:i}, s:{s:{s:s, s:s}, s:{s:s}}}",
			"name", "postgres", "image",
			o->db_image ? o->db_image : EXPT_TRACKING_DB_IMAGE, "ports", "name",
			"postgres", "containerPort", 5432, "envFrom", "secretRef", "name", name,
			"env", env_value("PGDATA", "/var/lib/postgresql/data/pgdata"),
			"volumeMounts", "name", "data", "mountPath", "/var/lib/postgresql/data",
			"readinessProbe", "exec", "command", "pg_isready", "-U", "mlflow", "-d",
			"mlflow", "periodSeconds", 5, "failureThreshold", 6, "resources",
			"requests", "cpu", "250m", "memory", "256Mi", "limits", "memory", "1Gi");
	json_object_set_new(
	    sts, "spec",
	    json_pack("{s:s, s:i, s:{s:o}, s:{s:{s:o}, s:{s:[o]}}, s:[{s:{s:s}, s:o}]}",
		      "serviceName", name, "replicas", 1, "selector", "matchLabels",
		      selector(o, "database"), "template", "metadata", "labels",
		      labels(o, "database"), "spec", "containers", ctr, "volumeClaimTemplates",
		      "metadata", "name", "data", "spec",
		      pvc_spec(o->db_size ? o->db_size : "10Gi", o->storage_class)));
	place(json_object_get(json_object_get(json_object_get(sts, "spec"), "template"), "spec"),
	      o);
	json_array_append_new(items, sts);
	free(name);
}

int expt_kube_tracking_render(const struct expt_tracking_opts *o_in, json_t **out,
			      struct expt_err *err)
{
	struct expt_tracking_opts o = *o_in;
	json_t *items, *dep, *ctr, *cmd, *env, *pod, *volumes = NULL, *mounts = NULL;
	char *hosts, *pvc_name = NULL;
	int dev, rc;

	*out = NULL;
	if (!o.name)
		o.name = "mlflow";
	if (!o.replicas)
		o.replicas = 1;
	if ((rc = check(&o, err)))
		return rc;
	dev = !strcmp(o.mode, "dev");
	items = json_array();
	hosts = expt_kube_tracking_allowed_hosts(o.name, o.ns, o.extra_hosts);
	cmd = json_pack("[s,s,s,s,s,s,s,s,s]", "mlflow", "server", "--host", "0.0.0.0", "--port",
			"5000", "--allowed-hosts", hosts, "--serve-artifacts");
	free(hosts);
	env = json_array();

	if (dev) {
		const char *st = o.storage ? o.storage : "pvc";

		const char *more[] = {"--backend-store-uri",
				      "sqlite:////mlflow/mlflow.db",
				      "--artifacts-destination",
				      "/mlflow/artifacts",
				      "--workers",
				      "1"};

		for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
			json_array_append_new(cmd, json_string(more[i]));
		mounts = json_pack("[{s:s, s:s}]", "name", "data", "mountPath", "/mlflow");
		if (!strncmp(st, "hostpath:", 9)) {
			volumes = json_pack("[{s:s, s:{s:s, s:s}}]", "name", "data", "hostPath",
					    "path", st + 9, "type", "DirectoryOrCreate");
		} else {
			json_t *pvc;

			pvc_name = expt_xasprintf("%s-data", o.name);
			pvc = object("v1", "PersistentVolumeClaim", pvc_name, &o, "server");
			json_object_set_new(
			    pvc, "spec", pvc_spec(st[3] == ':' ? st + 4 : "10Gi", o.storage_class));
			json_array_append_new(items, pvc);
			volumes = json_pack("[{s:s, s:{s:s}}]", "name", "data",
					    "persistentVolumeClaim", "claimName", pvc_name);
		}
	} else {
		char secret[256];
		const char *key = "uri";

		if (o.db_uri_secret) {
			secret_key(o.db_uri_secret, secret, sizeof(secret), &key);
			json_array_append_new(
			    env, env_secret("MLFLOW_BACKEND_STORE_URI", secret, key, 0));
		} else {
			char *pg = expt_xasprintf("%s-postgres", o.name);
			add_postgres(&o, items);
			/* Kubernetes expands $(DB_PASSWORD) from the env entry before it: the
			 * password stays in the Secret, never in the Deployment. */
			json_array_append_new(
			    env, env_secret("DB_PASSWORD", pg, "POSTGRES_PASSWORD", 0));
			json_array_append_new(
			    env,
			    json_pack("{s:s, s:o}", "name", "MLFLOW_BACKEND_STORE_URI", "value",
				      json_sprintf("postgresql://mlflow:$(DB_PASSWORD)@%s.%s.svc:"
						   "5432/mlflow",
						   pg, o.ns)));
			free(pg);
		}
		json_array_append_new(
		    env, env_secret("AWS_ACCESS_KEY_ID", o.s3_secret, "AWS_ACCESS_KEY_ID", 0));
		json_array_append_new(env, env_secret("AWS_SECRET_ACCESS_KEY", o.s3_secret,
						      "AWS_SECRET_ACCESS_KEY", 0));
		if (o.s3_endpoint)
			json_array_append_new(env,
					      env_value("MLFLOW_S3_ENDPOINT_URL", o.s3_endpoint));
		else
			json_array_append_new(env, env_secret("MLFLOW_S3_ENDPOINT_URL", o.s3_secret,
							      "MLFLOW_S3_ENDPOINT_URL", 1));
		json_array_append_new(cmd, json_string("--artifacts-destination"));
		json_array_append_new(cmd, json_string(o.artifacts));
	}

	ctr = json_pack("{s:s, s:s, s:o, s:[{s:s, s:i, s:s}], s:o, s:o, s:o,"
			" s:{s:{s:s, s:s}, s:{s:s}}}",
			"name", "mlflow", "image",
			o.image ? o.image
			: dev	? EXPT_TRACKING_IMAGE
				: EXPT_TRACKING_IMAGE_FULL,
			"command", cmd, "ports", "name", "http", "containerPort",
			EXPT_TRACKING_PORT, "protocol", "TCP", "env", env, "readinessProbe",
			http_probe(5, 5, 3), "livenessProbe", http_probe(30, 10, 6), "resources",
			"requests", "cpu", "250m", "memory", "512Mi", "limits", "memory", "2Gi");
	if (!json_array_size(env))
		json_object_del(ctr, "env");
	if (mounts)
		json_object_set_new(ctr, "volumeMounts", mounts);
	pod = json_pack("{s:[o]}", "containers", ctr);
	place(pod, &o);
	if (volumes)
		json_object_set_new(pod, "volumes", volumes);
	dep = object("apps/v1", "Deployment", o.name, &o, "server");
	json_object_set_new(dep, "spec",
			    json_pack("{s:i, s:{s:s}, s:{s:o}, s:{s:{s:o}, s:o}}", "replicas",
				      o.replicas, "strategy", "type",
				      dev ? "Recreate" : "RollingUpdate", "selector", "matchLabels",
				      selector(&o, "server"), "template", "metadata", "labels",
				      labels(&o, "server"), "spec", pod));
	json_array_append_new(items, dep);
	json_array_append_new(items, service(&o, o.name, "server", EXPT_TRACKING_PORT, 0));
	free(pvc_name);
	*out = json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind", "List", "items", items);
	return 0;
}

/* --- applying --- */

/* The object's URL path without a query (caller frees). */
static char *obj_path(const json_t *obj)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *base = "/api/v1", *res = "secrets";

	if (!strcmp(kind, "Service"))
		res = "services";
	else if (!strcmp(kind, "PersistentVolumeClaim"))
		res = "persistentvolumeclaims";
	else if (!strcmp(kind, "Deployment"))
		base = "/apis/apps/v1", res = "deployments";
	else if (!strcmp(kind, "StatefulSet"))
		base = "/apis/apps/v1", res = "statefulsets";
	return expt_xasprintf("%s/namespaces/%s/%s/%s", base, ns, res, name);
}

static const char *obj_kind(const json_t *obj)
{
	return json_string_value(json_object_get(obj, "kind"));
}

static const char *obj_name(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

/* "KIND NAME: the server's message (field: cause)" of a refused request. */
static void describe_refusal(struct expt_buf *b, const json_t *obj, const struct expt_kube_req *r)
{
	expt_buf_addf(b, "%s %s: %s", obj_kind(obj), obj_name(obj),
		      r->st.message && *r->st.message ? r->st.message : r->err.msg);
	for (size_t i = 0; i < r->st.ncauses && i < 3; i++)
		if (r->st.causes[i].field &&
		    !(r->st.message && strstr(r->st.message, r->st.causes[i].field)))
			expt_buf_addf(b, " [%s: %s]", r->st.causes[i].field,
				      r->st.causes[i].message ? r->st.causes[i].message : "");
}

/* A Secret that o names must exist with the keys the server reads. */
static int check_secret(struct expt_kube *k, const char *ns, const char *flag, const char *name,
			const char *const *keys, struct expt_err *err)
{
	char *esc = expt_kube_escape(name);
	char *path = expt_xasprintf("/api/v1/namespaces/%s/secrets/%s", ns, esc ? esc : "");
	json_t *reply = NULL;
	struct expt_err e = EXPT_ERR_INIT;
	int rc = expt_kube_request(k, "GET", path, NULL, &reply, NULL, &e);

	free(esc);
	free(path);
	if (rc == EXPT_ENOTFOUND) {
		rc = expt_err_set(err, EXPT_EUSAGE,
				  "%s: Secret '%s' not found in namespace %s; nothing was created "
				  "(create it first: kubectl create secret generic %s -n %s "
				  "--from-literal=%s=...)",
				  flag, name, ns, name, ns, keys[0]);
	} else if (rc) {
		rc = expt_err_set(err, rc, "%s: reading Secret '%s': %s", flag, name, e.msg);
	} else {
		const json_t *data = json_object_get(reply, "data");
		for (size_t i = 0; keys[i] && !rc; i++)
			if (!json_object_get(data, keys[i]))
				rc = expt_err_set(err, EXPT_EUSAGE,
						  "%s: Secret '%s' in namespace %s has no key "
						  "'%s'; nothing was created",
						  flag, name, ns, keys[i]);
	}
	json_decref(reply);
	return rc;
}

int expt_kube_tracking_apply(struct expt_kube *k, const struct expt_tracking_opts *o, json_t *list,
			     struct expt_tracking_applied **done_out, size_t *ndone,
			     struct expt_err *err)
{
	json_t *items = json_object_get(list, "items");
	struct expt_kube_req *reqs = NULL;
	struct expt_tracking_applied *done = NULL;
	char **paths = NULL, **rvs = NULL;
	size_t n = json_array_size(items), nd = 0;
	int rc = 0;

	*done_out = NULL;
	*ndone = 0;
	{
		struct expt_err e = EXPT_ERR_INIT;
		char *p = expt_xasprintf("/api/v1/namespaces/%s", o->ns);
		int r = expt_kube_request(k, "GET", p, NULL, NULL, NULL, &e);

		free(p);
		if (r == EXPT_ENOTFOUND)
			return expt_err_set(
			    err, EXPT_EUSAGE,
			    "namespace '%s' does not exist on %s; nothing was created", o->ns,
			    expt_kube_cfg(k)->server);
		if (r && r != EXPT_EDENIED) /* unreachable, TLS...: say so once */
			return expt_err_set(err, r, "%s", e.msg);
	}
	if (o->s3_secret) {
		const char *keys[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", NULL};
		if ((rc = check_secret(k, o->ns, "--s3-secret", o->s3_secret, keys, err)))
			return rc;
	}
	if (o->db_uri_secret) {
		char name[256];
		const char *keys[] = {NULL, NULL};
		secret_key(o->db_uri_secret, name, sizeof(name), &keys[0]);
		if ((rc = check_secret(k, o->ns, "--db-uri-secret", name, keys, err)))
			return rc;
	}

	/* What exists already: its resourceVersion tells unchanged from configured. */
	reqs = expt_xcalloc(n + 1, sizeof(*reqs));
	paths = expt_xcalloc(n + 1, sizeof(*paths));
	rvs = expt_xcalloc(n + 1, sizeof(*rvs));
	done = expt_xcalloc(n + 1, sizeof(*done));
	for (size_t i = 0; i < n; i++) {
		paths[i] = obj_path(json_array_get(items, i));
		reqs[i].method = "GET";
		reqs[i].path = paths[i];
		reqs[i].want_reply = 1;
	}
	expt_kube_request_many(k, reqs, n, 8, err);
	expt_err_clear(err);
	for (size_t i = 0; i < n; i++) {
		json_t *obj = json_array_get(items, i);
		if (reqs[i].rc && reqs[i].rc != EXPT_ENOTFOUND) {
			struct expt_buf b = EXPT_BUF_INIT;
			describe_refusal(&b, obj, &reqs[i]);
			rc = expt_err_set(err, reqs[i].rc, "reading %s; nothing was created",
					  b.buf ? b.buf : "");
			expt_buf_release(&b);
			goto out;
		}
		if (!reqs[i].rc)
			rvs[i] = expt_xstrdup(json_string_value(json_object_get(
			    json_object_get(reqs[i].reply, "metadata"), "resourceVersion")));
	}
	/* A generated password that exists stays: the database was initialised with it. */
	for (size_t i = n; i-- > 0;) {
		json_t *obj = json_array_get(items, i);
		const json_t *ann =
		    json_object_get(json_object_get(obj, "metadata"), "annotations");
		if (rvs[i] && json_object_get(ann, EXPT_TRACKING_A_GENERATED)) {
			snprintf(done[nd].kind, sizeof(done[nd].kind), "%s", obj_kind(obj));
			snprintf(done[nd].name, sizeof(done[nd].name), "%s", obj_name(obj));
			done[nd++].what = "kept";
			json_array_remove(items, i);
			free(paths[i]);
			free(rvs[i]);
			memmove(paths + i, paths + i + 1, (n - i) * sizeof(*paths));
			memmove(rvs + i, rvs + i + 1, (n - i) * sizeof(*rvs));
			n--;
		}
	}
	for (size_t i = 0; i < n + 1; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
	}
	memset(reqs, 0, (n + 1) * sizeof(*reqs));

	/* All of them through the server's validation and admission first. */
	for (size_t i = 0; i < n; i++) {
		char *p = expt_xasprintf("%s?fieldManager=" EXPT_TRACKING_FIELD_MANAGER
					 "&force=true&dryRun=All",
					 paths[i]);
		free(paths[i]);
		paths[i] = p;
		reqs[i].method = "APPLY";
		reqs[i].path = paths[i];
		reqs[i].body = json_array_get(items, i);
	}
	expt_kube_request_many(k, reqs, n, 8, err);
	expt_err_clear(err);
	{
		struct expt_buf b = EXPT_BUF_INIT;
		size_t bad = 0;
		int first = 0;

		for (size_t i = 0; i < n; i++) {
			if (!reqs[i].rc)
				continue;
			if (!first)
				first = reqs[i].rc;
			expt_buf_adds(&b, bad++ ? "; " : "");
			describe_refusal(&b, json_array_get(items, i), &reqs[i]);
		}
		if (bad) {
			rc = expt_err_set(
			    err, first == EXPT_EDENIED ? EXPT_EDENIED : first,
			    "the server refused %zu of %zu objects in its dry run, so nothing was "
			    "created in namespace %s: %s",
			    bad, n, o->ns, b.buf);
			expt_buf_release(&b);
			goto out;
		}
		expt_buf_release(&b);
	}
	for (size_t i = 0; i < n; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
		memset(&reqs[i], 0, sizeof(reqs[i]));
		*strstr(paths[i], "&dryRun=All") = 0;
	}
	/* In order (the database before the server that needs it), one at a time. */
	for (size_t i = 0; i < n; i++) {
		json_t *obj = json_array_get(items, i), *reply = NULL;
		struct expt_kube_status st = EXPT_KUBE_STATUS_INIT;
		const char *rv;

		rc = expt_kube_request(k, "APPLY", paths[i], obj, &reply, &st, err);
		expt_kube_status_release(&st);
		if (rc) {
			json_decref(reply);
			goto out;
		}
		rv = json_string_value(
		    json_object_get(json_object_get(reply, "metadata"), "resourceVersion"));
		snprintf(done[nd].kind, sizeof(done[nd].kind), "%s", obj_kind(obj));
		snprintf(done[nd].name, sizeof(done[nd].name), "%s", obj_name(obj));
		done[nd++].what = !rvs[i]		      ? "created"
				  : rv && !strcmp(rv, rvs[i]) ? "unchanged"
							      : "configured";
		json_decref(reply);
	}
out:
	for (size_t i = 0; i < n + 1; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
		free(paths[i]);
		free(rvs[i]);
	}
	free(reqs);
	free(paths);
	free(rvs);
	*done_out = done;
	*ndone = nd;
	return rc;
}

/* --- status --- */

static const char *hint_for(const char *reason)
{
	static const struct {
		const char *reason, *hint;
	} hints[] = {
	    {"ImagePullBackOff", "the node cannot pull the image: check its name and tag, that "
				 "the nodes reach the registry, and imagePullSecrets; --image "
				 "chooses another (a mirror in your registry)"},
	    {"ErrImagePull", "the node cannot pull the image: check its name and tag, that the "
			     "nodes reach the registry, and imagePullSecrets; --image chooses "
			     "another"},
	    {"InvalidImageName", "the image reference is malformed: fix --image"},
	    {"CrashLoopBackOff", "the server keeps exiting: its last words are in "
				 "`kubectl logs --previous` (a missing psycopg2 or boto3 in the "
				 "image, or a database it cannot reach, are the usual causes)"},
	    {"CreateContainerConfigError", "a Secret or a key the container reads is missing "
					   "(--s3-secret, --db-uri-secret)"},
	    {"Unschedulable", "no node can take the pod; an unbound PersistentVolumeClaim means "
			      "the cluster has no default StorageClass: give --storage-class, or "
			      "--storage hostpath:/PATH in dev mode"},
	    {"ContainerCreating", "the node is starting the container (pulling the image, "
				  "mounting volumes)"},
	};

	for (size_t i = 0; reason && i < sizeof(hints) / sizeof(hints[0]); i++)
		if (!strcmp(reason, hints[i].reason))
			return hints[i].hint;
	return NULL;
}

static int cond_true(const json_t *obj, const char *type, const char **reason, const char **message)
{
	size_t i;
	json_t *c;

	json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")) ?: "", type))
			continue;
		if (reason)
			*reason = json_string_value(json_object_get(c, "reason"));
		if (message)
			*message = json_string_value(json_object_get(c, "message"));
		return !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
	}
	return 0;
}

static json_t *pod_entry(const json_t *pod)
{
	const json_t *md = json_object_get(pod, "metadata"), *st = json_object_get(pod, "status");
	const char *reason = NULL, *message = NULL, *sr = NULL, *sm = NULL;
	json_t *e, *cs;
	size_t i;

	json_array_foreach(json_object_get(st, "containerStatuses"), i, cs)
	{
		const json_t *w = json_object_get(json_object_get(cs, "state"), "waiting");
		const json_t *t = json_object_get(json_object_get(cs, "state"), "terminated");
		if (w && !reason) {
			reason = json_string_value(json_object_get(w, "reason"));
			message = json_string_value(json_object_get(w, "message"));
		} else if (t && !reason) {
			reason = json_string_value(json_object_get(t, "reason"));
			message = json_string_value(json_object_get(t, "message"));
		}
	}
	if (!reason && !cond_true(pod, "PodScheduled", &sr, &sm) && sr) {
		reason = sr;
		message = sm;
	}
	e = json_pack("{s:s?, s:s?, s:s?, s:b}", "name",
		      json_string_value(json_object_get(md, "name")), "component",
		      json_string_value(json_object_get(json_object_get(md, "labels"),
							EXPT_TRACKING_L_COMPONENT)),
		      "phase", json_string_value(json_object_get(st, "phase")), "ready",
		      cond_true(pod, "Ready", NULL, NULL));
	if (reason)
		json_object_set_new(e, "reason", json_string(reason));
	if (message)
		json_object_set_new(e, "message", json_string(message));
	if (hint_for(reason))
		json_object_set_new(e, "hint", json_string(hint_for(reason)));
	return e;
}

int expt_kube_tracking_status(struct expt_kube *k, const char *ns, const char *name, json_t **out,
			      struct expt_err *err)
{
	static const char *const coll[] = {"/api/v1/namespaces/%s/persistentvolumeclaims",
					   "/api/v1/namespaces/%s/secrets",
					   "/apis/apps/v1/namespaces/%s/statefulsets",
					   "/apis/apps/v1/namespaces/%s/deployments",
					   "/api/v1/namespaces/%s/services",
					   "/api/v1/namespaces/%s/pods"};
	enum { NCOLL = sizeof(coll) / sizeof(coll[0]) };
	struct expt_kube_req reqs[NCOLL];
	char *paths[NCOLL];
	char *sel = expt_xasprintf("app.kubernetes.io/managed-by=expt,%s=mlflow,%s=%s",
				   EXPT_TRACKING_L_NAME, EXPT_TRACKING_L_INSTANCE, name);
	char *esc = expt_kube_escape(sel);
	json_t *res = NULL, *objects = json_array(), *pods = json_array();
	int rc = 0;

	*out = NULL;
	memset(reqs, 0, sizeof(reqs));
	for (size_t i = 0; i < NCOLL; i++) {
		char *c = expt_xasprintf(coll[i], ns);
		paths[i] = expt_xasprintf("%s?labelSelector=%s", c, esc ? esc : "");
		free(c);
		reqs[i].method = "GET";
		reqs[i].path = paths[i];
		reqs[i].want_reply = 1;
	}
	if ((rc = expt_kube_request_many(k, reqs, NCOLL, 8, err)))
		goto out;
	{
		char *uri = expt_kube_tracking_uri(name, ns);
		res = json_pack("{s:s, s:s, s:s, s:n, s:n, s:i, s:i, s:b}", "name", name,
				"namespace", ns, "uri", uri, "mode", "image", "replicas", 0,
				"ready_replicas", 0, "available", 0);
		free(uri);
	}
	for (size_t c = 0; c + 1 < NCOLL; c++) {
		size_t i;
		json_t *obj;

		json_array_foreach(json_object_get(reqs[c].reply, "items"), i, obj)
		{
			const json_t *md = json_object_get(obj, "metadata");
			const json_t *st = json_object_get(obj, "status");
			const json_t *sp = json_object_get(obj, "spec");
			const char *kind = strstr(coll[c], "persistentvolumeclaims")
					       ? "PersistentVolumeClaim"
					   : strstr(coll[c], "secrets")	     ? "Secret"
					   : strstr(coll[c], "statefulsets") ? "StatefulSet"
					   : strstr(coll[c], "deployments")  ? "Deployment"
									     : "Service";
			json_t *e = json_pack("{s:s, s:s?}", "kind", kind, "name",
					      json_string_value(json_object_get(md, "name")));

			if (!strcmp(kind, "Deployment") || !strcmp(kind, "StatefulSet")) {
				json_int_t want =
				    json_integer_value(json_object_get(sp, "replicas"));
				json_int_t ready =
				    json_integer_value(json_object_get(st, "readyReplicas"));
				json_object_set_new(
				    e, "ready",
				    json_sprintf("%lld/%lld", (long long)ready, (long long)want));
				if (!strcmp(kind, "Deployment")) {
					const json_t *ann = json_object_get(md, "annotations");
					const json_t *ctr = json_array_get(
					    json_object_get(
						json_object_get(json_object_get(sp, "template"),
								"spec"),
						"containers"),
					    0);
					json_object_set(res, "mode",
							json_object_get(ann, EXPT_TRACKING_A_MODE)
							    ?: json_null());
					json_object_set(res, "image",
							json_object_get(ctr, "image")
							    ?: json_null());
					json_object_set_new(res, "replicas", json_integer(want));
					json_object_set_new(res, "ready_replicas",
							    json_integer(ready));
					json_object_set_new(
					    res, "available",
					    json_boolean(cond_true(obj, "Available", NULL, NULL) &&
							 ready > 0));
				}
			} else if (!strcmp(kind, "PersistentVolumeClaim")) {
				json_object_set(e, "ready",
						json_object_get(st, "phase") ?: json_null());
			} else if (!strcmp(kind, "Service")) {
				json_object_set(e, "ready",
						json_object_get(sp, "clusterIP") ?: json_null());
			}
			json_array_append_new(objects, e);
		}
	}
	{
		size_t i;
		json_t *pod;

		json_array_foreach(json_object_get(reqs[NCOLL - 1].reply, "items"), i, pod)
		    json_array_append_new(pods, pod_entry(pod));
	}
	if (!json_array_size(objects)) {
		rc = expt_err_set(err, EXPT_ENOTFOUND,
				  "no MLflow server named '%s' in namespace %s (expt tracking "
				  "deploy makes one)",
				  name, ns);
		json_decref(res);
		res = NULL;
		goto out;
	}
	json_object_set(res, "objects", objects);
	json_object_set(res, "pods", pods);
out:
	json_decref(objects);
	json_decref(pods);
	for (size_t i = 0; i < NCOLL; i++) {
		json_decref(reqs[i].reply);
		expt_kube_status_release(&reqs[i].st);
		free(paths[i]);
	}
	free(sel);
	free(esc);
	*out = res;
	return rc;
}
