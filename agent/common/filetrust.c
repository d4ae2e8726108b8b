/* SPDX-License-Identifier: Apache-2.0 */
/*
 * filetrust: the StrictModes-like owner and mode checks of filetrust.h.
 *
 * The path is resolved by hand, one component at a time, the way the kernel
 * does: every directory crossed is checked before anything below it is
 * looked at, and a symlink met on the way is followed only after checking
 * its owner (the directory holding it was checked already), so a link in a
 * trusted place pointing into an untrusted one is refused like the untrusted
 * place itself. Callable from any thread; stack buffers only.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "filetrust.h"

/* 40: the kernel's own limit on symlinks followed in one resolution. */
#define FT_MAX_LINKS 40

void
ft_trust_init(struct ft_trust *t)
{
	memset(t, 0, sizeof(*t));
}

void
ft_trust_add(struct ft_trust *t, uid_t uid)
{
	if (ft_trusted_uid(t, uid) || t->n >= FT_MAX_UIDS)
		return;
	t->uids[t->n++] = uid;
}

void
ft_trust_for(struct ft_trust *t, const char *user)
{
	char buf[4096];
	struct passwd pw, *res = NULL;

	ft_trust_init(t);
	ft_trust_add(t, geteuid());
	if (user == NULL || *user == '\0')
		return;
	snprintf(t->user, sizeof(t->user), "%s", user);
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		ft_trust_add(t, res->pw_uid);
}

bool
ft_trusted_uid(const struct ft_trust *t, uid_t uid)
{
	unsigned i;

	if (uid == 0)
		return true;
	for (i = 0; i < t->n && i < FT_MAX_UIDS; i++)
		if (t->uids[i] == uid)
			return true;
	return false;
}

/* "uid 65534 (nobody)", or "uid 1234" when the uid has no name. */
static void
ft_uid_str(uid_t uid, char *out, size_t len)
{
	char buf[4096];
	struct passwd pw, *res = NULL;

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, len, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(out, len, "uid %u", (unsigned)uid);
}

/* "root", "root or keyauth", "root, alice or keyauth". */
static void
ft_trusted_str(const struct ft_trust *t, char *out, size_t len)
{
	char buf[4096], one[96];
	struct passwd pw, *res;
	size_t used;
	unsigned i;

	snprintf(out, len, "root");
	for (i = 0; i < t->n && i < FT_MAX_UIDS; i++) {
		res = NULL;
		if (getpwuid_r(t->uids[i], &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
			snprintf(one, sizeof(one), "%s", res->pw_name);
		else
			snprintf(one, sizeof(one), "uid %u", (unsigned)t->uids[i]);
		used = strlen(out);
		snprintf(out + used, len - used, "%s%s", i + 1 == t->n ? " or " : ", ", one);
	}
}

/*
 * One existing entry: <what> is "directory" for a directory crossed (the
 * sticky exception applies), "" for the entry checked itself, "symlink" for
 * a link on the way (its mode means nothing: only its owner counts).
 */
static int
ft_check_one(const struct ft_trust *t, const char *path, const struct stat *st,
             const char *what, const char *target, char *err, size_t errlen)
{
	char owner[160], trusted[320];
	bool crossed = strcmp(what, "directory") == 0;
	bool is_link = strcmp(what, "symlink") == 0;

	if (!ft_trusted_uid(t, st->st_uid)) {
		ft_uid_str(st->st_uid, owner, sizeof(owner));
		ft_trusted_str(t, trusted, sizeof(trusted));
		if (crossed || is_link)
			snprintf(err, errlen, "%s: %s owned by %s, not %s, so that user could "
			         "swap %s for a file of theirs; fix: chown root %s",
			         path, what, owner, trusted, target, path);
		else
			snprintf(err, errlen, "%s: owned by %s, not %s, so that user could "
			         "decide who gets in; fix: chown root %s",
			         path, owner, trusted, path);
		return -1;
	}
	if (is_link || (st->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return 0;
	/* Others may write into a sticky directory, but not rename or remove
	 * what a trusted user put there (/tmp, 1777). */
	if (crossed && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
		return 0;
	if (crossed)
		snprintf(err, errlen, "%s: directory writable by %s (mode %04o), so others "
		         "could swap %s for a file of theirs; fix: chmod go-w %s",
		         path, (st->st_mode & S_IWOTH) ? "others" : "its group",
		         (unsigned)(st->st_mode & 07777), target, path);
	else if (S_ISDIR(st->st_mode))   /* ft_check_dir's entry: no sticky exception */
		snprintf(err, errlen, "%s: directory writable by %s (mode %04o), so others "
		         "could add or replace what is in it; fix: chmod go-w %s",
		         path, (st->st_mode & S_IWOTH) ? "others" : "its group",
		         (unsigned)(st->st_mode & 07777), path);
	else
		snprintf(err, errlen, "%s: writable by %s (mode %04o), so others could "
		         "decide who gets in; fix: chmod go-w %s",
		         path, (st->st_mode & S_IWOTH) ? "others" : "its group",
		         (unsigned)(st->st_mode & 07777), path);
	return -1;
}

/* Appends "/<comp>" (of <clen> bytes) to <cur>; -1 when it does not fit. */
static int
ft_push(char *cur, size_t cap, const char *comp, size_t clen)
{
	size_t used = strlen(cur);
	size_t slash = (used == 1 && cur[0] == '/') ? 0 : 1;

	if (used + slash + clen + 1 > cap)
		return -1;
	if (slash)
		cur[used++] = '/';
	memcpy(cur + used, comp, clen);
	cur[used + clen] = '\0';
	return 0;
}

static void
ft_pop(char *cur)
{
	char *slash = strrchr(cur, '/');

	if (slash == cur)
		cur[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
}

/*
 * The walk shared by both checks. <want_dir>: the entry must exist and be a
 * directory (ft_check_dir). <st>: the caller's fstat of the entry, or NULL.
 */
static int
ft_walk(const struct ft_trust *t, const char *path, const struct stat *fst, bool want_dir,
        char *err, size_t errlen)
{
	char rest[PATH_MAX], cur[PATH_MAX], lbuf[PATH_MAX], tmp[PATH_MAX];
	struct stat st;
	unsigned links = 0;
	size_t off = 0, clen;
	ssize_t n;
	const char *comp;
	bool last;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "empty path");
		return -1;
	}
	if (path[0] == '/') {
		if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest))
			goto toolong;
	} else {
		if (getcwd(cur, sizeof(cur)) == NULL) {
			snprintf(err, errlen, "%s: cannot check who may write it: getcwd: %s",
			         path, strerror(errno));
			return -1;
		}
		if (snprintf(rest, sizeof(rest), "%s/%s", cur, path) >= (int)sizeof(rest))
			goto toolong;
	}
	snprintf(cur, sizeof(cur), "/");
	if (lstat("/", &st) == -1) {
		snprintf(err, errlen, "/: cannot check who may write it: %s", strerror(errno));
		return -1;
	}
	if (ft_check_one(t, "/", &st, "directory", path, err, errlen) == -1)
		return -1;

	for (;;) {
		while (rest[off] == '/')
			off++;
		if (rest[off] == '\0')
			break;
		comp = rest + off;
		clen = strcspn(comp, "/");
		off += clen;
		while (rest[off] == '/')
			off++;
		last = rest[off] == '\0';
		if (clen == 1 && comp[0] == '.')
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			ft_pop(cur);
			continue;
		}
		if (ft_push(cur, sizeof(cur), comp, clen) == -1)
			goto toolong;
		if (lstat(cur, &st) == -1) {
			/* What is missing below trusted directories cannot have been
			 * planted; a descriptor already read is still checked. */
			if (errno == ENOENT && !want_dir)
				return fst == NULL ? 0 : ft_check_one(t, path, fst, "", path, err, errlen);
			snprintf(err, errlen, "%s: cannot check who may write it: %s",
			         cur, strerror(errno));
			return -1;
		}
		if (S_ISLNK(st.st_mode)) {
			if (ft_check_one(t, cur, &st, "symlink", path, err, errlen) == -1)
				return -1;
			if (++links > FT_MAX_LINKS) {
				snprintf(err, errlen, "%s: too many symlinks", path);
				return -1;
			}
			n = readlink(cur, lbuf, sizeof(lbuf) - 1);
			if (n == -1) {
				snprintf(err, errlen, "%s: readlink: %s", cur, strerror(errno));
				return -1;
			}
			lbuf[n] = '\0';
			/* The target replaces the link: rest = target + what followed. */
			if (snprintf(tmp, sizeof(tmp), "%s/%s", lbuf, rest + off) >= (int)sizeof(tmp))
				goto toolong;
			memcpy(rest, tmp, sizeof(rest));
			off = 0;
			if (lbuf[0] == '/')
				snprintf(cur, sizeof(cur), "/");
			else
				ft_pop(cur);
			continue;
		}
		if (!last) {
			if (!S_ISDIR(st.st_mode)) {
				/* Like a missing component: nothing exists below a
				 * file that a trusted directory holds. */
				if (!want_dir)
					return fst == NULL ? 0 :
					    ft_check_one(t, path, fst, "", path, err, errlen);
				snprintf(err, errlen, "%s: not a directory", cur);
				return -1;
			}
			if (ft_check_one(t, cur, &st, "directory", path, err, errlen) == -1)
				return -1;
			continue;
		}
		if (want_dir && !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s: not a directory", cur);
			return -1;
		}
		/* The descriptor read, not the path now, when the caller has it. */
		return ft_check_one(t, cur, fst != NULL ? fst : &st, "", path, err, errlen);
	}
	/* The path ended on "/" or "..": the last directory reached is the entry. */
	if (lstat(cur, &st) == -1) {
		snprintf(err, errlen, "%s: cannot check who may write it: %s", cur, strerror(errno));
		return -1;
	}
	if (want_dir && !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", cur);
		return -1;
	}
	return ft_check_one(t, cur, fst != NULL ? fst : &st, "", path, err, errlen);

toolong:
	snprintf(err, errlen, "%.200s...: path too long to check", path);
	return -1;
}

int
ft_check_path(const struct ft_trust *t, const char *path, const struct stat *st,
              char *err, size_t errlen)
{
	return ft_walk(t, path, st, false, err, errlen);
}

int
ft_check_dir(const struct ft_trust *t, const char *dir, char *err, size_t errlen)
{
	return ft_walk(t, dir, NULL, true, err, errlen);
}
