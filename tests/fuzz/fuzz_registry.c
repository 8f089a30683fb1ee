/* Fuzz target for what a registry sends expt build (src/oci/registry.c): the first byte picks
 * the parser, the rest is its input: even, a WWW-Authenticate header value; odd, an image index
 * (JSON) searched for a platform the next bytes name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (data[0] % 2 == 0) {
		struct expt_oci_challenge c;
		expt_oci_challenge_parse(text, &c);
	} else {
		/* "PLATFORM\nJSON" */
		char *nl = memchr(text, '\n', size - 1);
		char digest[72], have[128];
		if (nl) {
			*nl = '\0';
			expt_oci_index_pick(nl + 1, size - 1 - (size_t)(nl + 1 - text), text,
					    digest, sizeof(digest), have, sizeof(have));
		}
	}
	free(text);
	return 0;
}
