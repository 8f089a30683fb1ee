/* The Dockerfile path of expt build: the first builder that works here (docker buildx, podman,
 * buildah) builds build.dockerfile and pushes the image, tagged with a digest of its inputs.
 * docs/images.md. */
#include <fcntl.h>
#include <unistd.h>

#include "buildimg.h"
#include "oci/dl.h"
#include "oci/layer.h"

extern char **environ;

/* Runs argv with stdout and stderr on fd (the terminal's stderr, or a log file); its exit
 * status, or -1 when it could not be started. */
static int run_to(const char *const *argv, int fd)
{
	struct expt_strv env = EXPT_STRV_INIT;
	const char *dc = getenv("DOCKER_CONFIG");
	char *cfg = dc && *dc ? expt_xasprintf("%s/config.json", dc) : NULL;
	int st;

	/* Podman refuses to push when DOCKER_CONFIG names a directory without a config.json
	 * (which means "no credentials" to Docker and to expt): leave it out then. */
	for (char **e = environ; *e; e++)
		if (!cfg || expt_path_exists(cfg) || strncmp(*e, "DOCKER_CONFIG=", 14))
			expt_strv_push(&env, *e);
	free(cfg);
	st = expt_spawn_to_fd(argv, expt_strv_argv(&env), fd);
	expt_strv_release(&env);
	return st;
}

static int works(const char *const *argv)
{
	struct expt_buf b;
	int ok;

	expt_buf_init(&b, 1u << 16);
	ok = !expt_spawn_capture(argv, 20000, &b);
	expt_buf_release(&b);
	return ok;
}

/* "src-" + 24 hex of sha256(the context's files as a layer, the Dockerfile's path, platform). */
static int input_tag(struct cli_ctx *ctx, const struct expt_spec *spec, const char *platform,
		     char *tag, size_t n)
{
	struct expt_projfiles_opts sel = {&spec->build.include, &spec->build.exclude, 1};
	struct expt_strv files = EXPT_STRV_INIT;
	struct expt_buf tar = EXPT_BUF_INIT;
	char dig[72];
	int rc;

	rc = expt_projfiles_list(spec->build.context_abs, &sel, &files, &ctx->err);
	if (!rc)
		rc = expt_oci_layer_tar(spec->build.context_abs, &files, "/context", &tar,
					&ctx->err);
	if (!rc) {
		expt_buf_addf(&tar, "\ndockerfile=%s\nplatform=%s\n", spec->build.dockerfile,
			      platform ? platform : "");
		expt_oci_sha256(tar.buf, tar.len, dig, sizeof(dig));
		snprintf(tag, n, "src-%.24s", dig + 7);
	}
	expt_buf_release(&tar);
	expt_strv_release(&files);
	return rc ? ctx->err.code : 0;
}

int cli_build_dockerfile(struct cli_ctx *ctx, const struct expt_spec *spec, const char *platform,
			 int quiet, struct expt_oci_build_result *res)
{
	static const char *const docker_probe[] = {"docker", "buildx", "version", NULL};
	static const char *const docker_info[] = {"docker", "info", NULL};
	static const char *const podman_probe[] = {"podman", "--version", NULL};
	static const char *const buildah_probe[] = {"buildah", "--version", NULL};
	const char *plat = platform ? platform : spec->build.platform;
	char tag[80], tagref[800], *df = NULL, *digfile = NULL, *logpath = NULL, *authfile = NULL;
	const char *builder = NULL;
	struct expt_imgref ref;
	const char *why;
	int fd = 2, rc, st = 0, tls_off;
	struct expt_buf dig;

	memset(res, 0, sizeof(*res));
	expt_buf_init(&dig, 4096);
	if (!expt_ocilibs(&ctx->err))
		return ctx->err.code;
	if ((rc = input_tag(ctx, spec, plat, tag, sizeof(tag))))
		goto out;
	expt_imgref_parse(spec->build.repository, &ref, &why);
	tls_off = spec->build.insecure || expt_imgref_host_is_local(ref.host);
	snprintf(tagref, sizeof(tagref), "%s:%s", spec->build.repository, tag);
	df = expt_xasprintf("%s/%s", spec->build.context_abs, spec->build.dockerfile);
	if (!expt_path_exists(df)) {
		rc = expt_err_set(&ctx->err, EXPT_ENOTFOUND,
				  "%s:%d:%d: build.dockerfile: no such file: %s", spec->path,
				  spec->build.line, spec->build.col, df);
		goto out;
	}
	{
		char tmpl[] = "/tmp/expt-build-XXXXXX";
		if (!mkdtemp(tmpl)) {
			rc = expt_err_errno(&ctx->err, EXPT_EFAIL, "mkdtemp");
			goto out;
		}
		digfile = expt_xasprintf("%s/digest", tmpl);
		logpath = expt_xasprintf("%s/log", tmpl);
	}
	if (quiet || !ctx->tty_err) {
		fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = expt_err_errno(&ctx->err, EXPT_EFAIL, "%s", logpath);
			goto out;
		}
	}
	if (getenv("DOCKER_CONFIG") && *getenv("DOCKER_CONFIG")) {
		authfile = expt_xasprintf("%s/config.json", getenv("DOCKER_CONFIG"));
		if (!expt_path_exists(authfile)) {
			free(authfile);
			authfile = NULL;
		}
	}
	if (works(docker_probe) && works(docker_info)) {
		char *meta = expt_xasprintf("%s.json", digfile);
		const char *argv[16] = {"docker", "buildx", "build", "--push",		"-f",
					df,	  "-t",	    tagref,  "--metadata-file", meta};
		size_t n = 10;
		builder = "docker buildx";
		if (plat) {
			argv[n++] = "--platform";
			argv[n++] = plat;
		}
		argv[n++] = spec->build.context_abs;
		argv[n] = NULL;
		st = run_to(argv, fd);
		if (!st) {
			struct expt_buf m;
			expt_buf_init(&m, 1u << 20);
			if (!expt_read_file(meta, &m, &ctx->err)) {
				char *p = strstr(m.buf, "\"containerimage.digest\"");
				char *q = p ? strstr(p, "sha256:") : NULL;
				if (q)
					expt_buf_add(&dig, q, strspn(q, "sha256:0123456789abcdef"));
			}
			expt_err_clear(&ctx->err);
			expt_buf_release(&m);
			unlink(meta);
		}
		free(meta);
	} else if (works(podman_probe) || works(buildah_probe)) {
		int podman = works(podman_probe);
		const char *prog = podman ? "podman" : "buildah";
		const char *argv[20] = {prog, "build", "-f", df, "-t", tagref};
		size_t n = 6;
		builder = prog;
		if (plat) {
			argv[n++] = "--platform";
			argv[n++] = plat;
		}
		if (tls_off)
			argv[n++] = "--tls-verify=false";
		if (authfile) {
			argv[n++] = "--authfile";
			argv[n++] = authfile;
		}
		argv[n++] = spec->build.context_abs;
		argv[n] = NULL;
		st = run_to(argv, fd);
		if (!st) {
			const char *pv[12] = {prog, "push", "--digestfile", digfile};
			n = 4;
			if (tls_off)
				pv[n++] = "--tls-verify=false";
			if (authfile) {
				pv[n++] = "--authfile";
				pv[n++] = authfile;
			}
			pv[n++] = tagref;
			pv[n] = NULL;
			st = run_to(pv, fd);
			if (!st && !expt_read_file(digfile, &dig, &ctx->err))
				expt_buf_setlen(&dig, strspn(dig.buf, "sha256:0123456789abcdef"));
			expt_err_clear(&ctx->err);
		}
	} else {
		rc =
		    expt_err_set(&ctx->err, EXPT_EBACKEND,
				 "build.dockerfile needs an image builder, and none works here: "
				 "tried docker buildx (docker buildx version, docker info), podman "
				 "(podman --version) and buildah (buildah --version); install one, "
				 "or use build.base (expt builds that itself)");
		goto out;
	}
	if (st) {
		struct expt_strv tail = EXPT_STRV_INIT;
		struct expt_buf t = EXPT_BUF_INIT;
		if (fd != 2) {
			expt_tail_lines(logpath, 12, &tail);
			for (size_t i = 0; i < tail.n; i++)
				expt_buf_addf(&t, "\n  %s", tail.v[i]);
		}
		rc = expt_err_set(&ctx->err, EXPT_EBACKEND, "%s failed (exit %d) building %s%s",
				  builder, st, df, t.len ? t.buf : " (its output is above)");
		expt_buf_release(&t);
		expt_strv_release(&tail);
		goto out;
	}
	if (strncmp(dig.buf, "sha256:", 7) || dig.len != 71) {
		rc = expt_err_set(&ctx->err, EXPT_EBACKEND,
				  "%s pushed %s but did not say its digest", builder, tagref);
		goto out;
	}
	snprintf(res->digest, sizeof(res->digest), "%s", dig.buf);
	snprintf(res->tag, sizeof(res->tag), "%s", tag);
	snprintf(res->tag_ref, sizeof(res->tag_ref), "%s", tagref);
	snprintf(res->ref, sizeof(res->ref), "%s@%s", spec->build.repository, dig.buf);
	snprintf(res->platform, sizeof(res->platform), "%s", plat ? plat : "");
	snprintf(res->builder, sizeof(res->builder), "%s", builder);
	rc = 0;
out:
	if (fd > 2)
		close(fd);
	if (logpath) {
		char *d = expt_xstrdup(logpath);
		struct expt_err e = EXPT_ERR_INIT;
		*strrchr(d, '/') = '\0';
		expt_remove_tree(d, &e);
		free(d);
	}
	free(df);
	free(digfile);
	free(logpath);
	free(authfile);
	expt_buf_release(&dig);
	return rc;
}
