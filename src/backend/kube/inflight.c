/* kubernetes.max_in_flight: how many more Jobs the namespace takes now, counted from the API
 * server under a Lease shared by every expt creating Jobs there. */
#include "kb.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../util/util.h"
#include "manifest.h"

/* kubernetes.max_in_flight is shared by every expt creating Jobs in the namespace: counting
 * and creating happen under a Lease (coordination.k8s.io), taken by creating it (one creator
 * wins), given back by deleting it, taken over when its holder stopped renewing it (crashed)
 * LEASE_S seconds ago. */
#define LEASE_NAME "expt-max-in-flight"
#define LEASE_S 15

static char *lease_path(struct kb *b, int named)
{
	return expt_xasprintf("/apis/coordination.k8s.io/v1/namespaces/%s/leases%s%s",
			      expt_kb_namespace(b), named ? "/" : "", named ? LEASE_NAME : "");
}

/* 1 when this process holds the namespace's Lease now, 0 when another does, -1 when it cannot
 * be had at all (no such API): counted without it then. */
static int lease_take(struct kb *b)
{
	struct expt_err e = EXPT_ERR_INIT;
	char now[40], holder[300], *path = lease_path(b, 0);
	struct timespec ts;
	struct tm tm;
	json_t *body, *cur = NULL;
	int rc;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(now + strlen(now), sizeof(now) - strlen(now), ".%06ldZ", ts.tv_nsec / 1000);
	snprintf(holder, sizeof(holder), "expt pid %d", (int)getpid());
	body = json_pack("{s:s, s:s, s:{s:s}, s:{s:s, s:i, s:s, s:s}}", "apiVersion",
			 "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", LEASE_NAME,
			 "spec", "holderIdentity", holder, "leaseDurationSeconds", LEASE_S,
			 "acquireTime", now, "renewTime", now);
	rc = expt_kube_request(b->k, "POST", path, body, NULL, NULL, &e);
	free(path);
	if (rc == EXPT_ECONFLICT) {
		/* Held: taken over only when its holder is long gone (not renewed in time). */
		struct tm rt;
		const char *renew;
		path = lease_path(b, 1);
		expt_err_clear(&e);
		if (!expt_kube_request(b->k, "GET", path, NULL, &cur, NULL, &e) &&
		    (renew = expt_kb_jstr(cur, "spec.renewTime"))) {
			memset(&rt, 0, sizeof(rt));
			if (strptime(renew, "%Y-%m-%dT%H:%M:%S", &rt) &&
			    timegm(&rt) + 2 * LEASE_S < ts.tv_sec) {
				json_t *pre = json_pack(
				    "{s:s, s:s, s:{s:s}}", "kind", "DeleteOptions", "apiVersion",
				    "v1", "preconditions", "resourceVersion",
				    expt_kb_jstr(cur, "metadata.resourceVersion")
					? expt_kb_jstr(cur, "metadata.resourceVersion")
					: "");
				expt_kube_request(b->k, "DELETE", path, pre, NULL, NULL, &e);
				json_decref(pre);
			}
		}
		json_decref(cur);
		free(path);
	}
	json_decref(body);
	return rc == 0 ? 1 : rc == EXPT_ECONFLICT || rc == EXPT_EDENIED ? 0 : -1;
}

void expt_kb_room_done(struct kb *b)
{
	struct expt_err e = EXPT_ERR_INIT;
	char *path = lease_path(b, 1);

	expt_kube_request(b->k, "DELETE", path, NULL, NULL, NULL, &e);
	free(path);
}

/* How many more Jobs kubernetes.max_in_flight lets into the namespace now: the cap less the
 * unfinished Jobs expt made there (every experiment's, every user's); SIZE_MAX without a cap.
 * Asked only when a queued Job is due, holding the namespace's Lease (*held), which the caller
 * gives back once it created what it may. */
size_t expt_kb_room(struct kb *b, int *held)
{
	int cap = b->spec ? b->spec->kubernetes.max_in_flight : 0;
	struct expt_err e = EXPT_ERR_INIT;
	json_t *list = NULL, *j;
	char *path, *sel, *esc;
	size_t i, active = 0, due = 0;
	int64_t now = expt_mono_ms();

	*held = 0;
	if (cap <= 0)
		return SIZE_MAX;
	for (i = 0; i < b->nqueued; i++)
		due += b->queued[i]->retry_at <= now;
	if (!due || !(*held = lease_take(b)))
		return 0;
	if (*held < 0)
		*held = 0;
	sel = expt_xasprintf("%s=expt", EXPT_KUBE_L_MANAGED);
	esc = expt_kube_escape(sel);
	path = expt_xasprintf("%s?labelSelector=%s", expt_kb_jobs_path(b), esc ? esc : "");
	if (expt_kube_request(b->k, "GET", path, NULL, &list, NULL, &e))
		active = (size_t)cap; /* cannot count: wait, and ask again */
	json_array_foreach(json_object_get(list, "items"), i, j) active +=
	    !expt_kb_condition(j, "Complete") && !expt_kb_condition(j, "Failed") &&
	    !expt_kb_condition(j, "SuccessCriteriaMet") && !expt_kb_condition(j, "FailureTarget");
	json_decref(list);
	free(path);
	free(esc);
	free(sel);
	return active >= (size_t)cap ? 0 : (size_t)cap - active;
}
