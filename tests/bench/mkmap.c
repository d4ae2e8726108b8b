/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mkmap: the files the end-to-end benchmark needs besides the key store.
 * From a key file written by mkstore (one valid key a line) it writes an
 * HAProxy map of their SHA-256 digests (upper-case hex, as the `hex`
 * converter prints them, each mapped to "k<line>") for the native
 * `sha2(256),hex,map()` allowlist, and a second key file (mode 0600) of N
 * fresh, well-formed keys that no store holds, for the "invalid" share of
 * the request mix. For benchmarks only: keys leave this program only
 * through the 0600 file; nothing is printed but counts.
 *
 *   mkmap KEYFILE MAPFILE INVALIDFILE N [PREFIX]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keyfmt.h"

static FILE *
open_out(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f;

	if (fd == -1 || fchmod(fd, mode) == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "mkmap: %s: %s\n", path, strerror(errno));
		if (fd != -1)
			close(fd);
		return NULL;
	}
	return f;
}

int
main(int argc, char **argv)
{
	const char *prefix = "ka_";
	char line[KEY_MAX_LEN + 3], key[KEY_GEN_MAX + 1], hex[2 * KEY_DIGEST_LEN + 1];
	uint8_t digest[KEY_DIGEST_LEN];
	size_t lineno = 0, nmap = 0;
	unsigned long n;
	char *end;
	FILE *in, *map, *inv;
	int rc = 0;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: mkmap KEYFILE MAPFILE INVALIDFILE N [PREFIX]\n");
		return 2;
	}
	errno = 0;
	n = strtoul(argv[4], &end, 10);
	if (errno || *end || argv[4][0] == '-' || n > 10000000) {
		fprintf(stderr, "mkmap: N: bad value\n");
		return 2;
	}
	if (argc == 6)
		prefix = argv[5];
	if ((in = fopen(argv[1], "r")) == NULL) {
		fprintf(stderr, "mkmap: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* The map holds digests only, but stays private like the keys. */
	map = open_out(argv[2], 0600);
	inv = open_out(argv[3], 0600);
	if (map == NULL || inv == NULL) {
		fclose(in);
		return 1;
	}
	while (rc == 0 && fgets(line, sizeof(line), in)) {
		size_t len = strcspn(line, "\r\n");

		lineno++;
		if (line[len] == '\0' && !feof(in)) {
			fprintf(stderr, "mkmap: %s:%zu: line too long\n", argv[1], lineno);
			rc = 1;
			break;
		}
		if (len == 0)
			continue;
		keyfmt_digest(line, len, digest);
		for (size_t i = 0; i < KEY_DIGEST_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02X", digest[i]);
		if (fprintf(map, "%s k%zu\n", hex, lineno) < 0)
			rc = 1;
		nmap++;
	}
	explicit_bzero(line, sizeof(line));
	for (unsigned long i = 0; rc == 0 && i < n; i++) {
		int len = keyfmt_generate(prefix, key, sizeof(key));

		if (len < 0 || fprintf(inv, "%s\n", key) < 0)
			rc = 1;
	}
	explicit_bzero(key, sizeof(key));
	fclose(in);
	if (fclose(map) != 0 || fclose(inv) != 0)
		rc = 1;
	if (rc != 0) {
		fprintf(stderr, "mkmap: failed\n");
		return 1;
	}
	printf("mkmap map_entries=%zu invalid_keys=%lu\n", nmap, n);
	return 0;
}
