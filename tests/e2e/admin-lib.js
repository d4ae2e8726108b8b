// SPDX-License-Identifier: Apache-2.0
// Shared start-up of the admin stack for the end-to-end tests of issue 22:
// a stand-in provider, keyauthd, keyauth-admin and HAProxy on what
// `keyauthctl haproxy` renders for a keyauth.conf with an `admin` group.
// Used by admin-haproxy.test.js and console.test.js (hk); admin-api.test.js
// (hs) may use adminConfText/startAdminStack too: it talks to the daemon's
// socket directly, so it can pass { haproxy: false }. Keep the exports
// backwards compatible, or update every user.
//
// Nothing here puts a key in argv or in printed output: keys come back from
// keyauthctl's stdout into memory (lib.js keyCreate, which registers them as
// secrets) and go to curl on stdin (lib.js curl).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import {
	KEYAUTHCTL, KEYAUTHD, PROVIDER_JS, ROOT, announcedPort, ctl, curl, failIfExited, filesUnder, freePort,
	holdsSecret, keyCreate, listening, makeTempDir, readText, redact, reloadableHaproxy, startProcess,
	startRenderedHaproxy, stopProcess, waitFor,
} from './lib.js';

export const KEYAUTH_ADMIN = path.resolve(ROOT, process.env.KEYAUTH_ADMIN ||
	path.join(path.dirname(KEYAUTHD), 'keyauth-admin'));
export const CONSOLE_DIR = path.join(ROOT, 'agent', 'admin', 'console');
export const ADMIN_CONTEXT = '/admin';

/* keyauth.conf for the stack. Routes: "openai" (provider, X-API-Key header:
 * what the console test edits) and "other" (proxy, X-Other-Key). The admin
 * group's rate limit is high unless told (<adminRpm>): the console makes many
 * calls per page. The web process runs as <adminUser> ("nobody": the
 * package's keyauth-admin user need not exist here; root's executor and the
 * unprivileged web process are split as in production). <adminLines>: more
 * settings inside the admin group. */
export function adminConfText(g, { keyName = 'X-API-Key', adminRpm = 100000, adminUser = 'nobody', adminLines = [] } = {}) {
	const up = `127.0.0.1:${g.providerPort}`;
	return `# keyauth admin e2e configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 1;
pid_file = "${g.dir}/keyauthd.pid";
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
frontend = { bind = [ "127.0.0.1:${g.gwPort}" ]; };
route_overrides = "${g.overrides}";
admin = {
	context = "${ADMIN_CONTEXT}";
	socket = "${g.adminSocket}";
	keyauthctl = "${KEYAUTHCTL}";
	console_dir = "${CONSOLE_DIR}";
	rate_limit_rpm = ${adminRpm};
${adminUser ? `	user = "${adminUser}";
` : ''}${adminLines.map((l) => `\t${l}\n`).join('')}};
${deployGroup(g)}routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "${keyName}"; key_location = "header"; }; },
	{ name = "other"; type = "proxy"; context = "/other"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "X-Other-Key"; key_location = "header"; }; }
);
`;
}

/* The status of GET <p> on the unix socket <sock> (no headers: the
 * daemon's public paths only), or 0 when nothing answers. */
export function socketGet(sock, p) {
	return new Promise((resolve) => {
		const req = http.request({ socketPath: sock, path: p, method: 'GET', timeout: 2000 }, (res) => {
			res.resume();
			res.once('end', () => resolve(res.statusCode));
		});
		req.once('timeout', () => req.destroy());
		req.once('error', () => resolve(0));
		req.end();
	});
}

/* The deploy group: keyauth-admin runs plain `keyauthctl -c CONF deploy
 * [--preview|--if-preview=ID] --json`, whose defaults are otherwise the
 * installed gateway's (/etc/haproxy, Debian's haproxy.service), which a test
 * must not touch. Here a deploy (and its preview) goes to the run's HAProxy
 * dir and binary (its version asked with -v) and reloads the run's HAProxy
 * master (its pid read from <g.masterPidFile> at reload time); without an
 * HAProxy, it reloads nothing. */
function deployGroup(g) {
	const reload = g.hapBin ? `kill -USR2 $(cat ${g.masterPidFile})` : 'none';
	return `deploy = {
	haproxy_dir = "${g.hapDir}";
	haproxy_service = "none";
${g.hapBin ? `	haproxy = "${g.hapBin}";
` : ''}	reload_haproxy = "${reload}";
};
`;
}

/* Starts keyauth-admin -c <g.conf> and waits until its socket answers
 * (GET /: the console page, no key needed). */
export async function startAdmin(g, name = 'keyauth-admin') {
	assert.ok(fs.existsSync(KEYAUTH_ADMIN), `${KEYAUTH_ADMIN} not built (make B=... all)`);
	const p = startProcess(name, KEYAUTH_ADMIN, ['-c', g.conf], { dir: g.dir });
	g.procs.push(p);
	await waitFor(`${name} to serve on its socket`, async () => {
		failIfExited(p);
		if (!fs.existsSync(g.adminSocket))
			return false;
		return (await socketGet(g.adminSocket, '/')) === 200;
	}, { timeout: 15000, interval: 100 });
	return p;
}

/*
 * The whole stack for <hap> (a haproxyBinaries() entry): g = { dir, conf,
 * store, overrides, hapDir, adminSocket, curlDir, ctlLog, procs, provider,
 * agent, admin, haproxy, hapBin, gwPort, ... }. HAProxy runs from a wrapper
 * that survives a master-worker reload (lib.js reloadableHaproxy), so a
 * deploy can reload it with `kill -USR2 <master>`. <haproxy: false>: no
 * HAProxy (the daemon alone). <adminOpts> go to adminConfText.
 */
export async function startAdminStack(hap, { tag = 'admin', haproxy = true, ...adminOpts } = {}) {
	const g = { hap, procs: [], keys: {} };
	g.dir = makeTempDir(`${tag}-${hap ? hap.label : 'nohap'}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	// The socket's directory is trust-checked like keyauthd's listener
	// directories: root's, not writable by others.
	g.runDir = path.join(g.dir, 'run');
	fs.mkdirSync(g.runDir, { mode: 0o750 });
	g.adminSocket = path.join(g.runDir, 'admin.sock');
	// curl's saved bodies hold the keys that create/rotate return: kept
	// apart from the logs the leak scan reads.
	g.curlDir = path.join(g.dir, 'curl');
	fs.mkdirSync(g.curlDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.overrides = path.join(g.dir, 'routes.override');
	g.adminOpts = adminOpts;
	if (hap) {
		const rh = reloadableHaproxy(hap.bin, g.dir);
		g.hapBin = rh.bin;
		g.masterPidFile = path.join(g.dir, 'haproxy-master.pid');
	}

	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, adminConfText(g, adminOpts), { mode: 0o600 });

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => listening(g.agent, g.agentPort), { timeout: 5000 });

	g.admin = await startAdmin(g);
	if (haproxy && hap) {
		await startRenderedHaproxy(g, hap, { bin: g.hapBin });
		fs.writeFileSync(g.masterPidFile, `${g.haproxy.pid}\n`);
		await waitFor('the console through HAProxy', async () =>
			(await gw(g, 'GET', `${ADMIN_CONTEXT}/`)).status === 200, { timeout: 15000, interval: 100 });
	}
	return g;
}

/* Stops g's processes, last started first. */
export async function stopAdminStack(g) {
	for (const p of [...g.procs].reverse())
		await stopProcess(p);
}

/* An admin key with <scopes> (["read", ...]) made with keyauthctl (<more>:
 * more options, e.g. ["--rpm", "3"]); the key stays in memory, registered as
 * a secret under <label>. */
export async function adminKey(g, label, scopes, { owner = `${label}@example.com`, more = [] } = {}) {
	const extra = [...scopes.flatMap((s) => ['--scope', s]), ...more];
	return keyCreate(g.conf, 'admin', { owner, secret: `${label}@${g.hap ? g.hap.label : 'nohap'}`, extra,
		logFile: g.ctlLog });
}

/* A key for a user route <route>. */
export async function routeKey(g, route, label) {
	return keyCreate(g.conf, route, { owner: `${label}@example.com`, secret: `${label}@${g.hap ? g.hap.label : 'nohap'}`,
		logFile: g.ctlLog });
}

/* One request through HAProxy's frontend. <key>: sent as Authorization:
 * Bearer (never argv: lib.js curl feeds its config on stdin); <headers>
 * more "Name: value" lines; <body> an object sent as JSON. */
export function gw(g, method, pathAndQuery, { key, headers = [], body, raw } = {}) {
	const h = [...headers];
	if (key !== undefined)
		h.push(`Authorization: Bearer ${key}`);
	let data;
	if (body !== undefined) {
		h.push('Content-Type: application/json');
		data = JSON.stringify(body);
	} else if (raw !== undefined) {
		data = raw;
	}
	return curl(g.curlDir, {
		url: `http://127.0.0.1:${g.gwPort}${pathAndQuery}`, headers: h, data,
		method: method === 'GET' && data === undefined ? undefined : method,
	});
}

/* The files of a run that must never hold a key: every process's log,
 * keyauthctl's stderr, the audit log, the route overrides, the rendered
 * HAProxy files. (Not curl's saved response bodies: a create answer holds
 * its key by design.) */
export function runLogs(g) {
	return filesUnder(g.dir).filter((f) => !f.startsWith(g.curlDir + path.sep) &&
		!f.startsWith(g.runDir + path.sep) && path.basename(f) !== 'keys.db');
}

/* Asserts no file of runLogs(g) holds a key the run registered. */
export function assertNoKeyInLogs(g) {
	const files = runLogs(g);
	assert.ok(files.some((f) => path.basename(f) === 'keyauth-admin.err'), 'keyauth-admin.err exists');
	for (const f of files) {
		const text = readText(f);
		assert.ok(!holdsSecret(text), `a key is in ${path.relative(g.dir, f)}: ${redact(text).slice(0, 400)}`);
	}
	return files.length;
}

/* keyauthctl -c <g.conf> <args> --json, parsed; throws (redacted) on failure. */
export async function ctlJson(g, args) {
	const r = await ctl(g.conf, [...args, '--json'], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl ${args.join(' ')} failed (exit ${r.status}): ${redact(r.stderr)}`);
	return JSON.parse(r.stdout);
}
