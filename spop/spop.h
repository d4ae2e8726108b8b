/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spop: a codec for HAProxy's Stream Processing Offload Protocol (SPOP 2.0).
 *
 * Pure functions over caller-owned bytes: no I/O, no allocation, no global
 * state, nothing about any particular agent. Decoded strings are slices
 * (struct spop_str) into the caller's buffer and stay valid only as long as
 * that buffer is unchanged.
 *
 * Return convention of every decoder that reads from a buffer:
 *    n > 0   done, n bytes consumed
 *    0       incomplete: more bytes are needed (nothing consumed)
 *    < 0     -SPOP_ERR_x: a protocol error whose wire status is SPOP_ERR_x
 * Iterators return 1 (an item), 0 (end of list) or -SPOP_ERR_x.
 * Encoders return the bytes written or -SPOP_ERR_TOO_BIG, and never write
 * past the end they are given.
 *
 * Wire layouts (all integers after the length prefix are varints, see
 * spop_varint_decode):
 *
 *   FRAME    := LEN:u32be TYPE:u8 FLAGS:u32be STREAM-ID FRAME-ID PAYLOAD
 *   KV-LIST  := { NAME:buf VALUE:typed }*                 (HELLO, DISCONNECT)
 *   NOTIFY   := { MSG-NAME:buf NB-ARGS:u8 { ARG-NAME:buf VALUE:typed }* }*
 *   ACK      := { ACTION:u8 NB-ARGS:u8 ARGS }*
 *       SET-VAR   01 03 SCOPE:u8 NAME:buf VALUE:typed
 *       UNSET-VAR 02 02 SCOPE:u8 NAME:buf
 *   buf      := LEN:varint BYTES
 *   typed    := TYPE:u8 (low nibble type, high nibble flags) DATA
 */
#ifndef SPOP_SPOP_H
#define SPOP_SPOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPOP_LEN_PREFIX       4      /* the u32be length before every frame */
#define SPOP_FRAME_MIN_LEN    7      /* type + flags + 1-byte sid + 1-byte fid */
#define SPOP_VARINT_MAX_LEN   10     /* enough for any uint64 */
#define SPOP_MIN_FRAME_SIZE   256    /* smallest max-frame-size HAProxy accepts */
#define SPOP_DEFAULT_FRAME_SIZE 16380 /* HAProxy's default: tune.bufsize - 4 */
#define SPOP_MAX_FRAME_SIZE   (1u << 24) /* our hard ceiling for any negotiation */
#define SPOP_DISCONNECT_MSG_MAX 255  /* 2.6 rejects longer DISCONNECT messages */
#define SPOP_VAR_NAME_MAX     63     /* "scope.prefix.name" must fit HAProxy's 64-byte buffer */

#define SPOP_FL_FIN           0x00000001u
#define SPOP_FL_ABORT         0x00000002u

enum spop_frame_type {
	SPOP_FRM_UNSET          = 0,   /* fragment continuation (never accepted here) */
	SPOP_FRM_HAPROXY_HELLO  = 1,
	SPOP_FRM_HAPROXY_DISCON = 2,
	SPOP_FRM_NOTIFY         = 3,
	SPOP_FRM_AGENT_HELLO    = 101,
	SPOP_FRM_AGENT_DISCON   = 102,
	SPOP_FRM_ACK            = 103,
};

/* Values equal the wire status codes of DISCONNECT frames. */
enum spop_err {
	SPOP_ERR_NONE           = 0,   /* normal */
	SPOP_ERR_IO             = 1,
	SPOP_ERR_TOUT           = 2,
	SPOP_ERR_TOO_BIG        = 3,
	SPOP_ERR_INVALID        = 4,
	SPOP_ERR_NO_VSN         = 5,
	SPOP_ERR_NO_FRAME_SIZE  = 6,
	SPOP_ERR_NO_CAP         = 7,
	SPOP_ERR_BAD_VSN        = 8,
	SPOP_ERR_BAD_FRAME_SIZE = 9,
	SPOP_ERR_FRAG_NOT_SUP   = 10,
	SPOP_ERR_INTERLACED     = 11,
	SPOP_ERR_FRAMEID_NOTFOUND = 12,
	SPOP_ERR_RES            = 13,
	SPOP_ERR_UNKNOWN        = 99,
};

enum spop_data_type {
	SPOP_DATA_NULL   = 0,
	SPOP_DATA_BOOL   = 1,   /* value in flag bit 0x10 */
	SPOP_DATA_INT32  = 2,
	SPOP_DATA_UINT32 = 3,
	SPOP_DATA_INT64  = 4,
	SPOP_DATA_UINT64 = 5,
	SPOP_DATA_IPV4   = 6,
	SPOP_DATA_IPV6   = 7,
	SPOP_DATA_STR    = 8,
	SPOP_DATA_BIN    = 9,
};

#define SPOP_DATA_TYPE_MASK  0x0f
#define SPOP_DATA_FLAG_TRUE  0x10

enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN  = 2,
	SPOP_SCOPE_REQ  = 3,
	SPOP_SCOPE_RES  = 4,
};

enum spop_action {
	SPOP_ACT_SET_VAR   = 1,
	SPOP_ACT_UNSET_VAR = 2,
};

/* A slice of a caller-owned buffer. Not NUL-terminated. */
struct spop_str {
	const uint8_t *ptr;
	size_t len;
};

/* One typed value. For STR and BIN, <u.s> points into the decoded buffer. */
struct spop_data {
	enum spop_data_type type;
	union {
		bool b;              /* BOOL */
		int64_t i;           /* INT32, INT64 (sign-extended) */
		uint64_t u;          /* UINT32, UINT64 */
		uint8_t ipv4[4];     /* network order */
		uint8_t ipv6[16];    /* network order */
		struct spop_str s;   /* STR, BIN */
	} u;
};

/* One decoded frame (see spop_frame_next). <payload> points into the input. */
struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t sid;
	uint64_t fid;
	const uint8_t *payload;
	size_t payload_len;
};

/* Reason string of a status code ("normal", "I/O error", ...); never NULL.
 * A decoder's negative return (-SPOP_ERR_x) is accepted too. */
const char *spop_err_str(int status);

/* ---- varints --------------------------------------------------------------- */

/* Decodes one varint from [p, end). Returns bytes consumed, 0 if incomplete,
 * -SPOP_ERR_INVALID when no terminating byte is found within
 * SPOP_VARINT_MAX_LEN bytes or the value overflows 64 bits. */
int spop_varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *v);

/* Encodes <v> at <p>. Returns bytes written or -SPOP_ERR_TOO_BIG. */
int spop_varint_encode(uint8_t *p, uint8_t *end, uint64_t v);

/* Number of bytes spop_varint_encode writes for <v> (1..10). */
size_t spop_varint_len(uint64_t v);

/* ---- typed data and buffers ------------------------------------------------- */

/* Decodes a length-prefixed untyped buffer (names). Same returns as varints;
 * a length running past <end> is incomplete. */
int spop_buf_decode(const uint8_t *p, const uint8_t *end, struct spop_str *s);

/* Decodes one typed value. Unknown type ids (10-15) answer -SPOP_ERR_INVALID.
 * A STR type byte with flag bits set decodes as BIN, as HAProxy does. */
int spop_data_decode(const uint8_t *p, const uint8_t *end, struct spop_data *d);

/* Encodes one typed value (flags 0 except BOOL). INT32/INT64 are sign-extended
 * to 64 bits before encoding. Returns bytes written or -SPOP_ERR_TOO_BIG;
 * -SPOP_ERR_INVALID for an unknown type. */
int spop_data_encode(uint8_t *p, uint8_t *end, const struct spop_data *d);

/* ---- frames ------------------------------------------------------------------ */

/*
 * Splits the next frame off [p, p + len). <max_frame_size> is the largest
 * frame length (the value after the 4-byte prefix) accepted.
 * Returns the whole frame size (prefix included) and fills <f>; 0 when more
 * bytes are needed; or an error:
 *   -SPOP_ERR_INVALID        length < 7, or sid/fid not decodable in the frame
 *   -SPOP_ERR_TOO_BIG        length > max_frame_size, or > SPOP_MAX_FRAME_SIZE
 *                            whatever max_frame_size says (known from 4 bytes)
 *   -SPOP_ERR_FRAG_NOT_SUP   type 0 (fragment) or FIN clear
 * Unknown frame types are returned as they are; the caller decides.
 */
int spop_frame_next(const uint8_t *p, size_t len, uint32_t max_frame_size,
                    struct spop_frame *f);

/*
 * Frame builder: writes one complete frame (prefix included) into a caller
 * buffer, never more than <cap> bytes. Errors are sticky: after the first
 * failure every call is a no-op and spop_fb_end() returns the error.
 */
struct spop_fb {
	uint8_t *start;      /* first byte of the frame (the length prefix) */
	uint8_t *p;          /* write cursor */
	uint8_t *end;        /* one past the last writable byte */
	int err;             /* 0, or -SPOP_ERR_x after a failure */
};

/* Starts a frame of <type> with FIN set. <cap> should be at most
 * negotiated max-frame-size + 4; it is clamped to SPOP_MAX_FRAME_SIZE + 4. */
void spop_fb_begin(struct spop_fb *b, uint8_t *buf, size_t cap, uint8_t type,
                   uint64_t sid, uint64_t fid);
/* Appends a KV entry (HELLO/DISCONNECT payloads). <name> must be non-empty. */
void spop_fb_kv(struct spop_fb *b, const char *name, size_t name_len,
                const struct spop_data *v);
/* Appends a SET-VAR action. <name> must match [A-Za-z0-9_.]+ (else
 * -SPOP_ERR_INVALID, nothing appended); <scope> must be 0..4. */
void spop_fb_set_var(struct spop_fb *b, enum spop_scope scope, const char *name,
                     size_t name_len, const struct spop_data *v);
/* Appends an UNSET-VAR action; same rules for <name> and <scope>. */
void spop_fb_unset_var(struct spop_fb *b, enum spop_scope scope, const char *name,
                       size_t name_len);
/* Writes the length prefix. Returns the whole frame size or -SPOP_ERR_x. */
int spop_fb_end(struct spop_fb *b);

/* True if <name> is a valid variable name for SET-VAR/UNSET-VAR: 1 to
 * SPOP_VAR_NAME_MAX bytes of [A-Za-z0-9_.]. The caller still checks that
 * "scope.prefix.name" fits, since only it knows the prefix. */
bool spop_var_name_ok(const char *name, size_t len);

/* ---- KV lists ---------------------------------------------------------------- */

struct spop_kv {
	struct spop_str name;
	struct spop_data value;
};

struct spop_kv_iter {
	const uint8_t *p;
	const uint8_t *end;
};

void spop_kv_iter_init(struct spop_kv_iter *it, const uint8_t *p, size_t len);
/* Returns 1 with <kv> filled, 0 at the end of the list, or -SPOP_ERR_INVALID
 * (empty name, truncated entry, unknown type). */
int spop_kv_next(struct spop_kv_iter *it, struct spop_kv *kv);

/* ---- HELLO ------------------------------------------------------------------- */

#define SPOP_CAP_PIPELINING    0x1u
#define SPOP_CAP_ASYNC         0x2u
#define SPOP_CAP_FRAGMENTATION 0x4u

struct spop_hello {
	uint32_t max_frame_size;   /* HAProxy's announced value */
	unsigned caps;             /* SPOP_CAP_* seen in "capabilities" */
	bool healthcheck;          /* "healthcheck" true: a spop-check probe */
	struct spop_str engine_id; /* empty when absent */
};

/*
 * Parses a HAPROXY-HELLO payload. Returns 0 or:
 *   -SPOP_ERR_NO_VSN          no "supported-versions"
 *   -SPOP_ERR_BAD_VSN         the list is malformed or has no 2.x entry
 *   -SPOP_ERR_NO_FRAME_SIZE   no "max-frame-size"
 *   -SPOP_ERR_BAD_FRAME_SIZE  max-frame-size < 256
 *   -SPOP_ERR_INVALID         malformed KV list or a value of the wrong type
 * Keys match by exact name; unknown keys are skipped. A missing or empty
 * "capabilities" is accepted (health checks send "").
 */
int spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h);

/* min(ours, theirs), and never above SPOP_MAX_FRAME_SIZE. */
uint32_t spop_negotiate_frame_size(uint32_t ours, uint32_t theirs);

/* Builds AGENT-HELLO: version "2.0", max-frame-size, capabilities
 * "pipelining". Returns the frame size or -SPOP_ERR_TOO_BIG. */
int spop_agent_hello_build(uint8_t *buf, size_t cap, uint32_t max_frame_size);

/* ---- NOTIFY ------------------------------------------------------------------ */

struct spop_msg {
	struct spop_str name;
	unsigned nb_args;
	const uint8_t *args;      /* first argument */
	const uint8_t *args_end;  /* one past the last argument */
};

struct spop_msg_iter {
	const uint8_t *p;
	const uint8_t *end;
};

struct spop_arg_iter {
	const uint8_t *p;
	const uint8_t *end;
	unsigned left;
};

void spop_msg_iter_init(struct spop_msg_iter *it, const uint8_t *payload, size_t len);
/* Returns 1 with <m> filled (every argument already bounds-checked), 0 at the
 * end of the payload (an empty NOTIFY returns 0 at once), or
 * -SPOP_ERR_INVALID. */
int spop_msg_next(struct spop_msg_iter *it, struct spop_msg *m);

void spop_arg_iter_init(struct spop_arg_iter *it, const struct spop_msg *m);
/* Returns 1 with <arg> filled (name may be empty), 0 after NB-ARGS arguments,
 * or -SPOP_ERR_INVALID. */
int spop_arg_next(struct spop_arg_iter *it, struct spop_kv *arg);

/* ---- DISCONNECT ---------------------------------------------------------------- */

struct spop_disconnect {
	uint32_t status;           /* SPOP_ERR_UNKNOWN when absent */
	struct spop_str message;   /* empty when absent */
};

/* Parses a HAPROXY-DISCONNECT payload. Returns 0 or -SPOP_ERR_INVALID. */
int spop_disconnect_parse(const uint8_t *payload, size_t len, struct spop_disconnect *d);

/* Builds AGENT-DISCONNECT with <status> and <msg> (NULL: the status's reason
 * string), truncated to SPOP_DISCONNECT_MSG_MAX bytes. Returns the frame size
 * or -SPOP_ERR_TOO_BIG. */
int spop_agent_disconnect_build(uint8_t *buf, size_t cap, uint32_t status,
                                const char *msg);

#ifdef __cplusplus
}
#endif

#endif /* SPOP_SPOP_H */
