// SPDX-License-Identifier: Apache-2.0
// End to end, what the rendered HAProxy configuration lets through (issue 17,
// findings 4 and 5), once per HAProxy binary (Debian's 2.6 always, 3.2 when
// scripts/haproxy32.sh made it). One gateway: routes in OpenAI's, Anthropic's
// and Google's error shapes and a query-key route, each in front of its own
// stand-in (tests/e2e/vendors.js, which records the request-target and Host
// it received), all on numeric upstreams (127.0.0.1:PORT).
//
// - Methods: TRACE, CONNECT, a made-up method, a lower-case one and a
//   standard one the route does not allow get 405 in the route's shape with
//   Allow, sent with a valid key; nothing reaches a stand-in and the agent
//   is not asked (its verdict count does not move).
// - Logs: a valid key in the path (its ';' parameters, a segment, with or
//   without the prefix, percent-encoded), in the query, or sent as the method
//   is in no line of HAProxy's log, the agent's log or what the stand-ins
//   recorded; the lines are there, with the sanitized path and the route.
// - Host: an absolute-form request line with a foreign authority (http and
//   https, with a query key), and an origin-form one with a foreign Host,
//   reach the stand-in in origin-form with Host = its host:port.
// - And no key in any file of the run.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import {
	KEYAUTHD, addSecret, announcedPort, ctl, curl, failIfExited, filesUnder, forEachHaproxy, freePort,
	holdsSecret, keyCreate, makeTempDir, readText, redact, run, startProcess, startRenderedHaproxy,
	timeLimit, waitFor,
} from './lib.js';

const VENDORS_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'vendors.js');

// route -> the stand-in behind it (STANDIN_VENDOR) and its route settings.
const ROUTES = [
	{ name: 'openai', vendor: 'openai', context: '/openai', extra: 'provider = "openai";' },
	{ name: 'anthropic', vendor: 'anthropic', context: '/anthropic', extra: 'provider = "anthropic";' },
	{ name: 'gemini', vendor: 'gemini', context: '/gemini', extra: 'provider = "gemini";' },
	// A key in the query (the generic profile: Bearer upstream, as mistral wants it).
	{ name: 'chat', vendor: 'mistral', context: '/apps/chat',
	  extra: 'type = "proxy"; security = { key_name = "api_key"; key_location = "query"; };' },
];
const ALLOW = 'GET, HEAD, POST, DELETE, OPTIONS';

function confText(g) {
	const routes = ROUTES.map((r) =>
		`\t{ name = "${r.name}"; context = "${r.context}"; upstream = "127.0.0.1:${g.standin[r.name].port}"; ${r.extra} }`);
	// A unix socket: no plain TCP agent listener to allow.
	return `# keyauth security e2e configuration (generated)
listen = [ "unix:${g.dir}/agent.sock" ];
workers = 2;
control_socket = "${g.dir}/control.sock";
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
routes = (
${routes.join(',\n')}
);
`;
}

async function startStandin(g, r) {
	const secret = addSecret(`provider-${r.name}@${g.hap.label}`, `prov_${r.name}_${crypto.randomBytes(18).toString('hex')}`);
	const env = { ...process.env, STANDIN_SECRET: secret, STANDIN_VENDOR: r.vendor, STANDIN_INTERVAL_MS: '10' };
	const p = startProcess(`standin-${r.name}`, process.execPath, [VENDORS_JS, '0'], { dir: g.dir, env });
	g.procs.push(p);
	const port = await waitFor(`the ${r.name} stand-in to listen`, () => announcedPort(p), { timeout: 10000 });
	return { port, secret, proc: p };
}

async function startGateway(hap) {
	const g = { hap, keys: {}, procs: [], standin: {} };
	g.dir = makeTempDir(`security-${hap.label}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	for (const r of ROUTES)
		g.standin[r.name] = await startStandin(g, r);
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));
	for (const r of ROUTES)
		g.keys[r.name] = (await keyCreate(g.conf, r.name, { owner: `sec-${r.name}`, secret: `${r.name}@${hap.label}`, logFile: g.ctlLog })).key;

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });

	const env = {};
	for (const rt of ROUTES)
		env[`KEYAUTH_${rt.name.toUpperCase()}_CREDENTIAL`] = g.standin[rt.name].secret;
	await startRenderedHaproxy(g, hap, { env });
	await waitFor('a first request through HAProxy and keyauthd', async () =>
		(await gw(g, '/openai/v1/models', { Authorization: `Bearer ${g.keys.openai}` })).status === 200,
	{ timeout: 15000, interval: 100 });
	return g;
}

function gw(g, pathAndQuery, hdrs = {}, extra = {}) {
	return curl(g.dir, {
		url: `http://127.0.0.1:${g.gwPort}${pathAndQuery}`,
		headers: Object.entries(hdrs).map(([n, v]) => `${n}: ${v}`),
		...extra,
	});
}

/* Sends <head> (a request line and headers, CRLF-separated, without the
 * final blank line) as it is, with Connection: close; resolves to the
 * answer's { status, body }. For request lines curl will not write. */
function rawRequest(g, head) {
	return timeLimit(new Promise((resolve, reject) => {
		const s = net.connect({ host: '127.0.0.1', port: g.gwPort });
		const chunks = [];
		s.once('error', reject);
		s.on('data', (c) => chunks.push(c));
		s.once('end', () => {
			const text = Buffer.concat(chunks).toString('latin1');
			const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
			const i = text.indexOf('\r\n\r\n');
			resolve({ status: m ? Number(m[1]) : 0, body: i >= 0 ? text.slice(i + 4) : '' });
		});
		s.write(`${head}\r\nConnection: close\r\n\r\n`);
	}), 10000, 'no answer to a raw request within 10 s');
}

async function standinRequests(g, name) {
	const r = await fetch(`http://127.0.0.1:${g.standin[name].port}/__requests`, { signal: AbortSignal.timeout(10000) });
	return r.json();
}

async function standinCounts(g) {
	const out = {};
	for (const r of ROUTES)
		out[r.name] = (await standinRequests(g, r.name)).length;
	return out;
}

/* Every verdict keyauthd gave since it started (its control socket). */
async function verdicts(g) {
	const r = await ctl(g.conf, ['stats', '--json'], { logFile: g.ctlLog });
	assert.equal(r.status, 0, `keyauthctl stats: ${redact(r.stderr)}`);
	return Object.values(JSON.parse(r.stdout).verdicts).reduce((a, b) => a + b, 0);
}

/* <s> with every character percent-encoded. */
const pctAll = (s) => [...s].map((c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`).join('');

forEachHaproxy('security on HAProxy', { timeout: 120000 }, startGateway, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} TRACE, CONNECT, unknown methods and ones the route does not allow: 405 with Allow, nothing forwarded, the agent not asked`, async () => {
		const bearer = { Authorization: `Bearer ${g.keys.openai}` };
		// A control request: allowed, counted by the agent and the stand-in.
		assert.equal((await gw(g, '/openai/v1/models', bearer)).status, 200);
		const seen0 = await standinCounts(g);
		const v0 = await verdicts(g);

		for (const method of ['TRACE', 'FOO', 'PUT', 'PATCH', 'get']) {
			const r = await gw(g, '/openai/v1/models', bearer, { method });
			assert.equal(r.status, 405, `${method} on the openai route: ${r.status} ${redact(r.body)}`);
			assert.equal(r.json?.error?.code, 'method_not_allowed', `${method}: OpenAI's shape: ${redact(r.body)}`);
			assert.equal(r.json.error.type, 'invalid_request_error');
			assert.equal(r.headers.allow, ALLOW, `${method}: Allow`);
		}
		let r = await gw(g, '/anthropic/v1/messages', { 'x-api-key': g.keys.anthropic }, { method: 'TRACE' });
		assert.equal(r.status, 405);
		assert.equal(r.json?.type, 'error', `Anthropic's shape: ${redact(r.body)}`);
		assert.equal(r.json.error?.type, 'invalid_request_error');
		assert.equal(r.headers.allow, ALLOW);
		r = await gw(g, '/gemini/v1beta/models/m:generateContent', { 'x-goog-api-key': g.keys.gemini },
			{ method: 'PUT', data: '{}' });
		assert.equal(r.status, 405);
		assert.deepEqual(Object.keys(r.json?.error || {}).sort(), ['code', 'message', 'status'], `Google's shape: ${redact(r.body)}`);
		assert.equal(r.json.error.code, 405);
		assert.equal(r.headers.allow, ALLOW);
		r = await gw(g, `/apps/chat/v1/models?api_key=${g.keys.chat}`, {}, { method: 'TRACE' });
		assert.equal(r.status, 405, 'TRACE on the query-key route');
		// CONNECT: HAProxy refuses an origin-form one (400); an authority-form
		// one has no path, hence no route (404); TRACE under no route is 404.
		r = await gw(g, '/openai/v1/models', bearer, { method: 'CONNECT' });
		assert.ok([400, 404, 405].includes(r.status), `CONNECT /openai/v1/models: ${r.status}`);
		r = await rawRequest(g, `CONNECT 127.0.0.1:${g.standin.openai.port} HTTP/1.1\r\nHost: 127.0.0.1:${g.standin.openai.port}\r\n` +
			`Authorization: Bearer ${g.keys.openai}`);
		assert.ok([400, 404, 405].includes(r.status), `CONNECT to the stand-in's address: ${r.status}`);
		r = await gw(g, '/nowhere', bearer, { method: 'TRACE' });
		assert.equal(r.status, 404);

		// Another control: the agent and the stand-in count it, so the
		// counts below are current; the refused requests cost nothing.
		assert.equal((await gw(g, '/openai/v1/models', bearer)).status, 200);
		assert.equal(await verdicts(g), v0 + 1, 'the agent gave one verdict (the control), none for a refused method');
		const seen1 = await standinCounts(g);
		assert.deepEqual(seen1, { ...seen0, openai: seen0.openai + 1 }, 'only the control reached a stand-in');
	});

	test(`${V} a key in the path, its parameters, the query or the method reaches no log line`, async () => {
		const K = g.keys.chat;
		const O = g.keys.openai;
		const bearer = { Authorization: `Bearer ${O}` };
		const enc = addSecret(`openai-percent-encoded@${g.hap.label}`, pctAll(O));
		// The key without its prefix: a secret of its own, so that redact()
		// hides it whole.
		const bare = addSecret(`openai-unprefixed@${g.hap.label}`, O.slice(3));
		const logFile = g.haproxy.out;
		const lines0 = readText(logFile).split('\n').filter((l) => / fe_keyauth /.test(l)).length;
		const want = [
			// [path and query, headers, extra, status]
			[`/apps/chat/v1/models;api_key=${K}`, {}, {}, 401],
			[`/apps/chat/v1;api_key=${K}/models?x=1`, {}, {}, 401],
			[`/apps/chat/v1/models?api_key=${K}&b=2`, {}, {}, 200],
			[`/openai/v1/${O}/models`, { 'X-Extra': O }, {}, 401],
			[`/openai/v1/models/${bare}`, {}, {}, 401],
			[`/openai/v1/${enc}`, {}, {}, 401],
			[`/openai/v1/models?key=${O}&api_key=${O}`, bearer, {}, 200],
			['/openai/v1/models', bearer, { method: O }, 405],
		];
		const got = [];
		for (const [p, h, extra] of want)
			got.push(await gw(g, p, h, extra));
		await waitFor('HAProxy to log every request', () =>
			readText(logFile).split('\n').filter((l) => / fe_keyauth /.test(l)).length >= lines0 + want.length);

		const logs = {
			"HAProxy's log": readText(g.haproxy.out) + readText(g.haproxy.err),
			"keyauthd's log": readText(g.agent.out) + readText(g.agent.err),
		};
		for (const rt of ROUTES) {
			const p = g.standin[rt.name].proc;
			logs[`the ${rt.name} stand-in's output`] = readText(p.out) + readText(p.err);
			logs[`what the ${rt.name} stand-in recorded`] = JSON.stringify(await standinRequests(g, rt.name));
		}
		for (const [what, text] of Object.entries(logs)) {
			const bad = text.split('\n').filter((l) => holdsSecret(l));
			assert.equal(bad.length, 0, `${what}: ${bad.length} line(s) hold a key, e.g. ${redact(bad[0] ?? '')}`);
		}
		// (The answers are checked after the logs, which are this case's point.)
		want.forEach(([p, , , status], i) =>
			assert.equal(got[i].status, status, `${redact(p)}: ${got[i].status} ${redact(got[i].body)}`));
		// The lines are there: the route, the path up to its parameters,
		// key-like stretches replaced; a method that is not a standard one
		// as "-".
		const hl = logs["HAProxy's log"];
		for (const re of [/ \/apps\/chat\/v1\/models HTTP\/1\.1 route=chat keyauth=missing /,
			/ \/apps\/chat\/v1 HTTP\/1\.1 route=chat keyauth=missing /,
			/ \/apps\/chat\/v1\/models HTTP\/1\.1 route=chat keyauth=ok /,
			/ \/openai\/v1\/<key>\/models HTTP\/1\.1 route=openai /,
			/ \/openai\/v1\/models\/<token> HTTP\/1\.1 route=openai /,
			/ \/openai\/v1\/<token> HTTP\/1\.1 route=openai /,
			/ 405 \d+ .* - \/openai\/v1\/models HTTP\/1\.1 route=openai /])
			assert.match(hl, re, 'a log line with the sanitized path');
		// What reached the chat stand-in: the other parameter, not the key.
		const chat = (await standinRequests(g, 'chat')).at(-1);
		assert.equal(chat.query, '?b=2');
	});

	test(`${V} an absolute-form request line reaches the provider in origin-form, with Host = the upstream's host:port`, async () => {
		const O = g.keys.openai;
		const cases = [
			['openai', `GET http://evil.example/openai/v1/models HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${O}`, '/v1/models'],
			['openai', `GET https://evil.example:8443/openai/v1/models?a=1 HTTP/1.1\r\nHost: evil.example:8443\r\nAuthorization: Bearer ${O}`,
				'/v1/models?a=1'],
			['chat', `GET http://evil.example/apps/chat/v1/models?api_key=${g.keys.chat}&b=2 HTTP/1.1\r\nHost: evil.example`, '/v1/models?b=2'],
			['openai', `GET /openai/v1/models HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer ${O}`, '/v1/models'],
		];
		for (const [route, head, target] of cases) {
			const what = redact(head.split('\r\n')[0]);
			const r = await rawRequest(g, head);
			assert.equal(r.status, 200, `${what}: ${r.status} ${redact(r.body)}`);
			const rec = (await standinRequests(g, route)).at(-1);
			assert.equal(rec.target, target, `${what}: the request-target the provider received`);
			assert.equal(rec.host, `127.0.0.1:${g.standin[route].port}`, `${what}: the Host the provider received`);
			assert.equal(rec.status, 200);
		}
	});

	test(`${V} no key in any file of the run`, () => {
		const leaks = filesUnder(g.dir).filter((f) => holdsSecret(readText(f)));
		assert.deepEqual(leaks.map((f) => path.relative(g.dir, f)), [], 'files holding a key');
	});
});
