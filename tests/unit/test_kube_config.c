/* The kubeconfig loader (backend/kube/config.h): a table of cases, each a set of files written
 * in a temporary directory, the environment ($KUBECONFIG, $HOME, the in-cluster variables) and
 * options, with the resolved connection or the exact problems (file:line:col: field: message)
 * expected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/kube/config.h"
#include "util/util.h"

#define CERT64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define KEY64 "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUUKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo="

static char dir[256];
static int failures; /* cases that failed (all are run, each failure printed) */
#define CASE_FAIL(...) (print_error(__VA_ARGS__), failures++)

/* A kubeconfig with one cluster, user and context; %s slots: user block. */
#define ONE(server, user_block)                                                                    \
	"apiVersion: v1\n"                                                                         \
	"kind: Config\n"                                                                           \
	"clusters:\n"                                                                              \
	"- name: c1\n"                                                                             \
	"  cluster:\n"                                                                             \
	"    server: " server "\n"                                                                 \
	"    certificate-authority-data: " CERT64 "\n"                                             \
	"users:\n"                                                                                 \
	"- name: u1\n"                                                                             \
	"  user:\n" user_block "contexts:\n"                                                       \
	"- name: ctx\n"                                                                            \
	"  context: {cluster: c1, user: u1, namespace: team}\n"                                    \
	"current-context: ctx\n"

#define CERTUSER "    client-certificate-data: " CERT64 "\n    client-key-data: " KEY64 "\n"

struct file {
	const char *name, *text;
};

struct kcase {
	const char *what;
	struct file files[4];
	const char *kubeconfig_env; /* $KUBECONFIG; NULL: unset */
	const char *home;	    /* $HOME relative to dir ("" = dir); NULL: unset */
	const char *incluster;	    /* "HOST PORT" for KUBERNETES_SERVICE_HOST/PORT; NULL: unset */
	const char *pod_ns;	    /* $POD_NAMESPACE */
	const char *opt_kubeconfig, *opt_context, *opt_ns;
	int sa; /* pass sa_dir = dir/sa */
	int rc;
	/* rc 0: the resolved config as describe() writes it; else: each line must appear in the
	 * problems (diags and err, formatted, one per line) */
	const char *want;
};

static const struct kcase cases[] = {
    {"one file, client certificate",
     {{"a.yaml", ONE("https://10.0.0.1:6443", CERTUSER)}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=ctx cluster=c1 user=u1 server=https://10.0.0.1:6443 ns=team ca=data "
     "auth=cert from=a.yaml"},
    {"namespace override",
     {{"a.yaml", ONE("https://10.0.0.1:6443/", CERTUSER)}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     "other",
     0,
     0,
     "context=ctx cluster=c1 user=u1 server=https://10.0.0.1:6443 ns=other ca=data "
     "auth=cert from=a.yaml"},
    {"merge: first file wins for names and current-context",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://a:1'}\n"
		 "contexts:\n- name: ca\n  context: {cluster: c1}\ncurrent-context: ca\n"},
      {"b.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://b:1'}\n"
		 "- name: c2\n  cluster: {server: 'https://b:2'}\n"
		 "users:\n- name: ub\n  user: {token: tok-b}\n"
		 "contexts:\n- name: cb\n  context: {cluster: c2, user: ub, namespace: nb}\n"
		 "current-context: cb\n"}},
     "a.yaml:b.yaml:missing.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=ca cluster=c1 user= server=https://a:1 ns=default ca=system auth=none "
     "from=a.yaml"},
    {"merge: a context from the second file, by --context",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://a:1'}\n"
		 "contexts:\n- name: ca\n  context: {cluster: c1}\ncurrent-context: ca\n"},
      {"b.yaml", "clusters:\n- name: c2\n  cluster: {server: 'https://b:2'}\n"
		 "users:\n- name: ub\n  user: {token: tok-b}\n"
		 "contexts:\n- name: cb\n  context: {cluster: c2, user: ub, namespace: nb}\n"}},
     "a.yaml:b.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     "cb",
     NULL,
     0,
     0,
     "context=cb cluster=c2 user=ub server=https://b:2 ns=nb ca=system auth=token "
     "from=b.yaml"},
    {"missing context names the ones that exist",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://a:1'}\n"
		 "contexts:\n- name: one\n  context: {cluster: c1}\n"
		 "- name: two\n  context: {cluster: c1}\n"
		 "current-context: three\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:9:18: current-context: context 'three' not found in a.yaml; contexts there: "
     "one, two"},
    {"--context that does not exist",
     {{"a.yaml", ONE("https://x:1", CERTUSER)}},
     NULL,
     NULL,
     NULL,
     NULL,
     "a.yaml",
     "nope",
     NULL,
     0,
     EXPT_EUSAGE,
     "context 'nope' not found in a.yaml; contexts there: ctx"},
    {"missing cluster",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://a:1'}\n"
		 "contexts:\n- name: x\n  context:\n    cluster: c9\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:7:14: contexts[0].context.cluster: cluster 'c9' not found in a.yaml; clusters "
     "there: c1"},
    {"missing user",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://a:1'}\n"
		 "users:\n- name: alice\n  user: {token: t}\n"
		 "contexts:\n- name: x\n  context:\n    cluster: c1\n    user: bob\n"
		 "current-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:11:11: contexts[0].context.user: user 'bob' not found in a.yaml; users there: "
     "alice"},
    {"bad base64 in client-key-data",
     {{"a.yaml", ONE("https://x:1", "    client-certificate-data: " CERT64 "\n"
				    "    client-key-data: not*base64\n")}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:12:22: users[0].user.client-key-data: expected base64 (the PEM file encoded, as "
     "`base64 -w0 FILE` writes it), got a bad character or length at offset 3\n"
     "the kubeconfig has 1 problem"},
    {"base64 that is not PEM",
     {{"a.yaml", ONE("https://x:1", "    client-certificate-data: aGVsbG8=\n"
				    "    client-key-data: " KEY64 "\n")}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:11:30: users[0].user.client-certificate-data: expected base64 of PEM text "
     "(-----BEGIN ...), got 5 bytes that are not PEM"},
    {"a certificate without its key",
     {{"a.yaml", ONE("https://x:1", "    client-certificate-data: " CERT64 "\n")}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:9:3: users[0].user: has a client certificate but no client key: both are needed"},
    {"token file and CA file, relative to the kubeconfig's directory",
     {{"k/a.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://x:1\n"
		   "    certificate-authority: ca.crt\n"
		   "users:\n- name: u\n  user: {tokenFile: tok}\n"
		   "contexts:\n- name: x\n  context: {cluster: c1, user: u}\n"
		   "current-context: x\n"},
      {"k/ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
      {"k/tok", "secret\n"}},
     "k/a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=x cluster=c1 user=u server=https://x:1 ns=default ca=file:k/ca.crt "
     "auth=token-file:k/tok from=k/a.yaml"},
    {"a CA file that does not exist",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://x:1\n"
		 "    certificate-authority: /nonexistent/ca.crt\n"
		 "contexts:\n- name: x\n  context: {cluster: c1}\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:5:28: clusters[0].cluster.certificate-authority: cannot read /nonexistent/ca.crt"},
    {"exec plugin",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://x:1'}\n"
		 "users:\n- name: eks\n  user:\n    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1\n"
		 "      command: bin/get-token\n"
		 "      args: [--cluster, prod]\n"
		 "      env: [{name: AWS_PROFILE, value: ml}]\n"
		 "      provideClusterInfo: true\n"
		 "      installHint: install get-token\n"
		 "contexts:\n- name: x\n  context: {cluster: c1, user: eks}\n"
		 "current-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=x cluster=c1 user=eks server=https://x:1 ns=default ca=system "
     "auth=exec:client.authentication.k8s.io/v1:bin/get-token:--cluster,prod,:AWS_PROFILE=ml,"
     ":info=1 from=a.yaml"},
    {"exec plugin with a bad apiVersion and no command",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'https://x:1'}\n"
		 "users:\n- name: e\n  user:\n    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1alpha1\n"
		 "contexts:\n- name: x\n  context: {cluster: c1, user: e}\n"
		 "current-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:8:19: users[0].user.exec.apiVersion: expected client.authentication.k8s.io/v1 or "
     "v1beta1, got 'client.authentication.k8s.io/v1alpha1'\n"
     "a.yaml:8:7: users[0].user.exec: has no command (the credential plugin to run)"},
    {"YAML syntax error",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: [\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:"},
    {"wrong types",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'ftp://x'}\n"
		 "users: {u: 1}\n"
		 "contexts:\n- name: x\n  context: {cluster: c1}\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:4:8: users: expected a list, got a map"},
    {"a server that is no URL",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster: {server: 'ftp://x'}\n"
		 "contexts:\n- name: x\n  context: {cluster: c1}\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:3:21: clusters[0].cluster.server: expected an https:// URL (like "
     "https://10.0.0.1:6443), got 'ftp://x'"},
    {"insecure-skip-tls-verify with a CA",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://x:1\n"
		 "    insecure-skip-tls-verify: true\n"
		 "    certificate-authority-data: " CERT64 "\n"
		 "contexts:\n- name: x\n  context: {cluster: c1}\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_EUSAGE,
     "a.yaml:5:31: clusters[0].cluster.insecure-skip-tls-verify: set together with a "
     "certificate authority: choose one"},
    {"insecure-skip-tls-verify alone is honoured",
     {{"a.yaml", "clusters:\n- name: c1\n  cluster:\n    server: https://x:1\n"
		 "    insecure-skip-tls-verify: true\n"
		 "contexts:\n- name: x\n  context: {cluster: c1}\ncurrent-context: x\n"}},
     "a.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=x cluster=c1 user= server=https://x:1 ns=default ca=INSECURE auth=none "
     "from=a.yaml"},
    {"~/.kube/config when $KUBECONFIG is unset",
     {{"h/.kube/config", ONE("https://home:1", "    token: t\n")}},
     NULL,
     "h",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     0,
     "context=ctx cluster=c1 user=u1 server=https://home:1 ns=team ca=data auth=token "
     "from=h/.kube/config"},
    {"in-cluster: no kubeconfig, service host set",
     {{"sa/token", "tok\n"},
      {"sa/ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
      {"sa/namespace", "jobs\n"}},
     "missing.yaml",
     NULL,
     "10.96.0.1 443",
     NULL,
     NULL,
     NULL,
     NULL,
     1,
     0,
     "context=in-cluster cluster=in-cluster user=in-cluster server=https://10.96.0.1:443 "
     "ns=jobs ca=file:sa/ca.crt auth=token-file:sa/token from=sa"},
    {"in-cluster: IPv6 host, POD_NAMESPACE wins over the file",
     {{"sa/token", "tok\n"},
      {"sa/ca.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
      {"sa/namespace", "jobs\n"}},
     NULL,
     NULL,
     "fd00::1 6443",
     "from-env",
     NULL,
     NULL,
     NULL,
     1,
     0,
     "context=in-cluster cluster=in-cluster user=in-cluster server=https://[fd00::1]:6443 "
     "ns=from-env ca=file:sa/ca.crt auth=token-file:sa/token from=sa"},
    {"in-cluster without a token",
     {{"sa/ca.crt", "x"}},
     NULL,
     NULL,
     "10.96.0.1 443",
     NULL,
     NULL,
     NULL,
     NULL,
     1,
     EXPT_ENOTFOUND,
     "but no service-account token at /"},
    {"nothing at all",
     {{NULL, NULL}},
     "missing.yaml",
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     EXPT_ENOTFOUND,
     "no kubeconfig found (tried missing.yaml) and not inside a cluster"},
    {"--kubeconfig that does not exist",
     {{NULL, NULL}},
     NULL,
     NULL,
     "10.96.0.1 443",
     NULL,
     "missing.yaml",
     NULL,
     NULL,
     0,
     EXPT_ENOTFOUND,
     "no kubeconfig at missing.yaml"},
};

static void write_file(const char *name, const char *text)
{
	struct expt_err err = EXPT_ERR_INIT;
	char *slash, *d = expt_xstrdup(name);

	if ((slash = strrchr(d, '/'))) {
		*slash = 0;
		assert_int_equal(expt_mkdirs(d, &err), 0);
	}
	free(d);
	assert_int_equal(expt_write_file(name, text, strlen(text), &err), 0);
}

/* The resolved config in one line (paths relative to the test directory). */
static void describe(const struct expt_kube_config *c, struct expt_buf *b)
{
	size_t dl = strlen(dir);
#define REL(p) (!strncmp((p), dir, dl) && (p)[dl] == '/' ? (p) + dl + 1 : (p))

	expt_buf_addf(b, "context=%s cluster=%s user=%s server=%s ns=%s ca=", c->context,
		      c->cluster_name, c->user_name ? c->user_name : "(null)", c->server, c->ns);
	if (c->insecure)
		expt_buf_adds(b, "INSECURE");
	else if (c->ca_file)
		expt_buf_addf(b, "file:%s", REL(c->ca_file));
	else if (c->ca_pem)
		expt_buf_adds(b, "data");
	else
		expt_buf_adds(b, "system");
	expt_buf_adds(b, " auth=");
	if (c->exec) {
		expt_buf_addf(b, "exec:%s:%s:", c->exec->api_version, REL(c->exec->command));
		for (char **p = c->exec->args; *p; p++)
			expt_buf_addf(b, "%s,", *p);
		expt_buf_adds(b, ":");
		for (char **p = c->exec->env; *p; p++)
			expt_buf_addf(b, "%s,", *p);
		expt_buf_addf(b, ":info=%d", c->exec->provide_cluster_info);
	} else if (c->token_file) {
		expt_buf_addf(b, "token-file:%s", REL(c->token_file));
	} else if (c->token) {
		expt_buf_adds(b, "token");
	} else if (c->cert_pem) {
		assert_non_null(c->key_pem);
		assert_non_null(memmem(c->cert_pem, c->cert_len, "BEGIN CERTIFICATE", 17));
		assert_non_null(memmem(c->key_pem, c->key_len, "BEGIN PRIVATE KEY", 17));
		expt_buf_adds(b, "cert");
	} else {
		expt_buf_adds(b, "none");
	}
	expt_buf_addf(b, " from=%s", REL(c->context_file));
#undef REL
}

static void setenv_or_unset(const char *name, const char *value)
{
	if (value)
		setenv(name, value, 1);
	else
		unsetenv(name);
}

static void run_case(const struct kcase *k)
{
	struct expt_kube_config_opts o = EXPT_KUBE_CONFIG_OPTS_INIT;
	struct expt_kube_config *c = NULL;
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_buf got = EXPT_BUF_INIT;
	char host[64] = "", port[16] = "", home[512], sa[512];
	int rc;

	assert_int_equal(chdir(dir), 0);
	for (size_t i = 0; i < 4 && k->files[i].name; i++)
		write_file(k->files[i].name, k->files[i].text);
	setenv_or_unset("KUBECONFIG", k->kubeconfig_env);
	snprintf(home, sizeof(home), "%s/%s", dir, k->home ? k->home : "");
	setenv_or_unset("HOME", k->home ? home : NULL);
	if (k->incluster)
		assert_int_equal(sscanf(k->incluster, "%63s %15s", host, port), 2);
	setenv_or_unset("KUBERNETES_SERVICE_HOST", k->incluster ? host : NULL);
	setenv_or_unset("KUBERNETES_SERVICE_PORT", k->incluster ? port : NULL);
	setenv_or_unset("POD_NAMESPACE", k->pod_ns);
	snprintf(sa, sizeof(sa), "%s/sa", dir);
	o.kubeconfig = k->opt_kubeconfig;
	o.context = k->opt_context;
	o.ns = k->opt_ns;
	o.sa_dir = k->sa ? sa : NULL;
	rc = expt_kube_config_load(&c, &o, &diags, &err);
	if (rc == 0) {
		describe(c, &got);
	} else {
		char line[2048];

		for (size_t i = 0; i < diags.n; i++) {
			expt_diag_format(&diags.v[i], line, sizeof(line));
			expt_buf_addf(&got, "%s\n", line);
		}
		expt_err_format(&err, line, sizeof(line));
		expt_buf_addf(&got, "%s\n", line);
	}
	if (rc != k->rc)
		CASE_FAIL("%s: rc %d, want %d; got:\n%s\n", k->what, rc, k->rc, got.buf);
	else if (rc == 0) {
		if (strcmp(got.buf, k->want))
			CASE_FAIL("%s:\n got  %s\n want %s\n", k->what, got.buf, k->want);
	} else {
		char *want = expt_xstrdup(k->want);

		for (char *line = want, *next; line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = 0;
			if (!strstr(got.buf, line))
				CASE_FAIL("%s: missing\n  %s\nin\n%s\n", k->what, line, got.buf);
		}
		free(want);
	}
	expt_buf_release(&got);
	expt_diags_release(&diags);
	expt_kube_config_free(c);
	/* a fresh directory for the next case */
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(expt_remove_tree(dir, &err), 0);
	assert_int_equal(expt_mkdirs(dir, &err), 0);
}

static void test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
	assert_int_equal(failures, 0);
}

/* The parser alone (what the fuzz target feeds): a document in memory, its name in messages. */
static void test_parse_in_memory(void **state)
{
	static const char doc[] = ONE("https://m:1", CERTUSER);
	struct expt_kube_config *c = NULL;
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	assert_int_equal(expt_kube_config_parse(&c, doc, strlen(doc), "mem", NULL, &diags, &err),
			 0);
	assert_string_equal(c->server, "https://m:1");
	assert_string_equal(c->ns, "team");
	expt_kube_config_free(c);
	assert_int_equal(expt_kube_config_parse(&c, "- [", 3, "mem", NULL, &diags, &err),
			 EXPT_EUSAGE);
	assert_null(c);
	assert_true(diags.n > 0);
	assert_string_equal(diags.v[0].file, "mem");
	expt_diags_release(&diags);
}

static int setup(void **state)
{
	char tmpl[] = "/tmp/expt-kubecfg-test-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	return 0;
}

static int teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	if (chdir("/"))
		return -1;
	return expt_remove_tree(dir, &err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_parse_in_memory),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
