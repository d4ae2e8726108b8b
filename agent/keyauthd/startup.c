/* SPDX-License-Identifier: Apache-2.0 */
/*
 * startup: what keyauthd does once at start, apart from the main loop:
 * `keyauthd -t` (the configuration, TLS files and key store loaded as a
 * start would), the switch to the configuration's user, the pid file.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "filetrust.h"
#include "keystore.h"
#include "log.h"
#include "startup.h"
#include "store.h"
#include "tls.h"

int
startup_drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		log_err("event=start_failed error=\"user not found\" user=%s", LOG_V(user));
		return -1;
	}
	if (setgroups(0, NULL) == -1 || setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
		log_err("event=start_failed error=%s user=%s", LOG_Q(strerror(errno)), LOG_V(user));
		return -1;
	}
	log_info("event=privileges_dropped user=%s uid=%u", LOG_V(user), (unsigned)pw->pw_uid);
	return 0;
}

int
startup_write_pid_file(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd == -1) {
		log_err("event=start_failed what=pid_file path=%s error=%s", LOG_V(path),
		    LOG_Q(strerror(errno)));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* keyauthd -t: the configuration, the TLS files and the key store, loaded as a
 * start would; "configuration OK" or every error. Returns the exit status. */
int
startup_check_config(struct conf *c, const char *path)
{
	char err[8192];
	SSL_CTX *probe = NULL;
	struct store *st;
	struct ks_set *ks = NULL;
	bool missing = false;

	if (tls_ctx_for_conf(c, &probe, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s\nkeyauthd: configuration %s rejected\n", err, path);
		return 1;
	}
	SSL_CTX_free(probe);
	for (unsigned i = 0; i < c->nlisten; i++)
		if (c->listen[i].family == LISTEN_TCP && !c->listen[i].tls)
			fprintf(stderr, "keyauthd: warning: listen \"%s\" is plain TCP "
			    "(allow_plain_tcp = true): " PLAIN_TCP_RISK ".\n", c->listen[i].addr);
	st = store_open(c, &store_role_agent, err, sizeof(err));
	/* A local file may be absent (an empty store): say so. */
	if (st != NULL && store_has(st, STORE_F_WATCH_FILE)) {
		struct ft_trust t;

		/* -t run by root for a service that runs as the packaged user
		 * (no `user` setting: systemd starts it as keyauth) trusts that
		 * user's files, as keyauthctl does. */
		ft_trust_for(&t, c->user != NULL ? c->user : geteuid() == 0 ? "keyauth" : NULL);
		ks = ks_set_load_stat(c->store_path, &missing, NULL, &t, err, sizeof(err));
	}
	else if (st != NULL)
		ks = st->ops->load(st, err, sizeof(err));
	if (ks == NULL) {
		fprintf(stderr, "%s\nkeyauthd: key store rejected\n", err);
		store_free(st);
		return 1;
	}
	printf("store %s: %s%zu keys\n", st->ops->where(st), missing ? "missing, " : "",
	    ks_count(ks));
	{
		size_t forever = 0;

		/* Revoked keys are harmless forever; live ones are not. */
		for (size_t i = 0; i < ks_count(ks); i++)
			forever += ks_entry_at(ks, i)->expires == 0 && ks_entry_at(ks, i)->revoked == 0;
		if (forever > 0)
			fprintf(stderr, "keyauthd: warning: %zu key%s never expire%s "
			    "(keyauthctl key list shows them; key set ID --days N gives an expiry)\n",
			    forever, forever == 1 ? "" : "s", forever == 1 ? "s" : "");
	}
	printf("configuration OK\n");
	ks_set_unref(ks);
	store_free(st);
	return 0;
}
