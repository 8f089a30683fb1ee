/* The Job a run becomes (backend/kube/manifest.c): each spec field where docs/backends.md says
 * it goes, the pod_template merge rules, label values for any experiment name, and what a Job
 * cannot do refused with the spec field named. The API server's own verdict on these Jobs is
 * tests/cluster/t_kube_backend.sh (kubectl apply --dry-run=server, and real runs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/kube/manifest.h"
#include "spec/spec.h"
#include "util/util.h"

static char dir[256];

static int setup(void **state)
{
	char tmpl[] = "/tmp/expt-manifest-test-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	return chdir(dir);
}

static int teardown(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;

	(void)state;
	if (chdir("/"))
		return -1;
	return expt_remove_tree(dir, &err);
}

static struct expt_spec *load(const char *yaml)
{
	struct expt_spec_opts opts = {0};
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s = NULL;
	FILE *f = fopen("expt.yaml", "w");

	assert_non_null(f);
	fputs(yaml, f);
	assert_int_equal(fclose(f), 0);
	opts.path = "expt.yaml";
	if (expt_spec_load(&s, &opts, &diags, &err)) {
		for (size_t i = 0; i < diags.n; i++) {
			char line[1024];
			expt_diag_format(&diags.v[i], line, sizeof(line));
			fprintf(stderr, "%s\n", line);
		}
		fail_msg("spec did not load: %s", err.msg);
	}
	expt_diags_release(&diags);
	return s;
}

/* The Job for the spec's first run. */
static json_t *job_of(const struct expt_spec *s, int *rc, struct expt_err *err)
{
	struct expt_strv argv = EXPT_STRV_INIT, env = EXPT_STRV_INIT;
	struct expt_kube_run r;
	json_t *job = NULL;
	char *pj = expt_params_json(&s->runs[0].params);

	expt_strv_push(&argv, "python3");
	expt_strv_push(&argv, "train.py");
	expt_strv_push(&env, "EXPT_RUN_ID=m-1");
	expt_strv_push(&env, "A=b=c");
	memset(&r, 0, sizeof(r));
	r.run_id = "m-1";
	r.index = 4;
	r.argv = &argv;
	r.env = &env;
	r.params_json = pj;
	r.namespace_ = "ml";
	*rc = expt_kube_job_manifest(s, &r, &job, err);
	expt_strv_release(&argv);
	expt_strv_release(&env);
	free(pj);
	return job;
}

/* The value at a JSON-pointer-like path ("a/b/0/c"; '/' inside a key written ~1). */
static const char *str_at(json_t *root, const char *pointer)
{
	json_t *v = root;
	const char *p = pointer;

	while (*p && v) {
		char tok[256];
		size_t n = 0;
		char *end;
		long idx;

		while (*p && *p != '/' && n < sizeof(tok) - 1) {
			if (p[0] == '~' && p[1] == '1') {
				tok[n++] = '/';
				p += 2;
			} else {
				tok[n++] = *p++;
			}
		}
		tok[n] = '\0';
		if (*p == '/')
			p++;
		idx = strtol(tok, &end, 10);
		v = *end == '\0' && json_is_array(v) ? json_array_get(v, (size_t)idx)
						     : json_object_get(v, tok);
	}
	if (json_is_integer(v)) {
		static char num[32];
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return num;
	}
	return v ? json_string_value(v) : NULL;
}

static void assert_at(json_t *job, const char *pointer, const char *want)
{
	const char *got = str_at(job, pointer);
	if (!got || strcmp(got, want))
		fail_msg("%s: got %s, wanted %s", pointer, got ? got : "(none)", want);
}

static void test_fields(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s;
	json_t *job;
	int rc;

	(void)state;
	s = load("name: mnist\n"
		 "image: reg.lab/mnist:3\n"
		 "command: python3 train.py\n"
		 "params: {lr: 0.5}\n"
		 "resources: {cpu: 1500m, memory: 2Gi, gpu: 1}\n"
		 "retries: 2\n"
		 "timeout: 90s\n"
		 "secrets: [aws-creds]\n"
		 "inputs:\n"
		 "  data: {from: 'pvc://datasets/mnist/v2', mount: /data}\n"
		 "  nfs: nfs://filer.lab/exports/x\n"
		 "outputs:\n"
		 "  model: ./models\n"
		 "kubernetes:\n"
		 "  service_account: trainer\n"
		 "  priority_class: batch-low\n"
		 "  image_pull_policy: IfNotPresent\n"
		 "  node_selector: {gpu: a100}\n"
		 "  tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]\n"
		 "  labels: {team: vision}\n");
	job = job_of(s, &rc, &err);
	assert_int_equal(rc, 0);
	assert_at(job, "kind", "Job");
	assert_at(job, "metadata/name", "m-1");
	assert_at(job, "metadata/namespace", "ml");
	assert_at(job, "metadata/labels/expt.dev~1experiment", "mnist");
	assert_at(job, "metadata/labels/expt.dev~1run", "m-1");
	assert_at(job, "metadata/labels/expt.dev~1sweep-index", "4");
	assert_at(job, "metadata/labels/team", "vision");
	assert_at(job, "spec/backoffLimit", "2");
	assert_at(job, "spec/activeDeadlineSeconds", "90");
	assert_at(job, "spec/template/metadata/labels/expt.dev~1run", "m-1");
	assert_at(job, "spec/template/spec/restartPolicy", "Never");
	assert_at(job, "spec/template/spec/serviceAccountName", "trainer");
	assert_at(job, "spec/template/spec/priorityClassName", "batch-low");
	assert_at(job, "spec/template/spec/nodeSelector/gpu", "a100");
	assert_at(job, "spec/template/spec/tolerations/0/operator", "Exists");
	assert_at(job, "spec/template/spec/containers/0/name", "run");
	assert_at(job, "spec/template/spec/containers/0/image", "reg.lab/mnist:3");
	assert_at(job, "spec/template/spec/containers/0/imagePullPolicy", "IfNotPresent");
	assert_at(job, "spec/template/spec/containers/0/command/1", "train.py");
	assert_at(job, "spec/template/spec/containers/0/env/1/name", "A");
	assert_at(job, "spec/template/spec/containers/0/env/1/value", "b=c");
	assert_at(job, "spec/template/spec/containers/0/envFrom/0/secretRef/name", "aws-creds");
	assert_at(job, "spec/template/spec/containers/0/resources/requests/cpu", "1500m");
	assert_at(job, "spec/template/spec/containers/0/resources/limits/memory", "2Gi");
	assert_at(job, "spec/template/spec/containers/0/resources/limits/nvidia.com~1gpu", "1");
	/* params through the downward API */
	assert_at(job, "spec/template/metadata/annotations/expt.dev~1params", "{\"lr\":0.5}");
	assert_at(job, "spec/template/spec/volumes/0/downwardAPI/items/0/path", "params.json");
	assert_at(job, "spec/template/spec/containers/0/volumeMounts/0/mountPath", "/expt/params");
	assert_at(job, "spec/template/spec/containers/0/volumeMounts/1/mountPath", "/expt/output");
	/* pvc with a sub-path, nfs, hostPath made absolute */
	assert_at(job, "spec/template/spec/volumes/2/persistentVolumeClaim/claimName", "datasets");
	assert_at(job, "spec/template/spec/containers/0/volumeMounts/2/subPath", "mnist/v2");
	assert_at(job, "spec/template/spec/containers/0/volumeMounts/2/mountPath", "/data");
	assert_at(job, "spec/template/spec/volumes/3/nfs/server", "filer.lab");
	assert_at(job, "spec/template/spec/volumes/3/nfs/path", "/exports/x");
	assert_at(job, "spec/template/spec/volumes/4/hostPath/type", "DirectoryOrCreate");
	{
		const char *hp = str_at(job, "spec/template/spec/volumes/4/hostPath/path");
		assert_non_null(hp);
		assert_true(hp[0] == '/' && strstr(hp, "/models"));
	}
	json_decref(job);
	expt_spec_free(s);
}

static void test_pod_template_merge(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s;
	json_t *job;
	int rc;

	(void)state;
	s = load("name: m\nimage: i\ncommand: c\n"
		 "kubernetes:\n"
		 "  pod_template:\n"
		 "    metadata: {annotations: {a: b}}\n"
		 "    spec:\n"
		 "      restartPolicy: OnFailure\n"
		 "      containers:\n"
		 "        - name: run\n"
		 "          securityContext: {runAsUser: 1000}\n"
		 "        - name: sidecar\n"
		 "          image: busybox\n"
		 "      volumes: [{name: scratch, emptyDir: {}}]\n");
	job = job_of(s, &rc, &err);
	assert_int_equal(rc, 0);
	/* maps merged: expt's annotations kept beside the template's */
	assert_at(job, "spec/template/metadata/annotations/a", "b");
	assert_non_null(str_at(job, "spec/template/metadata/annotations/expt.dev~1params"));
	/* scalars replaced */
	assert_at(job, "spec/template/spec/restartPolicy", "OnFailure");
	/* named lists merged on name: expt's container keeps its image, gains the field */
	assert_at(job, "spec/template/spec/containers/0/image", "i");
	assert_at(job, "spec/template/spec/containers/0/securityContext/runAsUser", "1000");
	assert_at(job, "spec/template/spec/containers/1/name", "sidecar");
	assert_at(job, "spec/template/spec/volumes/2/name", "scratch");
	assert_at(job, "spec/template/spec/volumes/0/name", "expt-params");
	json_decref(job);
	expt_spec_free(s);
}

static void test_s3_refused(void **state)
{
	struct expt_err err = EXPT_ERR_INIT;
	struct expt_spec *s;
	json_t *job;
	int rc;

	(void)state;
	s = load("name: m\nimage: i\ncommand: c\noutputs: {ckpt: 's3://bucket/x'}\n");
	job = job_of(s, &rc, &err);
	assert_int_equal(rc, EXPT_EUSAGE);
	assert_null(job);
	assert_non_null(strstr(err.msg, "outputs.ckpt"));
	expt_spec_free(s);
}

static void test_labels(void **state)
{
	char out[80];

	(void)state;
	expt_kube_experiment_label("mnist", out, sizeof(out));
	assert_string_equal(out, "mnist");
	expt_kube_experiment_label("tf_mnist.v2", out, sizeof(out));
	assert_string_equal(out, "tf_mnist.v2"); /* a valid label value as it is */
	expt_kube_experiment_label("ends-with-dash-", out, sizeof(out));
	assert_true(strcmp(out, "ends-with-dash-") && strlen(out) <= 63);
	expt_kube_experiment_label(
	    "a-very-long-experiment-name-that-goes-on-and-on-beyond-sixty-three-chars", out,
	    sizeof(out));
	assert_true(strlen(out) <= 63);
	assert_true(out[strlen(out) - 1] != '-');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pod_template_merge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_s3_refused, setup, teardown),
	    cmocka_unit_test(test_labels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
