// SPDX-License-Identifier: Apache-2.0
// Helpers for the end-to-end tests: real HAProxy, real keyauthd, real curl,
// the stand-in provider. Everything here runs on loopback, in one temporary
// directory that is removed at the end, and every process it starts is
// tracked by pid and killed (by that pid, never by name) in the tests' after()
// hooks; whatever they leave (a before() hook that failed half-way) is stopped
// by a file-level after() hook registered here, and again, synchronously,
// when the test process exits. A file whose tests are over but which is kept
// alive by something else ends itself, loudly, a few seconds later.
//
// Keys never travel in argv: keyauthctl prints new keys on stdout (captured in
// memory here), keys given to keyauthctl go on stdin, and curl gets its URL
// and headers as a config file on stdin (`curl -K -`). Nothing here prints a
// key; callers compare keys only through booleans.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KEYAUTHD = path.resolve(ROOT, process.env.KEYAUTHD || 'build/keyauthd');
export const KEYAUTHCTL = path.resolve(ROOT, process.env.KEYAUTHCTL || 'build/keyauthctl');
export const PROVIDER_JS = path.join(ROOT, 'tests', 'e2e', 'provider.js');

/* ---- process and temp-dir bookkeeping ----------------------------------------- */

const tracked = new Map();       // pid -> { name, kind }
// Every keyauthd log line of the run must be logfmt (what Loki and Vector
// parse, issue #21): each agent's output is checked once it has exited, and
// the file fails in its last hook if a line was not.
const { badLines: logfmtBadLines } = createRequire(import.meta.url)('../lib/logfmt.cjs');
const logfmtFailures = [];
const tempDirs = new Set();

/* Pids whose parent is <ppid> (HAProxy workers of a master), from /proc. */
export function childPids(ppid) {
	const out = [];
	let names;
	try {
		names = fs.readdirSync('/proc');
	} catch {
		return out;
	}
	for (const n of names) {
		if (!/^\d+$/.test(n))
			continue;
		try {
			const stat = fs.readFileSync(`/proc/${n}/stat`, 'utf8');
			// "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
			const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			if (Number(rest[1]) === ppid)
				out.push(Number(n));
		} catch { /* gone meanwhile */ }
	}
	return out;
}

export function alive(pid) {
	try {
		process.kill(pid, 0);
	} catch {
		return false;
	}
	// A zombie still answers kill(0); it is dead for our purposes.
	try {
		const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
		return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
	} catch {
		return false;
	}
}

function killSync(pid, sig) {
	try {
		process.kill(pid, sig);
	} catch { /* already gone */ }
}

/* Last resort at exit: SIGKILL every tracked pid (HAProxy workers first),
 * then remove the temp dirs. Synchronous: runs in process.on('exit'). */
function emergencyCleanup() {
	for (const [pid, t] of tracked) {
		if (t.kind === 'haproxy') {
			for (const w of childPids(pid))
				killSync(w, 'SIGKILL');
		}
		killSync(pid, 'SIGKILL');
	}
	tracked.clear();
	for (const d of tempDirs)
		fs.rmSync(d, { recursive: true, force: true });
	tempDirs.clear();
}
process.on('exit', emergencyCleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
	process.once(sig, () => {
		emergencyCleanup();
		process.exit(128 + os.constants.signals[sig]);
	});
}

/* When this test file started (for E2E_TIMES, below). */
const FILE_T0 = Date.now();

/* Seconds a test file may stay alive once its tests and hooks are over
 * (E2E_EXIT_GRACE, default 30). */
const EXIT_GRACE_MS = 1000 * (Number(process.env.E2E_EXIT_GRACE) > 0 ? Number(process.env.E2E_EXIT_GRACE) : 30);

/* Stops every process still tracked (all at once, each SIGTERM then SIGKILL
 * after <timeout> ms) and removes every temp dir; returns the names of the
 * processes it found running. The tests' own after() hooks stop what they
 * started; this catches what a failed before() hook (which never handed its
 * state to them) or a forgotten stopProcess left behind. */
export async function stopAll({ timeout = 3000 } = {}) {
	const left = [];
	const stops = [];
	for (const [pid, t] of tracked) {
		if (t.handle ? t.handle.isRunning() : alive(pid))
			left.push(`${t.name} (pid ${pid})`);
		stops.push(t.handle ? stopProcess(t.handle, { timeout }) : stopPid(pid, timeout));
	}
	await Promise.all(stops);
	tracked.clear();
	for (const d of tempDirs) {
		try {
			fs.rmSync(d, { recursive: true, force: true });
		} catch (e) {
			console.log(`# lib.js: could not remove ${d}: ${e.message}`);
		}
	}
	tempDirs.clear();
	return left;
}

async function stopPid(pid, timeout) {
	killSync(pid, 'SIGTERM');
	try {
		await waitFor(`pid ${pid} to exit after SIGTERM`, () => !alive(pid), { timeout });
	} catch {
		killSync(pid, 'SIGKILL');
	}
}

/* File level: runs after every test and hook of the file that imports this
 * module, whether they passed, failed or were cancelled (a failed before()
 * cancels its tests, then the after() hooks run). A live child process is a
 * handle that keeps node's event loop, hence the test file, alive: without
 * this, a before() that failed after starting the provider left a file that
 * never ended. */
after(async () => {
	const left = await stopAll();
	if (left.length)
		console.log(`# lib.js: stopped ${left.length} process(es) left running at the end of the file: ${left.join(', ')}`);
	// `make test` collects "<file> <ms>" lines for its table of durations.
	if (process.env.E2E_TIMES)
		fs.appendFileSync(process.env.E2E_TIMES, `${path.basename(process.argv[1] || 'unknown')} ${Date.now() - FILE_T0}\n`);
	// Nothing of ours is left: if the file is still alive after the grace,
	// something else holds it (a socket, a timer, an untracked child). Say
	// what and end it, failing.
	setTimeout(() => {
		// (This timer, running now, is no longer listed.)
		const what = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
		console.error(`lib.js: the tests are over but the file is still running ${EXIT_GRACE_MS / 1000} s later ` +
			`(active resources: ${what.join(', ') || 'none listed'}); exiting with status 1`);
		process.exit(1);
	}, EXIT_GRACE_MS).unref();
	if (logfmtFailures.length)
		throw new Error(`keyauthd log lines that are not logfmt:\n${redact(logfmtFailures.join('\n'))}`);
}, { timeout: 30000 });

export function makeTempDir(tag) {
	const d = fs.mkdtempSync(path.join(os.tmpdir(), `keyauth-e2e-${tag}-`));
	tempDirs.add(d);
	return d;
}

export function removeTempDir(d) {
	fs.rmSync(d, { recursive: true, force: true });
	tempDirs.delete(d);
}

/* ---- secrets ---------------------------------------------------------------------- */

// Every key a test uses, so that anything shown (assertion values, error
// messages) can be redacted and every file of the run scanned for them.
const secrets = new Map();       // key -> label

export function addSecret(label, key) {
	if (typeof key !== 'string' || key.length < 8)
		throw new Error(`secret ${label} is not a key`);
	secrets.set(key, label);
	return key;
}

/* The pieces of each key that must never show up: the key and two stretches
 * of its random part (a truncated key is still a leak), longest first. */
function needles() {
	const out = [];
	for (const [k, label] of secrets) {
		out.push([k, `<key:${label}>`]);
		if (k.length >= 40) {
			out.push([k.slice(3, 19), `<part-of-key:${label}>`]);
			out.push([k.slice(-16), `<part-of-key:${label}>`]);
		}
	}
	return out.sort((a, b) => b[0].length - a[0].length);
}

/* <s> with every key (or stretch of one) replaced by a <key:label> marker. */
export function redact(s) {
	let out = String(s);
	for (const [n, mark] of needles())
		out = out.split(n).join(mark);
	return out;
}

/* True when <text> holds any key or stretch of one. */
export function holdsSecret(text) {
	return needles().some(([n]) => text.includes(n));
}

/* ---- waiting -------------------------------------------------------------------- */

export const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/* An error that makes waitFor give up at once instead of polling on:
 * `throw fatal('keyauthd exited: ...')` from the condition when what is
 * awaited can no longer happen. */
export function fatal(message) {
	const e = new Error(message);
	e.fatal = true;
	return e;
}

/* Polls <fn> (sync or async) every <interval> ms until it returns a truthy
 * value, which is returned; throws after <timeout> ms naming <what>, or at
 * once when <fn> throws a fatal() error. The only way these tests wait for
 * anything. */
export async function waitFor(what, fn, { timeout = 5000, interval = 50 } = {}) {
	const end = Date.now() + timeout;
	let last;
	for (;;) {
		try {
			last = await fn();
		} catch (e) {
			last = undefined;
			if (e && e.fatal)
				throw new Error(`gave up waiting for ${what}: ${redact(e.message)}`);
			if (Date.now() >= end)
				throw new Error(`timed out after ${timeout} ms waiting for ${what} (last error: ${redact(e.message)})`);
		}
		if (last)
			return last;
		if (Date.now() >= end)
			throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
		await delay(interval);
	}
}

/* <promise>'s value, or a rejection with <message> after <ms>. The timer is
 * cleared either way: a pending one would keep the file alive. */
export async function timeLimit(promise, ms, message) {
	let timer;
	const expiry = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(message)), ms);
	});
	try {
		return await Promise.race([promise, expiry]);
	} finally {
		clearTimeout(timer);
	}
}

/* For a waitFor condition: throws fatal() when the started process <p> has
 * exited (what was awaited of it can no longer happen), with the end of
 * <log> (its stderr unless told). */
export function failIfExited(p, log = p.err) {
	if (!p.isRunning())
		throw fatal(`${p.name} exited: ${redact(readText(log).slice(-500))}`);
}

/* A waitFor condition: <p> still runs and something accepts TCP connections
 * on 127.0.0.1:<port>. */
export function listening(p, port) {
	failIfExited(p);
	return portOpen(port);
}

/* A waitFor condition: the port a stand-in (provider.js, vendors.js) printed
 * on stdout as "listening <port>", once it has; fatal if it exited. */
export function announcedPort(p) {
	failIfExited(p);
	const m = /listening (\d+)/.exec(readText(p.out));
	return m ? Number(m[1]) : null;
}

/* A free loopback TCP port (bound then released: the kernel will not hand it
 * out again at once). */
export function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.once('error', reject);
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
	});
}

/* True when something accepts TCP connections on 127.0.0.1:<port>. */
export function portOpen(port) {
	return new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		const done = (v) => { s.destroy(); resolve(v); };
		s.once('connect', () => done(true));
		s.once('error', () => done(false));
		s.setTimeout(1000, () => done(false));
	});
}

/* ---- long-running processes ----------------------------------------------------- */

/* Starts <cmd args> with stdout and stderr appended to <dir>/<name>.out|.err.
 * kind 'haproxy' means: also kill its workers on cleanup. Returns a handle:
 * { pid, name, out, err, exited (promise of {code, signal}), isRunning() }. */
export function startProcess(name, cmd, args, { dir, env = process.env, cwd = dir, kind = 'plain' }) {
	const out = path.join(dir, `${name}.out`);
	const err = path.join(dir, `${name}.err`);
	const ofd = fs.openSync(out, 'a');
	const efd = fs.openSync(err, 'a');
	const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', ofd, efd] });
	fs.closeSync(ofd);
	fs.closeSync(efd);
	if (child.pid === undefined)
		throw new Error(`could not start ${name} (${cmd})`);
	let running = true;
	const exited = new Promise((resolve) => {
		child.once('exit', (code, signal) => {
			running = false;
			resolve({ code, signal });
		});
	});
	child.once('error', () => { running = false; });
	const handle = { pid: child.pid, name, out, err, exited, isRunning: () => running, kind,
		agent: path.resolve(cwd || '.', cmd) === KEYAUTHD };
	tracked.set(child.pid, { name, kind, handle });
	return handle;
}

/* Stops a started process: <signal>, then SIGKILL after <timeout> ms. For
 * HAProxy the workers (children of the master) are collected first and any
 * still alive afterwards are killed by pid. */
export async function stopProcess(p, { signal = 'SIGTERM', timeout = 5000 } = {}) {
	if (p == null)
		return;
	const workers = p.kind === 'haproxy' && p.isRunning() ? childPids(p.pid) : [];
	if (p.isRunning()) {
		killSync(p.pid, signal);
		// A cleared timer: a pending one would keep the file alive for
		// <timeout> ms after its last test.
		let timer;
		const t = await Promise.race([p.exited, new Promise((r) => { timer = setTimeout(() => r(null), timeout); })]);
		clearTimeout(timer);
		if (t === null) {
			killSync(p.pid, 'SIGKILL');
			await p.exited;
		}
	}
	for (const w of workers) {
		if (alive(w)) {
			killSync(w, 'SIGTERM');
			try {
				await waitFor(`haproxy worker ${w} to exit`, () => !alive(w), { timeout: 3000 });
			} catch {
				killSync(w, 'SIGKILL');
			}
		}
	}
	tracked.delete(p.pid);
	if (p.agent && !p.logChecked) {
		p.logChecked = true;
		for (const f of [p.out, p.err]) {
			let text = '';
			try {
				text = fs.readFileSync(f, 'utf8');
			} catch {
				continue;
			}
			for (const l of logfmtBadLines(text))
				logfmtFailures.push(`${p.name}: ${l}`);
		}
	}
}

/* ---- one-shot commands ------------------------------------------------------------ */

/* Runs <cmd args> to completion; <input> goes to stdin. Resolves to
 * { status, signal, stdout, stderr } (strings); never rejects on exit status. */
export function run(cmd, args, { input = '', env = process.env, cwd, timeout = 30000 } = {}) {
	return new Promise((resolve, reject) => {
		const child = spawn(cmd, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
		const so = [];
		const se = [];
		const timer = setTimeout(() => killSync(child.pid, 'SIGKILL'), timeout);
		if (child.pid !== undefined)
			tracked.set(child.pid, { name: path.basename(cmd), kind: 'oneshot' });
		child.stdout.on('data', (b) => so.push(b));
		child.stderr.on('data', (b) => se.push(b));
		child.once('error', (e) => { clearTimeout(timer); tracked.delete(child.pid); reject(e); });
		child.once('close', (status, signal) => {
			clearTimeout(timer);
			tracked.delete(child.pid);
			resolve({ status, signal, stdout: Buffer.concat(so).toString(), stderr: Buffer.concat(se).toString() });
		});
		child.stdin.on('error', () => { /* the command may not read stdin */ });
		child.stdin.end(input);
	});
}

/* keyauthctl -c <conf> <args...>. stderr (which never holds a key) is
 * appended to <logFile> when given, so the final leak scan covers it. */
export async function ctl(conf, args, { input = '', env = process.env, logFile } = {}) {
	const r = await run(KEYAUTHCTL, ['-c', conf, ...args], { input, env });
	if (logFile)
		fs.appendFileSync(logFile, `$ keyauthctl ${args.join(' ')}\n${r.stderr}`);
	return r;
}

/* keyauthctl -c <conf> key create --route <route> --owner <owner> --json
 * [<extra>]: the parsed answer ({ key, id, rpm, ... }), its key registered
 * as a secret under <secret> (kept in memory only). Throws, without the key,
 * when keyauthctl fails or prints no key and id. */
export async function keyCreate(conf, route, { owner, secret, extra = [], env = process.env, logFile } = {}) {
	const r = await ctl(conf, ['key', 'create', '--route', route, '--owner', owner, '--json', ...extra],
		{ env, logFile });
	if (r.status !== 0)
		throw new Error(`keyauthctl key create --route ${route} failed (exit ${r.status}): ${redact(r.stderr)}`);
	let o;
	try {
		o = JSON.parse(r.stdout);
	} catch {
		throw new Error('keyauthctl key create --json printed no JSON');
	}
	if (typeof o.key !== 'string' || typeof o.id !== 'string')
		throw new Error('keyauthctl key create --json printed no key or id');
	addSecret(secret, o.key);
	return o;
}

/* ---- the gateway ------------------------------------------------------------------- */

/*
 * HAProxy on what `keyauthctl haproxy` renders for <g.conf> into <g.hapDir>
 * (frontend on 127.0.0.1:<g.gwPort>, --haproxy-version <hap.render>),
 * checked with `haproxy -c` first, then started in master-worker mode in the
 * foreground (-W -db: one pid, the master, which SIGUSR2 reloads) with
 * <env> added to the environment (the providers' credentials), and waited
 * for until it listens. <extraCfg>: more -f files after the rendered one;
 * <bin>: the binary (default hap.bin). Sets g.hapCfg and g.haproxy (also
 * pushed on g.procs). Throws, redacted, when a step fails.
 */
export async function startRenderedHaproxy(g, hap, { env = {}, extraCfg = [], bin = hap.bin } = {}) {
	const r = await ctl(g.conf, ['haproxy', '--out', g.hapDir, '--bind', `127.0.0.1:${g.gwPort}`,
		'--haproxy-version', hap.render], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl haproxy failed: ${redact(r.stderr)}`);
	g.hapCfg = path.join(g.hapDir, 'haproxy-keyauth.cfg');
	const cfgArgs = ['-f', g.hapCfg, ...extraCfg.flatMap((f) => ['-f', f])];
	const chk = await run(bin, ['-c', ...cfgArgs]);
	if (chk.status !== 0)
		throw new Error(`haproxy -c rejected the rendered config: ${redact(chk.stdout + chk.stderr)}`);
	g.haproxy = startProcess('haproxy', bin, ['-W', '-db', ...cfgArgs],
		{ dir: g.dir, env: { ...process.env, ...env }, kind: 'haproxy' });
	g.procs.push(g.haproxy);
	await waitFor('HAProxy to listen', () => listening(g.haproxy, g.gwPort), { timeout: 15000 });
	return g.haproxy;
}

/* ---- curl -------------------------------------------------------------------------- */

function curlQuote(s) {
	if (/[\r\n]/.test(s))
		throw new Error('curl config value with a newline');
	return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

let curlSeq = 0;

/* One HTTP request with curl. The URL and headers (which may hold keys) go on
 * stdin as a curl config; argv is only `curl -K -`. The body and headers are
 * saved under <dir> (scanned for keys at the end). Resolves to
 * { status, headers (lower-cased names), body, json (or null) }. */
export async function curl(dir, { url, headers = [], method, data, timeout = 10 }) {
	const n = ++curlSeq;
	const bodyFile = path.join(dir, `curl-${n}.body`);
	const hdrFile = path.join(dir, `curl-${n}.headers`);
	const lines = [
		`url = ${curlQuote(url)}`,
		'silent',
		'show-error',
		`max-time = ${timeout}`,
		`output = ${curlQuote(bodyFile)}`,
		`dump-header = ${curlQuote(hdrFile)}`,
		`write-out = ${curlQuote('%{http_code}')}`,
	];
	for (const h of headers)
		lines.push(`header = ${curlQuote(h)}`);
	if (method)
		lines.push(`request = ${curlQuote(method)}`);
	if (data !== undefined)
		lines.push(`data-binary = ${curlQuote(data)}`);
	const r = await run('curl', ['-K', '-'], { input: lines.join('\n') + '\n', timeout: (timeout + 5) * 1000 });
	const status = Number(r.stdout.trim());
	if (r.status !== 0 && !(status > 0))
		throw new Error(`curl failed (exit ${r.status}): ${redact(r.stderr.trim())}`);
	const body = fs.existsSync(bodyFile) ? fs.readFileSync(bodyFile, 'utf8') : '';
	const hdrs = {};
	if (fs.existsSync(hdrFile)) {
		for (const line of fs.readFileSync(hdrFile, 'utf8').split(/\r?\n/)) {
			const i = line.indexOf(':');
			if (i > 0)
				hdrs[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
		}
	}
	let json = null;
	try {
		json = JSON.parse(body);
	} catch { /* not JSON */ }
	return { status, headers: hdrs, body, json };
}

/* ---- HAProxy binaries --------------------------------------------------------------- */

function haproxyVersion(bin) {
	const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 15000 });
	if (r.error)
		return { error: r.error.message };
	const m = /HAProxy version (\d+)\.(\d+)(\.\S+)?/.exec(r.stdout || '');
	if (r.status !== 0 || !m)
		return { error: `'${bin} -v' exited ${r.status}: ${(r.stderr || r.stdout || '').trim().split('\n')[0]}` };
	return { major: Number(m[1]), minor: Number(m[2]), full: `${m[1]}.${m[2]}${m[3] || ''}` };
}

/* The HAProxy binaries every case runs against: Debian's 2.6 (always; a
 * missing one is an error the caller turns into a failing test) and 3.2 from
 * scripts/haproxy32.sh's wrapper when it exists and runs. Each entry:
 * { label, bin, full, render: value for --haproxy-version } or { skip: reason }. */
export function haproxyBinaries() {
	const out = [];
	const b26 = process.env.HAPROXY26 || '/usr/sbin/haproxy';
	const v26 = fs.existsSync(b26) ? haproxyVersion(b26) : { error: `${b26} not found` };
	if (v26.error)
		out.push({ label: '2.6', bin: b26, error: v26.error });
	else
		out.push({ label: `${v26.major}.${v26.minor}`, bin: b26, full: v26.full, render: '2.6' });

	const b32 = process.env.HAPROXY32 || path.join(ROOT, '.haproxy32', 'bin', 'haproxy');
	if (!fs.existsSync(b32)) {
		out.push({ label: '3.2', skip: `${b32} not found (scripts/haproxy32.sh creates it)` });
		return out;
	}
	const v32 = haproxyVersion(b32);
	if (v32.error)
		out.push({ label: '3.2', skip: v32.error });
	else if (v32.major !== 3 || v32.minor < 1)
		out.push({ label: '3.2', skip: `${b32} is HAProxy ${v32.full}, not 3.1+` });
	else
		out.push({ label: `${v32.major}.${v32.minor}`, bin: b32, full: v32.full, render: `${v32.major}.${v32.minor}` });
	return out;
}

/* A wrapper that starts a loader-run HAProxy (scripts/haproxy32.sh's layout:
 * <top>/bin/haproxy, <top>/root/...) so that the master can re-execute itself
 * on reload. HAProxy's master re-executes argv[0]; under `ld.so PROGRAM`
 * argv[0] is the bare sid binary, which then starts with the system's loader
 * and libraries and dies ("liblua5.4.so.0: cannot open shared object file"),
 * taking the master with it. `ld.so --argv0 WRAPPER` makes the re-exec go
 * through the wrapper again. Returns <bin> itself when its wrapper already
 * passes --argv0 or is not of that layout. */
export function reloadableHaproxy(bin, dir) {
	let text;
	try {
		text = fs.readFileSync(bin, 'utf8');
	} catch {
		return { bin, patched: false };
	}
	if (!text.startsWith('#!') || text.includes('--argv0') || !text.includes('ld-linux'))
		return { bin, patched: false };
	const root = path.join(path.dirname(path.dirname(fs.realpathSync(bin))), 'root');
	const ld = path.join(root, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2');
	const exe = path.join(root, 'usr/sbin/haproxy');
	if (!fs.existsSync(ld) || !fs.existsSync(exe))
		return { bin, patched: false };
	const libs = `${root}/usr/lib/x86_64-linux-gnu:${root}/lib/x86_64-linux-gnu`;
	const w = path.join(dir, 'haproxy-reloadable');
	fs.writeFileSync(w, `#!/bin/sh\nexec '${ld}' --argv0 '${w}' --library-path '${libs}' '${exe}' "$@"\n`, { mode: 0o755 });
	return { bin: w, patched: true };
}

/* ---- files --------------------------------------------------------------------------- */

/* Every regular file under <dir>, recursively. */
export function filesUnder(dir) {
	const out = [];
	for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
		const p = path.join(dir, e.name);
		if (e.isDirectory())
			out.push(...filesUnder(p));
		else if (e.isFile())
			out.push(p);
	}
	return out;
}

export function readText(p) {
	try {
		return fs.readFileSync(p, 'latin1');
	} catch {
		return '';
	}
}

/* Number of lines of <file> matching <re>. */
export function countLines(file, re) {
	return readText(file).split('\n').filter((l) => re.test(l)).length;
}

/* ---- one describe() per HAProxy binary ------------------------------------------------ */

/* Defines the cases of a file once per HAProxy binary (haproxyBinaries()),
 * in a describe() named `<title> <version>`:
 * - a binary that is absent (3.2), or every one when <unavailable> gives a
 *   reason the file cannot run here: a loud SKIP line and a skipped test;
 * - one that does not run (2.6 is required): a failing test;
 * - otherwise: before() asserts keyauthd and keyauthctl are built and sets
 *   the gateway g = await start(hap, idx) ({ procs, dir, ... }); after()
 *   stops g.procs, last started first, and removes g.dir (or, given, runs
 *   stop(g) instead); with <keepEnv> set in the environment, a copy of
 *   g.dir is kept and named first.
 * body(ctx) defines the cases: ctx.hap, ctx.idx, ctx.V (the prefix of
 * their names) and ctx.g, the gateway (a getter: set once before() ran).
 * <tag> names the file in the SKIP and failing tests' names, <vTag> goes
 * into V; timeout and beforeTimeout (ms) bound the describe and before(). */
export function forEachHaproxy(title, opts, start, body) {
	const { timeout, beforeTimeout = 60000, tag = '', vTag = '', keepEnv, unavailable, stop } = opts;
	for (const [idx, hap] of haproxyBinaries().entries()) {
		const reason = unavailable || hap.skip;
		if (reason) {
			const line = `SKIP haproxy ${hap.label}${tag ? ` ${tag}` : ''}: ${reason}`;
			console.log(`\n#### ${line} ####\n`);
			test(line, { skip: reason }, () => {});
			continue;
		}
		if (hap.error) {
			test(`haproxy ${hap.label} is available${tag ? ` for ${tag}` : ''}`, () => {
				assert.fail(`HAProxy ${hap.label} is required for the ${tag || 'end-to-end'} tests: ${hap.error}`);
			});
			continue;
		}
		const V = `[haproxy ${hap.full}${vTag ? ` ${vTag}` : ''}]`;
		let g;
		describe(`${title} ${hap.full}`, { timeout }, () => {
			before(async () => {
				assert.ok(fs.existsSync(KEYAUTHD), `${KEYAUTHD} not built`);
				assert.ok(fs.existsSync(KEYAUTHCTL), `${KEYAUTHCTL} not built`);
				g = await start(hap, idx);
			}, { timeout: beforeTimeout });

			after(async () => {
				if (!g)
					return;
				if (stop) {
					await stop(g);
					return;
				}
				for (const p of [...g.procs].reverse())
					await stopProcess(p);
				if (keepEnv && process.env[keepEnv]) {
					// A copy: the temp dirs are removed at exit.
					const keep = fs.mkdtempSync(path.join(os.tmpdir(), `keyauth-${tag}-kept-${hap.label}-`));
					fs.cpSync(g.dir, keep, { recursive: true, filter: (src) => !fs.lstatSync(src).isSocket() });
					console.log(`# ${V} ${keepEnv}: the run's files are in ${keep}`);
				}
				removeTempDir(g.dir);
			});

			body({ hap, idx, V, get g() { return g; } });
		});
	}
}
