// SPDX-License-Identifier: Apache-2.0
// End to end over TLS (issue 11): real HAProxy (2.6 and 3.2 when present)
// talks SPOP to keyauthd's TLS listener with mutual TLS, configured by what
// `keyauthctl haproxy` renders (ssl verify required ca-file ... crt ...).
// A throwaway CA, agent and HAProxy certificates are made with the openssl
// CLI. Covered: verdicts over mTLS (valid key 200, invalid 401); certificate
// rotation on SIGHUP under a steady load (same CA twice, then a certificate
// from the next CA with the agent's client-CA bundle holding old and new)
// loses no verdict and the new certificate is what new connections get; a
// bad certificate or a mismatched key on reload is rejected and the old one
// keeps serving under load; the agent restarted with a certificate from
// another CA -> HAProxy's check fails and requests get 503, nothing upstream;
// an impostor run by another user (uid 65534) on the agent's address while
// the agent is away, serving its own certificate -> 503 (security issue #17);
// the agent warns at start with the days its certificate has left.
//
// HAProxy's ca-file is a bundle of the current CA and the next one (ca3),
// staged before any rotation, as a real CA change is done: HAProxy reads it
// only at start, the agent's files change under it.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { before, test } from 'node:test';
import tls from 'node:tls';

import {
	KEYAUTHD, PROVIDER_JS, addSecret, announcedPort, ctl, curl, delay, failIfExited, forEachHaproxy,
	freePort, listening, makeTempDir, readText, redact, reloadableHaproxy, run, startProcess, startRenderedHaproxy,
	stopProcess, waitFor,
} from './lib.js';

const NEWKEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function openssl(dir, args) {
	const r = await run('openssl', args, { cwd: dir });
	if (r.status !== 0)
		throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

/* ca (trusted by both sides), ca2 (a stranger), ca3 (the next CA, trusted by
 * HAProxy from the start); agent (ca), agent2 (ca2), rot1 + rot2 (ca: same-CA
 * rotations), rot3 (ca3); haproxy client cert + key in one PEM for "crt";
 * probe (ca) and probe3 (ca3): this file's own TLS clients, CN=probe*, so
 * their handshakes are told apart from HAProxy's in the agent's log. */
async function makeCerts(dir) {
	for (const ca of ['ca', 'ca2', 'ca3'])
		await openssl(dir, ['req', '-x509', ...NEWKEY, '-keyout', `${ca}.key`, '-out', `${ca}.pem`,
			'-days', '2', '-subj', `/CN=e2e-${ca}`]);
	for (const [f, cn, ca] of [['agent', '127.0.0.1', 'ca'], ['agent2', '127.0.0.1', 'ca2'], ['haproxy', 'haproxy', 'ca'],
		['rot1', '127.0.0.1', 'ca'], ['rot2', '127.0.0.1', 'ca'], ['rot3', '127.0.0.1', 'ca3'],
		['probe', 'probe', 'ca'], ['probe3', 'probe3', 'ca3']]) {
		await openssl(dir, ['req', ...NEWKEY, '-keyout', `${f}.key`, '-out', `${f}.csr`, '-subj', `/CN=${cn}`]);
		await openssl(dir, ['x509', '-req', '-in', `${f}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
			'-CAcreateserial', '-out', `${f}.pem`, '-days', '2']);
	}
	// expired (ca): valid 2020-01-01 to 2020-01-02. Debian 12's `openssl x509`
	// has no -not_before/-not_after; `openssl ca` takes explicit dates.
	fs.writeFileSync(path.join(dir, 'ca.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\n' +
		'new_certs_dir = .\nserial = ca.serial\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n');
	fs.writeFileSync(path.join(dir, 'index.txt'), '');
	fs.writeFileSync(path.join(dir, 'ca.serial'), '1000\n');
	await openssl(dir, ['req', ...NEWKEY, '-keyout', 'expired.key', '-out', 'expired.csr', '-subj', '/CN=127.0.0.1']);
	await openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.pem', '-keyfile', 'ca.key',
		'-in', 'expired.csr', '-out', 'expired.pem', '-notext', '-startdate', '20200101000000Z',
		'-enddate', '20200102000000Z']);
	fs.writeFileSync(path.join(dir, 'haproxy-client.pem'),
		readText(path.join(dir, 'haproxy.pem')) + readText(path.join(dir, 'haproxy.key')));
	fs.writeFileSync(path.join(dir, 'haproxy-ca.pem'),
		readText(path.join(dir, 'ca.pem')) + readText(path.join(dir, 'ca3.pem')));
}

/* The configuration with the agent's certificate <agentCert>.pem/.key and
 * client CA file <agentCa> (under the certs directory). */
function confText(g, agentCert, agentCa = 'ca.pem') {
	const up = `127.0.0.1:${g.providerPort}`;
	const c = g.certs;
	return `# keyauth TLS e2e configuration (generated)
listen = [ "tls:127.0.0.1:${g.agentPort}" ];
workers = 1;
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
tls = {
	cert = "${c}/${agentCert}.pem"; key = "${c}/${agentCert}.key"; ca = "${c}/${agentCa}";
	haproxy_ca = "${c}/haproxy-ca.pem"; haproxy_client_cert = "${c}/haproxy-client.pem";
};
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "${up}";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; }
);
`;
}

async function startAgent(g) {
	const p = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(p);
	await waitFor('keyauthd to start', () => {
		failIfExited(p);
		return /event=started/.test(readText(p.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => listening(p, g.agentPort), { timeout: 5000 });
	return p;
}

function get(g, hdrs = {}) {
	return curl(g.dir, {
		url: `http://127.0.0.1:${g.gwPort}/openai/v1/models`,
		headers: Object.entries(hdrs).map(([n, v]) => `${n}: ${v}`),
	});
}

async function startGateway(hap) {
	const g = { hap, procs: [] };
	g.dir = makeTempDir(`tls-${hap.label}`);
	g.certs = path.join(g.dir, 'certs');
	fs.mkdirSync(g.certs);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	await makeCerts(g.certs);
	g.hapBin = reloadableHaproxy(hap.bin, g.dir).bin;
	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g, 'agent'));
	const r = await ctl(g.conf, ['key', 'create', '--route', 'openai', '--owner', 'e2e-tls', '--json']);
	if (r.status !== 0)
		throw new Error(`keyauthctl key create failed: ${redact(r.stderr)}`);
	g.key = addSecret(`tls@${hap.label}`, JSON.parse(r.stdout).key);
	g.agent = await startAgent(g);
	await startRenderedHaproxy(g, hap, { env: { KEYAUTH_OPENAI_CREDENTIAL: 'provider-secret-openai' }, bin: g.hapBin });
	g.cfgText = readText(g.hapCfg);
	return g;
}

/* ---- certificate rotation --------------------------------------------------------- */

const BAD_KEY = 'ka_notavalidkey';

/* Replaces <dst> (under the certs directory) by <text> with a rename, as a
 * deployment tool would: the agent never reads a half-written file. */
function replaceFile(g, dst, text) {
	const p = path.join(g.certs, dst);
	fs.writeFileSync(`${p}.new`, text, { mode: 0o600 });
	fs.renameSync(`${p}.new`, p);
}

/* Makes <base>.pem/.key the agent's live certificate and key (and <ca>, a
 * list of CA names, its client-CA bundle when given). Nothing is reloaded. */
function installCert(g, base, ca) {
	replaceFile(g, 'live.pem', readText(path.join(g.certs, `${base}.pem`)));
	replaceFile(g, 'live.key', readText(path.join(g.certs, `${base}.key`)));
	if (ca)
		replaceFile(g, 'live-ca.pem', ca.map((n) => readText(path.join(g.certs, `${n}.pem`))).join(''));
}

/* SIGHUP, then the outcome of that reload from the agent's log: 'ok' or
 * 'rejected'. Returns { result, mark } (mark: log offset before the signal). */
async function reload(g) {
	const mark = readText(g.agent.err).length;
	process.kill(g.agent.pid, 'SIGHUP');
	g.reloads = (g.reloads || 0) + 1;
	const result = await waitFor('keyauthd to log the reload', () =>
		(/event=reload result=(ok|rejected)/.exec(readText(g.agent.err).slice(mark)) || [])[1],
	{ timeout: 10000 });
	return { result, mark };
}

function fingerprint(g, base) {
	return new X509Certificate(fs.readFileSync(path.join(g.certs, `${base}.pem`))).fingerprint256;
}

/* One TLS handshake with the agent as a client trusting only <ca> and
 * presenting <client>.pem/.key. Resolves to { ok, fp (the agent's
 * certificate fingerprint), error }. TLS 1.2 makes a refused client
 * certificate fail the handshake itself rather than the first read. */
function probe(g, { ca, client, maxVersion = 'TLSv1.3' }) {
	return new Promise((resolve) => {
		const s = tls.connect({
			host: '127.0.0.1', port: g.agentPort, maxVersion,
			ca: fs.readFileSync(path.join(g.certs, `${ca}.pem`)),
			cert: fs.readFileSync(path.join(g.certs, `${client}.pem`)),
			key: fs.readFileSync(path.join(g.certs, `${client}.key`)),
			checkServerIdentity: () => undefined,   // CN=127.0.0.1, no SAN: the chain is what counts
		});
		const done = (r) => { s.destroy(); resolve(r); };
		s.setTimeout(5000, () => done({ ok: false, error: 'timeout' }));
		s.once('secureConnect', () => done({ ok: true, fp: s.getPeerCertificate().fingerprint256 }));
		s.once('error', (e) => done({ ok: false, error: e.code || e.message }));
	});
}

/* HAProxy (CN=haproxy) completed a TLS handshake with the agent after log
 * offset <mark>: its health check every 2 s opens a new connection, and a
 * handshake the agent completes is one whose server certificate HAProxy
 * verified (verify required). */
function waitHaproxyHandshake(g, mark, what) {
	return waitFor(`a new HAProxy TLS connection ${what}`, () =>
		/event=tls_client .*subject="CN=haproxy"/.test(readText(g.agent.err).slice(mark)),
	{ timeout: 15000, interval: 100 });
}

/*
 * A steady load through HAProxy: <workers> keep-alive clients send the valid
 * key back to back, one more sends an invalid key every 100 ms (few enough
 * that deny lines leave the agent's per-second log budget to the TLS lines).
 * Every answer other than 200 (valid) or 401 (invalid) is a failure,
 * transport errors included. stop() resolves to the counts.
 */
function startLoad(g, { workers = 6 } = {}) {
	const agent = new http.Agent({ keepAlive: true, maxSockets: workers + 1 });
	const st = { total: 0, valid: 0, invalid: 0, failures: [], running: true };
	const one = (key) => new Promise((resolve) => {
		const req = http.request({
			host: '127.0.0.1', port: g.gwPort, path: '/openai/v1/models', agent,
			headers: { 'X-API-Key': key }, timeout: 10000,
		}, (res) => {
			res.on('error', (e) => resolve(`error ${e.code || e.message}`));
			res.on('end', () => resolve(res.statusCode));
			res.resume();
		});
		req.on('timeout', () => req.destroy(new Error('timeout')));
		req.on('error', (e) => resolve(`error ${e.code || e.message}`));
		req.end();
	});
	const loop = async (valid) => {
		while (st.running) {
			const got = await one(valid ? g.key : BAD_KEY);
			st.total++;
			if (valid)
				st.valid++;
			else
				st.invalid++;
			if (got !== (valid ? 200 : 401))
				st.failures.push(`${valid ? 'valid' : 'invalid'} key -> ${got}`);
			if (!valid)
				await delay(100);
		}
	};
	const done = Promise.all([...Array(workers)].map(() => loop(true)).concat(loop(false)));
	return {
		st,
		/* Resolves once <n> more requests than now have been answered. */
		more: (n) => { const end = st.total + n; return waitFor(`${n} more requests`, () => st.total >= end, { timeout: 20000 }); },
		async stop() {
			st.running = false;
			await done;
			agent.destroy();
			return st;
		},
	};
}

forEachHaproxy('TLS e2e on HAProxy', { timeout: 120000, tag: 'tls', vTag: 'tls' }, startGateway, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} keyauthctl renders ssl verify required ca-file and crt on the agent server`, () => {
		assert.match(g.cfgText, new RegExp(`server agent1 127\\.0\\.0\\.1:${g.agentPort} check inter 2s ssl verify required ca-file \\S+/haproxy-ca\\.pem crt \\S+/haproxy-client\\.pem`));
	});

	test(`${V} verdicts over mutual TLS: valid key 200, invalid 401`, async () => {
		await waitFor('a valid key through HAProxy and keyauthd over TLS', async () =>
			(await get(g, { 'X-API-Key': g.key })).status === 200, { timeout: 15000, interval: 100 });
		const bad = await get(g, { 'X-API-Key': 'ka_notavalidkey' });
		assert.equal(bad.status, 401);
		assert.match(readText(g.agent.err), /event=tls_client .*subject="CN=haproxy"/);
	});

	test(`${V} the agent warns at start with the days its certificate has left`, () => {
		// The test certificates are valid 2 days: within the 30-day warning.
		const notAfter = new X509Certificate(fs.readFileSync(path.join(g.certs, 'agent.pem'))).validTo;
		const m = /level=warning event=tls_cert_expiring cert=\S+\/agent\.pem days_left=(\d+) not_after=(\S+)/
			.exec(readText(g.agent.err));
		assert.ok(m, 'no tls_cert_expiring warning in the agent log');
		assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 2, `days_left=${m[1]}`);
		assert.equal(Date.parse(m[2]), Date.parse(notAfter), 'not_after is the certificate\'s');
	});

	test(`${V} certificate rotation on SIGHUP under load loses no verdict`, async (t) => {
		// The agent moves to files a deployment replaces in place.
		installCert(g, 'agent', ['ca']);
		fs.writeFileSync(g.conf, confText(g, 'live', 'live-ca.pem'));
		assert.equal((await reload(g)).result, 'ok');
		const load = startLoad(g);
		const reloads0 = g.reloads;
		let st;
		try {
			await load.more(100);
			// Round 1: new certificates from the same CA, each reload
			// followed by a second SIGHUP with nothing changed.
			for (const base of ['rot1', 'rot2']) {
				installCert(g, base);
				const { result, mark } = await reload(g);
				assert.equal(result, 'ok', `reload with ${base}`);
				assert.equal((await reload(g)).result, 'ok', `second reload with ${base}`);
				const p = await probe(g, { ca: 'ca', client: 'probe' });
				assert.ok(p.ok, `TLS to the agent after the rotation to ${base}: ${p.error}`);
				assert.equal(p.fp, fingerprint(g, base), `new connections get ${base}`);
				await waitHaproxyHandshake(g, mark, `after the rotation to ${base}`);
				await load.more(100);
			}
			// Round 2: the agent's client-CA file becomes a bundle of the
			// old and the next CA (a client certificate from ca3 is
			// refused before, accepted after), then its certificate
			// comes from the next CA.
			const refused = await probe(g, { ca: 'ca', client: 'probe3', maxVersion: 'TLSv1.2' });
			assert.equal(refused.ok, false, 'a ca3 client certificate before the CA bundle');
			installCert(g, 'rot2', ['ca', 'ca3']);
			assert.equal((await reload(g)).result, 'ok', 'reload with the CA bundle');
			const accepted = await probe(g, { ca: 'ca', client: 'probe3', maxVersion: 'TLSv1.2' });
			assert.ok(accepted.ok, `a ca3 client certificate after the CA bundle: ${accepted.error}`);
			installCert(g, 'rot3');
			const { result, mark } = await reload(g);
			assert.equal(result, 'ok', 'reload with rot3');
			const p3 = await probe(g, { ca: 'ca3', client: 'probe' });
			assert.ok(p3.ok, `TLS trusting only the new CA: ${p3.error}`);
			assert.equal(p3.fp, fingerprint(g, 'rot3'), 'new connections get rot3');
			assert.equal((await probe(g, { ca: 'ca', client: 'probe' })).ok, false,
				'TLS trusting only the old CA fails once rot3 serves');
			await waitHaproxyHandshake(g, mark, 'after the rotation to the next CA');
			await load.more(100);
		} finally {
			st = await load.stop();
		}
		t.diagnostic(`rotation under load: ${st.total} requests (${st.valid} valid, ${st.invalid} invalid), ${st.failures.length} failed, ${g.reloads - reloads0} reloads (SIGHUP)`);
		assert.equal(st.failures.length, 0, `failed verdicts: ${st.failures.slice(0, 10).join(', ')}`);
		assert.ok(st.valid >= 500 && st.invalid >= 5, `too little load: ${st.valid} valid, ${st.invalid} invalid`);
	});

	test(`${V} a bad certificate on reload is rejected, the old one keeps serving under load`, async (t) => {
		const good = fingerprint(g, 'rot3');
		const live = (f) => path.join(g.certs, f);
		const cases = [
			['a garbage certificate', () => replaceFile(g, 'live.pem', 'not a certificate\n')],
			['a key that does not match the certificate', () => replaceFile(g, 'live.key', readText(live('rot1.key')))],
			['a missing key file', () => fs.rmSync(live('live.key'))],
		];
		const load = startLoad(g);
		let st;
		try {
			await load.more(50);
			for (const [what, breakIt] of cases) {
				breakIt();
				const { result, mark } = await reload(g);
				assert.equal(result, 'rejected', `reload with ${what}`);
				assert.match(readText(g.agent.err).slice(mark), /tls: /, `the rejection of ${what} names TLS`);
				const p = await probe(g, { ca: 'ca3', client: 'probe' });
				assert.ok(p.ok, `TLS to the agent after ${what}: ${p.error}`);
				assert.equal(p.fp, good, `the previous certificate still serves after ${what}`);
				await waitHaproxyHandshake(g, mark, `after ${what} was rejected`);
				await load.more(50);
				installCert(g, 'rot3');
			}
			assert.equal((await reload(g)).result, 'ok', 'reload with the good files back');
			await load.more(50);
		} finally {
			st = await load.stop();
		}
		t.diagnostic(`bad certificates under load: ${st.total} requests (${st.valid} valid, ${st.invalid} invalid), ${st.failures.length} failed`);
		assert.equal(st.failures.length, 0, `failed verdicts: ${st.failures.slice(0, 10).join(', ')}`);
		assert.ok(st.valid >= 200 && st.invalid >= 3, `too little load: ${st.valid} valid, ${st.invalid} invalid`);
	});

	test(`${V} expired agent certificate: check fails, requests get 503`, async () => {
		const exp = new X509Certificate(fs.readFileSync(path.join(g.certs, 'expired.pem')));
		assert.ok(Date.parse(exp.validTo) < Date.now(), `the test certificate is not expired: ${exp.validTo}`);
		await stopProcess(g.agent);
		fs.writeFileSync(g.conf, confText(g, 'expired'));
		g.agent = await startAgent(g);
		await waitFor('requests to get 503 (agent certificate expired)', async () =>
			(await get(g, { 'X-API-Key': g.key })).status === 503, { timeout: 20000, interval: 200 });
		assert.match(readText(g.agent.err), /event=tls_handshake_failed/);
	});

	test(`${V} an impostor run by another user on the agent's address is refused: 503`, async () => {
		// While the agent is away, uid 65534 binds its TLS address with a
		// certificate of its own and would answer "ok" to everything
		// (any TLS server that accepts the handshake would do: HAProxy
		// must refuse it before a single SPOP byte).
		await stopProcess(g.agent);
		await openssl(g.certs, ['req', '-x509', ...NEWKEY, '-keyout', 'impostor.key', '-out', 'impostor.pem',
			'-days', '2', '-subj', '/CN=127.0.0.1']);
		fs.chmodSync(path.join(g.certs, 'impostor.key'), 0o644);
		fs.chmodSync(g.dir, 0o755);
		fs.chmodSync(g.certs, 0o755);
		const script = `const tls = require('tls'), fs = require('fs');
let n = 0;
const s = tls.createServer({ cert: fs.readFileSync(process.argv[1] + '.pem'), key: fs.readFileSync(process.argv[1] + '.key') },
	(c) => { console.log('impostor handshake ' + (++n)); c.destroy(); });
s.on('connection', () => console.log('impostor tcp'));
s.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening ' + process.getuid()));`;
		const imp = startProcess('impostor', 'setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups',
			process.execPath, '-e', script, path.join(g.certs, 'impostor'), String(g.agentPort)], { dir: g.dir });
		g.procs.push(imp);
		try {
			await waitFor('the impostor to listen', () => {
				failIfExited(imp);
				return /^listening 65534$/m.test(readText(imp.out));
			}, { timeout: 10000 });
			await waitFor('requests to get 503 (impostor refused)', async () =>
				(await get(g, { 'X-API-Key': g.key })).status === 503, { timeout: 20000, interval: 200 });
			// HAProxy did try it (its check), and never completed a handshake.
			await waitFor('HAProxy to connect to the impostor', () => /impostor tcp/.test(readText(imp.out)),
				{ timeout: 10000 });
			assert.doesNotMatch(readText(imp.out), /impostor handshake/, 'HAProxy completed a TLS handshake with the impostor');
		} finally {
			await stopProcess(imp);
			fs.chmodSync(g.certs, 0o700);
		}
		g.agent = await startAgent(g);
	});

	test(`${V} agent certificate from another CA: check fails, requests get 503`, async () => {
		await stopProcess(g.agent);
		fs.writeFileSync(g.conf, confText(g, 'agent2'));
		g.agent = await startAgent(g);
		await waitFor('requests to get 503 (agent not trusted)', async () =>
			(await get(g, { 'X-API-Key': g.key })).status === 503, { timeout: 20000, interval: 200 });
		assert.match(readText(g.agent.err), /event=tls_handshake_failed/);
	});
});
