/* expt build: the image of the spec's build: section, built and pushed; prints its pinned
 * reference (repository@sha256:...). docs/images.md. */
#include <getopt.h>
#include <string.h>

#include "buildimg.h"
#include "cli.h"
#include "output.h"
#include "specopts.h"

static const char usage[] =
    "usage: expt build [options] [KEY=VALUE ...]\n"
    "\n"
    "Builds the image described by the spec's build: section and pushes it to\n"
    "build.repository, then prints the pinned reference (repository@sha256:...).\n"
    "With build.base, expt itself writes the project's files as one reproducible\n"
    "layer on the base image and pushes only the blobs the registry lacks (no\n"
    "daemon); the same files give the same digest on any machine. The image is\n"
    "also tagged src-<digest of what went in>. With build.dockerfile instead, the\n"
    "first builder that works here (docker buildx, podman, buildah) builds and pushes.\n"
    "Progress per blob goes to stderr on\n"
    "a terminal. Registry credentials come from $DOCKER_CONFIG/config.json (else\n"
    "~/.docker/config.json): auths, credHelpers, credsStore. docs/images.md.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE       spec file (default: expt.yaml)\n"
    "  -v, --variant NAME    use a named variant of the spec\n"
    "      --platform P      OS/ARCH[/VARIANT] to build for (default: build.platform,\n"
    "                        else this machine's, e.g. linux/amd64)\n"
    "  -o, --output FORMAT   text (default: the reference) or json (digests, sizes,\n"
    "                        what was pushed)\n"
    "  -q, --quiet           no progress, even on a terminal\n"
    "  -h, --help            this help\n";

static int cmd_build(struct cli_ctx *ctx, int argc, char **argv);

const struct cli_cmd cli_cmd_build = {"build", "build the spec's image and push it to its registry",
				      usage, 0, cmd_build};

static void human(int64_t n, char *out, size_t sz)
{
	if (n >= 1 << 20)
		snprintf(out, sz, "%.1f MB", (double)n / (1 << 20));
	else if (n >= 1 << 10)
		snprintf(out, sz, "%.1f kB", (double)n / (1 << 10));
	else
		snprintf(out, sz, "%lld B", (long long)n);
}

static void progress(const struct expt_oci_event *ev, void *payload)
{
	struct cli_ctx *ctx = payload;
	int moving = !strcmp(ev->state, "uploading") || !strcmp(ev->state, "downloading");
	char size[32], done[32] = "";

	human(ev->size, size, sizeof(size));
	if (moving && ev->done > 0 && ev->size > 0)
		snprintf(done, sizeof(done), " %3d%%",
			 (int)(100 * (ev->done > ev->size ? ev->size : ev->done) / ev->size));
	/* A blob's line is rewritten in place while it moves, then by its outcome. */
	fprintf(stderr, "%s%-10s %.19s  %9s  %s%s%s\033[K", CLI_DIM(ctx->color_err), ev->what,
		ev->digest, size, ev->state, done, CLI_RESET(ctx->color_err));
	fputs(moving ? "\r" : "\n", stderr);
	fflush(stderr);
}

static json_t *result_json(const struct expt_spec *spec, const struct expt_oci_build_result *r)
{
	if (r->builder[0])
		return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ref", r->ref,
				 "repository", spec->build.repository, "digest", r->digest, "tag",
				 r->tag, "tag_ref", r->tag_ref, "platform", r->platform, "builder",
				 r->builder, "dockerfile", spec->build.dockerfile);
	return json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:I, s:I, s:I}, s:s, "
	    "s:{s:i, s:i, s:i, s:I}}",
	    "ref", r->ref, "repository", spec->build.repository, "digest", r->digest, "tag", r->tag,
	    "tag_ref", r->tag_ref, "platform", r->platform, "base", spec->build.base, "base_digest",
	    r->base_digest, "layer", "digest", r->layer_digest, "diff_id", r->layer_diff_id, "size",
	    (json_int_t)r->layer_size, "tar_size", (json_int_t)r->layer_tar_size, "files",
	    (json_int_t)r->files, "config", r->config_digest, "blobs", "pushed", r->blobs_pushed,
	    "mounted", r->blobs_mounted, "present", r->blobs_present, "bytes_pushed",
	    (json_int_t)r->bytes_pushed);
}

int cli_build_image(struct cli_ctx *ctx, const struct expt_spec *spec, const char *platform,
		    int quiet, struct expt_oci_build_result *res)
{
	struct expt_oci_build_opts bo;

	memset(&bo, 0, sizeof(bo));
	bo.platform = platform;
	if (!spec->build.set)
		return expt_err_set(&ctx->err, EXPT_EUSAGE,
				    "%s has no build: section; add one with base: (the image the "
				    "code goes on) and repository: (where to push), see "
				    "docs/images.md",
				    spec->path);
	if (spec->build.dockerfile)
		return cli_build_dockerfile(ctx, spec, platform, quiet, res);
	if (!quiet && ctx->tty_err) {
		bo.progress = progress;
		bo.payload = ctx;
	}
	return expt_oci_build(spec, &bo, res, &ctx->err);
}

static int cmd_build(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"file", required_argument, NULL, 'f'},   {"variant", required_argument, NULL, 'v'},
	    {"output", required_argument, NULL, 'o'}, {"platform", required_argument, NULL, 'P'},
	    {"quiet", no_argument, NULL, 'q'},	      {NULL, 0, NULL, 0},
	};
	struct cli_specopts so;
	struct expt_spec *spec = NULL;
	struct expt_oci_build_result res;
	enum cli_output fmt = CLI_OUT_TEXT;
	const char *platform = NULL;
	int c, rc = 0, quiet = 0;

	memset(&so, 0, sizeof(so));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":f:v:o:q", longopts, NULL)) != -1) {
		if (c != 'p' && c != 'B' && cli_specopts_option(&so, c, optarg))
			continue;
		switch (c) {
		case 'o':
			if (cli_parse_output(optarg, &fmt) ||
			    (fmt != CLI_OUT_TEXT && fmt != CLI_OUT_JSON)) {
				rc = cli_usage_error(ctx, &cli_cmd_build,
						     "unknown output format '%s' (text, json)",
						     optarg);
				goto out;
			}
			break;
		case 'P':
			platform = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			rc = cli_bad_option(ctx, &cli_cmd_build, c, argv);
			goto out;
		}
	}
	if ((rc = cli_specopts_args(ctx, &cli_cmd_build, &so, argc, argv, optind)))
		goto out;
	if ((rc = cli_load_spec(ctx, &so, &spec)))
		goto out;
	if ((rc = cli_build_image(ctx, spec, platform, quiet, &res)))
		goto out;
	if (fmt == CLI_OUT_JSON) {
		json_t *j = result_json(spec, &res);
		cli_emit(stdout, j, fmt);
		json_decref(j);
	} else {
		printf("%s\n", res.ref);
	}
out:
	expt_spec_free(spec);
	cli_specopts_release(&so);
	return rc;
}
