/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil: small helpers shared by the cmocka programs.
 *
 * - tu_hex() turns a readable byte spec into bytes, so golden vectors can be
 *   written grouped by field, as in HAProxy's spop-check.vtc:
 *       "00000036 65 00000001 00 00 07'version' 08 03'2.0'"
 *   Hex digit pairs, whitespace ignored, and '...' or "..." copied verbatim.
 * - tu_guard places bytes so that they end exactly at a PROT_NONE page: any
 *   read or write one byte past them faults, with or without ASan.
 * Both abort the program on misuse: they are for tests only.
 */
#ifndef TESTS_LIB_TESTUTIL_H
#define TESTS_LIB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Decodes <spec> into <out> (at most <cap> bytes). Returns the byte count;
 * aborts on a malformed spec or when <cap> is too small. */
size_t tu_hex(uint8_t *out, size_t cap, const char *spec);

struct tu_guard {
	uint8_t *base;       /* start of the mapping */
	size_t size;         /* readable and writable bytes before the guard */
	size_t map_len;      /* whole mapping, guard page included */
};

/* Maps room for at least <max_len> bytes followed by one PROT_NONE page. */
void tu_guard_init(struct tu_guard *g, size_t max_len);
void tu_guard_free(struct tu_guard *g);

/* Copies <len> bytes of <data> (may be NULL when len is 0) so that their end
 * touches the guard page, and returns where they start. */
uint8_t *tu_guard_place(struct tu_guard *g, const void *data, size_t len);

/* Returns a writable area of <len> bytes ending at the guard page, filled
 * with 0xA5 so that untouched bytes can be checked. */
uint8_t *tu_guard_room(struct tu_guard *g, size_t len);

#endif /* TESTS_LIB_TESTUTIL_H */
