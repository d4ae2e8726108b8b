/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn-int: what conn.c (the connection: transport, frames, HELLO,
 * DISCONNECT, timers) and conn_notify.c (NOTIFY -> verdict -> ACK) share.
 * Private to those two files.
 */
#ifndef AGENT_CONN_INT_H
#define AGENT_CONN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "spop.h"

#define CONN_REPLY_MAX    1024          /* largest ACK we build (owner <= 256, message ~100) */

struct worker;

/* Room left in <c>'s transmit buffer. */
size_t tx_room(struct conn *c);
/* Sends AGENT-DISCONNECT <status> and closes <c> once it is out. */
void conn_error(struct conn *c, int status);
/* The configuration of <c>'s worker's current snapshot. */
const struct conf *conn_conf(const struct conn *c);
/* True while <w> may still log a denial or protocol error this second. */
bool conn_log_budget(struct worker *w);

/* Answers one NOTIFY frame with its ACK (doc/PROTOCOL.md §1.6, §1.7). */
void conn_handle_notify(struct conn *c, const struct spop_frame *f, int64_t now);

#endif /* AGENT_CONN_INT_H */
