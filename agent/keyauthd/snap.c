/* SPDX-License-Identifier: Apache-2.0 */
/* snap: reference-counted configuration and key-set snapshots (see snap.h). */
#include <stdlib.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "keystore.h"
#include "snap.h"
#include "usage_agent.h"

struct conf_ref *
conf_ref_new(struct conf *c)
{
	struct conf_ref *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	atomic_init(&r->refs, 1);
	r->conf = c;
	return r;
}

struct conf_ref *
conf_ref_get(struct conf_ref *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
	return r;
}

void
conf_ref_put(struct conf_ref *r)
{
	if (r == NULL)
		return;
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) {
		conf_free(r->conf);
		SSL_CTX_free(r->tls_ctx);
		free(r);
	}
}

struct snap *
snap_new(struct conf_ref *cref, struct ks_set *ks, uint64_t gen)
{
	struct snap *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	atomic_init(&s->refs, 1);
	s->cref = conf_ref_get(cref);
	s->ks = ks_set_ref(ks);
	s->gen = gen;
	return s;
}

struct snap *
snap_get(struct snap *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void
snap_put(struct snap *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		conf_ref_put(s->cref);
		ks_set_unref(s->ks);
		usage_layout_free(s->usage);
		free(s);
	}
}
