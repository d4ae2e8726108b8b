/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testutil: hex specs and guard pages for unit tests (see testutil.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "testutil.h"

static void tu_die(const char *what, const char *spec)
{
	fprintf(stderr, "testutil: %s in spec \"%s\"\n", what, spec);
	abort();
}

static int tu_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t tu_hex(uint8_t *out, size_t cap, const char *spec)
{
	const char *s = spec;
	size_t n = 0;

	while (*s) {
		int hi, lo;

		if (*s == ' ' || *s == '\t' || *s == '\n') {
			s++;
			continue;
		}
		if (*s == '\'' || *s == '"') {
			char q = *s++;

			while (*s && *s != q) {
				if (n >= cap)
					tu_die("output too small", spec);
				out[n++] = (uint8_t)*s++;
			}
			if (!*s)
				tu_die("unterminated quote", spec);
			s++;
			continue;
		}
		hi = tu_nibble(s[0]);
		lo = s[1] ? tu_nibble(s[1]) : -1;
		if (hi < 0 || lo < 0)
			tu_die("bad hex digit", spec);
		if (n >= cap)
			tu_die("output too small", spec);
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	return n;
}

void tu_guard_init(struct tu_guard *g, size_t max_len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (max_len + page - 1) / page;
	void *m;

	if (pages == 0)
		pages = 1;
	g->size = pages * page;
	g->map_len = g->size + page;
	m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("testutil: mmap");
		abort();
	}
	g->base = m;
	if (mprotect(g->base + g->size, page, PROT_NONE) == -1) {
		perror("testutil: mprotect");
		abort();
	}
}

void tu_guard_free(struct tu_guard *g)
{
	if (g->base)
		munmap(g->base, g->map_len);
	g->base = NULL;
}

uint8_t *tu_guard_room(struct tu_guard *g, size_t len)
{
	uint8_t *p;

	if (len > g->size) {
		fprintf(stderr, "testutil: %zu bytes do not fit a %zu-byte guard area\n",
		        len, g->size);
		abort();
	}
	p = g->base + g->size - len;
	memset(p, 0xA5, len);
	return p;
}

uint8_t *tu_guard_place(struct tu_guard *g, const void *data, size_t len)
{
	uint8_t *p = tu_guard_room(g, len);

	if (len)
		memcpy(p, data, len);
	return p;
}
