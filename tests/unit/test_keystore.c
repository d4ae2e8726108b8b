/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keystore: the key set and its msgpack file.
 *
 * Covered: write/load round trip (every field, order, generation, mode 0600,
 * no temporary file left behind), missing file = empty set, one crafted file
 * per validation rule (packed here with msgpack_packer so each differs from a
 * good file in exactly one way), truncation at every offset, trailing bytes,
 * empty file, directory, oversized (sparse) file, unreadable file (skipped as
 * root), writer refusals leaving the old file intact, the lock, lookups by
 * digest and id with 100,000 keys, reference counting across threads.
 * Not covered here: the daemon's file watching and swap (integration tests).
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "keyfmt.h"
#include "keystore.h"

struct fx {
	char dir[64];
	char path[128];           /* <dir>/keys.db */
};

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/ka-test-keystore.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/keys.db", f->dir);
	*state = f;
	return 0;
}

/* Removes every file the test left in its directory (the store, the lock,
 * a subdirectory standing in for the store), then the directory. */
static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *de;
	char p[400];
	DIR *d = opendir(f->dir);

	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
		if (unlink(p) == -1 && errno == EISDIR)
			rmdir(p);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Number of directory entries other than . and .. */
static int
count_files(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
write_file(const char *path, const void *p, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(p, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* ---- entries ------------------------------------------------------------ */

static const char *const owners[] = { "", "team a", "billing@example.com (prod)" };
static const char *const routes[] = { "openai", "mistral-large", "proxy_1" };

/* Entry <i> of a synthetic store: digest of a made-up key, id "K" + 11
 * digits, varied fields. Deterministic, so a loaded entry can be compared
 * with a freshly made one. */
static void
make_entry(size_t i, struct ks_entry *e)
{
	char key[64];

	memset(e, 0, sizeof(*e));
	snprintf(key, sizeof(key), "test-key-%zu", i);
	keyfmt_digest(key, strlen(key), e->digest);
	snprintf(e->id, sizeof(e->id), "K%011u", (unsigned)(i % 100000000000u));
	e->route = routes[i % 3];
	e->owner = owners[i % 3];
	e->created = 1700000000 + (int64_t)i;
	e->expires = (i % 5) ? 1800000000 + (int64_t)i : 0;
	e->revoked = (i % 7) ? 0 : 1750000000;
	e->rpm = (uint32_t)(i % 11) * 60;
}

static struct ks_entry *
make_entries(size_t n)
{
	struct ks_entry *v = calloc(n ? n : 1, sizeof(*v));

	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		make_entry(i, &v[i]);
	return v;
}

static void
assert_entry_equal(const struct ks_entry *a, const struct ks_entry *b)
{
	assert_memory_equal(a->digest, b->digest, KEY_DIGEST_LEN);
	assert_string_equal(a->id, b->id);
	assert_string_equal(a->route, b->route);
	assert_string_equal(a->owner, b->owner);
	assert_true(a->created == b->created);
	assert_true(a->expires == b->expires);
	assert_true(a->revoked == b->revoked);
	assert_int_equal(a->rpm, b->rpm);
}

/* ---- round trip ----------------------------------------------------------- */

static void
test_write_then_load_round_trips_every_field(void **state)
{
	struct fx *f = *state;
	struct ks_entry *v = make_entries(300);
	struct ks_set *s;
	struct stat st;
	char err[256] = "";
	bool missing = true;

	assert_int_equal(ks_file_write_gen(f->path, v, 300, 42, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_files(f->dir), 1);           /* no temporary left */

	s = ks_set_load(f->path, &missing, err, sizeof(err));
	assert_non_null(s);
	assert_false(missing);
	assert_int_equal(ks_count(s), 300);
	assert_int_equal(ks_generation(s), 42);
	for (size_t i = 0; i < 300; i++) {
		assert_entry_equal(ks_entry_at(s, i), &v[i]);           /* file order kept */
		assert_ptr_equal(ks_lookup(s, v[i].digest), ks_entry_at(s, i));
		assert_ptr_equal(ks_find_id(s, v[i].id), ks_entry_at(s, i));
	}
	assert_null(ks_entry_at(s, 300));
	ks_set_unref(s);

	/* ks_file_write is generation 0; an empty store round-trips too */
	assert_int_equal(ks_file_write(f->path, v, 0, err, sizeof(err)), 0);
	s = ks_set_load(f->path, NULL, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(ks_count(s), 0);
	assert_int_equal(ks_generation(s), 0);
	assert_null(ks_lookup(s, v[0].digest));
	ks_set_unref(s);
	free(v);
}

static void
test_missing_file_is_an_empty_set(void **state)
{
	struct fx *f = *state;
	struct ks_entry e;
	struct ks_set *s;
	char err[256] = "";
	bool missing = false;

	make_entry(1, &e);
	s = ks_set_load(f->path, &missing, err, sizeof(err));
	assert_non_null(s);
	assert_true(missing);
	assert_int_equal(ks_count(s), 0);
	assert_null(ks_lookup(s, e.digest));
	assert_null(ks_find_id(s, e.id));
	assert_null(ks_entry_at(s, 0));
	ks_set_unref(s);
}

/* ---- crafted bad files ------------------------------------------------------ */

enum mut {
	M_NONE = 0,
	M_VERSION_2, M_VERSION_STR, M_NO_VERSION, M_NO_GENERATION, M_NO_KEYS,
	M_KEYS_NOT_ARRAY, M_TOP_UNKNOWN, M_TOP_DUP, M_TOP_NOT_MAP, M_TOP_KEY_INT,
	M_GENERATION_NEG,
	M_ENTRY_NOT_MAP, M_MISSING_FIELD, M_WRONG_TYPE, M_UNKNOWN_FIELD, M_DUP_FIELD,
	M_DIGEST_31, M_DIGEST_33, M_DUP_DIGEST, M_DUP_ID,
	M_ID_SHORT, M_ID_CHAR, M_ROUTE_EMPTY, M_ROUTE_CHAR, M_ROUTE_LONG,
	M_OWNER_LONG, M_OWNER_CTRL, M_TIME_NEG, M_TIME_HUGE, M_RPM_HUGE,
	M_KEYS_FIRST,            /* valid: "keys" before "version" */
	M_KEYS_FIRST_V2,         /* "keys" (with a bad entry) before version 2 */
	M_KEYS_HUGE,             /* "keys" announces 2^32-1 entries */
	M_ENTRIES_DONE
};

static const char *const field_names[8] = {
	"id", "digest", "route", "owner", "created", "expires", "revoked", "rpm",
};

static void
pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

/* Packs entry <e>, altered by <m> (and field <fi> for the field mutations). */
static void
pack_entry(msgpack_packer *pk, const struct ks_entry *e, enum mut m, int fi)
{
	char longs[KS_OWNER_MAX + 2];
	uint8_t dig[33];

	if (m == M_ENTRY_NOT_MAP) {
		msgpack_pack_array(pk, 0);
		return;
	}
	msgpack_pack_map(pk, m == M_MISSING_FIELD ? 7 : (m == M_UNKNOWN_FIELD || m == M_DUP_FIELD) ? 9 : 8);
	for (int f = 0; f < 8; f++) {
		if (m == M_MISSING_FIELD && f == fi)
			continue;
		pk_str(pk, field_names[f]);
		if (m == M_WRONG_TYPE && f == fi) {
			if (f == 0 || f == 2 || f == 3)
				msgpack_pack_uint32(pk, 7);
			else if (f == 1)
				pk_str(pk, "0123456789abcdef0123456789abcdef");   /* str, not bin */
			else
				pk_str(pk, "1700000000");
			continue;
		}
		switch (f) {
		case 0:
			pk_str(pk, m == M_ID_SHORT ? "K0000000001" : m == M_ID_CHAR ? "K000000000_1" : e->id);
			break;
		case 1:
			memcpy(dig, e->digest, 32);
			dig[32] = 0;
			msgpack_pack_bin(pk, m == M_DIGEST_31 ? 31 : m == M_DIGEST_33 ? 33 : 32);
			msgpack_pack_bin_body(pk, dig, m == M_DIGEST_31 ? 31 : m == M_DIGEST_33 ? 33 : 32);
			break;
		case 2:
			if (m == M_ROUTE_EMPTY)
				pk_str(pk, "");
			else if (m == M_ROUTE_CHAR)
				pk_str(pk, "open ai");
			else if (m == M_ROUTE_LONG) {
				memset(longs, 'r', KS_ROUTE_MAX + 1);
				longs[KS_ROUTE_MAX + 1] = '\0';
				pk_str(pk, longs);
			} else
				pk_str(pk, e->route);
			break;
		case 3:
			if (m == M_OWNER_LONG) {
				memset(longs, 'o', KS_OWNER_MAX + 1);
				longs[KS_OWNER_MAX + 1] = '\0';
				pk_str(pk, longs);
			} else
				pk_str(pk, m == M_OWNER_CTRL ? "team\na" : e->owner);
			break;
		case 4:
			if (m == M_TIME_NEG)
				msgpack_pack_int64(pk, -1);
			else if (m == M_TIME_HUGE)
				msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
			else
				msgpack_pack_int64(pk, e->created);
			break;
		case 5:
			msgpack_pack_int64(pk, e->expires);
			break;
		case 6:
			msgpack_pack_int64(pk, e->revoked);
			break;
		default:
			if (m == M_RPM_HUGE)
				msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
			else
				msgpack_pack_uint32(pk, e->rpm);
			break;
		}
	}
	if (m == M_UNKNOWN_FIELD) {
		pk_str(pk, "comment");
		pk_str(pk, "hi");
	} else if (m == M_DUP_FIELD) {
		pk_str(pk, "route");
		pk_str(pk, "openai");
	}
}

static void
pack_keys(msgpack_packer *pk, const struct ks_entry *e, enum mut m, int fi)
{
	pk_str(pk, "keys");
	if (m == M_KEYS_NOT_ARRAY) {
		msgpack_pack_map(pk, 0);
		return;
	}
	msgpack_pack_array(pk, m == M_KEYS_HUGE ? UINT32_MAX : 3);
	for (int i = 0; i < 3; i++)
		pack_entry(pk, &e[i], i == 1 ? m : M_NONE, fi);
}

/* Packs a 3-entry store with entry 1 altered by <m>; returns its bytes in <sb>. */
static void
pack_doc(msgpack_sbuffer *sb, enum mut m, int fi)
{
	msgpack_packer pk;
	struct ks_entry e[3];
	int nkv = 3;

	for (int i = 0; i < 3; i++)
		make_entry((size_t)i, &e[i]);
	if (m == M_DUP_DIGEST)
		memcpy(e[1].digest, e[0].digest, KEY_DIGEST_LEN);
	if (m == M_DUP_ID)
		memcpy(e[1].id, e[0].id, sizeof(e[1].id));
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (m == M_TOP_NOT_MAP) {
		msgpack_pack_array(&pk, 1);
		msgpack_pack_uint32(&pk, 1);
		return;
	}
	if (m == M_NO_VERSION || m == M_NO_GENERATION || m == M_NO_KEYS)
		nkv--;
	if (m == M_TOP_UNKNOWN || m == M_TOP_DUP || m == M_TOP_KEY_INT)
		nkv++;
	msgpack_pack_map(&pk, (size_t)nkv);
	if (m == M_KEYS_FIRST || m == M_KEYS_FIRST_V2)
		pack_keys(&pk, e, m == M_KEYS_FIRST_V2 ? M_DIGEST_31 : M_NONE, fi);
	if (m != M_NO_GENERATION) {          /* not first: the version is found wherever it is */
		pk_str(&pk, "generation");
		if (m == M_GENERATION_NEG)
			msgpack_pack_int64(&pk, -5);
		else
			msgpack_pack_uint64(&pk, 7);
	}
	if (m != M_NO_VERSION) {
		pk_str(&pk, "version");
		if (m == M_VERSION_STR)
			pk_str(&pk, "1");
		else
			msgpack_pack_uint32(&pk, (m == M_VERSION_2 || m == M_KEYS_FIRST_V2) ? 2 : 1);
	}
	if (m != M_NO_KEYS && m != M_KEYS_FIRST && m != M_KEYS_FIRST_V2)
		pack_keys(&pk, e, m, fi);
	if (m == M_TOP_UNKNOWN) {
		pk_str(&pk, "comment");
		pk_str(&pk, "x");
	} else if (m == M_TOP_DUP) {
		pk_str(&pk, "generation");
		msgpack_pack_uint64(&pk, 8);
	} else if (m == M_TOP_KEY_INT) {
		msgpack_pack_uint32(&pk, 5);
		msgpack_pack_uint32(&pk, 5);
	}
}

/* Writes the crafted file, loads it, and checks the error names the path and
 * contains <want>. */
static void
expect_load_error(const struct fx *f, enum mut m, int fi, const char *want)
{
	msgpack_sbuffer sb;
	struct ks_set *s;
	char err[512] = "";
	bool missing = true;

	pack_doc(&sb, m, fi);
	write_file(f->path, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	s = ks_set_load(f->path, &missing, err, sizeof(err));
	if (s != NULL || strncmp(err, f->path, strlen(f->path)) != 0 || strstr(err, want) == NULL)
		fail_msg("mutation %d field %d: got \"%s\", want \"%s\"", m, fi, err, want);
	assert_false(missing);
}

static void
test_good_crafted_files_load_whatever_the_field_order(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	struct ks_set *s;
	char err[256] = "";

	for (enum mut m = M_NONE; m != M_ENTRIES_DONE; m = (m == M_NONE) ? M_KEYS_FIRST : M_ENTRIES_DONE) {
		struct ks_entry e;
		pack_doc(&sb, m, 0);
		write_file(f->path, sb.data, sb.size);
		msgpack_sbuffer_destroy(&sb);
		s = ks_set_load(f->path, NULL, err, sizeof(err));
		if (s == NULL)
			fail_msg("%s", err);
		assert_int_equal(ks_count(s), 3);
		assert_int_equal(ks_generation(s), 7);
		for (size_t i = 0; i < 3; i++) {
			make_entry(i, &e);
			assert_entry_equal(ks_entry_at(s, i), &e);
			assert_ptr_equal(ks_lookup(s, e.digest), ks_entry_at(s, i));
		}
		ks_set_unref(s);
	}
}

static void
test_each_validation_rule_rejects_the_file(void **state)
{
	static const struct {
		enum mut m;
		const char *want;
	} cases[] = {
		{ M_VERSION_2,      "unsupported store version 2" },
		{ M_VERSION_STR,    "\"version\" is not an unsigned integer" },
		{ M_NO_VERSION,     "no \"version\" field" },
		{ M_NO_GENERATION,  "missing top-level field \"generation\"" },
		{ M_NO_KEYS,        "missing top-level field \"keys\"" },
		{ M_KEYS_NOT_ARRAY, "\"keys\" is not an array" },
		{ M_TOP_UNKNOWN,    "unknown top-level field \"comment\"" },
		{ M_TOP_DUP,        "top-level field \"generation\" appears twice" },
		{ M_TOP_NOT_MAP,    "top level is not a msgpack map" },
		{ M_TOP_KEY_INT,    "top-level field name is not a string" },
		{ M_GENERATION_NEG, "\"generation\" is not an unsigned integer" },
		{ M_ENTRY_NOT_MAP,  "keys[1]: not a map" },
		{ M_UNKNOWN_FIELD,  "keys[1]: unknown field \"comment\"" },
		{ M_DUP_FIELD,      "keys[1]: field \"route\" appears twice" },
		{ M_DIGEST_31,      "keys[1]: digest is 31 bytes, expected 32" },
		{ M_DIGEST_33,      "keys[1]: digest is 33 bytes, expected 32" },
		{ M_DUP_DIGEST,     "keys[1]: keys K00000000000 and K00000000001 have the same digest" },
		{ M_DUP_ID,         "keys[1]: duplicate key id K00000000000" },
		{ M_ID_SHORT,       "keys[1]: id \"K0000000001\" is 11 characters, expected 12" },
		{ M_ID_CHAR,        "keys[1]: id \"K000000000_1\" has a character outside" },
		{ M_ROUTE_EMPTY,    "keys[1]: route is 0 characters" },
		{ M_ROUTE_CHAR,     "keys[1]: route \"open ai\" has a character outside" },
		{ M_ROUTE_LONG,     "keys[1]: route is 129 characters" },
		{ M_OWNER_LONG,     "keys[1]: owner is 257 characters" },
		{ M_OWNER_CTRL,     "keys[1]: owner \"team?a\" has a non-printable character" },
		{ M_TIME_NEG,       "keys[1]: field \"created\" must be a non-negative integer" },
		{ M_TIME_HUGE,      "keys[1]: field \"created\" must be a non-negative integer" },
		{ M_RPM_HUGE,       "keys[1]: field \"rpm\" must be an unsigned 32-bit integer" },
		{ M_KEYS_FIRST_V2,  "unsupported store version 2" },
		{ M_KEYS_HUGE,      "truncated or corrupt: \"keys\" announces 4294967295 entries" },
	};
	static const char *const type_names[8] = {
		"a string", "binary", "a string", "a string", "a non-negative integer",
		"a non-negative integer", "a non-negative integer", "an unsigned 32-bit integer",
	};
	struct fx *f = *state;
	char want[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_load_error(f, cases[i].m, 0, cases[i].want);
	for (int fi = 0; fi < 8; fi++) {
		snprintf(want, sizeof(want), "keys[1]: missing field \"%s\"", field_names[fi]);
		expect_load_error(f, M_MISSING_FIELD, fi, want);
		snprintf(want, sizeof(want), "keys[1]: field \"%s\" must be %s", field_names[fi], type_names[fi]);
		expect_load_error(f, M_WRONG_TYPE, fi, want);
	}
}

static void
test_truncation_at_every_offset_is_rejected(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	char err[256];

	pack_doc(&sb, M_NONE, 0);
	for (size_t off = 0; off < sb.size; off++) {
		write_file(f->path, sb.data, off);
		err[0] = '\0';
		assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
		if (strstr(err, off == 0 ? "empty file" : "truncated") == NULL)
			fail_msg("offset %zu: %s", off, err);
	}
	msgpack_sbuffer_destroy(&sb);
}

static void
test_trailing_bytes_are_rejected(void **state)
{
	struct fx *f = *state;
	msgpack_sbuffer sb;
	char err[256] = "";

	pack_doc(&sb, M_NONE, 0);
	msgpack_sbuffer_write(&sb, "\xc0", 1);          /* a msgpack nil after the map */
	write_file(f->path, sb.data, sb.size);
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "1 unexpected bytes after the key store map"));
	msgpack_sbuffer_destroy(&sb);
	/* a second whole map is garbage too */
	pack_doc(&sb, M_NONE, 0);
	{
		char *twice = malloc(2 * sb.size);
		assert_non_null(twice);
		memcpy(twice, sb.data, sb.size);
		memcpy(twice + sb.size, sb.data, sb.size);
		write_file(f->path, twice, 2 * sb.size);
		free(twice);
	}
	msgpack_sbuffer_destroy(&sb);
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "unexpected bytes"));
}

/* The parser on bytes in memory: the good document, then every single-bit
 * flip of it (each must give a set or an error, never a crash or a leak:
 * the sanitizer build is the judge), then nothing at all. */
static void
test_parse_from_memory_and_bit_flips(void **state)
{
	msgpack_sbuffer sb;
	struct ks_set *s;
	char err[256];
	size_t ok = 0;

	(void)state;
	pack_doc(&sb, M_NONE, 0);
	s = ks_set_parse(sb.data, sb.size, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(ks_count(s), 3);
	ks_set_unref(s);
	for (size_t i = 0; i < sb.size; i++)
		for (int bit = 0; bit < 8; bit++) {
			sb.data[i] ^= (char)(1 << bit);
			err[0] = '\0';
			s = ks_set_parse(sb.data, sb.size, err, sizeof(err));
			if (s != NULL) {
				assert_true(ks_count(s) <= 3);
				ok++;
			} else
				assert_true(err[0] != '\0');
			ks_set_unref(s);
			sb.data[i] ^= (char)(1 << bit);
		}
	/* flips inside digests, times and rpm values still load */
	assert_true(ok > 0);
	msgpack_sbuffer_destroy(&sb);
	assert_null(ks_set_parse("", 0, err, sizeof(err)));
	assert_non_null(strstr(err, "truncated"));
	assert_null(ks_set_parse("\x80", 1, NULL, 0));   /* an empty map; no err buffer */
}

static void
test_garbage_is_rejected(void **state)
{
	struct fx *f = *state;
	char err[256] = "";

	write_file(f->path, "\xc1\x00\x01", 3);          /* 0xc1 is never used in msgpack */
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "not valid msgpack"));
	write_file(f->path, "version = 1\n", 12);        /* text: 'v' is a whole msgpack int, then junk */
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_int_equal(strncmp(err, f->path, strlen(f->path)), 0);
}

static void
test_directory_and_oversized_file_are_rejected(void **state)
{
	struct fx *f = *state;
	char p[200], err[256] = "";
	bool missing = true;
	int fd;

	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "is a directory"));
	assert_int_equal(rmdir(f->path), 0);

	/* sparse: the size is refused before anything is read or allocated */
	fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)1024 * 1024 * 1024 + 1), 0);
	close(fd);
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "byte limit"));

	/* a path through a regular file: ENOTDIR is an error, not "missing" */
	snprintf(p, sizeof(p), "%s/x", f->path);
	assert_null(ks_set_load(p, &missing, err, sizeof(err)));
	assert_false(missing);
	assert_non_null(strstr(err, "Not a directory"));
}

static void
test_unreadable_file_is_an_error(void **state)
{
	struct fx *f = *state;
	struct ks_entry *v = make_entries(2);
	char err[256] = "";

	/* root reads a mode-000 file anyway, so the check would prove nothing */
	if (geteuid() == 0) {
		free(v);
		skip();
	}
	assert_int_equal(ks_file_write(f->path, v, 2, err, sizeof(err)), 0);
	assert_int_equal(chmod(f->path, 0), 0);
	assert_null(ks_set_load(f->path, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "Permission denied"));
	free(v);
}

/* ---- the writer ---------------------------------------------------------------- */

static void
test_writer_refuses_what_would_not_load_and_keeps_old_file(void **state)
{
	struct fx *f = *state;
	struct ks_entry *v = make_entries(4);
	struct ks_entry save;
	struct ks_set *s;
	char err[256] = "";
	char longowner[KS_OWNER_MAX + 2];

	assert_int_equal(ks_file_write_gen(f->path, v, 4, 3, err, sizeof(err)), 0);

	save = v[2];
	strcpy(v[2].id, "short");
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry 2: id \"short\" is 5 characters"));
	v[2] = save;
	v[2].route = "a/b";
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry 2: route"));
	v[2].route = NULL;
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry 2: no route"));
	v[2] = save;
	memset(longowner, 'x', sizeof(longowner) - 1);
	longowner[sizeof(longowner) - 1] = '\0';
	v[2].owner = longowner;
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	v[2].owner = "tab\there";
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	v[2] = save;
	v[2].expires = -1;
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	v[2] = save;
	memcpy(v[3].digest, v[0].digest, KEY_DIGEST_LEN);
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "same digest"));
	make_entry(3, &v[3]);
	memcpy(v[3].id, v[1].id, sizeof(v[3].id));
	assert_int_equal(ks_file_write(f->path, v, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "duplicate key id"));
	make_entry(3, &v[3]);

	/* the first file is still there, whole */
	s = ks_set_load(f->path, NULL, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(ks_count(s), 4);
	assert_int_equal(ks_generation(s), 3);
	ks_set_unref(s);
	assert_int_equal(count_files(f->dir), 1);

	/* owner NULL is written as "" */
	v[0].owner = NULL;
	assert_int_equal(ks_file_write(f->path, v, 1, err, sizeof(err)), 0);
	s = ks_set_load(f->path, NULL, err, sizeof(err));
	assert_non_null(s);
	assert_string_equal(ks_entry_at(s, 0)->owner, "");
	ks_set_unref(s);
	free(v);
}

static void
test_writer_reports_unwritable_directory(void **state)
{
	struct fx *f = *state;
	struct ks_entry *v = make_entries(1);
	char p[200], err[256] = "";

	snprintf(p, sizeof(p), "%s/nodir/keys.db", f->dir);
	assert_int_equal(ks_file_write(p, v, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "create temporary file"));
	assert_int_equal(ks_file_write(f->dir, v, 1, err, sizeof(err)), -1);  /* rename over a directory */
	assert_int_equal(count_files(f->dir), 0);
	free(v);
}

static void
test_lock_is_exclusive_until_unlocked(void **state)
{
	struct fx *f = *state;
	char lp[200], err[256] = "";
	struct stat st;
	int fd, probe;

	fd = ks_file_lock(f->path, err, sizeof(err));
	assert_true(fd >= 0);
	snprintf(lp, sizeof(lp), "%s.lock", f->path);
	assert_int_equal(stat(lp, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	probe = open(lp, O_RDWR);
	assert_true(probe >= 0);
	assert_int_equal(flock(probe, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	ks_file_unlock(fd);
	assert_int_equal(flock(probe, LOCK_EX | LOCK_NB), 0);
	close(probe);
	ks_file_unlock(-1);                     /* no-op */

	snprintf(lp, sizeof(lp), "%s/nodir/keys.db", f->dir);
	assert_int_equal(ks_file_lock(lp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nodir/keys.db.lock"));
}

/* ---- the in-memory set ---------------------------------------------------------- */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 100,000 keys, through the file: every key is found, by digest and by id,
 * and 100,000 absent digests and ids are not. The load time is printed for
 * information only (sanitizer builds are slow). */
static void
test_lookup_with_100k_keys(void **state)
{
	enum { N = 100000 };
	struct fx *f = *state;
	struct ks_entry *v = make_entries(N);
	struct ks_entry absent;
	struct ks_set *s;
	char err[256] = "";
	double t0;

	assert_int_equal(ks_file_write(f->path, v, N, err, sizeof(err)), 0);
	t0 = now_s();
	s = ks_set_load(f->path, NULL, err, sizeof(err));
	print_message("      load of %d keys: %.1f ms\n", N, (now_s() - t0) * 1e3);
	assert_non_null(s);
	assert_int_equal(ks_count(s), N);
	for (size_t i = 0; i < N; i++) {
		const struct ks_entry *e = ks_lookup(s, v[i].digest);
		assert_non_null(e);
		assert_string_equal(e->id, v[i].id);
		assert_ptr_equal(ks_find_id(s, v[i].id), e);
	}
	for (size_t i = N; i < 2 * N; i++) {
		make_entry(i, &absent);
		assert_null(ks_lookup(s, absent.digest));
		assert_null(ks_find_id(s, absent.id));
	}
	assert_null(ks_find_id(s, "K0000000000"));       /* prefix of a real id */
	assert_null(ks_find_id(s, "K000000000000"));     /* longer than any id */
	assert_null(ks_find_id(s, NULL));
	ks_set_unref(s);
	free(v);
}

static void
test_build_rejects_duplicates(void **state)
{
	struct ks_entry *v = make_entries(3);
	char err[256] = "";

	(void)state;
	memcpy(v[2].digest, v[0].digest, KEY_DIGEST_LEN);
	assert_null(ks_set_build(v, 3, err, sizeof(err)));
	assert_non_null(strstr(err, "entry 2: keys K00000000000 and K00000000002 have the same digest"));
	make_entry(2, &v[2]);
	strcpy(v[2].id, v[1].id);
	assert_null(ks_set_build(v, 3, err, sizeof(err)));
	assert_non_null(strstr(err, "entry 2: duplicate key id K00000000001"));
	free(v);
}

struct ref_arg {
	struct ks_set *s;
	const uint8_t *digest;
	int found;
};

static void *
ref_worker(void *p)
{
	struct ref_arg *a = p;

	for (int i = 0; i < 100000; i++) {
		struct ks_set *s = ks_set_ref(a->s);
		if (ks_lookup(s, a->digest) != NULL)
			a->found++;
		ks_set_unref(s);
	}
	ks_set_unref(a->s);                 /* the reference main() took for us */
	return NULL;
}

/* Four threads take and drop references while main drops its own: the set
 * survives as long as any holds one (ASan turns a premature free into a
 * failure) and the last unref frees it (LeakSanitizer turns a missed free
 * into one). */
static void
test_refcount_across_threads(void **state)
{
	struct ks_entry *v = make_entries(10);
	struct ref_arg a[4];
	pthread_t t[4];
	struct ks_set *s;
	char err[256] = "";

	(void)state;
	s = ks_set_build(v, 10, err, sizeof(err));
	assert_non_null(s);
	for (int i = 0; i < 4; i++) {
		a[i].s = ks_set_ref(s);
		a[i].digest = v[i].digest;
		a[i].found = 0;
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, ref_worker, &a[i]), 0);
	ks_set_unref(s);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].found, 100000);
	}
	ks_set_unref(NULL);
	assert_ptr_equal(ks_set_ref(NULL), NULL);
	free(v);
}

static void
test_empty_set_and_null_queries(void **state)
{
	struct ks_set *s = ks_set_empty();
	struct ks_entry e;

	(void)state;
	make_entry(0, &e);
	assert_non_null(s);
	assert_int_equal(ks_count(s), 0);
	assert_int_equal(ks_generation(s), 0);
	assert_null(ks_lookup(s, e.digest));
	assert_null(ks_lookup(NULL, e.digest));
	assert_null(ks_find_id(NULL, e.id));
	assert_int_equal(ks_count(NULL), 0);
	ks_set_unref(s);
}

/* ---- issue 20: routes, alias, tags, rotation links ---------------------- */

/* The new fields survive a write and a load; an entry without them is
 * written exactly as before (no new field names in the file), so today's
 * single-route records and files keep loading both ways. */
static void
test_new_fields_round_trip_and_old_records_load(void **state)
{
	struct fx *f = *state;
	struct ks_entry v[2];
	struct ks_set *s;
	const struct ks_entry *e;
	const char *val;
	size_t vl;
	char err[256] = "";

	make_entry(1, &v[0]);
	make_entry(2, &v[1]);
	v[0].route = "openai";
	v[0].routes = "openai,mistral-large,proxy_1";
	v[0].alias = "ann.main@prod";
	v[0].tags = "team=ml,env=prod,empty=";
	strcpy(v[0].rotated_from, "R00000000001");
	strcpy(v[1].rotated_to, "R00000000002");
	assert_int_equal(ks_file_write(f->path, v, 2, err, sizeof(err)), 0);
	s = ks_set_load(f->path, NULL, err, sizeof(err));
	assert_non_null(s);
	e = ks_entry_at(s, 0);
	assert_string_equal(e->route, "openai");
	assert_string_equal(ks_entry_routes(e), "openai,mistral-large,proxy_1");
	assert_true(ks_entry_has_route(e, "proxy_1", 7));
	assert_true(ks_entry_has_route(e, "mistral-large", 13));
	assert_false(ks_entry_has_route(e, "mistral", 7));
	assert_false(ks_entry_has_route(e, "openai,mistral-large", 20));
	assert_string_equal(e->alias, "ann.main@prod");
	assert_true(ks_entry_tag(e, "env", &val, &vl));
	assert_int_equal(vl, 4);
	assert_memory_equal(val, "prod", 4);
	assert_true(ks_entry_tag(e, "empty", &val, &vl));
	assert_int_equal(vl, 0);
	assert_false(ks_entry_tag(e, "en", &val, &vl));
	assert_string_equal(e->rotated_from, "R00000000001");
	assert_string_equal(e->rotated_to, "");
	e = ks_entry_at(s, 1);
	assert_string_equal(ks_entry_routes(e), e->route);
	assert_string_equal(e->alias, "");
	assert_string_equal(e->tags, "");
	assert_string_equal(e->rotated_to, "R00000000002");
	ks_set_unref(s);

	/* A store without the new fields has none of their names. */
	v[1].rotated_to[0] = '\0';
	assert_int_equal(ks_file_write(f->path, &v[1], 1, err, sizeof(err)), 0);
	{
		FILE *fp = fopen(f->path, "rb");
		char buf[4096];
		size_t n;

		assert_non_null(fp);
		n = fread(buf, 1, sizeof(buf), fp);
		fclose(fp);
		assert_null(memmem(buf, n, "routes", 6));
		assert_null(memmem(buf, n, "alias", 5));
		assert_null(memmem(buf, n, "tags", 4));
		assert_null(memmem(buf, n, "rotated", 7));
	}
}

/* A hand-packed single-route record as keyauthctl wrote it before issue 20. */
static void
pack_old_record(msgpack_packer *pk, const char *extra, int extra_kind)
{
	uint8_t d[KEY_DIGEST_LEN];

	memset(d, 7, sizeof(d));
	msgpack_pack_map(pk, 3);
	msgpack_pack_str_with_body(pk, "version", 7);
	msgpack_pack_uint32(pk, 1);
	msgpack_pack_str_with_body(pk, "generation", 10);
	msgpack_pack_uint32(pk, 3);
	msgpack_pack_str_with_body(pk, "keys", 4);
	msgpack_pack_array(pk, 1);
	msgpack_pack_map(pk, 8 + (extra != NULL));
	msgpack_pack_str_with_body(pk, "id", 2);
	msgpack_pack_str_with_body(pk, "OLD000000001", 12);
	msgpack_pack_str_with_body(pk, "digest", 6);
	msgpack_pack_bin_with_body(pk, d, sizeof(d));
	msgpack_pack_str_with_body(pk, "route", 5);
	msgpack_pack_str_with_body(pk, "openai", 6);
	msgpack_pack_str_with_body(pk, "owner", 5);
	msgpack_pack_str_with_body(pk, "x", 1);
	msgpack_pack_str_with_body(pk, "created", 7);
	msgpack_pack_uint32(pk, 1);
	msgpack_pack_str_with_body(pk, "expires", 7);
	msgpack_pack_uint32(pk, 0);
	msgpack_pack_str_with_body(pk, "revoked", 7);
	msgpack_pack_uint32(pk, 0);
	msgpack_pack_str_with_body(pk, "rpm", 3);
	msgpack_pack_uint32(pk, 0);
	if (extra == NULL)
		return;
	if (extra_kind == 0) {            /* "routes": [extra as one or two names] */
		const char *comma = strchr(extra, ',');

		msgpack_pack_str_with_body(pk, "routes", 6);
		msgpack_pack_array(pk, comma ? 2 : 1);
		msgpack_pack_str_with_body(pk, extra, comma ? (size_t)(comma - extra) : strlen(extra));
		if (comma)
			msgpack_pack_str_with_body(pk, comma + 1, strlen(comma + 1));
	} else {                          /* "tags": { extra: "v" } */
		msgpack_pack_str_with_body(pk, "tags", 4);
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, extra, strlen(extra));
		msgpack_pack_str_with_body(pk, "v", 1);
	}
}

static void
test_old_records_load_and_bad_new_fields_are_refused(void **state)
{
	static const struct { const char *extra; int kind; bool good; } cases[] = {
		{ NULL, 0, true },                      /* today's record */
		{ "openai,mistral", 0, true },
		{ "mistral,openai", 0, false },         /* first must be "route" */
		{ "openai,openai", 0, false },          /* duplicate */
		{ "openai,a b", 0, false },
		{ "team", 1, true },
		{ "Team", 1, false },
		{ "a=b", 1, false },
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msgpack_sbuffer sb;
		msgpack_packer pk;
		struct ks_set *s;

		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_old_record(&pk, cases[i].extra, cases[i].kind);
		s = ks_set_parse(sb.data, sb.size, err, sizeof(err));
		if (cases[i].good) {
			assert_non_null(s);
			assert_true(ks_entry_has_route(ks_entry_at(s, 0), "openai", 6));
		} else {
			assert_null(s);
		}
		ks_set_unref(s);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* ks_entry_check: the field rules of the new fields. */
static void
test_entry_check_new_fields(void **state)
{
	struct ks_entry e;
	char err[256], many[KS_ROUTES_STR_MAX + 1], tags[KS_TAGS_STR_MAX + 1];
	size_t u = 0;

	(void)state;
	make_entry(0, &e);
	e.route = "r0";
	for (int i = 0; i < KS_ROUTES_MAX; i++)
		u += (size_t)snprintf(many + u, sizeof(many) - u, "%sr%d", i ? "," : "", i);
	e.routes = many;
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), 0);
	snprintf(many + u, sizeof(many) - u, ",r99");
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);      /* 17 routes */
	e.routes = NULL;
	u = 0;
	for (int i = 0; i < KS_TAGS_MAX; i++)
		u += (size_t)snprintf(tags + u, sizeof(tags) - u, "%st%d=v", i ? "," : "", i);
	e.tags = tags;
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), 0);
	snprintf(tags + u, sizeof(tags) - u, ",t99=v");
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);      /* 17 tags */
	e.tags = "a=1,a=2";
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);
	e.tags = "a";
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);
	e.tags = NULL;
	e.alias = "no space";
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);
	e.alias = "ok-alias_1.2@x";
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), 0);
	strcpy(e.rotated_to, "short");
	assert_int_equal(ks_entry_check(&e, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_write_then_load_round_trips_every_field),
		T(test_new_fields_round_trip_and_old_records_load),
		T(test_old_records_load_and_bad_new_fields_are_refused),
		T(test_entry_check_new_fields),
		T(test_missing_file_is_an_empty_set),
		T(test_good_crafted_files_load_whatever_the_field_order),
		T(test_each_validation_rule_rejects_the_file),
		T(test_truncation_at_every_offset_is_rejected),
		T(test_trailing_bytes_are_rejected),
		T(test_garbage_is_rejected),
		T(test_directory_and_oversized_file_are_rejected),
		T(test_unreadable_file_is_an_error),
		T(test_writer_refuses_what_would_not_load_and_keeps_old_file),
		T(test_writer_reports_unwritable_directory),
		T(test_lock_is_exclusive_until_unlocked),
		T(test_lookup_with_100k_keys),
#undef T
		cmocka_unit_test(test_parse_from_memory_and_bit_flips),
		cmocka_unit_test(test_build_rejects_duplicates),
		cmocka_unit_test(test_refcount_across_threads),
		cmocka_unit_test(test_empty_set_and_null_queries),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
