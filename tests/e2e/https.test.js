// SPDX-License-Identifier: Apache-2.0
// End to end, HTTPS to HAProxy (issue 21): the gateway's frontend comes from
// keyauth.conf's frontend group (bind, tls with a certificate made here by a
// test CA, min_version 1.3, http2), rendered by `keyauthctl haproxy` without
// --bind. Every case runs once per HAProxy binary (Debian's 2.6 always, 3.2
// when scripts/haproxy32.sh made it).
//
// curl over HTTP/2 and HTTP/1.1 with the test CA: a valid key 200, a bad key
// and no key 401. The vendors' official SDKs (openai, @anthropic-ai/sdk 0.x
// and 1.x, @google/genai, @mistralai/mistralai), given undici's fetch with the
// test CA, over HTTP/2 (allowH2) and over HTTP/1.1: a call, a stream and a wrong key. The protocol actually used
// is read from HAProxy's own log line (%HV: HTTP/2.0 or HTTP/1.1). Over
// HTTP/2 a stream still delivers its first event while the provider holds the
// next one back (a gated stand-in in this process, released by the test: no
// timing threshold). Refused: a client that does not trust the test CA (curl
// and an SDK), and a client limited to TLS 1.2 (min_version is 1.3); none of
// them reaches a provider. Keys go to curl on stdin, never in argv, and no
// file of the run holds one.
//
// Knob: HTTPS_KEEP=1 keeps a copy of each gateway's directory (it holds keys).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import Anthropic0 from 'anthropic-sdk-0';
import Anthropic1 from 'anthropic-sdk-1';
import { GoogleGenAI } from '@google/genai';
import { HTTPClient, Mistral } from '@mistralai/mistralai';
import { Agent, fetch as undiciFetch } from 'undici';

import {
	KEYAUTHD, addSecret, announcedPort, countLines, ctl, failIfExited, fatal, filesUnder, forEachHaproxy,
	freePort, holdsSecret, keyCreate, listening, makeTempDir, readText, redact, run, startProcess,
	waitFor,
} from './lib.js';
import { SDKS } from './sdk-clients.js';

const VENDORS_JS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'vendors.js');
const VENDORS = ['openai', 'anthropic', 'gemini', 'mistral'];

/* ---- the test CA and the gateway's certificate ------------------------------------- */

async function openssl(args, what) {
	const r = await run('openssl', args);
	if (r.status !== 0)
		throw new Error(`openssl ${what} failed: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
}

/* A CA, and a certificate it signed for 127.0.0.1 and localhost, under
 * <dir>; g.ca is the CA's PEM, g.serverPem the chain and key for HAProxy. */
async function makeCerts(g) {
	const d = path.join(g.dir, 'certs');
	fs.mkdirSync(d, { mode: 0o700 });
	const p = (f) => path.join(d, f);
	const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
	await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2',
		'-subj', '/CN=keyauth e2e test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
		'-addext', 'keyUsage=critical,keyCertSign,cRLSign'], 'CA');
	await openssl(['req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost'],
		'server request');
	fs.writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' +
		'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
	await openssl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'),
		'-CAcreateserial', '-out', p('server.crt'), '-days', '2', '-extfile', p('server.ext')], 'server certificate');
	g.caFile = p('ca.crt');
	g.ca = fs.readFileSync(g.caFile, 'utf8');
	g.serverPem = p('server.pem');
	fs.writeFileSync(g.serverPem, fs.readFileSync(p('server.crt'), 'utf8') + fs.readFileSync(p('server.key'), 'utf8'),
		{ mode: 0o600 });
}

/* ---- a stand-in that streams only when told ------------------------------------------ */

/* An OpenAI-compatible provider in this process for the route "gated": a
 * streamed completion sends its first event at once and the rest only after
 * g.gate.release(), so a test can see where the first event is while the
 * provider still holds the next. Wants the provider secret as Bearer. */
function startGated(g) {
	g.gate = { sent: 0, requests: 0, release: null };
	const chunk = (content, finish = null) => `data: ${JSON.stringify({
		id: 'chatcmpl-gated', object: 'chat.completion.chunk', created: 0, model: 'gpt-standin',
		choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: finish }],
	})}\n\n`;
	const server = http.createServer((req, res) => {
		req.resume();
		req.on('end', () => {
			g.gate.requests++;
			const hdrs = JSON.stringify(req.headers);
			if (req.headers.authorization !== `Bearer ${g.gatedSecret}` || Object.values(g.keys).some((k) => hdrs.includes(k))) {
				res.writeHead(401, { 'content-type': 'application/json' });
				res.end('{"error":{"message":"wrong credential","type":"invalid_request_error"}}');
				return;
			}
			res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
			res.flushHeaders();
			req.socket.setNoDelay(true);
			res.write(chunk('first. '));
			g.gate.sent = 1;
			new Promise((resolve) => { g.gate.release = resolve; }).then(() => {
				res.write(chunk('second. '));
				res.write(chunk(null, 'stop'));
				res.end('data: [DONE]\n\n');
				g.gate.sent = 3;
			});
		});
	});
	g.gatedServer = server;
	return new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', () => resolve(server.address().port));
	});
}

/* ---- the gateway -------------------------------------------------------------------- */

function confText(g) {
	const up = (name) => `127.0.0.1:${g.standin[name].port}`;
	return `# keyauth HTTPS e2e configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 2;
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
frontend = {
	bind = [ "127.0.0.1:${g.gwPort}" ];
	tls = { certificate = "${g.serverPem}"; min_version = "1.3"; };
	http2 = true;
};
routes = (
	{ name = "openai"; context = "/openai"; upstream = "${up('openai')}"; provider = "openai"; },
	{ name = "anthropic"; context = "/anthropic"; upstream = "${up('anthropic')}"; provider = "anthropic"; },
	{ name = "gemini"; context = "/gemini"; upstream = "${up('gemini')}"; provider = "gemini"; },
	{ name = "mistral"; context = "/mistral"; upstream = "${up('mistral')}"; provider = "mistral"; },
	{ name = "gated"; context = "/gated"; upstream = "127.0.0.1:${g.gatedPort}"; provider = "openai"; }
);
`;
}

async function startStandin(g, vendor) {
	const secret = addSecret(`provider-${vendor}@https-${g.hap.label}`, `prov_${vendor}_${crypto.randomBytes(18).toString('hex')}`);
	const env = { ...process.env, STANDIN_SECRET: secret, STANDIN_VENDOR: vendor, STANDIN_INTERVAL_MS: '20' };
	const p = startProcess(`standin-${vendor}`, process.execPath, [VENDORS_JS, '0'], { dir: g.dir, env });
	g.procs.push(p);
	const port = await waitFor(`the ${vendor} stand-in to listen`, () => announcedPort(p), { timeout: 10000 });
	return { port, secret };
}

async function startGateway(hap) {
	const g = { hap, keys: {}, procs: [], standin: {}, dispatchers: [] };
	g.dir = makeTempDir(`https-${hap.label}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	await makeCerts(g);
	for (const v of VENDORS)
		g.standin[v] = await startStandin(g, v);
	g.gatedSecret = addSecret(`provider-gated@https-${hap.label}`, `prov_gated_${crypto.randomBytes(18).toString('hex')}`);
	g.gatedPort = await startGated(g);
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));
	for (const r of [...VENDORS, 'gated'])
		g.keys[r] = (await keyCreate(g.conf, r, { owner: `https-${r}`, secret: `${r}@https-${hap.label}`, logFile: g.ctlLog })).key;

	g.agent = startProcess('keyauthd', KEYAUTHD, ['-c', g.conf], { dir: g.dir });
	g.procs.push(g.agent);
	await waitFor('keyauthd to start', () => {
		failIfExited(g.agent);
		return /event=started/.test(readText(g.agent.err));
	}, { timeout: 10000 });

	// No --bind: the frontend is the config's (address, TLS, HTTP/2).
	const r = await ctl(g.conf, ['haproxy', '--out', g.hapDir, '--haproxy-version', hap.render], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl haproxy failed: ${redact(r.stderr)}`);
	g.hapCfg = path.join(g.hapDir, 'haproxy-keyauth.cfg');
	const chk = await run(hap.bin, ['-c', '-f', g.hapCfg]);
	if (chk.status !== 0)
		throw new Error(`haproxy -c rejected the rendered config: ${redact(chk.stdout + chk.stderr)}`);
	const env = { ...process.env };
	for (const v of VENDORS)
		env[`KEYAUTH_${v.toUpperCase()}_CREDENTIAL`] = g.standin[v].secret;
	env.KEYAUTH_GATED_CREDENTIAL = g.gatedSecret;
	g.haproxy = startProcess('haproxy', hap.bin, ['-W', '-db', '-f', g.hapCfg], { dir: g.dir, env, kind: 'haproxy' });
	g.procs.push(g.haproxy);
	await waitFor('HAProxy to listen', () => listening(g.haproxy, g.gwPort), { timeout: 15000 });
	await waitFor('a first HTTPS request through HAProxy and keyauthd', async () =>
		(await curlTls(g, '/openai/v1/models', { key: g.keys.openai })).status === 200,
	{ timeout: 15000, interval: 100 });
	return g;
}

/* ---- curl over TLS ------------------------------------------------------------------- */

let curlSeq = 0;

/* One HTTPS request to the gateway with curl: the URL, the CA and the key
 * (as Authorization: Bearer) go on stdin as a curl config; argv is only
 * `curl -K -`. <http>: '2' (--http2) or '1.1'; <ca>: false to trust only
 * the system's CAs; <tlsMax>: e.g. '1.2'. Resolves to { status, version,
 * exit, stderr } (status 0 when no HTTP answer came). */
async function curlTls(g, pathAndQuery, { key, http = '1.1', ca = true, tlsMax } = {}) {
	const n = ++curlSeq;
	const q = (s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
	const lines = [
		`url = ${q(`https://127.0.0.1:${g.gwPort}${pathAndQuery}`)}`,
		'silent', 'show-error', 'max-time = 10',
		http === '2' ? 'http2' : 'http1.1',
		`output = ${q(path.join(g.dir, `curl-${n}.body`))}`,
		`write-out = ${q('%{http_code} %{http_version}')}`,
	];
	if (ca)
		lines.push(`cacert = ${q(g.caFile)}`);
	if (tlsMax)
		lines.push(`tls-max = ${tlsMax}`);
	if (key)
		lines.push(`header = ${q(`Authorization: Bearer ${key}`)}`);
	const r = await run('curl', ['-K', '-'], { input: lines.join('\n') + '\n', timeout: 15000 });
	const [status, version] = r.stdout.trim().split(' ');
	return { status: Number(status) || 0, version, exit: r.status, stderr: r.stderr };
}

/* HAProxy's log lines for requests over <proto> ('HTTP/2.0', 'HTTP/1.1')
 * to <route> with verdict <status>: %HV sits right before route= in the
 * rendered log-format. */
const logRe = (proto, route, status = '[a-z_]+') =>
	new RegExp(` ${proto.replace(/[./]/g, '\\$&')} route=${route} keyauth=${status} `);
const logCount = (g, proto, route, status) => countLines(g.haproxy.out, logRe(proto, route, status));

/* ---- SDK clients over undici ---------------------------------------------------------- */

/* A fetch for the SDKs: undici's, through an Agent that trusts the test CA
 * (<ca> false: only the system's) and offers h2 by ALPN when <h2>. */
function tlsFetch(g, { h2, ca = true }) {
	const dispatcher = new Agent({ allowH2: h2, connect: ca ? { ca: g.ca } : {} });
	g.dispatchers.push(dispatcher);
	return (url, init) => undiciFetch(url, { ...init, dispatcher });
}

/* Each SDK built as sdk-clients.js builds it (retries off), with our fetch:
 * openai and @anthropic-ai/sdk take `fetch`, @google/genai
 * `httpOptions.fetch`, @mistralai/mistralai an HTTPClient whose fetcher gets
 * a Request (of Node's own fetch, which undici's does not take as one). */
const CLIENTS = {
	openai: { sdk: SDKS.openai, route: 'openai', base: '/openai/v1',
		make: (o) => Object.assign(new OpenAI(o), { __model: 'gpt-standin' }) },
	anthropic0: { sdk: SDKS.anthropic0, route: 'anthropic', base: '/anthropic', make: (o) => new Anthropic0(o) },
	anthropic1: { sdk: SDKS.anthropic1, route: 'anthropic', base: '/anthropic', make: (o) => new Anthropic1(o) },
	gemini: { sdk: SDKS.gemini, route: 'gemini', base: '/gemini',
		make: (o) => new GoogleGenAI({ apiKey: o.apiKey,
			httpOptions: { baseUrl: o.baseURL, timeout: o.timeout, headers: {}, fetch: o.fetch } }) },
	mistral: { sdk: SDKS.mistral, route: 'mistral', base: '/mistral',
		make: (o) => Object.assign(new Mistral({
			serverURL: o.baseURL, apiKey: o.apiKey, retryConfig: { strategy: 'none' }, timeoutMs: o.timeout,
			httpClient: new HTTPClient({ fetcher: async (req) => o.fetch(req.url, {
				method: req.method, headers: [...req.headers], signal: req.signal,
				body: ['GET', 'HEAD'].includes(req.method) ? undefined : await req.arrayBuffer(),
			}) }),
		}), { __headers: {} }) },
};

function client(g, name, { h2, ca = true, key, route = CLIENTS[name].route, base = CLIENTS[name].base }) {
	return CLIENTS[name].make({
		baseURL: `https://127.0.0.1:${g.gwPort}${base}`, apiKey: key ?? g.keys[route],
		maxRetries: 0, timeout: 10000, fetch: tlsFetch(g, { h2, ca }),
	});
}

/* <k> with one character of its random part changed: no key of the store
 * (its checksum no longer matches: keyauth=malformed in HAProxy's log). */
const wrongKey = (k) => k.slice(0, 5) + (k[5] === 'x' ? 'y' : 'x') + k.slice(6);

async function refused(fn, what) {
	try {
		await fn();
	} catch (e) {
		return e;
	}
	assert.fail(`${what}: the call succeeded`);
	return null;
}

async function standinRequests(g, vendor) {
	const r = await fetch(`http://127.0.0.1:${g.standin[vendor].port}/__requests`, { signal: AbortSignal.timeout(10000) });
	return r.json();
}

const standinCount = async (g, vendor) => (await standinRequests(g, vendor)).length;

forEachHaproxy('HTTPS frontend on HAProxy', { timeout: 180000, tag: 'https', keepEnv: 'HTTPS_KEEP' }, startGateway, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });
	after(async () => {
		if (g === undefined)
			return;
		g.gate?.release?.();
		await Promise.all(g.dispatchers.map((d) => d.close().catch(() => {})));
		g.gatedServer?.closeAllConnections();
		await new Promise((resolve) => (g.gatedServer ? g.gatedServer.close(resolve) : resolve()));
	});

	test(`${V} the frontend is the config's: bind with ssl crt, ssl-min-ver TLSv1.3, alpn h2,http/1.1`, () => {
		const binds = readText(g.hapCfg).split('\n').filter((l) => /^\s*bind /.test(l));
		assert.deepEqual(binds, [`    bind 127.0.0.1:${g.gwPort} ssl crt ${g.serverPem} ssl-min-ver TLSv1.3 alpn h2,http/1.1`]);
	});

	for (const proto of ['2', '1.1']) {
		test(`${V} curl over HTTP/${proto} with the test CA: valid key 200, bad key 401, no key 401`, async () => {
			const hv = proto === '2' ? 'HTTP/2.0' : 'HTTP/1.1';
			const n0 = { ok: logCount(g, hv, 'openai', 'ok'), invalid: logCount(g, hv, 'openai', 'malformed'),
				missing: logCount(g, hv, 'openai', 'missing') };
			let r = await curlTls(g, '/openai/v1/models', { key: g.keys.openai, http: proto });
			assert.equal(r.status, 200, `valid key: ${redact(r.stderr)}`);
			assert.equal(r.version, proto, 'the protocol curl used');
			// HTTP/2 reaches HAProxy's rules in absolute form (:scheme, :authority):
			// the provider still gets origin-form and its own Host.
			const last = (await standinRequests(g, 'openai')).at(-1);
			assert.deepEqual({ target: last.target, host: last.host, status: last.status },
				{ target: '/v1/models', host: `127.0.0.1:${g.standin.openai.port}`, status: 200 }, 'what reached the provider');
			r = await curlTls(g, '/openai/v1/models', { key: wrongKey(g.keys.openai), http: proto });
			assert.equal(r.status, 401, 'bad key');
			r = await curlTls(g, '/openai/v1/models', { http: proto });
			assert.equal(r.status, 401, 'no key');
			// HAProxy saw the same protocol: its log line's %HV.
			await waitFor(`HAProxy to log the three ${hv} requests`, () =>
				logCount(g, hv, 'openai', 'ok') === n0.ok + 1 && logCount(g, hv, 'openai', 'malformed') === n0.invalid + 1 &&
				logCount(g, hv, 'openai', 'missing') === n0.missing + 1, { timeout: 5000 });
		});
	}

	test(`${V} refused: a client without the test CA, a client limited to TLS 1.2 (min_version 1.3)`, async () => {
		const up0 = await standinCount(g, 'openai');
		let r = await curlTls(g, '/openai/v1/models', { key: g.keys.openai, ca: false });
		assert.equal(r.status, 0, 'no HTTP answer without the CA');
		assert.equal(r.exit, 60, `curl: certificate verification failed (exit 60), got ${r.exit}: ${redact(r.stderr)}`);
		for (const proto of ['2', '1.1']) {
			r = await curlTls(g, '/openai/v1/models', { key: g.keys.openai, http: proto, tlsMax: '1.2' });
			assert.equal(r.status, 0, `TLS 1.2 over HTTP/${proto}: no HTTP answer`);
			assert.equal(r.exit, 35, `curl: TLS handshake refused (exit 35), got ${r.exit}: ${redact(r.stderr)}`);
			assert.match(r.stderr, /protocol version/i, 'the server refused the protocol version');
			// The same client allowed TLS 1.3 gets in: the refusal was the version.
			r = await curlTls(g, '/openai/v1/models', { key: g.keys.openai, http: proto, tlsMax: '1.3' });
			assert.equal(r.status, 200, `TLS 1.3 over HTTP/${proto}`);
		}
		const e = await refused(() => SDKS.openai.call(client(g, 'openai', { h2: true, ca: false })), 'an SDK without the CA');
		assert.ok(e instanceof OpenAI.APIConnectionError, `an SDK without the CA: ${e.constructor.name}: ${redact(e.message)}`);
		assert.match(String(e.cause?.cause?.code ?? e.cause?.code ?? e.cause?.message ?? ''),
			/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify|issuer/i, 'the certificate was not trusted');
		assert.equal(await standinCount(g, 'openai'), up0 + 2, 'only the two TLS 1.3 requests reached the provider');
	});

	for (const name of Object.keys(CLIENTS)) {
		for (const h2 of [true, false]) {
			const hv = h2 ? 'HTTP/2.0' : 'HTTP/1.1';
			const other = h2 ? 'HTTP/1.1' : 'HTTP/2.0';
			test(`${V} ${CLIENTS[name].sdk.label} over HTTPS ${hv}: call, stream, wrong key`, async () => {
				const { sdk, route } = CLIENTS[name];
				const n0 = { ok: logCount(g, hv, route, 'ok'), bad: logCount(g, hv, route, 'malformed'),
					other: logCount(g, other, route) };
				const text = await sdk.call(client(g, name, { h2 }));
				assert.ok(typeof text === 'string' && text.length > 0, 'a completion text');
				const chunks = await sdk.stream(client(g, name, { h2 }), null, { events: 3 });
				assert.ok(chunks.length >= 3, `${chunks.length} streamed chunks (want >= 3)`);
				const e = await refused(() => sdk.call(client(g, name, { h2, key: wrongKey(g.keys[route]) })), 'wrong key');
				assert.equal(sdk.classify(e), 'auth', `wrong key: ${e.constructor.name} ${sdk.status(e)}: ${redact(e.message)}`);
				await waitFor(`HAProxy to log two allowed and one refused ${hv} request`, () =>
					logCount(g, hv, route, 'ok') === n0.ok + 2 && logCount(g, hv, route, 'malformed') === n0.bad + 1,
				{ timeout: 5000 });
				assert.equal(logCount(g, other, route), n0.other, `no request went over ${other}`);
			});
		}
	}

	test(`${V} streaming over HTTP/2: the first event arrives while the provider holds the next`, async (t) => {
		const n0 = logCount(g, 'HTTP/2.0', 'gated', 'ok');
		const c = client(g, 'openai', { h2: true, route: 'gated', base: '/gated/v1' });
		const seen = [];
		const done = SDKS.openai.stream(c, (text) => {
			seen.push({ text, providerSent: g.gate.sent });
		});
		let failed = null;
		done.catch((e) => { failed = e; });
		await waitFor('the first streamed event to reach the SDK', () => {
			if (failed)
				throw fatal(`the stream failed: ${failed.constructor.name}: ${redact(failed.message)}`);
			return seen.length > 0;
		}, { timeout: 10000 });
		assert.deepEqual(seen, [{ text: 'first. ', providerSent: 1 }], 'the first event came alone, before the provider sent the next');
		g.gate.release();
		const chunks = await done;
		assert.deepEqual(chunks, ['first. ', 'second. ']);
		assert.equal(seen[1].providerSent, 3, 'the second event came after the provider sent it');
		await waitFor('HAProxy to log the HTTP/2.0 stream', () => logCount(g, 'HTTP/2.0', 'gated', 'ok') === n0 + 1, { timeout: 5000 });
		t.diagnostic(`gated stand-in requests: ${g.gate.requests}`);
	});

	test(`${V} no key in any file of the run`, () => {
		const leaks = filesUnder(g.dir).filter((f) => holdsSecret(readText(f)));
		assert.deepEqual(leaks.map((f) => path.relative(g.dir, f)), [], 'files holding a key');
	});
});
