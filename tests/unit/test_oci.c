/* oci/: the reproducible layer (the same tar and gzip bytes whatever the files' mtimes, owners
 * and group/other bits; modes, long names and links kept, as Python's tarfile reads them),
 * digests, the WWW-Authenticate parser, the index platform picker, image references and Docker
 * credentials. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>
#include <zlib.h>

#include <cmocka.h>

#include "oci/layer.h"
#include "oci/registry.h"
#include "util/util.h"

static char dir[256];

static int setup(void **state)
{
	char tmpl[] = "/tmp/expt-oci-test-XXXXXX";

	(void)state;
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	return 0;
}

static int teardown(void **state)
{
	struct expt_err e = EXPT_ERR_INIT;

	(void)state;
	return expt_remove_tree(dir, &e);
}

static void put(const char *rel, const char *text, mode_t mode)
{
	char *p = expt_xasprintf("%s/%s", dir, rel), *slash = strrchr(p, '/');
	struct expt_err e = EXPT_ERR_INIT;

	*slash = '\0';
	assert_int_equal(expt_mkdirs(p, &e), 0);
	*slash = '/';
	assert_int_equal(expt_write_file(p, text, strlen(text), &e), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(p);
}

#define LONG_DIR                                                                                   \
	"a-directory-name-that-is-long/and-another-one-that-is-also-rather-long/"                  \
	"and-a-third-one-to-pass-one-hundred"
#define VERY_LONG                                                                                  \
	"x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789x1234567" \
	"8"                                                                                        \
	"9x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456789x123456" \
	"7"                                                                                        \
	"89x123456789.py"

static void make_tree(void)
{
	put("main.py", "print('hi')\n", 0644);
	put("bin/run", "#!/bin/sh\necho run\n", 0755);
	put(LONG_DIR "/deep.py", "deep = 1\n", 0644);
	put("v/" VERY_LONG, "long = 1\n", 0600);
	unlink("link");
	{
		char *l = expt_xasprintf("%s/link", dir);
		unlink(l);
		assert_int_equal(symlink("main.py", l), 0);
		free(l);
	}
}

static void files_of(struct expt_strv *files)
{
	struct expt_err e = EXPT_ERR_INIT;
	struct expt_projfiles_opts o = {NULL, NULL, 1};

	assert_int_equal(expt_projfiles_list(dir, &o, files, &e), 0);
}

static void layer(struct expt_buf *tar, struct expt_buf *gz)
{
	struct expt_strv files = EXPT_STRV_INIT;
	struct expt_err e = EXPT_ERR_INIT;

	files_of(&files);
	assert_int_equal(expt_oci_layer_tar(dir, &files, "/app", tar, &e), 0);
	assert_int_equal(expt_oci_gzip(tar->buf, tar->len, gz, &e), 0);
	expt_strv_release(&files);
}

static void test_sha256(void **state)
{
	char d[72];

	(void)state;
	expt_oci_sha256("", 0, d, sizeof(d));
	assert_string_equal(
	    d, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expt_oci_sha256("abc", 3, d, sizeof(d));
	assert_string_equal(
	    d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_layer_is_reproducible(void **state)
{
	struct expt_buf t1 = EXPT_BUF_INIT, g1 = EXPT_BUF_INIT, t2 = EXPT_BUF_INIT,
			g2 = EXPT_BUF_INIT;
	struct utimbuf old = {1000000000, 1000000000};
	char *p;

	(void)state;
	make_tree();
	layer(&t1, &g1);
	/* Another checkout: other mtimes, group-writable files (another umask). */
	p = expt_xasprintf("%s/main.py", dir);
	assert_int_equal(utime(p, &old), 0);
	assert_int_equal(chmod(p, 0664), 0);
	free(p);
	p = expt_xasprintf("%s/bin/run", dir);
	assert_int_equal(chmod(p, 0775), 0);
	free(p);
	layer(&t2, &g2);
	assert_int_equal(t1.len, t2.len);
	assert_memory_equal(t1.buf, t2.buf, t1.len);
	assert_int_equal(g1.len, g2.len);
	assert_memory_equal(g1.buf, g2.buf, g1.len);
	assert_int_equal(t1.len % 512, 0);
	/* gzip: magic, deflate, no flags, mtime 0. */
	assert_memory_equal(g1.buf, "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
	{
		/* It inflates back to the tar. */
		z_stream z;
		unsigned char *out = malloc(t1.len + 16);
		memset(&z, 0, sizeof(z));
		assert_int_equal(inflateInit2(&z, 15 + 32), Z_OK);
		z.next_in = (Bytef *)g1.buf;
		z.avail_in = (uInt)g1.len;
		z.next_out = out;
		z.avail_out = (uInt)t1.len + 16;
		assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
		assert_int_equal(z.total_out, t1.len);
		assert_memory_equal(out, t1.buf, t1.len);
		inflateEnd(&z);
		free(out);
	}
	expt_buf_release(&t1);
	expt_buf_release(&g1);
	expt_buf_release(&t2);
	expt_buf_release(&g2);
}

/* Python's tarfile reads the layer: names (long ones too), types, modes, owners, mtimes. */
static void test_layer_reads_back(void **state)
{
	struct expt_buf tar = EXPT_BUF_INIT, gz = EXPT_BUF_INIT, got = EXPT_BUF_INIT;
	struct expt_err e = EXPT_ERR_INIT;
	char *path = expt_xasprintf("%s.tar", dir);
	const char *argv[] = {
	    "python3", "-c",
	    "import sys, tarfile\n"
	    "for m in tarfile.open(sys.argv[1]):\n"
	    "  print(m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.mtime, "
	    "m.uname or '-', m.linkname or '-')\n",
	    path, NULL};

	(void)state;
	make_tree();
	layer(&tar, &gz);
	assert_int_equal(expt_write_file(path, tar.buf, tar.len, &e), 0);
	assert_int_equal(expt_spawn_capture(argv, 30000, &got), 0);
	assert_string_equal(got.buf, "app 5 0o755 0 0 1 - -\n"
				     "app/a-directory-name-that-is-long 5 0o755 0 0 1 - -\n"
				     "app/a-directory-name-that-is-long/and-another-one-that-is-"
				     "also-rather-long 5 0o755 0 0 1 - -\n"
				     "app/" LONG_DIR " 5 0o755 0 0 1 - -\n"
				     "app/" LONG_DIR "/deep.py 0 0o644 0 0 1 - -\n"
				     "app/bin 5 0o755 0 0 1 - -\n"
				     "app/bin/run 0 0o755 0 0 1 - -\n"
				     "app/link 2 0o777 0 0 1 - main.py\n"
				     "app/main.py 0 0o644 0 0 1 - -\n"
				     "app/v 5 0o755 0 0 1 - -\n"
				     "app/v/" VERY_LONG " 0 0o644 0 0 1 - -\n");
	unlink(path);
	free(path);
	expt_buf_release(&tar);
	expt_buf_release(&gz);
	expt_buf_release(&got);
}

static void test_challenge(void **state)
{
	struct expt_oci_challenge c;

	(void)state;
	assert_int_equal(expt_oci_challenge_parse("Basic realm=\"expt-test\"", &c), 0);
	assert_string_equal(c.scheme, "Basic");
	assert_string_equal(c.realm, "expt-test");
	assert_int_equal(
	    expt_oci_challenge_parse("Bearer realm=\"https://auth.example/token\",service="
				     "\"registry.example\",scope=\"repository:a/b:pull,push\"",
				     &c),
	    0);
	assert_string_equal(c.scheme, "Bearer");
	assert_string_equal(c.realm, "https://auth.example/token");
	assert_string_equal(c.service, "registry.example");
	assert_string_equal(c.scope, "repository:a/b:pull,push");
	/* bare values, odd spacing, escapes, error= */
	assert_int_equal(expt_oci_challenge_parse("  bearer  realm=https://x/t , service=s,"
						  "error=\"insufficient_scope\", x=\"a\\\"b\"",
						  &c),
			 0);
	assert_string_equal(c.scheme, "bearer");
	assert_string_equal(c.realm, "https://x/t");
	assert_string_equal(c.service, "s");
	assert_string_equal(c.error, "insufficient_scope");
	assert_int_equal(expt_oci_challenge_parse("", &c), -1);
	assert_int_equal(expt_oci_challenge_parse(NULL, &c), -1);
	/* an unterminated quote ends the value */
	assert_int_equal(expt_oci_challenge_parse("Bearer realm=\"abc", &c), 0);
	assert_string_equal(c.realm, "abc");
}

static void test_index_pick(void **state)
{
	static const char idx[] =
	    "{\"schemaVersion\":2,\"manifests\":["
	    "{\"digest\":\"sha256:aa\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
	    "{\"digest\":\"sha256:bb\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\","
	    "\"variant\":\"v8\"}},"
	    "{\"digest\":\"sha256:cc\",\"platform\":{\"os\":\"unknown\",\"architecture\":"
	    "\"unknown\"}}]}";
	char d[72], have[256];

	(void)state;
	assert_int_equal(
	    expt_oci_index_pick(idx, strlen(idx), "linux/amd64", d, sizeof(d), have, sizeof(have)),
	    0);
	assert_string_equal(d, "sha256:aa");
	assert_int_equal(
	    expt_oci_index_pick(idx, strlen(idx), "linux/arm64", d, sizeof(d), NULL, 0), 0);
	assert_string_equal(d, "sha256:bb");
	assert_int_equal(
	    expt_oci_index_pick(idx, strlen(idx), "linux/arm64/v8", d, sizeof(d), NULL, 0), 0);
	assert_int_equal(
	    expt_oci_index_pick(idx, strlen(idx), "linux/s390x", d, sizeof(d), have, sizeof(have)),
	    1);
	assert_string_equal(have, "linux/amd64, linux/arm64/v8");
	/* no platform: linux/amd64 */
	assert_int_equal(expt_oci_index_pick("{\"manifests\":[{\"digest\":\"sha256:dd\"}]}", 38,
					     "linux/amd64", d, sizeof(d), NULL, 0),
			 0);
	assert_string_equal(d, "sha256:dd");
	assert_int_equal(expt_oci_index_pick("{}", 2, "linux/amd64", d, sizeof(d), NULL, 0), -1);
	assert_int_equal(expt_oci_index_pick("nope", 4, "linux/amd64", d, sizeof(d), NULL, 0), -1);
}

static void test_imgref(void **state)
{
	struct expt_imgref r;
	const char *why;

	(void)state;
	assert_int_equal(expt_imgref_parse("127.0.0.1:5000/team/app:v1", &r, &why), 0);
	assert_string_equal(r.host, "127.0.0.1:5000");
	assert_string_equal(r.repo, "team/app");
	assert_string_equal(r.tag, "v1");
	assert_int_equal(expt_imgref_parse("python:3.12", &r, &why), 0);
	assert_string_equal(r.host, "index.docker.io");
	assert_string_equal(r.repo, "library/python");
	assert_int_equal(
	    expt_imgref_parse("ghcr.io/org/app@sha256:"
			      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7"
			      "852b855",
			      &r, &why),
	    0);
	assert_string_equal(r.host, "ghcr.io");
	assert_string_equal(r.tag, "");
	assert_string_equal(r.digest + 7, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4959"
					  "91b7852b855");
	assert_int_equal(expt_imgref_parse("localhost/a", &r, &why), 0);
	assert_string_equal(r.host, "localhost");
	assert_int_equal(expt_imgref_parse("docker.io/org/x", &r, &why), 0);
	assert_string_equal(r.host, "index.docker.io");
	assert_int_equal(expt_imgref_parse("Team/App", &r, &why), -1);
	assert_int_equal(expt_imgref_parse("a/b:", &r, &why), -1);
	assert_int_equal(expt_imgref_parse("a/b@sha256:xyz", &r, &why), -1);
	assert_int_equal(expt_imgref_parse("a//b", &r, &why), -1);
	assert_int_equal(expt_imgref_parse("a/b-", &r, &why), -1);
	assert_true(expt_imgref_host_is_local("localhost:5000"));
	assert_true(expt_imgref_host_is_local("127.0.0.1:5000"));
	assert_false(expt_imgref_host_is_local("localhost.example.com"));
	assert_false(expt_imgref_host_is_local("ghcr.io"));
}

static void test_creds(void **state)
{
	struct expt_oci_creds c;
	struct expt_err e = EXPT_ERR_INIT;
	char cfg[400];

	(void)state;
	snprintf(cfg, sizeof(cfg), "%s/docker", dir);
	assert_int_equal(expt_mkdirs(cfg, &e), 0);
	/* no config.json: anonymous */
	assert_int_equal(expt_oci_creds_lookup(cfg, "r.example", &c, &e), 0);
	assert_null(c.user);
	put("docker/config.json",
	    "{\"auths\":{\"https://r.example\":{\"auth\":\"dTpwOmFzcw==\"},"
	    "\"tok.example\":{\"identitytoken\":\"rt\"},"
	    "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOnNlY3JldA==\"}}}",
	    0600);
	assert_int_equal(expt_oci_creds_lookup(cfg, "r.example", &c, &e), 0);
	assert_string_equal(c.user, "u"); /* split at the first ':' */
	assert_string_equal(c.secret, "p:ass");
	expt_oci_creds_release(&c);
	assert_int_equal(expt_oci_creds_lookup(cfg, "tok.example", &c, &e), 0);
	assert_string_equal(c.identity_token, "rt");
	expt_oci_creds_release(&c);
	assert_int_equal(expt_oci_creds_lookup(cfg, "index.docker.io", &c, &e), 0);
	assert_string_equal(c.user, "hub");
	expt_oci_creds_release(&c);
	assert_int_equal(expt_oci_creds_lookup(cfg, "other.example", &c, &e), 0);
	assert_null(c.user);
	put("docker/config.json", "{\"auths\":{\"r.example\":{\"auth\":\"bm9jb2xvbg==\"}}}", 0600);
	assert_int_equal(expt_oci_creds_lookup(cfg, "r.example", &c, &e), -1);
	assert_non_null(strstr(e.msg, "not base64 of user:password"));
	expt_err_clear(&e);
	put("docker/config.json", "{\"auths\":", 0600);
	assert_int_equal(expt_oci_creds_lookup(cfg, "r.example", &c, &e), -1);
	assert_non_null(strstr(e.msg, "config.json:1:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test(test_layer_is_reproducible),
	    cmocka_unit_test(test_layer_reads_back),
	    cmocka_unit_test(test_challenge),
	    cmocka_unit_test(test_index_pick),
	    cmocka_unit_test(test_imgref),
	    cmocka_unit_test(test_creds),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
