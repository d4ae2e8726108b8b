/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listener: opening listening sockets, and accepting on them with a batch
 * limit, a pause on resource errors and a resume (see listener.h).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "holder.h"
#include "filetrust.h"
#include "listener.h"
#include "log.h"

/* ---- opening --------------------------------------------------------------------- */

static int
tcp_open(const struct listen_conf *l, bool reuseport, int backlog, char *err, size_t errlen)
{
	struct addrinfo hints = {
		.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
		.ai_family = strchr(l->host, ':') != NULL ? AF_INET6 : AF_INET,
		.ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *ai;
	char port[8];
	int fd, one = 1;

	snprintf(port, sizeof(port), "%u", (unsigned)l->port);
	if (getaddrinfo(l->host, port, &hints, &ai) != 0) {
		snprintf(err, errlen, "%s: bad address", l->addr);
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", l->addr, strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 || listen(fd, backlog) == -1) {
		int e = errno;

		if (e == EADDRINUSE) {
			struct holder h;
			char who[256];

			holder_find_tcp(l->host, l->port, &h);
			snprintf(err, errlen, "%s is already in use %s (bind: %s)", l->addr,
			    holder_describe(&h, who, sizeof(who)), strerror(e));
		} else {
			snprintf(err, errlen, "%s: bind/listen: %s", l->addr, strerror(e));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/*
 * Makes room for a socket at <sun>: nothing there, or a leftover socket
 * nobody listens on (removed). Refuses anything else: a file that is not a
 * socket, a socket with a listener (a non-blocking connect succeeds, or
 * finds its queue full), a socket it cannot probe. Returns 0 or -1.
 */
static int
unix_clear_leftover(const char *name, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	int probe, r, e;

	if (lstat(sun->sun_path, &st) == -1)
		return 0;          /* nothing there; any other trouble shows at bind */
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket", name);
		return -1;
	}
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe == -1) {
		snprintf(err, errlen, "%s: socket: %s", name, strerror(errno));
		return -1;
	}
	r = connect(probe, (const struct sockaddr *)sun, sizeof(*sun));
	e = errno;
	close(probe);
	if (r == 0 || e == EAGAIN) {
		struct holder h;
		char who[256];

		holder_find_unix(sun->sun_path, &h);
		snprintf(err, errlen, "%s is already in use %s: another process is listening there",
		    name, holder_describe(&h, who, sizeof(who)));
		return -1;
	}
	if (e == ENOENT)
		return 0;          /* removed meanwhile */
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "%s: cannot tell whether another process is listening there "
		    "(connect: %s)", name, strerror(e));
		return -1;
	}
	if (unlink(sun->sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: cannot remove the leftover socket: %s", name,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The directory of a unix socket must be one only trusted users may write
 * (root, keyauthd's own user: filetrust.h): else anyone who may create a
 * file there can listen at that path while keyauthd is away, and HAProxy
 * (or keyauthctl) would talk to them. Returns 0, or -1 with <err>.
 */
static int
unix_dir_trusted(const char *name, const char *path, const struct ft_trust *trust, char *err,
                 size_t errlen)
{
	char dir[128], why[768];      /* dir: unix paths are under 108 bytes */
	struct stat st;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return 0;               /* conf.c wants an absolute path */
	slash[slash == dir ? 1 : 0] = '\0';
	if (stat(dir, &st) == -1 && errno == ENOENT) {
		snprintf(err, errlen, "%s: directory %s does not exist (create it, owned by "
		    "keyauthd's user and HAProxy's group, mode 2750: systemd-tmpfiles --create "
		    "keyauth.conf, or mkdir -m 2750 %s && chown keyauth:haproxy %s)", name, dir,
		    dir, dir);
		return -1;
	}
	if (ft_check_dir(trust, dir, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: the socket's directory is not safe (whoever may write "
		    "there could listen in keyauthd's place while it is away): %s", name, why);
		return -1;
	}
	return 0;
}

int
listener_open_unix(const char *name, const char *path, mode_t mode, int backlog,
                   const struct ft_trust *trust, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, r, e;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long", name);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (trust != NULL && unix_dir_trusted(name, path, trust, err, errlen) == -1)
		return -1;
	if (unix_clear_leftover(name, &sun, err, errlen) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "%s: socket: %s", name, strerror(errno));
		return -1;
	}
	/* Created with no more than <mode>, never wider for a moment. */
	old = umask(~mode & 0777);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old);
	if (r == 0 && (chmod(path, mode) == -1 || listen(fd, backlog) == -1)) {
		e = errno;
		unlink(path);
		r = -1;
	}
	if (r == -1) {
		snprintf(err, errlen, "%s: bind/listen: %s", name, strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

int
listener_open(const struct listen_conf *l, bool reuseport, int backlog,
              const struct ft_trust *trust, char *err, size_t errlen)
{
	if (l->family == LISTEN_UNIX)
		return listener_open_unix(l->addr, l->path, l->mode, backlog, trust, err, errlen);
	return tcp_open(l, reuseport, backlog, err, errlen);
}

/* ---- accepting ------------------------------------------------------------------- */

static void
set_watch(struct listener_set *s, bool on)
{
	struct listener *l;

	for (l = s->first; l != NULL; l = l->next) {
		if (on)
			ev_io_start(s->loop, &l->io);
		else
			ev_io_stop(s->loop, &l->io);
	}
}

static void
set_pause(struct listener_set *s, int err)
{
	log_warning("event=%s errno=%d error=%s action=pause_accept pause_ms=%d",
	    s->ops->event, err, LOG_Q(strerror(err)), (int)(LISTENER_PAUSE * 1000));
	if (s->ops->on_pause != NULL)
		s->ops->on_pause(s, err);
	set_watch(s, false);
	s->paused = true;
	ev_timer_set(&s->pause, LISTENER_PAUSE, 0);
	ev_timer_start(s->loop, &s->pause);
}

static void
listener_on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct listener *l = io->data;
	struct listener_set *s = l->set;
	unsigned i;

	(void)loop;
	(void)revents;
	for (i = 0; i < s->ops->batch; i++) {
		struct sockaddr_storage peer;
		socklen_t peerlen = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &peerlen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd != -1) {
			s->ops->on_accept(l, fd, (const struct sockaddr *)&peer, peerlen);
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			continue;
		set_pause(s, errno);
		return;
	}
}

static void
listener_on_pause(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	listener_set_resume(t->data);
}

void
listener_set_init(struct listener_set *s, struct ev_loop *loop, const struct listener_ops *ops,
                  void *owner)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->ops = ops;
	s->owner = owner;
	ev_init(&s->pause, listener_on_pause);
	s->pause.data = s;
}

void
listener_add(struct listener_set *s, struct listener *l, int fd, void *arg)
{
	struct listener **pp = &s->first;

	while (*pp != NULL)
		pp = &(*pp)->next;
	l->fd = fd;
	l->arg = arg;
	l->set = s;
	ev_io_init(&l->io, listener_on_io, fd, EV_READ);
	l->io.data = l;
	l->next = NULL;
	*pp = l;
}

void
listener_set_start(struct listener_set *s)
{
	if (s->on)
		return;
	s->on = true;
	s->paused = false;
	set_watch(s, true);
}

void
listener_set_stop(struct listener_set *s)
{
	s->on = false;
	s->paused = false;
	ev_timer_stop(s->loop, &s->pause);
	set_watch(s, false);
}

void
listener_set_resume(struct listener_set *s)
{
	if (!s->on || !s->paused)
		return;
	s->paused = false;
	ev_timer_stop(s->loop, &s->pause);
	set_watch(s, true);
}

bool
listener_set_paused(const struct listener_set *s)
{
	return s->paused;
}

/* ---- the small servers of the main loop ------------------------------------------- */

static void
client_on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	listener_client_free(t->data);
}

static void
server_on_accept(struct listener *l, int fd, const struct sockaddr *peer, socklen_t peerlen)
{
	struct listener_server *sv = l->arg;
	struct listener_client *c;

	(void)peer;
	(void)peerlen;
	if (sv->n >= sv->ops->max || (c = calloc(1, sv->ops->size)) == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->sv = sv;
	c->next = sv->first;
	sv->first = c;
	sv->n++;
	ev_io_init(&c->io, sv->ops->on_io, fd, EV_READ);
	c->io.data = c;
	ev_io_start(sv->set.loop, &c->io);
	ev_timer_init(&c->timer, client_on_deadline, sv->ops->timeout, 0);
	c->timer.data = c;
	ev_timer_start(sv->set.loop, &c->timer);
}

void
listener_server_start(struct listener_server *sv, struct ev_loop *loop, int fd,
                      const struct listener_server_ops *ops, void *owner)
{
	memset(sv, 0, sizeof(*sv));
	sv->ops = ops;
	sv->owner = owner;
	sv->accept_ops.event = ops->event;
	sv->accept_ops.batch = ops->max;
	sv->accept_ops.on_accept = server_on_accept;
	listener_set_init(&sv->set, loop, &sv->accept_ops, sv);
	listener_add(&sv->set, &sv->lsn, fd, sv);
	listener_set_start(&sv->set);
}

void
listener_server_stop(struct listener_server *sv)
{
	listener_set_stop(&sv->set);       /* first: freeing clients resumes nothing */
	while (sv->first != NULL)
		listener_client_free(sv->first);
	close(sv->lsn.fd);
}

void
listener_client_watch(struct listener_client *c, int events)
{
	struct ev_loop *loop = c->sv->set.loop;

	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(loop, &c->io);
}

void
listener_client_free(struct listener_client *c)
{
	struct listener_server *sv = c->sv;
	struct listener_client **pp;

	if (sv->ops->on_free != NULL)
		sv->ops->on_free(c);
	ev_io_stop(sv->set.loop, &c->io);
	ev_timer_stop(sv->set.loop, &c->timer);
	close(c->fd);
	for (pp = &sv->first; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	sv->n--;
	free(c);
	listener_set_resume(&sv->set);     /* a descriptor is free */
}
