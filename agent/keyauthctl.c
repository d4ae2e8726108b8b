/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyauthctl: the operator's tool for keyauth.
 *
 * main() reads the global options, picks the command from a table (exact
 * name or unique prefix) and hands it the rest of the command line. The
 * commands live in ctl_*.c. Exit status: 0 ok, 1 failure, 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"

static const struct ctl_cmd commands[] = {
	{ "key",     ctl_key_main,     "create, list, revoke, rotate, import and verify API keys" },
	{ "haproxy", ctl_haproxy_main, "render the HAProxy SPOE file and haproxy.cfg" },
	{ "deploy",  ctl_deploy_main,  "validate, render, install, reload agents and HAProxy" },
	{ "stats",   ctl_stats_main,       "the running agent's counters" },
};

static void
usage(FILE *f)
{
	fputs("usage: keyauthctl [-c FILE] COMMAND [options]\n"
	      "\ncommands:\n", f);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "  -c FILE   keyauth configuration (default $KEYAUTH_CONF, else " CONF_DEFAULT_PATH ")\n"
	      "\n"
	      "'keyauthctl COMMAND --help' shows a command's options and an example.\n"
	      "Exit status: 0 ok, 1 failure, 2 usage error.\n"
	      "\n"
	      "examples:\n"
	      "  KEY=$(keyauthctl key create --route openai --owner alice)\n"
	      "  keyauthctl key list --all\n"
	      "  keyauthctl deploy --reload-haproxy 'systemctl reload haproxy'\n", f);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		CTL_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 }
	};
	struct ctl_ctx ctx = { .prog = "keyauthctl" };
	const struct ctl_cmd *cmd;
	const char *env = getenv("KEYAUTH_CONF");
	char prog[64];
	bool ambiguous;
	int opt, rc, first;

	ctx.conf_path = env != NULL && *env != '\0' ? env : CONF_DEFAULT_PATH;
	/* '+': stop at the command word; its options are its own. */
	while ((opt = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			usage(stdout);
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
	cmd = ctl_cmd_lookup(commands, sizeof(commands) / sizeof(commands[0]), argv[optind],
	                     &ambiguous);
	if (cmd == NULL) {
		fprintf(stderr, "keyauthctl: %s command '%s'\n", ambiguous ? "ambiguous" : "unknown",
		        argv[optind]);
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	snprintf(prog, sizeof(prog), "keyauthctl %s", cmd->name);
	ctx.prog = prog;
	first = optind;
	argv[first] = prog;
	ctl_getopt_reset();
	rc = cmd->run(&ctx, argc - first, argv + first);
	if (fflush(stdout) == EOF && rc == CTL_EXIT_OK)
		rc = CTL_EXIT_FAIL;
	return rc;
}
