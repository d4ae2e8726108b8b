/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hello: the handshake. Parses HAPROXY-HELLO into what the agent needs to
 * answer it, and builds the AGENT-HELLO answer (doc/PROTOCOL.md §2.1).
 *
 * The parser is strict about structure and types (a known key with a value
 * of the wrong type is an invalid frame) and lenient about content HAProxy
 * versions differ on: unknown keys and unknown capabilities are skipped, and
 * an empty or missing "capabilities" (health checks) is fine.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "spop-int.h"

/* Saturation point for version numbers: only "is it 2" matters, and
 * nothing we compare against comes near it. */
#define VSN_NUM_MAX 100000u

static bool is_space(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Parses a run of digits at *<p>; returns false when there is none. */
static bool parse_num(const uint8_t **p, const uint8_t *end, unsigned *v)
{
	const uint8_t *q = *p;
	unsigned n = 0;

	if (q >= end || *q < '0' || *q > '9')
		return false;
	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		n = n * 10 + (unsigned)(*q - '0');
		if (n > VSN_NUM_MAX)
			n = VSN_NUM_MAX;
	}
	*p = q;
	*v = n;
	return true;
}

static const uint8_t *skip_spaces(const uint8_t *p, const uint8_t *end)
{
	while (p < end && is_space(*p))
		p++;
	return p;
}

/* Checks one "Major.Minor" entry of [p, end) (spaces allowed around each
 * part). Returns 1 for a 2.x entry, 0 for another well-formed version, -1
 * for garbage. */
static int vsn_entry(const uint8_t *p, const uint8_t *end)
{
	unsigned major, minor;

	p = skip_spaces(p, end);
	if (!parse_num(&p, end, &major))
		return -1;
	p = skip_spaces(p, end);
	if (p >= end || *p != '.')
		return -1;
	p = skip_spaces(p + 1, end);
	if (!parse_num(&p, end, &minor))
		return -1;
	p = skip_spaces(p, end);
	if (p != end)
		return -1;
	return major == 2;
}

/* "supported-versions": every entry must be well formed, and one must be
 * 2.x. Returns 0 or -SPOP_ERR_BAD_VSN. */
static int vsn_list_check(const struct spop_str *s)
{
	const uint8_t *p = s->ptr, *end = s->ptr + s->len;
	bool found = false;

	for (;;) {
		const uint8_t *comma = p;
		int r;

		while (comma < end && *comma != ',')
			comma++;
		r = vsn_entry(p, comma);
		if (r < 0)
			return -SPOP_ERR_BAD_VSN;
		if (r > 0)
			found = true;
		if (comma == end)
			break;
		p = comma + 1;
	}
	return found ? 0 : -SPOP_ERR_BAD_VSN;
}

/* "capabilities": exact tokens, spaces tolerated, empty entries and
 * unknown names skipped. */
static unsigned caps_parse(const struct spop_str *s)
{
	const uint8_t *p = s->ptr, *end = s->ptr + s->len;
	unsigned caps = 0;

	while (p < end) {
		const uint8_t *tok, *tok_end;
		struct spop_str t;

		tok = skip_spaces(p, end);
		tok_end = tok;
		while (tok_end < end && *tok_end != ',')
			tok_end++;
		p = tok_end < end ? tok_end + 1 : end;
		while (tok_end > tok && is_space(tok_end[-1]))
			tok_end--;
		t.ptr = tok;
		t.len = (size_t)(tok_end - tok);
		if (SPOP__NAME_IS(&t, "pipelining"))
			caps |= SPOP_CAP_PIPELINING;
		else if (SPOP__NAME_IS(&t, "async"))
			caps |= SPOP_CAP_ASYNC;
		else if (SPOP__NAME_IS(&t, "fragmentation"))
			caps |= SPOP_CAP_FRAGMENTATION;
	}
	return caps;
}

/* Maps any integer value to uint32, negatives to 0 and large values to
 * UINT32_MAX. Returns false for a non-integer type. */
static bool int_value(const struct spop_data *v, uint32_t *out)
{
	switch (v->type) {
	case SPOP_DATA_INT32:
	case SPOP_DATA_INT64:
		if (v->u.i < 0)
			*out = 0;
		else
			*out = v->u.i > UINT32_MAX ? UINT32_MAX : (uint32_t)v->u.i;
		return true;
	case SPOP_DATA_UINT32:
	case SPOP_DATA_UINT64:
		*out = v->u.u > UINT32_MAX ? UINT32_MAX : (uint32_t)v->u.u;
		return true;
	default:
		return false;
	}
}

/*
 * The whole list is walked first, so a malformed entry anywhere answers
 * -SPOP_ERR_INVALID; then the version is judged before the frame size, in
 * the order HAProxy reports them. A repeated key: the last one counts.
 */
int spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h)
{
	struct spop_kv_iter it;
	struct spop_kv kv;
	struct spop_str vsn = { NULL, 0 };
	bool have_vsn = false, have_mfs = false;
	uint32_t mfs = 0;
	int ret;

	h->max_frame_size = 0;
	h->caps = 0;
	h->healthcheck = false;
	h->engine_id.ptr = NULL;
	h->engine_id.len = 0;

	spop_kv_iter_init(&it, payload, len);
	while ((ret = spop_kv_next(&it, &kv)) > 0) {
		const struct spop_data *v = &kv.value;

		if (SPOP__NAME_IS(&kv.name, "supported-versions")) {
			if (v->type != SPOP_DATA_STR)
				return -SPOP_ERR_INVALID;
			vsn = v->u.s;
			have_vsn = true;
		} else if (SPOP__NAME_IS(&kv.name, "max-frame-size")) {
			if (!int_value(v, &mfs))
				return -SPOP_ERR_INVALID;
			have_mfs = true;
		} else if (SPOP__NAME_IS(&kv.name, "capabilities")) {
			if (v->type != SPOP_DATA_STR)
				return -SPOP_ERR_INVALID;
			h->caps = caps_parse(&v->u.s);
		} else if (SPOP__NAME_IS(&kv.name, "healthcheck")) {
			if (v->type != SPOP_DATA_BOOL)
				return -SPOP_ERR_INVALID;
			h->healthcheck = v->u.b;
		} else if (SPOP__NAME_IS(&kv.name, "engine-id")) {
			if (v->type != SPOP_DATA_STR)
				return -SPOP_ERR_INVALID;
			h->engine_id = v->u.s;
		}
	}
	if (ret < 0)
		return ret;
	if (!have_vsn)
		return -SPOP_ERR_NO_VSN;
	ret = vsn_list_check(&vsn);
	if (ret < 0)
		return ret;
	if (!have_mfs)
		return -SPOP_ERR_NO_FRAME_SIZE;
	if (mfs < SPOP_MIN_FRAME_SIZE)
		return -SPOP_ERR_BAD_FRAME_SIZE;
	h->max_frame_size = mfs;
	return 0;
}

uint32_t spop_negotiate_frame_size(uint32_t ours, uint32_t theirs)
{
	uint32_t v = ours < theirs ? ours : theirs;

	return v > SPOP_MAX_FRAME_SIZE ? SPOP_MAX_FRAME_SIZE : v;
}

/* Keys in the order HAProxy's own agents send them; 2.6 needs the literal
 * 00 00 ids, which is what a zero varint is. */
int spop_agent_hello_build(uint8_t *buf, size_t cap, uint32_t max_frame_size)
{
	static const char vsn[] = "2.0";
	static const char caps[] = "pipelining";
	struct spop_fb b;
	struct spop_data v;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_AGENT_HELLO, 0, 0);
	v.type = SPOP_DATA_STR;
	v.u.s.ptr = (const uint8_t *)vsn;
	v.u.s.len = sizeof(vsn) - 1;
	spop_fb_kv(&b, "version", sizeof("version") - 1, &v);
	v.type = SPOP_DATA_UINT32;
	v.u.u = max_frame_size;
	spop_fb_kv(&b, "max-frame-size", sizeof("max-frame-size") - 1, &v);
	v.type = SPOP_DATA_STR;
	v.u.s.ptr = (const uint8_t *)caps;
	v.u.s.len = sizeof(caps) - 1;
	spop_fb_kv(&b, "capabilities", sizeof("capabilities") - 1, &v);
	return spop_fb_end(&b);
}
