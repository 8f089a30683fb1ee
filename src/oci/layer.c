/* The code layer: a deterministic ustar (PAX records for long names) and gzip, and digests. */
#include "layer.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dl.h"
#include "util/util.h"

void expt_oci_sha256(const void *data, size_t len, char *out, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i, o;

	const struct expt_ocilibs *l = expt_ocilibs(NULL);

	if (!l) {
		/* expt_oci_build checked the libraries first; a caller that did not gets no
		 * digest it could mistake for one. */
		snprintf(out, n, "sha256:unavailable");
		return;
	}
	l->EVP_Digest(data, len, md, &mdlen, l->EVP_sha256(), NULL);
	o = (size_t)snprintf(out, n, "sha256:");
	for (i = 0; i < mdlen && o + 2 < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%02x", md[i]);
}

/* One 512-byte ustar header. Returns -1 when name or link does not fit (the caller then writes a
 * PAX record first and a shortened name here). */
static void octal(char *field, size_t width, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)width - 1, (unsigned long long)v);
	memcpy(field, tmp, width - 1);
	field[width - 1] = '\0';
}

static int header(struct expt_buf *tar, const char *name, char type, unsigned mode, uint64_t size,
		  const char *link)
{
	unsigned char h[512];
	unsigned sum = 0;
	size_t nl = strlen(name), i;

	memset(h, 0, sizeof(h));
	if (nl <= 100) {
		memcpy(h, name, nl);
	} else {
		/* ustar's prefix (155) + name (100), split at a '/'. */
		const char *cut = NULL;
		for (const char *s = name; (s = strchr(s, '/')); s++)
			if ((size_t)(s - name) <= 155 && strlen(s + 1) <= 100 && s[1])
				cut = cut ? cut : s;
		if (!cut)
			return -1;
		memcpy(h + 345, name, (size_t)(cut - name));
		memcpy(h, cut + 1, strlen(cut + 1));
	}
	octal((char *)h + 100, 8, mode);
	octal((char *)h + 108, 8, 0);
	octal((char *)h + 116, 8, 0);
	octal((char *)h + 124, 12, size);
	octal((char *)h + 136, 12, EXPT_OCI_LAYER_MTIME);
	memset(h + 148, ' ', 8);
	h[156] = (unsigned char)type;
	if (link) {
		if (strlen(link) > 100)
			return -1;
		memcpy(h + 157, link, strlen(link));
	}
	memcpy(h + 257, "ustar", 6); /* with its NUL */
	memcpy(h + 263, "00", 2);
	for (i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	h[155] = ' ';
	return expt_buf_add(tar, h, sizeof(h));
}

static int pad(struct expt_buf *tar, size_t n)
{
	static const char zero[512];

	return n % 512 ? expt_buf_add(tar, zero, 512 - n % 512) : 0;
}

/* "<len> key=value\n", len counting itself. */
static void pax_record(struct expt_buf *b, const char *key, const char *val)
{
	size_t base = strlen(key) + strlen(val) + 3, len = base;
	char digits[24];

	for (;;) {
		size_t d = (size_t)snprintf(digits, sizeof(digits), "%zu", len);
		if (base + d == len)
			break;
		len = base + d;
	}
	expt_buf_addf(b, "%zu %s=%s\n", len, key, val);
}

static int entry(struct expt_buf *tar, const char *name, char type, unsigned mode, const void *data,
		 size_t size, const char *link)
{
	if (header(tar, name, type, mode, size, link)) {
		/* Long name or link: a PAX extended header carries them. */
		struct expt_buf pax = EXPT_BUF_INIT;
		char shortname[101];
		int rc;
		if (strlen(name) > 100)
			pax_record(&pax, "path", name);
		if (link && strlen(link) > 100)
			pax_record(&pax, "linkpath", link);
		snprintf(shortname, sizeof(shortname), "PaxHeaders/%.80s",
			 name + strlen(name) - (strlen(name) > 80 ? 80 : strlen(name)));
		rc = header(tar, "././@PaxHeader", 'x', 0644, pax.len, NULL) ||
		     expt_buf_add(tar, pax.buf, pax.len) || pad(tar, pax.len) ||
		     header(tar, strlen(name) <= 100 ? name : shortname, type, mode, size,
			    link && strlen(link) <= 100 ? link : NULL);
		expt_buf_release(&pax);
		if (rc)
			return -1;
	}
	if (size && (expt_buf_add(tar, data, size) || pad(tar, size)))
		return -1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int expt_oci_layer_tar(const char *root, const struct expt_strv *files, const char *dest,
		       struct expt_buf *tar, struct expt_err *err)
{
	struct expt_strv names = EXPT_STRV_INIT; /* "d<path>/" for dirs, "f<path>" for files */
	const char *d = dest;
	struct expt_buf data = EXPT_BUF_INIT;
	static const char zero[1024];
	int rc = 0;

	while (*d == '/')
		d++;
	/* The destination and its parents, then each file's parents. */
	for (const char *s = d; *s; s++)
		if (s[1] == '/' || !s[1])
			expt_strv_pushf(&names, "%.*s/", (int)(s - d + 1), d);
	for (size_t i = 0; i < files->n; i++) {
		const char *f = files->v[i];
		for (const char *s = strchr(f, '/'); s; s = strchr(s + 1, '/'))
			expt_strv_pushf(&names, "%s/%.*s/", d, (int)(s - f), f);
		expt_strv_pushf(&names, "%s/%s", d, f);
	}
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), cmp_str);
	for (size_t i = 0; i < names.n && !rc; i++) {
		const char *n = names.v[i];
		size_t nl = strlen(n);
		char *abs;
		struct stat st;

		if (i && !strcmp(n, names.v[i - 1]))
			continue; /* a parent shared by several files */
		if (n[nl - 1] == '/') {
			rc = entry(tar, n, '5', 0755, NULL, 0, NULL);
			continue;
		}
		abs = expt_xasprintf("%s/%s", root, n + strlen(d) + 1);
		if (lstat(abs, &st)) {
			rc = expt_err_errno(err, EXPT_EFAIL, "%s", abs);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t tl = readlink(abs, target, sizeof(target) - 1);
			if (tl < 0) {
				rc = expt_err_errno(err, EXPT_EFAIL, "%s", abs);
			} else {
				target[tl] = '\0';
				rc = entry(tar, n, '2', 0777, NULL, 0, target);
			}
		} else if (S_ISREG(st.st_mode)) {
			expt_buf_reset(&data);
			if (!(rc = expt_read_file(abs, &data, err)))
				rc = entry(tar, n, '0', (st.st_mode & S_IXUSR) ? 0755 : 0644,
					   data.buf, data.len, NULL);
		}
		/* Sockets, fifos and devices are not project files: left out. */
		free(abs);
	}
	if (!rc)
		rc = expt_buf_add(tar, zero, sizeof(zero));
	if (rc && !err->code)
		expt_err_set(err, EXPT_ENOMEM, "the layer does not fit in memory");
	expt_buf_release(&data);
	expt_strv_release(&names);
	return rc ? -1 : 0;
}

int expt_oci_gzip(const void *data, size_t len, struct expt_buf *out, struct expt_err *err)
{
	const struct expt_ocilibs *l = expt_ocilibs(err);
	z_stream z;
	int zr;

	if (!l)
		return -1;
	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip wrapper; zlib writes mtime 0, no name, OS 3 (Unix). */
	if (l->deflateInit2_(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, l->zlibVersion(),
			     (int)sizeof(z_stream)) != Z_OK)
		return expt_err_set(err, EXPT_ENOMEM, "zlib: deflateInit2 failed"), -1;
	{ /* fed in steps: avail_in is 32 bits */
		size_t left = len;
		const unsigned char *p = data;
		do {
			uInt step = left > (1u << 30) ? (1u << 30) : (uInt)left;
			z.next_in = (Bytef *)(uintptr_t)p;
			z.avail_in = step;
			p += step;
			left -= step;
			do {
				if (expt_buf_grow(out, 1u << 16)) {
					l->deflateEnd(&z);
					return expt_err_set(err, EXPT_ENOMEM, "out of memory"), -1;
				}
				z.next_out = (Bytef *)out->buf + out->len;
				z.avail_out = (uInt)(out->cap - out->len - 1);
				zr = l->deflate(&z, left ? Z_NO_FLUSH : Z_FINISH);
				expt_buf_setlen(out, (size_t)((char *)z.next_out - out->buf));
			} while (z.avail_out == 0 || (!left && zr != Z_STREAM_END && zr == Z_OK));
		} while (left);
	}
	l->deflateEnd(&z);
	if (zr != Z_STREAM_END)
		return expt_err_set(err, EXPT_EFAIL, "zlib: deflate failed (%d)", zr), -1;
	return 0;
}
