// SPDX-License-Identifier: Apache-2.0
// End to end, the agent's listening trust boundary (security issue #17,
// finding 2): one local user must not be able to hold every agent connection
// and starve HAProxy.
//
// Per HAProxy binary (Debian's 2.6 always, 3.2 when scripts/haproxy32.sh made
// it): keyauthd on a unix socket that uid 65534 (nobody) may reach
// (socket_mode "0666" in a 0755 directory: what is tested is the per-peer
// limit, not the directory), max_connections left at its default (10000),
// max_connections_per_peer at its default (1000) and a RLIMIT_NOFILE high
// enough for all of them. A flooder running as nobody (its RLIMIT_NOFILE
// raised as root before it drops privileges) opens 10,000 connections, each
// with a HELLO, and holds what it gets. Then a freshly started HAProxy must
// answer 200 to a valid key (401 to a wrong one: the agent answers, nothing
// fails open), and the refusals are counted and logged at most once a second.
//
// Before per-peer limits the flooder held all 10,000 slots and that HAProxy
// answered 503 until the flood ended. KEYAUTH_E2E_TRUST_PER_PEER=10000 runs
// the same file with max_connections_per_peer = max_connections, i.e. those
// semantics: the 200 case then fails (checked when the limit was added).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, test } from 'node:test';

import {
	KEYAUTHD, PROVIDER_JS, announcedPort, countLines, ctl, curl, failIfExited, forEachHaproxy,
	freePort, keyCreate, listening, makeTempDir, readText, redact, run, startProcess,
	startRenderedHaproxy, stopProcess, waitFor,
} from './lib.js';

const FLOOD = 10000;             // the flooder's connections (= max_connections' default)
const PER_PEER = Number(process.env.KEYAUTH_E2E_TRUST_PER_PEER) || 0;  // 0: the default
const NOBODY = 65534;

/* HAPROXY-HELLO as HAProxy sends it (doc/PROTOCOL.md; the 2.6 golden frame of
 * tests/unit/spop-vectors.h without engine-id): length, type 1, flags FIN,
 * stream-id 0, frame-id 0, then the KV list. */
function helloFrame() {
	const kv = (name, typed) => Buffer.concat([Buffer.from([name.length]), Buffer.from(name), typed]);
	const str = (s) => Buffer.concat([Buffer.from([0x08, s.length]), Buffer.from(s)]);
	const body = Buffer.concat([
		Buffer.from([0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]),
		kv('supported-versions', str('2.0')),
		kv('max-frame-size', Buffer.from([0x03, 0xfc, 0xf0, 0x06])),    // uint32 16380
		kv('capabilities', str('pipelining')),
	]);
	const len = Buffer.alloc(4);
	len.writeUInt32BE(body.length);
	return Buffer.concat([len, body]);
}

/* The flooder, run as nobody: opens <count> connections to the unix socket
 * <argv[1]> (at most 500 being set up at once), sends a HELLO on each and
 * keeps those that get an answer. Prints "done held=H closed=C errors=E" once
 * every connection is settled, then "lost=N" whenever a held one closes,
 * and holds the rest until killed. */
const FLOODER = `
const net = require('net');
const [sock, count, helloHex] = [process.argv[1], Number(process.argv[2]), process.argv[3]];
const hello = Buffer.from(helloHex, 'hex');
const held = [];
let next = 0, pending = 0, closed = 0, errors = 0, lost = 0, settled = 0;
function settle() {
	settled++;
	pending--;
	if (settled === count)
		console.log('done held=' + held.length + ' closed=' + closed + ' errors=' + errors + ' uid=' + process.getuid());
	pump();
}
function one() {
	pending++;
	const s = net.connect(sock);
	let state = 'open';
	s.on('connect', () => s.write(hello));
	s.on('data', () => {
		if (state !== 'open')
			return;
		state = 'held';
		held.push(s);
		settle();
	});
	s.on('error', (e) => {
		if (state === 'open' && e.code === 'EAGAIN') {   // listen queue full: again
			state = 'retry';
			pending--;
			next--;
			setTimeout(pump, 10);
		} else if (state === 'open') {
			state = 'closed';
			if (e.code === 'EPIPE' || e.code === 'ECONNRESET')
				closed++;
			else
				errors++;
			settle();
		}
	});
	s.on('close', () => {
		if (state === 'open') {
			state = 'closed';
			closed++;
			settle();
		} else if (state === 'held') {
			state = 'lost';
			console.log('lost=' + (++lost));
		}
	});
}
function pump() {
	while (pending < 500 && next < count) {
		next++;
		one();
	}
}
pump();
`;

function confText(g) {
	return `# keyauth trust e2e configuration (generated)
listen = [ "unix:${g.sock}" ];
socket_mode = "0666";
workers = 2;
${PER_PEER ? `max_connections_per_peer = ${PER_PEER};\n` : ''}control_socket = "${g.dir}/control.sock";
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:${g.providerPort}";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; }
);
`;
}

/* True when something accepts connections on the unix socket <p>. */
function unixOpen(p) {
	return new Promise((resolve) => {
		const s = net.connect(p);
		const done = (v) => { s.destroy(); resolve(v); };
		s.once('connect', () => done(true));
		s.once('error', () => done(false));
		s.setTimeout(1000, () => done(false));
	});
}

function get(g, hdrs) {
	return curl(g.dir, {
		url: `http://127.0.0.1:${g.gwPort}/openai/v1/models`,
		headers: Object.entries(hdrs).map(([n, v]) => `${n}: ${v}`),
	});
}

async function agentStats(g) {
	const r = await ctl(g.conf, ['stats', '--json'], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl stats failed: ${redact(r.stderr)}`);
	return JSON.parse(r.stdout);
}

/* Provider, keyauthd and the flood; HAProxy only once the flood is held. */
async function startStack(hap) {
	const g = { hap, procs: [] };
	g.dir = makeTempDir(`trust-${hap.label}`);
	// The socket's directory: 0755 under /tmp, so that nobody reaches the
	// socket (0666) through it, but may not create anything there.
	g.sockDir = makeTempDir(`trust-sock-${hap.label}`);
	fs.chmodSync(g.sockDir, 0o755);
	g.sock = path.join(g.sockDir, 'keyauthd.sock');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);

	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));
	g.key = (await keyCreate(g.conf, 'openai', { owner: 'trust', secret: `trust@${hap.label}`, logFile: g.ctlLog })).key;

	// prlimit execs keyauthd: the pid tracked is the agent's own.
	g.agent = startProcess('keyauthd', 'prlimit', ['--nofile=16384:16384', '--', KEYAUTHD, '-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => { failIfExited(g.agent); return unixOpen(g.sock); });

	// The flood: as root, raise the limit; then become nobody; then node.
	g.floodT0 = Date.now();
	g.flooder = startProcess('flooder', 'prlimit', ['--nofile=12000:12000', '--', 'setpriv',
		`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups',
		process.execPath, '-e', FLOODER, g.sock, String(FLOOD), helloFrame().toString('hex')], { dir: g.dir });
	g.procs.push(g.flooder);
	g.flood = await waitFor('the flooder to settle its 10,000 connections', () => {
		failIfExited(g.flooder);
		const m = /^done held=(\d+) closed=(\d+) errors=(\d+) uid=(\d+)$/m.exec(readText(g.flooder.out));
		return m ? { held: Number(m[1]), closed: Number(m[2]), errors: Number(m[3]), uid: Number(m[4]) } : null;
	}, { timeout: 120000, interval: 100 });
	g.floodMs = Date.now() - g.floodT0;

	// HAProxy, started fresh while the flood holds its connections.
	await startRenderedHaproxy(g, hap, { env: { KEYAUTH_OPENAI_CREDENTIAL: 'provider-secret' } });
	g.cfgText = fs.readFileSync(g.hapCfg, 'utf8');
	return g;
}

forEachHaproxy('agent trust boundary on HAProxy', { timeout: 300000, beforeTimeout: 180000, tag: 'trust' }, startStack, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} the rendered HAProxy config talks to the agent's unix socket`, () => {
		assert.match(g.cfgText, new RegExp(`^    server agent1 unix@${g.sock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} check inter 2s$`, 'm'));
	});

	test(`${V} the flooder (uid ${NOBODY}) holds max_connections_per_peer connections; the rest are closed at once`, () => {
		const limit = PER_PEER || 1000;
		console.log(`# ${V} flood: ${FLOOD} connections settled in ${g.floodMs} ms: held ${g.flood.held}, ` +
			`closed ${g.flood.closed}, errors ${g.flood.errors}`);
		assert.equal(g.flood.uid, NOBODY);
		assert.equal(g.flood.errors, 0);
		assert.equal(g.flood.held, limit);
		assert.equal(g.flood.closed, FLOOD - limit);
	});

	test(`${V} a freshly started HAProxy answers 200 to a valid key during the flood, 401 to a wrong one`, async () => {
		// A few seconds for HAProxy's first SPOE connection and check; the
		// flood holds its connections far longer (idle_timeout 60 s).
		const r = await waitFor('HAProxy to answer 200 to a valid key', async () => {
			const x = await get(g, { 'X-API-Key': g.key });
			return x.status === 200 ? x : null;
		}, { timeout: 15000, interval: 200 });
		assert.equal(r.status, 200);
		assert.equal((await get(g, { 'X-API-Key': 'ka_notakeyatall' })).status, 401);
		assert.doesNotMatch(readText(g.flooder.out), /^lost=/m, 'the flood lost connections meanwhile: not held');
	});

	test(`${V} refusals are counted per reason and logged at most once a second`, async () => {
		const s = await agentStats(g);
		const refusedPeer = FLOOD - (PER_PEER || 1000);
		assert.equal(s.connections.refused_per_peer, refusedPeer);
		assert.equal(s.connections.refused_max_connections, 0);
		assert.equal(s.connections.refused, refusedPeer);
		assert.ok(s.connections.current >= (PER_PEER || 1000) + 1, `current ${s.connections.current}`);
		const lines = countLines(g.agent.err, /event=connection_refused reason=max_connections_per_peer /);
		const seconds = Math.ceil((Date.now() - g.floodT0) / 1000);
		assert.ok(lines >= 1 && lines <= seconds + 1, `${lines} refusal lines in ${seconds} s`);
		assert.match(readText(g.agent.err), new RegExp(`event=connection_refused reason=max_connections_per_peer limit=${PER_PEER || 1000} peer="uid 65534" refused=\\d+`));
	});

	test(`${V} once the flood ends, its connections are given back`, async () => {
		await stopProcess(g.flooder);
		await waitFor('the agent to count the flood gone', async () => (await agentStats(g)).connections.current < 100,
			{ timeout: 10000, interval: 100 });
		assert.equal((await get(g, { 'X-API-Key': g.key })).status, 200);
	});
});
