/* Shared helpers for show and debug: log tails and shell-quoted command lines. */
#include "runview.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"

void cli_tail_lines(const char *path, size_t n, struct expt_strv *out)
{
	struct expt_buf b = EXPT_BUF_INIT;
	char chunk[65536];
	off_t size, from;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	const char *p, *end;
	size_t count = 0;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	from = size > 262144 ? size - 262144 : 0;
	lseek(fd, from, SEEK_SET);
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r <= 0)
			break;
		expt_buf_add(&b, chunk, (size_t)r);
	}
	close(fd);
	end = b.buf + b.len;
	if (end > b.buf && end[-1] == '\n')
		end--;
	/* Walk back n newlines. */
	for (p = end; p > b.buf; p--)
		if (p[-1] == '\n' && ++count == n)
			break;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl : end;
		expt_strv_push_owned(out, expt_xstrndup(p, (size_t)(stop - p)));
		p = nl ? nl + 1 : end;
	}
	expt_buf_release(&b);
}

char *cli_argv_line(const char *argv_json)
{
	struct expt_buf b = EXPT_BUF_INIT;
	json_t *a = cli_json_parse(argv_json), *v;
	size_t i;

	if (!json_is_array(a)) {
		json_decref(a);
		return expt_xstrdup("-");
	}
	json_array_foreach(a, i, v)
	{
		const char *s = json_string_value(v);
		if (!s)
			continue;
		if (i)
			expt_buf_addch(&b, ' ');
		if (*s && !strpbrk(s, " \t\n\"'$\\`!*?[]{}()<>|&;#~")) {
			expt_buf_adds(&b, s);
			continue;
		}
		expt_buf_addch(&b, '\'');
		for (const char *q = s; *q; q++) {
			if (*q == '\'')
				expt_buf_adds(&b, "'\\''");
			else
				expt_buf_addch(&b, *q);
		}
		expt_buf_addch(&b, '\'');
	}
	json_decref(a);
	return expt_buf_detach(&b, NULL);
}
