// SPDX-License-Identifier: Apache-2.0
// Faults end to end (issue 7). For each HAProxy binary (Debian's 2.6 always,
// 3.2 when scripts/haproxy32.sh made it available, else a loud SKIP line) a
// gateway (stand-in provider, keyauthd with two workers and a control socket,
// HAProxy master-worker with the `keyauthctl haproxy` rendering) takes a
// steady load of 8 concurrent clients (faults-lib.js: two requests in five
// carry an invalid, a revoked or no key) while faults are applied:
//
// - keyauthd SIGKILLed, then restarted: every request made while it is down
//   gets 503 and none reaches the provider; service comes back without any
//   HAProxy reload; both counts asserted and reported;
// - 100 SIGHUP reloads and 100 store replacements (keyauthctl key create and
//   revoke): zero failed or missing verdicts, zero 5xx, each sampled change
//   visible within 1 s;
// - HAProxy reloaded 3 times (SIGUSR2 to the master), and a standalone
//   HAProxy replaced 3 times by a new process started with -sf: no request
//   passes without a verdict; what each handover costs (503s, connection
//   resets) is measured and reported;
// - the store made corrupt, truncated, empty, a directory, unreadable: the
//   previous key set keeps serving, one store_rejected line each, recovery
//   when the file is mended (as root, the agent runs without
//   CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, through setpriv, so that mode 000
//   stops it; without setpriv that case is skipped, loudly).
// In every case: no request without a valid key is answered 200 and the
// provider sees only requests with a valid key that were answered 200.
//
// Once, without HAProxy: disk full while keyauthctl writes (a 64 KiB tmpfs
// as the store directory; root only, skipped loudly if mount is refused).
//
// Knobs: FAULTS_KEEP=1 keeps a copy of each gateway's directory (it holds keys).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
	KEYAUTHD, PROVIDER_JS, addSecret, announcedPort, childPids, countLines, ctl, delay, failIfExited,
	filesUnder, forEachHaproxy, freePort, holdsSecret, listening, makeTempDir, readText, redact,
	reloadableHaproxy, removeTempDir, run, startProcess, startRenderedHaproxy, stopProcess, timeLimit,
	waitFor,
} from './lib.js';
import {
	CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, assertNoBypass, canExchange, capEff, exchange, fillUp,
	mountTmpfs, overwriteHead, replaceFile, request, startLoad, tallyRecords, umount, waitRecord,
} from './faults-lib.js';

const credential = 'provider-secret-faults';
const isRoot = process.getuid() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

function confText(g, { store = g.store, dir = g.dir } = {}) {
	return `# keyauth faults test configuration (generated)
listen = [ "127.0.0.1:${g.agentPort}" ];
allow_plain_tcp = true;
workers = 2;
pid_file = "${dir}/keyauthd.pid";
control_socket = "${dir}/control.sock";
store = { backend = "file"; path = "${store}"; };
log = { level = "info"; target = "stderr"; };
routes = (
	{ name = "openai"; type = "provider"; context = "/openai"; upstream = "127.0.0.1:${g.providerPort}";
	  security = { authentication = "apiKey"; key_name = "X-API-Key"; key_location = "header"; }; }
);
`;
}

/* keyauthctl key create --json: the key (registered as a secret) and its id. */
async function createKey(conf, logFile, label, { route = 'openai' } = {}) {
	const r = await ctl(conf, ['key', 'create', '--route', route, '--owner', `faults-${label}`, '--json'], { logFile });
	if (r.status !== 0)
		throw new Error(`keyauthctl key create failed (exit ${r.status}): ${redact(r.stderr)}`);
	const o = JSON.parse(r.stdout);
	return { key: addSecret(`faults-${label}`, o.key), id: o.id };
}

async function revokeKey(g, id) {
	const r = await ctl(g.conf, ['key', 'revoke', id], { logFile: g.ctlLog });
	if (r.status !== 0)
		throw new Error(`keyauthctl key revoke failed (exit ${r.status}): ${redact(r.stderr)}`);
}

/* keyauthd, under setpriv without the DAC override capabilities when root
 * (so that a mode-000 store is unreadable to it); same pid either way. */
async function startAgent(g, name) {
	const args = ['-c', g.conf];
	const p = g.dropDac
		? startProcess(name, 'setpriv', ['--bounding-set', '-dac_override,-dac_read_search', '--', KEYAUTHD, ...args], { dir: g.dir })
		: startProcess(name, KEYAUTHD, args, { dir: g.dir });
	g.procs.push(p);
	await waitFor(`${name} to start`, () => {
		failIfExited(p);
		return /event=started/.test(readText(p.err));
	}, { timeout: 10000 });
	await waitFor(`${name} to accept connections`, () => listening(p, g.agentPort), { timeout: 5000 });
	return p;
}

async function startGateway(hap) {
	const g = { hap, procs: [] };
	g.dir = makeTempDir(`faults-${hap.label}`);
	g.hapDir = path.join(g.dir, 'haproxy');
	fs.mkdirSync(g.hapDir);
	g.ctlLog = path.join(g.dir, 'keyauthctl.log');
	g.conf = path.join(g.dir, 'keyauth.conf');
	g.store = path.join(g.dir, 'keys.db');
	g.hapBin = reloadableHaproxy(hap.bin, g.dir).bin;
	g.dropDac = isRoot && hasSetpriv;

	g.provider = startProcess('provider', process.execPath, [PROVIDER_JS, '0'], { dir: g.dir });
	g.procs.push(g.provider);
	g.providerPort = await waitFor('the provider to listen', () => announcedPort(g.provider), { timeout: 10000 });
	g.agentPort = await freePort();
	g.gwPort = await freePort();
	fs.writeFileSync(g.conf, confText(g));

	const v = [];
	for (let i = 0; i < 3; i++)
		v.push((await createKey(g.conf, g.ctlLog, `valid${i}@${hap.label}`)).key);
	const rv = await createKey(g.conf, g.ctlLog, `revoked@${hap.label}`);
	await revokeKey(g, rv.id);
	const scratch = path.join(g.dir, 'scratch.conf');
	fs.writeFileSync(scratch, confText(g, { store: path.join(g.dir, 'scratch-keys.db') }));
	const inv = await createKey(scratch, g.ctlLog, `invalid@${hap.label}`);
	g.keys = { valid: v, revoked: rv.key, invalid: inv.key };

	g.agent = await startAgent(g, 'keyauthd');

	await startRenderedHaproxy(g, hap, { env: { KEYAUTH_OPENAI_CREDENTIAL: credential }, bin: g.hapBin });
	await waitFor('a first valid request through HAProxy and keyauthd', async () =>
		(await request(g.gwPort, '/openai/v1/models', { 'X-API-Key': v[0] })).status === 200,
	{ timeout: 15000, interval: 100 });
	return g;
}

async function upstream(g) {
	return (await fetch(`http://127.0.0.1:${g.providerPort}/__requests`, { signal: AbortSignal.timeout(10000) })).json();
}

async function resetUpstream(g) {
	await fetch(`http://127.0.0.1:${g.providerPort}/__reset`, { method: 'POST', signal: AbortSignal.timeout(10000) });
}

/* Status of one request with <key> (undefined: none) through HAProxy. */
async function statusWith(g, key) {
	const r = await request(g.gwPort, '/openai/v1/models', key === undefined ? {} : { 'X-API-Key': key });
	return r.error ? `error ${r.error}` : r.status;
}

/* Polls until a request with <key> gets <want>; returns the delay in ms. */
async function visibleWithin(g, key, want, what) {
	const t0 = Date.now();
	await waitFor(what, async () => (await statusWith(g, key)) === want, { timeout: 5000, interval: 10 });
	return Date.now() - t0;
}

/* Records whose request was made entirely inside [from, to]. */
const within = (records, from, to) => records.filter((r) => r.t0 >= from && r.t1 <= to);

/* Every record's status is its kind's expected one (no 5xx, no error). */
function assertAllExpected(records, what) {
	const want = { valid: 200, invalid: 401, missing: 401, revoked: 401 };
	const bad = records.filter((r) => r.error || r.status !== want[r.kind]);
	assert.deepEqual(bad.slice(0, 10).map((r) => `${r.seq} ${r.kind} ${r.error || r.status}`), [],
		`${what}: ${bad.length} of ${records.length} requests without their expected status (${JSON.stringify(tallyRecords(records))})`);
}

/*
 * An HAProxy handover: each request got a verdict or failed closed, nothing
 * else (valid -> 200 or 503; bad -> 401 or 503). Connection errors (the
 * client's connection reset while HAProxy hands over) are no verdict and no
 * pass; they and the 503s are reported by the caller and must stay rare.
 */
function assertHandover(recs) {
	const odd = recs.filter((r) => !r.error && !(r.status === 503 ||
		r.status === (r.kind === 'valid' ? 200 : 401)));
	assert.deepEqual(odd.map((r) => `${r.seq} ${r.kind} ${r.status}`), [], 'unexpected statuses');
	const s503 = recs.filter((r) => r.status === 503).length;
	const errors = recs.filter((r) => r.error).length;
	assert.ok(s503 + errors <= recs.length / 10, `503s (${s503}) and connection errors (${errors}) over 10% of ${recs.length}`);
}

const agentLines = (g, re) => countLines(g.agent.err, re);
const hapReloadLines = (g) => countLines(g.haproxy.out, /Reloading HAProxy/) + countLines(g.haproxy.err, /Reloading HAProxy/);

const hapLoadedLines = (g) => countLines(g.haproxy.out, /Loading success/) + countLines(g.haproxy.err, /Loading success/);

forEachHaproxy('faults on HAProxy', { timeout: 180000, tag: 'faults', keepEnv: 'FAULTS_KEEP' }, startGateway, (ctx) => {
	const { hap, V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} keyauthd SIGKILLed under load: every request while it is down -> 503, none upstream; restarted -> served again, HAProxy untouched`, async (t) => {
		const master = g.haproxy.pid;
		const workers0 = childPids(master);
		const reloads0 = hapReloadLines(g);
		await resetUpstream(g);
		const load = startLoad(g.gwPort, g.keys);
		let tDead, tUp, tBack;
		try {
			await waitRecord(load.records, 'a first 200 under load', (r) => r.status === 200);
			g.agent.exited.then(() => { tDead = Date.now(); });
			process.kill(g.agent.pid, 'SIGKILL');
			await timeLimit(g.agent.exited, 5000, `keyauthd (pid ${g.agent.pid}) still runs 5 s after SIGKILL`);
			await waitRecord(load.records, 'a first 503 with the agent killed', (r) => r.t0 >= tDead && r.status === 503);
			// Keep it down until at least 20 requests failed closed.
			await waitFor('20 requests made while the agent is down', () =>
				within(load.records, tDead, Date.now()).length >= 20, { timeout: 20000, interval: 20 });
			tUp = Date.now();
			g.agent = await startAgent(g, 'keyauthd-restarted');
			const back = await waitRecord(load.records, 'a valid request served after the restart',
				(r) => r.t0 >= tUp && r.kind === 'valid' && r.status === 200, 20000);
			tBack = back.t1;
			// One more second of load after recovery.
			await delay(1000);
		} finally {
			await load.stop();
		}
		const recs = load.records;
		const gap = within(recs, tDead, tUp);
		const after1 = recs.filter((r) => r.t0 >= tBack + 200);
		const tally = tallyRecords(gap);
		const line = `${V} agent down ${tUp - tDead} ms: ${gap.length} requests, ${JSON.stringify(tally)}; ` +
			`service back ${tBack - tUp} ms after the restart began; ${recs.length} requests in all`;
		t.diagnostic(line);
		console.log(`# ${line}`);
		assert.ok(gap.length >= 20, `requests while the agent was down: ${gap.length}`);
		assert.deepEqual(gap.filter((r) => r.status !== 503).map((r) => `${r.seq} ${r.kind} ${r.error || r.status}`), [],
			'requests made while the agent was down got something else than 503');
		const up = await upstream(g);
		const gapSeqs = new Set(gap.map((r) => r.seq));
		assert.equal(up.filter((rq) => gapSeqs.has(Number(rq.headers['x-fault-seq']))).length, 0,
			'requests made while the agent was down reached upstream');
		assertNoBypass(recs, up, 'SIGKILL');
		assert.ok(after1.length > 0, 'requests after recovery');
		assertAllExpected(after1, 'after recovery');
		assert.equal(g.haproxy.pid, master, 'HAProxy master unchanged');
		assert.deepEqual(childPids(master).sort(), workers0.sort(), 'HAProxy workers unchanged');
		assert.equal(hapReloadLines(g), reloads0, 'HAProxy was reloaded');
	});

	test(`${V} 100 SIGHUP reloads and 100 store replacements under load: zero failed verdicts, changes visible within 1 s`, async (t) => {
		await resetUpstream(g);
		const hup0 = agentLines(g, /event=reload result=ok/);
		const load = startLoad(g.gwPort, g.keys);
		const samples = [];
		let hups = 0;
		let replacements = 0;
		const t0 = Date.now();
		try {
			await waitRecord(load.records, 'a first 200 under load', (r) => r.status === 200);
			let fresh = null;
			for (let i = 0; i < 100; i++) {
				process.kill(g.agent.pid, 'SIGHUP');
				hups++;
				await waitFor(`reload ${i + 1} logged`, () => agentLines(g, /event=reload result=ok/) >= hup0 + hups,
					{ timeout: 5000, interval: 5 });
				// Store replacement: create on even turns, revoke that key on odd ones.
				const sample = i % 20 < 2;
				if (fresh === null) {
					fresh = await createKey(g.conf, g.ctlLog, `fresh${i}@${hap.label}`);
					replacements++;
					if (sample)
						samples.push(['create', await visibleWithin(g, fresh.key, 200, `key ${i} accepted`)]);
				} else {
					await revokeKey(g, fresh.id);
					replacements++;
					if (sample)
						samples.push(['revoke', await visibleWithin(g, fresh.key, 401, `key ${i - 1} refused`)]);
					fresh = null;
				}
			}
			await delay(300);
		} finally {
			await load.stop();
		}
		const recs = load.records;
		const line = `${V} ${hups} SIGHUPs, ${replacements} store replacements in ${Date.now() - t0} ms; ` +
			`${recs.length} requests ${JSON.stringify(tallyRecords(recs))}; visible after (ms): ${samples.map((s) => s.join(' ')).join(', ')}`;
		t.diagnostic(line);
		console.log(`# ${line}`);
		assert.equal(agentLines(g, /event=reload result=ok/), hup0 + 100, 'reloads logged');
		assert.equal(agentLines(g, /event=reload result=rejected/), 0, 'rejected reloads');
		assertAllExpected(recs, 'under SIGHUP and store replacements');
		assertNoBypass(recs, await upstream(g), 'SIGHUP/store');
		assert.ok(samples.length >= 8, `samples: ${samples.length}`);
		for (const [what, ms] of samples)
			assert.ok(ms <= 1000, `${what} visible after ${ms} ms (> 1000)`);
		assert.ok(g.agent.isRunning(), 'keyauthd still runs');
	});

	test(`${V} HAProxy reloaded 3 times under load: no request passes without a verdict`, async (t) => {
		await resetUpstream(g);
		const master = g.haproxy.pid;
		const reloads0 = hapReloadLines(g);
		const load = startLoad(g.gwPort, g.keys, { keepAlive: false });
		const took = [];
		try {
			await waitRecord(load.records, 'a first 200 under load', (r) => r.status === 200);
			for (let i = 0; i < 3; i++) {
				const before1 = new Set(childPids(master));
				const loaded0 = hapLoadedLines(g);
				const t1 = Date.now();
				process.kill(master, 'SIGUSR2');
				// The master ignores a SIGUSR2 that comes before it has
				// finished loading: wait for its "Loading success." too.
				await waitFor(`a new HAProxy worker and the master loaded (reload ${i + 1})`, () =>
					childPids(master).some((p) => !before1.has(p)) && hapLoadedLines(g) > loaded0,
				{ timeout: 15000, interval: 20 });
				const tNew = Date.now();
				await waitRecord(load.records, `a request served after reload ${i + 1}`,
					(r) => r.t0 > tNew && r.status === 200, 10000);
				took.push(Date.now() - t1);
			}
			await delay(500);
		} finally {
			await load.stop();
		}
		const recs = load.records;
		const tally = tallyRecords(recs);
		const errs = tallyRecords(recs.filter((r) => r.error).map((r) => ({ kind: 'error:', error: false, status: r.error })));
		const line = `${V} 3 HAProxy reloads (${took.join(', ')} ms until served by the new worker): ${recs.length} requests ` +
			`${JSON.stringify(tally)}; connection errors: ${JSON.stringify(errs)}`;
		t.diagnostic(line);
		console.log(`# ${line}`);
		assert.ok(g.haproxy.isRunning(), 'the master survived');
		assert.equal(g.haproxy.pid, master);
		assert.equal(hapReloadLines(g), reloads0 + 3, 'reloads logged by the master');
		assertNoBypass(recs, await upstream(g), 'HAProxy reload');
		assertHandover(recs);
	});

	test(`${V} HAProxy replaced 3 times with -sf under load: no request passes without a verdict`, async (t) => {
		// A second, standalone HAProxy (no master) on its own port, from
		// the same rendering, replaced by a new process with -sf <old>.
		const dir2 = path.join(g.dir, 'haproxy-sf');
		fs.mkdirSync(dir2);
		const port2 = await freePort();
		const r = await ctl(g.conf, ['haproxy', '--out', dir2, '--bind', `127.0.0.1:${port2}`,
			'--haproxy-version', hap.render], { logFile: g.ctlLog });
		assert.equal(r.status, 0, `keyauthctl haproxy: ${redact(r.stderr)}`);
		const cfg2 = path.join(dir2, 'haproxy-keyauth.cfg');
		const env = { ...process.env, KEYAUTH_OPENAI_CREDENTIAL: credential };
		let cur = startProcess('haproxy-sf0', g.hapBin, ['-db', '-f', cfg2], { dir: g.dir, env });
		g.procs.push(cur);
		await waitFor('the standalone HAProxy to serve', async () =>
			(await request(port2, '/openai/v1/models', { 'X-API-Key': g.keys.valid[0] })).status === 200,
		{ timeout: 15000, interval: 100 });
		await resetUpstream(g);
		const load = startLoad(port2, g.keys, { keepAlive: false });
		const took = [];
		try {
			await waitRecord(load.records, 'a first 200 under load', (x) => x.status === 200);
			for (let i = 1; i <= 3; i++) {
				const old = cur;
				const t1 = Date.now();
				cur = startProcess(`haproxy-sf${i}`, g.hapBin, ['-db', '-f', cfg2, '-sf', String(old.pid)], { dir: g.dir, env });
				g.procs.push(cur);
				await timeLimit(old.exited, 15000, `HAProxy ${old.pid} still runs 15 s after -sf`);
				assert.ok(cur.isRunning(), `the new HAProxy (-sf, step ${i}) exited: ${redact(readText(cur.err).slice(-300))}`);
				const tOld = Date.now();
				await waitRecord(load.records, `a request served after -sf step ${i}`,
					(x) => x.t0 > tOld && x.status === 200, 10000);
				took.push(tOld - t1);
			}
			await delay(500);
		} finally {
			await load.stop();
			await stopProcess(cur);
		}
		const recs = load.records;
		const errs = tallyRecords(recs.filter((x) => x.error).map((x) => ({ kind: 'error:', error: false, status: x.error })));
		const line = `${V} 3 HAProxy -sf replacements (${took.join(', ')} ms until the old process exited): ` +
			`${recs.length} requests ${JSON.stringify(tallyRecords(recs))}; connection errors: ${JSON.stringify(errs)}`;
		t.diagnostic(line);
		console.log(`# ${line}`);
		assertNoBypass(recs, await upstream(g), 'HAProxy -sf');
		assertHandover(recs);
	});

	const FAULTS = [
		{ name: 'corrupt', reason: /./, apply: (s) => overwriteHead(s, Buffer.from([0xc1, 0xc1, 0xc1, 0xc1])) },
		{ name: 'truncated', reason: /./, apply: (s) => fs.truncateSync(s, Math.floor(fs.statSync(s).size / 2)) },
		{ name: 'emptied', reason: /empty/, apply: (s) => fs.truncateSync(s, 0) },
		{ name: 'replaced by a directory', reason: /directory/,
		  skip: () => (canExchange() ? '' : 'python3 with renameat2 is needed to swap a directory in atomically'),
		  apply: (s) => { fs.mkdirSync(`${s}.dir`); exchange(`${s}.dir`, s); },
		  mend: (s) => { exchange(`${s}.dir`, s); fs.rmdirSync(`${s}.dir`); } },
		{ name: 'unreadable', reason: /denied/,
		  skip: () => {
		  	if (!isRoot)
		  		return '';
		  	if (!hasSetpriv)
		  		return 'running as root without setpriv: mode 000 does not stop root from reading';
		  	const c = capEff(g.agent.pid);
		  	return c !== null && (c & ((1n << CAP_DAC_OVERRIDE) | (1n << CAP_DAC_READ_SEARCH))) === 0n ? ''
		  		: 'keyauthd still has CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH: mode 000 would not stop it';
		  },
		  apply: (s) => fs.chmodSync(s, 0o000), mend: (s) => fs.chmodSync(s, 0o600) },
	];

	test(`${V} store corrupt, truncated, emptied, a directory, unreadable: previous keys keep serving, one store_rejected line each, recovery`, async (t) => {
		await resetUpstream(g);
		const good = fs.readFileSync(g.store);
		const load = startLoad(g.gwPort, g.keys);
		const report = [];
		try {
			await waitRecord(load.records, 'a first 200 under load', (r) => r.status === 200);
			for (const f of FAULTS) {
				const why = f.skip ? f.skip() : '';
				if (why) {
					report.push(`${f.name}: SKIPPED (${why})`);
					console.log(`\n#### SKIP ${V} store ${f.name}: ${why} ####\n`);
					continue;
				}
				const keys0 = JSON.parse((await ctl(g.conf, ['stats', '--json'], { logFile: g.ctlLog })).stdout).store.keys;
				const rej0 = agentLines(g, /event=store_rejected where=/);
				const ok0 = agentLines(g, /event=store_loaded /);
				const size0 = fs.statSync(g.agent.err).size;
				f.apply(g.store);
				const ta = Date.now();
				await waitFor(`store ${f.name}: store_rejected logged`, () =>
					agentLines(g, /event=store_rejected where=/) > rej0, { timeout: 3000, interval: 10 });
				const seen = Date.now() - ta;
				// A window with the fault in place: the old set serves, and
				// the rejection is not repeated.
				const th = Date.now();
				await delay(1200);
				const held = within(load.records, th, Date.now());
				assert.ok(held.length > 0, `store ${f.name}: load went on`);
				assertAllExpected(held, `store ${f.name}`);
				assert.equal(agentLines(g, /event=store_rejected where=/), rej0 + 1, `store ${f.name}: store_rejected lines`);
				const st = JSON.parse((await ctl(g.conf, ['stats', '--json'], { logFile: g.ctlLog })).stdout);
				assert.equal(st.store.last_load, 'rejected', `store ${f.name}: stats last_load`);
				assert.equal(st.store.keys, keys0, `store ${f.name}: keys still served`);
				const newLog = readText(g.agent.err).slice(size0).split('\n').filter((l) => /store_rejected/.test(l));
				assert.ok(newLog.some((l) => f.reason.test(l)), `store ${f.name}: reason in the log: ${redact(newLog.join(' | '))}`);
				// Mended.
				if (f.mend)
					f.mend(g.store);
				else
					replaceFile(g.store, good);
				await waitFor(`store ${f.name}: reloaded once mended`, () =>
					agentLines(g, /event=store_loaded /) > ok0, { timeout: 3000, interval: 10 });
				report.push(`${f.name}: rejected after ${seen} ms, ${held.length} requests served meanwhile, ` +
					`log: ${redact(newLog.map((l) => l.replace(/^.*?event=/, 'event=')).join(' | '))}`);
			}
			// Mended means live again: a key created now works within 1 s.
			const k = await createKey(g.conf, g.ctlLog, `after-faults@${hap.label}`);
			report.push(`key created after the faults accepted after ${await visibleWithin(g, k.key, 200, 'a new key accepted')} ms`);
			await delay(200);
		} finally {
			await load.stop();
		}
		for (const l of report) {
			t.diagnostic(`${V} ${l}`);
			console.log(`# ${V} ${l}`);
		}
		assertAllExpected(load.records, 'during store faults');
		assertNoBypass(load.records, await upstream(g), 'store faults');
	});

	test(`${V} no key in any log or file of the run`, async () => {
		for (const p of [...g.procs].reverse())
			await stopProcess(p);
		const leaking = filesUnder(g.dir).filter((f) => holdsSecret(readText(f))).map((f) => path.basename(f));
		assert.deepEqual(leaking, [], 'files holding a key');
	});
});

/* ---- disk full ------------------------------------------------------------------------ */

describe('faults: disk full while keyauthctl writes', { timeout: 60000 }, () => {
	let dir;
	let mnt;
	let mounted = false;

	after(() => {
		if (mounted) {
			const e = umount(mnt);
			if (e)
				console.log(`# WARNING: could not unmount ${mnt}: ${e}`);
		}
		if (dir && !mounted)
			removeTempDir(dir);
	});

	test('store on a full 64 KiB tmpfs: key create/revoke fail clearly, the store stays intact, no temp file left', async (t) => {
		if (!isRoot) {
			console.log('\n#### SKIP disk full: needs root to mount a tmpfs ####\n');
			t.skip('needs root to mount a tmpfs');
			return;
		}
		dir = makeTempDir('faults-diskfull');
		mnt = path.join(dir, 'store');
		fs.mkdirSync(mnt);
		const e = mountTmpfs(mnt, '64k');
		if (e) {
			console.log(`\n#### SKIP disk full: mount refused: ${e} ####\n`);
			t.skip(`mount refused: ${e}`);
			return;
		}
		mounted = true;
		try {
			const g = { agentPort: 9, providerPort: 9 };
			const conf = path.join(dir, 'keyauth.conf');
			const store = path.join(mnt, 'keys.db');
			const log = path.join(dir, 'keyauthctl.log');
			fs.writeFileSync(conf, confText(g, { store, dir }));
			const k1 = await createKey(conf, log, 'full1');
			const k2 = await createKey(conf, log, 'full2');
			const list = async () => {
				const r = await ctl(conf, ['key', 'list', '--json'], { logFile: log });
				assert.equal(r.status, 0, `key list: ${redact(r.stderr)}`);
				return r.stdout;
			};
			const before1 = await list();
			const bytes0 = fs.readFileSync(store);
			const filled = fillUp(mnt);
			t.diagnostic(`tmpfs filled with ${filled} bytes`);

			const auditSize = () => { try { return fs.statSync(path.join(mnt, 'keys.db.audit')).size; } catch { return 0; } };
			const audit0 = auditSize();
			for (const [what, args] of [['key create', ['key', 'create', '--route', 'openai', '--owner', 'faults-full3', '--json']],
				['key revoke', ['key', 'revoke', k1.id]]]) {
				const r = await ctl(conf, args, { logFile: log });
				const msg = redact(r.stderr.trim());
				t.diagnostic(`${what} on a full disk: exit ${r.status}: ${msg}`);
				console.log(`# disk full: ${what}: exit ${r.status}: ${msg}`);
				assert.equal(r.status, 1, `${what}: exit status`);
				assert.match(r.stderr, /no space left|ENOSPC/i, `${what}: a clear message`);
				assert.equal(r.stdout.trim(), '', `${what}: printed no key`);
				assert.ok(fs.readFileSync(store).equals(bytes0), `${what}: the store changed`);
				assert.equal(await list(), before1, `${what}: key list changed`);
				// keys.db.audit is the store's audit log (issue #20), not a
				// temporary file: a failed write adds no entry to it.
				const left = fs.readdirSync(mnt).filter((n) => !['keys.db', 'keys.db.lock', 'keys.db.audit', 'filler'].includes(n));
				assert.deepEqual(left, [], `${what}: files left in the store directory`);
				assert.equal(auditSize(), audit0, `${what}: an audit entry for a write that failed`);
			}
			const chk = await run(KEYAUTHD, ['-t', '-c', conf]);
			assert.equal(chk.status, 0, `keyauthd -t on the store: ${redact(chk.stdout + chk.stderr)}`);
			// Space again: writes work, the old keys are still there.
			fs.rmSync(path.join(mnt, 'filler'));
			const k3 = await createKey(conf, log, 'full3');
			const after1 = JSON.parse(await list());
			const ids = (Array.isArray(after1) ? after1 : after1.keys).map((x) => x.id);
			for (const id of [k1.id, k2.id, k3.id])
				assert.ok(ids.includes(id), `key ${id} in the list after space came back`);
		} finally {
			const e2 = umount(mnt);
			assert.equal(e2, '', 'umount');
			mounted = false;
			removeTempDir(dir);
		}
	});
});
