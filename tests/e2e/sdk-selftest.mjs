// SPDX-License-Identifier: Apache-2.0
// Self-test of vendors.js and sdk-clients.js, without HAProxy: every official
// SDK talks to the stand-in directly with the provider secret as its API key,
// so each SDK's own carrier must be one its vendor accepts. Checks a plain
// call, a stream (events arrive one by one, spaced), the SDK's classification
// of 401/403/429/503 in the vendor's own error bodies (forced with the
// stand-in's x-standin-status switch), that a 429 is not retried, a wrong key,
// a client key (ka_...) and a foreign credential header. Prints a table;
// exits non-zero on any failure. Kills the stand-in by its pid at the end.
//
// usage: node tests/e2e/sdk-selftest.mjs
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SDKS } from './sdk-clients.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const INTERVAL = 100;
const EVENTS = 5;
const SECRET = `sk-standin-${crypto.randomBytes(12).toString('hex')}`;
const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const CLIENT_KEY = `ka_${Array.from(crypto.randomBytes(49), (b) => B62[b % 62]).join('')}`;

const child = spawn(process.execPath, [path.join(HERE, 'vendors.js'), '0'], {
	env: { ...process.env, STANDIN_SECRET: SECRET, STANDIN_INTERVAL_MS: String(INTERVAL) },
	stdio: ['ignore', 'pipe', 'inherit'],
});
const stopChild = () => {
	try {
		process.kill(child.pid, 'SIGTERM');
	} catch { /* gone */ }
};
process.on('exit', stopChild);

let out = '';
const port = await new Promise((resolve, reject) => {
	const t = setTimeout(() => reject(new Error('vendors.js did not start')), 5000);
	child.stdout.on('data', (d) => {
		out += d;
		const m = /listening (\d+)/.exec(out);
		if (m) {
			clearTimeout(t);
			resolve(Number(m[1]));
		}
	});
	child.on('exit', (c) => reject(new Error(`vendors.js exited ${c}`)));
});
const origin = `http://127.0.0.1:${port}`;
const requests = async () => (await fetch(`${origin}/__requests`)).json();
const reset = () => fetch(`${origin}/__reset`, { method: 'POST' });

/* One check: run fn, return 'ok' or 'FAIL: why'. */
async function check(fn) {
	try {
		const r = await fn();
		return r === true || r === undefined ? 'ok' : `FAIL: ${r}`;
	} catch (e) {
		return `FAIL: ${e?.constructor?.name} ${String(e?.message).slice(0, 120)}`;
	}
}

/* Expect fn to throw; hand the error to verdict(err) -> true | reason. */
async function expectError(fn, verdict) {
	try {
		await fn();
	} catch (e) {
		return verdict(e);
	}
	return 'no error thrown';
}

const rows = [];
let failures = 0;
const COLS = ['carrier', 'call', 'stream', '401', '403', '429', '503', 'stream429', 'noRetry', 'wrongKey', 'clientKey', 'foreign'];

for (const [name, sdk] of Object.entries(SDKS)) {
	const base = sdk.standinBase(origin);
	const good = sdk.make({ baseURL: base, apiKey: SECRET });
	const row = { sdk: sdk.label };
	await reset();

	row.call = await check(async () => {
		const t = await sdk.call(good);
		return /Hello from the stand-in/.test(t) || `text ${JSON.stringify(t)}`;
	});
	row.carrier = await check(async () => {
		const seen = (await requests()).at(-1);
		const want = `header:${sdk.carrier.header}`;
		if (!seen?.credential?.ok)
			return `credential not accepted (${JSON.stringify(seen?.credential)})`;
		return seen.credential.carrier === want || `SDK used ${seen.credential.carrier}, wrapper says ${want}`;
	});
	if (row.carrier === 'ok')
		row.carrier = `${sdk.carrier.header}${sdk.carrier.scheme ? ' (Bearer)' : ''}`;

	row.stream = await check(async () => {
		const t0 = performance.now();
		const at = [];
		const chunks = await sdk.stream(good, () => at.push(performance.now() - t0), { events: EVENTS });
		if (chunks.length !== EVENTS)
			return `${chunks.length} chunks, want ${EVENTS}`;
		if (chunks.join('') !== Array.from({ length: EVENTS }, (_, i) => `chunk ${i + 1}/${EVENTS}. `).join(''))
			return `chunks ${JSON.stringify(chunks)}`;
		// Arrived one by one, not all at the end: gaps close to INTERVAL.
		for (let i = 1; i < at.length; i++) {
			const gap = at[i] - at[i - 1];
			if (gap < INTERVAL * 0.5)
				return `gap ${i} only ${gap.toFixed(0)} ms (buffered?)`;
		}
		row.streamSpan = `${(at.at(-1) - at[0]).toFixed(0)}ms`;
		return true;
	});

	const forced = (status, want, streamed = false) => check(() => expectError(async () => {
		const c = sdk.make({ baseURL: base, apiKey: SECRET, headers: { 'x-standin-status': String(status) } });
		if (streamed)
			await sdk.stream(c, null, { events: 2 });
		else
			await sdk.call(c);
	}, (e) => {
		const cls = sdk.classify(e);
		if (cls !== want)
			return `classified ${cls} (${e?.constructor?.name} status ${sdk.status(e)}), want ${want}`;
		const m = sdk.message(e);
		// Mistral's real 401 body is {"detail":"Unauthorized"}.
		const wantMsg = name === 'mistral' && status === 401 ? 'Unauthorized' : `stand-in ${sdk.vendor}: forced status ${status}`;
		return m === wantMsg || `message ${JSON.stringify(m)}, want ${JSON.stringify(wantMsg)}`;
	}));
	row['401'] = await forced(401, 'auth');
	row['403'] = await forced(403, 'permission');
	await reset();
	row['429'] = await forced(429, 'rate_limit');
	row.noRetry = await check(async () => {
		const n = (await requests()).length;
		return n === 1 || `${n} requests for one 429`;
	});
	row['503'] = await forced(503, 'unavailable');
	row.stream429 = await forced(429, 'rate_limit', true);

	row.wrongKey = await check(() => expectError(
		() => sdk.call(sdk.make({ baseURL: base, apiKey: `${SECRET}-wrong` })),
		(e) => {
			// Gemini answers a wrong API key with 400 INVALID_ARGUMENT, the others with 401.
			const want = sdk.vendor === 'gemini' ? 400 : 401;
			const st = sdk.status(e);
			if (st !== want)
				return `status ${st}, want ${want}`;
			if (want === 401 && sdk.classify(e) !== 'auth')
				return `classified ${sdk.classify(e)}`;
			return typeof sdk.message(e) === 'string' || 'no message';
		}));
	// The SDK given a client key (what a gateway that forwards it would send):
	// refused as a leak, not as a wrong key.
	row.clientKey = await check(() => expectError(
		() => sdk.call(sdk.make({ baseURL: base, apiKey: CLIENT_KEY })),
		(e) => {
			const m = sdk.message(e) || '';
			if (sdk.status(e) !== 400)
				return `status ${sdk.status(e)}, want 400`;
			if (m.includes(CLIENT_KEY) || m.includes(SECRET))
				return 'the refusal echoed a key';
			return m.includes(`"${sdk.carrier.header}"`) || `message ${JSON.stringify(m)}`;
		}));
	row.foreign = await check(() => expectError(
		() => sdk.call(sdk.make({ baseURL: base, apiKey: SECRET, headers: { 'proxy-authorization': 'Basic Zm9vOmJhcg==' } })),
		(e) => {
			const m = sdk.message(e) || '';
			return (sdk.status(e) === 400 && m.includes('"proxy-authorization"')) || `status ${sdk.status(e)} message ${JSON.stringify(m)}`;
		}));

	for (const c of COLS) {
		if (String(row[c]).startsWith('FAIL'))
			failures++;
	}
	rows.push(row);
}

// Never printed: the secret and the client key; make sure no check did.
const width = (c) => Math.max(c.length, ...rows.map((r) => String(c === 'stream' && r.stream === 'ok' ? `ok ${r.streamSpan}` : r[c] ?? '').length));
const cols = ['sdk', ...COLS];
const cell = (r, c) => (c === 'stream' && r.stream === 'ok' ? `ok ${r.streamSpan}` : String(r[c] ?? ''));
const short = (s) => (s.startsWith('FAIL') ? 'FAIL' : s);
console.log(cols.map((c) => c.padEnd(c === 'sdk' || c === 'carrier' || c === 'stream' ? width(c) : Math.max(c.length, 4))).join(' | '));
for (const r of rows)
	console.log(cols.map((c) => short(cell(r, c)).padEnd(c === 'sdk' || c === 'carrier' || c === 'stream' ? width(c) : Math.max(c.length, 4))).join(' | '));
for (const r of rows) {
	for (const c of COLS) {
		if (String(r[c]).startsWith('FAIL'))
			console.log(`${r.sdk} ${c}: ${r[c]}`);
	}
}
console.log(failures ? `${failures} check(s) failed` : `all ${rows.length * COLS.length} checks passed (stream interval ${INTERVAL} ms, ${EVENTS} events)`);
stopChild();
process.exit(failures ? 1 : 0);
