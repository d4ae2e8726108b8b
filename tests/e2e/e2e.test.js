// SPDX-License-Identifier: Apache-2.0
// End to end: real HAProxy in front, real keyauthd beside it, real curl and
// the official openai SDK as clients, the stand-in provider upstream. Every
// case runs once per HAProxy binary (Debian's 2.6 always, 3.2 when
// scripts/haproxy32.sh made it available; otherwise a loud SKIP line), with
// the version in each test's name.
//
// Covered (issue 5): header key valid/missing/invalid/malformed/expired/other
// route; Authorization: Bearer through the SDK (success, AuthenticationError,
// PermissionDeniedError); query-parameter key stripped before upstream and
// absent from logs; provider credential added, client key never upstream;
// revoke and create take effect within 1 s with no reload; deploy of a
// key_name change (nothing changes before, everything after); agent stopped
// -> 503 and nothing upstream, restarted -> requests succeed and HAProxy's
// spop-check reports down then up, HAProxy untouched; path under no route ->
// 404 without asking the agent; and at the end no key in any log, response
// body or file of the run.
//
// Tests inside one HAProxy version run in order and share one gateway; the
// destructive ones (deploy, agent stop) come last.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';
import OpenAI from 'openai';

import {
	KEYAUTHD, PROVIDER_JS, addSecret, announcedPort, childPids, countLines, ctl, curl, delay,
	failIfExited, filesUnder, forEachHaproxy, freePort, holdsSecret, keyCreate, listening, makeTempDir,
	readText, redact, reloadableHaproxy, run, startProcess, startRenderedHaproxy, stopProcess, waitFor,
} from './lib.js';

const ROUTES = ['openai', 'sdk', 'query'];
const credential = (route) => `provider-secret-${route}`;

/* keyauthd's config. <openaiKeyName> is what the deploy case changes. */
function confText(g, { openaiKeyName = 'X-API-Key', store = g.store } = {}) {
	const up = `127.0.0.1:${g.providerPort}`;
	return `# keyauth e2e test configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 2;
pid_file = "${g.dir}/keyauthd.pid";
store = { backend = "file"; path = "${store}"; };
log = { level = "debug"; target = "stderr"; };
frontend = { bind = [ "127.0.0.1:${g.gwPort}" ]; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "${openaiKeyName}"; key_location = "header"; }; },
	{ name = "sdk"; type = "provider"; context = "/sdk"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "Authorization"; key_location = "header"; }; },
	{ name = "query"; type = "proxy"; context = "/query"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "api_key"; key_location = "query"; }; },
	{ name = "local"; type = "proxy"; context = "/local"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "X-Gateway-Key"; key_location = "header"; }; }
);
`;
}

/* Builds and starts one gateway (provider, keyauthd, HAProxy) for <hap>. */
async function startGateway(hap) {
	const g = { hap, keys: {}, ids: {}, procs: [] };
	g.dir = makeTempDir(hap.label);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	const rh = reloadableHaproxy(hap.bin, g.dir);
	g.hapBin = rh.bin;
	g.hapPatched = rh.patched;

	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));

	// Keys: created before the agent starts, plus the ones the cases make.
	g.keys.openai = await createKey(g, 'openai');
	g.keys.openai2 = await createKey(g, 'openai', 'revokable');
	g.keys.sdk = await createKey(g, 'sdk');
	g.keys.query = await createKey(g, 'query');
	g.keys.local = await createKey(g, 'local');
	// Expired: created on a test clock ten days ago, valid one day.
	g.keys.expired = await createKey(g, 'openai', 'expired', ['--days', '1'],
		{ ...process.env, KEYAUTH_NOW: String(Math.floor(Date.now() / 1000) - 10 * 86400) });
	// Invalid: well formed, from another store the agent never sees.
	const scratchConf = path.join(g.dir, 'scratch.conf');
	fs.writeFileSync(scratchConf, confText(g, { store: path.join(g.dir, 'scratch-keys.db') }));
	g.keys.invalid = await createKey({ ...g, conf: scratchConf, ids: {} }, 'openai', 'invalid');
	// Malformed: one character of a valid key's random part changed, so the
	// checksum no longer matches.
	const k = g.keys.openai;
	const i = 13;
	g.keys.malformed = addSecret(`malformed@${hap.label}`, k.slice(0, i) + (k[i] === 'A' ? 'B' : 'A') + k.slice(i + 1));

	g.agent = await startAgent(g, 'keyauthd');

	const env = {};
	for (const rt of ROUTES)
		env[`KEYAUTH_${rt.toUpperCase()}_CREDENTIAL`] = credential(rt);
	await startRenderedHaproxy(g, hap, { env, bin: g.hapBin });
	// The agent is up for HAProxy once a valid key gets through.
	await waitFor('a first request through HAProxy and keyauthd', async () =>
		(await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.openai })).status === 200,
	{ timeout: 15000, interval: 100 });
	if (g.hapPatched)
		console.log(`# NOTE [haproxy ${hap.full}]: ${hap.bin} does not pass --argv0 to ld.so, so a master-worker reload ` +
			'would fail; using a patched copy of the wrapper for this run');
	return g;
}

async function startAgent(g, name) {
	const p = startProcess(name, KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(p);
	await waitFor(`${name} to start`, () => {
		failIfExited(p);
		return /event=started/.test(readText(p.err));
	}, { timeout: 10000 });
	await waitFor(`${name} to accept connections`, () => listening(p, g.agentPort), { timeout: 5000 });
	return p;
}

/* keyauthctl key create; the key comes back in memory, the id in g.ids. */
async function createKey(g, route, label = route, extra = [], env = process.env) {
	const o = await keyCreate(g.conf, route, { owner: `e2e-${label}`, secret: `${label}@${g.hap.label}`, extra, env, logFile: g.ctlLog });
	g.ids[label] = o.id;
	return o.key;
}

/* GET through HAProxy with curl; <hdrs> maps header names to values. */
function get(g, pathAndQuery, hdrs = {}) {
	return curl(g.dir, {
		url: `http://127.0.0.1:${g.gwPort}${pathAndQuery}`,
		headers: Object.entries(hdrs).map(([n, v]) => `${n}: ${v}`),
	});
}

async function providerRequests(g) {
	const r = await fetch(`http://127.0.0.1:${g.providerPort}/__requests`, { signal: AbortSignal.timeout(10000) });
	return r.json();
}

/* Asserts the provider never saw a client key, in any path, query or header. */
function assertNothingUpstream(reqs, what) {
	for (const rq of reqs) {
		assert.ok(!holdsSecret(rq.path + rq.query), `${what}: a client key reached upstream in ${redact(rq.path + rq.query)}`);
		for (const [name, v] of Object.entries(rq.headers)) {
			const val = Array.isArray(v) ? v.join(',') : String(v);
			assert.ok(!holdsSecret(val), `${what}: a client key reached upstream in header ${name}: ${redact(val)}`);
		}
	}
}

/* Checks <check> keeps returning true for <ms> (a "nothing changes" window,
 * sampled, not slept through). */
async function holdsFor(ms, check) {
	const end = Date.now() + ms;
	let n = 0;
	do {
		assert.ok(await check(), `condition broke after ${n} samples`);
		n++;
		await delay(100);
	} while (Date.now() < end);
}

function assertAuthError(r, status, messageRe, what, { bearer = false } = {}) {
	assert.ok(!holdsSecret(r.body), `${what}: the response holds a key: ${redact(r.body)}`);
	assert.equal(r.status, status, `${what}: HTTP status`);
	assert.ok(r.json && r.json.error, `${what}: a JSON error body`);
	assert.equal(redact(r.json.error.code), 'invalid_api_key', `${what}: error.code`);
	assert.match(redact(r.json.error.message), messageRe, `${what}: error.message`);
	// WWW-Authenticate: Bearer only where the route accepts a Bearer key
	// (the /sdk route, and the deployed /openai route's Authorization).
	if (status === 401 && bearer)
		assert.match(r.headers['www-authenticate'] || '', /^Bearer realm="keyauth"$/, `${what}: WWW-Authenticate`);
	else if (status === 401)
		assert.equal(r.headers['www-authenticate'], undefined, `${what}: no WWW-Authenticate on a route without a Bearer carrier`);
}

forEachHaproxy('e2e on HAProxy', { timeout: 240000, beforeTimeout: 90000 }, startGateway, (ctx) => {
	const { hap, V } = ctx;
	let g;
	before(() => { g = ctx.g; });
	const sdkClient = (apiKey) => new OpenAI({
		apiKey, baseURL: `http://127.0.0.1:${g.gwPort}/sdk/v1`, maxRetries: 0, timeout: 10000,
	});
	let sdkSeq = 0;
	const saveSdk = (obj) => fs.writeFileSync(path.join(g.dir, `sdk-${++sdkSeq}.json`), JSON.stringify(obj));

	test(`${V} header X-API-Key: valid key -> 200 from upstream with the provider credential`, async () => {
		const r = await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.openai });
		assert.equal(r.status, 200);
		assert.equal(r.json?.object, 'list');
		assert.equal(redact(r.json?.received?.provider_credential), credential('openai'));
		const reqs = await providerRequests(g);
		const last = reqs[reqs.length - 1];
		assert.equal(redact(last.path), '/v1/models', 'context stripped from the path');
		assert.equal(redact(last.headers.authorization), `Bearer ${credential('openai')}`);
		assert.ok(!('x-api-key' in last.headers), 'X-API-Key removed before upstream');
		assertNothingUpstream(reqs, 'X-API-Key');
	});

	test(`${V} header X-API-Key: missing -> 401, WWW-Authenticate, JSON invalid_api_key`, async () => {
		const r = await get(g, '/openai/v1/models');
		assertAuthError(r, 401, /missing/i, 'missing key');
		assert.equal(r.json.error.type, 'invalid_request_error');
		assert.match(r.headers['content-type'] || '', /application\/json/);
	});

	test(`${V} header X-API-Key: invalid, malformed, expired -> 401; other route's key -> 403; none reaches upstream`, async () => {
		const before = (await providerRequests(g)).length;
		assertAuthError(await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.invalid }), 401, /incorrect/i, 'invalid key');
		assertAuthError(await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.malformed }), 401, /malformed/i, 'malformed key');
		assertAuthError(await get(g, '/openai/v1/models', { 'X-API-Key': 'not a key' }), 401, /malformed|incorrect/i, 'junk key');
		assertAuthError(await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.expired }), 401, /expired/i, 'expired key');
		assertAuthError(await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.sdk }), 403, /not allowed/i, "another route's key");
		assert.equal((await providerRequests(g)).length, before, 'refused requests reached upstream');
	});

	test(`${V} OpenAI SDK (Authorization: Bearer): chat.completions.create succeeds`, async () => {
		let res;
		try {
			res = await sdkClient(g.keys.sdk).chat.completions.create({
				model: 'stand-in-model', messages: [{ role: 'user', content: 'Hello' }],
			});
		} catch (e) {
			throw new Error(`the SDK call failed: ${e.constructor.name}: ${redact(e.message)}`);
		}
		saveSdk(res);
		assert.equal(res.choices[0].message.content, 'Hello from the stand-in provider.');
		assert.equal(redact(res.received?.provider_credential), credential('sdk'));
		const reqs = await providerRequests(g);
		const last = reqs[reqs.length - 1];
		assert.equal(last.method, 'POST');
		assert.equal(redact(last.path), '/v1/chat/completions');
		assert.equal(redact(last.headers.authorization), `Bearer ${credential('sdk')}`);
		assertNothingUpstream(reqs, 'SDK');
	});

	test(`${V} OpenAI SDK: wrong key -> AuthenticationError (401) with our message`, async () => {
		// The message HAProxy returns for this key, seen with curl.
		const c = await get(g, '/sdk/v1/models', { Authorization: `Bearer ${g.keys.invalid}` });
		assertAuthError(c, 401, /incorrect/i, 'curl, wrong Bearer key', { bearer: true });
		let err = null;
		try {
			saveSdk(await sdkClient(g.keys.invalid).chat.completions.create({
				model: 'stand-in-model', messages: [{ role: 'user', content: 'Hello' }],
			}));
		} catch (e) {
			err = e;
		}
		assert.ok(err !== null, 'the SDK call did not fail');
		saveSdk({ message: err.message, error: err.error });
		assert.ok(err instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${err.constructor.name}`);
		assert.equal(err.status, 401);
		assert.equal(redact(err.code), 'invalid_api_key');
		assert.ok(err.message.includes(c.json.error.message), `the SDK error carries our message: ${redact(err.message)}`);
	});

	test(`${V} OpenAI SDK: another route's key -> PermissionDeniedError (403)`, async () => {
		let err = null;
		try {
			await sdkClient(g.keys.openai).models.list();
		} catch (e) {
			err = e;
		}
		assert.ok(err !== null, 'the SDK call did not fail');
		saveSdk({ message: err.message, error: err.error });
		assert.ok(err instanceof OpenAI.PermissionDeniedError, `expected PermissionDeniedError, got ${err.constructor.name}`);
		assert.equal(err.status, 403);
		assert.match(redact(err.message), /not allowed/i);
	});

	test(`${V} route without a provider credential: the client's own Authorization header never goes upstream`, async () => {
		// "local" has no KEYAUTH_LOCAL_CREDENTIAL: nothing is added upstream,
		// and what the client sent in Authorization is removed with its key.
		const clientAuth = addSecret(`client-authorization@${hap.label}`, 'Bearer client-own-token-0123456789');
		const r = await get(g, '/local/v1/models', { 'X-Gateway-Key': g.keys.local, Authorization: clientAuth });
		assert.equal(r.status, 200, `status ${r.status}`);
		const reqs = await providerRequests(g);
		const last = reqs[reqs.length - 1];
		assert.equal(last.path, '/v1/models', 'the proxied request');
		assert.equal(last.headers.authorization, undefined, 'an Authorization header reached upstream');
		assert.equal(last.headers['x-gateway-key'], undefined, 'the key header reached upstream');
		assertNothingUpstream([last], 'local route');
	});

	test(`${V} query parameter: valid -> 200; upstream sees neither api_key nor the key; other parameters kept`, async () => {
		const cases = [
			{ q: `?foo=1&api_key=${g.keys.query}&bar=two`, want: '?foo=1&bar=two' },
			{ q: `?api_key=${g.keys.query}&foo=1`, want: '?foo=1' },
			{ q: `?foo=1&api_key=${g.keys.query}`, want: '?foo=1' },
			{ q: `?api_key=${g.keys.query}`, want: '' },
		];
		for (const [n, c] of cases.entries()) {
			const r = await get(g, `/query/v1/models${c.q}`);
			assert.equal(r.status, 200, `case ${n}: status`);
			const reqs = await providerRequests(g);
			const last = reqs[reqs.length - 1];
			assert.equal(redact(last.path), '/v1/models', `case ${n}: path`);
			assert.equal(redact(last.query), c.want, `case ${n}: query seen upstream`);
			assert.ok(!/api_key/i.test(last.path + last.query), `case ${n}: api_key reached upstream`);
			assert.equal(redact(last.headers.authorization), `Bearer ${credential('query')}`, `case ${n}: credential`);
			assertNothingUpstream([last], `query case ${n}`);
		}
		assertAuthError(await get(g, '/query/v1/models?foo=1'), 401, /missing/i, 'query: missing');
		assertAuthError(await get(g, `/query/v1/models?api_key=${g.keys.invalid}`), 401, /incorrect/i, 'query: invalid');
		assertAuthError(await get(g, `/query/v1/models?api_key=${g.keys.openai}`), 403, /not allowed/i, "query: another route's key");
		// The key in the header named like the parameter is not a query key.
		assertAuthError(await get(g, '/query/v1/models', { api_key: g.keys.query }), 401, /missing/i, 'query: key in a header');
		assert.ok(!holdsSecret(readText(g.haproxy.out) + readText(g.haproxy.err)), "HAProxy's log holds a key");
		assert.ok(!/api_key/.test(readText(g.haproxy.out)), "HAProxy's log holds the query string");
	});

	test(`${V} path under no route -> 404, agent not asked`, async () => {
		const agentLog = g.agent.err;
		const allow0 = countLines(agentLog, /event=allow /);
		const deny0 = countLines(agentLog, /event=deny /);
		const up0 = (await providerRequests(g)).length;
		for (const p of ['/nowhere/v1/models', '/openaiX/v1/models', '/', '/sdkv1/chat/completions', '/quer?api_key=x']) {
			const r = await get(g, p, { 'X-API-Key': g.keys.openai });
			assert.equal(r.status, 404, `${p}: status`);
			assert.equal(redact(r.json?.error?.code), 'not_found', `${p}: error.code`);
		}
		// Control: one allowed request must show up as exactly one new
		// verdict line; the 404s before it must have left none.
		assert.equal((await get(g, '/openai/v1/models', { 'X-API-Key': g.keys.openai })).status, 200);
		await waitFor('the control verdict in the agent log', () => countLines(agentLog, /event=allow /) > allow0);
		assert.equal(countLines(agentLog, /event=allow /), allow0 + 1, 'the agent judged a request under no route');
		assert.equal(countLines(agentLog, /event=deny /), deny0, 'the agent judged a request under no route');
		assert.equal((await providerRequests(g)).length, up0 + 1, 'a 404 request reached upstream');
	});

	test(`${V} revoke while running -> refused within 1 s, no reload; create -> accepted within 1 s`, async (t) => {
		const hdr = (k) => ({ 'X-API-Key': k });
		const reloads0 = countLines(g.haproxy.err, /Reloading HAProxy/) + countLines(g.haproxy.out, /Reloading HAProxy/);
		const agentReloads0 = countLines(g.agent.err, /event=reload /);
		assert.equal((await get(g, '/openai/v1/models', hdr(g.keys.openai2))).status, 200, 'revokable key works before');

		const r = await ctl(g.conf, ['key', 'revoke', g.ids.revokable], { logFile: g.ctlLog });
		assert.equal(r.status, 0, `keyauthctl key revoke: ${redact(r.stderr)}`);
		const t0 = Date.now();
		const refused = await waitFor('the revoked key to be refused', async () => {
			const x = await get(g, '/openai/v1/models', hdr(g.keys.openai2));
			return x.status !== 200 ? x : null;
		}, { timeout: 5000, interval: 20 });
		const revokeMs = Date.now() - t0;
		t.diagnostic(`revoke took effect ${revokeMs} ms after keyauthctl returned`);
		assertAuthError(refused, 401, /revoked/i, 'revoked key');
		assert.ok(revokeMs <= 1000, `revoke took ${revokeMs} ms (> 1000)`);

		const fresh = await createKey(g, 'openai', 'fresh');
		const t1 = Date.now();
		await waitFor('the new key to be accepted', async () =>
			(await get(g, '/openai/v1/models', hdr(fresh))).status === 200, { timeout: 5000, interval: 20 });
		const createMs = Date.now() - t1;
		t.diagnostic(`new key accepted ${createMs} ms after keyauthctl returned`);
		assert.ok(createMs <= 1000, `create took ${createMs} ms (> 1000)`);

		assert.ok(g.haproxy.isRunning(), 'HAProxy still runs');
		assert.equal(countLines(g.haproxy.err, /Reloading HAProxy/) + countLines(g.haproxy.out, /Reloading HAProxy/), reloads0, 'HAProxy was reloaded');
		assert.equal(countLines(g.agent.err, /event=reload /), agentReloads0, 'keyauthd was reloaded');
	});

	test(`${V} keyauthctl deploy: X-API-Key -> Authorization; nothing changes before, everything after`, async (t) => {
		const oldHdr = { 'X-API-Key': g.keys.openai };
		const newHdr = { Authorization: `Bearer ${g.keys.openai}` };
		fs.writeFileSync(g.conf, confText(g, { openaiKeyName: 'Authorization' }));
		// Before deploy: the edited file changes nothing.
		await holdsFor(1500, async () =>
			(await get(g, '/openai/v1/models', oldHdr)).status === 200 &&
			(await get(g, '/openai/v1/models', newHdr)).status === 401);

		const master = g.haproxy.pid;
		const agentReloads0 = countLines(g.agent.err, /event=reload result=ok/);
		const up0 = (await providerRequests(g)).length;
		const r = await ctl(g.conf, ['deploy', '--haproxy-dir', g.hapDir, '--reload-haproxy', `kill -USR2 ${master}`,
			'--haproxy-service', 'none', '--haproxy', g.hapBin, '--haproxy-version', hap.render, '--json'],
		{ logFile: g.ctlLog });
		assert.equal(r.status, 0, `keyauthctl deploy failed: ${redact(r.stderr)}`);
		const rep = JSON.parse(r.stdout);
		assert.equal(rep.ok, true);
		assert.equal(rep.haproxy_check, 'ok');
		assert.equal(rep.agent.signalled, true, 'keyauthd signalled through its pid file');
		assert.equal(rep.agent.pid, g.agent.pid);
		assert.equal(rep.reload?.status, 0, 'the HAProxy reload command ran');
		assert.ok(rep.files.some((f) => f.changed), 'deploy changed a file');

		const t0 = Date.now();
		await waitFor('the old header refused and the new one accepted', async () =>
			(await get(g, '/openai/v1/models', oldHdr)).status === 401 &&
			(await get(g, '/openai/v1/models', newHdr)).status === 200, { timeout: 15000, interval: 100 });
		t.diagnostic(`deploy live ${Date.now() - t0} ms after keyauthctl returned`);
		await waitFor('keyauthd to log its reload', () => countLines(g.agent.err, /event=reload result=ok/) > agentReloads0);
		assert.ok(g.haproxy.isRunning(), 'the HAProxy master survived the reload');
		assert.equal(g.haproxy.pid, master);
		const old = await get(g, '/openai/v1/models', oldHdr);
		assertAuthError(old, 401, /missing/i, 'old header after deploy', { bearer: true });
		const reqs = (await providerRequests(g)).slice(up0);
		assert.ok(reqs.length > 0, 'requests reached upstream after deploy');
		for (const rq of reqs)
			assert.equal(redact(rq.headers.authorization), `Bearer ${credential('openai')}`);
		assertNothingUpstream(reqs, 'after deploy');
	});

	test(`${V} keyauthd stopped -> 503, nothing upstream, spop-check DOWN; restarted -> 200 and UP, HAProxy untouched`, async (t) => {
		const hdr = { Authorization: `Bearer ${g.keys.sdk}` };
		const hapLog = () => readText(g.haproxy.out) + readText(g.haproxy.err);
		const downRe = /Server keyauth_agents\/agent1 is DOWN/g;
		const upRe = /Server keyauth_agents\/agent1 is UP/g;
		const downs0 = (hapLog().match(downRe) || []).length;
		const ups0 = (hapLog().match(upRe) || []).length;
		const master = g.haproxy.pid;
		const workers0 = childPids(master);
		const reloadLines = () => countLines(g.haproxy.out, /Reloading HAProxy/) + countLines(g.haproxy.err, /Reloading HAProxy/);
		const reloads0 = reloadLines();
		const up0 = (await providerRequests(g)).length;

		await stopProcess(g.agent, { signal: 'SIGTERM' });
		const ex = await g.agent.exited;
		assert.equal(ex.code, 0, 'keyauthd exits 0 on SIGTERM');
		for (let i = 0; i < 3; i++) {
			const r = await get(g, '/sdk/v1/models', hdr);
			assert.equal(r.status, 503, `request ${i} with the agent down`);
			assert.equal(redact(r.json?.error?.code), 'service_unavailable');
		}
		const t0 = Date.now();
		await waitFor('spop-check to report the agent DOWN', () => (hapLog().match(downRe) || []).length > downs0,
			{ timeout: 30000, interval: 200 });
		t.diagnostic(`agent reported DOWN ${Date.now() - t0} ms after the 503s`);
		assert.equal((await get(g, '/sdk/v1/models', hdr)).status, 503, 'agent DOWN: 503');
		assert.equal((await providerRequests(g)).length, up0, 'a request reached upstream with the agent down');

		g.agent = await startAgent(g, 'keyauthd-restarted');
		const t1 = Date.now();
		await waitFor('requests to succeed again', async () =>
			(await get(g, '/sdk/v1/models', hdr)).status === 200, { timeout: 30000, interval: 200 });
		await waitFor('spop-check to report the agent UP', () => (hapLog().match(upRe) || []).length > ups0,
			{ timeout: 30000, interval: 200 });
		t.diagnostic(`agent back ${Date.now() - t1} ms after restart`);
		assert.equal(g.haproxy.pid, master, 'HAProxy master unchanged');
		// A worker draining from the deploy's reload may have left; none may have come.
		const workers1 = childPids(master);
		assert.ok(workers1.length > 0 && workers1.every((w) => workers0.includes(w)), 'HAProxy started a new worker');
		assert.equal(reloadLines(), reloads0, 'HAProxy was reloaded');
		assert.equal((await get(g, '/openai/v1/models', { Authorization: `Bearer ${g.keys.openai}` })).status, 200);
	});

	test(`${V} no key in any log, response body or file of the run`, async () => {
		fs.writeFileSync(path.join(g.dir, 'provider-requests.json'), JSON.stringify(await providerRequests(g)));
		assertNothingUpstream(await providerRequests(g), 'whole run');
		// Stop everything so every log is complete, then scan.
		for (const p of [...g.procs].reverse())
			await stopProcess(p);
		const files = filesUnder(g.dir);
		assert.ok(files.length > 20, 'the run left its logs and bodies');
		const leaking = files.filter((f) => holdsSecret(readText(f))).map((f) => path.basename(f));
		assert.deepEqual(leaking, [], 'files holding a key');
	});
});
