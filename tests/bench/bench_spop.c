/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_spop: ns per operation for the codec's two hot paths.
 *
 *   notify_decode  split one NOTIFY frame carrying a "keyauth" message with
 *                  "route" and "key" (50 bytes) args, iterate its messages
 *                  and args, pick both values out by name
 *   ack_build      build an ACK with five txn variables: ok (bool), status,
 *                  key_id, owner, message (strings)
 *
 * Each is calibrated to run about one second. Output: "name ns/op" lines.
 * Targets (issue 2): decode < 150 ns, ACK < 100 ns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spop.h"

static volatile size_t sink;

/* The NOTIFY HAProxy sends for
 *   args route=str(/v1/chat/xyz) key=req.hdr(x-api-key)
 * with a made-up 50-character key. */
static const uint8_t notify_frame[] =
	"\x00\x00\x00\x5c" "\x03" "\x00\x00\x00\x01" "\x05" "\x01"
	"\x07" "keyauth" "\x02"
	"\x05" "route" "\x08\x0c" "/v1/chat/xyz"
	"\x03" "key" "\x08\x32" "test-key-0123456789abcdefghijklmnopqrstuvwxyzABCDE";

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int notify_decode_once(void)
{
	struct spop_frame f;
	struct spop_msg_iter mi;
	struct spop_arg_iter ai;
	struct spop_msg m;
	struct spop_kv a;
	struct spop_str route = { NULL, 0 }, key = { NULL, 0 };
	int r;

	r = spop_frame_next(notify_frame, sizeof(notify_frame) - 1, SPOP_DEFAULT_FRAME_SIZE, &f);
	if (r <= 0 || f.type != SPOP_FRM_NOTIFY)
		return -1;
	spop_msg_iter_init(&mi, f.payload, f.payload_len);
	while ((r = spop_msg_next(&mi, &m)) == 1) {
		if (m.name.len != 7 || memcmp(m.name.ptr, "keyauth", 7) != 0)
			continue;
		spop_arg_iter_init(&ai, &m);
		while ((r = spop_arg_next(&ai, &a)) == 1) {
			if (a.value.type != SPOP_DATA_STR)
				continue;
			if (a.name.len == 5 && memcmp(a.name.ptr, "route", 5) == 0)
				route = a.value.u.s;
			else if (a.name.len == 3 && memcmp(a.name.ptr, "key", 3) == 0)
				key = a.value.u.s;
		}
		if (r < 0)
			return -1;
	}
	if (r < 0 || !route.ptr || !key.ptr)
		return -1;
	sink += route.len + key.len + (size_t)f.sid;
	return 0;
}

static int ack_build_once(uint8_t *buf, size_t cap)
{
	struct spop_fb b;
	struct spop_data v;
	int n;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_ACK, 249011, 1);
	v.type = SPOP_DATA_BOOL;
	v.u.b = true;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &v);
	v.type = SPOP_DATA_STR;
	v.u.s.ptr = (const uint8_t *)"valid";
	v.u.s.len = 5;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "status", 6, &v);
	v.u.s.ptr = (const uint8_t *)"k_01HZX3Q9";
	v.u.s.len = 10;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "key_id", 6, &v);
	v.u.s.ptr = (const uint8_t *)"team-research";
	v.u.s.len = 13;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "owner", 5, &v);
	v.u.s.ptr = (const uint8_t *)"ok";
	v.u.s.len = 2;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "message", 7, &v);
	n = spop_fb_end(&b);
	if (n <= 0)
		return -1;
	sink += buf[(size_t)n - 1];
	return 0;
}

static uint8_t ack_buf[SPOP_DEFAULT_FRAME_SIZE + SPOP_LEN_PREFIX];

static int run_notify(unsigned long iters)
{
	unsigned long i;

	for (i = 0; i < iters; i++)
		if (notify_decode_once() < 0)
			return -1;
	return 0;
}

static int run_ack(unsigned long iters)
{
	unsigned long i;

	for (i = 0; i < iters; i++)
		if (ack_build_once(ack_buf, sizeof(ack_buf)) < 0)
			return -1;
	return 0;
}

/* Doubles the iteration count until a run takes 0.1 s, then runs about
 * one second and reports its ns/op. */
static int bench(const char *name, int (*run)(unsigned long))
{
	unsigned long iters = 1000;
	double t0, dt;

	for (;;) {
		t0 = now_ns();
		if (run(iters) < 0)
			goto fail;
		dt = now_ns() - t0;
		if (dt >= 1e8)
			break;
		iters *= 2;
	}
	iters = (unsigned long)((double)iters * 1e9 / dt);
	t0 = now_ns();
	if (run(iters) < 0)
		goto fail;
	dt = now_ns() - t0;
	printf("%s %.1f ns/op (%lu iterations)\n", name, dt / (double)iters, iters);
	return 0;
fail:
	fprintf(stderr, "bench_spop: %s: codec error\n", name);
	return 1;
}

int main(void)
{
	int rc = 0;

	rc |= bench("notify_decode", run_notify);
	rc |= bench("ack_build", run_ack);
	return rc;
}
