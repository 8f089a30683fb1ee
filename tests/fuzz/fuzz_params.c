/* Fuzz target for $EXPT_PARAMS_FILE, the JSON object of params a run reads at expt_run_open
 * (src/track/run.c): the input is the file (a memfd), opened as a run launched by expt with the
 * TensorBoard sink, whose hparams summary at finish encodes every param read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "expt.h"

static char dir[64];

static void clean(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/tb", dir);
	if (system(cmd))
		abort();
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd)) {
		/* nothing more to do at exit */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expt_run_options o = EXPT_RUN_OPTIONS_INIT;
	struct expt_error e;
	expt_run *run = NULL;
	char path[64], tb[96];
	int fd;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "%s/expt-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
		if (!mkdtemp(dir))
			abort();
		setenv("EXPT_STORE", "/nonexistent/expt.db", 1);
		atexit(remove_dir);
	}
	fd = memfd_create("params.json", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return 0;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	snprintf(tb, sizeof(tb), "%s/tb", dir);
	setenv("EXPT_PARAMS_FILE", path, 1);
	o.run_id = "fz-1";
	o.experiment = "fz";
	o.sinks = "tensorboard";
	o.output_dir = dir;
	o.tensorboard_dir = tb;
	o.flags = EXPT_RUN_NO_HOOKS;
	if (expt_run_open(&run, &o, &e) == 0)
		expt_run_finish(run, "succeeded", &e);
	close(fd);
	clean();
	return 0;
}
