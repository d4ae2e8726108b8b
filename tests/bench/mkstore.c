/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mkstore: writes a key store of N fresh keys for one route (ks_file_write,
 * as keyauthctl does) and M of those keys, one a line, to a key file (mode
 * 0600) for the load generator. For benchmarks only: the keys are generated
 * here with keyfmt_generate and leave this program only through the key file;
 * nothing is printed but counts and timings.
 *
 *   mkstore STORE N KEYFILE M [ROUTE]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keyfmt.h"
#include "keystore.h"

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

int main(int argc, char **argv)
{
	const char *store, *keyfile, *route = "openai";
	size_t n, m;
	struct ks_entry *v;
	char key[KEY_GEN_MAX + 1], err[512];
	FILE *kf;
	int fd;
	double t0, t1, t2;

	if (argc < 5 || argc > 6 || parse_count(argv[2], 50000000, &n) == -1 ||
	    parse_count(argv[4], 50000000, &m) == -1 || m > n) {
		fprintf(stderr, "usage: mkstore STORE N KEYFILE M [ROUTE]   (M <= N)\n");
		return 2;
	}
	store = argv[1];
	keyfile = argv[3];
	if (argc == 6)
		route = argv[5];

	fd = open(keyfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || fchmod(fd, 0600) == -1 || !(kf = fdopen(fd, "w"))) {
		fprintf(stderr, "mkstore: %s: %s\n", keyfile, strerror(errno));
		return 1;
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		fprintf(stderr, "mkstore: out of memory for %zu keys\n", n);
		return 1;
	}
	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		int len = keyfmt_generate("ka_", key, sizeof(key));

		if (len < 0 || keyfmt_new_id(v[i].id) != 0) {
			fprintf(stderr, "mkstore: key generation failed\n");
			return 1;
		}
		keyfmt_digest(key, (size_t)len, v[i].digest);
		v[i].route = route;
		v[i].owner = "bench";
		v[i].created = (int64_t)time(NULL);
		if (i < m && fprintf(kf, "%s\n", key) < 0) {
			fprintf(stderr, "mkstore: %s: write failed\n", keyfile);
			return 1;
		}
	}
	explicit_bzero(key, sizeof(key));
	if (fclose(kf) != 0) {
		fprintf(stderr, "mkstore: %s: %s\n", keyfile, strerror(errno));
		return 1;
	}
	t1 = now_s();
	if (ks_file_write(store, v, n, err, sizeof(err)) != 0) {
		fprintf(stderr, "mkstore: %s\n", err);
		return 1;
	}
	t2 = now_s();
	printf("mkstore keys=%zu route=%s store=%s keyfile_keys=%zu generate_s=%.3f write_s=%.3f\n",
	       n, route, store, m, t1 - t0, t2 - t1);
	free(v);
	return 0;
}
