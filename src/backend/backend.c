/* The table of execution backends that cli/ chooses from by name, and what every backend
 * shares: opening by name, submit-and-watch, the release of what the operations return. */
#include "backend.h"

#include <string.h>

#include "util/util.h"

static const struct expt_backend_ops *const backends[] = {
    &expt_backend_local,
    &expt_backend_container,
    &expt_backend_kubernetes,
};
#define NBACKENDS (sizeof(backends) / sizeof(backends[0]))

const struct expt_backend_ops *expt_backend_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < NBACKENDS; i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

const char *expt_backend_names(void)
{
	static char names[256];

	if (!names[0]) {
		size_t o = 0;
		for (size_t i = 0; i < NBACKENDS && o < sizeof(names); i++)
			o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "",
					      backends[i]->name);
	}
	return names;
}

int expt_backend_open(struct expt_backend *b, const char *name,
		      const struct expt_backend_conf *conf, struct expt_err *err)
{
	const struct expt_backend_ops *ops = expt_backend_find(name ? name : "local");
	int rc;

	memset(b, 0, sizeof(*b));
	if (!ops)
		return expt_err_set(err, EXPT_EBACKEND,
				    "backend '%s' is not available in this version of expt "
				    "(available: %s)",
				    name, expt_backend_names());
	if ((rc = ops->open(&b->state, conf, err)))
		return rc;
	b->ops = ops;
	return 0;
}

void expt_backend_close(struct expt_backend *b)
{
	if (!b || !b->ops)
		return;
	b->ops->close(b->state);
	memset(b, 0, sizeof(*b));
}

int expt_backend_execute(struct expt_backend *b, struct expt_job **jobs, size_t n,
			 const struct expt_exec_opts *opts, const struct expt_job_events *ev,
			 void *payload, struct expt_err *err)
{
	int rc, failed = 0;

	if ((rc = b->ops->submit(b->state, jobs, n, opts, ev, payload, err)))
		return rc;
	while (!(rc = b->ops->watch(b->state, 1000, err)))
		;
	if (rc < 0)
		failed = 1;
	return failed ? (err->code ? err->code : EXPT_EBACKEND) : 0;
}

void expt_diagnosis_release(struct expt_diagnosis *d)
{
	if (!d)
		return;
	expt_strv_release(&d->evidence);
	expt_strv_release(&d->stderr_tail);
	expt_strv_release(&d->stdout_tail);
}

void expt_contract_release(struct expt_contract *c)
{
	if (!c)
		return;
	free(c->output_dir);
	free(c->params_file);
	free(c->store);
	free(c->library);
	free(c->pythonpath);
	free(c->tracking_uri);
	expt_strv_release(&c->io);
	memset(c, 0, sizeof(*c));
}
