/* Sweeps: the sweep: section read into axes (grid), distributions (random) or trials (list), and
 * expanded into run plans. Random draws use our own generator so a seed means the same runs on
 * every machine and every libc. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static const char *const long_keys[] = {"method", "params", "samples", "seed", "trials"};
static const char *const methods[] = {"grid", "random", "list"};
static const char *const range_keys[] = {"min", "max", "log"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

int expt_sweep_is_long(const struct expt_ynode *sweep)
{
	return sweep && sweep->kind == EXPT_Y_MAP &&
	       (expt_ynode_find(sweep, "method") >= 0 || expt_ynode_find(sweep, "params") >= 0 ||
		expt_ynode_find(sweep, "trials") >= 0);
}

enum expt_sweep_method expt_sweep_method_of(const struct expt_ynode *sweep)
{
	const struct expt_ynode *m;

	if (!sweep || expt_ynode_is_null(sweep))
		return EXPT_SWEEP_NONE;
	if (!expt_sweep_is_long(sweep))
		return EXPT_SWEEP_GRID;
	m = expt_ynode_get(sweep, "method");
	if (m && m->kind == EXPT_Y_SCALAR && !expt_ynode_is_null(m)) {
		if (!strcmp(m->text, "random"))
			return EXPT_SWEEP_RANDOM;
		if (!strcmp(m->text, "list"))
			return EXPT_SWEEP_LIST;
		return EXPT_SWEEP_GRID;
	}
	return expt_ynode_find(sweep, "trials") >= 0 ? EXPT_SWEEP_LIST : EXPT_SWEEP_GRID;
}

static int check_name(const struct expt_ynode *key, const char *field, struct expt_diags *diags)
{
	if (expt_param_name_ok(key->text))
		return 0;
	if (!strcmp(key->text, "run_id") || !strcmp(key->text, "output_dir"))
		expt_diag_at(diags, key, field, "'%s' is reserved for the {%s} placeholder",
			     key->text, key->text);
	else
		expt_diag_at(diags, key, field,
			     "param names start with a letter or '_' and hold only letters, "
			     "digits, '_' and '-' (at most 64)");
	return -1;
}

static void values_of(struct expt_sweep_axis *ax, const struct expt_ynode *seq)
{
	size_t i;

	ax->vals = expt_xcalloc(seq->n ? seq->n : 1, sizeof(*ax->vals));
	for (i = 0; i < seq->n; i++)
		expt_ynode_value(seq->vals[i], &ax->vals[i]);
	ax->nvals = seq->n;
}

static struct expt_sweep_axis *new_axis(struct expt_sweep *sw, const char *name)
{
	struct expt_sweep_axis *ax;

	sw->axes = expt_xrealloc(sw->axes, (sw->naxes + 1) * sizeof(*sw->axes));
	ax = &sw->axes[sw->naxes++];
	memset(ax, 0, sizeof(*ax));
	ax->name = expt_xstrdup(name);
	return ax;
}

/* A grid axis or a random choice list: a non-empty list of values. */
static int parse_list_axis(struct expt_sweep *sw, const struct expt_ynode *key,
			   const struct expt_ynode *val, const char *prefix, int random,
			   struct expt_diags *diags)
{
	char field[320], d[96];
	int bad = check_name(
	    key, (expt_spec_field_path(field, sizeof(field), prefix, key->text), field), diags);

	if (val->kind != EXPT_Y_SEQ) {
		expt_ynode_describe(val, d, sizeof(d));
		expt_diag_at(diags, val, field,
			     random ? "expected a list of choices or {min: A, max: B}, got %s"
				    : "expected a list of values, got %s",
			     d);
		return -1;
	}
	if (!val->n) {
		expt_diag_at(diags, val, field,
			     "empty list: a swept param needs at least one value");
		return -1;
	}
	if (bad)
		return -1;
	values_of(new_axis(sw, key->text), val);
	return 0;
}

static int number_of(const struct expt_ynode *n, double *v, int *is_int)
{
	if (!n || n->kind != EXPT_Y_SCALAR || (n->type != EXPT_VT_INT && n->type != EXPT_VT_FLOAT))
		return -1;
	*v = strtod(n->text, NULL);
	if (n->type == EXPT_VT_INT) {
		char *canon = NULL;
		expt_scalar_type(n->text, &canon); /* 0x10 and 0o7 are ints too */
		*v = strtod(canon, NULL);
		free(canon);
	}
	*is_int = n->type == EXPT_VT_INT;
	return isfinite(*v) ? 0 : -1;
}

static int parse_range(struct expt_sweep *sw, const struct expt_ynode *key,
		       const struct expt_ynode *val, const char *field, struct expt_diags *diags)
{
	const struct expt_ynode *mn = expt_ynode_get(val, "min"), *mx = expt_ynode_get(val, "max");
	const struct expt_ynode *lg = expt_ynode_get(val, "log");
	struct expt_sweep_axis ax = {0};
	int imin = 0, imax = 0, rc = 0;
	char sub[352], d[96], hint[64];
	size_t i;

	for (i = 0; i < val->n; i++) {
		const char *k = val->keys[i]->text;
		if (!strcmp(k, "min") || !strcmp(k, "max") || !strcmp(k, "log"))
			continue;
		expt_spec_field_path(sub, sizeof(sub), field, k);
		expt_suggest(hint, sizeof(hint), k, range_keys, NELEM(range_keys));
		expt_diag_at(diags, val->keys[i], sub, "unknown field%s", hint);
		rc = -1;
	}
	if (!mn || !mx) {
		expt_diag_at(diags, val, field, "a random range needs both min and max");
		return -1;
	}
	if (number_of(mn, &ax.min, &imin)) {
		expt_ynode_describe(mn, d, sizeof(d));
		expt_spec_field_path(sub, sizeof(sub), field, "min");
		expt_diag_at(diags, mn, sub, "expected a number, got %s", d);
		rc = -1;
	}
	if (number_of(mx, &ax.max, &imax)) {
		expt_ynode_describe(mx, d, sizeof(d));
		expt_spec_field_path(sub, sizeof(sub), field, "max");
		expt_diag_at(diags, mx, sub, "expected a number, got %s", d);
		rc = -1;
	}
	if (lg && !expt_ynode_is_null(lg)) {
		if (lg->kind != EXPT_Y_SCALAR || lg->type != EXPT_VT_BOOL) {
			expt_ynode_describe(lg, d, sizeof(d));
			expt_spec_field_path(sub, sizeof(sub), field, "log");
			expt_diag_at(diags, lg, sub, "expected true or false, got %s", d);
			rc = -1;
		} else {
			ax.log = !strcmp(lg->text, "true") || !strcmp(lg->text, "True") ||
				 !strcmp(lg->text, "TRUE");
		}
	}
	if (rc)
		return rc;
	if (ax.min > ax.max) {
		expt_diag_at(diags, val, field, "min (%s) is greater than max (%s)", mn->text,
			     mx->text);
		return -1;
	}
	if (ax.log && ax.min <= 0) {
		expt_diag_at(diags, val, field, "a log range needs min > 0, got %s", mn->text);
		return -1;
	}
	if (imin && imax && (fabs(ax.min) > 9e15 || fabs(ax.max) > 9e15)) {
		expt_diag_at(diags, val, field, "integer bounds must be within ±9e15");
		return -1;
	}
	if (check_name(key, field, diags))
		return -1;
	{
		struct expt_sweep_axis *a = new_axis(sw, key->text);
		a->range = 1;
		a->ints = imin && imax;
		a->log = ax.log;
		a->min = ax.min;
		a->max = ax.max;
	}
	return 0;
}

static int parse_axes(struct expt_sweep *sw, const struct expt_ynode *map, const char *prefix,
		      int random, struct expt_diags *diags)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < map->n; i++) {
		const struct expt_ynode *key = map->keys[i], *val = map->vals[i];
		char field[320];

		expt_spec_field_path(field, sizeof(field), prefix, key->text);
		if (random && val->kind == EXPT_Y_MAP)
			rc |= parse_range(sw, key, val, field, diags);
		else
			rc |= parse_list_axis(sw, key, val, prefix, random, diags);
	}
	return rc ? -1 : 0;
}

static int parse_trials(struct expt_sweep *sw, const struct expt_ynode *seq,
			struct expt_diags *diags)
{
	char field[320], d[96];
	size_t i, j;
	int rc = 0;

	if (seq->kind != EXPT_Y_SEQ) {
		expt_ynode_describe(seq, d, sizeof(d));
		expt_diag_at(diags, seq, "sweep.trials",
			     "expected a list of {param: value} maps, got %s", d);
		return -1;
	}
	if (!seq->n) {
		expt_diag_at(diags, seq, "sweep.trials", "empty list: give at least one trial");
		return -1;
	}
	sw->trials = expt_xcalloc(seq->n, sizeof(*sw->trials));
	sw->ntrials = seq->n;
	for (i = 0; i < seq->n; i++) {
		const struct expt_ynode *t = seq->vals[i];

		snprintf(field, sizeof(field), "sweep.trials[%zu]", i);
		if (t->kind != EXPT_Y_MAP) {
			expt_ynode_describe(t, d, sizeof(d));
			expt_diag_at(diags, t, field, "expected a map of param: value, got %s", d);
			rc = -1;
			continue;
		}
		for (j = 0; j < t->n; j++) {
			struct expt_value v;
			char sub[352];

			expt_spec_field_path(sub, sizeof(sub), field, t->keys[j]->text);
			if (check_name(t->keys[j], sub, diags)) {
				rc = -1;
				continue;
			}
			expt_ynode_value(t->vals[j], &v);
			expt_params_set(&sw->trials[i], t->keys[j]->text, v.type, v.text);
			free(v.text);
		}
	}
	return rc;
}

static int get_int(const struct expt_ynode *map, const char *key, const char *field, int64_t min,
		   int64_t *out, struct expt_diags *diags)
{
	const struct expt_ynode *n = expt_ynode_get(map, key);
	char *canon = NULL;
	int64_t v;
	char d[96];

	if (!n || expt_ynode_is_null(n))
		return 1;
	if (n->kind == EXPT_Y_SCALAR && n->type == EXPT_VT_INT) {
		expt_scalar_type(n->text, &canon);
		if (!expt_parse_i64(canon, &v) && v >= min) {
			free(canon);
			*out = v;
			return 0;
		}
	}
	free(canon);
	expt_ynode_describe(n, d, sizeof(d));
	expt_diag_at(diags, n, field, "expected an integer >= %lld, got %s", (long long)min, d);
	return -1;
}

static int parse_long(struct expt_sweep *sw, const struct expt_ynode *node,
		      struct expt_diags *diags)
{
	const struct expt_ynode *m = expt_ynode_get(node, "method");
	const struct expt_ynode *params = expt_ynode_get(node, "params");
	const struct expt_ynode *trials = expt_ynode_get(node, "trials");
	char field[320], hint[64], d[96];
	int64_t v;
	size_t i;
	int rc = 0, r;

	for (i = 0; i < node->n; i++) {
		const char *k = node->keys[i]->text;
		size_t j;
		int known = 0;
		for (j = 0; j < NELEM(long_keys); j++)
			known |= !strcmp(k, long_keys[j]);
		if (known)
			continue;
		expt_spec_field_path(field, sizeof(field), "sweep", k);
		expt_suggest(hint, sizeof(hint), k, long_keys, NELEM(long_keys));
		expt_diag_at(diags, node->keys[i], field,
			     "unknown field%s; with method:, params go under sweep.params", hint);
		rc = -1;
	}
	sw->method = expt_sweep_method_of(node);
	if (m && !expt_ynode_is_null(m) &&
	    (m->kind != EXPT_Y_SCALAR ||
	     (strcmp(m->text, "grid") && strcmp(m->text, "random") && strcmp(m->text, "list")))) {
		expt_ynode_describe(m, d, sizeof(d));
		expt_suggest(hint, sizeof(hint), m->kind == EXPT_Y_SCALAR ? m->text : "", methods,
			     NELEM(methods));
		expt_diag_at(diags, m, "sweep.method", "expected grid, random or list, got %s%s", d,
			     hint);
		return -1;
	}
	if (sw->method == EXPT_SWEEP_LIST) {
		if (params)
			expt_diag_at(diags, node->keys[expt_ynode_find(node, "params")],
				     "sweep.params", "method: list takes trials, not params"),
			    rc = -1;
		if (!trials) {
			expt_diag_at(diags, sw->key ? sw->key : node, "sweep.trials",
				     "required with method: list (a list of {param: value} maps)");
			return -1;
		}
		rc |= parse_trials(sw, trials, diags);
	} else {
		if (trials)
			expt_diag_at(diags, node->keys[expt_ynode_find(node, "trials")],
				     "sweep.trials", "trials only go with method: list"),
			    rc = -1;
		if (!params || expt_ynode_is_null(params)) {
			expt_diag_at(diags, sw->key ? sw->key : node, "sweep.params",
				     "required with method: %s",
				     sw->method == EXPT_SWEEP_RANDOM ? "random" : "grid");
			return -1;
		}
		if (params->kind != EXPT_Y_MAP) {
			expt_ynode_describe(params, d, sizeof(d));
			expt_diag_at(diags, params, "sweep.params",
				     "expected a map of param: values, got %s", d);
			return -1;
		}
		if (!params->n) {
			expt_diag_at(diags, params, "sweep.params",
				     "empty map: name at least one param to sweep");
			return -1;
		}
		rc |=
		    parse_axes(sw, params, "sweep.params", sw->method == EXPT_SWEEP_RANDOM, diags);
	}
	if (sw->method == EXPT_SWEEP_RANDOM) {
		r = get_int(node, "samples", "sweep.samples", 1, &v, diags);
		if (r > 0) {
			expt_diag_at(diags, sw->key ? sw->key : node, "sweep.samples",
				     "required with method: random (how many runs to draw)");
			rc = -1;
		} else if (!r) {
			sw->samples = v;
		} else {
			rc = -1;
		}
		r = get_int(node, "seed", "sweep.seed", 0, &v, diags);
		if (!r)
			sw->seed = (uint64_t)v;
		else if (r < 0)
			rc = -1;
	} else {
		static const char *const rnd_only[] = {"samples", "seed"};
		for (i = 0; i < NELEM(rnd_only); i++) {
			long at = expt_ynode_find(node, rnd_only[i]);
			if (at < 0)
				continue;
			expt_spec_field_path(field, sizeof(field), "sweep", rnd_only[i]);
			expt_diag_at(diags, node->keys[at], field, "only used with method: random");
			rc = -1;
		}
	}
	return rc ? -1 : 0;
}

int expt_sweep_parse(struct expt_sweep *sw, const struct expt_ynode *node,
		     const struct expt_ynode *key, struct expt_diags *diags)
{
	char d[96];

	memset(sw, 0, sizeof(*sw));
	sw->at = node;
	sw->key = key;
	if (!node || expt_ynode_is_null(node))
		return 0;
	if (node->kind != EXPT_Y_MAP) {
		expt_ynode_describe(node, d, sizeof(d));
		expt_diag_at(diags, node, "sweep",
			     "expected a map of param: [values] (or method:, params:, ...), got %s",
			     d);
		return -1;
	}
	if (expt_sweep_is_long(node))
		return parse_long(sw, node, diags);
	sw->method = EXPT_SWEEP_GRID;
	if (!node->n) {
		expt_diag_at(diags, node, "sweep", "empty map: name at least one param to sweep");
		return -1;
	}
	return parse_axes(sw, node, "sweep", 0, diags);
}

int64_t expt_sweep_count(const struct expt_sweep *sw, struct expt_diags *diags)
{
	int64_t total = 1;
	size_t i;

	switch (sw->method) {
	case EXPT_SWEEP_NONE:
		return 1;
	case EXPT_SWEEP_RANDOM:
		total = sw->samples;
		break;
	case EXPT_SWEEP_LIST:
		total = (int64_t)sw->ntrials;
		break;
	case EXPT_SWEEP_GRID:
		for (i = 0; i < sw->naxes; i++) {
			total *= (int64_t)sw->axes[i].nvals;
			if (total > EXPT_SPEC_MAX_RUNS)
				break;
		}
		break;
	}
	if (total > EXPT_SPEC_MAX_RUNS) {
		if (!diags)
			return -1;
		if (sw->at)
			expt_diag_at(diags, sw->at, "sweep",
				     "the sweep expands to more than %d runs; split it up",
				     EXPT_SPEC_MAX_RUNS);
		else
			expt_diag_add(diags, "", 0, 0, "sweep",
				      "the sweep expands to more than %d runs", EXPT_SPEC_MAX_RUNS);
		return -1;
	}
	return total;
}

/* splitmix64 (Steele, Lea and Flood): tiny, fast and the same on every machine. */
static uint64_t next_u64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A uniform double in [0, 1) from the top 53 bits: exact, no libm involved. */
static double next_unit(uint64_t *state)
{
	return (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Draws one value for a random axis. Every axis takes exactly one draw per sample, so pinning
 * one param (on the command line) leaves the values of the others unchanged. */
static void draw(const struct expt_sweep_axis *ax, uint64_t *state, struct expt_value *out)
{
	double u = next_unit(state), v;
	char buf[64];

	if (!ax->range) {
		size_t i = (size_t)(u * (double)ax->nvals);
		if (i >= ax->nvals)
			i = ax->nvals - 1;
		out->type = ax->vals[i].type;
		out->text = expt_xstrdup(ax->vals[i].text);
		return;
	}
	if (ax->ints) {
		double lo = ax->min, hi = ax->max + 1.0;
		if (ax->log)
			v = floor(exp(log(lo) + u * (log(hi) - log(lo))));
		else
			v = floor(lo + u * (hi - lo));
		if (v < ax->min)
			v = ax->min;
		if (v > ax->max)
			v = ax->max;
		out->type = EXPT_VT_INT;
		out->text = expt_xasprintf("%lld", (long long)v);
		return;
	}
	if (ax->log)
		v = exp(log(ax->min) + u * (log(ax->max) - log(ax->min)));
	else
		v = ax->min + u * (ax->max - ax->min);
	/* Six significant digits: readable in tables, and immune to last-bit differences between
	 * libm implementations of exp and log. */
	snprintf(buf, sizeof(buf), "%.6g", v);
	v = strtod(buf, NULL);
	if (v < ax->min)
		v = ax->min;
	if (v > ax->max)
		v = ax->max;
	expt_fmt_float(v, buf, sizeof(buf));
	out->type = EXPT_VT_FLOAT;
	out->text = expt_xstrdup(buf);
}

void expt_sweep_expand(const struct expt_sweep *sw, const struct expt_params *base,
		       struct expt_run_plan **runs, size_t *nruns)
{
	int64_t total = expt_sweep_count(sw, NULL);
	uint64_t state = sw->seed;
	struct expt_run_plan *r;
	size_t i, a;

	size_t *pick = expt_xcalloc(sw->naxes ? sw->naxes : 1, sizeof(*pick));

	if (total < 1)
		total = 1;
	r = expt_xcalloc((size_t)total, sizeof(*r));
	for (i = 0; i < (size_t)total; i++) {
		r[i].index = i;
		expt_params_copy(&r[i].params, base);
		switch (sw->method) {
		case EXPT_SWEEP_NONE:
			break;
		case EXPT_SWEEP_GRID: {
			/* Mixed-radix count over the axes: the last axis varies fastest. */
			size_t rest = i;
			for (a = sw->naxes; a-- > 0;) {
				const struct expt_sweep_axis *ax = &sw->axes[a];
				pick[a] = rest % ax->nvals;
				rest /= ax->nvals;
			}
			for (a = 0; a < sw->naxes; a++) {
				const struct expt_value *v = &sw->axes[a].vals[pick[a]];
				expt_params_set(&r[i].params, sw->axes[a].name, v->type, v->text);
			}
			break;
		}
		case EXPT_SWEEP_RANDOM:
			for (a = 0; a < sw->naxes; a++) {
				struct expt_value v;
				draw(&sw->axes[a], &state, &v);
				expt_params_set(&r[i].params, sw->axes[a].name, v.type, v.text);
				free(v.text);
			}
			break;
		case EXPT_SWEEP_LIST:
			expt_params_copy(&r[i].params, &sw->trials[i]);
			break;
		}
	}
	free(pick);
	*runs = r;
	*nruns = (size_t)total;
}

void expt_sweep_release(struct expt_sweep *sw)
{
	size_t i, j;

	for (i = 0; i < sw->naxes; i++) {
		for (j = 0; j < sw->axes[i].nvals; j++)
			free(sw->axes[i].vals[j].text);
		free(sw->axes[i].vals);
		free(sw->axes[i].name);
	}
	free(sw->axes);
	for (i = 0; i < sw->ntrials; i++)
		expt_params_release(&sw->trials[i]);
	free(sw->trials);
	memset(sw, 0, sizeof(*sw));
}
