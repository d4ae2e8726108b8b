/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store: the factory. The configuration picks the backend here and nowhere
 * else; the role picks the agent's or keyauthctl's half of a shared one.
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "filetrust.h"
#include "store.h"

struct store *
store_open(const struct conf *c, const struct store_role *role, char *err, size_t errlen)
{
	struct ft_trust t;
	struct store *st;

	ft_trust_for(&t, c->user != NULL ? c->user : role->default_user);
	if (c->store_redis != NULL)
		return role->redis(c->store_redis, &t, err, errlen);
	st = store_file_new(c->store_path, &t);
	if (st == NULL)
		snprintf(err, errlen, "store: out of memory");
	return st;
}

/* A shared store is never "the same": a config reload builds a new one (and
 * loads through it) so every setting change takes effect. */
int
store_same(const struct store *st, const struct conf *c)
{
	return c->store_redis == NULL && store_has(st, STORE_F_WATCH_FILE) &&
	    strcmp(st->ops->where(st), c->store_path) == 0;
}
