/* SPDX-License-Identifier: Apache-2.0 */
/*
 * notify: iterating the messages of a NOTIFY payload and their arguments
 * (doc/PROTOCOL.md §1.6).
 *
 * Messages carry no length of their own, so spop_msg_next() walks every
 * argument to find where the next message starts; it checks each one on the
 * way, and spop_arg_next() can then hand them out without failing on data
 * that spop_msg_next() accepted.
 */
#include <stddef.h>
#include <stdint.h>

#include "spop.h"
#include "spop-int.h"

void spop_msg_iter_init(struct spop_msg_iter *it, const uint8_t *payload, size_t len)
{
	it->p = payload;
	/* (NULL, 0) is an empty NOTIFY: no arithmetic on a null pointer. */
	it->end = len ? payload + len : payload;
}

/* Decodes one argument at <p>. Returns its size, or -SPOP_ERR_INVALID when
 * it does not fit before <end> or has an unknown type. */
static int arg_decode(const uint8_t *p, const uint8_t *end, struct spop_kv *arg)
{
	int n, m;

	n = spop_buf_decode(p, end, &arg->name);
	if (n <= 0)
		return -SPOP_ERR_INVALID;
	m = spop_data_decode(p + n, end, &arg->value);
	if (m <= 0)
		return -SPOP_ERR_INVALID;
	return n + m;
}

/* On an error the cursor stays put, so every later call repeats it. */
int spop_msg_next(struct spop_msg_iter *it, struct spop_msg *m)
{
	const uint8_t *q = it->p, *args;
	struct spop_kv arg;
	unsigned nb, i;
	int n;

	if (q >= it->end)
		return 0;
	n = spop_buf_decode(q, it->end, &m->name);
	if (n <= 0)
		return -SPOP_ERR_INVALID;
	q += n;
	if (q >= it->end)
		return -SPOP_ERR_INVALID;
	nb = *q++;
	args = q;
	for (i = 0; i < nb; i++) {
		n = arg_decode(q, it->end, &arg);
		if (n < 0)
			return n;
		q += n;
	}
	m->nb_args = nb;
	m->args = args;
	m->args_end = q;
	it->p = q;
	return 1;
}

void spop_arg_iter_init(struct spop_arg_iter *it, const struct spop_msg *m)
{
	it->p = m->args;
	it->end = m->args_end;
	it->left = m->nb_args;
}

int spop_arg_next(struct spop_arg_iter *it, struct spop_kv *arg)
{
	int n;

	if (it->left == 0)
		return 0;
	n = arg_decode(it->p, it->end, arg);
	if (n < 0)
		return n;
	it->p += n;
	it->left--;
	return 1;
}
