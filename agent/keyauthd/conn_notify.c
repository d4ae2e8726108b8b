/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn_notify: one NOTIFY in, one verdict, one ACK out. The first keyauth
 * message of the frame names the route; its key arguments (key, key2, ...)
 * are the route's carriers in order, and the first present one is the key.
 * The ACK always carries txn.keyauth.ok, so HAProxy's rules can fail closed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "conn-int.h"
#include "keystore.h"
#include "log.h"
#include "snap.h"
#include "usage_agent.h"
#include "verdict.h"
#include "worker.h"

static int
is_keyauth_message(const struct spop_str *name)
{
	static const char base[] = "keyauth";
	size_t bl = sizeof(base) - 1;

	if (name->len < bl || memcmp(name->ptr, base, bl) != 0)
		return 0;
	return name->len == bl || name->ptr[bl] == '-';
}

/*
 * Per-connection events (denials, protocol errors) are worth a line each,
 * but a flood of bad keys or garbage connections must not become a flood of
 * log lines: at most 20 such lines per second per worker; the rest are
 * counted and reported in one log_suppressed line when the next second
 * starts. Returns true when this line may be written.
 */
bool
conn_log_budget(struct worker *w)
{
	double now = w->loop != NULL ? ev_now(w->loop) : 0;

	if (now - w->deny_log_window >= 1.0) {
		if (w->deny_suppressed > 0)
			log_info("event=log_suppressed what=deny,protocol_error count=%llu",
			    (unsigned long long)w->deny_suppressed);
		w->deny_log_window = now;
		w->deny_logged = 0;
		w->deny_suppressed = 0;
	}
	if (w->deny_logged >= 20) {
		w->deny_suppressed++;
		return false;
	}
	w->deny_logged++;
	return true;
}

static void
log_verdict(struct conn *c, const struct spop_str *route, const struct verdict *v)
{
	char rbuf[80];

	if (v->status == VERDICT_OK) {
		if (log_level() >= LOG_DEBUG)
			log_debug("event=allow conn=%llu route=%s key_id=%s",
			    (unsigned long long)c->id,
			    log_safe(rbuf, sizeof(rbuf), (const char *)route->ptr, route->len),
			    v->entry->id);
		return;
	}
	if (!conn_log_budget(c->w))
		return;
	log_info("event=deny conn=%llu route=%s status=%s key_id=%s",
	    (unsigned long long)c->id,
	    log_safe(rbuf, sizeof(rbuf), (const char *)route->ptr, route->len),
	    verdict_status_str(v->status), v->entry != NULL ? v->entry->id : "-");
}

static int
build_ack(uint8_t *buf, size_t cap, const struct spop_frame *f, const struct verdict *v,
          int full)
{
	struct spop_fb b;
	struct spop_data d;
	const char *status = verdict_status_str(v->status), *scopes;

	spop_fb_begin(&b, buf, cap, SPOP_FRM_ACK, f->sid, f->fid);
	d.type = SPOP_DATA_BOOL;
	d.u.b = v->status == VERDICT_OK;
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "ok", 2, &d);
	d.type = SPOP_DATA_STR;
	d.u.s.ptr = (const uint8_t *)status;
	d.u.s.len = strlen(status);
	spop_fb_set_var(&b, SPOP_SCOPE_TXN, "status", 6, &d);
	if (v->entry != NULL) {
		d.u.s.ptr = (const uint8_t *)v->entry->id;
		d.u.s.len = strlen(v->entry->id);
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, "key_id", 6, &d);
	}
	/* Essential, not "full": without it HAProxy would not enforce the limit. */
	if (v->rpm > 0) {
		d.type = SPOP_DATA_INT64;
		d.u.i = v->rpm;
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, "rpm", 3, &d);
		d.type = SPOP_DATA_STR;
	}
	/* Essential too: the admin route's rules deny by it (admin route only). */
	if ((scopes = verdict_scopes(v)) != NULL) {
		d.u.s.ptr = (const uint8_t *)scopes;
		d.u.s.len = strlen(scopes);
		spop_fb_set_var(&b, SPOP_SCOPE_TXN, "scopes", 6, &d);
	}
	/* The rest only where a rendered rule reads it: each variable is work
	 * for HAProxy on every request (BENCHMARKS.md, issue 19). On the allowed
	 * path the owner goes to the routes with identity headers and to the
	 * admin route (X-Keyauth-Owner); the message to denials only (the JSON
	 * error bodies). */
	if (full) {
		bool allowed = v->status == VERDICT_OK;
		bool identity = v->route != NULL && (v->route->identity_headers || v->route->admin);

		if (v->entry != NULL && v->entry->owner[0] != '\0' && (!allowed || identity)) {
			d.u.s.ptr = (const uint8_t *)v->entry->owner;
			d.u.s.len = strlen(v->entry->owner);
			spop_fb_set_var(&b, SPOP_SCOPE_TXN, "owner", 5, &d);
		}
		/* Only the routes that pass them upstream need them: small ACKs. */
		if (v->entry != NULL && v->route != NULL && v->route->identity_headers) {
			if (v->entry->alias != NULL && v->entry->alias[0] != '\0') {
				d.u.s.ptr = (const uint8_t *)v->entry->alias;
				d.u.s.len = strlen(v->entry->alias);
				spop_fb_set_var(&b, SPOP_SCOPE_TXN, "alias", 5, &d);
			}
			if (v->entry->tags != NULL && v->entry->tags[0] != '\0') {
				d.u.s.ptr = (const uint8_t *)v->entry->tags;
				d.u.s.len = strlen(v->entry->tags);
				spop_fb_set_var(&b, SPOP_SCOPE_TXN, "tags", 4, &d);
			}
		}
		if (!allowed) {
			d.u.s.ptr = (const uint8_t *)v->message;
			d.u.s.len = strlen(v->message);
			spop_fb_set_var(&b, SPOP_SCOPE_TXN, "message", 7, &d);
		}
	}
	return spop_fb_end(&b);
}

/* "key" or "key" followed by digits ("key2", ...): a carrier argument. */
static bool
is_key_arg(const struct spop_str *n)
{
	if (n->len < 3 || memcmp(n->ptr, "key", 3) != 0)
		return false;
	for (size_t i = 3; i < n->len; i++) {
		if (n->ptr[i] < '0' || n->ptr[i] > '9')
			return false;
	}
	return true;
}

void
conn_handle_notify(struct conn *c, const struct spop_frame *f, int64_t now)
{
	struct spop_msg_iter it;
	struct spop_msg m;
	struct spop_str route = { (const uint8_t *)"", 0 };
	const char *key = NULL;
	size_t key_len = 0;
	int found = 0, r, n;
	struct verdict v;

	spop_msg_iter_init(&it, f->payload, f->payload_len);
	while ((r = spop_msg_next(&it, &m)) == 1) {
		struct spop_arg_iter ai;
		struct spop_kv arg;

		if (found || !is_keyauth_message(&m.name))
			continue;
		found = 1;
		spop_arg_iter_init(&ai, &m);
		while ((r = spop_arg_next(&ai, &arg)) == 1) {
			if (arg.name.len == 5 && memcmp(arg.name.ptr, "route", 5) == 0) {
				if (arg.value.type == SPOP_DATA_STR)
					route = arg.value.u.s;
			} else if (is_key_arg(&arg.name) && key == NULL) {
				/* A route with several carriers sends key, key2, ...
				 * in its order: the first one present is the key. */
				switch (arg.value.type) {
				case SPOP_DATA_NULL:
					break;
				case SPOP_DATA_STR:
				case SPOP_DATA_BIN:
					key = (const char *)arg.value.u.s.ptr;
					key_len = arg.value.u.s.len;
					break;
				default:
					/* A non-string credential cannot be a key: a
					 * control byte makes the verdict "malformed". */
					key = "\x01";
					key_len = 1;
					break;
				}
			}
		}
		if (r < 0)
			break;
	}
	if (r < 0) {
		conn_error(c, -r);
		return;
	}
	if (!found) {
		/* Not ours (or an empty NOTIFY): still ACK with a verdict, and a
		 * failing one, so HAProxy's rules fail closed. */
		route.ptr = (const uint8_t *)"";
		route.len = 0;
	}
	verdict_eval(conn_conf(c), c->w->snap->ks, (const char *)route.ptr, route.len,
	    key, key_len, now, &v);
	STAT_INC(c->w, verdicts[v.status]);
	usage_count_verdict(c->w->snap->usage, (unsigned)c->w->id, conn_conf(c), &v, now);
	c->w->lat_batch++;
	STAT_INC(c->w, route_verdicts[v.route != NULL ?
	    (size_t)(v.route - conn_conf(c)->routes) : CONF_MAX_ROUTES][v.status]);

	n = build_ack(c->tx + c->tx_len, c->max_frame + SPOP_LEN_PREFIX < tx_room(c) ?
	    c->max_frame + SPOP_LEN_PREFIX : tx_room(c), f, &v, 1);
	if (n < 0)  /* a tiny negotiated frame size: the essentials only */
		n = build_ack(c->tx + c->tx_len, c->max_frame + SPOP_LEN_PREFIX < tx_room(c) ?
		    c->max_frame + SPOP_LEN_PREFIX : tx_room(c), f, &v, 0);
	if (n < 0) {
		conn_error(c, SPOP_ERR_TOO_BIG);
		return;
	}
	c->tx_len += (size_t)n;
	STAT_INC(c->w, frames_out);
	log_verdict(c, &route, &v);
}
