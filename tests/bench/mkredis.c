/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mkredis: writes, as a stream of RESP commands for `redis-cli --pipe`, a key
 * set of N fresh keys for one route in the layout agent/common/store_redis.c reads
 * (store_redis.h: <ns>:key:<id> hashes with the digest in hex, the id set
 * <ns>:ids, the <ns>:generation counter), and M of those keys, one a line,
 * to a key file (mode 0600) for the load generator. For benchmarks only: the
 * keys are generated here with keyfmt_generate and leave this program only
 * through the key file; Redis gets digests, never keys. The records are the
 * ones store_redis_commit writes (same fields, same formats); the ids go in
 * SADD batches of 1000 so that a million keys load in seconds.
 *
 *   mkredis NAMESPACE N KEYFILE M [ROUTE] | redis-cli -p PORT --pipe
 *
 * Counts and timings go to stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfmt.h"
#include "keystore.h"

#define MR_SADD_BATCH 1000
#define MR_ARGS_MAX   (MR_SADD_BATCH + 2)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_count(const char *s, size_t max, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || s[0] == '-' || v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* One command in RESP: *argc, then $len and the bytes of each argument. */
static void resp(FILE *out, int argc, const char *const *argv)
{
	fprintf(out, "*%d\r\n", argc);
	for (int i = 0; i < argc; i++)
		fprintf(out, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
}

int main(int argc, char **argv)
{
	const char *ns, *keyfile, *route = "openai";
	size_t n, m, nids = 0;
	char key[KEY_GEN_MAX + 1], hex[2 * KEY_DIGEST_LEN + 1], created[24];
	char rkey[KS_ROUTE_MAX + 64], idkey[KS_ROUTE_MAX + 16];
	char (*ids)[KEY_ID_LEN + 1];
	const char *args[MR_ARGS_MAX];
	uint8_t digest[KEY_DIGEST_LEN];
	FILE *kf;
	int fd;
	double t0;

	if (argc < 5 || argc > 6 || parse_count(argv[2], 50000000, &n) == -1 ||
	    parse_count(argv[4], 50000000, &m) == -1 || m > n || strlen(argv[1]) > 64) {
		fprintf(stderr, "usage: mkredis NAMESPACE N KEYFILE M [ROUTE]   (M <= N)\n");
		return 2;
	}
	ns = argv[1];
	keyfile = argv[3];
	if (argc == 6)
		route = argv[5];
	if (strlen(route) > KS_ROUTE_MAX) {
		fprintf(stderr, "mkredis: route too long\n");
		return 2;
	}
	fd = open(keyfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || fchmod(fd, 0600) == -1 || !(kf = fdopen(fd, "w"))) {
		fprintf(stderr, "mkredis: %s: %s\n", keyfile, strerror(errno));
		return 1;
	}
	ids = malloc(MR_SADD_BATCH * sizeof(*ids));
	if (ids == NULL)
		return 1;
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	snprintf(created, sizeof(created), "%" PRId64, (int64_t)time(NULL));
	snprintf(idkey, sizeof(idkey), "%s:ids", ns);
	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		int len = keyfmt_generate("ka_", key, sizeof(key));
		char *id = ids[nids];

		if (len < 0 || keyfmt_new_id(id) != 0) {
			fprintf(stderr, "mkredis: key generation failed\n");
			return 1;
		}
		keyfmt_digest(key, (size_t)len, digest);
		if (i < m && fprintf(kf, "%s\n", key) < 0) {
			fprintf(stderr, "mkredis: %s: write failed\n", keyfile);
			return 1;
		}
		for (size_t j = 0; j < KEY_DIGEST_LEN; j++)
			snprintf(hex + 2 * j, 3, "%02x", digest[j]);
		snprintf(rkey, sizeof(rkey), "%s:key:%s", ns, id);
		resp(stdout, 16, (const char *const[]){ "HSET", rkey, "digest", hex, "route", route,
		                                        "owner", "bench", "created", created,
		                                        "expires", "0", "revoked", "0", "rpm", "0" });
		if (++nids == MR_SADD_BATCH || i + 1 == n) {
			args[0] = "SADD";
			args[1] = idkey;
			for (size_t j = 0; j < nids; j++)
				args[2 + j] = ids[j];
			resp(stdout, (int)nids + 2, args);
			nids = 0;
		}
	}
	explicit_bzero(key, sizeof(key));
	snprintf(rkey, sizeof(rkey), "%s:generation", ns);
	resp(stdout, 3, (const char *const[]){ "SET", rkey, "1" });
	if (fclose(kf) != 0 || fflush(stdout) != 0) {
		fprintf(stderr, "mkredis: write failed: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "mkredis keys=%zu route=%s namespace=%s keyfile_keys=%zu generate_s=%.3f\n",
	        n, route, ns, m, now_s() - t0);
	free(ids);
	return 0;
}
