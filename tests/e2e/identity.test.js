// SPDX-License-Identifier: Apache-2.0
// End to end, identity upstream (issue 20): with a route's identity_headers
// on, HAProxy sends the caller's key id, owner, alias and tags to the
// upstream (X-Keyauth-Key-Id, -Owner, -Alias, -Tags), from the agent's ACK
// variables, never the key; with it off, none of them. Provider routes have it
// off unless set, proxy routes on unless set. Whatever a client sends under
// those names (or x_keyauth_*, which some servers read as the same names) is
// removed on every route, so an identity cannot be forged. Every case runs
// once per HAProxy binary (Debian's 2.6 always, 3.2 when scripts/haproxy32.sh
// made it available).
//
// Also the key's life as an operator sees it: a key bound to two routes
// passes both and is forbidden (403) on a third, and its requests and last
// use, counted by keyauthd, show in `keyauthctl key list --json`.
//
// One stand-in provider (provider.js, which records what reached it) serves
// every route; one keyauthd; HAProxy on what `keyauthctl haproxy` renders.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import {
	KEYAUTHD, PROVIDER_JS, addSecret, announcedPort, ctl, failIfExited, filesUnder, forEachHaproxy, freePort,
	holdsSecret, keyCreate, listening, makeTempDir, readText, redact, startProcess,
	startRenderedHaproxy, waitFor,
} from './lib.js';

const ID_HEADERS = ['x-keyauth-key-id', 'x-keyauth-owner', 'x-keyauth-alias', 'x-keyauth-tags'];
const FORGED = [
	'X-Keyauth-Key-Id: forgedid0000', 'X-Keyauth-Owner: mallory', 'X-Keyauth-Alias: mallory-bot',
	'X-Keyauth-Tags: role=admin', 'X_Keyauth_Owner: mallory', 'x-keyauth-extra: mallory',
];

function confText(g) {
	const up = `127.0.0.1:${g.providerPort}`;
	const sec = 'security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; };';
	return `# keyauth identity e2e configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 1;
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
routes = (
	{ name = "pon"; type = "provider"; context = "/pon"; upstream = "${up}"; identity_headers = true; ${sec} },
	{ name = "poff"; type = "provider"; context = "/poff"; upstream = "${up}"; ${sec} },
	{ name = "xon"; type = "proxy"; context = "/xon"; upstream = "${up}"; ${sec} },
	{ name = "xoff"; type = "proxy"; context = "/xoff"; upstream = "${up}"; identity_headers = false; ${sec} }
);
`;
}

/* A key for <route>; with <labels>, --alias and --tag when this keyauthctl
 * has them (g.labels says whether it did). */
async function createKey(g, route, owner, labels) {
	const secret = `${route}-${owner || 'none'}@${g.hap.label}`;
	const extra = labels ? ['--alias', `${route}-bot`, '--tag', 'team=ml', '--tag', 'env=prod'] : [];
	if (owner === '') {
		// No owner: key create without --owner (keyCreate always passes one).
		const r = await ctl(g.conf, ['key', 'create', '--route', route, '--json'], { logFile: g.ctlLog });
		assert.equal(r.status, 0, redact(r.stderr));
		const o = JSON.parse(r.stdout);
		addSecret(secret, o.key);
		return o;
	}
	try {
		return await keyCreate(g.conf, route, { owner, secret, extra, logFile: g.ctlLog });
	} catch (e) {
		if (!labels)
			throw e;
		g.labels = false;       // no --alias/--tag yet: owner and id only
		return keyCreate(g.conf, route, { owner, secret, logFile: g.ctlLog });
	}
}

async function startGateway(hap) {
	const g = { hap, keys: {}, procs: [], labels: true };
	g.dir = makeTempDir(`identity-${hap.label}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g), { mode: 0o600 });

	g.keys.pon = await createKey(g, 'pon', 'alice', true);
	g.keys.poff = await createKey(g, 'poff', 'bob', true);
	g.keys.xon = await createKey(g, 'xon', 'carol', true);
	g.keys.xoff = await createKey(g, 'xoff', 'dan', true);
	g.keys.bare = await createKey(g, 'pon', '', false);
	g.keys.two = await keyCreate(g.conf, 'pon', { owner: 'erin', secret: `two@${hap.label}`,
		extra: ['--route', 'xon'], logFile: g.ctlLog });

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => listening(g.agent, g.agentPort), { timeout: 5000 });
	await startRenderedHaproxy(g, hap);
	await waitFor('a first request through HAProxy and keyauthd', async () =>
		(await hit(g, 'poff', g.keys.poff.key)).status === 200, { timeout: 15000, interval: 100 });
	return g;
}

/* GET /<route>/v1/models with the key in X-API-Key and <extra> headers
 * ("Name: value"), through fetch (headers, never argv); then what the
 * stand-in received for it. */
async function hit(g, route, key, extra = []) {
	await fetch(`http://127.0.0.1:${g.providerPort}/__reset`, { method: 'POST' });
	const headers = new Headers({ 'X-API-Key': key });
	for (const h of extra) {
		const i = h.indexOf(':');
		headers.append(h.slice(0, i).trim(), h.slice(i + 1).trim());
	}
	const res = await fetch(`http://127.0.0.1:${g.gwPort}/${route}/v1/models`,
		{ headers, signal: AbortSignal.timeout(10000) });
	const body = await res.text();
	const seen = await (await fetch(`http://127.0.0.1:${g.providerPort}/__requests`)).json();
	return { status: res.status, body, seen: seen.at(-1) };
}

/* The identity headers the upstream received (names lower-cased). */
function identityOf(rec) {
	return Object.fromEntries(Object.entries(rec.headers).filter(([n]) => /^x[-_]keyauth[-_]/i.test(n)));
}

forEachHaproxy('identity upstream on HAProxy', { timeout: 120000, tag: 'identity' }, startGateway, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} identity_headers on (provider route): the upstream gets the key's id, owner, alias and tags, never the key`, async () => {
		const k = g.keys.pon;
		const r = await hit(g, 'pon', k.key);
		assert.equal(r.status, 200, redact(r.body));
		const want = { 'x-keyauth-key-id': k.id, 'x-keyauth-owner': 'alice' };
		const got = identityOf(r.seen);
		if (g.labels) {
			want['x-keyauth-alias'] = 'pon-bot';
			// "k=v,k2=v2" in the store's order: compared as a set.
			const tags = (s) => (s || '').split(',').sort().join(',');
			assert.equal(tags(got['x-keyauth-tags']), 'env=prod,team=ml', 'X-Keyauth-Tags');
			delete got['x-keyauth-tags'];
		} else {
			console.log(`# ${V} keyauthctl has no --alias/--tag yet: alias and tags not checked`);
		}
		assert.deepEqual(got, want, 'identity headers upstream');
		assert.ok(!holdsSecret(JSON.stringify(r.seen)), 'the key reached the upstream');
	});

	test(`${V} identity_headers off (provider default, proxy set false): the upstream gets none`, async () => {
		for (const route of ['poff', 'xoff']) {
			const r = await hit(g, route, g.keys[route].key);
			assert.equal(r.status, 200, `${route}: ${redact(r.body)}`);
			assert.deepEqual(identityOf(r.seen), {}, `${route}: identity headers upstream`);
		}
	});

	test(`${V} proxy route without the setting: on by default`, async () => {
		const k = g.keys.xon;
		const r = await hit(g, 'xon', k.key);
		assert.equal(r.status, 200, redact(r.body));
		const got = identityOf(r.seen);
		assert.equal(got['x-keyauth-key-id'], k.id);
		assert.equal(got['x-keyauth-owner'], 'carol');
		if (g.labels)
			assert.equal(got['x-keyauth-alias'], 'xon-bot');
	});

	test(`${V} forged X-Keyauth-* headers never reach the upstream, on any route`, async () => {
		for (const route of ['pon', 'poff', 'xon', 'xoff']) {
			const k = g.keys[route];
			const r = await hit(g, route, k.key, FORGED);
			assert.equal(r.status, 200, `${route}: ${redact(r.body)}`);
			const got = identityOf(r.seen);
			const raw = JSON.stringify(r.seen.headers);
			assert.ok(!/mallory|forgedid|role=admin/.test(raw), `${route}: a forged value went upstream: ${raw}`);
			const on = route === 'pon' || route === 'xon';
			assert.deepEqual(Object.keys(got).sort(), on ? ID_HEADERS.filter((h) => g.labels || !/alias|tags/.test(h)).sort() : [],
				`${route}: identity headers upstream`);
			if (on)
				assert.equal(got['x-keyauth-key-id'], k.id, `${route}: the real key id, once`);
		}
	});

	test(`${V} a key without owner, alias or tags: only its id, the forged ones removed`, async () => {
		const k = g.keys.bare;
		const r = await hit(g, 'pon', k.key, FORGED);
		assert.equal(r.status, 200, redact(r.body));
		assert.deepEqual(identityOf(r.seen), { 'x-keyauth-key-id': k.id });
	});

	test(`${V} refused requests: nothing forwarded, forged headers or not`, async () => {
		const r = await hit(g, 'pon', 'ka_notakey', FORGED);
		assert.equal(r.status, 401);
		assert.equal(r.seen, undefined, 'a refused request reached the upstream');
	});

	test(`${V} a key on two routes passes both and is forbidden on a third`, async () => {
		const k = g.keys.two;
		assert.equal((await hit(g, 'pon', k.key)).status, 200, 'first route');
		assert.equal((await hit(g, 'xon', k.key)).status, 200, 'second route');
		const r = await hit(g, 'poff', k.key);
		assert.equal(r.status, 403, redact(r.body));
		assert.equal(r.seen, undefined, 'a forbidden request reached the upstream');
	});

	test(`${V} keyauthctl key list shows the requests and last use keyauthd counted`, async () => {
		// A fresh key: exactly N verdicts through HAProxy, then the agent's
		// periodic merge (every 2 s) makes them visible to keyauthctl.
		const k = await keyCreate(g.conf, 'pon', { owner: 'frank', secret: `usage@${g.hap.label}`, logFile: g.ctlLog });
		const t0 = Math.floor(Date.now() / 1000);
		const N = 25;
		for (let i = 0; i < N; i++)
			assert.equal((await hit(g, 'pon', k.key)).status, 200);
		const row = await waitFor(`key list to show ${N} requests`, async () => {
			const r = await ctl(g.conf, ['key', 'list', '--json'], { logFile: g.ctlLog });
			assert.equal(r.status, 0, redact(r.stderr));
			const e = JSON.parse(r.stdout).find((x) => x.id === k.id);
			return e && e.requests === N ? e : null;
		}, { timeout: 15000, interval: 250 });
		const last = typeof row.last_used === 'number' ? row.last_used : Date.parse(row.last_used) / 1000;
		assert.ok(last >= t0 - 1 && last <= Date.now() / 1000 + 1, `last_used ${row.last_used}`);
	});

	test(`${V} no key in any file of the run`, () => {
		const leaks = filesUnder(g.dir).filter((f) => holdsSecret(readText(f)));
		assert.deepEqual(leaks.map((f) => path.relative(g.dir, f)), [], 'files holding a key');
	});
});
