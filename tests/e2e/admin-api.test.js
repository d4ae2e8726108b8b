// SPDX-License-Identifier: Apache-2.0
// keyauth-admin's HTTP API, straight on its unix socket (no HAProxy): the
// requests carry the identity headers HAProxy sets after keyauthd's verdict
// (X-Keyauth-Key-Id, -Owner, -Scopes). Every endpoint's success, every
// error status, nothing changed by any 4xx, concurrent If-Match edits, the
// OpenAPI document valid and every response valid against its operation's
// schema, privilege separation (as root), peer checks, no key in any log.
//
// Keys never travel in argv: the API returns them in response bodies, which
// stay in memory and are registered with addSecret.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { createRequire } from 'node:module';

import {
	KEYAUTHCTL, ROOT, addSecret, ctl, failIfExited, freePort, holdsSecret, makeTempDir, readText, redact,
	startProcess, stopProcess, waitFor,
} from './lib.js';

const require = createRequire(import.meta.url);
const Ajv2020 = require('ajv/dist/2020.js');
const { Validator } = require('@seriousme/openapi-schema-validator');

const KEYAUTH_ADMIN = path.resolve(ROOT, process.env.KEYAUTH_ADMIN ||
	path.join(path.dirname(process.env.KEYAUTHD ? path.resolve(ROOT, process.env.KEYAUTHD) :
		path.join(ROOT, 'build', 'keyauthd')), 'keyauth-admin'));
const OPENAPI_PATH = path.join(ROOT, 'agent', 'admin', 'openapi.json');
const OPENAPI = JSON.parse(fs.readFileSync(OPENAPI_PATH, 'utf8'));
const IS_ROOT = process.getuid() === 0;
const ALL = 'read,write,deploy';
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/* ---- the response checker: every answer against the OpenAPI document ---------- */

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
const DOC_ID = 'https://keyauth.invalid/openapi.json';
ajv.addSchema(OPENAPI, DOC_ID);
const validators = new Map();
let checkedResponses = 0;

/* The document's path template matching <p> ("/v1/keys/abc" -> "/v1/keys/{id}"). */
function templateOf(p) {
	for (const t of Object.keys(OPENAPI.paths)) {
		const re = new RegExp('^' + t.replace(/\{[a-z]+\}/g, '[^/]+') + '$');
		if (re.test(p))
			return t;
	}
	return null;
}

function resolveResponse(r) {
	if (r && r.$ref)
		return r.$ref.split('/').slice(1).reduce((o, k) => o[k], OPENAPI);
	return r;
}

/* Asserts <res> is what the document says <method> <p> answers with <status>. */
function checkAgainstSpec(method, p, res) {
	const t = templateOf(p.split('?')[0]);
	if (t === null)
		return;      // static files and unknown paths: not API operations
	const op = OPENAPI.paths[t][method.toLowerCase()];
	if (op === undefined) {
		assert.equal(res.status, 405, `${method} ${t} is not in the document, so it must be 405`);
		return;
	}
	const spec = resolveResponse(op.responses[String(res.status)]);
	assert.ok(spec, `${method} ${t}: status ${res.status} is not documented`);
	assert.match(res.headers['content-type'] || '', /^application\/json/);
	const key = `${method} ${t} ${res.status}`;
	if (!validators.has(key)) {
		validators.set(key, ajv.compile(rewriteRefs(spec.content['application/json'].schema)));
	}
	const v = validators.get(key);
	assert.ok(v(res.json), `${key}: body does not match the schema: ${JSON.stringify(v.errors).slice(0, 600)}`);
	checkedResponses++;
}

/* "#/components/..." inside a fragment of the document -> "<DOC_ID>#/components/...". */
function rewriteRefs(o) {
	if (Array.isArray(o))
		return o.map(rewriteRefs);
	if (o && typeof o === 'object') {
		const out = {};
		for (const [k, v] of Object.entries(o))
			out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `${DOC_ID}${v}` : rewriteRefs(v);
		return out;
	}
	return o;
}

/* ---- requests on the socket ------------------------------------------------------- */

/* One request. <who>: scopes string or null (no identity headers at all).
 * <body>: an object (sent as JSON) or <raw> bytes with <type>. Resolves to
 * { status, headers, text, json }; checked against the document. */
function api(g, method, p, { who = ALL, keyId = 'adminKey1', body, raw, type, headers = {}, chunked = false,
	check = true } = {}) {
	const h = { ...headers };
	if (who !== null) {
		h['X-Keyauth-Key-Id'] = keyId;
		h['X-Keyauth-Owner'] = 'ops@example.com';
		h['X-Keyauth-Scopes'] = who;
	}
	let data;
	if (body !== undefined) {
		data = Buffer.from(JSON.stringify(body));
		h['Content-Type'] = type || 'application/json';
	} else if (raw !== undefined) {
		data = Buffer.from(raw);
		if (type)
			h['Content-Type'] = type;
	}
	if (data !== undefined && !chunked)
		h['Content-Length'] = String(data.length);
	return new Promise((resolve, reject) => {
		const req = http.request({ socketPath: g.sock, path: p, method, headers: h, timeout: 30000 }, (res) => {
			const parts = [];
			res.on('data', (b) => parts.push(b));
			res.on('end', () => {
				const text = Buffer.concat(parts).toString();
				let json;
				try {
					json = text ? JSON.parse(text) : undefined;
				} catch { /* static files */ }
				const out = { status: res.statusCode, headers: res.headers, text, json };
				try {
					assert.equal(res.headers['content-security-policy'], CSP, 'CSP on every response');
					assert.equal(res.headers['x-content-type-options'], 'nosniff');
					assert.equal(res.headers['referrer-policy'], 'no-referrer');
					assert.equal(res.headers['cache-control'], 'no-store');
					if (check && method !== 'HEAD')
						checkAgainstSpec(method, p, out);
				} catch (e) {
					reject(new Error(redact(e.message)));
					return;
				}
				resolve(out);
			});
		});
		req.once('timeout', () => req.destroy(new Error(`${method} ${p}: timeout`)));
		req.once('error', reject);
		if (data !== undefined && chunked) {
			// Several chunks without a Content-Length: the limit must hold
			// for bodies whose size is not announced.
			for (let i = 0; i < data.length; i += 16384)
				req.write(data.subarray(i, i + 16384));
		} else if (data !== undefined) {
			req.write(data);
		}
		req.end();
	});
}

function sha(file) {
	try {
		return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
	} catch {
		return 'absent';
	}
}

/* The state no 4xx may change: store, audit log, overrides (applied and pending), rendered files. */
function stateOf(g) {
	const files = [g.store, `${g.store}.audit`, g.overrides, `${g.overrides}.pending`,
		...fs.readdirSync(g.hapDir).map((f) => path.join(g.hapDir, f))];
	return Object.fromEntries(files.map((f) => [path.relative(g.dir, f), sha(f)]));
}

function uidOf(pid) {
	const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
	return Number(m[1]);
}

function childrenOf(pid) {
	try {
		return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
	} catch {
		return [];
	}
}

/* ---- the daemon under test ---------------------------------------------------------- */

async function startDaemon(tag, { user, stale = false } = {}) {
	const g = { dir: makeTempDir(tag) };
	g.runDir = path.join(g.dir, 'run');
	fs.mkdirSync(g.runDir, { mode: 0o750 });
	fs.chmodSync(g.runDir, 0o750);
	// As packaged (/run/keyauth-admin, root:haproxy 0750): HAProxy's group
	// may reach the socket, so the peer check is what refuses others.
	const hg = spawnSync('getent', ['group', 'haproxy'], { encoding: 'utf8' });
	if (IS_ROOT && hg.status === 0) {
		fs.chmodSync(g.dir, 0o711);
		fs.chownSync(g.runDir, 0, Number(hg.stdout.split(':')[2]));
	}
	g.sock = path.join(g.runDir, 'admin.sock');
	if (stale) {
		// What a crash leaves: a socket file nobody listens on.
		const r = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', g.sock]);
		assert.equal(r.status, 0);
		assert.ok(fs.lstatSync(g.sock).isSocket());
	}
	g.store = path.join(g.dir, 'keys.db');
	g.overrides = path.join(g.dir, 'routes.override');
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	const port = await freePort();
	fs.writeFileSync(g.conf, `# admin-api.test.js
listen = [ "unix:${g.runDir}/agent.sock" ];
store = { backend = "file"; path = "${g.store}"; };
log = { level = "info"; target = "stderr"; };
frontend = { bind = [ "127.0.0.1:${port}" ]; };
route_overrides = "${g.overrides}";
# keyauth-admin runs plain \`keyauthctl -c CONF deploy ...\`, whose defaults are
# the installed gateway's (/etc/haproxy, Debian's service): here a deploy
# goes to the run's own directory and reloads nothing.
deploy = { haproxy_dir = "${g.hapDir}"; haproxy_service = "none"; reload_haproxy = "none"; };
admin = {
	socket = "${g.sock}";
	keyauthctl = "${KEYAUTHCTL}";
	console_dir = "${path.join(ROOT, 'agent', 'admin', 'console')}";
	user = "${user === undefined ? '' : user}";
};
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:9";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; },
	{ name = "other"; type = "proxy"; context = "/other"; upstream = "127.0.0.1:9";
	  security = { authentication = "apiKey"; key_name = "X-Other-Key"; key_location = "header"; }; }
);
`, { mode: 0o600 });
	g.proc = startProcess('keyauth-admin', KEYAUTH_ADMIN, ['-c', g.conf], { dir: g.dir });
	await waitFor('keyauth-admin to serve on its socket', async () => {
		failIfExited(g.proc);
		if (!fs.existsSync(g.sock))
			return false;
		try {
			return (await api(g, 'GET', '/', { who: null })).status === 200;
		} catch {
			return false;
		}
	}, { timeout: 15000, interval: 50 });
	return g;
}

async function createKey(g, label, body = { routes: ['openai'], owner: `${label}@example.com` }) {
	const r = await api(g, 'POST', '/v1/keys', { body });
	assert.equal(r.status, 201, redact(r.text));
	addSecret(label, r.json.key);
	return r;
}

describe('keyauth-admin API on its socket', () => {
	let g;

	before(async () => {
		assert.ok(fs.existsSync(KEYAUTH_ADMIN), `${KEYAUTH_ADMIN} not built`);
		g = await startDaemon('admin-api', { user: IS_ROOT ? 'nobody' : undefined });
	});

	after(async () => {
		if (g && g.proc)
			await stopProcess(g.proc);
	});

	test('the OpenAPI document is valid OpenAPI 3.1 and GET /openapi.json serves it', async () => {
		const res = await new Validator().validate(structuredClone(OPENAPI));
		assert.deepEqual(res, { valid: true });
		const r = await api(g, 'GET', '/openapi.json', { who: 'read' });
		assert.equal(r.status, 200);
		assert.deepEqual(r.json, OPENAPI);
		assert.equal((await api(g, 'GET', '/openapi.json', { who: null })).status, 401);
	});

	test('privilege separation: the web process runs as admin.user, the executor as root', { skip: !IS_ROOT && 'not root' }, () => {
		assert.equal(uidOf(g.proc.pid), 0, 'the executor is root');
		const kids = childrenOf(g.proc.pid);
		assert.equal(kids.length, 1, 'one web process');
		assert.equal(uidOf(kids[0]), 65534, 'the web process is nobody');
		const st = fs.statSync(g.sock);
		assert.equal(st.mode & 0o777, 0o660);
		assert.match(readText(g.proc.err), /event=executor_started/);
	});

	test('static console files, no identity needed; nothing outside the fixed names', async () => {
		const idx = await api(g, 'GET', '/', { who: null });
		assert.equal(idx.status, 200);
		assert.match(idx.headers['content-type'], /^text\/html/);
		for (const f of ['index.html', 'console.css', 'console.js']) {
			const r = await api(g, 'GET', `/console/${f}`, { who: null });
			assert.equal(r.status, 200, f);
		}
		for (const p of ['/console/../openapi.json', '/console/%2e%2e/openapi.json', '/console/x.js',
			'/console/../../../etc/passwd', '/console/']) {
			const r = await api(g, 'GET', p, { who: null });
			assert.equal(r.status, 404, p);
			assert.equal(r.json.error.code, 'not_found');
		}
		const post = await api(g, 'POST', '/', { who: null });
		assert.equal(post.status, 405);
		assert.equal(post.headers.allow, 'GET, HEAD');
	});

	test('whoami and every endpoint\'s success', async () => {
		const who = await api(g, 'GET', '/v1/whoami', { who: 'read,write' });
		assert.equal(who.status, 200);
		assert.deepEqual(who.json, { key_id: 'adminKey1', owner: 'ops@example.com', scopes: ['read', 'write'] });

		const c = await createKey(g, 'api-alice', { routes: ['openai', 'other'], owner: 'alice@example.com',
			alias: 'alice-1', tags: { team: 'ml' }, expires_in_days: 30, rpm: 60 });
		assert.equal(c.json.shown_once, true);
		assert.match(c.json.key, /^ka_/);
		assert.equal(c.headers.location, `keys/${c.json.id}`);
		const id = c.json.id;

		const list = await api(g, 'GET', '/v1/keys?route=openai&tag=team%3Dml');
		assert.equal(list.status, 200);
		assert.deepEqual(list.json.keys.map((k) => k.id), [id]);
		assert.ok(!holdsSecret(list.text), 'a list never holds a key');

		const one = await api(g, 'GET', `/v1/keys/${id}`, { who: 'read' });
		assert.equal(one.status, 200);
		assert.equal(one.json.owner, 'alice@example.com');
		assert.ok(!holdsSecret(one.text));

		const set = await api(g, 'PATCH', `/v1/keys/${id}`, { body: { rpm: 120, tags: { team: null, env: 'prod' }, alias: null } });
		assert.equal(set.status, 200, redact(set.text));
		assert.equal(set.json.rpm, 120);
		assert.deepEqual(set.json.tags, { env: 'prod' });
		assert.equal(set.json.alias, null);

		const usage = await api(g, 'GET', `/v1/keys/${id}/usage`, { who: 'read' });
		assert.equal(usage.status, 200, redact(usage.text));
		assert.equal(usage.json.requests, 0);

		const rot = await api(g, 'POST', `/v1/keys/${id}/rotate`, { body: { grace_seconds: 3600 } });
		assert.equal(rot.status, 201, redact(rot.text));
		addSecret('api-alice-rotated', rot.json.key);
		assert.equal(rot.json.old.id, id);
		assert.equal(rot.json.new.rotated_from, id);
		assert.equal(rot.headers.location, `../${rot.json.new.id}`);
		assert.ok(!('key' in rot.json.new));

		const rev = await api(g, 'POST', `/v1/keys/${rot.json.new.id}/revoke`);
		assert.equal(rev.status, 200, redact(rev.text));
		assert.equal(rev.json.already_revoked, false);
		const rev2 = await api(g, 'POST', `/v1/keys/${rot.json.new.id}/revoke`, { body: {} });
		assert.equal(rev2.status, 200);
		assert.equal(rev2.json.already_revoked, true);

		const audit = await api(g, 'GET', '/v1/audit?limit=2', { who: 'read' });
		assert.equal(audit.status, 200, redact(audit.text));
		assert.equal(audit.json.entries.length, 2);
		const auditKey = await api(g, 'GET', `/v1/audit?key=${id}&since=3600`, { who: 'read' });
		assert.equal(auditKey.status, 200);
		assert.ok(auditKey.json.entries.length >= 2);
		assert.ok(auditKey.json.entries.every((e) => e.key_id === id));

		const routes = await api(g, 'GET', '/v1/routes', { who: 'read' });
		assert.equal(routes.status, 200);
		assert.ok(routes.json.routes.some((r) => r.name === 'openai'));
		const route = await api(g, 'GET', '/v1/routes/openai', { who: 'read' });
		assert.equal(route.status, 200);
		assert.equal(route.headers.etag, `"${route.json.etag}"`);
		const edit = await api(g, 'PATCH', '/v1/routes/openai', { body: { security: { key_name: 'X-Custom-Key' } },
			headers: { 'If-Match': route.headers.etag } });
		assert.equal(edit.status, 200, redact(edit.text));
		assert.equal(edit.json.pending, true);
		assert.equal(edit.json.security.key_name, 'X-Custom-Key');
		assert.notEqual(edit.headers.etag, route.headers.etag);

		const prev = await api(g, 'GET', '/v1/deploy/preview', { who: 'read' });
		assert.equal(prev.status, 200, redact(prev.text));
		assert.equal(prev.json.changed, true);
		assert.deepEqual(prev.json.routes, ['openai']);
		const dep = await api(g, 'POST', '/v1/deploy', { who: ALL, body: { preview_id: prev.json.preview_id } });
		assert.equal(dep.status, 200, redact(dep.text));
		assert.equal(dep.json.ok, true);
		assert.match(readText(path.join(g.hapDir, 'haproxy-keyauth.cfg')), /X-Custom-Key/i);
		const after1 = await api(g, 'GET', '/v1/routes/openai', { who: 'read' });
		assert.equal(after1.json.pending, false);

		// The audit log names the admin key that made the change.
		const mine = await api(g, 'GET', `/v1/audit?key=${id}`, { who: 'read' });
		assert.ok(mine.json.entries.some((e) => /adminKey1/.test(JSON.stringify(e))),
			'the audit entries name the admin key');
	});

	test('HEAD on a GET endpoint answers like GET without a body', async () => {
		const r = await api(g, 'HEAD', '/v1/whoami', { who: 'read' });
		assert.equal(r.status, 200);
		assert.equal(r.text, '');
	});

	test('every 4xx: the right status and code, and nothing changed', async () => {
		const k = await createKey(g, 'api-bob');
		const id = k.json.id;
		const route = await api(g, 'GET', '/v1/routes/other', { who: 'read' });
		const before = stateOf(g);
		const cases = [
			// 400
			['POST', '/v1/keys', { raw: '{"routes": ["openai"],', type: 'application/json' }, 400, 'invalid_json'],
			['POST', '/v1/keys', { raw: '[1,2]', type: 'application/json' }, 400, 'invalid_json'],
			['POST', '/v1/keys', { raw: '{"owner":"a","owner":"b","routes":["openai"]}', type: 'application/json' }, 400, 'invalid_json'],
			['POST', '/v1/keys', { body: { routes: ['openai'], colour: 'red' } }, 400, 'unknown_field'],
			['POST', '/v1/keys', { body: { owner: 'x' } }, 400, 'missing_field'],
			['POST', '/v1/keys', { body: { routes: 'openai' } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], rpm: -1 } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], rpm: 1.5 } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], expires_in_days: 3, never_expires: true } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], owner: 'a\nb' } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], scopes: ['admin'] } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['no-such-route'] } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['--help'] } }, 400, 'invalid_field'],
			['POST', '/v1/keys', { body: { routes: ['openai'], owner: '--no-expiry' }, expect: 'created-never' }, 201, null],
			['PATCH', `/v1/keys/${id}`, { body: {} }, 400, 'missing_field'],
			['PATCH', `/v1/keys/${id}`, { body: { rpm: 'fast' } }, 400, 'invalid_field'],
			['POST', `/v1/keys/${id}/revoke`, { body: { now: true } }, 400, 'unknown_field'],
			['POST', `/v1/keys/${id}/rotate`, { body: { grace_seconds: -5 } }, 400, 'invalid_field'],
			['GET', '/v1/keys?colour=red', {}, 400, 'unknown_parameter'],
			['GET', '/v1/keys?expiring_within=7d', {}, 400, 'invalid_parameter'],
			['GET', '/v1/audit?limit=0', {}, 400, 'invalid_parameter'],
			['GET', '/v1/routes?all=true', {}, 400, 'unknown_parameter'],
			['GET', '/v1/whoami', { raw: '{}', type: 'application/json' }, 400, 'unexpected_body'],
			['PATCH', '/v1/routes/other', { body: { security: { key_location: 'cookie' } }, headers: { 'If-Match': route.headers.etag } }, 400, 'invalid_field'],
			['PATCH', '/v1/routes/other', { body: { security: { key_name: 'X' }, colour: 1 }, headers: { 'If-Match': route.headers.etag } }, 400, 'unknown_field'],
			['POST', '/v1/deploy', { body: { preview_id: 'not hex' } }, 400, 'invalid_field'],
			['POST', '/v1/deploy', { body: {} }, 400, 'missing_field'],
			// 401, 403
			['GET', '/v1/keys', { who: null }, 401, 'unauthorized'],
			['GET', '/v1/keys', { who: 'read', keyId: 'bad id!' }, 401, 'unauthorized'],
			['GET', '/v1/keys', { who: '' }, 403, 'forbidden'],
			['GET', '/v1/whoami', { who: 'write' }, 403, 'forbidden'],
			['POST', '/v1/keys', { who: 'read', body: { routes: ['openai'] } }, 403, 'forbidden'],
			['PATCH', `/v1/keys/${id}`, { who: 'read', body: { rpm: 1 } }, 403, 'forbidden'],
			['POST', `/v1/keys/${id}/revoke`, { who: 'read' }, 403, 'forbidden'],
			['POST', `/v1/keys/${id}/rotate`, { who: 'read,deploy' }, 403, 'forbidden'],
			['PATCH', '/v1/routes/other', { who: 'read', body: { rate_limit_rpm: 5 }, headers: { 'If-Match': route.headers.etag } }, 403, 'forbidden'],
			['POST', '/v1/deploy', { who: 'read,write', body: { preview_id: 'ab' } }, 403, 'forbidden'],
			['GET', '/v1/deploy/preview', { who: 'write,deploy' }, 403, 'forbidden'],
			// 404
			['GET', '/v1/keys/NoSuchKey123', {}, 404, 'not_found'],
			['GET', '/v1/keys/NoSuchKey123/usage', {}, 404, 'not_found'],
			['PATCH', '/v1/keys/NoSuchKey123', { body: { rpm: 1 } }, 404, 'not_found'],
			['POST', '/v1/keys/NoSuchKey123/revoke', {}, 404, 'not_found'],
			['POST', '/v1/keys/NoSuchKey123/rotate', {}, 404, 'not_found'],
			['GET', '/v1/routes/nosuch', {}, 404, 'not_found'],
			['PATCH', '/v1/routes/nosuch', { body: { rate_limit_rpm: 5 }, headers: { 'If-Match': '"abc"' } }, 404, 'not_found'],
			['GET', '/v1/nothing', {}, 404, 'not_found'],
			['GET', '/v1/keys/a.b', {}, 404, 'not_found'],
			// 405
			['DELETE', '/v1/keys', {}, 405, 'method_not_allowed', 'GET, HEAD, POST'],
			['PUT', `/v1/keys/${id}`, { body: { rpm: 1 } }, 405, 'method_not_allowed', 'GET, HEAD, PATCH'],
			['GET', '/v1/deploy', {}, 405, 'method_not_allowed', 'POST'],
			// 412, 428
			['PATCH', '/v1/routes/other', { body: { rate_limit_rpm: 5 }, headers: { 'If-Match': '"0000"' } }, 412, 'precondition_failed'],
			['PATCH', '/v1/routes/other', { body: { rate_limit_rpm: 5 } }, 428, 'precondition_required'],
			// 413
			['POST', '/v1/keys', { raw: `{"owner":"${'x'.repeat(70000)}","routes":["openai"]}`, type: 'application/json' }, 413, 'too_large'],
			['POST', '/v1/keys', { raw: `{"owner":"${'x'.repeat(70000)}","routes":["openai"]}`, type: 'application/json', chunked: true }, 413, 'too_large'],
			// 415
			['POST', '/v1/keys', { raw: '{"routes":["openai"]}', type: 'text/plain' }, 415, 'unsupported_media_type'],
			['POST', '/v1/keys', { raw: '{"routes":["openai"]}' }, 415, 'unsupported_media_type'],
			['POST', '/v1/keys', { raw: '{"routes":["openai"]}', type: 'application/jsonx' }, 415, 'unsupported_media_type'],
		];
		let created = 0;
		for (const [method, p, opts, status, code, allow] of cases) {
			const { expect: _e, ...o } = opts;
			const r = await api(g, method, p, o);
			assert.equal(r.status, status, `${method} ${p}: ${redact(r.text).slice(0, 300)}`);
			if (status === 201) {
				// A value that looks like an option is a value: the owner
				// is "--no-expiry", and the key expires as usual.
				addSecret('api-dashes', r.json.key);
				assert.equal(r.json.owner, '--no-expiry');
				assert.notEqual(r.json.expires, null);
				created++;
				continue;
			}
			assert.equal(r.json.error.code, code, `${method} ${p}`);
			assert.equal(typeof r.json.error.message, 'string');
			if (allow)
				assert.equal(r.headers.allow, allow, `${method} ${p}: Allow`);
		}
		assert.equal(created, 1);
		const now = stateOf(g);
		// The one 201 above changed the store and its audit log; the
		// overrides and rendered files are as they were.
		for (const f of Object.keys(before))
			if (!/keys\.db/.test(f))
				assert.equal(now[f], before[f], `${f} changed after a 4xx`);
	});

	test('413 for an announced huge body comes before the body is sent', async () => {
		const got = await new Promise((resolve, reject) => {
			const s = net.connect(g.sock);
			let buf = '';
			const timer = setTimeout(() => { s.destroy(); reject(new Error('no answer in 5 s')); }, 5000);
			s.on('data', (d) => { buf += d; });
			s.on('close', () => { clearTimeout(timer); resolve(buf); });
			s.on('error', () => { /* reset after the answer */ });
			s.write('POST /v1/keys HTTP/1.1\r\nHost: admin\r\nX-Keyauth-Key-Id: adm1\r\n' +
				'X-Keyauth-Scopes: read,write\r\nContent-Type: application/json\r\n' +
				'Content-Length: 1000000000\r\n\r\n{"routes":');
		});
		assert.match(got, /^HTTP\/1\.1 413 /);
		assert.match(got, /"code":"too_large"/);
	});

	test('nothing changes after a 4xx, store and audit included', async () => {
		const k = await createKey(g, 'api-carol');
		const before = stateOf(g);
		for (const [m, p, o] of [
			['PATCH', `/v1/keys/${k.json.id}`, { body: { rpm: 'x' } }],
			['PATCH', `/v1/keys/${k.json.id}`, { who: 'read', body: { rpm: 1 } }],
			['POST', `/v1/keys/${k.json.id}/rotate`, { body: { routes: ['nope'] } }],
			['POST', '/v1/keys', { body: { routes: ['openai'], tags: { 'a=b': 'c' } } }],
			['POST', '/v1/keys', { body: { routes: ['admin'] } }],
			['POST', '/v1/keys/NoSuchKey123/revoke', {}],
		]) {
			const r = await api(g, m, p, o);
			assert.ok(r.status >= 400 && r.status < 500, `${m} ${p}: ${r.status}`);
		}
		assert.deepEqual(stateOf(g), before);
	});

	test('409: rotating a revoked key; deploying a stale preview', async () => {
		const k = await createKey(g, 'api-dave');
		assert.equal((await api(g, 'POST', `/v1/keys/${k.json.id}/revoke`)).status, 200);
		const before = stateOf(g);
		const r = await api(g, 'POST', `/v1/keys/${k.json.id}/rotate`);
		assert.equal(r.status, 409, redact(r.text));
		assert.equal(r.json.error.code, 'conflict');
		assert.deepEqual(stateOf(g), before);
		// keyauthctl's exit 5: an already rotated key cannot be rotated again.
		const k2 = await createKey(g, 'api-dave2');
		const rot = await api(g, 'POST', `/v1/keys/${k2.json.id}/rotate`);
		assert.equal(rot.status, 201, redact(rot.text));
		addSecret('api-dave2-rotated', rot.json.key);
		const before1 = stateOf(g);
		const again = await api(g, 'POST', `/v1/keys/${k2.json.id}/rotate`);
		assert.equal(again.status, 409, redact(again.text));
		assert.equal(again.json.error.code, 'conflict');
		assert.match(again.json.error.message, /already rotated/);
		assert.deepEqual(stateOf(g), before1);

		const prev = await api(g, 'GET', '/v1/deploy/preview', { who: 'read' });
		assert.equal(prev.status, 200);
		const route = await api(g, 'GET', '/v1/routes/other', { who: 'read' });
		const e = await api(g, 'PATCH', '/v1/routes/other', { body: { rate_limit_rpm: 77 },
			headers: { 'If-Match': route.headers.etag } });
		assert.equal(e.status, 200, redact(e.text));
		const before2 = stateOf(g);
		const d = await api(g, 'POST', '/v1/deploy', { body: { preview_id: prev.json.preview_id } });
		assert.equal(d.status, 409, redact(d.text));
		assert.deepEqual(stateOf(g), before2, 'a stale deploy writes nothing');
	});

	test('10 concurrent PATCHes with one ETag: one 200, nine 412', async () => {
		const route = await api(g, 'GET', '/v1/routes/other', { who: 'read' });
		const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(g, 'PATCH', '/v1/routes/other', {
			body: { rate_limit_rpm: 1000 + i }, headers: { 'If-Match': route.headers.etag } })));
		const ok = rs.filter((r) => r.status === 200);
		assert.equal(ok.length, 1, rs.map((r) => r.status).join(','));
		assert.equal(rs.filter((r) => r.status === 412).length, 9);
		const now = await api(g, 'GET', '/v1/routes/other', { who: 'read' });
		assert.equal(now.json.rate_limit_rpm, ok[0].json.rate_limit_rpm, 'the winner\'s value stands');
		assert.equal(now.headers.etag, ok[0].headers.etag);
	});

	test('a peer outside root and HAProxy\'s user and group is refused', { skip: (!IS_ROOT || spawnSync('sh', ['-c', 'command -v setpriv && getent group haproxy']).status !== 0) && 'needs root, setpriv and a haproxy group' }, () => {
		const gid = spawnSync('getent', ['group', 'haproxy'], { encoding: 'utf8' }).stdout.split(':')[2];
		// nobody, with haproxy as a supplementary group: the file mode lets
		// it connect; SO_PEERCRED (uid nobody, gid nogroup) does not.
		const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', `--groups=${gid}`, 'curl', '-s', '-o', '/dev/null',
			'-w', '%{http_code}', '--max-time', '5', '--unix-socket', g.sock, '-H', 'X-Keyauth-Key-Id: a',
			'-H', 'X-Keyauth-Scopes: read', 'http://admin/v1/whoami'], { encoding: 'utf8' });
		assert.equal(r.stdout, '000', 'no HTTP answer');
		assert.match(readText(g.proc.err), /event=peer_refused uid=65534/);
		// root is let in (the tests' own requests), and so is the haproxy user.
		const h = spawnSync('setpriv', ['--reuid=haproxy', '--regid=haproxy', '--clear-groups', 'curl', '-s', '-o', '/dev/null',
			'-w', '%{http_code}', '--max-time', '5', '--unix-socket', g.sock, 'http://admin/'], { encoding: 'utf8' });
		assert.equal(h.stdout, '200');
	});

	test('no key in the daemon\'s log, and every line is logfmt', () => {
		const log = readText(g.proc.err);
		assert.ok(log.length > 0);
		assert.ok(!holdsSecret(log), redact(log).slice(0, 400));
		for (const line of log.split('\n').filter(Boolean))
			assert.match(line, /^ts=\S+ level=\w+ event=\w+/, line);
		assert.ok(!/ops@example\.com/.test(log), 'no header value in the log');
		assert.ok(checkedResponses > 60, `responses checked against the document: ${checkedResponses}`);
	});

	test('a second keyauth-admin on the same socket refuses to start; the first keeps serving', async () => {
		const p = startProcess('keyauth-admin-2', KEYAUTH_ADMIN, ['-c', g.conf], { dir: g.dir });
		const ex = await p.exited;
		await stopProcess(p);
		assert.equal(ex.code, 1);
		assert.match(readText(p.err), /event=start_failed .*another process is listening/);
		assert.equal((await api(g, 'GET', '/v1/whoami', { who: 'read' })).status, 200);
	});

	test('SIGTERM: clean exit, socket removed', async () => {
		const kids = childrenOf(g.proc.pid);
		await stopProcess(g.proc, { timeout: 5000 });
		const ex = await g.proc.exited;
		assert.equal(ex.code, 0);
		assert.ok(!fs.existsSync(g.sock));
		for (const k of kids)
			await waitFor(`web process ${k} to exit`, () => !fs.existsSync(`/proc/${k}`), { timeout: 3000 });
		assert.match(readText(g.proc.err), /event=stopped/);
		g.proc = null;
	});
});

describe('keyauth-admin start-up', () => {
	test('--help, --version, -t', async () => {
		const h = spawnSync(KEYAUTH_ADMIN, ['--help'], { encoding: 'utf8' });
		assert.equal(h.status, 0);
		assert.match(h.stdout, /usage: keyauth-admin/);
		const v = spawnSync(KEYAUTH_ADMIN, ['--version'], { encoding: 'utf8' });
		assert.match(v.stdout, /^keyauth-admin \d+\.\d+\.\d+/);
		assert.equal(spawnSync(KEYAUTH_ADMIN, ['--bogus'], { encoding: 'utf8' }).status, 2);
		const g = { dir: makeTempDir('admin-t') };
		const conf = path.join(g.dir, 'keyauth.conf');
		const base = `store = { backend = "file"; path = "${g.dir}/keys.db"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:9"; } );
`;
		fs.writeFileSync(conf, base, { mode: 0o600 });
		const none = spawnSync(KEYAUTH_ADMIN, ['-t', '-c', conf], { encoding: 'utf8' });
		assert.equal(none.status, 1);
		assert.match(none.stderr, /no admin group/);
		fs.writeFileSync(conf, `${base}admin = { socket = "${g.dir}/a.sock"; keyauthctl = "${KEYAUTHCTL}"; user = ""; };\n`);
		const ok = spawnSync(KEYAUTH_ADMIN, ['-t', '-c', conf], { encoding: 'utf8' });
		assert.equal(ok.status, 0, ok.stderr);
		assert.match(ok.stdout, /configuration ok/);
		fs.writeFileSync(conf, `${base}admin = { socket = "${g.dir}/a.sock"; keyauthctl = "${g.dir}/nothing"; user = ""; };\n`);
		const bad = spawnSync(KEYAUTH_ADMIN, ['-t', '-c', conf], { encoding: 'utf8' });
		assert.equal(bad.status, 1);
		assert.match(bad.stderr, /admin\.keyauthctl/);
	});

	test('user = "": one process serves and executes, and says so (over a stale socket)', async () => {
		const g = await startDaemon('admin-single', { user: '', stale: true });
		try {
			assert.match(readText(g.proc.err), /event=single_process reason=(no_admin_user|not_root)/);
			assert.deepEqual(childrenOf(g.proc.pid), [], 'no web child');
			const c = await createKey(g, 'api-single');
			const one = await api(g, 'GET', `/v1/keys/${c.json.id}`, { who: 'read' });
			assert.equal(one.status, 200);
			assert.ok(!holdsSecret(readText(g.proc.err)));
		} finally {
			await stopProcess(g.proc);
		}
		assert.equal((await g.proc.exited).code, 0);
		assert.ok(!fs.existsSync(g.sock));
	});

	test('a socket directory others may write to refuses the start', async () => {
		const g = { dir: makeTempDir('admin-trust') };
		const run = path.join(g.dir, 'run');
		fs.mkdirSync(run);
		fs.chmodSync(run, 0o777);
		const conf = path.join(g.dir, 'keyauth.conf');
		fs.writeFileSync(conf, `store = { backend = "file"; path = "${g.dir}/keys.db"; };
routes = ( { name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:9"; } );
admin = { socket = "${run}/a.sock"; keyauthctl = "${KEYAUTHCTL}"; user = ""; };
`, { mode: 0o600 });
		const p = startProcess('keyauth-admin', KEYAUTH_ADMIN, ['-c', conf], { dir: g.dir });
		const ex = await p.exited;
		assert.equal(ex.code, 1);
		assert.match(readText(p.err), /event=start_failed .*writable by others/);
		assert.ok(!fs.existsSync(path.join(run, 'a.sock')));
		await stopProcess(p);
	});
});

// keyauthctl is what the daemon runs; a sanity check that the test uses the
// same one the rest of the suite does.
test('the keyauthctl under test answers', async () => {
	const r = await ctl('/dev/null', ['--version']);
	assert.equal(r.status, 0);
});
