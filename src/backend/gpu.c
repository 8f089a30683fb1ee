/* GPU discovery for the local backend: $EXPT_GPUS, else the "GPU <n>:" lines of nvidia-smi -L. */
#include "backend.h"
#include "local_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/util.h"

/* nvidia-smi can hang for a long time on a wedged driver; a run must not wait for it. */
#define SMI_TIMEOUT_MS 10000

int expt_gpus_parse_list(const char *list, struct expt_strv *ids, struct expt_err *err)
{
	const char *p = list;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p || !strcmp(p, "none"))
		return 0;
	for (;;) {
		const char *s, *e;
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		s = p;
		while (*p && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		len = (size_t)(e - s);
		if (!len || memchr(s, ' ', len) || memchr(s, '\t', len) || memchr(s, '=', len))
			return expt_err_set(err, EXPT_EUSAGE,
					    "bad GPU list '%s': expected ids separated by commas "
					    "(\"0,1\") or \"none\"",
					    list);
		{
			char *id = expt_xstrndup(s, len);
			if (expt_strv_find(ids, id) >= 0) {
				free(id);
				return expt_err_set(err, EXPT_EUSAGE,
						    "bad GPU list '%s': GPU listed twice", list);
			}
			expt_strv_push_owned(ids, id);
		}
		if (!*p)
			break;
		p++;
	}
	return 0;
}

void expt_gpus_parse_smi(const char *text, struct expt_strv *ids)
{
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		/* "GPU 0: NVIDIA H200 (UUID: GPU-...)"; MIG devices are indented "  MIG ..." lines
		 * and are not separate slots here. */
		if (len > 6 && !strncmp(p, "GPU ", 4)) {
			size_t i = 4;
			while (i < len && p[i] >= '0' && p[i] <= '9')
				i++;
			if (i > 4 && i < len && p[i] == ':')
				expt_strv_push_owned(ids, expt_xstrndup(p + 4, i - 4));
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

/* Is name an executable in $PATH? */
static int in_path(const char *name)
{
	const char *path = getenv("PATH");
	int found = 0;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path && !found) {
		const char *c = strchr(path, ':');
		size_t len = c ? (size_t)(c - path) : strlen(path);
		char *f = expt_xasprintf("%.*s/%s", (int)len, len ? path : ".", name);
		found = access(f, X_OK) == 0;
		free(f);
		path += len;
		if (*path == ':')
			path++;
	}
	return found;
}

/* Runs `nvidia-smi -L` and returns its stdout (capped at 1 MiB); -1 when it cannot run, fails or
 * hangs. */
int expt_gpus_detect(struct expt_strv *ids, struct expt_err *err)
{
	const char *env = getenv("EXPT_GPUS");
	struct expt_buf out;

	if (env)
		return expt_gpus_parse_list(env, ids, err);
	if (!in_path("nvidia-smi"))
		return 0;
	/* A machine whose driver is not loaded has no usable GPU: that is not an error for the
	 * runs that need none; the ones that need some fail with a message naming EXPT_GPUS. */
	expt_buf_init(&out, 1 << 20);
	if (!expt_spawn_capture((const char *const[]){"nvidia-smi", "-L", NULL}, SMI_TIMEOUT_MS,
				&out))
		expt_gpus_parse_smi(out.buf, ids);
	expt_buf_release(&out);
	return 0;
}
