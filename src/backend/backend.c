/* The table of execution backends that cli/ chooses from by name. */
#include "backend.h"

#include <string.h>

#include "util/util.h"

static const struct expt_backend_ops *const backends[] = {
    &expt_backend_local,
};

const struct expt_backend_ops *expt_backend_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}
