/* The table of sinks a run can name in EXPT_SINKS or the spec's tracking.sinks. */
#include "track.h"

#include <string.h>

#include "util/util.h"

static const struct expt_sink_ops *const sinks[] = {
    &expt_sink_store,	    &expt_sink_console, &expt_sink_jsonl,
    &expt_sink_tensorboard, &expt_sink_stdout,	&expt_sink_mlflow,
};

const struct expt_sink_ops *expt_sink_find(const char *name)
{
	for (size_t i = 0; i < sizeof(sinks) / sizeof(sinks[0]); i++)
		if (!strcmp(sinks[i]->name, name))
			return sinks[i];
	return NULL;
}

const char *expt_sink_names(void)
{
	return "store, console, jsonl, tensorboard, stdout, mlflow";
}
