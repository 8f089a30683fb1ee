/* Shared helpers for show and debug: log tails and shell-quoted command lines. */
#include "runview.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"

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
