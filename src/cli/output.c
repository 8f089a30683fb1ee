/* JSON/YAML emission, tables and colors for command output. */
#include "output.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

static int yaml_plain_ok(const char *s)
{
	static const char *reserved[] = {"true", "false", "null", "yes",   "no",   "on",
					 "off",	 "~",	  "True", "False", "Null", "NULL",
					 "TRUE", "FALSE", "Yes",  "No",	   "YES",  "NO",
					 "On",	 "Off",	  "ON",	  "OFF",   ""};
	double d;

	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (!strcmp(s, reserved[i]))
			return 0;
	if (!expt_parse_double(s, &d))
		return 0;
	if (strchr("-?:,[]{}#&*!|>'\"%@` \t", s[0]))
		return 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			return 0;
		if ((c == ':' && (p[1] == ' ' || !p[1])) || (c == ' ' && p[1] == '#'))
			return 0;
	}
	return s[strlen(s) - 1] != ' ';
}

static void yaml_scalar(FILE *f, json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: {
		const char *s = json_string_value(v);
		if (yaml_plain_ok(s)) {
			fputs(s, f);
		} else {
			char *j = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
			fputs(j ? j : "\"\"", f);
			free(j);
		}
		break;
	}
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL: {
		char *j = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		fputs(j ? j : "0", f);
		free(j);
		break;
	}
	case JSON_TRUE:
		fputs("true", f);
		break;
	case JSON_FALSE:
		fputs("false", f);
		break;
	default:
		fputs("null", f);
	}
}

static void yaml_node(FILE *f, json_t *v, int indent, int inline_first);

static int yaml_is_empty_container(json_t *v)
{
	return (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

static void yaml_node(FILE *f, json_t *v, int indent, int inline_first)
{
	if (json_is_object(v) && json_object_size(v)) {
		const char *key;
		json_t *val;
		int first = 1;
		json_object_foreach(v, key, val)
		{
			json_t *k = json_string(key);
			if (!(first && inline_first))
				fprintf(f, "%*s", indent, "");
			first = 0;
			yaml_scalar(f, k);
			json_decref(k);
			fputc(':', f);
			if ((json_is_object(val) || json_is_array(val)) &&
			    !yaml_is_empty_container(val)) {
				fputc('\n', f);
				yaml_node(f, val, json_is_array(val) ? indent : indent + 2, 0);
			} else {
				fputc(' ', f);
				if (yaml_is_empty_container(val))
					fputs(json_is_object(val) ? "{}" : "[]", f);
				else
					yaml_scalar(f, val);
				fputc('\n', f);
			}
		}
	} else if (json_is_array(v) && json_array_size(v)) {
		size_t i;
		json_t *val;
		json_array_foreach(v, i, val)
		{
			if (!(i == 0 && inline_first))
				fprintf(f, "%*s", indent, "");
			fputs("- ", f);
			if ((json_is_object(val) || json_is_array(val)) &&
			    !yaml_is_empty_container(val)) {
				yaml_node(f, val, indent + 2, 1);
			} else {
				if (yaml_is_empty_container(val))
					fputs(json_is_object(val) ? "{}" : "[]", f);
				else
					yaml_scalar(f, val);
				fputc('\n', f);
			}
		}
	} else {
		if (!inline_first)
			fprintf(f, "%*s", indent, "");
		if (yaml_is_empty_container(v))
			fputs(json_is_object(v) ? "{}" : "[]", f);
		else
			yaml_scalar(f, v);
		fputc('\n', f);
	}
}

void cli_emit(FILE *f, json_t *v, enum cli_output fmt)
{
	if (fmt == CLI_OUT_YAML) {
		yaml_node(f, v, 0, 0);
		return;
	}
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
				    JSON_REAL_PRECISION(15));
	if (s) {
		fputs(s, f);
		fputc('\n', f);
		free(s);
	}
}

void cli_table_init(struct cli_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

void cli_table_row(struct cli_table *t, const char *const *cells)
{
	size_t need = (t->nrows + 1) * t->ncols;

	EXPT_ALLOC_GROW(t->cells, need, t->cap);
	for (size_t i = 0; i < t->ncols; i++)
		t->cells[t->nrows * t->ncols + i] = expt_xstrdup(cells[i] ? cells[i] : "-");
	t->nrows++;
}

/* Display width: counts UTF-8 code points, skips ANSI escapes. */
static size_t width(const char *s)
{
	size_t w = 0;

	while (*s) {
		if (*s == '\033') {
			while (*s && *s != 'm')
				s++;
			if (*s)
				s++;
			continue;
		}
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
		s++;
	}
	return w;
}

void cli_table_print(FILE *f, const struct cli_table *t, int color_header)
{
	size_t *w = expt_xcalloc(t->ncols, sizeof(*w));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		if (r == 0 && color_header)
			fputs("\033[1m", f);
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];
			fputs(cell, f);
			if (c + 1 < t->ncols)
				fprintf(f, "%*s", (int)(w[c] - width(cell) + 2), "");
		}
		if (r == 0 && color_header)
			fputs("\033[0m", f);
		fputc('\n', f);
	}
	free(w);
}

void cli_table_release(struct cli_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

const char *cli_status_color(const char *status, int color)
{
	if (!color)
		return "";
	if (!strcmp(status, "succeeded"))
		return "\033[32m";
	if (!strcmp(status, "failed"))
		return "\033[31m";
	if (!strcmp(status, "running"))
		return "\033[36m";
	if (!strcmp(status, "stopped"))
		return "\033[33m";
	return "\033[2m";
}

const char *cli_run_color(const char *run_id, int color)
{
	static const char *palette[] = {"\033[36m", "\033[35m", "\033[34m", "\033[33m",
					"\033[32m", "\033[96m", "\033[95m", "\033[94m"};
	uint32_t h;

	if (!color)
		return "";
	h = expt_fnv1a32(run_id, strlen(run_id));
	return palette[h % (sizeof(palette) / sizeof(palette[0]))];
}

json_t *cli_json_text(const char *s)
{
	size_t len;
	char *fixed;
	json_t *j;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	fixed = expt_utf8_scrub(s, strlen(s), &len);
	j = fixed ? json_stringn(fixed, len) : NULL;
	free(fixed);
	return j ? j : json_string("");
}

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, cli_json_text(v));
}

static void set_time(json_t *o, const char *k, int64_t ms)
{
	char buf[40];

	if (!ms) {
		json_object_set_new(o, k, json_null());
		return;
	}
	expt_fmt_time_iso(ms, buf, sizeof(buf));
	json_object_set_new(o, k, json_string(buf));
}

json_t *cli_json_parse(const char *text)
{
	if (!text || !*text)
		return NULL;
	return json_loads(text, JSON_DECODE_ANY, NULL);
}

json_t *cli_run_json(const struct expt_run_rec *r)
{
	json_t *o = json_object(), *p;
	char sig[32];

	set_str(o, "id", r->run_id);
	set_str(o, "experiment", r->experiment);
	set_str(o, "status", expt_run_status_name(r->status));
	json_object_set_new(o, "exit_code",
			    r->exit_code >= 0 && expt_run_status_done(r->status)
				? json_integer(r->exit_code)
				: json_null());
	set_str(o, "signal", r->signal ? expt_signal_name(r->signal, sig, sizeof(sig)) : NULL);
	set_str(o, "reason", r->reason);
	set_str(o, "message", r->message);
	set_time(o, "created", r->created_ms);
	set_time(o, "started", r->started_ms);
	set_time(o, "ended", r->ended_ms);
	if (r->started_ms) {
		int64_t end = r->ended_ms ? r->ended_ms : expt_now_ms();
		json_object_set_new(o, "duration_s",
				    json_real((double)(end - r->started_ms) / 1e3));
	} else {
		json_object_set_new(o, "duration_s", json_null());
	}
	set_str(o, "backend", r->backend);
	set_str(o, "backend_ref", r->backend_ref);
	set_str(o, "node", r->node);
	set_str(o, "host", r->host);
	set_str(o, "variant", r->variant);
	json_object_set_new(o, "attempt", json_integer(r->attempt));
	set_str(o, "retry_of", r->retry_of);
	json_object_set_new(o, "pid", r->pid ? json_integer(r->pid) : json_null());
	json_object_set_new(o, "supervisor_pid",
			    r->supervisor_pid ? json_integer(r->supervisor_pid) : json_null());
	set_str(o, "gpus", r->gpus);
	p = cli_json_parse(r->params_json);
	json_object_set_new(o, "params", p ? p : json_object());
	if (r->argv_json) {
		p = cli_json_parse(r->argv_json);
		json_object_set_new(o, "argv", p ? p : json_null());
	}
	if (r->env_json) {
		p = cli_json_parse(r->env_json);
		json_object_set_new(o, "env", p ? p : json_null());
	}
	set_str(o, "output_dir", r->output_dir);
	set_str(o, "log_dir", r->log_dir);
	return o;
}

void cli_run_duration(const struct expt_run_rec *r, char *out, size_t n)
{
	int64_t end;

	if (!r->started_ms) {
		snprintf(out, n, "-");
		return;
	}
	end = r->ended_ms ? r->ended_ms : expt_now_ms();
	expt_fmt_duration(end - r->started_ms, out, (unsigned)n);
}
