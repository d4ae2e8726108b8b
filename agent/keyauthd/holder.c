/* SPDX-License-Identifier: Apache-2.0 */
/*
 * holder: finds who holds a TCP port or a unix socket path, from /proc
 * (see holder.h). Nothing here fails: what cannot be read is unknown.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "holder.h"

#define TCP_LISTEN    0x0A       /* st of a listening socket in /proc/net/tcp */
#define UNIX_ACCEPTCON 0x10000   /* __SO_ACCEPTCON: a listening unix socket */

/* ---- /proc/net/tcp, tcp6 ---------------------------------------------------------- */

/* An address as /proc/net/tcp prints it: each 32-bit word of the address as
 * a hex number in host order ("0100007F" is 127.0.0.1 on x86). */
static int
proc_addr(const char *hex, unsigned char *out, size_t n)
{
	char word[9];
	size_t i;

	if (strlen(hex) != n * 2)
		return -1;
	for (i = 0; i < n / 4; i++) {
		uint32_t v;

		memcpy(word, hex + i * 8, 8);
		word[8] = '\0';
		v = (uint32_t)strtoul(word, NULL, 16);
		memcpy(out + i * 4, &v, 4);
	}
	return 0;
}

static bool
all_zero(const unsigned char *p, size_t n)
{
	while (n > 0)
		if (p[--n] != 0)
			return false;
	return true;
}

/* Whether a socket bound to <a> (<alen> bytes: 4 or 16) takes the address
 * <want> (4 or 16 bytes <wlen>) wanted: the same address, or a wildcard on
 * either side; an IPv6 socket also holds IPv4 addresses through :: or
 * ::ffff:a.b.c.d (unless IPV6_V6ONLY, which /proc does not show). */
static bool
addr_covers(const unsigned char *a, size_t alen, const unsigned char *want, size_t wlen)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (all_zero(a, alen) || (alen == wlen && all_zero(want, wlen)))
		return true;
	if (alen == wlen)
		return memcmp(a, want, alen) == 0;
	if (alen == 16 && wlen == 4)
		return memcmp(a, mapped, 12) == 0 && memcmp(a + 12, want, 4) == 0;
	return false;
}

/* Scans one of /proc/net/tcp (<alen> 4) or tcp6 (16) for a socket on <port>
 * covering <want>; listening sockets only unless <any_state>. */
static bool
scan_tcp(const char *file, size_t alen, const unsigned char *want, size_t wlen,
         uint16_t port, bool any_state, struct holder *h)
{
	char line[512], hex[40];
	FILE *f = fopen(file, "re");
	bool hit = false;

	if (f == NULL)
		return false;
	if (fgets(line, sizeof(line), f) == NULL) {    /* the header */
		fclose(f);
		return false;
	}
	while (!hit && fgets(line, sizeof(line), f) != NULL) {
		unsigned char a[16];
		unsigned lport, st, uid;
		unsigned long inode;

		if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %u %*d %lu",
		    hex, &lport, &st, &uid, &inode) != 5)
			continue;
		if (lport != port || (!any_state && st != TCP_LISTEN) || inode == 0 ||
		    proc_addr(hex, a, alen) == -1 || !addr_covers(a, alen, want, wlen))
			continue;
		h->found = true;
		h->uid_known = true;
		h->uid = (uid_t)uid;
		h->inode = inode;
		hit = true;
	}
	fclose(f);
	return hit;
}

/* ---- processes --------------------------------------------------------------------- */

/* The first process with a descriptor on socket <inode>: its pid and comm. */
static void
find_pid(struct holder *h)
{
	char want[48], link[64], path[32 + sizeof(((struct dirent *)0)->d_name)];
	struct dirent *pe;
	DIR *proc = opendir("/proc");

	if (proc == NULL)
		return;
	snprintf(want, sizeof(want), "socket:[%lu]", h->inode);
	while (h->pid == 0 && (pe = readdir(proc)) != NULL) {
		struct dirent *fe;
		DIR *fds;
		int dfd;

		if (pe->d_name[0] < '1' || pe->d_name[0] > '9' ||
		    strspn(pe->d_name, "0123456789") != strlen(pe->d_name))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", pe->d_name);
		if ((fds = opendir(path)) == NULL)
			continue;          /* gone, or not ours to read */
		dfd = dirfd(fds);
		while ((fe = readdir(fds)) != NULL) {
			ssize_t n = readlinkat(dfd, fe->d_name, link, sizeof(link) - 1);

			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				h->pid = (pid_t)strtol(pe->d_name, NULL, 10);
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	if (h->pid == 0)
		return;
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)h->pid);
	{
		FILE *f = fopen(path, "re");

		if (f != NULL) {
			if (fgets(h->comm, sizeof(h->comm), f) != NULL)
				h->comm[strcspn(h->comm, "\n")] = '\0';
			fclose(f);
		}
	}
}

/* The real uid of <pid>, from /proc/PID/status. */
static void
pid_uid(struct holder *h)
{
	char path[64], line[256];
	unsigned uid;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)h->pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "Uid: %u", &uid) == 1) {
			h->uid = (uid_t)uid;
			h->uid_known = true;
			break;
		}
	}
	fclose(f);
}

/* ---- API ------------------------------------------------------------------------------- */

void
holder_find_tcp(const char *host, uint16_t port, struct holder *h)
{
	unsigned char want[16];
	size_t wlen = strchr(host, ':') != NULL ? 16 : 4;

	memset(h, 0, sizeof(*h));
	if (inet_pton(wlen == 16 ? AF_INET6 : AF_INET, host, want) != 1)
		return;
	/* A listener first; else any socket bound there (one that connected
	 * from that port, or bound without listening yet). */
	for (int pass = 0; pass < 2 && !h->found; pass++) {
		if (!scan_tcp("/proc/net/tcp", 4, want, wlen, port, pass == 1, h))
			scan_tcp("/proc/net/tcp6", 16, want, wlen, port, pass == 1, h);
	}
	if (h->found)
		find_pid(h);
}

void
holder_find_unix(const char *path, struct holder *h)
{
	char line[512];
	FILE *f;

	memset(h, 0, sizeof(*h));
	if ((f = fopen("/proc/net/unix", "re")) == NULL)
		return;
	if (fgets(line, sizeof(line), f) == NULL) {    /* the header */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned flags;
		unsigned long inode;
		int off = 0;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%*s %*x %*x %x %*x %*x %lu %n", &flags, &inode, &off) != 2 ||
		    off == 0 || !(flags & UNIX_ACCEPTCON) || strcmp(line + off, path) != 0)
			continue;
		h->found = true;
		h->inode = inode;
		break;
	}
	fclose(f);
	if (!h->found)
		return;
	find_pid(h);
	if (h->pid != 0)
		pid_uid(h);
}

const char *
holder_describe(const struct holder *h, char *out, size_t len)
{
	char buf[1024], user[80] = "";
	struct passwd pw, *res = NULL;

	if (h->uid_known && getpwuid_r(h->uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(user, sizeof(user), " %s", res->pw_name);
	if (h->pid != 0 && h->uid_known)
		snprintf(out, len, "by pid %ld (%s, uid %u%s)", (long)h->pid,
		    h->comm[0] ? h->comm : "?", (unsigned)h->uid, user);
	else if (h->pid != 0)
		snprintf(out, len, "by pid %ld (%s, uid unknown)", (long)h->pid,
		    h->comm[0] ? h->comm : "?");
	else if (h->uid_known)
		snprintf(out, len, "by a socket of uid %u%s, process unknown (not visible in "
		    "/proc: another pid namespace, or hidepid)", (unsigned)h->uid, user);
	else if (h->found)
		snprintf(out, len, "by a process that is not visible in /proc (another pid "
		    "namespace, or hidepid)");
	else
		snprintf(out, len, "by an unknown process (no such socket in /proc/net)");
	return out;
}
