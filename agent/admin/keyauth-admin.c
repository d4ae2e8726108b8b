/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyauth-admin: the admin API and console, on a unix socket HAProxy's admin
 * route forwards to (keyauth.conf's "admin" group).
 *
 * Started as root, it creates the socket (mode 0660, group haproxy, in a
 * directory trusted like keyauthd's unix listener directories), then splits:
 * the web child drops to admin.user and speaks HTTP; the root parent is the
 * executor, which runs keyauthctl for the child's requests after checking
 * them again. The process that parses the network holds no right over the
 * key store, and the one that holds them parses only fixed-shape frames.
 * Not root, or without admin.user (tests, a developer's machine): one
 * process does both, and says so in its log.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin.h"
#include "conf.h"
#include "filetrust.h"
#include "log.h"
#include "version.h"

#define FILE_MAX (2 * 1024 * 1024)

static struct admin_file files[] = {
	{ "console/index.html", "text/html; charset=utf-8", NULL, 0 },
	{ "console/console.css", "text/css; charset=utf-8", NULL, 0 },
	{ "console/console.js", "text/javascript; charset=utf-8", NULL, 0 },
	{ "openapi.json", "application/json", NULL, 0 },
};
#define NFILES (sizeof(files) / sizeof(files[0]))

static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: keyauth-admin [-c FILE] [-t]\n"
	        "       keyauth-admin --help | --version\n"
	        "\n"
	        "The keyauth admin API and console (keyauth-admin(8)): serves HTTP on the\n"
	        "unix socket of keyauth.conf's admin group, behind HAProxy's admin route,\n"
	        "and performs each operation by running keyauthctl.\n"
	        "\n"
	        "  -c, --config FILE  keyauth configuration (default $KEYAUTH_CONF, else\n"
	        "                     " CONF_DEFAULT_PATH ")\n"
	        "  -t, --test         check the configuration and the files it names, then exit\n"
	        "  -h, --help         this help\n"
	        "  -V, --version      print the version\n"
	        "\n"
	        "Exit status: 0 ok (or stopped by SIGTERM), 1 failure, 2 usage error.\n");
}

/* Reads <dir>/<name> whole into <f> (absent: left empty, served as 404). */
static int
load_file(struct admin_file *f, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		snprintf(err, errlen, "%s: not a regular file of at most %d bytes", path, FILE_MAX);
		close(fd);
		return -1;
	}
	f->data = malloc((size_t)st.st_size + 1);
	if (f->data == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = read(fd, f->data, (size_t)st.st_size);
	close(fd);
	if (n != st.st_size) {
		snprintf(err, errlen, "%s: short read", path);
		return -1;
	}
	f->len = (size_t)n;
	return 0;
}

/* The console from console_dir, the OpenAPI document from its parent
 * directory (both installed under share/keyauth/), read once at start:
 * the web process may not be able to read them after dropping privileges. */
static int
load_files(const struct admin_conf *a, char *err, size_t errlen)
{
	char path[2048], dir[2048];
	const char *share;
	size_t i;

	snprintf(dir, sizeof(dir), "%s", a->console_dir);
	share = dirname(dir);
	for (i = 0; i < NFILES; i++) {
		if (strncmp(files[i].name, "console/", 8) == 0)
			snprintf(path, sizeof(path), "%s/%s", a->console_dir, files[i].name + 8);
		else
			snprintf(path, sizeof(path), "%s/%s", share, files[i].name);
		if (load_file(&files[i], path, err, errlen) != 0)
			return -1;
		if (files[i].data == NULL)
			log_warning("event=file_missing path=%s", LOG_Q(path));
	}
	return 0;
}

static int
check_conf(const struct conf *c, char *err, size_t errlen)
{
	const struct admin_conf *a = c->admin;

	if (a == NULL) {
		snprintf(err, errlen, "%s: no admin group: keyauth-admin has nothing to serve "
		         "(keyauth.conf(5), \"admin\")", c->path);
		return -1;
	}
	if (a->keyauthctl == NULL || a->keyauthctl[0] != '/' || access(a->keyauthctl, X_OK) != 0) {
		snprintf(err, errlen, "admin.keyauthctl %s: not an executable absolute path",
		         a->keyauthctl ? a->keyauthctl : "(unset)");
		return -1;
	}
	if (a->socket == NULL || a->socket[0] != '/' ||
	    strlen(a->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "admin.socket: must be an absolute path shorter than 108 bytes");
		return -1;
	}
	return 0;
}

/* Creates the listening socket: its directory must be trusted (nobody but
 * root or us may create a socket there in our stead), a stale socket of an
 * earlier run is replaced, the new one is 0660 group haproxy. */
static int
open_socket(const char *path, gid_t group, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ft_trust t;
	struct stat st;
	char dir[sizeof(sa.sun_path)];
	mode_t old;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	ft_trust_for(&t, NULL);
	if (ft_check_dir(&t, dirname(dir), err, errlen) != 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a socket", path);
			close(fd);
			return -1;
		}
		/* A socket someone answers on is another keyauth-admin's:
		 * refused; a dead one (a crash) is replaced. */
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			snprintf(err, errlen, "%s: another process is listening there "
			         "(a keyauth-admin already running?)", path);
			close(fd);
			return -1;
		}
		unlink(path);
		close(fd);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket: %s", strerror(errno));
			return -1;
		}
	}
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		umask(old);
		snprintf(err, errlen, "%s: bind: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0660) != 0 ||
	    (geteuid() == 0 && group != (gid_t)-1 && chown(path, (uid_t)-1, group) != 0) ||
	    listen(fd, 128) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	return fd;
}

static int
drop_to(const char *user, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		snprintf(err, errlen, "admin.user %s: no such user", user);
		return -1;
	}
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 ||
	    setuid(0) == 0) {
		snprintf(err, errlen, "cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	return 0;
}

/* Serves until SIGTERM/SIGINT (or the executor going away: *exec_fd EOF is
 * seen by the next request, which answers 503, and the parent ends us). */
static int
serve_web(struct admin_http_conf *hc)
{
	char err[256];
	struct admin_http *h = admin_http_start(hc, err, sizeof(err));

	if (h == NULL) {
		log_err("event=start_failed error=%s", LOG_Q(err));
		return 1;
	}
	log_notice("event=started pid=%ld uid=%ld version=%s", (long)getpid(), (long)getuid(),
	           KEYAUTH_VERSION);
	while (!stopping)
		pause();
	admin_http_stop(h);
	return 0;
}

static int
run(const struct conf *c, const char *conf_path)
{
	const struct admin_conf *a = c->admin;
	struct admin_exec_conf x = { a->keyauthctl, conf_path, ADMIN_EXEC_TIMEOUT_MS };
	struct admin_http_conf hc = { .exec = &x, .files = files, .nfiles = NFILES,
	                              .exec_fd = -1, .peer_gid = (gid_t)-1 };
	struct passwd *hp = getpwnam("haproxy");
	struct group *hg = getgrnam("haproxy");
	char err[1024];
	int sp[2], rc, status;
	pid_t child;

	if (hp != NULL)
		hc.peer_uids[hc.npeer_uids++] = hp->pw_uid;
	/* Not root: the user who started us (a developer, the tests). */
	if (getuid() != 0)
		hc.peer_uids[hc.npeer_uids++] = getuid();
	if (hg != NULL)
		hc.peer_gid = hg->gr_gid;
	hc.listen_fd = open_socket(a->socket, hc.peer_gid, err, sizeof(err));
	if (hc.listen_fd < 0) {
		log_err("event=start_failed error=%s", LOG_Q(err));
		return 1;
	}
	if (geteuid() != 0 || a->user == NULL) {
		log_notice("event=single_process reason=%s",
		           geteuid() != 0 ? "not_root" : "no_admin_user");
		rc = serve_web(&hc);
		unlink(a->socket);
		log_notice("event=stopped");
		return rc;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		log_err("event=start_failed error=%s", LOG_Q(strerror(errno)));
		unlink(a->socket);
		return 1;
	}
	child = fork();
	if (child < 0) {
		log_err("event=start_failed error=%s", LOG_Q(strerror(errno)));
		unlink(a->socket);
		return 1;
	}
	if (child == 0) {
		close(sp[0]);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (drop_to(a->user, err, sizeof(err)) != 0) {
			log_err("event=start_failed error=%s", LOG_Q(err));
			_exit(1);
		}
		hc.exec_fd = sp[1];
		_exit(serve_web(&hc));
	}
	close(sp[1]);
	close(hc.listen_fd);
	log_notice("event=executor_started pid=%ld web_pid=%ld", (long)getpid(), (long)child);
	rc = admin_exec_serve(&x, sp[0], &stopping);
	if (!stopping)
		log_err("event=web_process_gone rc=%d", rc);
	kill(child, SIGTERM);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	close(sp[0]);
	unlink(a->socket);
	log_notice("event=stopped");
	return stopping ? 0 : 1;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("KEYAUTH_CONF");
	struct sigaction sa = { .sa_handler = on_term };
	bool test = false;
	char err[4096];
	struct conf *c;
	int opt, rc;

	if (path == NULL || path[0] == '\0')
		path = CONF_DEFAULT_PATH;
	while ((opt = getopt_long(argc, argv, "c:thV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("keyauth-admin %s\n", KEYAUTH_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("keyauth-admin", LOG_INFO, LOG_TARGET_STDERR);
	c = conf_load(path, err, sizeof(err));
	if (c == NULL) {
		log_err("event=config_error error=%s", LOG_Q(err));
		return 1;
	}
	log_set(c->log_level, c->log_target);
	if (check_conf(c, err, sizeof(err)) != 0 || load_files(c->admin, err, sizeof(err)) != 0) {
		log_err("event=config_error error=%s", LOG_Q(err));
		conf_free(c);
		return 1;
	}
	if (test) {
		printf("keyauth-admin: %s: configuration ok\n", path);
		conf_free(c);
		return 0;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = run(c, path);
	conf_free(c);
	return rc;
}
