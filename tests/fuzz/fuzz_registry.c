/* Fuzz target for what a registry sends expt build (src/oci/registry.c) and the image
 * references a spec holds (src/util/imgref.c): the first byte picks the parser, the rest is its
 * input: 0 mod 3, a WWW-Authenticate header value; 1, an image index (JSON) searched for a
 * platform the bytes before its first newline name; 2, an image reference. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci/registry.h"
#include "util/imgref.h"

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
	if (data[0] % 3 == 2) {
		struct expt_imgref ref;
		const char *why;
		if (!expt_imgref_parse(text, &ref, &why))
			(void)expt_imgref_host_is_local(ref.host);
	} else if (data[0] % 3 == 0) {
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
