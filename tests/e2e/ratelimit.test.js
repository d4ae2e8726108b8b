// SPDX-License-Identifier: Apache-2.0
// End to end, per-key rate limits (issue 12): keyauthd supplies the limit
// (txn.keyauth.rpm) and the key id, HAProxy counts in the stick table that
// `keyauthctl haproxy` renders. Every case runs once per HAProxy binary
// (Debian's 2.6 always, 3.2 when scripts/haproxy32.sh made it available).
//
// Covered: a key with --rpm 60 gets 429 (OpenAI-style JSON, Retry-After) on
// the 61st request of the minute and the openai SDK raises RateLimitError;
// another key is unaffected; `key set --rpm` lowers a limit live (429 within
// 1 s, no reload); a key without a limit is never throttled; a route's
// rate_limit_rpm applies to keys without their own; the stick table holds key
// ids, never keys; two HAProxy processes joined by a `peers` section on
// loopback share the count; and no key in any file of the run.
//
// Each version starts one provider, one keyauthd and two HAProxy processes
// (nodes lb1 and lb2 of the rendered peers section); the single-node cases use
// lb1. Bulk requests go through node's fetch (headers, never argv).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, test } from 'node:test';
import OpenAI from 'openai';

import {
	KEYAUTHD, PROVIDER_JS, announcedPort, countLines, ctl, curl, failIfExited, filesUnder,
	forEachHaproxy, freePort, holdsSecret, keyCreate, listening, makeTempDir, readText, redact,
	run, startProcess, waitFor,
} from './lib.js';

function confText(g) {
	const up = `127.0.0.1:${g.providerPort}`;
	return `# keyauth rate-limit e2e configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 2;
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; },
	{ name = "sdk"; type = "provider"; context = "/sdk"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "Authorization"; key_location = "header"; }; },
	{ name = "capped"; type = "proxy"; context = "/capped"; upstream = "${up}"; rate_limit_rpm = 3;
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; }
);
haproxy_peers = (
	{ name = "lb1"; address = "127.0.0.1:${g.peerPorts[0]}"; },
	{ name = "lb2"; address = "127.0.0.1:${g.peerPorts[1]}"; }
);
haproxy_local_peer = "lb1";
`;
}

/* keyauthctl key create ... --json; the key stays in memory, the id in g.ids. */
async function createKey(g, route, label, extra = []) {
	const o = await keyCreate(g.conf, route, { owner: `rl-${label}`, secret: `${label}@${g.hap.label}`, extra, logFile: g.ctlLog });
	g.ids[label] = o.id;
	g.rpm[label] = o.rpm;
	return o.key;
}

/* One admin command on an HAProxy stats socket; resolves to its answer. */
function hapCmd(sock, cmd) {
	return new Promise((resolve, reject) => {
		const s = net.connect(sock);
		let out = '';
		s.setTimeout(3000, () => { s.destroy(); reject(new Error(`stats socket ${sock}: timeout`)); });
		s.on('connect', () => s.write(`${cmd}\n`));
		s.on('data', (b) => { out += b; });
		s.on('error', reject);
		s.on('end', () => resolve(out));
	});
}

/* <node>'s one-minute count for key id <id>: the rate stored in its
 * keyauth_rate entry (http_req_rate or gpc0_rate; 0 when it has no entry). */
async function rateOn(node, id) {
	const line = (await hapCmd(node.sock, 'show table keyauth_rate')).split('\n').find((l) => l.includes(` key=${id} `));
	const m = /\b(?:http_req|gpc0)_rate\(60000\)=(\d+)/.exec(line || '');
	return m ? Number(m[1]) : 0;
}

/* Renders the HAProxy files for one node into <dir> (bind <port>) and adds a
 * stats socket for the test's own checks. */
async function renderNode(g, name, port) {
	const dir = path.join(g.dir, name);
	fs.mkdirSync(dir);
	const r = await ctl(g.conf, ['haproxy', '--out', dir, '--bind', `127.0.0.1:${port}`,
		'--haproxy-version', g.hap.render], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl haproxy failed: ${redact(r.stderr)}`);
	const cfg = path.join(dir, 'haproxy-keyauth.cfg');
	const sock = path.join(dir, 'admin.sock');
	const text = fs.readFileSync(cfg, 'utf8');
	assert.match(text, /^peers keyauth_peers$/m, 'rendered peers section');
	fs.writeFileSync(cfg, text.replace(/^global\n/m, `global\n    stats socket ${sock} mode 600 level admin\n`));
	const chk = await run(g.hap.bin, ['-c', '-f', cfg]);
	if (chk.status !== 0)
		throw new Error(`haproxy -c rejected the rendered config: ${redact(chk.stdout + chk.stderr)}`);
	return { name, port, cfg, sock };
}

async function startGateway(hap) {
	const g = { hap, ids: {}, rpm: {}, keys: {}, procs: [] };
	g.dir = makeTempDir(`rl-${hap.label}`);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.peerPorts = [await freePort(), await freePort()];
	fs.writeFileSync(g.conf, confText(g), { mode: 0o600 });

	g.keys.sixty = await createKey(g, 'openai', 'sixty', ['--rpm', '60']);
	g.keys.other = await createKey(g, 'openai', 'other', ['--rpm', '60']);
	g.keys.sdk = await createKey(g, 'sdk', 'sdk', ['--rpm', '2']);
	g.keys.live = await createKey(g, 'openai', 'live', ['--rpm', '1000']);
	g.keys.free = await createKey(g, 'openai', 'free');
	g.keys.capped = await createKey(g, 'capped', 'capped');
	g.keys.shared = await createKey(g, 'openai', 'shared', ['--rpm', '10']);
	g.keys.shared2 = await createKey(g, 'openai', 'shared2', ['--rpm', '10']);

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => listening(g.agent, g.agentPort), { timeout: 5000 });

	// Node lb1 takes its name from the rendered "localpeer"; lb2 from -L,
	// which overrides it (the documented way to share one rendering).
	g.nodes = [await renderNode(g, 'lb1', await freePort()), await renderNode(g, 'lb2', await freePort())];
	for (const [i, n] of g.nodes.entries()) {
		const args = ['-W', '-db', '-f', n.cfg];
		if (i === 1)
			args.push('-L', 'lb2');
		n.proc = startProcess(`haproxy-${n.name}`, hap.bin, args, { dir: g.dir, kind: 'haproxy' });
		g.procs.push(n.proc);
	}
	for (const n of g.nodes)
		await waitFor(`HAProxy ${n.name} to listen`, () => listening(n.proc, n.port), { timeout: 15000 });
	// Both nodes see each other (session ESTAblished on each side).
	for (const n of g.nodes)
		await waitFor(`HAProxy ${n.name}'s peer session`, async () =>
			/status=ESTA/.test(await hapCmd(n.sock, 'show peers')), { timeout: 15000, interval: 100 });
	// And each node's initial resync is over (flags 0x1 local and 0x2 remote
	// resync finished, on the section's line): until then a node may still be
	// taught the other's copy of an entry, which replaces its own count (seen
	// once: a 61st request admitted after 60 within 130 ms).
	for (const n of g.nodes)
		await waitFor(`HAProxy ${n.name}'s initial peers resync`, async () => {
			const m = /^\S+: \[[^\]]*\] id=\S+ .*?\bflags=(0x[0-9a-f]+)/m.exec(await hapCmd(n.sock, 'show peers'));
			return m !== null && (Number(m[1]) & 3) === 3;
		}, { timeout: 15000, interval: 100 });
	await waitFor('a first request through HAProxy and keyauthd', async () =>
		(await hit(g.nodes[0], '/openai/v1/models', g.keys.free)).status === 200, { timeout: 15000, interval: 100 });
	return g;
}

/* One GET through <node> with fetch (10 s at most); the key goes in <header>. */
async function hit(node, p, key, header = 'X-API-Key') {
	const res = await fetch(`http://127.0.0.1:${node.port}${p}`,
		{ headers: { [header]: key }, signal: AbortSignal.timeout(10000) });
	const body = await res.text();
	let json = null;
	try {
		json = JSON.parse(body);
	} catch { /* not JSON */ }
	return { status: res.status, headers: res.headers, body, json };
}

/* <n> sequential requests; returns the statuses. */
async function hits(node, p, key, n) {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push((await hit(node, p, key)).status);
	return out;
}

function assertRateLimited(r, rpm, what) {
	assert.ok(!holdsSecret(r.body), `${what}: the response holds a key: ${redact(r.body)}`);
	assert.equal(r.status, 429, `${what}: HTTP status`);
	assert.match(r.headers.get('content-type') || '', /application\/json/, `${what}: content-type`);
	assert.deepEqual(r.json, { error: {
		message: `Rate limit reached for this API key: ${rpm} requests per minute.`,
		type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded',
	} }, `${what}: body`);
	assert.match(r.headers.get('retry-after') || '', /^\d+$/, `${what}: Retry-After`);
}

forEachHaproxy('rate limits on HAProxy', { timeout: 120000 }, startGateway, (ctx) => {
	const { V } = ctx;
	let g;
	let lb1;
	let lb2;
	before(() => {
		g = ctx.g;
		[lb1, lb2] = g.nodes;
	});

	test(`${V} --rpm 60: 60 requests pass, the 61st is 429 with an OpenAI-style error; another key is unaffected`, async () => {
		assert.equal(g.rpm.sixty, 60, 'key create --json reports the rpm');
		const st = await hits(lb1, '/openai/v1/models', g.keys.sixty, 60);
		assert.deepEqual(st, Array(60).fill(200), 'the first 60 requests of the minute pass');
		const r = await hit(lb1, '/openai/v1/models', g.keys.sixty);
		assertRateLimited(r, 60, '61st request');
		// curl sees the same (and the header spelled as sent).
		const c = await curl(g.dir, { url: `http://127.0.0.1:${lb1.port}/openai/v1/models`, headers: [`X-API-Key: ${g.keys.sixty}`] });
		assert.equal(c.status, 429, 'curl: 429');
		assert.equal(c.json?.error?.type, 'rate_limit_error');
		assert.match(c.headers['retry-after'] || '', /^\d+$/);
		// Same route, same limit, its own count.
		assert.deepEqual(await hits(lb1, '/openai/v1/models', g.keys.other, 5), Array(5).fill(200), 'another key is unaffected');
	});

	test(`${V} OpenAI SDK: over the limit -> RateLimitError`, async () => {
		const client = new OpenAI({ apiKey: g.keys.sdk, baseURL: `http://127.0.0.1:${lb1.port}/sdk/v1`, maxRetries: 0, timeout: 10000 });
		await client.models.list();
		await client.models.list();
		let err;
		try {
			await client.models.list();
		} catch (e) {
			err = e;
		}
		assert.ok(err, 'the third request of a 2-rpm key must fail');
		assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${err.constructor.name}: ${redact(err.message)}`);
		assert.equal(err.status, 429);
		assert.equal(err.error?.type ?? err.type, 'rate_limit_error');
		assert.ok(!holdsSecret(String(err.message)), 'the SDK error holds a key');
	});

	test(`${V} key set --rpm lowers a limit live: 429 within 1 s, no reload`, async (t) => {
		const agentReloads0 = countLines(g.agent.err, /event=reload /);
		assert.deepEqual(await hits(lb1, '/openai/v1/models', g.keys.live, 6), Array(6).fill(200), 'under the 1000 rpm limit');
		const r = await ctl(g.conf, ['key', 'set', g.ids.live, '--rpm', '5', '--json'], { logFile: g.ctlLog });
		assert.equal(r.status, 0, `keyauthctl key set: ${redact(r.stderr)}`);
		assert.equal(JSON.parse(r.stdout).rpm, 5);
		const t0 = Date.now();
		const limited = await waitFor('the lowered limit to apply', async () => {
			const x = await hit(lb1, '/openai/v1/models', g.keys.live);
			return x.status === 429 ? x : null;
		}, { timeout: 5000, interval: 20 });
		const ms = Date.now() - t0;
		t.diagnostic(`new limit applied ${ms} ms after keyauthctl returned`);
		assertRateLimited(limited, 5, 'lowered limit');
		assert.ok(ms <= 1000, `key set took ${ms} ms (> 1000)`);
		// 0 removes the limit: the same key passes again.
		const r0 = await ctl(g.conf, ['key', 'set', g.ids.live, '--rpm', '0'], { logFile: g.ctlLog });
		assert.equal(r0.status, 0, `keyauthctl key set --rpm 0: ${redact(r0.stderr)}`);
		await waitFor('the removed limit to apply', async () =>
			(await hit(lb1, '/openai/v1/models', g.keys.live)).status === 200, { timeout: 5000, interval: 20 });
		assert.equal(countLines(g.agent.err, /event=reload /), agentReloads0, 'keyauthd was reloaded');
	});

	test(`${V} a key without a limit is never throttled (200 requests)`, async () => {
		const st = await hits(lb1, '/openai/v1/models', g.keys.free, 200);
		assert.equal(st.filter((s) => s === 200).length, 200, `statuses: ${[...new Set(st)].join(',')}`);
	});

	test(`${V} a route's rate_limit_rpm applies to keys without their own`, async () => {
		assert.deepEqual(await hits(lb1, '/capped/v1/models', g.keys.capped, 3), [200, 200, 200]);
		assertRateLimited(await hit(lb1, '/capped/v1/models', g.keys.capped), 3, 'route default');
	});

	test(`${V} the stick table is keyed by key ids, never keys`, async () => {
		const t = await hapCmd(lb1.sock, 'show table keyauth_rate');
		assert.ok(!holdsSecret(t), `the stick table holds a key: ${redact(t)}`);
		assert.ok(t.includes(`key=${g.ids.sixty} `), 'the 60-rpm key id is tracked');
		assert.ok(!t.includes(`key=${g.ids.free} `), 'a key without a limit is not tracked');
	});

	test(`${V} two HAProxy nodes joined by peers share the count`, async (t) => {
		// What peers guarantee: a node pushes its own updates of an entry
		// to the other node, which takes the pushed value (updates it
		// received are not pushed on). So with one node writing a key,
		// that node's count must reach the other. Alternating writers
		// are not asserted: two pushes can cross and leave the nodes
		// apart until the next update (last writer wins).
		// 10 rpm: 10 requests on one node, then the 11th on the other is
		// refused (alone, that node would let it through).
		for (const [label, w, o] of [['shared', lb1, lb2], ['shared2', lb2, lb1]]) {
			assert.equal(g.rpm[label], 10, `${label}: key create --json reports the rpm`);
			const st = await hits(w, '/openai/v1/models', g.keys[label], 10);
			assert.deepEqual(st, Array(10).fill(200), `${label}: 10 requests on ${w.name} pass`);
			assert.equal(await rateOn(w, g.ids[label]), 10, `${label}: ${w.name}'s own count`);
			const t0 = Date.now();
			const got = await waitFor(`${o.name}'s stick-table entry for key id ${g.ids[label]} (${label}) ` +
				`to show the 10 requests pushed by its peer ${w.name}`,
			async () => { const n = await rateOn(o, g.ids[label]); return n >= 10 ? n : 0; },
			{ timeout: 10000, interval: 20 });
			t.diagnostic(`${label}: ${w.name}'s count reached ${o.name} in ${Date.now() - t0} ms`);
			assert.equal(got, 10, `${label}: ${o.name}'s count after the push`);
			assertRateLimited(await hit(o, '/openai/v1/models', g.keys[label]), 10,
				`${label}: the 11th request, on ${o.name}`);
		}
	});

	test(`${V} no key in any file of the run`, () => {
		const leaks = filesUnder(g.dir).filter((f) => holdsSecret(readText(f)));
		assert.deepEqual(leaks.map((f) => path.relative(g.dir, f)), [], 'files holding a key');
	});
});
