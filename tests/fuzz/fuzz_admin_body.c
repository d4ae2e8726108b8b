/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_admin_body: keyauth-admin's request decoder (admin_build) and the
 * executor's frame decoder (admin_ipc_decode).
 *
 * Input: byte 0 picks a row of admin_routes[] (and whether an If-Match is
 * sent); the bytes up to the first 0xff are the request body; the bytes
 * after it are a frame for admin_ipc_decode. Checked: admin_build returns
 * ok or a 4xx, never anything else; an accepted request's keyauthctl words
 * are fixed words, the path parameter, or "--option=value" (no value can
 * be read as an option); the request sent through an IPC frame and decoded
 * again builds the same words; a decoded frame is a request admin_build
 * can judge without crashing.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The only words without '=' that may start with '-'. */
static int
flag_ok(const char *w)
{
	static const char *const flags[] = { "--json", "--no-expiry", "--reset", "--all", "--preview", NULL };
	const char *const *f;

	for (f = flags; *f != NULL; f++)
		if (strcmp(*f, w) == 0)
			return 1;
	return 0;
}

static void
check_words(const struct admin_in *in, const struct admin_argv *a)
{
	size_t i;

	assert(a->n <= ADMIN_ARGV_MAX && a->v[a->n] == NULL);
	for (i = 0; i < a->n; i++) {
		const char *w = a->v[i];

		if (w[0] == '-')
			assert(flag_ok(w) || (w[1] == '-' && strchr(w, '=') != NULL));
		else if (in->param[0] != '\0' && strcmp(w, in->param) == 0)
			assert(w[0] != '-');
	}
}

static void
same_words(const struct admin_argv *a, const struct admin_argv *b)
{
	size_t i;

	assert(a->n == b->n);
	for (i = 0; i < a->n; i++)
		assert(strcmp(a->v[i], b->v[i]) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct admin_argv a, b;
	struct admin_in in, back;
	struct admin_who who, who2;
	struct admin_ipc_store *st;
	struct admin_err e;
	const uint8_t *sep;
	size_t blen;
	char *frame;
	size_t flen;

	if (size < 1)
		return 0;
	memset(&in, 0, sizeof(in));
	in.route = &admin_routes[data[0] % admin_nroutes];
	if (strchr(in.route->pattern, '{') != NULL)
		memcpy(in.param, strstr(in.route->pattern, "{name}") ? "openai" : "abc123", 7);
	in.if_match = (data[0] & 0x80) ? "\"0123abcd\"" : NULL;
	sep = memchr(data + 1, 0xff, size - 1);
	blen = sep != NULL ? (size_t)(sep - (data + 1)) : size - 1;
	in.body = (const char *)data + 1;
	in.body_len = blen;

	if (admin_build(&in, &a, &e) == 0) {
		check_words(&in, &a);
		/* Through a frame and back: the executor builds the same words. */
		assert(admin_who_set(&who, "fuzz1", "owner", "read,write,deploy") == 0);
		frame = admin_ipc_encode(&in, &who, &flen);
		if (frame != NULL) {
			assert(admin_ipc_decode(frame, flen, &back, &who2, &st) == 0);
			assert(admin_build(&back, &b, &e) == 0);
			same_words(&a, &b);
			admin_ipc_store_free(st);
			free(frame);
		}
	} else {
		assert(e.status >= 400 && e.status < 500);
	}

	if (sep != NULL) {
		const char *f = (const char *)sep + 1;
		size_t n = size - (size_t)(sep + 1 - data);

		if (admin_ipc_decode(f, n, &back, &who2, &st) == 0) {
			if (admin_build(&back, &b, &e) == 0)
				check_words(&back, &b);
			else
				assert(e.status >= 400 && e.status < 500);
			admin_ipc_store_free(st);
		} else {
			assert(st == NULL);
		}
	}
	return 0;
}
