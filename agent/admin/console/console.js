// SPDX-License-Identifier: Apache-2.0
// keyauth admin console: plain JavaScript over keyauth-admin's JSON API, no
// framework and no build step. Rules this file keeps:
// - the admin key is held in `adminKey` only (never a cookie, storage, the
//   URL or the DOM once signed in: the password field is emptied at once);
//   a reload asks for it again;
// - every request is relative to the page (v1/...), so the console works
//   under whatever context the admin route has (default /admin/);
// - every text that comes from the API goes in with textContent, never as
//   markup (an owner or alias cannot inject anything);
// - a key created or rotated here is shown once, in a read-only field, and
//   wiped from the field and from memory by Done.
'use strict';

(function () {
	let adminKey = null;            // the signed-in admin key; null when signed out
	let scopes = new Set();         // from GET v1/whoami
	let routes = [];                // the last GET v1/routes
	let editing = null;             // { name, etag, route } of the Security form
	let preview = null;             // the last GET v1/deploy/preview
	let dialogOpener = null;        // the element focused before a dialog opened

	const $ = (id) => document.getElementById(id);

	/* The API's base URL: the directory of the page (the admin route's
	 * context), also when the page was opened as <context>/console/index.html. */
	const apiBase = (() => {
		const p = window.location.pathname;
		const i = p.indexOf('/console/');
		const dir = i >= 0 ? p.slice(0, i + 1) : p.slice(0, p.lastIndexOf('/') + 1);
		return new URL(dir, window.location.origin);
	})();

	/* ---- status line ---------------------------------------------------- */

	function setStatus(text, kind) {
		const s = $('status');
		s.textContent = text;
		s.className = 'status' + (kind ? ' ' + kind : '');
	}

	/* An error on the status line, unless the call signed the page out
	 * (a 401: the sign-in message stays). */
	function failed(prefix, r) {
		if (adminKey !== null)
			setStatus(prefix + errorText(r), 'error');
	}

	function errorText(r) {
		const e = r.json && r.json.error;
		if (e && typeof e.message === 'string' && e.message)
			return e.message + (e.code ? ' (' + e.code + ')' : '');
		if (r.status === 0)
			return 'the admin API could not be reached';
		return 'HTTP ' + r.status;
	}

	/* ---- the API -------------------------------------------------------- */

	/* One call to the admin API; resolves to { status, ok, json, etag }
	 * (status 0: the request failed). A 401 once signed in means the key was
	 * revoked or expired: back to the sign-in form. */
	async function api(method, path, { body, etag } = {}) {
		const headers = { Accept: 'application/json' };
		if (adminKey !== null)
			headers.Authorization = 'Bearer ' + adminKey;
		if (body !== undefined)
			headers['Content-Type'] = 'application/json';
		if (etag)
			headers['If-Match'] = etag;
		let res;
		try {
			res = await fetch(new URL(path, apiBase), {
				method, headers, body: body === undefined ? undefined : JSON.stringify(body),
				cache: 'no-store', credentials: 'omit', redirect: 'error', referrerPolicy: 'no-referrer',
			});
		} catch {
			return { status: 0, ok: false, json: null, etag: null };
		}
		let json = null;
		try {
			json = await res.json();
		} catch { /* no JSON body */ }
		const r = { status: res.status, ok: res.ok, json, etag: res.headers.get('ETag') };
		if (res.status === 401 && adminKey !== null && path !== 'v1/whoami') {
			signOut();
			setStatus('The admin key was refused (revoked or expired?): sign in again.', 'error');
		}
		return r;
	}

	/* ---- helpers -------------------------------------------------------- */

	function el(tag, text, cls) {
		const e = document.createElement(tag);
		if (text !== undefined && text !== null)
			e.textContent = String(text);
		if (cls)
			e.className = cls;
		return e;
	}

	/* A table cell labelled for the phone layout (console.css turns rows
	 * into cards there and shows data-label before each value). */
	function cell(label, content, cls) {
		const td = el('td', null, cls);
		td.dataset.label = label;
		if (content instanceof Node)
			td.appendChild(content);
		else
			td.textContent = content === undefined || content === null ? '' : String(content);
		return td;
	}

	function button(text, onClick, { cls, label } = {}) {
		const b = el('button', text, cls);
		b.type = 'button';
		if (label)
			b.setAttribute('aria-label', label);
		b.addEventListener('click', onClick);
		return b;
	}

	function badge(text, cls) {
		return el('span', text, 'badge ' + cls);
	}

	function fillBody(table, rows, columns, emptyText) {
		const tb = table.tBodies[0];
		tb.replaceChildren();
		if (rows.length === 0) {
			const tr = el('tr', null, 'empty');
			const td = el('td', emptyText);
			td.colSpan = columns;
			tr.appendChild(td);
			tb.appendChild(tr);
			return;
		}
		for (const r of rows)
			tb.appendChild(r);
	}

	function when(t) {
		if (t === null || t === undefined || t === '')
			return null;
		if (typeof t === 'number')
			return new Date(t * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
		return String(t).replace('T', ' ');
	}

	function listOf(j, name) {
		if (Array.isArray(j))
			return j;
		if (j && Array.isArray(j[name]))
			return j[name];
		return [];
	}

	const can = (scope) => scopes.has(scope);

	/* ---- sign in / out -------------------------------------------------- */

	async function signIn(ev) {
		ev.preventDefault();
		const input = $('login-key');
		const key = input.value.trim();
		// The key leaves the DOM at once; only the variable keeps it.
		input.value = '';
		if (!key) {
			setStatus('Type an admin key.', 'error');
			input.focus();
			return;
		}
		adminKey = key;
		setStatus('Signing in…');
		const r = await api('GET', 'v1/whoami');
		if (!r.ok) {
			adminKey = null;
			setStatus('Sign-in refused: ' + errorText(r), 'error');
			input.focus();
			return;
		}
		const w = r.json || {};
		const sc = Array.isArray(w.scopes) ? w.scopes : String(w.scopes || '').split(',');
		scopes = new Set(sc.map((s) => s.trim()).filter(Boolean));
		$('whoami').textContent = 'Key ' + (w.key_id || '?') + (w.owner ? ' (' + w.owner + ')' : '') +
			' · scopes: ' + ([...scopes].join(', ') || 'none');
		$('whoami').hidden = false;
		$('signout').hidden = false;
		$('login').hidden = true;
		$('app').hidden = false;
		for (const b of document.querySelectorAll('.needs-write'))
			b.hidden = !can('write');
		for (const b of document.querySelectorAll('.needs-deploy'))
			b.hidden = !can('deploy');
		setStatus('Signed in.', 'ok');
		selectTab('routes', { focus: true });
	}

	function signOut() {
		adminKey = null;
		scopes = new Set();
		routes = [];
		editing = null;
		preview = null;
		wipeSecret();
		for (const d of document.querySelectorAll('dialog'))
			if (d.open)
				d.close();
		for (const t of document.querySelectorAll('table.list tbody'))
			t.replaceChildren();
		$('security').hidden = true;
		$('deploy-diff').textContent = '';
		$('deploy-diff').hidden = true;
		$('deploy-summary').textContent = '';
		$('app').hidden = true;
		$('whoami').hidden = true;
		$('whoami').textContent = '';
		$('signout').hidden = true;
		$('login').hidden = false;
		setStatus('Signed out.');
		$('login-key').focus();
	}

	/* ---- tabs ----------------------------------------------------------- */

	const TABS = ['routes', 'keys', 'deploy', 'audit'];
	const LOADERS = { routes: loadRoutes, keys: loadKeys, deploy: () => {}, audit: loadAudit };

	function selectTab(name, { focus = false } = {}) {
		for (const t of TABS) {
			const tab = $('tab-' + t);
			const on = t === name;
			tab.setAttribute('aria-selected', on ? 'true' : 'false');
			tab.tabIndex = on ? 0 : -1;
			$('view-' + t).hidden = !on;
		}
		if (focus)
			$('tab-' + name).focus();
		LOADERS[name]();
	}

	/* Arrow keys move between the tabs (the WAI-ARIA tabs pattern); Tab
	 * leaves the tab list for the selected panel. */
	function tabKeys(ev) {
		const i = TABS.findIndex((t) => $('tab-' + t) === ev.target);
		if (i < 0)
			return;
		let j = null;
		if (ev.key === 'ArrowRight')
			j = (i + 1) % TABS.length;
		else if (ev.key === 'ArrowLeft')
			j = (i + TABS.length - 1) % TABS.length;
		else if (ev.key === 'Home')
			j = 0;
		else if (ev.key === 'End')
			j = TABS.length - 1;
		if (j === null)
			return;
		ev.preventDefault();
		selectTab(TABS[j], { focus: true });
	}

	/* ---- routes --------------------------------------------------------- */

	function keyDesc(r) {
		const s = r.security;
		if (s && s.key_name)
			return s.key_name + ' (' + (s.key_location || 'header') + ')';
		if (Array.isArray(r.carriers) && r.carriers.length)
			return r.carriers.join(', ');
		return '';
	}

	async function loadRoutes() {
		const r = await api('GET', 'v1/routes');
		if (!r.ok) {
			failed('Could not load the routes: ', r);
			return;
		}
		routes = listOf(r.json, 'routes');
		const rows = routes.map((rt) => {
			const tr = el('tr');
			tr.dataset.route = rt.name;
			tr.appendChild(cell('Route', rt.name, 'mono'));
			tr.appendChild(cell('Context', rt.context, 'mono'));
			tr.appendChild(cell('Provider', rt.provider || rt.type || ''));
			tr.appendChild(cell('Key', keyDesc(rt), 'mono'));
			tr.appendChild(cell('Rate limit', rt.rate_limit_rpm ? rt.rate_limit_rpm + '/min' : 'none'));
			tr.appendChild(cell('State', rt.pending ? badge('pending deploy', 'pending') : 'deployed'));
			const act = cell('Actions', null, 'actions-cell');
			if (rt.name !== 'admin')
				act.appendChild(button('Security', () => openSecurity(rt.name),
					{ cls: 'secondary', label: 'Security of route ' + rt.name }));
			tr.appendChild(act);
			return tr;
		});
		fillBody($('routes-table'), rows, 7, 'No routes.');
		fillRouteFilter();
	}

	function fillRouteFilter() {
		const sel = $('keys-route');
		const keep = sel.value;
		sel.replaceChildren(el('option', 'All routes'));
		sel.options[0].value = '';
		for (const rt of routes) {
			const o = el('option', rt.name);
			o.value = rt.name;
			sel.appendChild(o);
		}
		sel.value = routes.some((rt) => rt.name === keep) ? keep : '';
	}

	async function openSecurity(name) {
		const r = await api('GET', 'v1/routes/' + encodeURIComponent(name));
		if (!r.ok) {
			failed('Could not load route ' + name + ': ', r);
			return;
		}
		const rt = r.json || {};
		editing = { name, etag: r.etag || rt.etag || null, route: rt };
		const s = rt.security || {};
		$('security-title').textContent = 'Security · ' + name;
		$('sec-key-name').value = s.key_name || '';
		$('sec-key-location').value = s.key_location === 'query' ? 'query' : 'header';
		$('sec-rpm').value = rt.rate_limit_rpm ? String(rt.rate_limit_rpm) : '';
		const car = $('sec-carriers');
		if (!s.key_name && Array.isArray(rt.carriers) && rt.carriers.length) {
			car.textContent = 'This route accepts the key in: ' + rt.carriers.join(', ') +
				'. Saving a key name replaces that list.';
			car.hidden = false;
		} else {
			car.hidden = true;
		}
		$('sec-save').hidden = !can('write');
		for (const id of ['sec-key-name', 'sec-key-location', 'sec-rpm'])
			$(id).disabled = !can('write');
		$('security').hidden = false;
		$('sec-key-name').focus();
	}

	async function saveSecurity(ev) {
		ev.preventDefault();
		if (!editing)
			return;
		const rt = editing.route;
		const s = rt.security || {};
		const body = {};
		const name = $('sec-key-name').value.trim();
		const loc = $('sec-key-location').value;
		if (name !== (s.key_name || '') || loc !== (s.key_location || 'header'))
			body.security = { key_name: name, key_location: loc };
		// The API takes 0 for "no rate limit".
		const rpmText = $('sec-rpm').value.trim();
		const rpm = rpmText === '' ? 0 : Number(rpmText);
		if (!(Number.isInteger(rpm) && rpm >= 0)) {
			setStatus('The rate limit is a whole number of requests per minute, or empty.', 'error');
			$('sec-rpm').focus();
			return;
		}
		if (rpm !== (rt.rate_limit_rpm || 0))
			body.rate_limit_rpm = rpm;
		if (Object.keys(body).length === 0) {
			setStatus('Nothing to save: no setting changed.');
			return;
		}
		const r = await api('PATCH', 'v1/routes/' + encodeURIComponent(editing.name),
			{ body, etag: editing.etag });
		if (r.status === 412) {
			setStatus('Route ' + editing.name + ' was changed elsewhere: reload it (Security) and edit again.', 'error');
			return;
		}
		if (!r.ok) {
			failed('Not saved: ', r);
			return;
		}
		const saved = editing.name;
		editing = { name: saved, etag: r.etag || (r.json && r.json.etag) || null, route: r.json || rt };
		setStatus('Saved route ' + saved + ': pending until deployed (Deploy).', 'ok');
		await loadRoutes();
	}

	function closeSecurity() {
		const name = editing && editing.name;
		editing = null;
		$('security').hidden = true;
		const b = name && document.querySelector('#routes-table tr[data-route="' + CSS.escape(name) + '"] button');
		if (b)
			b.focus();
	}

	/* ---- keys ----------------------------------------------------------- */

	async function loadKeys() {
		if (routes.length === 0)
			await loadRoutes();
		const q = new URLSearchParams();
		if ($('keys-route').value)
			q.set('route', $('keys-route').value);
		if ($('keys-all').checked)
			q.set('all', 'true');
		const qs = q.toString();
		const r = await api('GET', 'v1/keys' + (qs ? '?' + qs : ''));
		if (!r.ok) {
			failed('Could not load the keys: ', r);
			return;
		}
		const keys = listOf(r.json, 'keys');
		const rows = keys.map((k) => {
			const tr = el('tr');
			tr.dataset.keyId = k.id;
			tr.appendChild(cell('Id', k.id, 'mono'));
			tr.appendChild(cell('Alias', k.alias || ''));
			tr.appendChild(cell('Owner', k.owner || ''));
			tr.appendChild(cell('Routes', (Array.isArray(k.routes) ? k.routes : [k.route]).join(', ')));
			const st = k.status || 'active';
			tr.appendChild(cell('Status', badge(st, st.replace(/[^a-z]/g, ''))));
			tr.appendChild(cell('Expires', when(k.expires) || 'never'));
			tr.appendChild(cell('Last use', when(k.last_used) || 'never'));
			tr.appendChild(cell('Requests', k.requests === undefined ? '' : k.requests));
			const act = cell('Actions', null, 'actions-cell');
			if (can('write') && st !== 'revoked') {
				act.appendChild(button('Rotate', () => rotateKey(k),
					{ cls: 'secondary', label: 'Rotate key ' + k.id }));
				act.appendChild(button('Revoke', () => revokeKey(k),
					{ cls: 'danger', label: 'Revoke key ' + k.id }));
			}
			tr.appendChild(act);
			return tr;
		});
		fillBody($('keys-table'), rows, 9, 'No keys.');
	}

	/* ---- dialogs -------------------------------------------------------- */

	/* Opens <d> modally: focus moves into it (showModal), and back to the
	 * element that opened it when it closes (see the close listeners). */
	function openDialog(d, focusId) {
		dialogOpener = document.activeElement;
		d.showModal();
		if (focusId)
			$(focusId).focus();
	}

	function restoreFocus() {
		const o = dialogOpener;
		dialogOpener = null;
		if (o && document.contains(o) && !o.closest('[hidden]'))
			o.focus();
	}

	function confirmDialog({ title, text, ok, grace = false }) {
		const d = $('confirm-dialog');
		$('confirm-title').textContent = title;
		$('confirm-text').textContent = text;
		$('confirm-ok').textContent = ok;
		$('confirm-grace-field').hidden = !grace;
		d.returnValue = '';
		return new Promise((resolve) => {
			d.addEventListener('close', () => {
				resolve(d.returnValue === 'ok' ? { grace: Number($('confirm-grace').value) } : null);
				restoreFocus();
			}, { once: true });
			openDialog(d, grace ? 'confirm-grace' : 'confirm-cancel');
		});
	}

	/* The one time a key is shown: a read-only field, Copy, and Done, which
	 * wipes it. */
	function showSecret(key, info) {
		$('secret-info').textContent = info;
		$('secret-value').value = key;
		openDialog($('secret-dialog'), 'secret-copy');
	}

	function wipeSecret() {
		$('secret-value').value = '';
		$('secret-info').textContent = '';
	}

	async function copySecret() {
		const f = $('secret-value');
		try {
			await navigator.clipboard.writeText(f.value);
			setStatus('Key copied to the clipboard.', 'ok');
			return;
		} catch { /* no clipboard API here (a page without a secure context) */ }
		f.focus();
		f.select();
		const done = document.execCommand && document.execCommand('copy');
		setStatus(done ? 'Key copied to the clipboard.' : 'Select the key and copy it (Ctrl+C).', done ? 'ok' : '');
	}

	/* ---- create, revoke, rotate ----------------------------------------- */

	async function openCreate() {
		// The routes to pick from: fresh (a click can come before the
		// first list arrived).
		await loadRoutes();
		if (adminKey === null)
			return;
		const box = $('create-routes');
		box.replaceChildren();
		for (const rt of routes) {
			const l = el('label', null, 'inline');
			const c = document.createElement('input');
			c.type = 'checkbox';
			c.value = rt.name;
			c.name = 'route';
			c.addEventListener('change', updateScopes);
			l.appendChild(c);
			l.appendChild(document.createTextNode(rt.name));
			box.appendChild(l);
		}
		const pick = $('keys-route').value;
		for (const c of box.querySelectorAll('input'))
			c.checked = c.value === pick;
		$('create-owner').value = '';
		$('create-alias').value = '';
		$('create-days').value = '90';
		$('create-days').disabled = false;
		$('create-never').checked = false;
		$('create-rpm').value = '';
		$('create-error').textContent = '';
		updateScopes();
		const first = box.querySelector('input');
		openDialog($('create-dialog'), first ? null : 'create-owner');
		if (first)
			first.focus();
	}

	function updateScopes() {
		const admin = [...$('create-routes').querySelectorAll('input:checked')].some((c) => c.value === 'admin');
		$('create-scopes').hidden = !admin;
	}

	async function submitCreate(ev) {
		ev.preventDefault();
		const err = $('create-error');
		const picked = [...$('create-routes').querySelectorAll('input:checked')].map((c) => c.value);
		if (picked.length === 0) {
			err.textContent = 'Pick at least one route.';
			return;
		}
		const body = { routes: picked };
		const owner = $('create-owner').value.trim();
		const alias = $('create-alias').value.trim();
		if (owner)
			body.owner = owner;
		if (alias)
			body.alias = alias;
		if ($('create-never').checked) {
			body.never_expires = true;
		} else {
			const days = Number($('create-days').value);
			if (!(Number.isInteger(days) && days >= 1)) {
				err.textContent = 'Valid for: a whole number of days (at least 1).';
				$('create-days').focus();
				return;
			}
			body.expires_in_days = days;
		}
		const rpmText = $('create-rpm').value.trim();
		if (rpmText !== '') {
			const rpm = Number(rpmText);
			if (!(Number.isInteger(rpm) && rpm > 0)) {
				err.textContent = 'Rate limit: a whole number of requests per minute, or empty.';
				$('create-rpm').focus();
				return;
			}
			body.rpm = rpm;
		}
		if (picked.includes('admin'))
			body.scopes = [...$('create-scopes').querySelectorAll('input:checked')].map((c) => c.value);
		err.textContent = '';
		$('create-submit').disabled = true;
		const r = await api('POST', 'v1/keys', { body });
		$('create-submit').disabled = false;
		if (!r.ok || !r.json || typeof r.json.key !== 'string') {
			err.textContent = 'Not created: ' + errorText(r);
			return;
		}
		const k = r.json;
		// Focus goes back to "Create key" once the key dialog is done.
		const opener = dialogOpener;
		$('create-dialog').close();
		dialogOpener = opener;
		const id = k.id || (k.entry && k.entry.id) || '';
		setStatus('Key ' + id + ' created.', 'ok');
		showSecret(k.key, 'Key ' + id + ' for ' + picked.join(', ') +
			(body.never_expires ? ', never expires.' : ', valid ' + body.expires_in_days + ' days.'));
		k.key = null;
	}

	async function revokeKey(k) {
		const ok = await confirmDialog({ title: 'Revoke key ' + k.id + '?',
			text: 'Requests with this key are refused within a second. This cannot be undone.', ok: 'Revoke' });
		if (!ok)
			return;
		const r = await api('POST', 'v1/keys/' + encodeURIComponent(k.id) + '/revoke');
		if (!r.ok) {
			failed('Not revoked: ', r);
			return;
		}
		setStatus('Key ' + k.id + ' revoked.', 'ok');
		await loadKeys();
		$('keys-reload').focus();
	}

	async function rotateKey(k) {
		const ok = await confirmDialog({ title: 'Rotate key ' + k.id + '?',
			text: 'A new key replaces it; the old one keeps working for the grace period below.',
			ok: 'Rotate', grace: true });
		if (!ok)
			return;
		const r = await api('POST', 'v1/keys/' + encodeURIComponent(k.id) + '/rotate',
			{ body: { grace_seconds: ok.grace } });
		if (!r.ok || !r.json || typeof r.json.key !== 'string') {
			failed('Not rotated: ', r);
			return;
		}
		const nid = (r.json.new && r.json.new.id) || r.json.id || '';
		setStatus('Key ' + k.id + ' rotated: new key ' + nid + '.', 'ok');
		dialogOpener = $('keys-reload');
		showSecret(r.json.key, 'New key ' + nid + ' replaces ' + k.id + '.');
		r.json.key = null;
	}

	function secretDone() {
		wipeSecret();
		$('secret-dialog').close();
	}

	/* ---- deploy --------------------------------------------------------- */

	async function loadPreview() {
		preview = null;
		$('deploy-apply').disabled = true;
		setStatus('Rendering a preview…');
		const r = await api('GET', 'v1/deploy/preview');
		if (!r.ok || !r.json) {
			failed('No preview: ', r);
			return;
		}
		preview = r.json;
		const names = Array.isArray(preview.routes) ? preview.routes : [];
		$('deploy-summary').textContent = preview.changed ?
			'Changes to deploy' + (names.length ? ' (routes: ' + names.join(', ') + ')' : '') + ':' :
			'Nothing to deploy: the gateway already runs this configuration.';
		const pre = $('deploy-diff');
		pre.textContent = preview.diff || '';
		pre.hidden = !preview.diff;
		$('deploy-apply').disabled = !preview.changed || !preview.preview_id;
		setStatus(preview.changed ? 'Preview ready: check the diff, then Apply.' : 'Nothing to deploy.', 'ok');
	}

	async function applyDeploy() {
		if (!preview || !preview.preview_id)
			return;
		$('deploy-apply').disabled = true;
		setStatus('Deploying…');
		const r = await api('POST', 'v1/deploy', { body: { preview_id: preview.preview_id } });
		if (r.status === 409 || r.status === 412) {
			setStatus('The configuration changed since this preview: preview again.', 'error');
			return;
		}
		if (!r.ok) {
			failed('Not deployed: ', r);
			$('deploy-apply').disabled = false;
			return;
		}
		preview = null;
		$('deploy-summary').textContent = 'Deployed.';
		$('deploy-diff').textContent = '';
		$('deploy-diff').hidden = true;
		setStatus('Deployed to the gateway.', 'ok');
		$('deploy-preview').focus();
	}

	/* ---- audit ---------------------------------------------------------- */

	async function loadAudit() {
		const r = await api('GET', 'v1/audit?limit=200');
		if (!r.ok) {
			failed('Could not load the audit log: ', r);
			return;
		}
		const list = listOf(r.json, 'entries');
		// keyauthctl lists oldest first: reversed, then a stable sort keeps
		// entries of the same second newest first too.
		const entries = (list.length ? list : listOf(r.json, 'audit')).slice().reverse();
		entries.sort((a, b) => (Number(b.ts) || 0) - (Number(a.ts) || 0));
		const rows = entries.map((e) => {
			const tr = el('tr');
			tr.appendChild(cell('Time', when(e.time || e.ts)));
			tr.appendChild(cell('Who', e.actor || e.user || ''));
			tr.appendChild(cell('Command', e.command || ''));
			tr.appendChild(cell('Key / route', e.key_id || e.route || '', 'mono'));
			tr.appendChild(cell('Change', e.change || e.kind || e.outcome || ''));
			tr.appendChild(cell('Fields', e.fields && typeof e.fields === 'object' ?
				Object.keys(e.fields).join(', ') : ''));
			return tr;
		});
		fillBody($('audit-table'), rows, 6, 'No audit entries.');
	}

	/* ---- wiring --------------------------------------------------------- */

	function init() {
		$('login-form').addEventListener('submit', signIn);
		$('signout').addEventListener('click', signOut);
		for (const t of TABS)
			$('tab-' + t).addEventListener('click', () => selectTab(t));
		document.querySelector('[role="tablist"]').addEventListener('keydown', tabKeys);
		$('routes-reload').addEventListener('click', loadRoutes);
		$('security-form').addEventListener('submit', saveSecurity);
		$('sec-close').addEventListener('click', closeSecurity);
		$('keys-reload').addEventListener('click', loadKeys);
		$('keys-route').addEventListener('change', loadKeys);
		$('keys-all').addEventListener('change', loadKeys);
		$('keys-create').addEventListener('click', openCreate);
		$('create-form').addEventListener('submit', submitCreate);
		$('create-cancel').addEventListener('click', () => $('create-dialog').close());
		$('create-never').addEventListener('change', () => {
			$('create-days').disabled = $('create-never').checked;
		});
		$('create-dialog').addEventListener('close', () => {
			if (!$('secret-dialog').open)
				restoreFocus();
		});
		$('secret-copy').addEventListener('click', copySecret);
		$('secret-done').addEventListener('click', secretDone);
		// Escape closes the dialog natively: wipe the key then too.
		$('secret-dialog').addEventListener('close', () => {
			wipeSecret();
			loadKeys();
			restoreFocus();
		});
		$('deploy-preview').addEventListener('click', loadPreview);
		$('deploy-apply').addEventListener('click', applyDeploy);
		$('audit-reload').addEventListener('click', loadAudit);
		$('login-key').focus();
	}

	if (document.readyState === 'loading')
		document.addEventListener('DOMContentLoaded', init);
	else
		init();
}());
