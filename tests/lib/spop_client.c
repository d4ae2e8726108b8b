/* SPDX-License-Identifier: Apache-2.0 */
/*
 * spop_client: HAProxy's side of SPOP for tests and benchmarks (see the header).
 *
 * All sockets are non-blocking; every "blocking" call is a poll() loop bounded
 * by a deadline on CLOCK_MONOTONIC. Frame bytes come only from spop/ encoders
 * and frames are split only with spop_frame_next, so these helpers exercise the
 * codec the agent uses while staying independent of the agent's own code.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "spop_client.h"

/* Read buffers grow on demand up to this; a test never needs more, and a
 * runaway peer must not eat the machine. */
#define SPC_RBUF_MAX (64u << 20)
#define SPC_RBUF_MIN 65536u

static int64_t spc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int spc_left_ms(int64_t deadline)
{
	int64_t left = deadline - spc_now_ms();

	if (left < 0)
		return 0;
	return left > 1000000 ? 1000000 : (int)left;
}

static void spc_nap_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* ---- connections ------------------------------------------------------------ */

/* Fills <ss> from <addr>. Returns the address length, or 0 if unparsable. */
static socklen_t spc_parse_addr(const char *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		const char *path = addr + 5;
		size_t len = strlen(path);

		if (len == 0 || len >= sizeof(sun->sun_path))
			return 0;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, len + 1);
		return (socklen_t)sizeof(*sun);
	}

	char host[256];
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t hlen;

	if (!colon)
		return 0;
	hlen = (size_t)(colon - addr);
	if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
		h = addr + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return 0;
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                          .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	socklen_t sl = 0;

	if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
		return 0;
	if (res->ai_addrlen <= sizeof(*ss)) {
		memcpy(ss, res->ai_addr, res->ai_addrlen);
		sl = res->ai_addrlen;
	}
	freeaddrinfo(res);
	return sl;
}

/* Least time given to one connection attempt that is in progress, whatever
 * the caller's timeout (0 = "one attempt"): a loopback handshake completes at
 * once unless the listen queue is full, and then the attempt must still end. */
#define SPC_CONNECT_ATTEMPT_MS 2000

int spc_connect_fd(const char *addr, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t sl = spc_parse_addr(addr, &ss);
	int64_t deadline = spc_now_ms() + timeout_ms;

	if (sl == 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		/* Non-blocking from the start: a blocking connect to a full listen
		 * queue waits without bound (unix) or for the kernel's SYN retries,
		 * minutes (TCP). Here a full unix queue is EAGAIN and retried, and
		 * a TCP attempt in progress is bounded by poll. */
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int e = 0;

		if (fd == -1)
			return -1;
		if (connect(fd, (struct sockaddr *)&ss, sl) == -1)
			e = errno;
		if (e == EINPROGRESS) {
			int64_t now = spc_now_ms();
			int64_t until = deadline > now + SPC_CONNECT_ATTEMPT_MS ? deadline : now + SPC_CONNECT_ATTEMPT_MS;
			struct pollfd pfd = { .fd = fd, .events = POLLOUT };
			socklen_t el = sizeof(e);
			int n;

			do
				n = poll(&pfd, 1, spc_left_ms(until));
			while (n == -1 && errno == EINTR);
			if (n == 1)
				e = getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == -1 ? errno : e;
			else
				e = n == 0 ? ETIMEDOUT : errno;
		}
		if (e == 0) {
			if (ss.ss_family != AF_UNIX) {
				int one = 1;

				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			}
			return fd;
		}
		close(fd);
		/* Not listening yet (ENOENT, ECONNREFUSED) or queue full (EAGAIN). */
		if ((e != ECONNREFUSED && e != ENOENT && e != EAGAIN && e != EINTR) ||
		    spc_now_ms() >= deadline) {
			errno = e;
			return -1;
		}
		spc_nap_ms(10);
	}
}

struct spc_conn *spc_open(const char *addr, int timeout_ms)
{
	int fd = spc_connect_fd(addr, timeout_ms);
	struct spc_conn *c;

	if (fd == -1)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	return c;
}

void spc_close(struct spc_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c->rbuf);
	free(c);
}

/* Reads everything available into rbuf. Returns 0, or -1 on an I/O error or a
 * full buffer. Sets <eof> on orderly close or reset. */
static int spc_fill(struct spc_conn *c)
{
	while (!c->eof) {
		if (c->rcap - c->rlen < 4096) {
			size_t ncap = c->rcap ? c->rcap * 2 : SPC_RBUF_MIN;
			uint8_t *n;

			if (ncap > SPC_RBUF_MAX) {
				errno = ENOBUFS;
				return -1;
			}
			n = realloc(c->rbuf, ncap);
			if (!n)
				return -1;
			c->rbuf = n;
			c->rcap = ncap;
		}
		ssize_t r = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);

		if (r > 0) {
			c->rlen += (size_t)r;
			continue;
		}
		if (r == 0 || errno == ECONNRESET) {
			c->eof = true;
			return 0;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int spc_send_raw(struct spc_conn *c, const void *p, size_t len, int timeout_ms)
{
	const uint8_t *b = p;
	int64_t deadline = spc_now_ms() + timeout_ms;

	while (len > 0) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

		if (!c->eof)
			pfd.events |= POLLIN;
		int n = poll(&pfd, 1, spc_left_ms(deadline));

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof && spc_fill(c) == -1)
			return -1;
		if (!(pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		ssize_t w = send(c->fd, b, len, MSG_NOSIGNAL);

		if (w > 0) {
			b += w;
			len -= (size_t)w;
		} else if (w == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			return -1;
		}
	}
	return 0;
}

int spc_read_frame(struct spc_conn *c, struct spc_frame *f, int timeout_ms)
{
	int64_t deadline = spc_now_ms() + timeout_ms;

	memset(f, 0, sizeof(*f));
	for (;;) {
		struct spop_frame sf;
		int n = c->rlen ? spop_frame_next(c->rbuf, c->rlen, SPOP_MAX_FRAME_SIZE, &sf) : 0;

		if (n < 0) {
			c->split_err = n;
			return SPC_ERROR;
		}
		if (n > 0) {
			f->type = sf.type;
			f->flags = sf.flags;
			f->sid = sf.sid;
			f->fid = sf.fid;
			f->payload_len = sf.payload_len;
			if (sf.payload_len) {
				f->payload = malloc(sf.payload_len);
				if (!f->payload)
					return SPC_ERROR;
				memcpy(f->payload, sf.payload, sf.payload_len);
			}
			c->rlen -= (size_t)n;
			memmove(c->rbuf, c->rbuf + n, c->rlen);
			return SPC_FRAME;
		}
		if (c->eof)
			return SPC_EOF;

		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int pn = poll(&pfd, 1, spc_left_ms(deadline));

		if (pn == -1 && errno != EINTR)
			return SPC_ERROR;
		if (pn == 0)
			return SPC_TIMEOUT;
		if (pn > 0 && spc_fill(c) == -1)
			return SPC_ERROR;
	}
}

void spc_frame_free(struct spc_frame *f)
{
	free(f->payload);
	f->payload = NULL;
	f->payload_len = 0;
}

int spc_wait_eof(struct spc_conn *c, int timeout_ms)
{
	struct spc_frame f;
	int rc = spc_read_frame(c, &f, timeout_ms);

	spc_frame_free(&f);
	return rc;
}

/* ---- building frames ------------------------------------------------------------ */

static void spc_kv_str(struct spop_fb *b, const char *name, const char *val)
{
	struct spop_data d = { .type = SPOP_DATA_STR };

	d.u.s.ptr = (const uint8_t *)val;
	d.u.s.len = strlen(val);
	spop_fb_kv(b, name, strlen(name), &d);
}

int spc_build_hello(uint8_t *buf, size_t cap, const struct spc_hello_opts *o)
{
	struct spop_fb b;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_HAPROXY_HELLO, 0, 0);
	if (o->versions)
		spc_kv_str(&b, "supported-versions", o->versions);
	if (o->max_frame_size) {
		struct spop_data d = { .type = SPOP_DATA_UINT32 };

		d.u.u = o->max_frame_size;
		spop_fb_kv(&b, "max-frame-size", strlen("max-frame-size"), &d);
	}
	if (o->capabilities)
		spc_kv_str(&b, "capabilities", o->capabilities);
	if (o->engine_id)
		spc_kv_str(&b, "engine-id", o->engine_id);
	if (o->healthcheck) {
		struct spop_data d = { .type = SPOP_DATA_BOOL };

		d.u.b = true;
		spop_fb_kv(&b, "healthcheck", strlen("healthcheck"), &d);
	}
	return spop_fb_end(&b);
}

int spc_build_disconnect(uint8_t *buf, size_t cap, uint32_t status, const char *msg)
{
	struct spop_fb b;
	struct spop_data d = { .type = SPOP_DATA_UINT32 };

	spop_fb_begin(&b, buf, cap, SPOP_FRM_HAPROXY_DISCON, 0, 0);
	d.u.u = status;
	spop_fb_kv(&b, "status-code", strlen("status-code"), &d);
	spc_kv_str(&b, "message", msg ? msg : spop_err_str((int)status));
	return spop_fb_end(&b);
}

/* Appends a length-prefixed untyped buffer (a name) at the builder's cursor. */
static void spc_fb_name(struct spop_fb *b, const char *s, size_t len)
{
	if (b->err)
		return;
	int n = spop_varint_encode(b->p, b->end, len);

	if (n < 0 || (size_t)(b->end - b->p) - (size_t)n < len) {
		b->err = -SPOP_ERR_TOO_BIG;
		return;
	}
	b->p += n;
	memcpy(b->p, s, len);
	b->p += len;
}

int spc_build_notify(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
                     const char *msg, const struct spc_arg *args, unsigned nargs)
{
	struct spop_fb b;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_NOTIFY, sid, fid);
	if (msg) {
		spc_fb_name(&b, msg, strlen(msg));
		if (!b.err && b.p < b.end)
			*b.p++ = (uint8_t)nargs;
		else if (!b.err)
			b.err = -SPOP_ERR_TOO_BIG;
		for (unsigned i = 0; i < nargs && !b.err; i++) {
			spc_fb_name(&b, args[i].name, strlen(args[i].name));
			if (b.err)
				break;
			int n = spop_data_encode(b.p, b.end, &args[i].value);

			if (n < 0)
				b.err = n;
			else
				b.p += n;
		}
	}
	return spop_fb_end(&b);
}

int spc_build_keyauth(uint8_t *buf, size_t cap, uint64_t sid, uint64_t fid,
                      const char *msg, const char *route, const char *key,
                      size_t key_len)
{
	struct spc_arg args[2] = {
		{ .name = "route", .value = { .type = SPOP_DATA_STR } },
		{ .name = "key", .value = { .type = SPOP_DATA_NULL } },
	};

	args[0].value.u.s.ptr = (const uint8_t *)route;
	args[0].value.u.s.len = strlen(route);
	if (key) {
		args[1].value.type = SPOP_DATA_STR;
		args[1].value.u.s.ptr = (const uint8_t *)key;
		args[1].value.u.s.len = key_len == SPC_KEY_STRLEN ? strlen(key) : key_len;
	}
	return spc_build_notify(buf, cap, sid, fid, msg ? msg : "keyauth", args, 2);
}

/* ---- convenience -------------------------------------------------------------- */

int spc_hello(struct spc_conn *c, const struct spc_hello_opts *o, struct spc_frame *f,
              int timeout_ms)
{
	uint8_t buf[1024];
	int n = spc_build_hello(buf, sizeof(buf), o);

	memset(f, 0, sizeof(*f));
	if (n < 0 || spc_send_raw(c, buf, (size_t)n, timeout_ms) == -1)
		return SPC_ERROR;
	return spc_read_frame(c, f, timeout_ms);
}

bool spc_handshake(struct spc_conn *c, int timeout_ms)
{
	struct spc_hello_opts o = { .versions = "2.0", .max_frame_size = SPOP_DEFAULT_FRAME_SIZE,
	                            .capabilities = "pipelining" };
	struct spc_frame f;
	int rc = spc_hello(c, &o, &f, timeout_ms);
	bool ok = rc == SPC_FRAME && f.type == SPOP_FRM_AGENT_HELLO;

	spc_frame_free(&f);
	return ok;
}

int spc_send_keyauth(struct spc_conn *c, uint64_t sid, uint64_t fid, const char *route,
                     const char *key, int timeout_ms)
{
	uint8_t buf[2048];
	int n = spc_build_keyauth(buf, sizeof(buf), sid, fid, NULL, route, key, SPC_KEY_STRLEN);

	if (n < 0)
		return -1;
	return spc_send_raw(c, buf, (size_t)n, timeout_ms);
}

int spc_query(struct spc_conn *c, const char *route, const char *key, struct spc_ack *a,
              int timeout_ms)
{
	struct spc_frame f;
	int rc;

	memset(a, 0, sizeof(*a));
	if (spc_send_keyauth(c, 1, 1, route, key, timeout_ms) == -1)
		return -1;
	if (spc_read_frame(c, &f, timeout_ms) != SPC_FRAME)
		return -1;
	rc = (f.type == SPOP_FRM_ACK && f.sid == 1 && f.fid == 1 &&
	      spc_ack_parse(f.payload, f.payload_len, a) == 0) ? 0 : -1;
	spc_frame_free(&f);
	return rc;
}

/* ---- decoding answers ------------------------------------------------------------ */

/* Copies a slice into a NUL-terminated field; returns false if truncated. */
static bool spc_copy(char *dst, size_t cap, struct spop_str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;

	memcpy(dst, s.ptr, n);
	dst[n] = '\0';
	return n == s.len;
}

static bool spc_name_is(struct spop_str s, const char *name)
{
	size_t len = strlen(name);

	return s.len == len && memcmp(s.ptr, name, len) == 0;
}

int spc_ack_parse(const uint8_t *payload, size_t len, struct spc_ack *a)
{
	const uint8_t *p = payload, *end = payload + len;

	memset(a, 0, sizeof(*a));
	a->all_set_var_txn = true;
	while (p < end) {
		struct spop_str name;
		struct spop_data v;
		int n;

		if (end - p < 3)
			return -SPOP_ERR_INVALID;
		uint8_t type = p[0], nb = p[1], scope = p[2];

		p += 3;
		if (scope != SPOP_SCOPE_TXN)
			a->all_set_var_txn = false;
		n = spop_buf_decode(p, end, &name);
		if (n <= 0)
			return -SPOP_ERR_INVALID;
		p += n;
		a->nactions++;
		if (type == SPOP_ACT_UNSET_VAR && nb == 2) {
			a->all_set_var_txn = false;
			continue;
		}
		if (type != SPOP_ACT_SET_VAR || nb != 3)
			return -SPOP_ERR_INVALID;
		n = spop_data_decode(p, end, &v);
		if (n <= 0)
			return -SPOP_ERR_INVALID;
		p += n;

		if (spc_name_is(name, "ok")) {
			a->has_ok = true;
			if (v.type == SPOP_DATA_BOOL)
				a->ok = v.u.b;
			else
				a->wrong_type = true;
			continue;
		}

		char *dst = NULL;
		size_t cap = 0;
		bool *has = NULL;

		if (spc_name_is(name, "status")) {
			dst = a->status, cap = sizeof(a->status), has = &a->has_status;
		} else if (spc_name_is(name, "key_id")) {
			dst = a->key_id, cap = sizeof(a->key_id), has = &a->has_key_id;
		} else if (spc_name_is(name, "owner")) {
			dst = a->owner, cap = sizeof(a->owner), has = &a->has_owner;
		} else if (spc_name_is(name, "message")) {
			dst = a->message, cap = sizeof(a->message), has = &a->has_message;
		} else if (spc_name_is(name, "scopes")) {
			dst = a->scopes, cap = sizeof(a->scopes), has = &a->has_scopes;
		}
		if (!dst)
			continue;
		*has = true;
		if (v.type != SPOP_DATA_STR) {
			a->wrong_type = true;
			continue;
		}
		if (!spc_copy(dst, cap, v.u.s))
			a->truncated = true;
	}
	return 0;
}

int spc_disconnect_status(const uint8_t *payload, size_t len, char *msg, size_t msglen)
{
	struct spop_disconnect d;

	if (msg && msglen)
		msg[0] = '\0';
	if (spop_disconnect_parse(payload, len, &d) != 0)
		return -1;
	if (msg && msglen)
		spc_copy(msg, msglen, d.message);
	return (int)d.status;
}

int spc_agent_hello_parse(const uint8_t *payload, size_t len, struct spc_agent_hello *h)
{
	struct spop_kv_iter it;
	struct spop_kv kv;
	int rc;

	memset(h, 0, sizeof(*h));
	spop_kv_iter_init(&it, payload, len);
	while ((rc = spop_kv_next(&it, &kv)) == 1) {
		if (spc_name_is(kv.name, "version")) {
			if (kv.value.type != SPOP_DATA_STR)
				return -1;
			h->has_version = true;
			spc_copy(h->version, sizeof(h->version), kv.value.u.s);
		} else if (spc_name_is(kv.name, "max-frame-size")) {
			switch (kv.value.type) {
			case SPOP_DATA_UINT32:
			case SPOP_DATA_UINT64:
				h->max_frame_size = kv.value.u.u;
				break;
			case SPOP_DATA_INT32:
			case SPOP_DATA_INT64:
				h->max_frame_size = (uint64_t)kv.value.u.i;
				break;
			default:
				return -1;
			}
			h->has_max_frame_size = true;
		} else if (spc_name_is(kv.name, "capabilities")) {
			if (kv.value.type != SPOP_DATA_STR)
				return -1;
			h->has_capabilities = true;
			spc_copy(h->capabilities, sizeof(h->capabilities), kv.value.u.s);
		}
	}
	return rc == 0 ? 0 : -1;
}
