/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyfmt: the API key format, its checksum, key ids and digests.
 *
 *   <prefix><43 base62 chars of CSPRNG output><6 base62 chars of CRC32>
 *
 * 43 base62 characters carry 43 * log2(62) = 256.03 bits. The CRC32 covers
 * prefix and random part, like GitHub's token format, so that typos and junk
 * are rejected before any lookup. Only [A-Za-z0-9_] appears in a key.
 * Pure functions; keyfmt_generate and keyfmt_new_id use OpenSSL's RAND_bytes.
 */
#ifndef AGENT_KEYFMT_H
#define AGENT_KEYFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYFMT_RANDOM_CHARS 43
#define KEYFMT_CRC_CHARS    6
#define KEYFMT_PREFIX_MAX   16
#define KEY_MIN_LEN         20     /* imported keys: shortest accepted */
#define KEY_MAX_LEN         256    /* longest accepted anywhere; longer = malformed */
#define KEY_GEN_MAX         (KEYFMT_PREFIX_MAX + KEYFMT_RANDOM_CHARS + KEYFMT_CRC_CHARS)
#define KEY_ID_LEN          12     /* base62 characters of a public key id */
#define KEY_DIGEST_LEN      32     /* SHA-256 */

enum keyfmt_check {
	KEYFMT_FOREIGN = 0,   /* does not start with our prefix: not ours to judge */
	KEYFMT_OK      = 1,   /* our prefix, right length, good checksum */
	KEYFMT_BAD     = 2,   /* our prefix but wrong length, charset or checksum */
};

/* Writes a new NUL-terminated key for <prefix> into <out>. Returns its length,
 * or -1 if <outlen> is too small or the CSPRNG failed. */
int keyfmt_generate(const char *prefix, char *out, size_t outlen);

/* Classifies <key>/<len> against <prefix>. */
enum keyfmt_check keyfmt_check(const char *prefix, const char *key, size_t len);

/* True if every byte is printable ASCII without space (0x21..0x7e) and
 * KEY_MIN_LEN <= len <= KEY_MAX_LEN when <strict_min>, else 1 <= len. */
bool keyfmt_charset_ok(const char *key, size_t len, bool strict_min);

/* SHA-256 of the key bytes. */
void keyfmt_digest(const char *key, size_t len, uint8_t out[KEY_DIGEST_LEN]);

/* Writes a new random public key id (KEY_ID_LEN base62 chars + NUL).
 * Returns 0, or -1 if the CSPRNG failed. */
int keyfmt_new_id(char out[KEY_ID_LEN + 1]);

/* CRC32 (IEEE, as zlib) of <len> bytes; exposed for tests. */
uint32_t keyfmt_crc32(const void *p, size_t len);

#endif /* AGENT_KEYFMT_H */
