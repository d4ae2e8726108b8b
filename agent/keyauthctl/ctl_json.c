/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_json: keyauthctl's JSON, written and read with jansson.
 *
 * Commands build a json_t and print it with ctl_json_print (compact, keys
 * in the order they were set, one line); `keyauthctl stats` reads the
 * agent's answer with ctl_json_print_flat. Every buffer jansson frees is
 * wiped first: the answers of key create and key rotate hold a new key.
 * Single-threaded CLI code.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define FLAT_NAME_MAX 512        /* "a.b.c" in ctl_json_print_flat */

static void
wipe_free(void *p)
{
	if (p == NULL)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

void
ctl_json_init(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

json_t *
ctl_json_text(const char *s)
{
	json_t *v;
	char *fixed;
	size_t j = 0;

	if (s == NULL)
		return json_null();
	v = json_string(s);
	if (v != NULL)
		return v;
	/* Not UTF-8 (a path, say): every byte above 0x7f becomes U+FFFD. */
	fixed = malloc(strlen(s) * 3 + 1);
	if (fixed == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x80) {
			fixed[j++] = (char)*p;
		} else {
			memcpy(fixed + j, "\xef\xbf\xbd", 3);
			j += 3;
		}
	}
	fixed[j] = '\0';
	v = json_string(fixed);
	free(fixed);
	return v;
}

json_t *
ctl_json_time(int64_t t, bool zero_null)
{
	char buf[32];

	if (zero_null && t == 0)
		return json_null();
	ctl_fmt_time(t, buf, sizeof(buf));
	return json_string(buf);
}

int
ctl_json_print(const struct ctl_ctx *ctx, json_t *v)
{
	int r;

	if (v == NULL) {
		ctl_err(ctx, "out of memory");
		return CTL_EXIT_FAIL;
	}
	r = json_dumpf(v, stdout, JSON_COMPACT);
	json_decref(v);
	/* A write error is also caught by main's fflush. */
	if (r == -1 || fputc('\n', stdout) == EOF)
		return CTL_EXIT_FAIL;
	return CTL_EXIT_OK;
}

/* ---- reading: "a.b.c value" lines ---------------------------------------------- */

/* The shortest decimal that reads back as <d>, with ".0" when it would
 * look like an integer ("12.3", "0.0"). */
static void
real_str(double d, char *buf, size_t len)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".eEn") == NULL && strlen(buf) + 2 < len)
		strcat(buf, ".0");
}

static void
flat_scalar(const json_t *v, const char *name)
{
	char num[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		printf("%s %s\n", name, json_string_value(v));
		break;
	case JSON_INTEGER:
		printf("%s %" JSON_INTEGER_FORMAT "\n", name, json_integer_value(v));
		break;
	case JSON_REAL:
		real_str(json_real_value(v), num, sizeof(num));
		printf("%s %s\n", name, num);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_NULL:
		printf("%s %s\n", name, json_is_true(v) ? "true" : json_is_false(v) ? "false" : "null");
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
	default:
		break;
	}
}

static int flat(const json_t *v, char *name, size_t len);

/* <m>, the member <key> of the value named name[0..len). */
static int
flat_member(const json_t *m, const char *key, char *name, size_t len)
{
	size_t n = strlen(key), at = len + (len > 0);
	int rc;

	if (at + n + 1 > FLAT_NAME_MAX)
		return -1;
	if (len > 0)
		name[len] = '.';
	memcpy(name + at, key, n + 1);
	rc = flat(m, name, at + n);
	name[len] = '\0';
	return rc;
}

static int
flat(const json_t *v, char *name, size_t len)
{
	const char *key;
	json_t *m;
	size_t i;
	char idx[24];

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, m)
			if (flat_member(m, key, name, len) == -1)
				return -1;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, m) {
			snprintf(idx, sizeof(idx), "%zu", i);
			if (flat_member(m, idx, name, len) == -1)
				return -1;
		}
	} else {
		flat_scalar(v, name);
	}
	return 0;
}

int
ctl_json_print_flat(const char *text)
{
	char name[FLAT_NAME_MAX] = "";
	json_t *root = json_loads(text, 0, NULL);
	int rc = -1;

	if (root != NULL && json_is_object(root))
		rc = flat(root, name, 0);
	json_decref(root);
	return rc;
}
