// SPDX-License-Identifier: Apache-2.0
// End to end, the admin console (issue 22) in Debian's chromium, headless,
// driven by npm playwright-core (no browser download), through real HAProxy
// (Debian's 2.6 always, 3.2 when scripts/haproxy32.sh made it available),
// keyauthd and keyauth-admin (admin-lib.js). Per HAProxy version:
// - sign in with an admin key made by keyauthctl (typed into the page, never
//   printed); create a key for the openai route: shown once in a read-only
//   field, copied, Done; the page never holds it again, not even after a
//   reload; curl through HAProxy with it: 200; revoke it in the page: curl
//   401 within 1 s;
// - Routes, openai, Security: a Save over an edit made elsewhere meanwhile is
//   refused (412: "changed elsewhere, reload"); key name X-Custom-Key, Save
//   (pending), Deploy:
//   the preview shows the diff, Apply: curl with X-Custom-Key 200, with
//   X-API-Key 401;
// - one pass by keyboard only (sign in, tabs, create dialog, key dialog,
//   revoke confirmation), focus visible and restored after each dialog.
// Screenshots at 1280x800 and 390x844 are kept under
// build/e2e-artifacts/console/<haproxy>/ (the one-time key masked). A missing
// /usr/bin/chromium fails the file (scripts/deps.sh installs it).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, test } from 'node:test';

import { chromium } from 'playwright-core';

import {
	ADMIN_CONTEXT, adminKey, assertNoKeyInLogs, ctlJson, routeKey, startAdminStack, stopAdminStack,
} from './admin-lib.js';
import { ROOT, addSecret, curl, forEachHaproxy, holdsSecret, redact, timeLimit, waitFor } from './lib.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'build', 'e2e-artifacts', 'console');
const SIZES = [[1280, 800], [390, 844]];

async function startStack(hap) {
	assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: the console test needs Debian's chromium ` +
		'(scripts/deps.sh installs it)');
	const g = await startAdminStack(hap, { tag: 'console' });
	g.keys.admin = await adminKey(g, 'console-admin', ['read', 'write', 'deploy']);
	g.artifacts = path.join(ARTIFACTS, hap.label);
	fs.rmSync(g.artifacts, { recursive: true, force: true });
	fs.mkdirSync(g.artifacts, { recursive: true });
	g.shot = 0;
	g.browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
	g.url = `http://127.0.0.1:${g.gwPort}${ADMIN_CONTEXT}/`;
	return g;
}

async function stopStack(g) {
	if (g.browser)
		await timeLimit(g.browser.close(), 15000, 'chromium did not close within 15 s').catch((e) => console.log(`# ${e.message}`));
	await stopAdminStack(g);
}

/* A fresh page at 1280x800 whose console errors are collected in
 * page.errors (a CSP violation or a script error shows there). */
async function newPage(g) {
	const ctx = await g.browser.newContext({ viewport: { width: 1280, height: 800 } });
	await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: `http://127.0.0.1:${g.gwPort}` });
	const page = await ctx.newPage();
	page.errors = [];
	page.on('pageerror', (e) => page.errors.push(`pageerror: ${e.message}`));
	page.on('console', (m) => {
		// Not counted: the browser's own note on an HTTP error answer (the
		// page handles those: a 412 case expects one) and on /favicon.ico,
		// which it asks for unasked. CSP refusals and script errors count.
		if (m.type() === 'error' && !/favicon/.test(m.location().url || '') &&
		    !/^Failed to load resource: the server responded with a status of \d+/.test(m.text()))
			page.errors.push(`console: ${m.text()}`);
	});
	page.setDefaultTimeout(10000);
	return page;
}

/* Screenshots of the page at both sizes; the one-time key field masked. */
async function shoot(g, page, step) {
	const n = String(++g.shot).padStart(2, '0');
	for (const [w, h] of SIZES) {
		await page.setViewportSize({ width: w, height: h });
		// Readable means no sideways scrolling of the page (wide content,
		// such as the diff, scrolls inside its own box).
		const sw = await page.evaluate(() => document.documentElement.scrollWidth);
		assert.ok(sw <= w, `${step} at ${w}x${h}: the page is ${sw} px wide`);
		const file = path.join(g.artifacts, `${n}-${step}-${w}x${h}.png`);
		await page.screenshot({ path: file, fullPage: w < 640, mask: [page.locator('#secret-value')] });
		assert.ok(fs.statSync(file).size > 1000, `${file} written`);
	}
	await page.setViewportSize({ width: 1280, height: 800 });
}

/* Everything the page holds as text or in a form field. */
function pageText(page) {
	return page.evaluate(() => document.documentElement.outerHTML + '\n' + document.body.innerText + '\n' +
		[...document.querySelectorAll('input, textarea')].map((i) => i.value).join('\n'));
}

async function signIn(page, g) {
	await page.goto(g.url);
	await page.getByLabel('Admin key').fill(g.keys.admin.key);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByText('Signed in.').waitFor();
	assert.equal(await page.getByLabel('Admin key').inputValue(), '', 'the password field is emptied');
	assert.ok(!holdsSecret(await pageText(page)), 'the signed-in page holds no key (the admin key is in a variable only)');
	assert.deepEqual(await page.evaluate(() => [document.cookie, localStorage.length, sessionStorage.length]), ['', 0, 0],
		'no cookie, no storage');
}

/* GET <p> through HAProxy with <header> "Name: key" (curl reads it on stdin). */
function hit(g, p, name, key) {
	return curl(g.curlDir, { url: `http://127.0.0.1:${g.gwPort}${p}`, headers: [`${name}: ${key}`] });
}

/* True when <key> passes the openai route with either key name. */
async function usable(g, key) {
	for (const name of ['X-API-Key', 'X-Custom-Key']) {
		if ((await hit(g, '/openai/v1/models', name, key)).status === 200)
			return true;
	}
	return false;
}

forEachHaproxy('admin console in chromium through HAProxy', { timeout: 240000, tag: 'console', beforeTimeout: 120000,
	stop: stopStack }, startStack, (ctx) => {
	const { V } = ctx;
	let g;
	before(() => { g = ctx.g; });

	test(`${V} create a key (shown once, copied, Done), use it through HAProxy, revoke it in the page: 401 within 1 s`, async (t) => {
		const page = await newPage(g);
		await page.goto(g.url);
		await page.getByLabel('Admin key').waitFor();
		await shoot(g, page, 'sign-in');
		await signIn(page, g);
		await page.getByRole('button', { name: 'Security of route openai' }).waitFor();
		await shoot(g, page, 'routes');

		await page.getByRole('tab', { name: 'Keys' }).click();
		await page.getByRole('button', { name: 'Create key' }).click();
		const dlg = page.locator('#create-dialog');
		await dlg.getByLabel('openai', { exact: true }).check();
		await dlg.getByLabel('Owner').fill('console-user@example.com');
		assert.equal(await dlg.getByLabel('Valid for (days)').inputValue(), '90', '90 days by default');
		await shoot(g, page, 'create-dialog');
		await dlg.getByRole('button', { name: 'Create', exact: true }).click();

		const field = page.locator('#secret-value');
		await page.getByText('It will not be shown again').waitFor();
		const key = await field.inputValue();
		assert.ok(key.length >= 20, 'a key is shown');
		addSecret(`console-made@${g.hap.label}`, key);
		assert.equal(await field.getAttribute('readonly'), '', 'the key field is read-only');
		await shoot(g, page, 'key-shown-once');
		await page.getByRole('button', { name: 'Copy' }).click();
		const copied = await page.evaluate(() => navigator.clipboard.readText());
		assert.ok(copied === key, 'Copy put the key on the clipboard');
		await page.getByRole('button', { name: 'Done' }).click();
		await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
		assert.ok(!holdsSecret(await pageText(page)), 'after Done the page no longer holds the key');
		const row = page.locator('#keys-table tbody tr[data-key-id]', { hasText: 'console-user@example.com' });
		await row.waitFor();
		const id = await row.getAttribute('data-key-id');
		await shoot(g, page, 'keys');

		const ok = await waitFor('the new key accepted through HAProxy', async () =>
			(await hit(g, '/openai/v1/models', 'X-API-Key', key)).status === 200, { timeout: 5000 });
		assert.ok(ok);

		await page.getByRole('button', { name: `Revoke key ${id}` }).click();
		await page.locator('#confirm-dialog').getByRole('button', { name: 'Revoke' }).click();
		await page.getByText(`Key ${id} revoked.`).waitFor();
		const t0 = Date.now();
		await waitFor('the revoked key refused through HAProxy', async () =>
			(await hit(g, '/openai/v1/models', 'X-API-Key', key)).status === 401, { timeout: 5000, interval: 50 });
		const ms = Date.now() - t0;
		t.diagnostic(`key revoked in the console refused ${ms} ms later`);
		assert.ok(ms < 1000, `refused after ${ms} ms (>= 1000)`);
		const listed = (await ctlJson(g, ['key', 'list', '--all'])).find((k) => k.id === id);
		assert.equal(listed.status, 'revoked');

		// A reload asks for the admin key again; the page still never holds the new key.
		await page.reload();
		await page.getByLabel('Admin key').waitFor();
		assert.equal(await page.locator('#app').isHidden(), true, 'signed out after a reload');
		await signIn(page, g);
		await page.getByRole('tab', { name: 'Keys' }).click();
		await page.locator('#keys-all').check();
		await page.locator(`#keys-table tr[data-key-id="${id}"]`).waitFor();
		assert.ok(!holdsSecret(await pageText(page)), 'after a reload the page does not hold the key');
		assert.deepEqual(page.errors, [], 'no script error or CSP violation');
		await page.context().close();
	});

	test(`${V} change a route's key name and deploy: the preview shows the diff, Apply, then X-Custom-Key 200 and X-API-Key 401`, async () => {
		const k = await routeKey(g, 'openai', 'console-route');
		assert.equal((await hit(g, '/openai/v1/models', 'X-API-Key', k.key)).status, 200, 'before: X-API-Key');
		const page = await newPage(g);
		await signIn(page, g);
		await page.getByRole('button', { name: 'Security of route openai' }).click();
		// The form shows once the route (and its ETag) is loaded.
		await page.locator('#security').waitFor({ state: 'visible' });
		assert.equal(await page.locator('#security-title').textContent(), 'Security · openai');
		assert.equal(await page.getByLabel('Authentication').inputValue(), 'apiKey');
		assert.equal(await page.getByLabel('Key name').inputValue(), 'X-API-Key');
		assert.equal(await page.getByLabel('Key location').inputValue(), 'header');
		// Someone else edits the route while the form is open: Save is
		// refused (412, the ETag the page loaded is stale) and says so.
		await ctlJson(g, ['route', 'set', 'openai', '--rpm', '1000']);
		await page.getByLabel('Key name').fill('X-Custom-Key');
		await page.getByRole('button', { name: 'Save' }).click();
		await page.getByText('Route openai was changed elsewhere: reload it').waitFor();
		let shown = await ctlJson(g, ['route', 'show', 'openai']);
		assert.equal(shown.security.key_name, 'X-API-Key', 'the stale Save changed nothing');
		assert.equal(shown.rate_limit_rpm, 1000, 'the other edit stays');
		// Reloaded: the form shows the other edit; Save goes through.
		await page.getByRole('button', { name: 'Security of route openai' }).click();
		await waitFor('the form to show the other edit', async () =>
			(await page.locator('#sec-rpm').inputValue()) === '1000', { timeout: 5000 });
		await page.getByLabel('Key name').fill('X-Custom-Key');
		await page.getByRole('button', { name: 'Save' }).click();
		await page.getByText('Saved route openai').waitFor();
		shown = await ctlJson(g, ['route', 'show', 'openai']);
		assert.equal(shown.security.key_name, 'X-Custom-Key');
		assert.equal(shown.pending, true, 'saved as a pending edit');
		await page.locator('#routes-table tr[data-route="openai"]').getByText('pending deploy').waitFor();
		await shoot(g, page, 'route-pending');
		// Saved is not deployed: the gateway still takes X-API-Key.
		assert.equal((await hit(g, '/openai/v1/models', 'X-API-Key', k.key)).status, 200, 'pending: X-API-Key still');

		await page.getByRole('tab', { name: 'Deploy' }).click();
		await page.getByRole('button', { name: 'Preview' }).click();
		const diff = page.locator('#deploy-diff');
		await diff.waitFor();
		const text = await diff.textContent();
		assert.match(text, /^\+.*X-Custom-Key/mi, 'the diff adds X-Custom-Key');
		assert.match(text, /^-.*X-API-Key/mi, 'the diff removes X-API-Key');
		await shoot(g, page, 'deploy-preview');
		await page.getByRole('button', { name: 'Apply' }).click();
		await page.getByText('Deployed to the gateway.').waitFor({ timeout: 60000 });
		await shoot(g, page, 'deployed');

		await waitFor('X-Custom-Key accepted and X-API-Key refused after the deploy', async () =>
			(await hit(g, '/openai/v1/models', 'X-Custom-Key', k.key)).status === 200 &&
			(await hit(g, '/openai/v1/models', 'X-API-Key', k.key)).status === 401, { timeout: 15000, interval: 100 });
		await page.getByRole('tab', { name: 'Routes' }).click();
		// (The tab reloads the list: wait for the deployed state, not the row
		// the Save left.)
		await page.locator('#routes-table tr[data-route="openai"]', { hasText: 'X-Custom-Key' })
			.filter({ hasNotText: 'pending deploy' }).waitFor();
		await page.getByRole('tab', { name: 'Audit' }).click();
		await page.locator('#audit-table tbody tr').first().waitFor();
		await shoot(g, page, 'audit');
		assert.deepEqual(page.errors, [], 'no script error or CSP violation');
		await page.context().close();
	});

	test(`${V} rotate with a grace period: the new key shown once, old and new both pass`, async () => {
		const old = await routeKey(g, 'openai', 'console-rotated');
		assert.ok(await usable(g, old.key), 'the key to rotate works');
		const page = await newPage(g);
		await signIn(page, g);
		await page.getByRole('tab', { name: 'Keys' }).click();
		await page.getByRole('button', { name: `Rotate key ${old.id}` }).click();
		const dlg = page.locator('#confirm-dialog');
		await dlg.getByLabel('Old key stays valid for').selectOption('3600');
		await dlg.getByRole('button', { name: 'Rotate' }).click();
		await page.getByText('It will not be shown again').waitFor();
		const key = await page.locator('#secret-value').inputValue();
		addSecret(`console-rotated-new@${g.hap.label}`, key);
		assert.notEqual(key, old.key);
		await page.getByRole('button', { name: 'Done' }).click();
		await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
		assert.ok(!holdsSecret(await pageText(page)), 'after Done the page holds neither key');
		await waitFor('the new key accepted', () => usable(g, key), { timeout: 5000 });
		assert.ok(await usable(g, old.key), 'the old key still passes during its grace');
		const listed = (await ctlJson(g, ['key', 'list', '--all'])).find((k) => k.id === old.id);
		assert.ok(listed.rotated_to, 'keyauthctl lists the old key as rotated');
		assert.deepEqual(page.errors, [], 'no script error or CSP violation');
		await page.context().close();
	});

	test(`${V} by keyboard only: sign in, create a key, Done, revoke`, async () => {
		const page = await newPage(g);
		const kb = page.keyboard;
		const active = () => page.evaluate(() => {
			const a = document.activeElement;
			return { id: a.id, label: a.getAttribute('aria-label') || a.textContent.trim(), value: a.value,
				outline: getComputedStyle(a).outlineStyle };
		});
		/* Tab (or Shift+Tab) until <want>(focused) holds; at most 40 presses. */
		const tabTo = async (what, want, back = false) => {
			for (let i = 0; i < 40; i++) {
				const a = await active();
				if (want(a))
					return a;
				await kb.press(back ? 'Shift+Tab' : 'Tab');
			}
			assert.fail(`could not reach ${what} with the Tab key`);
		};
		await page.goto(g.url);
		await page.locator('#login-key').waitFor();
		assert.equal((await active()).id, 'login-key', 'the admin key field has the focus on load');
		await kb.type(g.keys.admin.key);
		await kb.press('Enter');
		await page.getByText('Signed in.').waitFor();
		let a = await active();
		assert.equal(a.id, 'tab-routes', 'after sign-in the Routes tab has the focus');
		assert.notEqual(a.outline, 'none', 'the focus is visible');
		await kb.press('ArrowRight');
		await page.locator('#view-keys').waitFor();
		assert.equal((await active()).id, 'tab-keys');
		await tabTo('Create key', (f) => f.id === 'keys-create');
		await kb.press('Enter');
		await page.locator('#create-dialog').waitFor();
		await tabTo('the openai checkbox', (f) => f.value === 'openai');
		await kb.press('Space');
		await tabTo('Owner', (f) => f.id === 'create-owner');
		await kb.type('keyboard@example.com');
		await kb.press('Enter');   // submits the form
		await page.getByText('It will not be shown again').waitFor();
		const key = await page.locator('#secret-value').inputValue();
		addSecret(`console-keyboard@${g.hap.label}`, key);
		assert.equal((await active()).id, 'secret-copy', 'the key dialog has the focus on Copy');
		await tabTo('Done', (f) => f.id === 'secret-done');
		await kb.press('Enter');
		await page.locator('#secret-dialog').waitFor({ state: 'hidden' });
		await waitFor('the focus back on Create key', async () => (await active()).id === 'keys-create', { timeout: 3000 });
		assert.ok(!holdsSecret(await pageText(page)), 'after Done the page no longer holds the key');
		const row = page.locator('#keys-table tbody tr[data-key-id]', { hasText: 'keyboard@example.com' });
		await row.waitFor();
		const id = await row.getAttribute('data-key-id');
		// (Whichever key name the route has now: this case does not depend on the deploy case.)
		assert.ok(await usable(g, key), 'the keyboard-made key works');

		await tabTo(`Revoke key ${id}`, (f) => f.label === `Revoke key ${id}`);
		await kb.press('Enter');
		await page.locator('#confirm-dialog').waitFor();
		assert.equal((await active()).id, 'confirm-cancel', 'the confirmation opens on Cancel');
		await tabTo('OK', (f) => f.id === 'confirm-ok', true);
		await kb.press('Enter');
		await page.getByText(`Key ${id} revoked.`).waitFor();
		await waitFor('the keyboard-revoked key refused', async () => !(await usable(g, key)), { timeout: 1000, interval: 50 });
		assert.deepEqual(page.errors, [], 'no script error or CSP violation');
		await page.context().close();
	});

	test(`${V} no key in any log of the run; screenshots kept`, () => {
		assertNoKeyInLogs(g);
		const shots = fs.readdirSync(g.artifacts).filter((f) => f.endsWith('.png'));
		assert.ok(shots.some((f) => f.includes('1280x800')) && shots.some((f) => f.includes('390x844')),
			`screenshots at both sizes in ${g.artifacts}`);
		console.log(`# ${V} screenshots: ${redact(g.artifacts)}`);
	});
});
