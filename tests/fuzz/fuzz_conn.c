/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_conn: a whole agent conversation, bytes in -> frames out, through
 * conn.c's state machine (HELLO, NOTIFY, verdicts, ACK building, DISCONNECT),
 * without sockets or libev. Every reply frame is re-split with spop/ and must
 * be well formed, FIN set, and within the negotiated frame size.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conn.h"
#include "keystore.h"
#include "log.h"
#include "snap.h"
#include "spop.h"
#include "worker.h"

static struct snap *fz_snap;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char cfg[] =
	    "store = { backend = \"file\"; path = \"/nonexistent/keys.db\"; };\n"
	    "routes = ( { name = \"openai\"; context = \"/openai\"; } );\n";
	char path[] = "/tmp/fuzz_conn_XXXXXX";
	char err[1024];
	struct conf *c;
	struct conf_ref *cref;
	struct ks_set *ks;
	int fd;

	(void)argc;
	(void)argv;
	log_init("fuzz_conn", LOG_ERR, LOG_TARGET_STDERR);
	fd = mkstemp(path);
	if (fd == -1 || write(fd, cfg, sizeof(cfg) - 1) != (ssize_t)(sizeof(cfg) - 1))
		abort();
	close(fd);
	c = conf_load(path, err, sizeof(err));
	unlink(path);
	if (c == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	cref = conf_ref_new(c);
	ks = ks_set_empty();
	fz_snap = snap_new(cref, ks, 1);
	conf_ref_put(cref);
	ks_set_unref(ks);
	return 0;
}

/* Checks every frame the agent sends: whole, FIN set, agent types only,
 * within the negotiated size. */
static void
check_output(const struct conn *c, const uint8_t *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		struct spop_frame f;
		int n = spop_frame_next(p + off, len - off, c->max_frame, &f);

		if (n <= 0)
			abort();
		if (f.type != SPOP_FRM_AGENT_HELLO && f.type != SPOP_FRM_AGENT_DISCON &&
		    f.type != SPOP_FRM_ACK)
			abort();
		off += (size_t)n;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct worker w;
	struct conn *c;
	size_t off = 0;

	memset(&w, 0, sizeof(w));
	w.snap = fz_snap;
	c = conn_new(&w, -1);
	if (c == NULL)
		return 0;
	/* Feed in chunks whose sizes come from the input, so frame
	 * boundaries land everywhere. */
	while (off < size) {
		size_t chunk = 1 + data[off] % 64;

		off++;
		if (chunk > size - off)
			chunk = size - off;
		if (conn_feed(c, data + off, chunk, 1700000000, check_output) == -1)
			break;
		off += chunk;
	}
	conn_free(c);
	return 0;
}
