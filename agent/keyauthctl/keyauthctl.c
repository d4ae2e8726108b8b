/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyauthctl: the operator's tool for keyauth.
 *
 * main() reads the global options, picks the command from the table by its
 * words (each exact or a unique prefix: "key create", "k cr") and has
 * ctl_cmd_run parse the rest of the command line and run it. The commands
 * live in ctl_*.c. Exit status: 0 ok, 1 failure, 2 usage error, 3 not
 * found, 4 precondition failed, 5 conflict with the key's state (ctl.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"
#include "version.h"

/* Every command, in the order 'keyauthctl --help' lists them. */
static const struct ctl_cmd *const commands[] = {
	&ctl_cmd_key_create, &ctl_cmd_key_list, &ctl_cmd_key_revoke, &ctl_cmd_key_rotate,
	&ctl_cmd_key_import, &ctl_cmd_key_verify, &ctl_cmd_key_set, &ctl_cmd_key_purge,
	&ctl_cmd_key_show,
	&ctl_cmd_route_list, &ctl_cmd_route_show, &ctl_cmd_route_set,
	&ctl_cmd_haproxy, &ctl_cmd_deploy, &ctl_cmd_stats, &ctl_cmd_audit,
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	fputs("usage: keyauthctl [-c FILE] COMMAND [options]\n"
	      "       keyauthctl --help | --version\n"
	      "\ncommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-11s %s\n", commands[i]->name, commands[i]->summary);
	fputs("\n"
	      "  -c, --config FILE  keyauth configuration (default $KEYAUTH_CONF, else\n"
	      "                     " CONF_DEFAULT_PATH ")\n"
	      "  -h, --help         this help\n"
	      "  -V, --version      print the version\n"
	      "\n"
	      "'keyauthctl COMMAND --help' shows a command's options and an example.\n"
	      "Exit status: 0 ok, 1 failure, 2 usage error, 3 not found (an unknown key id\n"
	      "or route), 4 precondition failed (a stale --if-match or --if-preview),\n"
	      "5 conflict with the key's state (rotating a revoked or already rotated key,\n"
	      "importing a key the store holds).\n"
	      "\n"
	      "examples:\n"
	      "  KEY=$(keyauthctl key create --route openai --owner alice)\n"
	      "  keyauthctl key list --all\n"
	      "  keyauthctl deploy --reload-haproxy 'systemctl reload haproxy'\n", f);
}

/* 'keyauthctl key --help' ("key" is the only group). */
static void
group_usage(FILE *f, const char *group)
{
	size_t gl = strlen(group);

	fprintf(f, "usage: keyauthctl [-c FILE] %s COMMAND [options]\n\ncommands:\n", group);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		const char *name = commands[i]->name;

		if (strncmp(name, group, gl) == 0 && name[gl] == ' ')
			fprintf(f, "  %-8s %s\n", name + gl + 1, commands[i]->summary);
	}
	fprintf(f, "\n'keyauthctl %s COMMAND --help' shows a command's options and an example.\n"
	        "\nexample:\n  %s\n", group, strcmp(group, "route") == 0 ?
	        "keyauthctl route set openai --key-name X-Custom-Key" :
	        "KEY=$(keyauthctl key create --route openai --owner alice)");
}

/* The command of <group> named by argv[1] (argv[0] is the group's word), or
 * NULL with the exit code in *rc. */
static const struct ctl_cmd *
group_pick(struct ctl_ctx *ctx, const char *group, int argc, char **argv, int *rc)
{
	const struct ctl_cmd *cmd;
	bool ambiguous;

	*rc = CTL_EXIT_USAGE;
	if (argc < 2) {
		group_usage(stderr, group);
		return NULL;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		group_usage(stdout, group);
		*rc = CTL_EXIT_OK;
		return NULL;
	}
	cmd = ctl_cmd_find(commands, NCOMMANDS, group, argv[1], &ambiguous);
	if (cmd == NULL) {
		fprintf(stderr, "%s: %s %s command '%s'\n", ctx->prog,
		        ambiguous ? "ambiguous" : "unknown", group, argv[1]);
		group_usage(stderr, group);
	}
	return cmd;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		CTL_COMMON_LONGOPTS,
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl_ctx ctx = { .prog = "keyauthctl" };
	const struct ctl_cmd *cmd;
	const char *env = getenv("KEYAUTH_CONF"), *group;
	char prog[64], gbuf[32], **argv_copy;
	bool ambiguous;
	int opt, rc, first;

	ctl_json_init();
	ctx.conf_path = env != NULL && *env != '\0' ? env : CONF_DEFAULT_PATH;
	/* '+': stop at the command word; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("keyauthctl %s\n", KEYAUTH_VERSION);
			return CTL_EXIT_OK;
		case '?':
			usage(stderr);
			return CTL_EXIT_USAGE;
		default:
			rc = ctl_common_opt(&ctx, opt, optarg);
			if (rc != 0)
				return rc;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	cmd = ctl_cmd_find(commands, NCOMMANDS, NULL, argv[optind], &ambiguous);
	if (cmd == NULL) {
		fprintf(stderr, "keyauthctl: %s command '%s'\n", ambiguous ? "ambiguous" : "unknown",
		        argv[optind]);
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	first = optind;
	/* A copy: argv[first] is replaced below, for getopt's messages. */
	argv_copy = calloc((size_t)argc + 1, sizeof(*argv_copy));
	if (argv_copy == NULL) {
		fprintf(stderr, "keyauthctl: out of memory\n");
		return CTL_EXIT_FAIL;
	}
	memcpy(argv_copy, argv, (size_t)argc * sizeof(*argv_copy));
	ctx.argc = argc;
	ctx.argv = argv_copy;
	group = ctl_cmd_group(cmd, gbuf, sizeof(gbuf));
	if (group != NULL) {
		snprintf(prog, sizeof(prog), "keyauthctl %s", group);
		ctx.prog = prog;
		cmd = group_pick(&ctx, group, argc - first, argv + first, &rc);
		if (cmd == NULL) {
			free(argv_copy);
			return rc;
		}
		first++;
	}
	snprintf(prog, sizeof(prog), "keyauthctl %s", cmd->name);
	ctx.prog = prog;
	/* getopt names the command in its messages. */
	argv[first] = prog;
	rc = ctl_cmd_run(&ctx, cmd, argc - first, argv + first);
	if (fflush(stdout) == EOF && rc == CTL_EXIT_OK)
		rc = CTL_EXIT_FAIL;
	free(argv_copy);
	return rc;
}
