/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listener: every socket keyauthd listens on (the SPOP listeners of the
 * workers, the control socket, the metrics endpoint), opened the same way
 * and accepted on the same way.
 *
 * Opening. A TCP listener is bound alone, or with SO_REUSEPORT to share its
 * port with this process's other workers; SO_REUSEPORT would also let a
 * second keyauthd (or anything else running as the same user) bind the same
 * port and silently take half the connections, so a caller that wants it
 * opens the address once without it first, to prove it free. A unix path
 * where a file already exists is probed: something that is not a socket, or
 * a socket where something accepts connections (a running agent), makes
 * opening fail with an error naming the path; a socket nobody listens on (a
 * dead agent's leftover) is removed and replaced. When the address is taken
 * (a TCP port in use, a unix path with a live listener), the error says by
 * whom as far as /proc tells: pid, command and uid (holder.h).
 *
 * Accepting. A listener set is one or more listening sockets of one libev
 * loop that pause and resume together. A wakeup accepts at most ops->batch
 * connections on a socket (fairness with the loop's other I/O). When accept
 * fails for want of a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM, or any
 * other unexpected error), the pending connection stays queued and the
 * socket readable, so retrying at once would spin: the set logs one line
 * ("event=<ops->event> errno=N error=\"...\" action=pause_accept
 * pause_ms=N"), stops watching its sockets and resumes after LISTENER_PAUSE
 * seconds, or at once when the owner calls listener_set_resume after closing
 * a connection (the descriptor it freed is what accepting waits for).
 * Single-threaded: every call for a set runs on the thread of its loop.
 *
 * Servers. The small servers of the main loop (control socket, metrics
 * endpoint) are a listener_server: one socket and its clients, at most
 * ops->max at once (more are closed at accept), each with its socket
 * watcher and one deadline (then it is freed); freeing a client resumes
 * accepting at once.
 */
#ifndef AGENT_LISTENER_H
#define AGENT_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <ev.h>

#include "conf.h"

#define LISTENER_PAUSE 0.1          /* seconds accepting pauses after EMFILE & co */

struct listener;
struct listener_set;

struct listener_ops {
	const char *event;          /* log event of a failed accept, e.g. "accept_error" */
	unsigned batch;             /* accepts per socket per wakeup, >= 1 */
	/* <fd> (non-blocking, close-on-exec) was accepted on <l> and is now the
	 * owner's, to serve or to close; <peer> (<peerlen> bytes) is its
	 * address as accept4 gave it. */
	void (*on_accept)(struct listener *l, int fd, const struct sockaddr *peer,
	                  socklen_t peerlen);
	/* Optional: accept failed with <err> and accepting pauses (counters;
	 * the line is logged already). */
	void (*on_pause)(struct listener_set *s, int err);
};

/* One listening socket of a set; the owner embeds it and keeps it in place. */
struct listener {
	ev_io io;
	int fd;
	void *arg;                  /* the owner's, for on_accept */
	struct listener_set *set;
	struct listener *next;
};

struct listener_set {
	struct ev_loop *loop;
	const struct listener_ops *ops;
	void *owner;                /* the owner's, for on_pause */
	struct listener *first;
	ev_timer pause;
	bool on;                    /* between listener_set_start and _stop */
	bool paused;                /* on, but watching nothing until resumed */
};

struct ft_trust;

/*
 * Opens a listening socket (non-blocking, close-on-exec) for <l>, TCP or
 * unix (mode l->mode), with <backlog>; TCP with SO_REUSEPORT if <reuseport>.
 * A unix socket's directory must exist and pass ft_check_dir for <trust>
 * (filetrust.h; NULL: not checked): whoever may write there could listen in
 * keyauthd's place while it is away. Returns the fd, or -1 with <err>
 * ("<l->addr>: what went wrong").
 */
int listener_open(const struct listen_conf *l, bool reuseport, int backlog,
                  const struct ft_trust *trust, char *err, size_t errlen);

/* The same for the unix socket at <path>; <name> starts the error messages
 * (e.g. "control socket /run/keyauth/control.sock"). */
int listener_open_unix(const char *name, const char *path, mode_t mode, int backlog,
                       const struct ft_trust *trust, char *err, size_t errlen);

/* An empty set on <loop>; <ops> must outlive it. */
void listener_set_init(struct listener_set *s, struct ev_loop *loop,
                       const struct listener_ops *ops, void *owner);
/* Adds the listening socket <fd> (still the caller's to close) as <l>. Before
 * listener_set_start, or while the set is stopped. */
void listener_add(struct listener_set *s, struct listener *l, int fd, void *arg);
/* Starts watching the set's sockets. */
void listener_set_start(struct listener_set *s);
/* Stops watching them and ends any pause; the sockets stay open. */
void listener_set_stop(struct listener_set *s);
/* Ends a pause now (a descriptor was freed); no-op when not paused. */
void listener_set_resume(struct listener_set *s);
bool listener_set_paused(const struct listener_set *s);

struct listener_server;

/* The head of an owner's client struct (its first member). */
struct listener_client {
	ev_io io;                   /* on fd; data: the client */
	ev_timer timer;             /* the deadline */
	int fd;
	struct listener_server *sv;
	struct listener_client *next;
};

struct listener_server_ops {
	const char *event;          /* log event of a failed accept */
	size_t size;                /* of the owner's client struct */
	unsigned max;               /* clients at once, and accepts per wakeup */
	double timeout;             /* seconds from accept to the client's end */
	/* The client's socket is ready (io->data: the client); EV_READ at first. */
	void (*on_io)(struct ev_loop *loop, ev_io *io, int revents);
	/* Optional: the client goes; release what the owner's part holds. */
	void (*on_free)(struct listener_client *c);
};

/* A small server of the main loop: one listening socket, its clients. */
struct listener_server {
	struct listener_set set;
	struct listener lsn;
	struct listener_ops accept_ops;
	const struct listener_server_ops *ops;
	void *owner;
	struct listener_client *first;
	unsigned n;
};

/* Serves <fd> (a listening socket, now the server's) on <loop>: each
 * connection accepted becomes a zeroed client of ops->size bytes, watched
 * for EV_READ, with its deadline running; over ops->max, it is closed. */
void listener_server_start(struct listener_server *sv, struct ev_loop *loop, int fd,
                           const struct listener_server_ops *ops, void *owner);
/* Stops accepting, frees every client, closes the listening socket. */
void listener_server_stop(struct listener_server *sv);
/* Watches the client's socket for <events> from now on. */
void listener_client_watch(struct listener_client *c, int events);
/* Stops the client's watchers, closes its socket, unlinks and frees it
 * (after ops->on_free), and resumes accepting if it was paused. */
void listener_client_free(struct listener_client *c);

#endif /* AGENT_LISTENER_H */
