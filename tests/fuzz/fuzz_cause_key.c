/* Fuzz target for expt_diagnosis_cause_key (src/backend/backend.c), which reads a cause as any
 * backend or engine wrote it: the first byte sizes the output (1..256 bytes), then "RUN_ID\n
 * BACKEND_REF\nCAUSE" (a missing line: no such field). The key must fit the room it is given,
 * end with its NUL, and be the same when asked twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expt_run_rec r;
	char *text, *cause, *nl, out[257], again[257];
	size_t room;

	if (size < 1)
		return 0;
	room = (size_t)data[0] + 1;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	memset(&r, 0, sizeof(r));
	cause = text;
	if ((nl = strchr(cause, '\n'))) {
		*nl = '\0';
		r.run_id = cause;
		cause = nl + 1;
		if ((nl = strchr(cause, '\n'))) {
			*nl = '\0';
			r.backend_ref = cause;
			cause = nl + 1;
		}
	}
	/* a cause is at most what struct expt_diagnosis holds */
	if (strlen(cause) >= sizeof(((struct expt_diagnosis *)0)->cause))
		cause[sizeof(((struct expt_diagnosis *)0)->cause) - 1] = '\0';
	memset(out, 'x', sizeof(out));
	expt_diagnosis_cause_key(cause, &r, out, room);
	if (!memchr(out, '\0', room) || out[room] != 'x')
		abort();
	expt_diagnosis_cause_key(cause, &r, again, room);
	if (strcmp(out, again))
		abort();
	free(text);
	return 0;
}
