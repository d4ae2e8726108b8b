// SPDX-License-Identifier: Apache-2.0
// End to end over TLS (issue 11): real HAProxy (2.6 and 3.2 when present)
// talks SPOP to keyauthd's TLS listener with mutual TLS, configured by what
// `keyauthctl haproxy` renders (ssl verify required ca-file ... crt ...).
// A throwaway CA, agent and HAProxy certificates are made with the openssl
// CLI. Covered: verdicts over mTLS (valid key 200, invalid 401); the agent
// restarted with a certificate from another CA -> HAProxy's check fails and
// requests get 503, nothing upstream.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
	KEYAUTHCTL, KEYAUTHD, PROVIDER_JS, addSecret, ctl, curl, freePort, haproxyBinaries,
	makeTempDir, portOpen, readText, redact, reloadableHaproxy, removeTempDir, run, startProcess,
	stopProcess, waitFor,
} from './lib.js';

const NEWKEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function openssl(dir, args) {
	const r = await run('openssl', args, { cwd: dir });
	if (r.status !== 0)
		throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

/* ca (trusted by both sides), ca2 (a stranger); agent + agent2 (signed by ca2),
 * haproxy client cert + key in one PEM for "crt". */
async function makeCerts(dir) {
	for (const ca of ['ca', 'ca2'])
		await openssl(dir, ['req', '-x509', ...NEWKEY, '-keyout', `${ca}.key`, '-out', `${ca}.pem`,
			'-days', '2', '-subj', `/CN=e2e-${ca}`]);
	for (const [f, cn, ca] of [['agent', '127.0.0.1', 'ca'], ['agent2', '127.0.0.1', 'ca2'], ['haproxy', 'haproxy', 'ca']]) {
		await openssl(dir, ['req', ...NEWKEY, '-keyout', `${f}.key`, '-out', `${f}.csr`, '-subj', `/CN=${cn}`]);
		await openssl(dir, ['x509', '-req', '-in', `${f}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
			'-CAcreateserial', '-out', `${f}.pem`, '-days', '2']);
	}
	fs.writeFileSync(path.join(dir, 'haproxy-client.pem'),
		readText(path.join(dir, 'haproxy.pem')) + readText(path.join(dir, 'haproxy.key')));
}

function confText(g, agentCert) {
	const up = `127.0.0.1:${g.providerPort}`;
	const c = g.certs;
	return `# keyauth TLS e2e configuration (generated)
listen = [ "tls:127.0.0.1:${g.agentPort}" ];
workers = 1;
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
tls = {
	cert = "${c}/${agentCert}.pem"; key = "${c}/${agentCert}.key"; ca = "${c}/ca.pem";
	haproxy_ca = "${c}/ca.pem"; haproxy_client_cert = "${c}/haproxy-client.pem";
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
		if (!p.isRunning())
			throw new Error(`keyauthd exited: ${redact(readText(p.err).slice(-500))}`);
		return /event=started/.test(readText(p.err));
	}, { timeout: 10000 });
	await waitFor('keyauthd to accept connections', () => portOpen(g.agentPort), { timeout: 5000 });
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
	g.providerPort = Number(await waitFor('the provider to listen',
		() => (/listening (\d+)/.exec(readText(g.provider.out)) || [])[1], { timeout: 10000 }));
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g, 'agent'));
	const r = await ctl(g.conf, ['key', 'create', '--route', 'openai', '--owner', 'e2e-tls', '--json']);
	if (r.status !== 0)
		throw new Error(`keyauthctl key create failed: ${redact(r.stderr)}`);
	g.key = addSecret(`tls@${hap.label}`, JSON.parse(r.stdout).key);
	g.agent = await startAgent(g);
	const rr = await ctl(g.conf, ['haproxy', '--out', g.hapDir, '--bind', `127.0.0.1:${g.gwPort}`,
		'--haproxy-version', hap.render]);
	if (rr.status !== 0)
		throw new Error(`keyauthctl haproxy failed: ${redact(rr.stderr)}`);
	g.hapCfg = path.join(g.hapDir, 'haproxy-keyauth.cfg');
	g.cfgText = readText(g.hapCfg);
	const chk = await run(g.hapBin, ['-c', '-f', g.hapCfg]);
	if (chk.status !== 0)
		throw new Error(`haproxy -c rejected the rendered config: ${redact(chk.stdout + chk.stderr)}`);
	const env = { ...process.env, KEYAUTH_OPENAI_CREDENTIAL: 'provider-secret-openai' };
	g.haproxy = startProcess('haproxy', g.hapBin, ['-W', '-db', '-f', g.hapCfg], { dir: g.dir, env, kind: 'haproxy' });
	g.procs.push(g.haproxy);
	await waitFor('HAProxy to listen', () => portOpen(g.gwPort), { timeout: 15000 });
	return g;
}

const VERSIONS = haproxyBinaries();

for (const hap of VERSIONS) {
	if (hap.skip || hap.error) {
		test(`tls: SKIP haproxy ${hap.label}: ${hap.skip || hap.error}`, { skip: true }, () => {});
		continue;
	}
	const V = `[haproxy ${hap.full} tls]`;
	describe(`TLS e2e on HAProxy ${hap.full}`, { timeout: 120000 }, () => {
		let g;

		before(async () => {
			assert.ok(fs.existsSync(KEYAUTHD), `${KEYAUTHD} not built`);
			assert.ok(fs.existsSync(KEYAUTHCTL), `${KEYAUTHCTL} not built`);
			g = await startGateway(hap);
		}, { timeout: 60000 });

		after(async () => {
			if (!g)
				return;
			for (const p of g.procs.reverse())
				await stopProcess(p);
			removeTempDir(g.dir);
		});

		test(`${V} keyauthctl renders ssl verify required ca-file and crt on the agent server`, () => {
			assert.match(g.cfgText, new RegExp(`server agent1 127\\.0\\.0\\.1:${g.agentPort} check inter 2s ssl verify required ca-file \\S+/ca\\.pem crt \\S+/haproxy-client\\.pem`));
		});

		test(`${V} verdicts over mutual TLS: valid key 200, invalid 401`, async () => {
			await waitFor('a valid key through HAProxy and keyauthd over TLS', async () =>
				(await get(g, { 'X-API-Key': g.key })).status === 200, { timeout: 15000, interval: 100 });
			const bad = await get(g, { 'X-API-Key': 'ka_notavalidkey' });
			assert.equal(bad.status, 401);
			assert.match(readText(g.agent.err), /event=tls_client .*subject="CN=haproxy"/);
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
}
