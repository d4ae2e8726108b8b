/* SPDX-License-Identifier: Apache-2.0 */
/*
 * holder: who holds an address keyauthd cannot listen on.
 *
 * When a TCP bind fails with EADDRINUSE, or a unix socket path already has a
 * live listener, the operator needs to know whether that is a second agent,
 * a leftover, or someone impersonating the agent. Linux tells: a TCP
 * socket's uid and inode are in /proc/net/tcp and tcp6, a unix socket's
 * inode (by path) in /proc/net/unix, and the process holding an inode has a
 * "socket:[inode]" link in /proc/PID/fd. What cannot be read (another pid
 * namespace, hidepid, no privilege) is skipped and the answer says it is
 * unknown. Main thread, at start only: it reads every process's fd table.
 */
#ifndef AGENT_HOLDER_H
#define AGENT_HOLDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct holder {
	bool found;              /* a matching socket in /proc/net */
	bool uid_known;          /* <uid> is meaningful */
	uid_t uid;               /* TCP: the socket's; unix: its process's real uid */
	unsigned long inode;     /* the socket's inode */
	pid_t pid;               /* a process holding it; 0: none visible */
	char comm[32];           /* its /proc/PID/comm, "" if unreadable */
};

/* The socket listening on <host> (numeric IPv4 or IPv6, without brackets)
 * port <port>, or on a wildcard address of that port. Fills <h> (zeroed
 * first); h->found says whether one was seen. */
void holder_find_tcp(const char *host, uint16_t port, struct holder *h);

/* The unix socket listening at <path>. Fills <h> the same way. */
void holder_find_unix(const char *path, struct holder *h);

/* "by pid 4242 (python3, uid 65534 nobody)", or what is known of it (a uid
 * alone, or nothing), into <out>. Returns <out>. */
const char *holder_describe(const struct holder *h, char *out, size_t len);

#endif /* AGENT_HOLDER_H */
