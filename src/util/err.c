/* Error values: set, locate, format. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void copy(char *dst, size_t n, const char *src)
{
	if (!src)
		src = "";
	snprintf(dst, n, "%s", src);
}

int expt_err_set(struct expt_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	expt_err_clear(err);
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int expt_err_errno(struct expt_err *err, int code, const char *fmt, ...)
{
	int saved = errno;
	size_t len;
	va_list ap;

	if (!err)
		return code;
	expt_err_clear(err);
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(saved));
	return code;
}

void expt_err_at(struct expt_err *err, const char *file, int line, int col, const char *field)
{
	if (!err)
		return;
	copy(err->file, sizeof(err->file), file);
	err->line = line;
	err->col = col;
	copy(err->field, sizeof(err->field), field);
}

void expt_err_clear(struct expt_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

void expt_err_format(const struct expt_err *err, char *out, size_t n)
{
	size_t len = 0;

	if (!n)
		return;
	out[0] = '\0';
	if (err->file[0]) {
		if (err->line > 0 && err->col > 0)
			len =
			    (size_t)snprintf(out, n, "%s:%d:%d: ", err->file, err->line, err->col);
		else if (err->line > 0)
			len = (size_t)snprintf(out, n, "%s:%d: ", err->file, err->line);
		else
			len = (size_t)snprintf(out, n, "%s: ", err->file);
	}
	if (len < n && err->field[0])
		len += (size_t)snprintf(out + len, n - len, "%s: ", err->field);
	if (len < n)
		snprintf(out + len, n - len, "%s", err->msg);
}
