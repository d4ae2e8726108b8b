/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proc: process and file helpers for the integration tests.
 *
 * Temporary directories, config files, spawning keyauthd with its stderr in a
 * log file, waiting (always with a bound, scaled by TEST_TIMEOUT_MULTIPLIER;
 * a wait that gives up says on stderr what it waited for),
 * signals, log greps and free loopback ports. Every process spawned here is
 * registered: an atexit handler kills (SIGKILL) and reaps whatever is still
 * running, and each child also gets PR_SET_PDEATHSIG so that it dies with the
 * test even when the test is killed or aborts. Nothing here prints file
 * contents (a log could, through a bug under test, hold a key).
 */
#ifndef TESTS_LIB_PROC_H
#define TESTS_LIB_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TP_PATH_MAX 256

/* TEST_TIMEOUT_MULTIPLIER (default 1, floor 1) times <ms>. */
int tp_scaled_ms(int ms);

/* Milliseconds on CLOCK_MONOTONIC. */
long long tp_now_ms(void);

/* Sleeps <ms> (used only between polls of a condition). */
void tp_nap_ms(long ms);

/* Creates a fresh private directory "<TMPDIR or /tmp>/<tag>-XXXXXX" into <out>.
 * Returns 0 or -1. */
int tp_mkdtemp(const char *tag, char *out, size_t outlen);

/* Removes <dir> and everything below it (no symlink is followed). Returns 0
 * or -1. */
int tp_rmtree(const char *dir);

/* Writes <content> to <path> (created or truncated, mode 0600). */
int tp_write_file(const char *path, const char *content);

/* Writes <len> bytes to a temporary file next to <path>, then renames it over
 * <path>, so that a watcher never sees a half-written file. */
int tp_replace_file(const char *path, const void *data, size_t len);

/* The keyauthd binary: $KEYAUTHD, else "build/keyauthd". */
const char *tp_keyauthd_path(void);

/*
 * Spawns <argv> (argv[0] is the program) with stdin from /dev/null, stdout
 * and stderr appended to <log_path>. Returns the pid or -1. The pid is
 * registered for the exit-time cleanup until tp_wait_exit reaps it.
 */
pid_t tp_spawn(char *const argv[], const char *log_path);

/* Spawns "keyauthd -c <conf_path>" with its output in <log_path>. */
pid_t tp_spawn_keyauthd(const char *conf_path, const char *log_path);

/* The redis-server the tests run: $REDIS_SERVER, else /usr/bin/redis-server. */
const char *tp_redis_server_path(void);

/*
 * Starts a throwaway redis-server on 127.0.0.1:<port> (0: a free port) with
 * no persistence, its files in <dir> and its output in <dir>/<name>.log,
 * <extra> (NULL-terminated, or NULL) added to its arguments, and waits until
 * it accepts connections. Fills <addr> ("127.0.0.1:PORT"). Returns its pid,
 * 0 when redis-server is not installed (the caller skips), -1 on failure.
 */
pid_t tp_redis_start(const char *dir, const char *name, int port, char *const extra[],
                     char *addr, size_t addrlen);

/* Runs "keyauthd -t -c <conf_path>" to completion (bounded) with its output
 * in <log_path>; returns its exit status, or -1 if it did not exit normally. */
int tp_run_keyauthd_check(const char *conf_path, const char *log_path);

/* Waits until <addr> accepts a connection (10 ms polls, bounded by <ms>
 * scaled), and that <pid> is still alive meanwhile. Returns 0 or -1. */
int tp_wait_connectable(pid_t pid, const char *addr, int ms);

/* Sends <sig> to <pid> if it is one of ours and not reaped. Returns 0 or -1. */
int tp_signal(pid_t pid, int sig);

/*
 * Waits up to <ms> (scaled) for <pid> to exit and reaps it. On success returns
 * 0 with the raw wait status in <*status> (may be NULL). If it is still
 * running at the deadline it is killed with SIGKILL, reaped, and -1 returned.
 */
int tp_wait_exit(pid_t pid, int ms, int *status);

/* True if <pid> has not exited yet (it is reaped here if it has). */
bool tp_alive(pid_t pid);

/* Kills (SIGKILL) and reaps every registered child still running. */
void tp_kill_all(void);

/* True if the file at <path> contains <needle> (binary-safe search over
 * <needle_len> bytes; pass strlen for strings). */
bool tp_file_contains(const char *path, const void *needle, size_t needle_len);

/* True if <path> contains the string <needle>. */
bool tp_log_contains(const char *path, const char *needle);

/* Polls <path> every 10 ms until it contains <needle>, bounded by <ms>
 * scaled. Returns 0, or -1 at the deadline. */
int tp_wait_log(const char *path, const char *needle, int ms);

/* How many lines of the file at <path> contain <needle> (0 when absent). */
int tp_count_lines(const char *path, const char *needle);

/* Size of the file at <path>, or 0 when absent. */
size_t tp_file_size(const char *path);

/*
 * True if the part of <path> from byte <from> on has a line containing all of
 * <needles> (a NULL-terminated list). Used to find a new log line of a given
 * kind after some action.
 */
bool tp_log_line_since(const char *path, size_t from, const char *const *needles);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind 0, getsockname,
 * close). Returns the port or -1. */
int tp_free_port(void);

#endif /* TESTS_LIB_PROC_H */
