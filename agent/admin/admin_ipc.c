/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_ipc: the frames between the web process and the root executor.
 *
 * A frame is a 4-byte length (host order: both ends are one program on one
 * machine) and that many bytes. A request is a JSON object holding the op's
 * index in admin_routes[] and the raw request parts (path parameter, body,
 * query, If-Match) plus the caller's identity; the executor decodes it here,
 * then validates it again from scratch (admin_exec_op), so a compromised web
 * process can ask for nothing an HTTP client could not. A result is the exit
 * code and keyauthctl's stdout and first stderr line, binary.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "admin.h"

struct admin_ipc_store {
	json_t *root;
};

char *
admin_ipc_encode(const struct admin_in *in, const struct admin_who *who, size_t *len)
{
	json_t *o, *q;
	char *s = NULL;
	size_t i;

	q = json_array();
	for (i = 0; q != NULL && i < in->nquery; i++)
		if (json_array_append_new(q, json_pack("[s,s]", in->query[i].k,
		                                       in->query[i].v ? in->query[i].v : "")) != 0) {
			json_decref(q);
			q = NULL;
		}
	if (q == NULL)
		return NULL;
	o = json_pack("{s:I,s:s,s:s%,s:o,s:s,s:s,s:I}",
	              "op", (json_int_t)(in->route - admin_routes), "param", in->param,
	              "body", in->body ? in->body : "", in->body_len, "query", q,
	              "key_id", who->key_id, "owner", who->owner, "scopes", (json_int_t)who->scopes);
	if (o != NULL && in->if_match != NULL &&
	    json_object_set_new(o, "if_match", json_string(in->if_match)) != 0) {
		json_decref(o);
		o = NULL;
	}
	if (o != NULL) {
		s = json_dumps(o, JSON_COMPACT);
		json_decref(o);
	}
	if (s != NULL)
		*len = strlen(s);
	return s;
}

int
admin_ipc_decode(const char *frame, size_t len, struct admin_in *in, struct admin_who *who,
                 struct admin_ipc_store **store)
{
	json_t *o, *q, *kv, *body;
	json_int_t op, scopes;
	const char *param, *im = NULL, *key_id, *owner;
	struct admin_ipc_store *st;
	size_t i;

	*store = NULL;
	memset(in, 0, sizeof(*in));
	o = json_loadb(frame, len, JSON_REJECT_DUPLICATES, NULL);
	if (o == NULL)
		return -1;
	if (json_unpack(o, "{s:I,s:s,s:o,s:o,s?s,s:s,s:s,s:I!}", "op", &op, "param", &param,
	                "body", &body, "query", &q, "if_match", &im, "key_id", &key_id,
	                "owner", &owner, "scopes", &scopes) != 0 ||
	    op < 0 || (size_t)op >= admin_nroutes || strlen(param) > ADMIN_PARAM_MAX ||
	    !json_is_string(body) || !json_is_array(q) || json_array_size(q) > ADMIN_QUERY_MAX ||
	    scopes < 0 || scopes > 7 || admin_who_set(who, key_id, owner, NULL) != 0)
		goto bad;
	who->scopes = (unsigned)scopes;
	in->route = &admin_routes[op];
	memcpy(in->param, param, strlen(param) + 1);
	in->body = json_string_value(body);
	in->body_len = json_string_length(body);
	in->if_match = im;
	json_array_foreach(q, i, kv) {
		if (json_unpack(kv, "[ss!]", &in->query[i].k, &in->query[i].v) != 0)
			goto bad;
		in->nquery = i + 1;
	}
	st = malloc(sizeof(*st));
	if (st == NULL)
		goto bad;
	st->root = o;
	*store = st;
	return 0;
bad:
	json_decref(o);
	memset(in, 0, sizeof(*in));
	return -1;
}

void
admin_ipc_store_free(struct admin_ipc_store *s)
{
	if (s == NULL)
		return;
	json_decref(s->root);
	free(s);
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 0, or -1 on error or at EOF before the first byte (*eof set). */
static int
read_all(int fd, void *buf, size_t len, bool *eof)
{
	char *p = buf;
	size_t got = 0;

	*eof = false;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		/* Between frames a signal ends the wait (the executor's SIGTERM);
		 * inside one it does not. */
		if (n < 0 && errno == EINTR && got > 0)
			continue;
		if (n == 0 && got == 0)
			*eof = true;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

int
admin_ipc_send(int fd, const void *buf, size_t len)
{
	uint32_t n = (uint32_t)len;

	if (len > UINT32_MAX)
		return -1;
	return write_all(fd, &n, sizeof(n)) == 0 && write_all(fd, buf, len) == 0 ? 0 : -1;
}

/* Returns 0, -1 on error, 1 at EOF. */
int
admin_ipc_recv(int fd, char **buf, size_t *len, size_t max)
{
	uint32_t n;
	bool eof;
	char *b;

	*buf = NULL;
	if (read_all(fd, &n, sizeof(n), &eof) != 0)
		return eof ? 1 : -1;
	if (n > max)
		return -1;
	b = malloc((size_t)n + 1);
	if (b == NULL)
		return -1;
	if (read_all(fd, b, n, &eof) != 0) {
		free(b);
		return -1;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int
admin_ipc_send_result(int fd, const struct admin_result *r)
{
	int32_t hdr[3] = { r->exit, (int32_t)r->out_len, (int32_t)strlen(r->err) };

	if (r->out_len > ADMIN_OUT_MAX)
		return -1;
	return write_all(fd, hdr, sizeof(hdr)) == 0 && write_all(fd, r->out, r->out_len) == 0 &&
	       write_all(fd, r->err, (size_t)hdr[2]) == 0 ? 0 : -1;
}

int
admin_ipc_recv_result(int fd, struct admin_result *r)
{
	int32_t hdr[3];
	bool eof;

	memset(r, 0, sizeof(*r));
	if (read_all(fd, hdr, sizeof(hdr), &eof) != 0 || hdr[1] < 0 || hdr[1] > ADMIN_OUT_MAX ||
	    hdr[2] < 0 || hdr[2] >= ADMIN_ERRTXT_MAX)
		return -1;
	r->exit = hdr[0];
	r->out = malloc((size_t)hdr[1] + 1);
	if (r->out == NULL)
		return -1;
	r->out_len = (size_t)hdr[1];
	if (read_all(fd, r->out, r->out_len, &eof) != 0 ||
	    read_all(fd, r->err, (size_t)hdr[2], &eof) != 0) {
		admin_result_free(r);
		return -1;
	}
	r->out[r->out_len] = '\0';
	r->err[hdr[2]] = '\0';
	return 0;
}

void
admin_result_free(struct admin_result *r)
{
	if (r->out != NULL) {
		explicit_bzero(r->out, r->out_len);
		free(r->out);
	}
	r->out = NULL;
	r->out_len = 0;
}
