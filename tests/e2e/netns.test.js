// SPDX-License-Identifier: Apache-2.0
// End to end, scale-out on Redis (issue 10): two "hosts", each a network
// namespace running its own keyauthd (Redis backend), HAProxy and stand-in
// provider, share one key set held by a real redis-server in a third
// namespace. Every case runs once per HAProxy binary (Debian's 2.6 always,
// 3.2 when scripts/haproxy32.sh made it available).
//
// Topology (created and removed by the test; root and `ip netns` required,
// otherwise every case is skipped with the reason):
//
//   ns <run>-redis:  bridge br0 10.N.M.1/24, redis-server bound to it (AUTH)
//   ns <run>-hostA:  eth0 10.N.M.2 --veth-- br0;  on lo: keyauthd :12345,
//                    HAProxy :8080, provider; curl, the openai SDK, loaders
//   ns <run>-hostB:  eth0 10.N.M.3 --veth-- br0;  the same
//
// "Loopback only": the three namespaces are linked only to each other (both
// veth ends are created inside them, none in the root namespace, and there is
// no default route), so nothing can leave the machine, nor reach or collide
// with the host's own networks whatever the address range.
//
// keyauthctl runs inside the host namespaces (the root namespace has no route
// to Redis): keys are created on host B and revoked on host A, and the other
// way round after the Redis restart. (The one "unknown" key comes from a
// scratch file store in the root namespace: well formed, never in Redis.)
//
// Covered: a key made with keyauthctl works through both hosts' HAProxy
// (curl and the openai SDK); a revoke on host A is enforced by host B's
// HAProxy within 1 s (delay printed); Redis SIGKILLed under load (loaders in
// both hosts sending a valid, an unknown and a revoked key continuously):
// every verdict stays right (200 / 401 / 401, no 5xx, no transport error)
// within the staleness bound, then Redis restarts (data kept by a SAVE) and
// the agents resubscribe and resync without a restart (store_reconnected),
// a key created and revoked right after the restart reach both hosts within
// 1 s; both agents exit 0 on SIGTERM (no sanitizer report); no key in any
// file of the run (Redis' dump included); and at the end no namespace, link,
// process or temp dir of the run is left.
//
// Keys never go in argv or output: keyauthctl prints them on stdout (read in
// memory), curl reads its headers from a config on stdin, the SDK runner
// reads its key on stdin, the loaders from a 0600 file removed once read.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import {
	KEYAUTHCTL, KEYAUTHD, PROVIDER_JS, ROOT, addSecret, alive, announcedPort, childPids, countLines,
	failIfExited, filesUnder, forEachHaproxy, holdsSecret, makeTempDir, readText, redact, removeTempDir,
	run, startProcess, stopProcess, waitFor,
} from './lib.js';

const E2E_DIR = path.join(ROOT, 'tests', 'e2e');
const REDIS_SERVER = process.env.REDIS_SERVER || '/usr/bin/redis-server';
const REDIS_CLI = process.env.REDIS_CLI || '/usr/bin/redis-cli';
const RUN = `kat-${process.pid}`;
const HAP_PORT = 8080;
const AGENT_PORT = 12345;
const REDIS_PORT = 6379;
const CREDENTIAL = 'provider-secret-openai';
// Redis down for at least this long (two reconnect attempts) under load.
const OUTAGE_MS = 2500;
// The staleness bound the agents run with: fail closed (503) past it, so a
// verdict lost to the outage would show. The outage stays well inside it.
const MAX_STALENESS = 20;

/* ---- namespaces ------------------------------------------------------------------ */

const liveNamespaces = new Set();
// Runs after lib.js's exit hook (registered first, at import), which has
// killed every tracked process: a namespace goes away with its last process.
process.on('exit', () => {
	for (const ns of liveNamespaces)
		spawnSync('ip', ['netns', 'delete', ns]);
	liveNamespaces.clear();
});

function netnsUnavailable() {
	if (typeof process.getuid !== 'function' || process.getuid() !== 0)
		return 'not root (network namespaces need CAP_SYS_ADMIN)';
	const v = spawnSync('ip', ['-V'], { encoding: 'utf8' });
	if (v.error)
		return `ip (iproute2) not available: ${v.error.message}`;
	for (const p of [REDIS_SERVER, REDIS_CLI])
		if (!fs.existsSync(p))
			return `${p} not installed (Debian package redis-server)`;
	const probe = `${RUN}-probe`;
	const a = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
	if (a.status !== 0)
		return `ip netns add failed: ${(a.stderr || '').trim()}`;
	const e = spawnSync('ip', ['netns', 'exec', probe, 'true'], { encoding: 'utf8' });
	spawnSync('ip', ['netns', 'delete', probe]);
	if (e.status !== 0)
		return `ip netns exec failed: ${(e.stderr || '').trim()}`;
	return null;
}

async function ip(...args) {
	const r = await run('ip', args);
	if (r.status !== 0)
		throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
	return r.stdout;
}

async function addNamespace(g, ns) {
	await ip('netns', 'add', ns);
	liveNamespaces.add(ns);
	g.namespaces.push(ns);
	await ip('-n', ns, 'link', 'set', 'lo', 'up');
}

/* Builds the three namespaces and their links; addresses in g.addr. */
async function makeTopology(g, idx) {
	const net = `10.${200 + (process.pid % 50)}.${idx + 1}`;
	g.ns = { redis: `${RUN}-${idx}-redis`, A: `${RUN}-${idx}-hostA`, B: `${RUN}-${idx}-hostB` };
	g.addr = { redis: `${net}.1`, A: `${net}.2`, B: `${net}.3` };
	for (const ns of Object.values(g.ns))
		await addNamespace(g, ns);
	const r = g.ns.redis;
	await ip('-n', r, 'link', 'add', 'br0', 'type', 'bridge');
	for (const h of ['A', 'B']) {
		// Both ends are created inside the namespaces (never in the root one),
		// so deleting the namespaces deletes the pair.
		const v = `k${process.pid}${idx}${h}`;
		g.veths.push(v);
		await ip('link', 'add', v, 'netns', r, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', g.ns[h]);
		await ip('-n', r, 'link', 'set', v, 'master', 'br0');
		await ip('-n', r, 'link', 'set', v, 'up');
		await ip('-n', g.ns[h], 'addr', 'add', `${g.addr[h]}/24`, 'dev', 'eth0');
		await ip('-n', g.ns[h], 'link', 'set', 'eth0', 'up');
	}
	await ip('-n', r, 'addr', 'add', `${g.addr.redis}/24`, 'dev', 'br0');
	await ip('-n', r, 'link', 'set', 'br0', 'up');
}

/* A long-running process inside <ns>. `ip netns exec` execs the command, so
 * the pid tracked (and killed) is the real process's, as checked by
 * assertInNamespace once it is up. */
function nsProcess(g, name, ns, cmd, args, opts = {}) {
	const p = startProcess(name, 'ip', ['netns', 'exec', ns, cmd, ...args], { dir: g.dir, ...opts });
	g.procs.push(p);
	g.allPids.push(p.pid);
	return p;
}

/* <p> is no longer `ip` and lives in network namespace <ns>. */
function assertInNamespace(p, ns) {
	const exe = fs.readlinkSync(`/proc/${p.pid}/exe`);
	assert.notEqual(path.basename(exe), 'ip', `${p.name}: pid ${p.pid} is still the ip wrapper`);
	const want = fs.statSync(`/run/netns/${ns}`).ino;
	const got = /net:\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${p.pid}/ns/net`));
	assert.equal(Number(got?.[1]), want, `${p.name}: pid ${p.pid} is not in namespace ${ns}`);
}

/* A one-shot command inside <ns>. */
function nsRun(ns, cmd, args, opts) {
	return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
}

/* ---- Redis ---------------------------------------------------------------------- */

function writeRedisConf(g) {
	g.redisDir = path.join(g.dir, 'redis');
	fs.mkdirSync(g.redisDir, { mode: 0o700 });
	g.redisConf = path.join(g.redisDir, 'redis.conf');
	// Persistence off; the kill case SAVEs by hand so the restart has the data.
	fs.writeFileSync(g.redisConf, [
		`bind ${g.addr.redis}`, `port ${REDIS_PORT}`, `requirepass ${g.redisPass}`,
		`dir ${g.redisDir}`, 'dbfilename dump.rdb', 'save ""', 'appendonly no', 'logfile ""', '',
	].join('\n'), { mode: 0o600 });
}

async function startRedis(g) {
	const ready0 = g.redis ? countLines(g.redis.out, /Ready to accept connections/) : 0;
	const p = nsProcess(g, 'redis', g.ns.redis, REDIS_SERVER, [g.redisConf]);
	await waitFor('redis-server to be ready', () => {
		failIfExited(p, p.out);
		return countLines(p.out, /Ready to accept connections/) > ready0;
	}, { timeout: 10000 });
	assertInNamespace(p, g.ns.redis);
	g.redis = p;
	return p;
}

/* redis-cli inside host A (the password in the environment, not argv). */
async function redisCli(g, ...args) {
	const r = await nsRun(g.ns.A, REDIS_CLI, ['-h', g.addr.redis, '-p', String(REDIS_PORT), ...args],
		{ env: { ...process.env, REDISCLI_AUTH: g.redisPass } });
	if (r.status !== 0)
		throw new Error(`redis-cli ${args.join(' ')}: ${r.stderr.trim()}`);
	return r.stdout.trim();
}

/* ---- hosts ---------------------------------------------------------------------- */

function agentConf(g, h) {
	return `# keyauth netns e2e, host ${h.name} (generated)
listen = [ "127.0.0.1:${AGENT_PORT}" ];
allow_plain_tcp = true;
workers = 2;
store = { backend = "redis"; address = "${g.addr.redis}:${REDIS_PORT}"; password_file = "${h.passFile}";
	namespace = "kat"; resync_interval = 5; max_staleness = ${MAX_STALENESS}; stale_action = "deny"; };
log = { level = "info"; target = "stderr"; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:${h.providerPort}";
	  security = { authentication = "apiKey"; key_name = "Authorization"; key_location = "header"; }; }
);
`;
}

/* keyauthctl -c <host conf> <args> inside the host's namespace; stderr
 * (never a key) goes to the run's ctl log. */
async function ctlOn(g, h, args, { input = '' } = {}) {
	const r = await nsRun(h.ns, KEYAUTHCTL, ['-c', h.conf, ...args], { input });
	fs.appendFileSync(g.ctlLog, `$ [host ${h.name}] keyauthctl ${args.join(' ')}\n${r.stderr}`);
	return r;
}

async function createKey(g, h, label) {
	const r = await ctlOn(g, h, ['key', 'create', '--route', 'openai', '--owner', `netns-${label}`, '--json']);
	if (r.status !== 0)
		throw new Error(`[host ${h.name}] keyauthctl key create failed (exit ${r.status}): ${redact(r.stderr)}`);
	const o = JSON.parse(r.stdout);
	if (typeof o.key !== 'string' || typeof o.id !== 'string')
		throw new Error('keyauthctl key create --json printed no key or id');
	g.ids[label] = o.id;
	return addSecret(`${label}@${g.hap.label}`, o.key);
}

async function revokeKey(g, h, label) {
	const r = await ctlOn(g, h, ['key', 'revoke', g.ids[label]]);
	assert.equal(r.status, 0, `[host ${h.name}] keyauthctl key revoke: ${redact(r.stderr)}`);
}

async function startHost(g, name) {
	const h = { name, ns: g.ns[name], dir: path.join(g.dir, `host${name}`) };
	fs.mkdirSync(h.dir);
	h.provider = nsProcess(g, `provider-${name}`, h.ns, process.execPath, [PROVIDER_JS, '0']);
	h.providerPort = await waitFor(`host ${name}'s provider to listen`, () => announcedPort(h.provider), { timeout: 10000 });
	// Each host has its own copy of the Redis password, readable only by it.
	h.passFile = path.join(h.dir, 'redis.pass');
	fs.writeFileSync(h.passFile, `${g.redisPass}\n`, { mode: 0o600 });
	h.conf = path.join(h.dir, 'keyauth.conf');
	fs.writeFileSync(h.conf, agentConf(g, h), { mode: 0o600 });

	h.agent = nsProcess(g, `keyauthd-${name}`, h.ns, KEYAUTHD, ['-c', h.conf]);
	await waitFor(`host ${name}'s keyauthd to start`, () => {
		failIfExited(h.agent);
		return /event=started/.test(readText(h.agent.err));
	}, { timeout: 10000 });

	const hapDir = path.join(h.dir, 'haproxy');
	fs.mkdirSync(hapDir);
	const r = await ctlOn(g, h, ['haproxy', '--out', hapDir, '--bind', `127.0.0.1:${HAP_PORT}`,
		'--haproxy-version', g.hap.render]);
	if (r.status !== 0)
		throw new Error(`keyauthctl haproxy failed: ${redact(r.stderr)}`);
	const cfg = path.join(hapDir, 'haproxy-keyauth.cfg');
	const chk = await run(g.hap.bin, ['-c', '-f', cfg]);
	if (chk.status !== 0)
		throw new Error(`haproxy -c rejected the rendered config: ${redact(chk.stdout + chk.stderr)}`);
	h.haproxy = nsProcess(g, `haproxy-${name}`, h.ns, g.hap.bin, ['-W', '-db', '-f', cfg],
		{ kind: 'haproxy', env: { ...process.env, KEYAUTH_OPENAI_CREDENTIAL: CREDENTIAL } });
	// Up when HAProxy answers and the agent gave it a verdict (missing key).
	await waitFor(`host ${name}'s HAProxy and keyauthd to answer`, async () => {
		failIfExited(h.haproxy);
		failIfExited(h.agent);
		return (await curlOn(g, h, '/openai/v1/models', null)).status === 401;
	}, { timeout: 15000, interval: 100 });
	for (const p of [h.provider, h.agent, h.haproxy])
		assertInNamespace(p, h.ns);
	g.allPids.push(...childPids(h.haproxy.pid));
	return h;
}

async function startAll(hap, idx) {
	const g = {
		hap, ids: {}, keys: {}, procs: [], allPids: [], namespaces: [], veths: [],
		redisPass: crypto.randomBytes(18).toString('hex'),
	};
	g.dir = makeTempDir(`netns-${hap.label}`);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	try {
		await makeTopology(g, idx);
		writeRedisConf(g);
		await startRedis(g);
		g.A = await startHost(g, 'A');
		g.B = await startHost(g, 'B');
		// Unknown to the store but well formed: from a scratch file store.
		const scratch = path.join(g.dir, 'scratch.conf');
		fs.writeFileSync(scratch, `store = { backend = "file"; path = "${g.dir}/scratch.db"; };\n` +
			'routes = ( { name = "openai"; context = "/openai"; } );\n', { mode: 0o600 });
		const r = await run(KEYAUTHCTL, ['-c', scratch, 'key', 'create', '--route', 'openai', '--json']);
		if (r.status !== 0)
			throw new Error(`scratch keyauthctl key create: ${redact(r.stderr)}`);
		g.keys.unknown = addSecret(`unknown@${hap.label}`, JSON.parse(r.stdout).key);
	} catch (e) {
		await teardown(g);
		throw e;
	}
	return g;
}

async function teardown(g) {
	for (const p of g.procs.slice().reverse())
		await stopProcess(p);
	g.procs = [];
	const errs = [];
	for (const ns of g.namespaces.slice().reverse()) {
		const r = await run('ip', ['netns', 'delete', ns]);
		if (r.status !== 0)
			errs.push(`ip netns delete ${ns}: ${r.stderr.trim()}`);
		liveNamespaces.delete(ns);
	}
	g.namespaces = [];
	removeTempDir(g.dir);
	if (errs.length)
		throw new Error(errs.join('; '));
}

/* ---- clients -------------------------------------------------------------------- */

let curlSeq = 0;

/* One GET with curl inside <h>'s namespace to its HAProxy; <key> goes as
 * "Authorization: Bearer" in a curl config on stdin (null: no header).
 * Resolves to { status, json }; the body is saved under g.dir. */
async function curlOn(g, h, p, key) {
	const body = path.join(g.dir, `curl-${++curlSeq}.body`);
	const lines = [`url = "http://127.0.0.1:${HAP_PORT}${p}"`, 'silent', 'show-error', 'max-time = 5',
		`output = "${body}"`, 'write-out = "%{http_code}"'];
	if (key !== null)
		lines.push(`header = "Authorization: Bearer ${key}"`);
	const r = await nsRun(h.ns, 'curl', ['-K', '-'], { input: lines.join('\n') + '\n', timeout: 10000 });
	const status = Number(r.stdout.trim());
	if (!(status > 0))
		throw new Error(`curl in host ${h.name} failed (exit ${r.status}): ${redact(r.stderr.trim())}`);
	let json = null;
	try {
		json = JSON.parse(readText(body));
	} catch { /* not JSON */ }
	return { status, json };
}

// The openai SDK inside a host namespace: a node child (ip netns exec) that
// reads { key, baseURL } on stdin and prints the outcome, never the key.
const SDK_RUNNER = `
const { default: OpenAI } = await import('openai');
let input = '';
for await (const c of process.stdin) input += c;
const { key, baseURL } = JSON.parse(input);
const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0, timeout: 10000 });
try {
	const r = await client.chat.completions.create({ model: 'stand-in-model', messages: [{ role: 'user', content: 'Hello' }] });
	console.log(JSON.stringify({ ok: true, content: r.choices[0].message.content, credential: r.received?.provider_credential }));
} catch (e) {
	console.log(JSON.stringify({ ok: false, error: e.constructor.name, status: e.status ?? null }));
}
`;

async function sdkOn(h, key) {
	const r = await nsRun(h.ns, process.execPath, ['--input-type=module', '-e', SDK_RUNNER],
		{ input: JSON.stringify({ key, baseURL: `http://127.0.0.1:${HAP_PORT}/openai/v1` }), cwd: E2E_DIR });
	assert.equal(r.status, 0, `SDK runner in host ${h.name}: ${redact(r.stderr)}`);
	return JSON.parse(r.stdout);
}

// Load inside a host namespace: node fetch loops, one set per client in the
// 0600 file named in argv ([{ label, key, expect, conc }]); prints "ready",
// "progress <requests>" every 50, and on SIGTERM waits for the requests in
// flight and prints "summary <json>": per label, counts by status ("error:
// <code>" for transport errors) and the first few unexpected answers.
const LOADER = `
const fs = require('fs');
const [url, file] = process.argv.slice(1);
const clients = JSON.parse(fs.readFileSync(file, 'utf8'));
const counts = {}, bad = [];
let n = 0, stop = false;
console.log('ready');
async function loop(c) {
	while (!stop) {
		let st;
		try {
			const r = await fetch(url, { headers: { Authorization: 'Bearer ' + c.key }, signal: AbortSignal.timeout(10000) });
			await r.arrayBuffer();
			st = String(r.status);
		} catch (e) {
			st = 'error:' + (e.cause?.code || e.name);
		}
		counts[c.label] ??= {};
		counts[c.label][st] = (counts[c.label][st] || 0) + 1;
		if (st !== String(c.expect) && bad.length < 10)
			bad.push({ label: c.label, status: st, at: Date.now() });
		if (++n % 50 === 0)
			console.log('progress ' + n);
	}
}
const loops = clients.flatMap((c) => Array.from({ length: c.conc }, () => loop(c)));
process.on('SIGTERM', async () => {
	stop = true;
	await Promise.all(loops);
	console.log('summary ' + JSON.stringify({ n, counts, bad }));
	process.exit(0);
});
`;

function loaderProgress(p) {
	const m = readText(p.out).match(/progress (\d+)/g);
	return m ? Number(m[m.length - 1].split(' ')[1]) : 0;
}

/* ---- the cases -------------------------------------------------------------------- */

/* Polls <h> until <key> gets <status>; returns ms since <t0>. */
async function untilStatus(g, h, key, status, t0, { timeout = 3000 } = {}) {
	await waitFor(`host ${h.name} to answer ${status}`, async () =>
		(await curlOn(g, h, '/openai/v1/models', key)).status === status, { timeout, interval: 10 });
	return Date.now() - t0;
}

const logSize = (p) => fs.statSync(p.err).size;
const logSince = (p, from) => readText(p.err).slice(from);

const UNAVAILABLE = netnsUnavailable();
const allGateways = [];

forEachHaproxy('scale-out over Redis, two netns hosts, HAProxy', {
	timeout: 120000, tag: 'netns', unavailable: UNAVAILABLE, stop: teardown,
}, async (hap, idx) => {
	const g = await startAll(hap, idx);
	allGateways.push(g);
	return g;
}, (ctx) => {
	const { V } = ctx;
	let g;
	let A;
	let B;
	before(() => {
		g = ctx.g;
		({ A, B } = g);
	});

	test(`${V} a key created on host B works through both hosts' HAProxy (curl and the openai SDK)`, async () => {
		g.keys.shared = await createKey(g, B, 'shared');
		for (const h of [A, B]) {
			// Created on B, so both may need a moment to be told.
			await untilStatus(g, h, g.keys.shared, 200, Date.now());
			const r = await curlOn(g, h, '/openai/v1/models', g.keys.shared);
			assert.equal(r.status, 200, `curl via host ${h.name}`);
			assert.equal(r.json?.object, 'list', `curl via host ${h.name}: the provider's answer`);
			assert.equal(redact(r.json?.received?.provider_credential), CREDENTIAL, 'provider credential added');
			const s = await sdkOn(h, g.keys.shared);
			assert.deepEqual(s, { ok: true, content: 'Hello from the stand-in provider.', credential: CREDENTIAL },
				`openai SDK via host ${h.name}`);
			const u = await curlOn(g, h, '/openai/v1/models', g.keys.unknown);
			assert.equal(u.status, 401, `unknown key via host ${h.name}`);
			assert.match(u.json?.error?.message || '', /incorrect/i);
			const su = await sdkOn(h, g.keys.unknown);
			assert.deepEqual(su, { ok: false, error: 'AuthenticationError', status: 401 }, `SDK, unknown key, host ${h.name}`);
		}
	});

	test(`${V} revoked on host A: host B's HAProxy answers 401 within 1 s`, async (t) => {
		const t0 = Date.now();
		await revokeKey(g, A, 'shared');
		const t1 = Date.now();
		const [msB, msA] = await Promise.all([
			untilStatus(g, B, g.keys.shared, 401, t1),
			untilStatus(g, A, g.keys.shared, 401, t1),
		]);
		t.diagnostic(`revoke on host A (keyauthctl took ${t1 - t0} ms): host B's HAProxy answers 401 ${msB} ms ` +
			`after keyauthctl returned, host A's ${msA} ms`);
		const r = await curlOn(g, B, '/openai/v1/models', g.keys.shared);
		assert.equal(r.status, 401);
		assert.match(r.json?.error?.message || '', /revoked/i, 'the 401 says revoked');
		assert.ok(msB <= 1000, `host B enforced the revoke after ${msB} ms (> 1000)`);
		assert.deepEqual(await sdkOn(B, g.keys.shared), { ok: false, error: 'AuthenticationError', status: 401 });
	});

	test(`${V} Redis killed under load: every verdict right within the staleness bound; restarted: agents reconnect without a restart`, async (t) => {
		g.keys.load = await createKey(g, B, 'load');
		await Promise.all([A, B].map((h) => untilStatus(g, h, g.keys.load, 200, Date.now())));
		const agentPids = [A.agent.pid, B.agent.pid];

		const keyFile = path.join(g.dir, 'loader-keys.json');
		fs.writeFileSync(keyFile, JSON.stringify([
			{ label: 'valid', key: g.keys.load, expect: 200, conc: 2 },
			{ label: 'unknown', key: g.keys.unknown, expect: 401, conc: 1 },
			{ label: 'revoked', key: g.keys.shared, expect: 401, conc: 1 },
		]), { mode: 0o600 });
		const loaders = [A, B].map((h) => nsProcess(g, `loader-${h.name}`, h.ns, process.execPath,
			['-e', LOADER, `http://127.0.0.1:${HAP_PORT}/openai/v1/models`, keyFile]));
		try {
			await waitFor('the loaders to read their keys', () => loaders.every((p) => /^ready$/m.test(readText(p.out))));
		} finally {
			fs.rmSync(keyFile, { force: true });
		}
		for (const [i, p] of loaders.entries())
			assertInNamespace(p, [A, B][i].ns);
		await waitFor('load on both hosts', () => loaders.every((p) => loaderProgress(p) >= 100), { timeout: 10000 });

		assert.equal(await redisCli(g, 'SAVE'), 'OK', 'SAVE before the kill');
		const from = [A, B].map((h) => logSize(h.agent));
		const tKill = Date.now();
		await stopProcess(g.redis, { signal: 'SIGKILL' });
		await waitFor('both agents to log store_disconnected', () =>
			[A, B].every((h, i) => /event=store_disconnected/.test(logSince(h.agent, from[i]))), { timeout: 5000 });
		const atDown = loaders.map(loaderProgress);
		// Redis stays down for OUTAGE_MS (a few failed reconnects) and until
		// each host has answered 200 more requests meanwhile.
		await waitFor('requests answered while Redis is down', () =>
			Date.now() - tKill >= OUTAGE_MS && loaders.every((p, i) => loaderProgress(p) >= atDown[i] + 200),
		{ timeout: 15000 });
		const downMs = Date.now() - tKill;
		const duringOutage = loaders.map((p, i) => loaderProgress(p) - atDown[i]);

		const tUp = Date.now();
		await startRedis(g);
		await waitFor('both agents to log store_reconnected', () =>
			[A, B].every((h, i) => /event=store_reconnected/.test(logSince(h.agent, from[i]))), { timeout: 5000 });
		const reconnectMs = Date.now() - tUp;
		const atUp = loaders.map(loaderProgress);
		await waitFor('load to go on after the reconnect', () =>
			loaders.every((p, i) => loaderProgress(p) >= atUp[i] + 100), { timeout: 10000 });
		for (const p of loaders)
			await stopProcess(p);

		const sums = loaders.map((p) => {
			const m = /^summary (.*)$/m.exec(readText(p.out));
			assert.ok(m, `${p.name} printed no summary: ${readText(p.err).slice(-300)}`);
			return JSON.parse(m[1]);
		});
		for (const [i, s] of sums.entries()) {
			const name = ['A', 'B'][i];
			t.diagnostic(`host ${name}: ${s.n} requests (${duringOutage[i]} while Redis was down): ${JSON.stringify(s.counts)}`);
			assert.deepEqual(s.bad, [], `host ${name}: unexpected answers`);
			assert.deepEqual(Object.keys(s.counts.valid || {}), ['200'], `host ${name}: valid key`);
			assert.deepEqual(Object.keys(s.counts.unknown || {}), ['401'], `host ${name}: unknown key`);
			assert.deepEqual(Object.keys(s.counts.revoked || {}), ['401'], `host ${name}: revoked key`);
		}
		t.diagnostic(`Redis down ${downMs} ms under load (${duringOutage.join(' + ')} requests meanwhile); ` +
			`both agents resubscribed ${reconnectMs} ms after the restart`);
		for (const [i, h] of [A, B].entries()) {
			assert.ok(h.agent.isRunning(), `host ${h.name}'s keyauthd is running`);
			assert.equal(h.agent.pid, agentPids[i], `host ${h.name}'s keyauthd was not restarted`);
			assert.equal(countLines(h.agent.err, /event=started/), 1, `host ${h.name}'s keyauthd started once`);
			assert.doesNotMatch(readText(h.agent.err), /event=store_stale/, `host ${h.name} went stale`);
		}
	});

	test(`${V} after the restart: the data survived, a key created and revoked at once reaches both hosts within 1 s`, async (t) => {
		for (const h of [A, B]) {
			assert.equal((await curlOn(g, h, '/openai/v1/models', g.keys.load)).status, 200, `old key via host ${h.name}`);
			assert.equal((await curlOn(g, h, '/openai/v1/models', g.keys.shared)).status, 401, `revoked key via host ${h.name}`);
		}
		g.keys.fresh = await createKey(g, A, 'fresh');
		let t1 = Date.now();
		const created = await Promise.all([A, B].map((h) => untilStatus(g, h, g.keys.fresh, 200, t1)));
		await revokeKey(g, B, 'fresh');
		t1 = Date.now();
		const revoked = await Promise.all([A, B].map((h) => untilStatus(g, h, g.keys.fresh, 401, t1)));
		t.diagnostic(`after restart: create seen by A/B after ${created.join('/')} ms, revoke after ${revoked.join('/')} ms`);
		for (const ms of [...created, ...revoked])
			assert.ok(ms <= 1000, `a change took ${ms} ms (> 1000)`);
		assert.deepEqual(await sdkOn(B, g.keys.load), { ok: true, content: 'Hello from the stand-in provider.', credential: CREDENTIAL });
	});

	test(`${V} both agents stop cleanly on SIGTERM (exit 0, no sanitizer report)`, async () => {
		for (const h of [A, B]) {
			const exited = h.agent.exited;
			await stopProcess(h.agent);
			assert.deepEqual(await exited, { code: 0, signal: null }, `host ${h.name}'s keyauthd exit`);
			assert.doesNotMatch(readText(h.agent.err), /AddressSanitizer|LeakSanitizer|runtime error:/,
				`host ${h.name}'s keyauthd: sanitizer report`);
		}
	});

	test(`${V} no key in any file of the run (logs, responses, Redis' dump)`, async () => {
		// Redis holds digests only: its dump (written by the SAVE above)
		// is scanned like the rest.
		assert.ok(fs.existsSync(path.join(g.redisDir, 'dump.rdb')), 'dump.rdb written');
		const leaks = filesUnder(g.dir).filter((f) => holdsSecret(readText(f)));
		assert.deepEqual(leaks.map((f) => path.relative(g.dir, f)), [], 'files holding a key');
	});
});

if (!UNAVAILABLE) {
	test('nothing of the run is left: no namespace, link, process or temp dir', async () => {
		const nsList = (await run('ip', ['netns', 'list'])).stdout;
		assert.ok(!nsList.includes(RUN), `namespaces left: ${nsList}`);
		const links = (await run('ip', ['-o', 'link'])).stdout;
		for (const g of allGateways) {
			for (const v of g.veths)
				assert.ok(!links.includes(v), `link ${v} left in the root namespace`);
			for (const pid of g.allPids)
				assert.ok(!alive(pid), `pid ${pid} of the run is still alive`);
			assert.ok(!fs.existsSync(g.dir), `${g.dir} left`);
			// Nothing started with the run's files (pgrep -f, by hand).
			for (const n of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
				const cmd = readText(`/proc/${n}/cmdline`);
				assert.ok(!cmd.includes(g.dir), `pid ${n} still runs with ${g.dir}: ${redact(cmd.replace(/\0/g, ' '))}`);
			}
		}
	});
}
