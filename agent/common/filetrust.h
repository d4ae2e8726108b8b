/* SPDX-License-Identifier: Apache-2.0 */
/*
 * filetrust: who may have written a file that decides who gets in.
 *
 * The configuration, the key store, the Redis password file, the TLS files
 * and the directory of a unix listener are trusted only when the file and
 * every directory above it are owned by a trusted user (root, or the agent's
 * user) and writable by nobody else, as OpenSSH's StrictModes does. One
 * exception, for the directories above: one writable by others but with the
 * sticky bit, owned by a trusted user (/tmp), may be crossed, because nobody
 * else can rename or remove the trusted entry below it. The entry checked
 * itself gets no such exception: a unix listener's directory (ft_check_dir)
 * that others may write into would let them listen there while the agent is
 * away.
 *
 * Symlinks: the path is resolved one component at a time, as the kernel
 * does, and every directory crossed on the way is checked, those holding a
 * link as well as those of its target; a symlink met on the way must itself
 * be owned by a trusted user (in a sticky directory its owner may replace
 * it), its mode is not looked at. So a link in /etc/keyauth pointing into a
 * directory another user owns is refused like that directory itself, and the
 * entry checked is the link's final target.
 *
 * Pure checks: no logging, no allocation; errors say which path, why, and the
 * command that fixes it (always `chown root PATH` or `chmod go-w PATH`: root
 * is trusted by every program, whatever user it runs as).
 */
#ifndef AGENT_FILETRUST_H
#define AGENT_FILETRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#define FT_MAX_UIDS 4

/* The owners trusted besides root. */
struct ft_trust {
	uid_t uids[FT_MAX_UIDS];
	unsigned n;
	char user[64];        /* a name for error messages ("keyauth"), or "" */
};

/* root only. */
void ft_trust_init(struct ft_trust *t);
/* Adds <uid> (no-op when already there, or when full). */
void ft_trust_add(struct ft_trust *t, uid_t uid);
/* Who the running program trusts: root, its effective uid, and <user> (the
 * configuration's `user`, may be NULL) when that user exists. keyauthctl
 * also passes "keyauth" (the packaged service user) when <user> is NULL, so
 * root may manage the service's files. */
void ft_trust_for(struct ft_trust *t, const char *user);
bool ft_trusted_uid(const struct ft_trust *t, uid_t uid);

/*
 * <path> (need not exist: then only its existing ancestors are checked, and
 * ENOENT is not an error; nor is a file met where a directory should be:
 * nothing can exist below it) and every directory above it, up to "/". <st>,
 * when not NULL, is the fstat() of the descriptor the caller read, checked
 * instead of a fresh lstat() of <path> (no window between check and use for
 * the file itself; checked even when the path is gone by now). Relative
 * paths are resolved against the working directory.
 * Returns 0, or -1 with <err> ("PATH: owned by uid 65534 (nobody), not root
 * or keyauth, so that user could decide who gets in; fix: chown root PATH";
 * for a directory above: "DIR: directory writable by others (mode 0777), so
 * others could swap PATH for a file of theirs; fix: chmod go-w DIR").
 */
int ft_check_path(const struct ft_trust *t, const char *path, const struct stat *st,
                  char *err, size_t errlen);

/* Directory <dir> must exist, be owned by a trusted user and be writable by
 * nobody else (sticky or not); the directories above it as in ft_check_path.
 * Returns 0 or -1 with <err>. */
int ft_check_dir(const struct ft_trust *t, const char *dir, char *err, size_t errlen);

#endif
