/* Fuzz target for the kubeconfig loader: arbitrary bytes as a kubeconfig, resolved with its
 * current-context and with context "a"; input holding a line "#--" is split there into two
 * files (memfds) merged as $KUBECONFIG merges them. Files the input names (certificate-authority,
 * client-key, ...) are not read (no_file_refs), and the in-cluster fallback is off.
 * The normal build only replays tests/fuzz/corpus/kubeconfig; `make fuzz` fuzzes for real. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend/kube/config.h"
#include "util/util.h"

static int memfile(const uint8_t *data, size_t size, char *path, size_t n)
{
	int fd = memfd_create("kubeconfig", 0);

	if (fd < 0)
		return -1;
	if (size && expt_write_all(fd, data, size) < 0) {
		close(fd);
		return -1;
	}
	snprintf(path, n, "/proc/self/fd/%d", fd);
	return fd;
}

static void load(const char *paths, const char *context)
{
	struct expt_kube_config_opts o = EXPT_KUBE_CONFIG_OPTS_INIT;
	struct expt_kube_config *c = NULL;
	struct expt_diags diags = {0};
	struct expt_err err = EXPT_ERR_INIT;

	o.kubeconfig = paths;
	o.context = context;
	o.no_file_refs = 1;
	if (expt_kube_config_load(&c, &o, &diags, &err) == 0) {
		/* a resolved config always has these */
		if (!c->server || !c->ns || !c->context)
			abort();
	} else if (c) {
		abort();
	}
	for (size_t i = 0; i < diags.n; i++) {
		char line[2048];

		expt_diag_format(&diags.v[i], line, sizeof(line));
	}
	expt_kube_config_free(c);
	expt_diags_release(&diags);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *split = size >= 4 ? memmem(data, size, "\n#--\n", 5) : NULL;
	char p1[64], p2[64], both[160];
	int fd1, fd2 = -1;

	unsetenv("KUBERNETES_SERVICE_HOST");
	if (split) {
		size_t n1 = (size_t)(split - data) + 1;

		fd1 = memfile(data, n1, p1, sizeof(p1));
		fd2 = memfile(split + 5, size - n1 - 4, p2, sizeof(p2));
		snprintf(both, sizeof(both), "%s:%s", p1, p2);
	} else {
		fd1 = memfile(data, size, p1, sizeof(p1));
		snprintf(both, sizeof(both), "%s", p1);
	}
	if (fd1 >= 0 && (!split || fd2 >= 0)) {
		load(both, NULL);
		load(both, "a");
	}
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	return 0;
}
