/* The table of execution backends that cli/ chooses from by name, and what every backend
 * shares: opening by name, submit-and-watch, the release of what the operations return. */
#include "backend.h"

#include <string.h>
#include <strings.h>

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

/* ---- what runs that failed the same way share ---- */

struct ckey {
	char *out;
	size_t n, len;
};

static void ck_add(struct ckey *k, const char *s, size_t len)
{
	if (len > k->n - 1 - k->len)
		len = k->n - 1 - k->len;
	memcpy(k->out + k->len, s, len);
	k->len += len;
	k->out[k->len] = '\0';
}

static int alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hexdig(char c)
{
	return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* n digits at s. */
static int digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!digit(s[i]))
			return 0;
	return 1;
}

/* Length of the time of day at s (HH:MM, H:MM, either with :SS and a fraction), or 0. */
static size_t clock_len(const char *s)
{
	size_t i = digit(s[0]) && digit(s[1]) ? 2 : digit(s[0]) ? 1 : 0;

	if (!i || s[i] != ':' || !digits(s + i + 1, 2))
		return 0;
	i += 3;
	if (s[i] == ':' && digits(s + i + 1, 2)) {
		i += 3;
		if (s[i] == '.' && digit(s[i + 1]))
			for (i++; digit(s[i]); i++)
				;
	}
	return i;
}

/* Length of the time zone at s (Z, +01, +0100, +01:00), or 0. */
static size_t zone_len(const char *s)
{
	if (s[0] == 'Z')
		return 1;
	if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2))
		return 0;
	return s[3] == ':' && digits(s + 4, 2) ? 6 : digits(s + 3, 2) ? 5 : 3;
}

/* Length of the timestamp at s (2026-11-29, 2026-11-29T22:48:12.5Z, 22:48:12), or 0. */
static size_t timestamp_len(const char *s)
{
	size_t i, c;

	if (digits(s, 4) && s[4] == '-' && digits(s + 5, 2) && s[7] == '-' && digits(s + 8, 2)) {
		i = 10;
		if ((s[i] == 'T' || s[i] == ' ') && (c = clock_len(s + i + 1)))
			i += 1 + c + zone_len(s + i + 1 + c);
		return i;
	}
	/* A time of day alone needs its seconds: "12:30" may be a ratio or a port. */
	c = clock_len(s);
	return c >= 7 ? c + zone_len(s + c) : 0;
}

/* Length of the UUID (8-4-4-4-12 hex) at s, or 0. */
static size_t uuid_len(const char *s)
{
	static const size_t part[] = {8, 4, 4, 4, 12};
	size_t i = 0;

	for (size_t p = 0; p < 5; p++) {
		for (size_t j = 0; j < part[p]; j++, i++)
			if (!hexdig(s[i]))
				return 0;
		if (p < 4 && s[i++] != '-')
			return 0;
	}
	return alnum(s[i]) ? 0 : i;
}

/* Length of the hex id (12 or more hex digits, one a digit: a container id, a digest) at s. */
static size_t hexid_len(const char *s)
{
	size_t i;
	int dig = 0;

	for (i = 0; hexdig(s[i]); i++)
		dig |= digit(s[i]);
	return i >= 12 && dig && !alnum(s[i]) ? i : 0;
}

/* Whether the word before the end of k says that a number after it is part of the cause. */
static int keeps_number(const struct ckey *k)
{
	static const char *const words[] = {"code",   "signal", "limit",   "after",
					    "status", "exit",	"timeout", "http"};
	size_t e = k->len, b;

	while (e > 0 && strchr(" :=(#", k->out[e - 1]))
		e--;
	for (b = e; b > 0 && ((k->out[b - 1] | 0x20) >= 'a' && (k->out[b - 1] | 0x20) <= 'z'); b--)
		;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == e - b && !strncasecmp(k->out + b, words[i], e - b))
			return 1;
	return 0;
}

/* Kubernetes names a Job's pods <job>-<5 of these>. */
static int pod_suffix(const char *s)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";

	if (s[0] != '-')
		return 0;
	for (size_t i = 1; i <= 5; i++)
		if (!s[i] || !strchr(alphabet, s[i]))
			return 0;
	return !alnum(s[6]) && s[6] != '-';
}

void expt_diagnosis_cause_key(const char *cause, const struct expt_run_rec *run, char *out,
			      size_t n)
{
	struct needle {
		const char *s, *ph;
		size_t len;
	} nd[5], t;
	size_t nn = 0, i;
	char mid[sizeof(((struct expt_diagnosis *)0)->cause) * 2];
	struct ckey k = {mid, sizeof(mid), 0};
	const char *ref = run ? run->backend_ref : NULL, *tail = NULL;

	mid[0] = '\0';
	if (run) {
		nd[nn++] = (struct needle){run->log_dir, "<dir>", 0};
		nd[nn++] = (struct needle){run->output_dir, "<dir>", 0};
		/* before the ref: a Job named as its run is the run */
		nd[nn++] = (struct needle){run->run_id, "<run>", 0};
		nd[nn++] = (struct needle){ref, "<ref>", 0};
		if (ref && (tail = strrchr(ref, '/')) == NULL)
			tail = strrchr(ref, ':');
		nd[nn++] = (struct needle){tail ? tail + 1 : NULL, "<ref>", 0};
	}
	for (i = 0; i < nn; i++)
		nd[i].len = nd[i].s ? strlen(nd[i].s) : 0;
	/* longest first (a directory holds the run id, a ref may too), stable */
	for (i = 1; i < nn; i++)
		for (size_t j = i; j > 0 && nd[j].len > nd[j - 1].len; j--) {
			t = nd[j];
			nd[j] = nd[j - 1];
			nd[j - 1] = t;
		}
	/* The run's own names first, whole words only ("demo-1" is not in "demo-12"). */
	for (i = 0; cause[i];) {
		size_t j, m = 0;
		for (j = 0; j < nn && !m; j++)
			if (nd[j].len >= 3 && !strncmp(cause + i, nd[j].s, nd[j].len) &&
			    !alnum(cause[i + nd[j].len]) && (i == 0 || !alnum(cause[i - 1])))
				m = nd[j].len;
		if (!m) {
			ck_add(&k, cause + i++, 1);
			continue;
		}
		j--;
		if (nd[j].s[0] != '/' && pod_suffix(cause + i + m)) {
			ck_add(&k, "<pod>", 5);
			m += 6;
		} else {
			ck_add(&k, nd[j].ph, strlen(nd[j].ph));
		}
		i += m;
	}
	/* Then what varies from run to run whoever it is. */
	k = (struct ckey){out, n, 0};
	out[0] = '\0';
	for (i = 0; mid[i];) {
		const char *s = mid + i;
		size_t m = 0;
		char p = i ? mid[i - 1] : ' ';
		if (alnum(p) || p == '_' || p == '-' || p == '.' || !alnum(*s)) {
			ck_add(&k, s, 1);
			i++;
			continue;
		}
		if ((m = uuid_len(s)) || (m = hexid_len(s))) {
			ck_add(&k, "<id>", 4);
		} else if (digit(*s) && (m = timestamp_len(s)) && !alnum(s[m])) {
			ck_add(&k, "<time>", 6);
		} else if (digit(*s)) {
			for (m = 1; alnum(s[m]) || (s[m] == '.' && alnum(s[m + 1])); m++)
				;
			if (keeps_number(&k))
				ck_add(&k, s, m);
			else
				ck_add(&k, "<n>", 3);
		} else {
			for (m = 1; alnum(s[m]) || s[m] == '_'; m++)
				;
			ck_add(&k, s, m);
		}
		i += m;
	}
}
