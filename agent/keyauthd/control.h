/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control: keyauthd's local control socket (main thread only).
 *
 * A unix stream socket, mode 0600. A client sends one command line
 * ("stats" or "reload"), reads the answer (JSON, one object) until EOF.
 * The daemon supplies the answers through a callback; this module only owns
 * the socket, the clients and their bounded buffers and timeouts.
 */
#ifndef AGENT_CONTROL_H
#define AGENT_CONTROL_H

#include <stddef.h>
#include <stdio.h>

struct ev_loop;
struct control;
struct ft_trust;

/* Writes the answer to <cmd> (NUL-terminated, without newline) into <out>.
 * Returns 0, or -1 for an unknown command (the module answers the error). */
typedef int control_cmd_cb(void *arg, const char *cmd, FILE *out);

/* The control socket at <path>, mode 0600, its directory checked against
 * <trust> as a listener's (listener.h). */
struct control *control_open(const char *path, const struct ft_trust *trust,
                             struct ev_loop *loop, control_cmd_cb *cb, void *arg, char *err,
                             size_t errlen);
/* Closes the socket and every client, removes the socket file. NULL: no-op. */
void control_close(struct control *ctl);

#endif /* AGENT_CONTROL_H */
