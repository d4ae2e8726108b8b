/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conf_scan: the second, lexical read of the main configuration file that
 * finds integer literals libconfig wrapped around (see below); conf.c asks
 * conf_int_wrapped() for each integer setting it walks.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

/* ---- integers libconfig wraps around --------------------------------- */

/*
 * WHY: libconfig 1.5 reads an integer without the "L" suffix with strtol and
 * keeps the low 32 bits, silently: "max_frame_size = 4294967552;" loads as
 * 256 and "idle_timeout = 4294967356;" as 60. The parsed tree cannot tell,
 * so the main file is scanned once more, lexically (comments, strings and
 * names skipped), for decimal or hex integer literals outside the int32
 * range. An "L" suffix makes libconfig read 64 bits, which the range checks
 * then judge correctly. Files pulled in with @include are not scanned.
 */

/* The scan's position: <ch> is the character to judge next, <prev> the one
 * before it as far as the scan cares ('a' after a name, 0 after a comment
 * or a number). */
struct conf_scan {
	FILE *f;
	unsigned line;
	int ch;
	int prev;
};

/* One integer literal as read: its text (cut at 31 characters) and value. */
struct conf_lit {
	char text[32];
	size_t n;
	unsigned long long v;
	bool hex;
	bool big;                      /* too large to hold: out of range */
};

static bool conf_scan_alpha(int ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

static bool conf_scan_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

static bool conf_scan_name_char(int ch)
{
	return conf_scan_alpha(ch) || conf_scan_digit(ch) || ch == '_' || ch == '-' || ch == '*';
}

/* What may follow a number's digits: a float's fraction or exponent, "L". */
static bool conf_scan_number_tail(int ch)
{
	return conf_scan_digit(ch) || ch == '.' || ch == 'e' || ch == 'E' ||
	       ch == 'L' || ch == '+' || ch == '-';
}

static void conf_scan_advance(struct conf_scan *sc)
{
	sc->prev = sc->ch;
	sc->ch = getc(sc->f);
}

/* "# ..." or "// ...": stops on the newline, which is counted next. */
static void conf_scan_line_comment(struct conf_scan *sc)
{
	while ((sc->ch = getc(sc->f)) != EOF && sc->ch != '\n')
		;
}

/* After the opening slash-star: through the closing star-slash. */
static void conf_scan_block_comment(struct conf_scan *sc)
{
	int last = 0;

	while ((sc->ch = getc(sc->f)) != EOF) {
		sc->line += sc->ch == '\n';
		if (sc->ch == '/' && last == '*')
			break;
		last = sc->ch;
	}
	sc->prev = 0;
	sc->ch = getc(sc->f);
}

/* After the opening quote: through the closing one, escapes skipped. */
static void conf_scan_string(struct conf_scan *sc)
{
	while ((sc->ch = getc(sc->f)) != EOF && sc->ch != '"') {
		sc->line += sc->ch == '\n';
		if (sc->ch == '\\' && (sc->ch = getc(sc->f)) == '\n')
			sc->line++;
	}
	conf_scan_advance(sc);
}

/* A name, which may hold digits: "r1", "key_v2". */
static void conf_scan_name(struct conf_scan *sc)
{
	while ((sc->ch = getc(sc->f)) != EOF && conf_scan_name_char(sc->ch))
		;
	sc->prev = 'a';
}

/* The value of a hex digit, or 16 for anything else. */
static int conf_scan_hex_value(int ch)
{
	if (conf_scan_digit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return 16;
}

/* Adds <ch> to literal <l>. Returns false when <ch> is not part of it. */
static bool conf_lit_take(struct conf_lit *l, int ch)
{
	int d = conf_scan_hex_value(ch);

	if (l->n == 1 && l->text[0] == '0' && (ch == 'x' || ch == 'X'))
		l->hex = true;
	else if (d >= (l->hex ? 16 : 10))
		return false;
	else if (l->v > (1ull << 40))
		l->big = true;          /* stop before unsigned overflow */
	else
		l->v = l->v * (l->hex ? 16u : 10u) + (unsigned)d;
	if (l->n + 1 < sizeof(l->text))
		l->text[l->n++] = (char)ch;
	return true;
}

/* True when literal <l>, negative if <neg> and followed by <next>, is an
 * integer libconfig would wrap around. "L" (64 bits) and floats ("1.5",
 * "1e3") are read right. */
static bool conf_lit_wraps(const struct conf_lit *l, bool neg, int next)
{
	if (next == 'L' || next == '.' || next == 'e' || next == 'E')
		return false;
	return l->big || l->v > (neg ? 2147483648ull : 2147483647ull);
}

static void conf_report_wrapped(struct conf_ctx *x, unsigned line, bool neg, const char *lit)
{
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "integer %s%s is out of range for every setting (libconfig would silently wrap it around; use a value within the setting's range)",
		 neg ? "-" : "", lit);
	conf_err_line(x, NULL, line, msg);
	if (x->nwrapped < COUNTOF(x->wrapped_lines))
		x->wrapped_lines[x->nwrapped++] = line;
}

/* A number, from its first digit through any float part or suffix. */
static void conf_scan_number(struct conf_ctx *x, struct conf_scan *sc)
{
	struct conf_lit l = { .n = 0 };
	bool neg = sc->prev == '-';

	while (conf_lit_take(&l, sc->ch))
		sc->ch = getc(sc->f);
	l.text[l.n] = '\0';
	if (conf_lit_wraps(&l, neg, sc->ch))
		conf_report_wrapped(x, sc->line, neg, l.text);
	while (sc->ch != EOF && conf_scan_number_tail(sc->ch))
		sc->ch = getc(sc->f);
	sc->prev = 0;
}

/* Judges sc->ch and moves past what it starts. */
static void conf_scan_step(struct conf_ctx *x, struct conf_scan *sc)
{
	int ch = sc->ch;

	if (ch == '#' || (ch == '/' && sc->prev == '/'))
		conf_scan_line_comment(sc);
	else if (ch == '*' && sc->prev == '/')
		conf_scan_block_comment(sc);
	else if (ch == '"')
		conf_scan_string(sc);
	else if (conf_scan_alpha(ch) || ch == '_' || ch == '*')
		conf_scan_name(sc);
	else if (conf_scan_digit(ch))
		conf_scan_number(x, sc);
	else {
		sc->line += ch == '\n';
		conf_scan_advance(sc);
	}
}

void conf_scan_wrapped_ints(struct conf_ctx *x)
{
	struct conf_scan sc = { .f = fopen(x->path, "r"), .line = 1 };

	if (!sc.f)
		return;           /* libconfig just read it; nothing to add */
	sc.ch = getc(sc.f);
	while (sc.ch != EOF)
		conf_scan_step(x, &sc);
	fclose(sc.f);
}

bool conf_int_wrapped(const struct conf_ctx *x, const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	if (config_setting_type(s) != CONFIG_TYPE_INT || (file && strcmp(file, x->path) != 0))
		return false;
	for (unsigned i = 0; i < x->nwrapped; i++) {
		if (x->wrapped_lines[i] == config_setting_source_line(s))
			return true;
	}
	return false;
}
