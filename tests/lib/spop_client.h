/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spop_client: a small blocking SPOP client playing HAProxy's side, for the
 * integration tests and the load generator.
 *
 * Frames are built and split with spop/. A connection keeps its socket
 * non-blocking and drains whatever the peer sends into its read buffer while
 * it writes, so that sending a long pipelined burst can never deadlock against
 * an agent that answers while it reads. Every wait is bounded by a timeout in
 * milliseconds. Nothing here prints: callers decide what to report (and must
 * never report a key).
 */
#ifndef TESTS_LIB_SPOP_CLIENT_H
#define TESTS_LIB_SPOP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spop.h"

/* Results of the reading functions. */
enum spc_rc {
	SPC_FRAME   = 1,   /* a frame was read */
	SPC_EOF     = 0,   /* orderly close, or ECONNRESET */
	SPC_TIMEOUT = -1,  /* nothing complete within the timeout */
	SPC_ERROR   = -2,  /* I/O error, or bytes that do not split into a frame */
};

struct spc_conn {
	int fd;
	uint8_t *rbuf;      /* bytes received and not yet returned as frames */
	size_t rlen;
	size_t rcap;
	bool eof;           /* the peer closed (or reset); rbuf may still hold frames */
	int split_err;      /* -SPOP_ERR_x from the last failed split, else 0 */
};

/* A frame returned by spc_read_frame; <payload> is a malloc'd copy (may be
 * NULL when empty) owned by the frame: release it with spc_frame_free. */
struct spc_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t sid;
	uint64_t fid;
	uint8_t *payload;
	size_t payload_len;
};

struct spc_hello_opts {
	const char *versions;        /* "supported-versions"; NULL: omit */
	uint32_t max_frame_size;     /* 0: omit "max-frame-size" */
	const char *capabilities;    /* NULL: omit */
	const char *engine_id;       /* NULL: omit */
	bool healthcheck;            /* add "healthcheck" = true */
};

/* One NOTIFY argument: a name and a typed value (strings are borrowed). */
struct spc_arg {
	const char *name;
	struct spop_data value;
};

#define SPC_STATUS_MAX   32
#define SPC_STR_MAX      512

/* A decoded keyauth ACK. Absent strings are "" with the has_ flag false.
 * Strings longer than the field are truncated (and <truncated> set). */
struct spc_ack {
	unsigned nactions;           /* actions decoded */
	bool all_set_var_txn;        /* every action is SET-VAR in scope txn */
	bool has_ok;
	bool ok;
	bool has_status;
	char status[SPC_STATUS_MAX];
	bool has_key_id;
	char key_id[SPC_STR_MAX];
	bool has_owner;
	char owner[SPC_STR_MAX];
	bool has_message;
	char message[SPC_STR_MAX];
	bool has_scopes;             /* the admin route's ok verdicts only */
	char scopes[SPC_STATUS_MAX];
	bool truncated;
	bool wrong_type;             /* a known variable had an unexpected type */
};

/* ---- connections ------------------------------------------------------------ */

/* Opens a non-blocking connection to <addr> ("unix:/path", "host:port" or
 * "[v6]:port"), retrying refused/absent endpoints and full listen queues
 * every 10 ms for up to <timeout_ms>; an attempt in progress gets up to
 * <timeout_ms>, at least 2 s. Returns the fd or -1 (errno set). */
int spc_connect_fd(const char *addr, int timeout_ms);

/* spc_connect_fd wrapped into a new connection; NULL on failure. */
struct spc_conn *spc_open(const char *addr, int timeout_ms);

/* Closes and frees <c>; NULL is a no-op. */
void spc_close(struct spc_conn *c);

/* Writes all <len> bytes within <timeout_ms>, buffering anything the peer
 * sends meanwhile. Returns 0, or -1 (errno: ETIMEDOUT, EPIPE, ...). Never
 * raises SIGPIPE. */
int spc_send_raw(struct spc_conn *c, const void *p, size_t len, int timeout_ms);

/* Reads the next frame within <timeout_ms>. Frames up to SPOP_MAX_FRAME_SIZE
 * are accepted (the agent is not ours to police here). See enum spc_rc. */
int spc_read_frame(struct spc_conn *c, struct spc_frame *f, int timeout_ms);

void spc_frame_free(struct spc_frame *f);

/* Waits for the peer to close. Returns SPC_EOF, SPC_TIMEOUT, or SPC_FRAME if
 * a frame arrived instead (it is consumed and discarded), or SPC_ERROR. */
int spc_wait_eof(struct spc_conn *c, int timeout_ms);

/* ---- building frames (pure, into caller buffers) ------------------------------ */

/* Builds a HAPROXY-HELLO. Returns the frame size or -SPOP_ERR_x. */
int spc_build_hello(uint8_t *buf, size_t cap, const struct spc_hello_opts *o);

/* Builds a HAPROXY-DISCONNECT with <status> and <msg>. */
int spc_build_disconnect(uint8_t *buf, size_t cap, uint32_t status, const char *msg);

/* Builds a NOTIFY carrying one message <msg> with <nargs> arguments. */
int spc_build_notify(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
                     const char *msg, const struct spc_arg *args, unsigned nargs);

/* Builds the NOTIFY HAProxy sends for keyauth: message <msg> ("keyauth" when
 * NULL) with args route (STRING) and key (STRING, or NULL type when <key> is
 * NULL). <key_len> is used when <key> may hold NUL bytes; pass
 * SPC_KEY_STRLEN otherwise. */
#define SPC_KEY_STRLEN ((size_t)-1)
int spc_build_keyauth(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
                      const char *msg, const char *route, const char *key,
                      size_t key_len);

/* ---- convenience: send then read ------------------------------------------- */

/* Sends <o> as HELLO and reads the answer into <f> (caller frees). Returns
 * spc_read_frame's result, or SPC_ERROR when the send failed. */
int spc_hello(struct spc_conn *c, const struct spc_hello_opts *o, struct spc_frame *f,
              int timeout_ms);

/* HELLO as HAProxy 3.x sends it ("pipelining", 16380); true if the answer is
 * an AGENT-HELLO. */
bool spc_handshake(struct spc_conn *c, int timeout_ms);

/* Sends one keyauth NOTIFY. Returns 0 or -1. */
int spc_send_keyauth(struct spc_conn *c, uint64_t sid, uint64_t fid, const char *route,
                     const char *key, int timeout_ms);

/* Sends one keyauth NOTIFY with sid/fid 1/1 and reads its ACK into <a>.
 * Returns 0, or -1 when the answer was not an ACK for 1/1 that parses. */
int spc_query(struct spc_conn *c, const char *route, const char *key, struct spc_ack *a,
              int timeout_ms);

/* ---- decoding answers ----------------------------------------------------------- */

/* Parses an ACK payload. Returns 0, or -SPOP_ERR_INVALID when an action is
 * truncated or not SET-VAR/UNSET-VAR. */
int spc_ack_parse(const uint8_t *payload, size_t len, struct spc_ack *a);

/* Parses a DISCONNECT payload and returns its status-code, or -1 when it does
 * not parse. <msg> (may be NULL) receives the message, truncated to <msglen>. */
int spc_disconnect_status(const uint8_t *payload, size_t len, char *msg, size_t msglen);

/* Fields of an AGENT-HELLO payload. */
struct spc_agent_hello {
	bool has_version;
	char version[32];
	bool has_max_frame_size;
	uint64_t max_frame_size;
	bool has_capabilities;
	char capabilities[128];
};

/* Returns 0, or -1 when the KV list does not parse or a value has the wrong type. */
int spc_agent_hello_parse(const uint8_t *payload, size_t len, struct spc_agent_hello *h);

#endif /* TESTS_LIB_SPOP_CLIENT_H */
