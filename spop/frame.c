/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame: splitting a byte stream into frames, and building one frame.
 *
 * The splitter works on whatever bytes one or more reads left in a receive
 * buffer: it peeks at the 4-byte length, refuses a bad length before the
 * payload arrives (so a hostile length never makes anyone wait for, or
 * allocate, gigabytes), and only then waits for the whole frame.
 * The builder writes a frame into one caller buffer so it can be sent with
 * a single write (doc/PROTOCOL.md §2.5).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "spop-int.h"

/* FLAGS after TYPE: 4 bytes. */
#define SPOP_FLAGS_LEN 4

int spop_frame_next(const uint8_t *p, size_t len, uint32_t max_frame_size,
                    struct spop_frame *f)
{
	const uint8_t *q, *end;
	uint32_t flen, flags;
	uint64_t sid, fid;
	int n;

	if (len < SPOP_LEN_PREFIX)
		return 0;
	flen = spop__get_u32(p);
	if (flen < SPOP_FRAME_MIN_LEN)
		return -SPOP_ERR_INVALID;
	/* The hard ceiling also keeps the returned size inside an int. */
	if (flen > max_frame_size || flen > SPOP_MAX_FRAME_SIZE)
		return -SPOP_ERR_TOO_BIG;
	if (len - SPOP_LEN_PREFIX < flen)
		return 0;

	end = p + SPOP_LEN_PREFIX + flen;
	q = p + SPOP_LEN_PREFIX;
	flags = spop__get_u32(q + 1);
	/* We never announce fragmentation: a continuation or a first
	 * fragment means HAProxy broke the contract (status 10). */
	if (q[0] == SPOP_FRM_UNSET || !(flags & SPOP_FL_FIN))
		return -SPOP_ERR_FRAG_NOT_SUP;
	q += 1 + SPOP_FLAGS_LEN;
	n = spop_varint_decode(q, end, &sid);
	if (n <= 0)
		return -SPOP_ERR_INVALID;
	q += n;
	n = spop_varint_decode(q, end, &fid);
	if (n <= 0)
		return -SPOP_ERR_INVALID;
	q += n;

	f->type = p[SPOP_LEN_PREFIX];
	f->flags = flags;
	f->sid = sid;
	f->fid = fid;
	f->payload = q;
	f->payload_len = (size_t)(end - q);
	return (int)(SPOP_LEN_PREFIX + flen);
}

/* ---- frame builder ------------------------------------------------------- */

static void fb_fail(struct spop_fb *b, int err)
{
	if (!b->err)
		b->err = err;
}

void spop_fb_begin(struct spop_fb *b, uint8_t *buf, size_t cap, uint8_t type,
                   uint64_t sid, uint64_t fid)
{
	uint8_t *q;
	int n;

	/* The u32 prefix and the int returns cannot describe more. */
	if (cap > SPOP_LEN_PREFIX + (size_t)SPOP_MAX_FRAME_SIZE)
		cap = SPOP_LEN_PREFIX + (size_t)SPOP_MAX_FRAME_SIZE;
	b->start = buf;
	b->p = buf;
	b->end = buf + cap;
	b->err = 0;
	if (cap < SPOP_LEN_PREFIX + 1 + SPOP_FLAGS_LEN) {
		fb_fail(b, -SPOP_ERR_TOO_BIG);
		return;
	}
	q = buf + SPOP_LEN_PREFIX;
	*q++ = type;
	spop__put_u32(q, SPOP_FL_FIN);
	q += SPOP_FLAGS_LEN;
	n = spop__varint_put(q, b->end, sid);
	if (n < 0) {
		fb_fail(b, n);
		return;
	}
	q += n;
	n = spop__varint_put(q, b->end, fid);
	if (n < 0) {
		fb_fail(b, n);
		return;
	}
	b->p = q + n;
}

void spop_fb_kv(struct spop_fb *b, const char *name, size_t name_len,
                const struct spop_data *v)
{
	uint8_t *q = b->p;
	int n;

	if (b->err)
		return;
	/* HAProxy's KV parser treats an empty key as an error. */
	if (name_len == 0) {
		fb_fail(b, -SPOP_ERR_INVALID);
		return;
	}
	n = spop__buf_put(q, b->end, name, name_len);
	if (n < 0) {
		fb_fail(b, n);
		return;
	}
	q += n;
	n = spop__data_put(q, b->end, v);
	if (n < 0) {
		fb_fail(b, n);
		return;
	}
	b->p = q + n;
}

/* Bytes HAProxy accepts in a variable name: [A-Za-z0-9_.]. */
static const uint8_t var_name_chars[256] = {
	['.'] = 1, ['_'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
	['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
	['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
	['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

bool spop_var_name_ok(const char *name, size_t len)
{
	size_t i;

	/* Name alone already too long for "scope.prefix.name" in 63 bytes;
	 * the caller checks the full name, since only it knows the prefix. */
	if (len == 0 || len > SPOP_VAR_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!var_name_chars[(unsigned char)name[i]])
			return false;
	return true;
}

/* Appends ACTION NB-ARGS SCOPE NAME [VALUE]; <v> NULL means UNSET-VAR. */
static void fb_action(struct spop_fb *b, enum spop_scope scope, const char *name,
                      size_t name_len, const struct spop_data *v)
{
	uint8_t *q = b->p;
	int n;

	if (b->err)
		return;
	if ((unsigned)scope > SPOP_SCOPE_RES || !spop_var_name_ok(name, name_len)) {
		fb_fail(b, -SPOP_ERR_INVALID);
		return;
	}
	if (b->end - q < 3) {
		fb_fail(b, -SPOP_ERR_TOO_BIG);
		return;
	}
	q[0] = v ? SPOP_ACT_SET_VAR : SPOP_ACT_UNSET_VAR;
	q[1] = v ? 3 : 2;
	q[2] = (uint8_t)scope;
	q += 3;
	n = spop__buf_put(q, b->end, name, name_len);
	if (n < 0) {
		fb_fail(b, n);
		return;
	}
	q += n;
	if (v) {
		n = spop__data_put(q, b->end, v);
		if (n < 0) {
			fb_fail(b, n);
			return;
		}
		q += n;
	}
	b->p = q;
}

void spop_fb_set_var(struct spop_fb *b, enum spop_scope scope, const char *name,
                     size_t name_len, const struct spop_data *v)
{
	if (!v) {
		fb_fail(b, -SPOP_ERR_INVALID);
		return;
	}
	fb_action(b, scope, name, name_len, v);
}

void spop_fb_unset_var(struct spop_fb *b, enum spop_scope scope, const char *name,
                       size_t name_len)
{
	fb_action(b, scope, name, name_len, NULL);
}

int spop_fb_end(struct spop_fb *b)
{
	size_t flen;

	if (b->err)
		return b->err;
	flen = (size_t)(b->p - b->start) - SPOP_LEN_PREFIX;
	spop__put_u32(b->start, (uint32_t)flen);
	return (int)(SPOP_LEN_PREFIX + flen);
}
