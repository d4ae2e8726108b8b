/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ctl_cmd: finding a keyauthctl command by its words and parsing its command
 * line, the same way for every command.
 *
 * A command's name is one word ("stats") or a group and a word ("key
 * create"); either word may be abbreviated to a unique prefix. The parser
 * gives every command the common options (-c/--config, --now, -h/--help)
 * and --json when it lists it, hands its own options to the command in
 * command-line order, then checks the operands. Single-threaded CLI code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "keyfmt.h"

#define CTL_MAX_LONGOPTS 16      /* a command's own options, with the common ones */

/* ---- finding a command ---------------------------------------------------------- */

/* The first word of <name> when <group> is NULL; else, when <name> is
 * "<group> WORD", WORD. NULL otherwise. The word's length goes to *len. */
static const char *
name_word(const char *name, const char *group, size_t *len)
{
	const char *sp = strchr(name, ' ');

	if (group == NULL) {
		*len = sp != NULL ? (size_t)(sp - name) : strlen(name);
		return name;
	}
	if (sp == NULL || (size_t)(sp - name) != strlen(group) ||
	    strncmp(name, group, strlen(group)) != 0)
		return NULL;
	*len = strlen(sp + 1);
	return sp + 1;
}

const struct ctl_cmd *
ctl_cmd_find(const struct ctl_cmd *const *tab, size_t n, const char *group, const char *word,
             bool *ambiguous)
{
	const struct ctl_cmd *hit = NULL;
	const char *hw = NULL;
	size_t len = strlen(word), hl = 0;

	*ambiguous = false;
	for (size_t i = 0; i < n; i++) {
		size_t wl;
		const char *w = name_word(tab[i]->name, group, &wl);

		if (w == NULL)
			continue;
		if (wl == len && strncmp(w, word, len) == 0)
			return tab[i];
		if (len == 0 || len > wl || strncmp(w, word, len) != 0)
			continue;
		/* The commands of a group share their first word: one match. */
		if (hit != NULL && (hl != wl || strncmp(hw, w, wl) != 0))
			*ambiguous = true;
		if (hit == NULL) {
			hit = tab[i];
			hw = w;
			hl = wl;
		}
	}
	return *ambiguous ? NULL : hit;
}

const char *
ctl_cmd_group(const struct ctl_cmd *cmd, char *buf, size_t len)
{
	const char *sp = strchr(cmd->name, ' ');

	if (sp == NULL)
		return NULL;
	snprintf(buf, len, "%.*s", (int)(sp - cmd->name), cmd->name);
	return buf;
}

/* ---- parsing a command line ------------------------------------------------------ */

/* <cmd>'s own options followed by the common ones, into <out>. */
static void
merge_longopts(const struct ctl_cmd *cmd, struct option *out)
{
	static const struct option common[] = { CTL_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	size_t n = 0;

	/* Room for the common ones and the terminator is kept. */
	for (const struct option *o = cmd->longopts;
	     o != NULL && o->name != NULL && n < CTL_MAX_LONGOPTS - 4; o++)
		out[n++] = *o;
	for (const struct option *o = common; ; o++) {
		out[n++] = *o;
		if (o->name == NULL)
			break;
	}
}

/* The options: -1 when the command is to run, else the exit code. */
static int
parse_options(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, struct ctl_args *a,
              int argc, char **argv)
{
	struct option longopts[CTL_MAX_LONGOPTS];
	int opt, rc;

	merge_longopts(cmd, longopts);
	/* glibc: 0 (not 1) also resets its internal state between argv's. */
	optind = 0;
	opterr = 1;
	while ((opt = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(cmd->help, stdout);
			return CTL_EXIT_OK;
		case '?':
			return ctl_usage_err(ctx, "bad option");
		case 'c':
		case CTL_OPT_NOW:
			rc = ctl_common_opt(ctx, opt, optarg);
			break;
		case 'j':
			a->json = true;
			rc = 0;
			break;
		default:
			rc = cmd->opt(ctx, a->opts, opt, optarg);
		}
		if (rc != 0)
			return rc;
	}
	return -1;
}

/* The operands after the options: 0, or CTL_EXIT_USAGE after saying why. */
static int
parse_operands(const struct ctl_ctx *ctx, const struct ctl_cmd *cmd, struct ctl_args *a,
               int argc, char **argv)
{
	switch (cmd->operand) {
	case CTL_OPERAND_STDIN:
		if (optind < argc)
			return ctl_usage_err(ctx, "unexpected argument: the key is read from stdin, "
			                     "never from the command line");
		return 0;
	case CTL_OPERAND_ID_OPT:
		if (optind >= argc)
			return 0;
		/* fall through */
	case CTL_OPERAND_ID:
		if (optind >= argc)
			return ctl_usage_err(ctx, "the key ID is required");
		if (optind + 1 < argc)
			return ctl_usage_err(ctx, "unexpected argument '%s'", argv[optind + 1]);
		a->id = argv[optind];
		if (strlen(a->id) != KEY_ID_LEN)
			return ctl_usage_err(ctx, "'%s' is not a key id (%d characters, as shown by "
			                     "'keyauthctl key list')", a->id, KEY_ID_LEN);
		return 0;
	case CTL_OPERAND_NAME:
		if (optind >= argc)
			return ctl_usage_err(ctx, "the route name is required");
		if (optind + 1 < argc)
			return ctl_usage_err(ctx, "unexpected argument '%s'", argv[optind + 1]);
		a->id = argv[optind];
		return 0;
	case CTL_OPERAND_NONE:
	default:
		if (optind < argc)
			return ctl_usage_err(ctx, "unexpected argument '%s'", argv[optind]);
		return 0;
	}
}

int
ctl_cmd_run(struct ctl_ctx *ctx, const struct ctl_cmd *cmd, int argc, char **argv)
{
	struct ctl_args a = { .json = false };
	int rc;

	if (cmd->opts_size > 0) {
		a.opts = calloc(1, cmd->opts_size);
		if (a.opts == NULL) {
			ctl_err(ctx, "out of memory");
			return CTL_EXIT_FAIL;
		}
		if (cmd->init != NULL)
			cmd->init(a.opts);
	}
	rc = parse_options(ctx, cmd, &a, argc, argv);
	if (rc == -1) {
		rc = parse_operands(ctx, cmd, &a, argc, argv);
		if (rc == 0)
			rc = cmd->run(ctx, &a);
	}
	if (a.opts != NULL) {
		explicit_bzero(a.opts, cmd->opts_size);
		free(a.opts);
	}
	return rc;
}
