/* expt artifacts: a run's files, from wherever they live: its artifact directory, and the
 * MLflow side for a run linked to an MLflow run: the server's artifact proxy, or S3 when the
 * run's artifact location is s3:// (mlflow/s3.h). */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "mlflow/s3.h"
#include "mlflow_link.h"
#include "output.h"
#include "resolve.h"

static const char usage[] =
    "usage: expt artifacts ls RUN [PATH] [-o text|json]\n"
    "       expt artifacts get RUN PATH [DEST]\n"
    "\n"
    "ls lists a run's artifacts (or those under PATH): the files of its artifact\n"
    "directory (<output>/artifacts) and, for a run linked to an MLflow run, those of\n"
    "the MLflow run: through the server's artifact proxy, or straight from S3 when\n"
    "the run's artifact location is s3://BUCKET/PREFIX (MLFLOW_S3_ENDPOINT_URL,\n"
    "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION as MLflow reads\n"
    "them); WHERE says which holds each. get copies one file to DEST (default: its\n"
    "name in the current directory), from the artifact directory when it is there,\n"
    "else from the MLflow side.\n"
    "\n"
    "Options:\n"
    "  -o, --output FMT      text (default) or json\n"
    "  -h, --help            this help\n";

static int cmd_artifacts(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_artifacts = {"artifacts", "list or fetch a run's files", usage,
					  CLI_NEED_STORE, cmd_artifacts};

/* Where a linked run's artifacts are on the MLflow side: below root on the server's proxy, or
 * at s3://bucket/prefix (read with the environment's S3 endpoint and credentials). */
struct remote_art {
	char *root;
	struct expt_s3 *s3;
	char *bucket, *prefix;
	struct expt_err s3_err; /* why s3 could not be opened (no credentials): reported only
				   when S3 is needed, not for a file the run has locally */
};

static void remote_art_release(struct remote_art *ra)
{
	free(ra->root);
	expt_s3_close(ra->s3);
	free(ra->bucket);
	free(ra->prefix);
}

/* The MLflow side of run r: a client and where its artifacts are. 0 with neither ra->root nor
 * ra->s3 set when the run is not linked or its artifacts are neither proxied nor on S3. */
static int remote(struct cli_ctx *ctx, const char *run_id, struct cli_mlflow *mf,
		  struct remote_art *ra, struct expt_err *err)
{
	struct expt_kv_rows t = {0};
	const char *mrun = NULL, *uri = NULL, *au;
	json_t *run = NULL;
	int rc;

	memset(ra, 0, sizeof(*ra));
	if ((rc = expt_store_get_tags(ctx->store, run_id, &t, err)))
		return rc;
	for (size_t i = 0; i < t.n; i++) {
		if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_RUN))
			mrun = t.values[i];
		else if (!strcmp(t.keys[i], CLI_MLFLOW_TAG_URI))
			uri = t.values[i];
	}
	if (mrun && uri) {
		if (!cli_mlflow_client(mf, uri, err) || expt_mlflow_run_get(mf->m, mrun, &run, err))
			rc = err->code;
		else if ((au = json_string_value(
			      json_object_get(json_object_get(run, "info"), "artifact_uri")))) {
			if (!expt_s3_parse_uri(au, &ra->bucket, &ra->prefix))
				expt_s3_open(&ra->s3, &ra->s3_err);
			else
				expt_mlflow_artifact_root(au, &ra->root);
		}
	}
	json_decref(run);
	expt_kv_rows_release(&t);
	return rc;
}

/* Adds the files under dir/rel (recursively) to out as {path: {size, local}}. */
static void local_files(const char *dir, const char *rel, json_t *out, int depth)
{
	char *path = *rel ? expt_xasprintf("%s/%s", dir, rel) : expt_xstrdup(dir);
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (stat(path, &st)) {
		free(path);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		json_object_set_new(
		    out, rel, json_pack("{s:I,s:b}", "size", (json_int_t)st.st_size, "local", 1));
	} else if (depth < 32 && (d = opendir(path))) {
		while ((de = readdir(d))) {
			char *r;
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r = *rel ? expt_xasprintf("%s/%s", rel, de->d_name)
				 : expt_xstrdup(de->d_name);
			local_files(dir, r, out, depth + 1);
			free(r);
		}
		closedir(d);
	}
	free(path);
}

/* Adds the server's files under root/rel (recursively) to out, marking "mlflow". */
static int remote_files(struct expt_mlflow *m, const char *root, const char *rel, json_t *out,
			int depth, struct expt_err *err)
{
	char *path = *rel ? expt_xasprintf("%s/%s", root, rel) : expt_xstrdup(root);
	json_t *files = NULL, *f;
	size_t i;
	int rc;

	rc = expt_mlflow_artifact_list(m, path, &files, err);
	free(path);
	if (rc)
		return rc;
	json_array_foreach(files, i, f)
	{
		const char *p = json_string_value(json_object_get(f, "path")), *slash;
		char *full;
		json_t *have;
		if (!p)
			continue;
		/* The proxy answers with names in the directory listed. */
		if ((slash = strrchr(p, '/')))
			p = slash + 1;
		full = *rel ? expt_xasprintf("%s/%s", rel, p) : expt_xstrdup(p);
		if (json_is_true(json_object_get(f, "is_dir"))) {
			if (depth < 32 && !rc)
				rc = remote_files(m, root, full, out, depth + 1, err);
		} else {
			if (!(have = json_object_get(out, full)))
				json_object_set_new(out, full, have = json_object());
			if (!json_object_get(have, "size"))
				json_object_set(have, "size", json_object_get(f, "file_size"));
			json_object_set_new(have, "mlflow", json_true());
		}
		free(full);
	}
	json_decref(files);
	return rc;
}

/* Adds the objects under s3://bucket/prefix/rel to out, marking "mlflow". */
static int s3_files(const struct remote_art *ra, const char *rel, json_t *out, struct expt_err *err)
{
	char *pfx = !*rel	  ? expt_xstrdup(ra->prefix)
		    : *ra->prefix ? expt_xasprintf("%s/%s", ra->prefix, rel)
				  : expt_xstrdup(rel);
	json_t *files = NULL, *f;
	size_t i;
	int rc = expt_s3_list(ra->s3, ra->bucket, pfx, &files, err);

	free(pfx);
	if (rc)
		return rc;
	json_array_foreach(files, i, f)
	{
		const char *p = json_string_value(json_object_get(f, "path"));
		char *full = *rel ? expt_xasprintf("%s/%s", rel, p) : expt_xstrdup(p);
		json_t *have = json_object_get(out, full);
		if (!have)
			json_object_set_new(out, full, have = json_object());
		if (!json_object_get(have, "size"))
			json_object_set(have, "size", json_object_get(f, "file_size"));
		json_object_set_new(have, "mlflow", json_true());
		free(full);
	}
	json_decref(files);
	return 0;
}

static int copy_file(const char *from, const char *to, struct expt_err *err)
{
	FILE *in = fopen(from, "rb"), *out;
	char buf[65536];
	size_t n;
	int rc = 0;

	if (!in)
		return expt_err_errno(err, EXPT_EFAIL, "cannot read %s", from);
	if (!(out = fopen(to, "wb"))) {
		fclose(in);
		return expt_err_errno(err, EXPT_EFAIL, "cannot write %s", to);
	}
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n) {
			rc = expt_err_errno(err, EXPT_EFAIL, "cannot write %s", to);
			break;
		}
	fclose(in);
	if (fclose(out) && !rc)
		rc = expt_err_errno(err, EXPT_EFAIL, "cannot write %s", to);
	return rc;
}

static int cmd_artifacts(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
						 {NULL, 0, NULL, 0}};
	enum cli_output fmt = CLI_OUT_TEXT;
	struct expt_run_rec r;
	struct cli_mlflow mf = {0};
	struct remote_art ra = {0};
	char *dir = NULL;
	const char *verb, *rel;
	json_t *files = NULL;
	int c, rc;

	memset(&r, 0, sizeof(r));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":o:", longopts, NULL)) != -1) {
		if (c == 'o') {
			if ((rc = cli_opt_output(ctx, &cli_cmd_artifacts, optarg, &fmt, 0)))
				return rc;
		} else {
			return cli_bad_option(ctx, &cli_cmd_artifacts, c, argv);
		}
	}
	if (argc - optind < 2)
		return cli_usage_error(ctx, &cli_cmd_artifacts, "expected ls or get, and a run");
	verb = argv[optind];
	if (strcmp(verb, "ls") && strcmp(verb, "get"))
		return cli_usage_error(ctx, &cli_cmd_artifacts, "unknown action '%s' (ls or get)",
				       verb);
	if (!strcmp(verb, "ls") ? argc - optind > 3 : argc - optind < 3 || argc - optind > 4)
		return cli_usage_error(ctx, &cli_cmd_artifacts, "wrong number of arguments");
	rel = argc - optind > 2 ? argv[optind + 2] : "";
	while (*rel == '/')
		rel++;
	if (strstr(rel, ".."))
		return cli_usage_error(ctx, &cli_cmd_artifacts, "a PATH must not contain '..'");
	if ((rc = cli_resolve_run(ctx, argv[optind + 1], &r)))
		return rc;
	dir = expt_xasprintf("%s/artifacts", r.output_dir ? r.output_dir : ".");
	if ((rc = remote(ctx, r.run_id, &mf, &ra, &ctx->err)))
		goto out;
	if (!strcmp(verb, "get")) {
		const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
		const char *dest = argc - optind > 3 ? argv[optind + 3] : base;
		char *local = expt_xasprintf("%s/%s", dir, rel);
		struct stat st;
		if (!stat(local, &st) && S_ISREG(st.st_mode)) {
			rc = copy_file(local, dest, &ctx->err);
		} else if (ra.bucket && !ra.s3) {
			ctx->err = ra.s3_err;
			rc = ctx->err.code;
		} else if (ra.s3) {
			char *key = *ra.prefix ? expt_xasprintf("%s/%s", ra.prefix, rel)
					       : expt_xstrdup(rel);
			rc = expt_s3_get(ra.s3, ra.bucket, key, dest, &ctx->err);
			if (rc == EXPT_ENOTFOUND)
				expt_err_set(
				    &ctx->err, rc,
				    "%s has no artifact '%s' (neither in %s nor at s3://%s/%s "
				    "on %s)",
				    r.run_id, rel, dir, ra.bucket, key, expt_s3_endpoint(ra.s3));
			free(key);
		} else if (ra.root) {
			char *path = expt_xasprintf("%s/%s", ra.root, rel);
			rc = expt_mlflow_artifact_get(mf.m, path, dest, &ctx->err);
			free(path);
			if (rc == EXPT_ENOTFOUND)
				expt_err_set(&ctx->err, rc,
					     "%s has no artifact '%s' (neither in %s nor on %s)",
					     r.run_id, rel, dir, expt_mlflow_base(mf.m));
		} else {
			rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND, "%s has no artifact '%s'",
					  r.run_id, rel);
		}
		free(local);
		if (!rc)
			fprintf(stderr, "expt: %s\n", dest);
		goto out;
	}
	files = json_object();
	local_files(dir, rel, files, 0);
	if (ra.root && (rc = remote_files(mf.m, ra.root, rel, files, 0, &ctx->err)))
		goto out;
	if (ra.bucket && !ra.s3) {
		ctx->err = ra.s3_err;
		rc = ctx->err.code;
		goto out;
	}
	if (ra.s3 && (rc = s3_files(&ra, rel, files, &ctx->err)))
		goto out;
	if (fmt != CLI_OUT_TEXT) {
		json_t *a = json_array(), *v;
		const char *k;
		json_object_foreach(files, k, v)
		{
			json_t *e = json_pack(
			    "{s:s,s:O}", "path", k, "size",
			    json_object_get(v, "size") ? json_object_get(v, "size") : json_null());
			json_object_set_new(e, "local", json_boolean(json_object_get(v, "local")));
			json_object_set_new(e, "mlflow",
					    json_boolean(json_object_get(v, "mlflow")));
			json_array_append_new(a, e);
		}
		cli_emit(stdout, a, fmt);
		json_decref(a);
	} else {
		json_t *v;
		const char *k;
		printf("%-40s %12s  %s\n", "PATH", "SIZE", "WHERE");
		json_object_foreach(files, k, v)
		{
			int l = json_object_get(v, "local") != NULL,
			    m = json_object_get(v, "mlflow") != NULL;
			printf("%-40s %12lld  %s\n", k,
			       (long long)json_integer_value(json_object_get(v, "size")),
			       l && m ? "local, mlflow"
			       : l    ? "local"
				      : "mlflow");
		}
	}
out:
	json_decref(files);
	free(dir);
	remote_art_release(&ra);
	cli_mlflow_release(&mf);
	expt_run_rec_release(&r);
	return rc;
}
