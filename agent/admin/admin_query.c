/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin_query: the query parameters of GET /v1/keys and GET /v1/audit.
 *
 * Every other op takes none: a query parameter there is a 400, like an
 * unknown body field, so a client's typo is never silently ignored.
 * Durations are whole seconds (the CLI's "30d" spelling is keyauthctl's, the
 * API's is a number); dates are YYYY-MM-DD.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define AUDIT_LIMIT_DEFAULT 500u
#define AUDIT_LIMIT_MAX     10000u

static const char *const key_list_params[] = {
	"route", "owner", "tag", "all", "expiring_within", "unused_for", NULL
};
static const char *const audit_params[] = { "since", "key", "limit", NULL };
static const char *const no_params[] = { NULL };

static const char *const *
params_of(enum admin_op op)
{
	switch (op) {
	case ADMIN_OP_KEY_LIST:
		return key_list_params;
	case ADMIN_OP_AUDIT:
		return audit_params;
	default:
		return no_params;
	}
}

/* Decimal digits only, 1..<max_digits>. */
static bool
digits(const char *s, size_t max_digits)
{
	size_t n = strlen(s);

	return n > 0 && n <= max_digits && strspn(s, "0123456789") == n;
}

static bool
text(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

bool
admin_date_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 10)
		return false;
	for (i = 0; i < 10; i++)
		if ((i == 4 || i == 7) ? s[i] != '-' : !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool
key_id(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > ADMIN_PARAM_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]))
			return false;
	return true;
}

/* Is <v> a valid value of parameter <k>? */
static bool
value_ok(const char *k, const char *v)
{
	if (strcmp(k, "route") == 0 || strcmp(k, "owner") == 0)
		return text(v, 128);
	if (strcmp(k, "tag") == 0) {
		const char *eq = strchr(v, '=');

		return text(v, 100) && eq != NULL && eq != v && strchr(eq + 1, '=') == NULL &&
		       strchr(v, ',') == NULL;
	}
	if (strcmp(k, "all") == 0)
		return strcmp(v, "true") == 0 || strcmp(v, "false") == 0;
	if (strcmp(k, "expiring_within") == 0 || strcmp(k, "unused_for") == 0)
		return digits(v, 9);
	if (strcmp(k, "since") == 0)
		return digits(v, 10) || admin_date_ok(v);
	if (strcmp(k, "key") == 0)
		return key_id(v);
	if (strcmp(k, "limit") == 0)
		return digits(v, 5) && strtoul(v, NULL, 10) >= 1 && strtoul(v, NULL, 10) <= AUDIT_LIMIT_MAX;
	return false;
}

int
admin_query_check(const struct admin_in *in, struct admin_err *e)
{
	const char *const *names = params_of(in->route->op);
	size_t i, j;
	char q[80];

	for (i = 0; i < in->nquery; i++) {
		const char *k = in->query[i].k, *v = in->query[i].v ? in->query[i].v : "";
		const char *const *n;

		for (n = names; *n != NULL; n++)
			if (strcmp(*n, k) == 0)
				break;
		if (*n == NULL)
			return admin_err_set(e, 400, "unknown_parameter", "unknown query parameter \"%s\"",
			                     admin_safe(q, sizeof(q), k));
		if (!value_ok(k, v))
			return admin_err_set(e, 400, "invalid_parameter", "query parameter \"%s\": bad value", k);
		/* Only tag may repeat: a repeated other one is ambiguous. */
		for (j = 0; j < i && strcmp(k, "tag") != 0; j++)
			if (strcmp(in->query[j].k, k) == 0)
				return admin_err_set(e, 400, "invalid_parameter",
				                     "query parameter \"%s\": given twice", k);
	}
	return 0;
}

int
admin_query_args(const struct admin_in *in, struct admin_argv *a, struct admin_err *e)
{
	size_t i;

	for (i = 0; i < in->nquery; i++) {
		const char *k = in->query[i].k, *v = in->query[i].v ? in->query[i].v : "";
		char span[32];
		int r = 0;

		if (strcmp(k, "route") == 0)
			r = admin_argv_opt(a, "--route", v, strlen(v), e);
		else if (strcmp(k, "owner") == 0)
			r = admin_argv_opt(a, "--owner", v, strlen(v), e);
		else if (strcmp(k, "tag") == 0)
			r = admin_argv_opt(a, "--tag", v, strlen(v), e);
		else if (strcmp(k, "all") == 0 && strcmp(v, "true") == 0)
			r = admin_argv_word(a, "--all", e);
		else if (strcmp(k, "expiring_within") == 0 || strcmp(k, "unused_for") == 0 ||
		         (strcmp(k, "since") == 0 && !admin_date_ok(v))) {
			snprintf(span, sizeof(span), "%ss", v);
			r = admin_argv_opt(a, strcmp(k, "since") == 0 ? "--since" :
			                      strcmp(k, "unused_for") == 0 ? "--unused-for" : "--expiring-within",
			                   span, strlen(span), e);
		} else if (strcmp(k, "since") == 0)
			r = admin_argv_opt(a, "--since", v, strlen(v), e);
		else if (strcmp(k, "key") == 0)
			r = admin_argv_opt(a, "--key", v, strlen(v), e);
		if (r != 0)
			return -1;
	}
	return 0;
}

unsigned
admin_query_limit(const struct admin_in *in)
{
	size_t i;

	for (i = 0; i < in->nquery; i++)
		if (strcmp(in->query[i].k, "limit") == 0 && in->query[i].v != NULL)
			return (unsigned)strtoul(in->query[i].v, NULL, 10);
	return AUDIT_LIMIT_DEFAULT;
}
