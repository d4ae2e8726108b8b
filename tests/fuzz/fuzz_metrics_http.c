/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_metrics_http: the input is what a client sends to the metrics
 * endpoint; metrics_http_parse judges its request head.
 *
 * The bytes are copied into a buffer of exactly their size, so ASan catches
 * any read past the end. Checks: the result is one of the documented values;
 * TOO_BIG only from METRICS_REQ_MAX bytes on, INCOMPLETE only below; a
 * served request really starts with "GET " or "HEAD " and HEAD is flagged as
 * such; and a prefix of the input is judged INCOMPLETE or the same as the
 * whole (bytes after the head, and bytes not yet received, never change a
 * verdict already reached).
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	enum metrics_req r, rp;
	bool head, head_p;
	size_t cut;

	if (copy == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	r = metrics_http_parse(copy, size, &head);
	assert(r >= METRICS_REQ_INCOMPLETE && r < METRICS_REQ_ENTRIES);
	assert(r != METRICS_REQ_TOO_BIG || size >= METRICS_REQ_MAX);
	assert(r != METRICS_REQ_INCOMPLETE || size < METRICS_REQ_MAX);
	if (r == METRICS_REQ_METRICS)
		assert(head ? memcmp(copy, "HEAD ", 5) == 0 : memcmp(copy, "GET ", 4) == 0);
	/* A few prefixes: a third, a half, all but one byte. */
	for (cut = 0; cut < 3; cut++) {
		size_t n = cut == 0 ? size / 3 : cut == 1 ? size / 2 : size ? size - 1 : 0;

		rp = metrics_http_parse(copy, n, &head_p);
		assert(rp == METRICS_REQ_INCOMPLETE || rp == r);
		if (rp == r && (r == METRICS_REQ_METRICS || r == METRICS_REQ_NOT_FOUND))
			assert(head_p == head);
	}
	free(copy);
	return 0;
}
