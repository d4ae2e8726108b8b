/* SPDX-License-Identifier: Apache-2.0 */
/*
 * floor_agent: the cheapest SPOE agent there can be, for measuring what
 * HAProxy itself spends on an SPOE exchange (issue #19's "floor").
 *
 * It answers every NOTIFY with one precomputed ACK (the same variables an
 * allowed request gets from keyauthd: txn.keyauth.ok = true, status = "ok",
 * key_id = a fixed id), whatever the message says: no parsing beyond the
 * frame header, no lookup, no hashing. One thread, epoll, every ACK of one
 * read() in one write(). HELLO and DISCONNECT are answered as keyauthd does
 * (pipelining announced). Benchmark use only: it trusts its peer.
 *
 *   floor_agent ADDRESS [nook|pad10]
 *       ADDRESS "unix:/path" or "127.0.0.1:PORT"; nook: leave txn.keyauth.ok
 *       out (status and key_id only), e2e.sh's lever (t); pad10: ten more
 *       string variables (txn.keyauth.pad0..9), e2e.sh's (T), the cost of
 *       one variable per ACK
 *
 * Prints "listening" when ready; stops on SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "spop.h"

#define BUF_SZ   (64 * 1024)
#define MAX_CONN 4096
#define FRAME_MAX 16380u

struct fconn {
	int fd;
	size_t in_len;
	uint8_t in[BUF_SZ];
	uint8_t out[BUF_SZ * 2];
};

static volatile sig_atomic_t stop;
static uint8_t ack_actions[512];
static size_t ack_actions_len;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The ACK payload (the actions) once, from a template frame with sid = fid
 * = 0 (one varint byte each). */
static int make_actions(int with_ok, int pad)
{
	uint8_t buf[1024];
	struct spop_fb b;
	struct spop_data d;
	int n;

	spop_fb_begin(&b, buf, sizeof(buf), SPOP_FRM_ACK, 0, 0);
	d.type = SPOP_DATA_BOOL;
	d.u.b = true;
	if (with_ok)
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &d);
	d.type = SPOP_DATA_STR;
	d.u.s.ptr = (const uint8_t *)"ok";
	d.u.s.len = 2;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "status", 6, &d);
	d.u.s.ptr = (const uint8_t *)"floor0000000";
	d.u.s.len = 12;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "key_id", 6, &d);
	for (int i = 0; i < pad; i++) {
		char name[8];

		snprintf(name, sizeof(name), "pad%d", i);
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, name, strlen(name), &d);
	}
	n = spop_fb_end(&b);
	if (n < 0)
		return -1;
	/* prefix 4, type 1, flags 4, sid 1, fid 1 */
	ack_actions_len = (size_t)n - 11;
	memcpy(ack_actions, buf + 11, ack_actions_len);
	return 0;
}

static size_t put_ack(uint8_t *p, uint64_t sid, uint64_t fid)
{
	uint8_t *q = p + 4;
	uint32_t len;

	*q++ = SPOP_FRM_ACK;
	*q++ = 0;
	*q++ = 0;
	*q++ = 0;
	*q++ = 1;   /* FIN */
	q += spop_varint_encode(q, q + 10, sid);
	q += spop_varint_encode(q, q + 10, fid);
	memcpy(q, ack_actions, ack_actions_len);
	q += ack_actions_len;
	len = (uint32_t)(q - p - 4);
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	return (size_t)(q - p);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			/* Rare with small ACKs: wait until writable. */
			fd_set wf;

			FD_ZERO(&wf);
			FD_SET(fd, &wf);
			select(fd + 1, NULL, &wf, NULL, NULL);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Handles what is in c->in; returns -1 to close. */
static int serve(struct fconn *c)
{
	size_t off = 0, out = 0;
	int close_after = 0;

	for (;;) {
		struct spop_frame f;
		int n = spop_frame_next(c->in + off, c->in_len - off, FRAME_MAX, &f);

		if (n == 0)
			break;
		if (n < 0)
			return -1;
		off += (size_t)n;
		if (f.type == SPOP_FRM_NOTIFY) {
			out += put_ack(c->out + out, f.sid, f.fid);
		} else if (f.type == SPOP_FRM_HAPROXY_HELLO) {
			struct spop_hello h;
			int m;

			if (spop_hello_parse(f.payload, f.payload_len, &h) != 0)
				return -1;
			m = spop_agent_hello_build(c->out + out, sizeof(c->out) - out,
			    spop_negotiate_frame_size(FRAME_MAX, h.max_frame_size));
			if (m < 0)
				return -1;
			out += (size_t)m;
			if (h.healthcheck)
				close_after = 1;
		} else if (f.type == SPOP_FRM_HAPROXY_DISCON) {
			int m = spop_agent_disconnect_build(c->out + out, sizeof(c->out) - out, 0, "");

			if (m > 0)
				out += (size_t)m;
			close_after = 1;
			break;
		}
		if (out > sizeof(c->out) - 512) {
			if (write_all(c->fd, c->out, out) == -1)
				return -1;
			out = 0;
		}
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	if (out > 0 && write_all(c->fd, c->out, out) == -1)
		return -1;
	return close_after ? -1 : 0;
}

static int listen_on(const char *addr)
{
	int fd, one = 1;

	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		if (strlen(addr + 5) >= sizeof(sun.sun_path))
			return -1;
		strcpy(sun.sun_path, addr + 5);
		unlink(sun.sun_path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			return -1;
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		const char *colon = strrchr(addr, ':');
		char host[64];

		if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
			return -1;
		memcpy(host, addr, (size_t)(colon - addr));
		host[colon - addr] = '\0';
		sin.sin_port = htons((uint16_t)atoi(colon + 1));
		if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
			return -1;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
			return -1;
	}
	return listen(fd, 1024) == 0 ? fd : -1;
}

int main(int argc, char **argv)
{
	struct epoll_event ev, evs[64];
	struct fconn **conns;
	const char *mode = argc == 3 ? argv[2] : "";
	int lfd, ep;

	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(mode, "nook") != 0 && strcmp(mode, "pad10") != 0)) {
		fprintf(stderr, "usage: floor_agent unix:/path | 127.0.0.1:PORT [nook|pad10]\n");
		return 2;
	}
	if (make_actions(strcmp(mode, "nook") != 0, strcmp(mode, "pad10") == 0 ? 10 : 0) == -1 ||
	    (lfd = listen_on(argv[1])) == -1) {
		perror("floor_agent");
		return 1;
	}
	conns = calloc(MAX_CONN, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (conns == NULL || ep < 0)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("listening\n");
	fflush(stdout);
	while (!stop) {
		int n = epoll_wait(ep, evs, 64, 200);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == lfd) {
				int cfd;

				while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int one = 1;

					if (cfd >= MAX_CONN || (conns[cfd] = calloc(1, sizeof(struct fconn))) == NULL) {
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					conns[cfd]->fd = cfd;
					ev.events = EPOLLIN;
					ev.data.fd = cfd;
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
				}
				continue;
			}
			{
				struct fconn *c = conns[fd];
				ssize_t r = read(fd, c->in + c->in_len, sizeof(c->in) - c->in_len);

				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r > 0) {
					c->in_len += (size_t)r;
					if (serve(c) == 0)
						continue;
				}
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
				free(c);
				conns[fd] = NULL;
			}
		}
	}
	return 0;
}
