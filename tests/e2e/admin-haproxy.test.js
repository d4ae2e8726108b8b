// SPDX-License-Identifier: Apache-2.0
// End to end, the admin API behind HAProxy (issue 22): keyauthd checks the
// admin key like any key, HAProxy's rendered admin route adds the coarse
// scope rules and the identity headers, keyauth-admin checks the scopes again
// (defence in depth). Once per HAProxy binary (Debian's 2.6 always, 3.2 when
// scripts/haproxy32.sh made it available):
// - the console's static files are public, everything else needs a key:
//   no key 401, a valid key of a user route 403;
// - a read key reads and cannot write (403 from HAProxy's rule, and from the
//   daemon when a hand-edited config drops that rule); a write key writes and
//   cannot deploy;
// - identity headers a client forges (X-Keyauth-*) are ignored;
// - an admin key's rate limit gives 429; a revoked admin key is refused
//   within 1 s;
// - no key in any log of the run.
// The stack: admin-lib.js (provider, keyauthd, keyauth-admin, HAProxy).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import {
	ADMIN_CONTEXT, adminKey, assertNoKeyInLogs, gw, routeKey, startAdminStack, stopAdminStack,
} from './admin-lib.js';
import {
	addSecret, ctl, curl, forEachHaproxy, freePort, holdsSecret, listening, readText, redact, run, startProcess,
	stopProcess, waitFor,
} from './lib.js';

const A = ADMIN_CONTEXT;

async function startStack(hap) {
	const g = await startAdminStack(hap, { tag: 'admin-hap' });
	g.keys.read = await adminKey(g, 'admin-read', ['read']);
	g.keys.write = await adminKey(g, 'admin-write', ['read', 'write']);
	g.keys.all = await adminKey(g, 'admin-all', ['read', 'write', 'deploy']);
	g.keys.openai = await routeKey(g, 'openai', 'openai-user');
	// The first request through HAProxy and keyauthd with a fresh key.
	await waitFor('an admin key accepted through HAProxy', async () =>
		(await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.read.key })).status === 200,
	{ timeout: 15000, interval: 100 });
	return g;
}

/* A JSON error answer: status and the {"error":{"code","message"}} shape,
 * never a key in it. */
function assertError(r, status, what) {
	assert.ok(!holdsSecret(r.body), `${what}: the answer holds a key: ${redact(r.body)}`);
	assert.equal(r.status, status, `${what}: status (body: ${redact(r.body).slice(0, 300)})`);
	assert.ok(r.json && r.json.error && typeof r.json.error.code === 'string' &&
		typeof r.json.error.message === 'string', `${what}: a JSON error body: ${redact(r.body).slice(0, 300)}`);
}

/* Lines of keyauth-admin's log that record a request answered <status>. */
function adminLogged(g, status) {
	return readText(g.admin.err).split('\n').filter((l) => new RegExp(`\\bstatus=${status}\\b`).test(l)).length;
}

forEachHaproxy('admin API through HAProxy', { timeout: 180000, tag: 'admin-haproxy', beforeTimeout: 90000,
	stop: stopAdminStack }, startStack, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} the console's static files need no key; the API and openapi.json do (401)`, async () => {
		for (const p of [`${A}/`, `${A}/console/index.html`, `${A}/console/console.css`, `${A}/console/console.js`]) {
			const r = await gw(g, 'GET', p);
			assert.equal(r.status, 200, `GET ${p} without a key`);
			assert.match(r.headers['content-security-policy'] || '', /default-src 'none'/, `${p}: CSP`);
			assert.equal(r.headers['x-content-type-options'], 'nosniff', `${p}: nosniff`);
		}
		assert.match((await gw(g, 'GET', `${A}/`)).body, /<title>keyauth admin<\/title>/);
		for (const p of [`${A}/v1/whoami`, `${A}/v1/keys`, `${A}/v1/routes`, `${A}/openapi.json`, `${A}/v1/audit`])
			assertError(await gw(g, 'GET', p), 401, `GET ${p} without a key`);
		assertError(await gw(g, 'POST', `${A}/v1/keys`, { body: { routes: ['openai'] } }), 401, 'POST without a key');
		// A key in a header other than Authorization is no admin key.
		assertError(await gw(g, 'GET', `${A}/v1/whoami`, { headers: [`X-API-Key: ${g.keys.all.key}`] }), 401,
			'an admin key in X-API-Key');
	});

	test(`${V} a valid key of a user route is no admin key: 403`, async () => {
		// It works on its own route...
		const ok = await curl(g.curlDir, { url: `http://127.0.0.1:${g.gwPort}/openai/v1/models`,
			headers: [`X-API-Key: ${g.keys.openai.key}`] });
		assert.equal(ok.status, 200, 'the openai key on its route');
		for (const [m, p] of [['GET', `${A}/v1/whoami`], ['GET', `${A}/v1/keys`], ['POST', `${A}/v1/keys`]])
			assertError(await gw(g, m, p, { key: g.keys.openai.key, body: m === 'POST' ? { routes: ['openai'] } : undefined }),
				403, `${m} ${p} with the openai key`);
	});

	test(`${V} a read key reads; its writes are refused by HAProxy's rule (403, the daemon never asked)`, async () => {
		const who = await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.read.key });
		assert.equal(who.status, 200);
		assert.equal(who.json.key_id, g.keys.read.id);
		assert.deepEqual([].concat(who.json.scopes), ['read']);
		for (const p of [`${A}/v1/keys`, `${A}/v1/routes`, `${A}/v1/audit`, `${A}/openapi.json`]) {
			const r = await gw(g, 'GET', p, { key: g.keys.read.key });
			assert.equal(r.status, 200, `GET ${p} with a read key: ${redact(r.body).slice(0, 300)}`);
		}
		const seen = adminLogged(g, 403);
		const keys0 = (await gw(g, 'GET', `${A}/v1/keys`, { key: g.keys.read.key })).body;
		assertError(await gw(g, 'POST', `${A}/v1/keys`, { key: g.keys.read.key, body: { routes: ['openai'] } }), 403,
			'POST /v1/keys with a read key');
		assertError(await gw(g, 'POST', `${A}/v1/keys/${g.keys.openai.id}/revoke`, { key: g.keys.read.key }), 403,
			'revoke with a read key');
		assertError(await gw(g, 'PATCH', `${A}/v1/routes/openai`, { key: g.keys.read.key,
			headers: ['If-Match: "x"'], body: { rate_limit_rpm: 5 } }), 403, 'PATCH a route with a read key');
		assertError(await gw(g, 'DELETE', `${A}/v1/keys/${g.keys.openai.id}`, { key: g.keys.read.key }), 403,
			'DELETE with a read key');
		assert.equal(adminLogged(g, 403), seen, 'HAProxy refused: keyauth-admin logged no 403');
		assert.equal((await gw(g, 'GET', `${A}/v1/keys`, { key: g.keys.read.key })).body, keys0, 'nothing changed');
		const st = await ctl(g.conf, ['key', 'list', '--json'], { logFile: g.ctlLog });
		const e = JSON.parse(st.stdout).find((k) => k.id === g.keys.openai.id);
		assert.equal(e.status, 'active', 'the openai key is not revoked');
	});

	test(`${V} a write key writes and cannot deploy (403)`, async () => {
		const c = await gw(g, 'POST', `${A}/v1/keys`, { key: g.keys.write.key,
			body: { routes: ['other'], owner: 'made-by-api@example.com', expires_in_days: 90 } });
		assert.equal(c.status, 201, `create with a write key: ${redact(c.body).slice(0, 300)}`);
		assert.equal(typeof c.json.key, 'string');
		addSecret(`api-made@${g.hap.label}`, c.json.key);
		const use = await curl(g.curlDir, { url: `http://127.0.0.1:${g.gwPort}/other/v1/models`,
			headers: [`X-Other-Key: ${c.json.key}`] });
		assert.equal(use.status, 200, 'the key the API made works through HAProxy');
		const prev = await gw(g, 'GET', `${A}/v1/deploy/preview`, { key: g.keys.write.key });
		assert.equal(prev.status, 200, `preview with a read scope: ${redact(prev.body).slice(0, 300)}`);
		assertError(await gw(g, 'POST', `${A}/v1/deploy`, { key: g.keys.write.key,
			body: { preview_id: prev.json.preview_id } }), 403, 'deploy with a write key');
	});

	test(`${V} X-Keyauth-* headers a client sends are ignored`, async () => {
		const forged = ['X-Keyauth-Key-Id: forged000000', 'X-Keyauth-Owner: mallory', 'X-Keyauth-Scopes: read,write,deploy',
			'X_Keyauth_Scopes: read,write,deploy', 'x-keyauth-key-id: forged000001'];
		// No key: still 401.
		assertError(await gw(g, 'GET', `${A}/v1/whoami`, { headers: forged }), 401, 'forged identity, no key');
		// A user route's key: still 403.
		assertError(await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.openai.key, headers: forged }), 403,
			'forged identity, a user key');
		// A read key: its own identity, and still no write.
		const who = await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.read.key, headers: forged });
		assert.equal(who.status, 200);
		assert.equal(who.json.key_id, g.keys.read.id, 'the key id is the verdict\'s');
		assert.deepEqual([].concat(who.json.scopes), ['read'], 'the scopes are the verdict\'s');
		assert.notEqual(who.json.owner, 'mallory');
		assertError(await gw(g, 'POST', `${A}/v1/keys`, { key: g.keys.read.key, headers: forged,
			body: { routes: ['openai'] } }), 403, 'forged scopes, a read key');
	});

	test(`${V} methods outside GET HEAD POST PATCH DELETE: 405`, async () => {
		for (const m of ['OPTIONS', 'PUT', 'TRACE']) {
			const r = await gw(g, m, `${A}/v1/keys`, { key: g.keys.all.key });
			assert.equal(r.status, 405, `${m} /v1/keys`);
			assert.equal(r.headers['access-control-allow-origin'], undefined, `${m}: no CORS`);
		}
	});

	test(`${V} the admin route rate-limits per admin key: 429 with the JSON error shape`, async () => {
		const k = await adminKey(g, 'admin-limited', ['read'], { more: ['--rpm', '3'] });
		const other = await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.read.key });
		assert.equal(other.status, 200);
		let r;
		for (let i = 0; i < 8; i++) {
			r = await gw(g, 'GET', `${A}/v1/whoami`, { key: k.key });
			if (r.status !== 200)
				break;
		}
		assertError(r, 429, 'past the admin key\'s 3 requests per minute');
		assert.equal((await gw(g, 'GET', `${A}/v1/whoami`, { key: g.keys.read.key })).status, 200,
			'another admin key is not limited by it');
	});

	test(`${V} a revoked admin key is refused within 1 s`, async (t) => {
		const k = await adminKey(g, 'admin-doomed', ['read', 'write']);
		await waitFor('the new admin key accepted', async () =>
			(await gw(g, 'GET', `${A}/v1/whoami`, { key: k.key })).status === 200, { timeout: 5000 });
		const r = await ctl(g.conf, ['key', 'revoke', k.id], { logFile: g.ctlLog });
		assert.equal(r.status, 0, redact(r.stderr));
		const t0 = Date.now();
		await waitFor('the revoked admin key refused', async () =>
			(await gw(g, 'GET', `${A}/v1/whoami`, { key: k.key })).status === 401, { timeout: 5000, interval: 50 });
		const ms = Date.now() - t0;
		t.diagnostic(`revoked admin key refused ${ms} ms after keyauthctl returned`);
		assert.ok(ms < 1000, `refused after ${ms} ms (>= 1000)`);
		assertError(await gw(g, 'POST', `${A}/v1/keys`, { key: k.key, body: { routes: ['openai'] } }), 401,
			'a write with the revoked key');
	});

	test(`${V} with HAProxy's scope rules cut out of the config, the daemon still refuses (403)`, async () => {
		// The rendered file, minus every rule that denies on the scopes
		// variable, on a port of its own; a second HAProxy runs it.
		const cfg = readText(g.hapCfg);
		const port = await freePort();
		const lines = cfg.split('\n');
		const kept = lines.filter((l) => !(/^\s*http-request\s+(deny|return)\b/.test(l) && /scopes/i.test(l)));
		assert.ok(kept.length < lines.length, 'the rendered admin route has scope rules to cut');
		const edited = kept.join('\n').split(`127.0.0.1:${g.gwPort}`).join(`127.0.0.1:${port}`);
		const file = path.join(g.dir, 'haproxy-no-scope-rules.cfg');
		fs.writeFileSync(file, edited);
		const chk = await run(g.hapBin, ['-c', '-f', file]);
		assert.equal(chk.status, 0, `haproxy -c: ${redact(chk.stdout + chk.stderr)}`);
		const hp = startProcess('haproxy-no-scope-rules', g.hapBin, ['-W', '-db', '-f', file], { dir: g.dir, kind: 'haproxy' });
		try {
			await waitFor('the edited HAProxy to listen', () => listening(hp, port), { timeout: 15000 });
			const via = (m, p, opts) => curl(g.curlDir, { url: `http://127.0.0.1:${port}${p}`, method: m === 'GET' ? undefined : m,
				headers: [`Authorization: Bearer ${opts.key}`, ...(opts.body ? ['Content-Type: application/json'] : []),
					...(opts.headers || [])], data: opts.body ? JSON.stringify(opts.body) : undefined });
			assert.equal((await via('GET', `${A}/v1/whoami`, { key: g.keys.read.key })).status, 200);
			const seen = adminLogged(g, 403);
			assertError(await via('POST', `${A}/v1/keys`, { key: g.keys.read.key, body: { routes: ['openai'] } }), 403,
				'POST /v1/keys with a read key, no HAProxy rule');
			assertError(await via('POST', `${A}/v1/keys/${g.keys.openai.id}/revoke`, { key: g.keys.read.key }), 403,
				'revoke with a read key, no HAProxy rule');
			const prev = await via('GET', `${A}/v1/deploy/preview`, { key: g.keys.write.key });
			assertError(await via('POST', `${A}/v1/deploy`, { key: g.keys.write.key,
				body: { preview_id: (prev.json && prev.json.preview_id) || '0'.repeat(64) } }), 403,
			'deploy with a write key, no HAProxy rule');
			await waitFor('keyauth-admin to log its 403s', () => adminLogged(g, 403) >= seen + 3, { timeout: 3000 });
		} finally {
			await stopProcess(hp);
		}
		const st = await ctl(g.conf, ['key', 'list', '--json'], { logFile: g.ctlLog });
		assert.equal(JSON.parse(st.stdout).find((k) => k.id === g.keys.openai.id).status, 'active');
	});

	test(`${V} no key in any log of the run`, () => {
		const n = assertNoKeyInLogs(g);
		assert.ok(n >= 4, `scanned ${n} files`);
	});
});
