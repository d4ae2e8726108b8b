/* SPDX-License-Identifier: Apache-2.0 */
/*
 * disconnect: status reason strings, and the DISCONNECT frames both sides
 * send before closing (doc/PROTOCOL.md §2.3).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spop.h"
#include "spop-int.h"

/* HAProxy's reason strings, indexed by wire status (0x00-0x0d). */
static const char *const spop_reasons[] = {
	[SPOP_ERR_NONE]             = "normal",
	[SPOP_ERR_IO]               = "I/O error",
	[SPOP_ERR_TOUT]             = "a timeout occurred",
	[SPOP_ERR_TOO_BIG]          = "frame is too big",
	[SPOP_ERR_INVALID]          = "invalid frame received",
	[SPOP_ERR_NO_VSN]           = "version value not found",
	[SPOP_ERR_NO_FRAME_SIZE]    = "max-frame-size value not found",
	[SPOP_ERR_NO_CAP]           = "capabilities value not found",
	[SPOP_ERR_BAD_VSN]          = "unsupported version",
	[SPOP_ERR_BAD_FRAME_SIZE]   = "max-frame-size too big or too small",
	[SPOP_ERR_FRAG_NOT_SUP]     = "fragmentation not supported",
	[SPOP_ERR_INTERLACED]       = "invalid interlaced frames",
	[SPOP_ERR_FRAMEID_NOTFOUND] = "frame-id not found",
	[SPOP_ERR_RES]              = "resource allocation error",
};

/* Also takes a decoder's negative return (-SPOP_ERR_x) as a convenience. */
const char *spop_err_str(int status)
{
	if (status < 0 && status > -(int)(sizeof(spop_reasons) / sizeof(spop_reasons[0])))
		status = -status;
	if (status >= 0 && (size_t)status < sizeof(spop_reasons) / sizeof(spop_reasons[0]))
		return spop_reasons[status];
	return "an unknown error occurred";
}

int spop_disconnect_parse(const uint8_t *payload, size_t len, struct spop_disconnect *d)
{
	struct spop_kv_iter it;
	struct spop_kv kv;
	int ret;

	d->status = SPOP_ERR_UNKNOWN;
	d->message.ptr = NULL;
	d->message.len = 0;
	spop_kv_iter_init(&it, payload, len);
	while ((ret = spop_kv_next(&it, &kv)) > 0) {
		const struct spop_data *v = &kv.value;

		if (SPOP__NAME_IS(&kv.name, "status-code")) {
			/* HAProxy accepts any integer type; a value no
			 * status can have becomes "unknown". */
			switch (v->type) {
			case SPOP_DATA_INT32:
			case SPOP_DATA_INT64:
				d->status = v->u.i >= 0 && v->u.i <= UINT32_MAX ?
				            (uint32_t)v->u.i : SPOP_ERR_UNKNOWN;
				break;
			case SPOP_DATA_UINT32:
			case SPOP_DATA_UINT64:
				d->status = v->u.u <= UINT32_MAX ?
				            (uint32_t)v->u.u : SPOP_ERR_UNKNOWN;
				break;
			default:
				return -SPOP_ERR_INVALID;
			}
		} else if (SPOP__NAME_IS(&kv.name, "message")) {
			if (v->type != SPOP_DATA_STR)
				return -SPOP_ERR_INVALID;
			d->message = v->u.s;
		}
	}
	return ret < 0 ? ret : 0;
}

int spop_agent_disconnect_build(uint8_t *buf, size_t cap, uint32_t status,
                                const char *msg)
{
	struct spop_fb b;
	struct spop_data v;
	size_t len;

	if (!msg)
		msg = spop_err_str(status > INT32_MAX ? SPOP_ERR_UNKNOWN : (int)status);
	/* 2.6 refuses the whole frame when the message is longer. */
	len = strnlen(msg, SPOP_DISCONNECT_MSG_MAX);

	spop_fb_begin(&b, buf, cap, SPOP_FRM_AGENT_DISCON, 0, 0);
	v.type = SPOP_DATA_UINT32;
	v.u.u = status;
	spop_fb_kv(&b, "status-code", sizeof("status-code") - 1, &v);
	v.type = SPOP_DATA_STR;
	v.u.s.ptr = (const uint8_t *)msg;
	v.u.s.len = len;
	spop_fb_kv(&b, "message", sizeof("message") - 1, &v);
	return spop_fb_end(&b);
}
