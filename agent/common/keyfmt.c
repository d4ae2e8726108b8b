/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyfmt: key generation and classification, key ids, digests, CRC32.
 *
 * Pure functions, callable from any thread. Randomness comes only from
 * OpenSSL's RAND_bytes (thread-safe in OpenSSL >= 1.1). Every stack buffer
 * that held key material is wiped with OPENSSL_cleanse before returning.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "keyfmt.h"

static const char keyfmt_b62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* IEEE 802.3 CRC32, reflected polynomial 0xEDB88320, as zlib's crc32(). */
static const uint32_t keyfmt_crc_table[256] = {
	0x00000000, 0x77073096, 0xee0e612c, 0x990951ba, 0x076dc419, 0x706af48f,
	0xe963a535, 0x9e6495a3, 0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
	0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91, 0x1db71064, 0x6ab020f2,
	0xf3b97148, 0x84be41de, 0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
	0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec, 0x14015c4f, 0x63066cd9,
	0xfa0f3d63, 0x8d080df5, 0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
	0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b, 0x35b5a8fa, 0x42b2986c,
	0xdbbbc9d6, 0xacbcf940, 0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
	0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116, 0x21b4f4b5, 0x56b3c423,
	0xcfba9599, 0xb8bda50f, 0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
	0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d, 0x76dc4190, 0x01db7106,
	0x98d220bc, 0xefd5102a, 0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
	0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818, 0x7f6a0dbb, 0x086d3d2d,
	0x91646c97, 0xe6635c01, 0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
	0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457, 0x65b0d9c6, 0x12b7e950,
	0x8bbeb8ea, 0xfcb9887c, 0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
	0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2, 0x4adfa541, 0x3dd895d7,
	0xa4d1c46d, 0xd3d6f4fb, 0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
	0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9, 0x5005713c, 0x270241aa,
	0xbe0b1010, 0xc90c2086, 0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
	0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4, 0x59b33d17, 0x2eb40d81,
	0xb7bd5c3b, 0xc0ba6cad, 0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
	0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683, 0xe3630b12, 0x94643b84,
	0x0d6d6a3e, 0x7a6a5aa8, 0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
	0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe, 0xf762575d, 0x806567cb,
	0x196c3671, 0x6e6b06e7, 0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
	0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5, 0xd6d6a3e8, 0xa1d1937e,
	0x38d8c2c4, 0x4fdff252, 0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
	0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60, 0xdf60efc3, 0xa867df55,
	0x316e8eef, 0x4669be79, 0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
	0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f, 0xc5ba3bbe, 0xb2bd0b28,
	0x2bb45a92, 0x5cb36a04, 0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
	0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a, 0x9c0906a9, 0xeb0e363f,
	0x72076785, 0x05005713, 0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
	0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21, 0x86d3d2d4, 0xf1d4e242,
	0x68ddb3f8, 0x1fda836e, 0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
	0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c, 0x8f659eff, 0xf862ae69,
	0x616bffd3, 0x166ccf45, 0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
	0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db, 0xaed16a4a, 0xd9d65adc,
	0x40df0b66, 0x37d83bf0, 0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
	0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6, 0xbad03605, 0xcdd70693,
	0x54de5729, 0x23d967bf, 0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
	0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d,
};

/*
 * Every presented key with our prefix is checksummed before it is hashed, so
 * both loops below are on the request path. Byte-at-a-time CRC32 is a chain
 * of dependent table loads (about 5 cycles a byte) and a ranged base62 test
 * mispredicts on random characters; together they cost more than the key's
 * SHA-256 (the benchmark profile). So: CRC32 by slicing-by-8 (Kounavis and
 * Berry: eight derived tables, one step per 8 bytes), and a 256-entry
 * base62 table scanned without branches. Tables are built once, from
 * keyfmt_crc_table, on first use by any thread.
 */
#define KEYFMT_B62_BAD 0x80   /* flag in keyfmt_b62_tab: not a base62 digit */

static uint32_t keyfmt_crc_slice[8][256];
static uint8_t keyfmt_b62_tab[256];   /* digit value 0..61, or KEYFMT_B62_BAD */
static pthread_once_t keyfmt_tables_once = PTHREAD_ONCE_INIT;

static void
keyfmt_tables_init(void)
{
	for (unsigned i = 0; i < 256; i++)
		keyfmt_crc_slice[0][i] = keyfmt_crc_table[i];
	for (unsigned i = 0; i < 256; i++)
		for (unsigned k = 1; k < 8; k++) {
			uint32_t c = keyfmt_crc_slice[k - 1][i];

			keyfmt_crc_slice[k][i] = (c >> 8) ^ keyfmt_crc_table[c & 0xff];
		}
	for (unsigned ch = 0; ch < 256; ch++) {
		uint8_t v = KEYFMT_B62_BAD;

		if (ch >= '0' && ch <= '9')
			v = (uint8_t)(ch - '0');
		else if (ch >= 'A' && ch <= 'Z')
			v = (uint8_t)(ch - 'A' + 10);
		else if (ch >= 'a' && ch <= 'z')
			v = (uint8_t)(ch - 'a' + 36);
		keyfmt_b62_tab[ch] = v;
	}
}

/* Little-endian 32-bit load from any alignment (one mov on x86). */
static inline uint32_t
keyfmt_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

uint32_t
keyfmt_crc32(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t c = 0xffffffffu;

	pthread_once(&keyfmt_tables_once, keyfmt_tables_init);
	for (; len >= 8; b += 8, len -= 8) {
		uint32_t lo = keyfmt_le32(b) ^ c, hi = keyfmt_le32(b + 4);

		c = keyfmt_crc_slice[7][lo & 0xff] ^ keyfmt_crc_slice[6][(lo >> 8) & 0xff] ^
		    keyfmt_crc_slice[5][(lo >> 16) & 0xff] ^ keyfmt_crc_slice[4][lo >> 24] ^
		    keyfmt_crc_slice[3][hi & 0xff] ^ keyfmt_crc_slice[2][(hi >> 8) & 0xff] ^
		    keyfmt_crc_slice[1][(hi >> 16) & 0xff] ^ keyfmt_crc_slice[0][hi >> 24];
	}
	while (len--)
		c = keyfmt_crc_table[(c ^ *b++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/*
 * Fills <out> with <n> uniformly distributed base62 characters (no NUL).
 * Rejection sampling: bytes >= 248 (= 4 * 62) are dropped so that b % 62 is
 * unbiased; 3% of the bytes are wasted. Returns 0, or -1 if RAND_bytes failed.
 */
static int
keyfmt_random_b62(char *out, size_t n)
{
	unsigned char buf[64];
	size_t i = 0, j = sizeof(buf);

	while (i < n) {
		if (j == sizeof(buf)) {
			if (RAND_bytes(buf, (int)sizeof(buf)) != 1) {
				OPENSSL_cleanse(buf, sizeof(buf));
				return -1;
			}
			j = 0;
		}
		unsigned char b = buf[j++];
		if (b >= 248)
			continue;
		out[i++] = keyfmt_b62[b % 62];
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* Writes <v> as exactly KEYFMT_CRC_CHARS base62 digits, most significant
 * first. 62^6 = 56.8e9 > 2^32, so every CRC fits. */
static void
keyfmt_crc_encode(uint32_t v, char out[KEYFMT_CRC_CHARS])
{
	uint64_t x = v;

	for (int i = KEYFMT_CRC_CHARS - 1; i >= 0; i--) {
		out[i] = keyfmt_b62[x % 62];
		x /= 62;
	}
}

int
keyfmt_generate(const char *prefix, char *out, size_t outlen)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	size_t klen = plen + KEYFMT_RANDOM_CHARS + KEYFMT_CRC_CHARS;

	if (plen > KEYFMT_PREFIX_MAX || out == NULL || outlen < klen + 1)
		return -1;
	memcpy(out, prefix, plen);
	if (keyfmt_random_b62(out + plen, KEYFMT_RANDOM_CHARS) == -1) {
		OPENSSL_cleanse(out, outlen);
		return -1;
	}
	keyfmt_crc_encode(keyfmt_crc32(out, plen + KEYFMT_RANDOM_CHARS),
	                  out + plen + KEYFMT_RANDOM_CHARS);
	out[klen] = '\0';
	return (int)klen;
}

/*
 * A NULL or empty prefix recognises nothing: every key is KEYFMT_FOREIGN
 * (otherwise every imported key would be judged by our checksum).
 */
enum keyfmt_check
keyfmt_check(const char *prefix, const char *key, size_t len)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	uint64_t crc = 0;
	uint8_t bad = 0;

	if (plen == 0 || key == NULL || len < plen || memcmp(key, prefix, plen) != 0)
		return KEYFMT_FOREIGN;
	if (len != plen + KEYFMT_RANDOM_CHARS + KEYFMT_CRC_CHARS)
		return KEYFMT_BAD;
	pthread_once(&keyfmt_tables_once, keyfmt_tables_init);
	for (size_t i = plen; i < plen + KEYFMT_RANDOM_CHARS; i++)
		bad |= keyfmt_b62_tab[(unsigned char)key[i]];
	for (size_t i = plen + KEYFMT_RANDOM_CHARS; i < len; i++) {
		uint8_t d = keyfmt_b62_tab[(unsigned char)key[i]];

		bad |= d;
		crc = crc * 62 + (d & 0x3f);   /* garbage when bad, then unused */
	}
	if ((bad & KEYFMT_B62_BAD) != 0 || crc != keyfmt_crc32(key, plen + KEYFMT_RANDOM_CHARS))
		return KEYFMT_BAD;
	return KEYFMT_OK;
}

bool
keyfmt_charset_ok(const char *key, size_t len, bool strict_min)
{
	unsigned bad = 0;

	if (key == NULL || len > KEY_MAX_LEN || len < (strict_min ? KEY_MIN_LEN : 1))
		return false;
	/* No early exit: a branch-free scan the compiler can vectorise. */
	for (size_t i = 0; i < len; i++)
		bad |= (unsigned)((unsigned char)key[i] - 0x21u > 0x7eu - 0x21u);
	return bad == 0;
}

/*
 * SHA-256 runs on the request path of every worker. OpenSSL 3's one-shot
 * SHA256() fetches the implementation on each call (a locked lookup) and
 * EVP_Digest allocates a context per call; instead the algorithm is fetched
 * once, and each thread keeps one EVP_MD_CTX (freed by the pthread key's
 * destructor when the thread exits). About twice as fast as EVP_Digest.
 */
static const EVP_MD *keyfmt_sha256;
static pthread_key_t keyfmt_ctx_key;
static bool keyfmt_ctx_key_ok;
static pthread_once_t keyfmt_sha256_once = PTHREAD_ONCE_INIT;

static void
keyfmt_ctx_free(void *ctx)
{
	EVP_MD_CTX_free(ctx);
}

static void
keyfmt_sha256_init(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	keyfmt_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
#endif
	if (keyfmt_sha256 == NULL)
		keyfmt_sha256 = EVP_sha256();
	keyfmt_ctx_key_ok = pthread_key_create(&keyfmt_ctx_key, keyfmt_ctx_free) == 0;
}

void
keyfmt_digest(const char *key, size_t len, uint8_t out[KEY_DIGEST_LEN])
{
	EVP_MD_CTX *ctx = NULL;

	pthread_once(&keyfmt_sha256_once, keyfmt_sha256_init);
	if (keyfmt_ctx_key_ok && (ctx = pthread_getspecific(keyfmt_ctx_key)) == NULL &&
	    (ctx = EVP_MD_CTX_new()) != NULL && pthread_setspecific(keyfmt_ctx_key, ctx) != 0) {
		EVP_MD_CTX_free(ctx);
		ctx = NULL;
	}
	if (ctx != NULL && EVP_DigestInit_ex(ctx, keyfmt_sha256, NULL) == 1 &&
	    EVP_DigestUpdate(ctx, key, len) == 1 && EVP_DigestFinal_ex(ctx, out, NULL) == 1)
		return;
	/* no context (out of memory): the allocating one-shot forms */
	if (EVP_Digest(key, len, out, NULL, keyfmt_sha256, NULL) != 1)
		SHA256((const unsigned char *)key, len, out);
}

int
keyfmt_new_id(char out[KEY_ID_LEN + 1])
{
	if (keyfmt_random_b62(out, KEY_ID_LEN) == -1)
		return -1;
	out[KEY_ID_LEN] = '\0';
	return 0;
}
