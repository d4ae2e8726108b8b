// SPDX-License-Identifier: Apache-2.0
// Protocol soak (issue 9): for each HAProxy binary (Debian's 2.6 always, 3.2
// when scripts/haproxy32.sh made it available, else a loud SKIP line), a
// fresh gateway (stand-in provider, keyauthd with two workers, HAProxy with
// its default threads and the `keyauthctl haproxy` rendering) takes a fixed
// number of requests from many concurrent keep-alive clients: a seeded random
// mix of valid keys (several, two routes), invalid, malformed, junk, missing
// and other-route keys, and paths under no route.
//
// Asserted, per version: every response has exactly its expected status and
// error code (no 503, no connection error); the provider saw exactly the valid
// requests, each with the provider credential and never a client key; one
// SPOE log line per routed request, all with status 0 and HAProxy's SPOE
// error counter at 0 (no processing error, no timeout; 3.1+ miscounts, see
// below); one HTTP log line per request with the verdict HAProxy got from the
// agent, where the lines HAProxy's stdout logger dropped under load must be
// exactly its DroppedLogs count; the agent's counters
// (control socket, `keyauthctl stats --json`) match what was sent, with
// handshakes and no protocol error; HAProxy's spop-check has the agent UP and
// never failed; keyauthd logged no warning or error during the soak, nor when
// HAProxy closed its connections at shutdown, nor at its own exit; and no key
// is in any file of the run.
//
// Knobs (environment): SOAK_REQUESTS (12000), SOAK_CLIENTS (32), SOAK_SEED
// (random; printed so a failing mix can be replayed), SOAK_KEEP (keep the
// run's directory, for a look at the logs; it holds keys).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { before, test } from 'node:test';

import {
	KEYAUTHD, PROVIDER_JS, addSecret, announcedPort, ctl, failIfExited, filesUnder, forEachHaproxy,
	freePort, holdsSecret, listening, makeTempDir, readText, redact, reloadableHaproxy, run,
	startProcess, startRenderedHaproxy, stopProcess, waitFor,
} from './lib.js';

const REQUESTS = Number(process.env.SOAK_REQUESTS || 12000);
const CLIENTS = Number(process.env.SOAK_CLIENTS || 32);
const SEED = Number(process.env.SOAK_SEED || Math.floor(Math.random() * 0x7fffffff));
const ROUTES = ['openai', 'sdk'];
const credential = (route) => `provider-secret-soak-${route}`;

/* mulberry32: a small seeded PRNG, so a failing mix can be replayed. */
function prng(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/* The request kinds of the mix. route: the route whose SPOE message fires
 * (null: under no route, the agent is not asked); verdict: what keyauthd must
 * answer; status: what the client must get; code: the JSON error code. */
const pick = (arr, r) => arr[Math.floor(r * arr.length)];
const KINDS = [
	{ name: 'valid-openai', weight: 28, route: 'openai', verdict: 'ok', status: 200,
	  req: (g, r) => ({ path: '/openai/v1/models', headers: { 'X-API-Key': pick(g.keys.openai, r) } }) },
	{ name: 'valid-sdk', weight: 20, route: 'sdk', verdict: 'ok', status: 200,
	  req: (g, r) => ({ method: 'POST', path: '/sdk/v1/chat/completions', body: '{"model":"soak","messages":[]}',
	  	headers: { Authorization: `Bearer ${pick(g.keys.sdk, r)}`, 'Content-Type': 'application/json' } }) },
	{ name: 'invalid-openai', weight: 6, route: 'openai', verdict: 'invalid', status: 401, code: 'invalid_api_key',
	  req: (g) => ({ path: '/openai/v1/models', headers: { 'X-API-Key': g.keys.invalid } }) },
	{ name: 'invalid-sdk', weight: 5, route: 'sdk', verdict: 'invalid', status: 401, code: 'invalid_api_key',
	  req: (g) => ({ path: '/sdk/v1/models', headers: { Authorization: `Bearer ${g.keys.invalid}` } }) },
	{ name: 'malformed-openai', weight: 5, route: 'openai', verdict: 'malformed', status: 401, code: 'invalid_api_key',
	  req: (g) => ({ path: '/openai/v1/models', headers: { 'X-API-Key': g.keys.malformed } }) },
	{ name: 'malformed-sdk', weight: 4, route: 'sdk', verdict: 'malformed', status: 401, code: 'invalid_api_key',
	  req: (g) => ({ path: '/sdk/v1/models', headers: { Authorization: `Bearer ${g.keys.malformed}` } }) },
	{ name: 'junk-openai', weight: 3, route: 'openai', verdict: 'malformed', status: 401, code: 'invalid_api_key',
	  req: () => ({ path: '/openai/v1/models', headers: { 'X-API-Key': 'not a key' } }) },
	{ name: 'missing-openai', weight: 5, route: 'openai', verdict: 'missing', status: 401, code: 'invalid_api_key',
	  req: () => ({ path: '/openai/v1/models', headers: {} }) },
	{ name: 'missing-sdk', weight: 4, route: 'sdk', verdict: 'missing', status: 401, code: 'invalid_api_key',
	  req: () => ({ path: '/sdk/v1/models', headers: {} }) },
	{ name: 'bare-bearer-sdk', weight: 2, route: 'sdk', verdict: 'missing', status: 401, code: 'invalid_api_key',
	  req: () => ({ path: '/sdk/v1/models', headers: { Authorization: 'Bearer' } }) },
	{ name: 'other-route-openai', weight: 6, route: 'openai', verdict: 'forbidden', status: 403, code: 'invalid_api_key',
	  req: (g, r) => ({ path: '/openai/v1/models', headers: { 'X-API-Key': pick(g.keys.sdk, r) } }) },
	{ name: 'other-route-sdk', weight: 6, route: 'sdk', verdict: 'forbidden', status: 403, code: 'invalid_api_key',
	  req: (g, r) => ({ path: '/sdk/v1/models', headers: { Authorization: `Bearer ${pick(g.keys.openai, r)}` } }) },
	{ name: 'no-route', weight: 3, route: null, verdict: null, status: 404, code: 'not_found',
	  req: (g, r) => ({ path: '/nowhere/v1/models', headers: { 'X-API-Key': pick(g.keys.openai, r) } }) },
];

/* <n> requests: every kind at least twice, the rest drawn by weight. */
function makePlan(n, rnd) {
	const plan = [];
	for (const k of KINDS)
		plan.push(k, k);
	const total = KINDS.reduce((s, k) => s + k.weight, 0);
	while (plan.length < n) {
		let x = rnd() * total;
		const k = KINDS.find((kk) => (x -= kk.weight) < 0) || KINDS[KINDS.length - 1];
		plan.push(k);
	}
	// Shuffle, so the forced ones are not all at the start.
	for (let i = plan.length - 1; i > 0; i--) {
		const j = Math.floor(rnd() * (i + 1));
		[plan[i], plan[j]] = [plan[j], plan[i]];
	}
	return plan.map((k) => ({ kind: k, r: rnd() }));
}

function confText(g, { store = g.store } = {}) {
	const up = `127.0.0.1:${g.providerPort}`;
	return `# keyauth soak test configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 2;
pid_file = "${g.dir}/keyauthd.pid";
control_socket = "${g.dir}/control.sock";
store = { backend = "file"; path = "${store}"; };
log = { level = "debug"; target = "stderr"; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; },
	{ name = "sdk"; type = "provider"; context = "/sdk"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "Authorization"; key_location = "header"; }; }
);
`;
}

async function createKey(g, conf, route, label) {
	const r = await ctl(conf, ['key', 'create', '--route', route, '--owner', `soak-${label}`, '--json'], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl key create --route ${route} failed (exit ${r.status}): ${redact(r.stderr)}`);
	let o;
	try {
		o = JSON.parse(r.stdout);
	} catch {
		throw new Error('keyauthctl key create --json printed no JSON');
	}
	if (typeof o.key !== 'string')
		throw new Error('keyauthctl key create --json printed no key');
	return addSecret(`soak-${label}@${g.hap.label}`, o.key);
}

/* One command on HAProxy's stats socket (added by the soak's extra config
 * file; the rendered configuration is loaded untouched). */
function haproxyCli(sock, cmd) {
	return new Promise((resolve, reject) => {
		const s = net.connect(sock);
		let out = '';
		s.setEncoding('latin1');
		s.on('data', (d) => { out += d; });
		s.once('end', () => resolve(out));
		s.once('error', reject);
		s.setTimeout(5000, () => { s.destroy(); reject(new Error(`${cmd}: no answer from ${sock}`)); });
		s.write(`${cmd}\n`);
	});
}

/* HAProxy's DroppedLogs counter (`show info`): log lines it gave up on. */
async function droppedLogs(sock) {
	const m = /^DroppedLogs: (\d+)/m.exec(await haproxyCli(sock, 'show info'));
	if (!m)
		throw new Error('no DroppedLogs in show info');
	return Number(m[1]);
}

/* The `show stat` row of <px>/<sv> as an object keyed by the CSV header. */
async function statRow(sock, px, sv) {
	const lines = (await haproxyCli(sock, 'show stat')).split('\n');
	const head = lines[0].replace(/^# /, '').split(',');
	for (const l of lines.slice(1)) {
		const f = l.split(',');
		if (f[0] === px && f[1] === sv)
			return Object.fromEntries(head.map((h, i) => [h, f[i]]));
	}
	return null;
}

async function agentStats(g) {
	const r = await ctl(g.conf, ['stats', '--json'], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl stats --json failed (exit ${r.status}): ${redact(r.stderr)}`);
	return JSON.parse(r.stdout);
}

async function startStack(hap) {
	const g = { hap, keys: {}, procs: [] };
	g.dir = makeTempDir(`soak-${hap.label}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.hapBin = reloadableHaproxy(hap.bin, g.dir).bin;

	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));

	g.keys.openai = [];
	for (let i = 0; i < 3; i++)
		g.keys.openai.push(await createKey(g, g.conf, 'openai', `openai${i}`));
	g.keys.sdk = [];
	for (let i = 0; i < 2; i++)
		g.keys.sdk.push(await createKey(g, g.conf, 'sdk', `sdk${i}`));
	// Invalid: well formed, from a store the agent never sees.
	const scratch = path.join(g.dir, 'scratch.conf');
	fs.writeFileSync(scratch, confText(g, { store: path.join(g.dir, 'scratch-keys.db') }));
	g.keys.invalid = await createKey(g, scratch, 'openai', 'invalid');
	// Malformed: one character of the random part changed: bad checksum.
	const k = g.keys.openai[0];
	g.keys.malformed = addSecret(`soak-malformed@${hap.label}`, k.slice(0, 13) + (k[13] === 'A' ? 'B' : 'A') + k.slice(14));

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => listening(g.agent, g.agentPort));

	// A second file adds only a stats socket (show stat, show info); the
	// rendered files are loaded as keyauthctl wrote them.
	g.hapSock = path.join(g.dir, 'haproxy.sock');
	g.extraCfg = path.join(g.dir, 'soak-stats.cfg');
	fs.writeFileSync(g.extraCfg, `global\n    stats socket ${g.hapSock} mode 600 level admin\n`);
	const env = {};
	for (const rt of ROUTES)
		env[`KEYAUTH_${rt.toUpperCase()}_CREDENTIAL`] = credential(rt);
	await startRenderedHaproxy(g, hap, { env, extraCfg: [g.extraCfg], bin: g.hapBin });
	await waitFor("HAProxy's stats socket", () => {
		failIfExited(g.haproxy);
		return fs.existsSync(g.hapSock);
	}, { timeout: 5000 });
	return g;
}

/* The soak itself: <plan> through <clients> keep-alive connections. Resolves
 * to { results, ms }; results[i] = { status, body, port (the client's) } or
 * { error }. */
async function soak(g, plan, clients = CLIENTS) {
	const agent = new http.Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients });
	const results = new Array(plan.length);
	let next = 0;
	const one = (i) => new Promise((resolve) => {
		const { kind, r } = plan[i];
		const q = kind.req(g, r);
		const headers = { ...q.headers };
		if (q.body !== undefined)
			headers['Content-Length'] = Buffer.byteLength(q.body);
		const rq = http.request({ host: '127.0.0.1', port: g.gwPort, path: q.path, method: q.method || 'GET', headers, agent }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			const port = res.socket?.localPort;
			res.once('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString(), port }));
			res.once('error', (e) => resolve({ error: `${e.code || ''} ${e.message}` }));
		});
		rq.setTimeout(10000, () => rq.destroy(new Error('no answer within 10 s')));
		rq.once('error', (e) => resolve({ error: `${e.code || ''} ${e.message}` }));
		rq.end(q.body);
	});
	const client = async () => {
		while (next < plan.length) {
			const i = next++;
			results[i] = await one(i);
		}
	};
	const t0 = process.hrtime.bigint();
	await Promise.all(Array.from({ length: clients }, client));
	const ms = Number(process.hrtime.bigint() - t0) / 1e6;
	agent.destroy();
	return { results, ms };
}

/* What <res> should have been for <kind>; '' when right. */
function mismatch(kind, res) {
	if (res.error)
		return `connection error: ${redact(res.error)}`;
	if (res.status !== kind.status)
		return `status ${res.status}, expected ${kind.status}: ${redact(res.body.slice(0, 200))}`;
	if (holdsSecret(res.body))
		return `the response holds a key: ${redact(res.body.slice(0, 200))}`;
	let j;
	try {
		j = JSON.parse(res.body);
	} catch {
		return `not JSON: ${redact(res.body.slice(0, 200))}`;
	}
	if (kind.status === 200) {
		if (j?.received?.provider_credential !== credential(kind.route))
			return 'the provider did not get the route\'s credential';
	} else if (j?.error?.code !== kind.code) {
		return `error.code ${redact(j?.error?.code)}, expected ${kind.code}`;
	}
	return '';
}

/* Counts per key of <items> mapped through <f> (undefined: not counted). */
function tally(items, f) {
	const out = {};
	for (const x of items) {
		const k = f(x);
		if (k !== undefined && k !== null)
			out[k] = (out[k] || 0) + 1;
	}
	return out;
}

/* Per-status difference of two verdict count objects, zeros dropped. */
function verdictDelta(after, before) {
	const out = {};
	for (const [s, n] of Object.entries(after)) {
		const d = n - (before?.[s] || 0);
		if (d !== 0)
			out[s] = d;
	}
	return out;
}

const SPOE_RE = /SPOE: \[keyauth-agent\] <EVENT:on-frontend-http-request> sid=(\d+) st=(\d+) (.*?) (\d+)\/(\d+)\s*$/;
const HTTP_RE = / (\d{3}) \d+ \S+ .* keyauth=(\S*) key_id=/;
const BAD_AGENT_LINE = /level=(warning|error)\b/;
// keyauthd's one startup warning when started as root without `user`; the
// tests run as whoever runs them, and it says nothing about the protocol.
const ROOT_WARNING = /level=warning event=running_as_root /;
// ... and the one of its plain TCP listener (allow_plain_tcp: the soak is on
// loopback; the risk it names is tests/e2e/trust.test.js's subject).
const PLAIN_TCP_WARNING = /level=warning event=plain_tcp_listener /;

forEachHaproxy('protocol soak on HAProxy', { timeout: 120000, tag: 'soak', keepEnv: 'SOAK_KEEP' }, startStack, (ctx) => {
	const { hap, V } = ctx;
	let g;
	before(() => { g = ctx.g; });
	let s;                   // the soak's outcome
	let stats0;              // the agent's counters before the soak
	const hapLog = () => readText(g.haproxy.out) + readText(g.haproxy.err);
	const agentBadLines = () => {
		const lines = readText(g.agent.err).split('\n')
			.filter((l) => BAD_AGENT_LINE.test(l) && !PLAIN_TCP_WARNING.test(l));
		const root = lines.filter((l) => ROOT_WARNING.test(l));
		if (process.getuid() !== 0 || root.length > 1)
			return lines;
		return lines.filter((l) => !ROOT_WARNING.test(l));
	};
	const needSoak = () => assert.ok(s, 'the soak did not run');

	test(`${V} soak: ${REQUESTS} requests from ${CLIENTS} keep-alive clients, every status right, no 503, no connection error`, async (t) => {
		stats0 = await agentStats(g);
		await fetch(`http://127.0.0.1:${g.providerPort}/__reset`, { method: 'POST', signal: AbortSignal.timeout(10000) });
		g.hapLogOffset = readText(g.haproxy.out).length;
		g.dropped0 = await droppedLogs(g.hapSock);
		const threads = /^Nbthread: (\d+)/m.exec(await haproxyCli(g.hapSock, 'show info'))?.[1];
		t.diagnostic(`${V} HAProxy runs ${threads} threads (its default), keyauthd 2 workers`);
		if (os.availableParallelism() > 1)
			assert.ok(Number(threads) > 1, `HAProxy runs ${threads} thread(s) on a ${os.availableParallelism()}-CPU machine`);
		const plan = makePlan(REQUESTS, prng(SEED));
		const { results, ms } = await soak(g, plan);
		// Then one request alone: its SPOE line, written with nothing
		// to collide with, carries HAProxy's counters after the soak.
		const sentinel = [{ kind: KINDS[0], r: 0 }];
		const last = await soak(g, sentinel, 1);
		s = { plan: [...plan, ...sentinel], results: [...results, ...last.results], ms };
		const rate = Math.round(plan.length / (ms / 1000));
		const line = `${V} soak: ${plan.length} requests (+1 alone), ${CLIENTS} clients, ${(ms / 1000).toFixed(2)} s, ${rate} req/s (seed ${SEED})`;
		t.diagnostic(line);
		console.log(`# ${line}`);

		const bad = [];
		for (const [i, res] of s.results.entries()) {
			const m = mismatch(s.plan[i].kind, res);
			if (m)
				bad.push(`#${i} ${s.plan[i].kind.name}: ${m}`);
		}
		const errors = s.results.filter((x) => x.error).length;
		const s503 = s.results.filter((x) => x.status === 503).length;
		assert.deepEqual({ mismatches: bad.length, connection_errors: errors, status_503: s503 },
			{ mismatches: 0, connection_errors: 0, status_503: 0 },
			`SOAK_SEED=${SEED}; first mismatches:\n${bad.slice(0, 15).join('\n')}`);
		assert.ok(ms < 60000, `the soak took ${ms} ms (limit 60 s)`);
	});

	test(`${V} soak: the provider got exactly the valid requests, each with its route's credential, never a client key`, async () => {
		needSoak();
		const reqs = await (await fetch(`http://127.0.0.1:${g.providerPort}/__requests`, { signal: AbortSignal.timeout(10000) })).json();
		fs.writeFileSync(path.join(g.dir, 'provider-requests.json'), JSON.stringify(reqs));
		const valid = s.plan.filter((p) => p.kind.verdict === 'ok');
		assert.equal(reqs.length, valid.length, 'requests upstream');
		const want = tally(valid, (p) => `${p.kind.req(g, p.r).method || 'GET'} /v1/${p.kind.route === 'sdk' ? 'chat/completions' : 'models'} Bearer ${credential(p.kind.route)}`);
		const got = tally(reqs, (rq) => `${rq.method} ${redact(rq.path)} ${redact(rq.headers.authorization)}`);
		assert.deepEqual(got, want, 'method, path and Authorization seen upstream');
		for (const rq of reqs) {
			assert.ok(!holdsSecret(JSON.stringify(rq)), `a client key reached upstream: ${redact(JSON.stringify(rq))}`);
			assert.ok(!('x-api-key' in rq.headers), 'X-API-Key reached upstream');
		}
	});

	test(`${V} soak: agent stats: handshakes, verdicts per status and route equal what was sent, no protocol error`, async (t) => {
		needSoak();
		const st = await agentStats(g);
		t.diagnostic(`${V} keyauthd: ${st.handshakes} handshakes (${st.healthchecks} health checks), ` +
			`${st.connections.total} connections, ${st.frames.in} frames in, ${st.frames.out} out`);
		assert.ok(st.handshakes > 0, `handshakes ${st.handshakes}`);
		assert.deepEqual(st.protocol_errors, {}, 'protocol_errors');
		assert.deepEqual(stats0.protocol_errors, {}, 'protocol_errors before the soak');
		const routed = s.plan.filter((p) => p.kind.route !== null);
		assert.deepEqual(verdictDelta(st.verdicts, stats0.verdicts), tally(routed, (p) => p.kind.verdict), 'verdicts');
		for (const rt of ROUTES) {
			assert.deepEqual(verdictDelta(st.routes[rt], stats0.routes[rt]),
				tally(routed.filter((p) => p.kind.route === rt), (p) => p.kind.verdict), `verdicts of route ${rt}`);
		}
		assert.deepEqual(verdictDelta(st.routes['(unknown)'], stats0.routes['(unknown)']), {}, 'unknown-route verdicts');
		// Every ACK is a frame out: at least one per routed request.
		assert.ok(st.frames.out - stats0.frames.out >= routed.length, 'frames out');
		assert.equal(st.workers, 2);
	});

	test(`${V} soak: spop-check has the agent UP and never failed`, async () => {
		needSoak();
		const row = await statRow(g.hapSock, 'keyauth_agents', 'agent1');
		assert.ok(row, 'keyauth_agents/agent1 in show stat');
		assert.equal(row.status, 'UP', `agent1 status (check_status ${row.check_status})`);
		assert.equal(row.chkfail, '0', 'failed checks');
		assert.equal(row.chkdown, '0', 'UP->DOWN transitions');
		assert.doesNotMatch(hapLog(), /keyauth_agents\/agent1 is DOWN/, 'HAProxy logged the agent DOWN');
		assert.doesNotMatch(hapLog(), /Health check for server keyauth_agents\/agent1 failed/);
	});

	test(`${V} soak: keyauthd logged no warning or error while serving`, () => {
		needSoak();
		assert.deepEqual(agentBadLines().map(redact), []);
	});

	test(`${V} soak: HAProxy's log: one SPOE line per routed request, all st=0 with no SPOE error, one HTTP line per request (lines HAProxy dropped are counted)`, async (t) => {
		needSoak();
		// HAProxy's stdout logger gives up on a line when another thread
		// holds the fd ("we prefer to fail on collision than to block",
		// fd_write_frag_line()) and counts it in DroppedLogs. Read the
		// counter, then stop HAProxy so that every other line is written.
		const dropped = (await droppedLogs(g.hapSock)) - g.dropped0;
		await stopProcess(g.haproxy);
		const out = readText(g.haproxy.out);
		const all = out.split('\n');
		const spoeAll = all.map((l) => SPOE_RE.exec(l)).filter(Boolean);
		const soakLines = out.slice(g.hapLogOffset).split('\n');
		const spoe = soakLines.map((l) => SPOE_RE.exec(l)).filter(Boolean);
		const httpLines = soakLines.filter((l) => HTTP_RE.test(l));
		const routed = s.plan.filter((p) => p.kind.route !== null);
		const note = `HAProxy ${hap.full} dropped ${dropped} of ${routed.length + s.plan.length} log lines ` +
			`(DroppedLogs; ${routed.length - spoe.length} SPOE, ${s.plan.length - httpLines.length} HTTP)`;
		t.diagnostic(note);
		if (dropped > 0)
			console.log(`# NOTE ${V}: ${note}`);
		assert.ok(spoeAll.length > 0, `HAProxy ${hap.full} logged no SPOE line: ${redact(all.filter((l) => /SPOE/.test(l)).slice(0, 3).join(' | '))}`);
		assert.ok(spoe.length <= routed.length, `${spoe.length} SPOE lines for ${routed.length} routed requests`);
		assert.ok(httpLines.length <= s.plan.length, `${httpLines.length} HTTP lines for ${s.plan.length} requests`);
		assert.equal(routed.length - spoe.length + s.plan.length - httpLines.length, dropped,
			'log lines missing (SPOE + HTTP) = lines HAProxy reports dropped');

		assert.deepEqual(tally(spoeAll, (m) => `st=${m[2]}`), { 'st=0': spoeAll.length }, 'SPOE statuses (0 = no error, no timeout)');
		// The counters are global and cumulative: the line of the request
		// sent alone at the end covers every processing of the soak.
		const final = spoeAll.reduce((a, m) => (Number(m[5]) > Number(a[5]) ? m : a));
		assert.ok(Number(final[5]) >= routed.length, `SPOE processed counter ${final[5]} < ${routed.length} routed requests`);
		if (hap.render === '2.6') {
			assert.deepEqual(tally(spoeAll, (m) => `err=${m[4]}`), { 'err=0': spoeAll.length }, "HAProxy's SPOE error counter");
		} else {
			// HAProxy 3.1+ (49db9739d, "backport as far as 3.1"):
			// spoe_destroy_context() tests `state != NONE || state ==
			// READY`, so every stream that carried the SPOE filter
			// counts as an error when it ends, routed or not. The
			// counter then tracks ended streams and st= above is the
			// only per-processing status. A real error adds one more, so
			// when the lone last request is processed the counter may
			// not pass the number of streams that came before it.
			const err = Number(final[4]);
			t.diagnostic(`HAProxy ${hap.full}: SPOE error counter ${err} when the last of ${s.plan.length} streams was ` +
				'processed (it counts every ended stream: HAProxy bug, see the comment)');
			assert.ok(err <= s.plan.length - 1, `SPOE error counter ${err} > ${s.plan.length - 1} ended streams: SPOE errors`);
		}

		// Each HTTP line: the status sent and the verdict HAProxy got.
		const logged = tally(httpLines, (l) => { const m = HTTP_RE.exec(l); return `${m[1]} keyauth=${m[2]}`; });
		const want = tally(s.plan, (p) => `${p.kind.status} keyauth=${p.kind.verdict ?? '-'}`);
		const wrong = Object.keys(logged).filter((k) => !(logged[k] <= (want[k] || 0)));
		let where = '';
		if (wrong.length > 0 || (dropped === 0 && !isDeepStrictEqual(logged, want))) {
			// Which client connection got a line too many (or too few).
			const byPort = tally(httpLines, (l) => `${/^127\.0\.0\.1:(\d+) /.exec(l)?.[1]} ${HTTP_RE.exec(l)[1]}`);
			const sent = tally(s.results, (r) => `${r.port} ${r.status}`);
			const diff = [...new Set([...Object.keys(byPort), ...Object.keys(sent)])]
				.filter((k) => byPort[k] !== sent[k]).map((k) => `port/status ${k}: sent ${sent[k] || 0}, logged ${byPort[k] || 0}`);
			where = `\n${diff.slice(0, 10).join('\n')}`;
		}
		assert.deepEqual(wrong, [], `HTTP log: more lines than requests sent for ${wrong.join(', ')}; logged ${JSON.stringify(logged)}, sent ${JSON.stringify(want)}${where}`);
		if (dropped === 0)
			assert.deepEqual(logged, want, `HTTP log: status and verdict per request${where}`);
		assert.doesNotMatch(hapLog(), /keyauth_agents\/agent1 is DOWN/, 'HAProxy logged the agent DOWN');
	});

	test(`${V} soak: keyauthd logged no warning or error for HAProxy's closes at shutdown, nor at its own exit`, async () => {
		needSoak();
		assert.ok(!g.haproxy.isRunning(), 'HAProxy is stopped');
		// The agent has seen every close once it holds no connection.
		let st;
		await waitFor('keyauthd to see all of HAProxy\'s connections closed', async () => {
			st = await agentStats(g);
			return st.connections.current === 0;
		}, { timeout: 10000, interval: 100 });
		assert.deepEqual(st.protocol_errors, {}, 'protocol_errors');
		assert.deepEqual(agentBadLines().map(redact), [], 'after HAProxy stopped');
		await stopProcess(g.agent);
		const ex = await g.agent.exited;
		assert.equal(ex.code, 0, 'keyauthd exits 0 on SIGTERM');
		assert.deepEqual(agentBadLines().map(redact), [], 'after keyauthd stopped');
	});

	test(`${V} soak: no key in any log or file of the run`, async () => {
		for (const p of [...g.procs].reverse())
			await stopProcess(p);
		const files = filesUnder(g.dir);
		assert.ok(files.some((f) => f.endsWith('haproxy.out')) && files.some((f) => f.endsWith('keyauthd.err')), 'the logs are there');
		const leaking = files.filter((f) => holdsSecret(readText(f))).map((f) => path.basename(f));
		assert.deepEqual(leaking, [], 'files holding a key');
	});
});
