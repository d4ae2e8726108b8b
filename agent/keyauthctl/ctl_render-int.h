/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_render-int: what ctl_render.c (the files, the routes, the backends)
 * and ctl_render_rules.c (the frontend's refusal, rate-limit and credential
 * rules) share. Private to those two files.
 */
#ifndef AGENT_CTL_RENDER_INT_H
#define AGENT_CTL_RENDER_INT_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "conf.h"

#define RATE_TABLE   "keyauth_rate"
#define RATE_PEERS   "keyauth_peers"

/* A route's context without a trailing '/', except "/" itself. */
struct rroute {
	const struct route *r;
	char ctx[PATH_MAX];
	size_t ctxlen;
	char env[160];               /* KEYAUTH_<NAME>_CREDENTIAL */
	unsigned group;              /* index of its error group */
};

/* Routes answered with the same deny rules (see group_routes). */
struct rgroup {
	unsigned id;                 /* 1.., for the ACL name keyauth_eg<id> */
	enum error_format fmt;
	bool bearer;                 /* some route of the group accepts Authorization */
};
#define MAX_GROUPS (ERRFMT_ENTRIES * 2)

/* Writes <s> with regex metacharacters escaped (only '.' can occur). */
void ctl_put_regex(FILE *f, const char *s);

/* The names of the route_method bits set in <methods>, in enum order,
 * separated by <sep> ("GET HEAD", "GET, HEAD"), written into <buf> (64 bytes
 * hold them all with a 2-byte <sep>); returns <buf>. */
const char *ctl_methods_str(char *buf, size_t size, unsigned methods, const char *sep);

/* Puts each route in the group of routes that share its refusal rules
 * (error shape, Bearer accepted or not); fills <g> and returns its count. */
unsigned ctl_group_routes(struct rroute *rr, unsigned n, struct rgroup *g);

/* The frontend's rules after the route ACLs: 404, 405 for a method the route
 * does not allow, the fail-closed 503s, 403 and 401 per group and the
 * backstop; the rate limit and its 429; the request line in origin-form,
 * every key carrier removed and each route's provider credential added. */
/* The frontend's bind lines: o->bind if set, else the config's
 * frontend.bind, else CTL_DEFAULT_BIND; each with the frontend's client TLS
 * (certificate or crt-list, minimum version, ALPN) when it has some. */
void ctl_render_binds(FILE *f, const struct conf *c, const struct ctl_render_opts *o);

void ctl_render_denials(FILE *f, const struct rroute *rr, unsigned n, const struct rgroup *g,
                        unsigned ng);
void ctl_render_rate_rules(FILE *f, const struct conf *c, const struct rgroup *g, unsigned ng);
void ctl_render_credentials(FILE *f, const struct rroute *rr, unsigned n);

/* The admin route (ctl_render_admin.c), each a no-op without an admin
 * group. The routes rendered as provider routes: the first
 * ctl_render_admin_split of conf.routes (the admin route is the last). */
unsigned ctl_render_admin_split(const struct conf *c);
int ctl_render_admin_check(const struct conf *c, char *err, size_t errlen);
void ctl_render_admin_spoe_list(FILE *f, const struct conf *c);
void ctl_render_admin_spoe(FILE *f, const struct conf *c);
void ctl_render_admin_rules(FILE *f, const struct conf *c);
void ctl_render_admin_use(FILE *f, const struct conf *c);
void ctl_render_admin_backend(FILE *f, const struct conf *c);

#endif /* AGENT_CTL_RENDER_INT_H */
