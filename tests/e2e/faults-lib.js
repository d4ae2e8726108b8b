// SPDX-License-Identifier: Apache-2.0
// Helpers of faults.test.js (issue 7, "Faults end to end"): a steady,
// bounded load through HAProxy that records every request, the checks that
// nothing unauthenticated got through it, and the ways a key store is
// broken and mended. Processes and temp dirs go through lib.js; keys only
// travel in headers of requests made here (never argv, never printed).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { delay, redact } from './lib.js';

/* ---- the load ------------------------------------------------------------------- */

/* Request kinds. valid: a key that stays valid for the whole run (200);
 * the others must never pass (401). */
export const KINDS = {
	valid: { status: 200 },
	invalid: { status: 401 },
	missing: { status: 401 },
	revoked: { status: 401 },
};
// Per client, in turn: two bad requests in every five.
const PATTERN = ['valid', 'invalid', 'valid', 'missing', 'valid', 'revoked', 'valid', 'valid', 'invalid', 'valid'];

/* One GET through HAProxy. <headers> may hold a key. Resolves to
 * { status, body } or { error }; never rejects. */
export function request(port, urlPath, headers, { agent, timeout = 10000 } = {}) {
	return new Promise((resolve) => {
		const rq = http.request({ host: '127.0.0.1', port, path: urlPath, method: 'GET', headers, agent }, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.once('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
			res.once('error', (e) => resolve({ error: `${e.code || ''} ${e.message}` }));
		});
		rq.setTimeout(timeout, () => rq.destroy(new Error(`no answer within ${timeout} ms`)));
		rq.once('error', (e) => resolve({ error: `${e.code || ''} ${e.message}` }));
		rq.end();
	});
}

/*
 * <clients> loops, each sending one request at a time through HAProxy at
 * <port> (so at most <clients> in flight), kinds in PATTERN order, until
 * stop(). <keys> = { valid: [keys], invalid, revoked }. Every request carries
 * X-Fault-Seq and X-Fault-Kind, which HAProxy passes upstream, so the
 * provider's record says which requests reached it. <keepAlive>: reuse
 * connections (false: one connection per request).
 * Returns { records, stop(): Promise }, records[i] = { seq, kind, t0, t1,
 * status | error }.
 */
export function startLoad(port, keys, { clients = 8, keepAlive = true } = {}) {
	const agent = new http.Agent({ keepAlive, maxSockets: clients });
	const records = [];
	let running = true;
	let seq = 0;
	const loop = async (c) => {
		let i = c;
		while (running) {
			const kind = PATTERN[i++ % PATTERN.length];
			const rec = { seq: ++seq, kind, t0: Date.now() };
			const headers = { 'X-Fault-Seq': String(rec.seq), 'X-Fault-Kind': kind };
			if (kind === 'valid')
				headers['X-API-Key'] = keys.valid[rec.seq % keys.valid.length];
			else if (kind !== 'missing')
				headers['X-API-Key'] = keys[kind];
			const r = await request(port, '/openai/v1/models', headers, { agent });
			rec.t1 = Date.now();
			if (r.error)
				rec.error = redact(r.error);
			else
				rec.status = r.status;
			records.push(rec);
		}
	};
	const loops = Array.from({ length: clients }, (_, c) => loop(c));
	return {
		records,
		async stop() {
			running = false;
			await Promise.all(loops);
			agent.destroy();
		},
	};
}

/* Waits (polling, bounded) until <records> holds one matching <pred>. */
export async function waitRecord(records, what, pred, timeout = 10000) {
	const end = Date.now() + timeout;
	for (;;) {
		const r = records.find(pred);
		if (r)
			return r;
		if (Date.now() >= end)
			throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
		await delay(20);
	}
}

/* "kind status" -> count, for reports and deepEqual. */
export function tallyRecords(records) {
	const out = {};
	for (const r of records) {
		const k = `${r.kind} ${r.error ? 'error' : r.status}`;
		out[k] = (out[k] || 0) + 1;
	}
	return out;
}

/*
 * Nothing unauthenticated got through: no request of a bad kind was answered
 * 200, the provider saw only requests of the valid kind, and only those that
 * the client saw answered 200 (a 401 or 503 never reached it). <upstream> is
 * the provider's /__requests list.
 */
export function assertNoBypass(records, upstream, what) {
	const passed = records.filter((r) => r.kind !== 'valid' && r.status === 200);
	assert.deepEqual(passed.map((r) => `${r.seq} ${r.kind}`), [], `${what}: requests without a valid key answered 200`);
	const seen = new Map();
	for (const rq of upstream) {
		const s = rq.headers['x-fault-seq'];
		if (s !== undefined)
			seen.set(Number(s), rq.headers['x-fault-kind']);
		assert.ok(!('x-api-key' in rq.headers), `${what}: a client key header reached upstream`);
	}
	const badUp = [...seen.values()].filter((k) => k !== 'valid');
	assert.deepEqual(badUp, [], `${what}: upstream got requests without a valid key`);
	const deniedUp = records.filter((r) => r.status !== undefined && r.status !== 200 && seen.has(r.seq));
	assert.deepEqual(deniedUp.map((r) => `${r.seq} ${r.kind} ${r.status}`), [], `${what}: refused requests reached upstream`);
}

/* ---- store faults ------------------------------------------------------------------ */

/* True if python3 can call renameat2 (used to swap a directory in). */
export function canExchange() {
	const r = spawnSync('python3', ['-c', 'import ctypes; ctypes.CDLL(None).renameat2'], { timeout: 10000 });
	return r.status === 0;
}

/* Atomically swaps the names <a> and <b> (renameat2 RENAME_EXCHANGE), so
 * that the store path never stops existing; throws on failure. */
export function exchange(a, b) {
	const py = 'import ctypes,sys\n' +
		'l=ctypes.CDLL(None,use_errno=True)\n' +
		'r=l.renameat2(-100,sys.argv[1].encode(),-100,sys.argv[2].encode(),2)\n' +
		'sys.exit(0 if r==0 else ctypes.get_errno())\n';
	const r = spawnSync('python3', ['-c', py, a, b], { timeout: 10000 });
	if (r.status !== 0)
		throw new Error(`renameat2(RENAME_EXCHANGE) failed: errno ${r.status} ${r.stderr}`);
}

/* Replaces <p> by <data> the way keyauthctl does: temp file, rename. */
export function replaceFile(p, data) {
	const tmp = path.join(path.dirname(p), `.fault-restore-${process.pid}`);
	fs.writeFileSync(tmp, data, { mode: 0o600 });
	fs.renameSync(tmp, p);
}

/* Overwrites the first bytes of <p> in place (one pwrite, size unchanged)
 * with <bytes>. */
export function overwriteHead(p, bytes) {
	const fd = fs.openSync(p, 'r+');
	try {
		fs.writeSync(fd, bytes, 0, bytes.length, 0);
	} finally {
		fs.closeSync(fd);
	}
}

/* Capabilities in effect for <pid> (a BigInt mask), or null. */
export function capEff(pid) {
	const m = /CapEff:\s*([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
	return m ? BigInt(`0x${m[1]}`) : null;
}
export const CAP_DAC_OVERRIDE = 1n;
export const CAP_DAC_READ_SEARCH = 2n;

/* ---- tmpfs ------------------------------------------------------------------------ */

/* Mounts a tmpfs of <size> at <dir>. Returns '' or the reason it could not. */
export function mountTmpfs(dir, size) {
	const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { encoding: 'utf8', timeout: 10000 });
	if (r.error)
		return r.error.message;
	return r.status === 0 ? '' : `mount exited ${r.status}: ${(r.stderr || '').trim()}`;
}

export function umount(dir) {
	const r = spawnSync('umount', [dir], { encoding: 'utf8', timeout: 10000 });
	return r.status === 0 ? '' : `umount exited ${r.status}: ${(r.stderr || '').trim()}`;
}

/* Fills the file system of <dir> with <dir>/<name> until ENOSPC; returns the
 * bytes written. */
export function fillUp(dir, name = 'filler') {
	const fd = fs.openSync(path.join(dir, name), 'w');
	const chunk = Buffer.alloc(4096, 0x5a);
	let total = 0;
	try {
		for (;;) {
			try {
				total += fs.writeSync(fd, chunk);
			} catch (e) {
				if (e.code === 'ENOSPC')
					break;
				throw e;
			}
		}
		// Top off the last partial block.
		for (let n = 2048; n >= 1; n >>= 1) {
			try {
				total += fs.writeSync(fd, chunk, 0, n);
			} catch (e) {
				if (e.code !== 'ENOSPC')
					throw e;
			}
		}
	} finally {
		fs.closeSync(fd);
	}
	return total;
}
