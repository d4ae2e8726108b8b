/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden frames (doc/PROTOCOL.md §1-§2: what HAProxy 2.6 sends and accepts), as tu_hex() specs grouped by field.
 * Two were cross-checked by the doc's authors against real captures (the 2.6
 * HELLO, and the health-check HELLO and AGENT-HELLO of spop-check.vtc); the
 * engine-id below is a made-up UUID of the same 36-character shape.
 * Macros rather than arrays so that every test file can pick what it needs.
 */
#ifndef TESTS_UNIT_SPOP_VECTORS_H
#define TESTS_UNIT_SPOP_VECTORS_H

#define VEC_ENGINE_ID "c0f397ef-5a3c-4b1e-9d2f-7a8b6c5d4e3f"

/* HAPROXY-HELLO, 2.6 defaults: 133 bytes. */
#define VEC_HELLO_26 \
	"00000081 01 00000001 00 00" \
	" 12'supported-versions' 08 03'2.0'" \
	" 0e'max-frame-size' 03 fcf006" \
	" 0c'capabilities' 08 10'pipelining,async'" \
	" 09'engine-id' 08 24'" VEC_ENGINE_ID "'"

/* HAPROXY-HELLO of option spop-check (2.6 and 3.x): 82 bytes. */
#define VEC_HELLO_HC \
	"0000004e 01 00000001 00 00" \
	" 12'supported-versions' 08 03'2.0'" \
	" 0e'max-frame-size' 03 fcf006" \
	" 0c'capabilities' 08 00" \
	" 0b'healthcheck' 11"

/* AGENT-HELLO for max-frame-size 16380: 68 bytes. */
#define VEC_AGENT_HELLO \
	"00000040 65 00000001 00 00" \
	" 07'version' 08 03'2.0'" \
	" 0e'max-frame-size' 03 fcf006" \
	" 0c'capabilities' 08 0a'pipelining'"

/* NOTIFY sid 5 fid 1, message "check-auth" with 3 args: 56 bytes. */
#define VEC_NOTIFY \
	"00000034 03 00000001 05 01" \
	" 0a'check-auth' 03" \
	" 07'api_key' 08 03'abc'" \
	" 03'key' 08 03'xyz'" \
	" 04'path' 08 04'/foo'"

/* ACK sid 5 fid 1, set-var txn "ok" = true: 18 bytes. */
#define VEC_ACK_OK \
	"0000000e 67 00000001 05 01" \
	" 01 03 02 02'ok' 11"

/* ACK with no action: 11 bytes. */
#define VEC_ACK_EMPTY "00000007 67 00000001 05 01"

/* ACK captured in haproxy/haproxy#2490: sid 249011, fid 1,
 * set-var txn "allowed" = true. 25 bytes. */
#define VEC_ACK_2490 \
	"00000015 67 00000001 f3bc78 01" \
	" 01 03 02 07'allowed' 11"

/* AGENT-DISCONNECT status 0 "normal": 41 bytes. */
#define VEC_DISCON \
	"00000025 66 00000001 00 00" \
	" 0b'status-code' 03 00" \
	" 07'message' 08 06'normal'"

#endif /* TESTS_UNIT_SPOP_VECTORS_H */
