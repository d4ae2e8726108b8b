/* SPDX-License-Identifier: Apache-2.0 */
/*
 * startup: keyauthd's one-time start-up steps (startup.c). Main thread.
 */
#ifndef AGENT_STARTUP_H
#define AGENT_STARTUP_H

struct conf;

/* What allow_plain_tcp = true; costs, for -t and the start's log. */
#define PLAIN_TCP_RISK \
	"any local user who can bind that port while keyauthd is away (restarting, " \
	"stopped, not started yet) can impersonate it: receive every client key and let " \
	"every request in. Prefer a unix socket on the same host, or tls: with HAProxy " \
	"verifying the agent's certificate across hosts"

/* keyauthd -t: "configuration OK" on stdout or every error on stderr;
 * warns about plain TCP listeners and keys that never expire. Returns the
 * exit status. */
int startup_check_config(struct conf *c, const char *path);

/* setgroups(0), setgid, setuid to <user>. 0, or -1 (logged). */
int startup_drop_privileges(const char *user);

/* <path> with the pid and a newline, mode 0644. 0, or -1 (logged). */
int startup_write_pid_file(const char *path);

#endif /* AGENT_STARTUP_H */
