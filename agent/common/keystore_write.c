/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keystore_write: the store file's lock and writer, for keyauthctl only
 * (under ks_file_lock). The file is replaced atomically: written to a
 * temporary file in the same directory, fsynced, renamed over the store.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "keystore-int.h"

/* ---- writing (keyauthctl) ---------------------------------------------------- */

/*
 * Removes "<dir>/.<name>.XXXXXX" files left by writers that died between
 * mkstemp and rename (kill -9, power loss). Called with the lock held, so no
 * live writer can own one. Best effort: a failure here changes nothing else.
 */
static void
ks_file_remove_stale_temps(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash != NULL ? slash + 1 : path;
	size_t blen = strlen(base);
	char dir[4096];
	struct dirent *de;
	DIR *d;
	int dfd;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	d = opendir(dir);
	if (d == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (n[0] == '.' && strlen(n) == 1 + blen + 1 + 6 &&
		    memcmp(n + 1, base, blen) == 0 && n[1 + blen] == '.')
			unlinkat(dfd, n, 0);
	}
	closedir(d);
}

int
ks_file_lock(const char *path, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	char *lp = malloc(plen + sizeof(".lock"));
	int fd;

	if (lp == NULL) {
		ks_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	memcpy(lp, path, plen);
	memcpy(lp + plen, ".lock", sizeof(".lock"));
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd == -1) {
		ks_err(err, errlen, "%s: %s", lp, strerror(errno));
		free(lp);
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1) {
		if (errno == EINTR)
			continue;
		ks_err(err, errlen, "%s: flock: %s", lp, strerror(errno));
		close(fd);
		free(lp);
		return -1;
	}
	free(lp);
	ks_file_remove_stale_temps(path);
	return fd;
}

void
ks_file_unlock(int fd)
{
	if (fd >= 0)
		close(fd);       /* drops the flock */
}

static int
ks_pack_str(msgpack_packer *pk, const char *s)
{
	size_t len = strlen(s);

	return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

static int
ks_pack_mem(msgpack_packer *pk, const char *s, size_t len)
{
	return msgpack_pack_str(pk, len) | msgpack_pack_str_body(pk, s, len);
}

/* The number of ','-separated items of the non-empty list <s>. */
static size_t
ks_list_count(const char *s)
{
	size_t n = 1;

	for (; *s != '\0'; s++)
		n += *s == ',';
	return n;
}

static bool
ks_has(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* The entry's route list, when it has more than its one "route". */
static bool
ks_has_routes(const struct ks_entry *e)
{
	return ks_has(e->routes) && strcmp(e->routes, e->route) != 0;
}

/* The optional fields of <e> (keystore_load.c): only those it has. */
static int
ks_pack_optional(msgpack_packer *pk, const struct ks_entry *e)
{
	int rc = 0;

	if (ks_has_routes(e)) {
		const char *p = e->routes, *c;

		rc |= ks_pack_str(pk, "routes");
		rc |= msgpack_pack_array(pk, ks_list_count(p));
		for (;; p = c + 1) {
			c = strchr(p, ',');
			rc |= ks_pack_mem(pk, p, c != NULL ? (size_t)(c - p) : strlen(p));
			if (c == NULL)
				break;
		}
	}
	if (ks_has(e->alias)) {
		rc |= ks_pack_str(pk, "alias");
		rc |= ks_pack_str(pk, e->alias);
	}
	if (ks_has(e->tags)) {
		const char *p = e->tags, *c, *eq;

		rc |= ks_pack_str(pk, "tags");
		rc |= msgpack_pack_map(pk, ks_list_count(p));
		for (;; p = c + 1) {
			size_t len;

			c = strchr(p, ',');
			len = c != NULL ? (size_t)(c - p) : strlen(p);
			eq = memchr(p, '=', len);     /* ks_entry_check: always there */
			rc |= ks_pack_mem(pk, p, (size_t)(eq - p));
			rc |= ks_pack_mem(pk, eq + 1, len - (size_t)(eq - p) - 1);
			if (c == NULL)
				break;
		}
	}
	if (e->rotated_from[0] != '\0') {
		rc |= ks_pack_str(pk, "rotated_from");
		rc |= ks_pack_str(pk, e->rotated_from);
	}
	if (e->rotated_to[0] != '\0') {
		rc |= ks_pack_str(pk, "rotated_to");
		rc |= ks_pack_str(pk, e->rotated_to);
	}
	/* only admin-route keys have scopes: other stores stay readable by
	 * agents that predate them */
	if (e->scopes != 0) {
		rc |= ks_pack_str(pk, "scopes");
		rc |= msgpack_pack_uint32(pk, e->scopes);
	}
	return rc;
}

/* Packs the whole file into <sb>. Returns 0, or -1 on allocation failure.
 * An entry without the optional fields is packed exactly as before they
 * existed (keystore_load.c). */
static int
ks_pack(msgpack_sbuffer *sb, const struct ks_entry *v, size_t n, uint64_t generation)
{
	msgpack_packer pk;
	int rc = 0;

	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	rc |= msgpack_pack_map(&pk, 3);
	rc |= ks_pack_str(&pk, "version");
	rc |= msgpack_pack_uint32(&pk, KS_FILE_VERSION);
	rc |= ks_pack_str(&pk, "generation");
	rc |= msgpack_pack_uint64(&pk, generation);
	rc |= ks_pack_str(&pk, "keys");
	rc |= msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct ks_entry *e = &v[i];
		size_t nf = KS_F_REQUIRED + ks_has_routes(e) + ks_has(e->alias) + ks_has(e->tags) +
		            (e->rotated_from[0] != '\0') + (e->rotated_to[0] != '\0') +
		            (e->scopes != 0);

		rc |= msgpack_pack_map(&pk, nf);
		rc |= ks_pack_str(&pk, "id");
		rc |= ks_pack_str(&pk, e->id);
		rc |= ks_pack_str(&pk, "digest");
		rc |= msgpack_pack_bin(&pk, KEY_DIGEST_LEN);
		rc |= msgpack_pack_bin_body(&pk, e->digest, KEY_DIGEST_LEN);
		rc |= ks_pack_str(&pk, "route");
		rc |= ks_pack_str(&pk, e->route);
		rc |= ks_pack_str(&pk, "owner");
		rc |= ks_pack_str(&pk, e->owner ? e->owner : "");
		rc |= ks_pack_str(&pk, "created");
		rc |= msgpack_pack_int64(&pk, e->created);
		rc |= ks_pack_str(&pk, "expires");
		rc |= msgpack_pack_int64(&pk, e->expires);
		rc |= ks_pack_str(&pk, "revoked");
		rc |= msgpack_pack_int64(&pk, e->revoked);
		rc |= ks_pack_str(&pk, "rpm");
		rc |= msgpack_pack_uint32(&pk, e->rpm);
		rc |= ks_pack_optional(&pk, e);
	}
	return rc == 0 ? 0 : -1;
}

static int
ks_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
ks_file_write(const char *path, const struct ks_entry *v, size_t n, char *err, size_t errlen)
{
	return ks_file_write_gen(path, v, n, 0, err, errlen);
}

/*
 * Refuses anything the loader would refuse (field rules, duplicates), so a
 * written file always loads. The temporary file is "<dir>/.<name>.XXXXXX",
 * created 0600 by mkostemp and fchmod'ed to be sure. If the final directory
 * fsync fails, the rename has already happened: the new file is in place but
 * may not survive a crash, and -1 is returned so the caller says so.
 */
/*
 * Run as root, keyauthctl must not leave a store the agent (running as its
 * own user) cannot read: the new file gets the owner of the store it
 * replaces or, for a first store, the owner of its directory (the service's
 * state directory). Not root: nothing to do, the file is ours.
 */
static int
ks_file_give_owner(int fd, const char *path, const char *dir)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(path, &st) == -1 && stat(dir, &st) == -1)
		return 0;
	if (st.st_uid == 0 && st.st_gid == 0)
		return 0;
	return fchown(fd, st.st_uid, st.st_gid);
}

int
ks_file_write_gen(const char *path, const struct ks_entry *v, size_t n,
                  uint64_t generation, char *err, size_t errlen)
{
	msgpack_sbuffer sb;
	struct ks_set *chk;
	const char *slash, *base;
	char *tmp = NULL, *dir = NULL;
	char msg[200];
	size_t dlen, tmplen;
	int fd = -1, dfd, rc = -1;

	for (size_t i = 0; i < n; i++)
		if (ks_entry_check(&v[i], msg, sizeof(msg)) == -1) {
			ks_err(err, errlen, "%s: entry %zu: %s", path, i, msg);
			return -1;
		}
	if ((chk = ks_set_build(v, n, msg, sizeof(msg))) == NULL) {
		ks_err(err, errlen, "%s: %s", path, msg);
		return -1;
	}
	ks_set_unref(chk);

	slash = strrchr(path, '/');
	base = slash ? slash + 1 : path;
	dlen = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
	if (*base == '\0') {
		ks_err(err, errlen, "%s: not a file name", path);
		return -1;
	}
	dir = malloc(dlen + 1);
	tmplen = dlen + strlen(base) + sizeof("/..XXXXXX");
	tmp = malloc(tmplen);
	msgpack_sbuffer_init(&sb);
	if (dir == NULL || tmp == NULL || ks_pack(&sb, v, n, generation) == -1) {
		ks_err(err, errlen, "%s: out of memory", path);
		goto out;
	}
	memcpy(dir, slash ? path : ".", dlen);    /* "/name": dir is "/" */
	dir[dlen] = '\0';
	snprintf(tmp, tmplen, "%s/.%s.XXXXXX", dir, base);

	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		ks_err(err, errlen, "%s: create temporary file in %s: %s", path, dir, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0600) == -1 || ks_file_give_owner(fd, path, dir) == -1 ||
	    ks_write_all(fd, sb.data, sb.size) == -1 || fsync(fd) == -1) {
		ks_err(err, errlen, "%s: write %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	if (close(fd) == -1) {
		fd = -1;
		ks_err(err, errlen, "%s: close %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		ks_err(err, errlen, "%s: rename from %s: %s", path, tmp, strerror(errno));
		goto unlink;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		ks_err(err, errlen, "%s: written, but open %s to fsync it: %s", path, dir, strerror(errno));
		goto out;
	}
	if (fsync(dfd) == -1) {
		ks_err(err, errlen, "%s: written, but fsync %s: %s", path, dir, strerror(errno));
		close(dfd);
		goto out;
	}
	close(dfd);
	rc = 0;
	goto out;
unlink:
	if (fd != -1)
		close(fd);
	fd = -1;
	unlink(tmp);
out:
	msgpack_sbuffer_destroy(&sb);
	free(dir);
	free(tmp);
	return rc;
}
