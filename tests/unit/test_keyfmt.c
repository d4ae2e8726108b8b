/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyfmt: the key format module.
 *
 * Covered: generation (length, charset, prefix, uniqueness, rough uniformity
 * of the base62 output), classification (ours/foreign/bad), the checksum
 * catching every single-character substitution in a sample of keys, CRC32 and
 * SHA-256 against published vectors, key ids, the charset predicate.
 * Keys are never printed: assertions compare bytes with assert_true, never
 * with assert_string_equal (which would print them on failure).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "keyfmt.h"

#define PFX "ka_"
#define PLEN 3
#define KLEN (PLEN + KEYFMT_RANDOM_CHARS + KEYFMT_CRC_CHARS)

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int
b62_index(char c)
{
	const char *p = strchr(b62, c);

	return (c != '\0' && p) ? (int)(p - b62) : -1;
}

static int
cmp_key(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_generate_gives_prefixed_base62_key_with_valid_checksum(void **state)
{
	char key[KEY_GEN_MAX + 1];

	(void)state;
	for (int n = 0; n < 200; n++) {
		int len = keyfmt_generate(PFX, key, sizeof(key));
		assert_int_equal(len, KLEN);
		assert_int_equal(strlen(key), KLEN);
		assert_true(memcmp(key, PFX, PLEN) == 0);
		for (int i = PLEN; i < len; i++)
			assert_true(b62_index(key[i]) >= 0);
		assert_int_equal(keyfmt_check(PFX, key, (size_t)len), KEYFMT_OK);
		assert_true(keyfmt_charset_ok(key, (size_t)len, true));
	}
}

static void
test_generate_refuses_small_buffer_and_long_prefix(void **state)
{
	char key[KEY_GEN_MAX + 1];
	char longpfx[KEYFMT_PREFIX_MAX + 2];

	(void)state;
	assert_int_equal(keyfmt_generate(PFX, key, KLEN), -1);      /* no room for NUL */
	assert_int_equal(keyfmt_generate(PFX, key, KLEN + 1), KLEN);
	memset(longpfx, 'a', sizeof(longpfx) - 1);
	longpfx[sizeof(longpfx) - 1] = '\0';
	assert_int_equal(keyfmt_generate(longpfx, key, sizeof(key)), -1);
	longpfx[KEYFMT_PREFIX_MAX] = '\0';                            /* exactly the max */
	assert_int_equal(keyfmt_generate(longpfx, key, sizeof(key)), KEY_GEN_MAX);
	assert_int_equal(keyfmt_check(longpfx, key, KEY_GEN_MAX), KEYFMT_OK);
}

/* 4000 keys: none repeats, and each base62 digit of the random part appears
 * within 20% of its expected count (172,000 draws, expectation 2774, standard
 * deviation ~52: a 10-sigma margin, so a biased sampler fails, chance does not). */
static void
test_generate_is_unique_and_roughly_uniform(void **state)
{
	enum { N = 4000 };
	char (*keys)[KEY_GEN_MAX + 1] = calloc(N, sizeof(*keys));
	unsigned counts[62] = { 0 };

	(void)state;
	assert_non_null(keys);
	for (int n = 0; n < N; n++) {
		assert_int_equal(keyfmt_generate(PFX, keys[n], sizeof(keys[n])), KLEN);
		for (int i = PLEN; i < PLEN + KEYFMT_RANDOM_CHARS; i++)
			counts[b62_index(keys[n][i])]++;
	}
	qsort(keys, N, sizeof(*keys), cmp_key);
	for (int n = 1; n < N; n++)
		assert_true(strcmp(keys[n - 1], keys[n]) != 0);
	for (int d = 0; d < 62; d++) {
		double expect = (double)N * KEYFMT_RANDOM_CHARS / 62;
		assert_true(counts[d] > expect * 0.8 && counts[d] < expect * 1.2);
	}
	free(keys);
}

/* CRC32 detects every single-byte error, and the 6-char encoding is a
 * bijection on its range: every substitution must be caught. */
static void
test_checksum_catches_every_single_char_substitution(void **state)
{
	static const char others[] = "_-.~!";
	char key[KEY_GEN_MAX + 1];
	unsigned tried = 0;

	(void)state;
	for (int n = 0; n < 20; n++) {
		assert_int_equal(keyfmt_generate(PFX, key, sizeof(key)), KLEN);
		for (int i = PLEN; i < KLEN; i++) {
			char orig = key[i];
			for (int d = 0; d < 62; d++) {
				if (b62[d] == orig)
					continue;
				key[i] = b62[d];
				assert_int_equal(keyfmt_check(PFX, key, KLEN), KEYFMT_BAD);
				tried++;
			}
			for (const char *o = others; *o; o++) {
				key[i] = *o;
				assert_int_equal(keyfmt_check(PFX, key, KLEN), KEYFMT_BAD);
			}
			key[i] = orig;
		}
		/* a change inside the prefix makes it someone else's key */
		key[0] = 'K';
		assert_int_equal(keyfmt_check(PFX, key, KLEN), KEYFMT_FOREIGN);
	}
	assert_int_equal(tried, 20u * (KLEN - PLEN) * 61);
}

static void
test_check_classifies_foreign_and_bad_lengths(void **state)
{
	char key[KEY_GEN_MAX + 2];
	static const char openai_like[] = "sk-proj-0123456789abcdefghijABCDEFGHIJ";

	(void)state;
	assert_int_equal(keyfmt_generate(PFX, key, sizeof(key)), KLEN);
	assert_int_equal(keyfmt_check(PFX, openai_like, strlen(openai_like)), KEYFMT_FOREIGN);
	assert_int_equal(keyfmt_check(PFX, "", 0), KEYFMT_FOREIGN);
	assert_int_equal(keyfmt_check(PFX, "ka", 2), KEYFMT_FOREIGN);
	assert_int_equal(keyfmt_check(PFX, "KA_abc", 6), KEYFMT_FOREIGN);   /* prefix is case-sensitive */
	assert_int_equal(keyfmt_check(PFX, PFX, PLEN), KEYFMT_BAD);
	assert_int_equal(keyfmt_check(PFX, key, KLEN - 1), KEYFMT_BAD);
	key[KLEN] = 'A';
	assert_int_equal(keyfmt_check(PFX, key, KLEN + 1), KEYFMT_BAD);
	/* other prefixes, and no prefix at all: nothing is ours */
	assert_int_equal(keyfmt_check("zz_", key, KLEN), KEYFMT_FOREIGN);
	assert_int_equal(keyfmt_check("", key, KLEN), KEYFMT_FOREIGN);
	assert_int_equal(keyfmt_check(NULL, key, KLEN), KEYFMT_FOREIGN);
	/* a longer prefix that shares ours */
	assert_int_equal(keyfmt_check("ka_x", key, KLEN), key[PLEN] == 'x' ? KEYFMT_BAD : KEYFMT_FOREIGN);
}

/* The CRC suffix decodes to a value up to 62^6 - 1 > 2^32: "zzzzzz" must be
 * rejected, not wrapped. */
static void
test_check_rejects_out_of_range_checksum(void **state)
{
	char key[KEY_GEN_MAX + 1];

	(void)state;
	assert_int_equal(keyfmt_generate(PFX, key, sizeof(key)), KLEN);
	memset(key + PLEN + KEYFMT_RANDOM_CHARS, 'z', KEYFMT_CRC_CHARS);
	assert_int_equal(keyfmt_check(PFX, key, KLEN), KEYFMT_BAD);
}

static void
test_crc32_matches_zlib_vectors(void **state)
{
	(void)state;
	assert_int_equal(keyfmt_crc32("", 0), 0);
	assert_int_equal(keyfmt_crc32("123456789", 9), 0xcbf43926u);
	assert_int_equal(keyfmt_crc32("The quick brown fox jumps over the lazy dog", 43), 0x414fa339u);
}

static void
test_digest_is_sha256(void **state)
{
	static const uint8_t abc[KEY_DIGEST_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde,
		0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
		0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	static const uint8_t empty[KEY_DIGEST_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
		0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
		0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	uint8_t d[KEY_DIGEST_LEN];

	(void)state;
	keyfmt_digest("abc", 3, d);
	assert_memory_equal(d, abc, sizeof(d));
	keyfmt_digest("", 0, d);
	assert_memory_equal(d, empty, sizeof(d));
	keyfmt_digest("abcd", 3, d);              /* length, not NUL, bounds the input */
	assert_memory_equal(d, abc, sizeof(d));
}

static void *
digest_worker(void *arg)
{
	static const uint8_t abc0 = 0xba, abc31 = 0xad;
	uint8_t d[KEY_DIGEST_LEN];
	int *bad = arg;

	for (int i = 0; i < 20000; i++) {
		keyfmt_digest("abc", 3, d);
		if (d[0] != abc0 || d[31] != abc31)
			(*bad)++;
	}
	return NULL;
}

/* Each thread keeps its own hashing context (freed at thread exit: a leak
 * would show under LeakSanitizer); results must not mix. */
static void
test_digest_from_several_threads(void **state)
{
	pthread_t t[4];
	int bad[4] = { 0 };

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, digest_worker, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bad[i], 0);
	}
}

static void
test_new_id_is_base62_and_unique(void **state)
{
	char a[KEY_ID_LEN + 1], b[KEY_ID_LEN + 1];

	(void)state;
	assert_int_equal(keyfmt_new_id(a), 0);
	assert_int_equal(keyfmt_new_id(b), 0);
	assert_int_equal(strlen(a), KEY_ID_LEN);
	assert_int_equal(strlen(b), KEY_ID_LEN);
	for (int i = 0; i < KEY_ID_LEN; i++)
		assert_true(b62_index(a[i]) >= 0 && b62_index(b[i]) >= 0);
	assert_true(strcmp(a, b) != 0);           /* 71 bits each: a repeat is a bug */
}

static void
test_charset_ok_bounds_and_bytes(void **state)
{
	char buf[KEY_MAX_LEN + 2];

	(void)state;
	memset(buf, 'a', sizeof(buf));
	assert_true(keyfmt_charset_ok(buf, KEY_MAX_LEN, true));
	assert_false(keyfmt_charset_ok(buf, KEY_MAX_LEN + 1, true));
	assert_false(keyfmt_charset_ok(buf, KEY_MAX_LEN + 1, false));
	assert_true(keyfmt_charset_ok(buf, KEY_MIN_LEN, true));
	assert_false(keyfmt_charset_ok(buf, KEY_MIN_LEN - 1, true));
	assert_true(keyfmt_charset_ok(buf, 1, false));
	assert_false(keyfmt_charset_ok(buf, 0, false));
	assert_false(keyfmt_charset_ok(NULL, 5, false));
	buf[10] = '!';                            /* 0x21 and 0x7e are the edges */
	buf[11] = '~';
	assert_true(keyfmt_charset_ok(buf, 30, true));
	for (int c = 0; c < 256; c++) {
		if (c >= 0x21 && c <= 0x7e)
			continue;
		buf[12] = (char)c;
		assert_false(keyfmt_charset_ok(buf, 30, true));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_gives_prefixed_base62_key_with_valid_checksum),
		cmocka_unit_test(test_generate_refuses_small_buffer_and_long_prefix),
		cmocka_unit_test(test_generate_is_unique_and_roughly_uniform),
		cmocka_unit_test(test_checksum_catches_every_single_char_substitution),
		cmocka_unit_test(test_check_classifies_foreign_and_bad_lengths),
		cmocka_unit_test(test_check_rejects_out_of_range_checksum),
		cmocka_unit_test(test_crc32_matches_zlib_vectors),
		cmocka_unit_test(test_digest_is_sha256),
		cmocka_unit_test(test_digest_from_several_threads),
		cmocka_unit_test(test_new_id_is_base62_and_unique),
		cmocka_unit_test(test_charset_ok_bounds_and_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
