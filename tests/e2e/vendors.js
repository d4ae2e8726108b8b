// SPDX-License-Identifier: Apache-2.0
// A local stand-in for several LLM vendors at once, for the end-to-end tests
// in which each vendor's official SDK talks through HAProxy. It behaves like
// the real vendor where that matters to a gateway: it wants the vendor's own
// credential in the vendor's own carrier, answers a missing or wrong one with
// the vendor's own error body, and streams server-sent events as the vendor
// does. On top of that it is stricter than any vendor: a request that carries
// anything that looks like a keyauth client key (ka_...), or a credential in a
// carrier the vendor does not use, is refused with 400 and a body that names
// the carrier (never its value). A gateway that forwards the client's key, or
// renders the provider secret into the wrong header, fails the test.
//
// usage: STANDIN_SECRET=... [STANDIN_INTERVAL_MS=100] [STANDIN_VENDOR=name] node vendors.js [PORT]
//        (0 or absent: a free port; prints "listening PORT"; prints nothing else,
//        and never the secret)
//
// Path prefix -> vendor (HAProxy forwards each route to its prefix; the rest of
// the path is the vendor's own):
//   /openai/v1/models                                GET    OpenAI     Authorization: Bearer <secret>
//   /openai/v1/chat/completions                      POST   OpenAI
//   /azure/openai/deployments/{dep}/chat/completions POST   Azure OpenAI  api-key: <secret>; needs ?api-version=
//   /anthropic/v1/models                             GET    Anthropic  x-api-key: <secret>, or (SDK 1.x,
//   /anthropic/v1/messages                           POST              API 2026-10-21) Authorization: Bearer <secret>;
//                                                                      needs anthropic-version
//   /gemini/v1beta/models/{model}:generateContent    POST   Gemini     x-goog-api-key: <secret> or ?key=<secret>
//   /gemini/v1beta/models/{model}:streamGenerateContent?alt=sse POST
//   /mistral/v1/models                               GET    Mistral    Authorization: Bearer <secret>
//   /mistral/v1/chat/completions                     POST
//   /<vendor>/v1/realtime                            GET    WebSocket upgrade: same credential
//                                                          checks, then an echo of each message
//
// Streaming: "stream": true in the body (OpenAI, Azure, Anthropic, Mistral) or
// :streamGenerateContent (Gemini). Events are written one at a time,
// STANDIN_INTERVAL_MS apart, flushed at once, uncompressed, chunked. The
// number of text events is the request header x-standin-events (default 5,
// at most 1000).
//
// Test-only switches, honoured after the credential checks have passed:
//   x-standin-status: NNN        answer NNN with the vendor's own error body
//   x-standin-retry-after: S     add Retry-After: S to that answer
//
// Not reachable through HAProxy (HAProxy always adds a vendor prefix):
//   GET /__requests  what reached the stand-in: method, vendor, path, query with
//                    credential values redacted, the request-target as received
//                    (origin-form "/p?q" or absolute-form "http://host/p?q", redacted
//                    the same way) and the Host header, header names, which carrier
//                    held the credential and whether it was the right one, the
//                    answer's status and the refusal reason. No credential value is
//                    kept (a client key in the path is recorded as <client-key>).
//   POST /__reset    clears that list.
import crypto from 'node:crypto';
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 0);
const SECRET = process.env.STANDIN_SECRET || '';
const INTERVAL_MS = Number(process.env.STANDIN_INTERVAL_MS ?? 100);
// One vendor per process: the prefix is implied (HAProxy strips the route's
// context, so a route "/anthropic" in front of a STANDIN_VENDOR=anthropic
// stand-in delivers /v1/messages).
const VENDOR = process.env.STANDIN_VENDOR || '';
if (VENDOR && !['openai', 'azure', 'anthropic', 'gemini', 'mistral'].includes(VENDOR)) {
	console.error('vendors.js: STANDIN_VENDOR must be openai, azure, anthropic, gemini or mistral');
	process.exit(2);
}
if (!SECRET) {
	console.error('vendors.js: STANDIN_SECRET must be set');
	process.exit(2);
}
if (!Number.isFinite(INTERVAL_MS) || INTERVAL_MS < 0) {
	console.error('vendors.js: STANDIN_INTERVAL_MS must be a number >= 0');
	process.exit(2);
}

const CLIENT_KEY_RE = /ka_[A-Za-z0-9]{20,}/;
// Every header that some vendor or proxy reads a credential from.
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'x-api-key', 'api-key', 'x-goog-api-key'];
// Every query parameter some API reads a key from.
const CREDENTIAL_PARAMS = ['key', 'api_key', 'api-key', 'apikey'];

// The vendor's own carriers: [kind, name, scheme prefix of the value].
const OWN = {
	openai: [['header', 'authorization', 'Bearer ']],
	azure: [['header', 'api-key', '']],
	anthropic: [['header', 'x-api-key', ''], ['header', 'authorization', 'Bearer ']],
	gemini: [['header', 'x-goog-api-key', ''], ['query', 'key', '']],
	mistral: [['header', 'authorization', 'Bearer ']],
};

let seen = [];
let counter = 0;

const secretDigest = crypto.createHash('sha256').update(SECRET).digest();
function isSecret(v) {
	return crypto.timingSafeEqual(crypto.createHash('sha256').update(String(v)).digest(), secretDigest);
}

/* ---- each vendor's error bodies -------------------------------------------------- */

const GOOGLE_STATUS = {
	400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
	409: 'ABORTED', 429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 500: 'INTERNAL', 501: 'NOT_IMPLEMENTED',
	503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED',
};
const ANTHROPIC_TYPE = {
	400: 'invalid_request_error', 401: 'authentication_error', 402: 'billing_error', 403: 'permission_error',
	404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error',
	504: 'timeout_error', 529: 'overloaded_error',
};
const DEFAULT_MESSAGE = {
	400: 'Bad request.',
	401: 'Unauthorized.',
	403: 'You are not allowed to use this resource.',
	404: 'Not found.',
	429: 'Rate limit exceeded. Please retry later.',
	500: 'Internal server error.',
	503: 'The service is temporarily unavailable.',
	529: 'Overloaded.',
};

/* The body the real vendor sends for <status>, with <message>; `extra` goes
 * at the top level (the SDKs ignore unknown top-level fields). */
function errorBody(vendor, status, message, extra = {}) {
	message = message || DEFAULT_MESSAGE[status] || `HTTP ${status}`;
	switch (vendor) {
	case 'openai': {
		const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
		const code = status === 401 ? 'invalid_api_key' : status === 429 ? 'rate_limit_exceeded' : null;
		return { error: { message, type, param: null, code }, ...extra };
	}
	case 'azure':
		return { error: { code: String(status), message }, ...extra };
	case 'anthropic':
		return {
			type: 'error',
			error: { type: ANTHROPIC_TYPE[status] || (status >= 500 ? 'api_error' : 'invalid_request_error'), message },
			request_id: `req_standin${++counter}`,
			...extra,
		};
	case 'gemini':
		return { error: { code: status, message, status: GOOGLE_STATUS[status] || 'UNKNOWN' }, ...extra };
	case 'mistral':
		// Mistral's gateway answers 401 with {"detail":"Unauthorized"}; the API
		// itself uses an OpenAI-like flat object.
		if (status === 401)
			return { detail: 'Unauthorized', ...extra };
		return {
			object: 'error', message,
			type: status === 429 ? 'rate_limited' : status >= 500 ? 'internal_server_error' : 'invalid_request_error',
			param: null, code: status === 429 ? '1300' : null, ...extra,
		};
	default:
		return { error: { message }, ...extra };
	}
}

/* What the real vendor answers to a missing or a wrong credential. */
function authFailure(vendor, missing) {
	switch (vendor) {
	case 'openai':
		return [401, errorBody('openai', 401, missing
			? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
			: 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.')];
	case 'azure':
		return [401, errorBody('azure', 401, 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.')];
	case 'anthropic':
		return [401, errorBody('anthropic', 401, missing ? 'x-api-key header is required' : 'invalid x-api-key')];
	case 'gemini': {
		// Gemini answers a wrong key with 400 INVALID_ARGUMENT (reason API_KEY_INVALID)
		// and no key at all with 403 PERMISSION_DENIED; it never sends 401 for API keys.
		if (missing) {
			const b = errorBody('gemini', 403, 'Method doesn\'t allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.');
			return [403, b];
		}
		const b = errorBody('gemini', 400, 'API key not valid. Please pass a valid API key.');
		b.error.details = [{
			'@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID', domain: 'googleapis.com',
			metadata: { service: 'generativelanguage.googleapis.com' },
		}];
		return [400, b];
	}
	case 'mistral':
		return [401, errorBody('mistral', 401)];
	}
	return [401, { error: 'unauthorized' }];
}

/* ---- plumbing ------------------------------------------------------------------------ */

function send(res, status, obj, headers = {}) {
	const body = JSON.stringify(obj);
	res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
	res.end(body);
}

/* Header (name, value) pairs as received, duplicates kept: Node's req.headers
 * drops a second Authorization, which is exactly what a test must see. */
function headerPairs(req) {
	const out = [];
	for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
		out.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
	return out;
}

function redactedQuery(url) {
	const q = new URLSearchParams(url.search);
	const out = new URLSearchParams();
	for (const [k, v] of q) {
		if (CREDENTIAL_PARAMS.includes(k.toLowerCase()))
			out.append(k, '<redacted>');
		else
			out.append(k, v.replace(new RegExp(CLIENT_KEY_RE.source, 'g'), '<client-key>'));
	}
	const s = out.toString();
	return s ? `?${s}` : '';
}

/* <p> with every client key in it replaced (a key in the path is refused,
 * but the record must not keep it). */
function redactedPath(p) {
	return p.replace(new RegExp(CLIENT_KEY_RE.source, 'g'), '<client-key>');
}

/* The request-target as the stand-in received it, its query redacted. */
function redactedTarget(raw) {
	const q = raw.indexOf('?');
	if (q < 0)
		return redactedPath(raw);
	return redactedPath(raw.slice(0, q)) + redactedQuery(new URL(raw, 'http://stand-in'));
}

/* Checks every vendor shares. Returns null when the request may proceed, else
 * [status, body] to answer; sets rec.credential / rec.refused. */
function checkCredentials(vendor, req, url, rec) {
	const pairs = headerPairs(req);
	const params = [...new URLSearchParams(url.search)];
	const refuse = (reason, carrier, message) => {
		rec.refused = reason;
		rec.carrier = carrier;
		return [400, errorBody(vendor, 400, `stand-in ${vendor}: ${message}`, { standin_refusal: { reason, carrier } })];
	};

	// 1. Anything that looks like a keyauth client key, anywhere.
	for (const [name, value] of pairs) {
		if (CLIENT_KEY_RE.test(value))
			return refuse('client_key_leaked', `header:${name}`, `a client key reached the provider in header "${name}"`);
	}
	for (const [name, value] of params) {
		if (CLIENT_KEY_RE.test(value) || CLIENT_KEY_RE.test(name))
			return refuse('client_key_leaked', `query:${name}`, `a client key reached the provider in query parameter "${name}"`);
	}
	if (CLIENT_KEY_RE.test(decodeURIComponent(url.pathname)))
		return refuse('client_key_leaked', 'path', 'a client key reached the provider in the path');

	// 2. Credential carriers this vendor does not use.
	const own = OWN[vendor];
	const isOwn = (kind, name) => own.some(([k, n]) => k === kind && n === name);
	for (const [name] of pairs) {
		if (CREDENTIAL_HEADERS.includes(name) && !isOwn('header', name))
			return refuse('foreign_carrier', `header:${name}`, `credential header "${name}" is not one ${vendor} uses`);
	}
	for (const [name] of params) {
		if (CREDENTIAL_PARAMS.includes(name.toLowerCase()) && !isOwn('query', name))
			return refuse('foreign_carrier', `query:${name}`, `credential query parameter "${name}" is not one ${vendor} uses`);
	}

	// 3. Exactly one credential, in one of the vendor's own carriers.
	const found = [];
	for (const [kind, name, scheme] of own) {
		const values = kind === 'header'
			? pairs.filter(([n]) => n === name).map(([, v]) => v)
			: params.filter(([n]) => n === name).map(([, v]) => v);
		for (const v of values)
			found.push({ carrier: `${kind}:${name}`, scheme, value: v });
	}
	if (found.length > 1) {
		const names = [...new Set(found.map((f) => f.carrier))].join(', ');
		return refuse('several_credentials', names, `more than one credential reached the provider (${names})`);
	}
	if (found.length === 0) {
		rec.credential = { carrier: null, ok: false };
		return authFailure(vendor, true);
	}
	const f = found[0];
	let ok = false;
	if (f.scheme === '') {
		ok = isSecret(f.value);
	} else if (f.value.slice(0, f.scheme.length).toLowerCase() === f.scheme.toLowerCase()) {
		ok = isSecret(f.value.slice(f.scheme.length));
	}
	rec.credential = { carrier: f.carrier, ok };
	if (!ok)
		return authFailure(vendor, false);
	return null;
}

function eventsWanted(req) {
	const n = Number(req.headers['x-standin-events'] ?? 5);
	return Number.isInteger(n) && n >= 1 ? Math.min(n, 1000) : 5;
}

function chunkText(i, n) {
	return `chunk ${i + 1}/${n}. `;
}

/* Streams `frames` (strings, each one whole SSE event) STANDIN_INTERVAL_MS apart;
 * `lead` frames go out at once with the headers, `tail` frames right after the last. */
function streamFrames(req, res, lead, frames, tail) {
	res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
	res.flushHeaders();
	req.socket.setNoDelay(true);
	let i = 0;
	let timer = null;
	let closed = false;
	res.on('close', () => {
		closed = true;
		if (timer)
			clearTimeout(timer);
	});
	for (const f of lead)
		res.write(f);
	const next = () => {
		timer = null;
		if (closed)
			return;
		res.write(frames[i++]);
		if (i < frames.length) {
			timer = setTimeout(next, INTERVAL_MS);
			return;
		}
		for (const f of tail)
			res.write(f);
		res.end();
	};
	next();
}

const sse = (obj) => `data: ${JSON.stringify(obj)}\n\n`;
const sseNamed = (event, obj) => `event: ${event}\ndata: ${JSON.stringify(obj)}\n\n`;

/* ---- vendors ----------------------------------------------------------------------------- */

function openaiLike(vendor, req, res, body, model, rec) {
	const id = `chatcmpl-standin${++counter}`;
	const created = Math.floor(Date.now() / 1000);
	const text = `Hello from the stand-in ${vendor} provider.`;
	if (!body.stream) {
		return send(res, 200, {
			id, object: 'chat.completion', created, model,
			choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: text } }],
			usage: { prompt_tokens: 1, completion_tokens: 6, total_tokens: 7 },
		});
	}
	const n = eventsWanted(req);
	rec.events = n;
	const chunk = (delta, finish) => sse({
		id, object: 'chat.completion.chunk', created, model,
		choices: [{ index: 0, delta, finish_reason: finish }],
	});
	const frames = [];
	for (let i = 0; i < n; i++)
		frames.push(chunk(i === 0 ? { role: 'assistant', content: chunkText(i, n) } : { content: chunkText(i, n) }, null));
	streamFrames(req, res, [], frames, [chunk({}, 'stop'), 'data: [DONE]\n\n']);
}

function listModels(vendor, res) {
	if (vendor === 'anthropic') {
		return send(res, 200, {
			data: [{ type: 'model', id: 'claude-standin', display_name: 'Claude stand-in', created_at: '2026-01-01T00:00:00Z' }],
			has_more: false, first_id: 'claude-standin', last_id: 'claude-standin',
		});
	}
	return send(res, 200, { object: 'list', data: [{ id: `${vendor}-standin-model`, object: 'model', created: 0, owned_by: 'keyauth' }] });
}

function anthropicMessages(req, res, body, rec) {
	const version = req.headers['anthropic-version'];
	if (!version)
		return send(res, 400, errorBody('anthropic', 400, 'anthropic-version: header is required'));
	if (!['2023-01-01', '2023-06-01', '2026-10-21'].includes(version))
		return send(res, 400, errorBody('anthropic', 400, `anthropic-version: invalid version: ${String(version).slice(0, 40)}`));
	if (version === '2026-10-21') {
		for (const p of ['temperature', 'top_p', 'top_k']) {
			if (p in body)
				return send(res, 400, errorBody('anthropic', 400, `${p}: Extra inputs are not permitted`));
		}
	}
	if (!Number.isInteger(body.max_tokens) || !Array.isArray(body.messages) || typeof body.model !== 'string')
		return send(res, 400, errorBody('anthropic', 400, 'model, max_tokens and messages are required'));
	const id = `msg_standin${++counter}`;
	const model = body.model;
	const text = 'Hello from the stand-in anthropic provider.';
	if (!body.stream) {
		return send(res, 200, {
			id, type: 'message', role: 'assistant', model,
			content: [{ type: 'text', text }],
			stop_reason: 'end_turn', stop_sequence: null,
			usage: { input_tokens: 1, output_tokens: 6 },
		});
	}
	const n = eventsWanted(req);
	rec.events = n;
	const lead = [
		sseNamed('message_start', {
			type: 'message_start',
			message: {
				id, type: 'message', role: 'assistant', model, content: [],
				stop_reason: null, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 },
			},
		}),
		sseNamed('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
		sseNamed('ping', { type: 'ping' }),
	];
	const frames = [];
	for (let i = 0; i < n; i++)
		frames.push(sseNamed('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: chunkText(i, n) } }));
	const tail = [
		sseNamed('content_block_stop', { type: 'content_block_stop', index: 0 }),
		sseNamed('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: n } }),
		sseNamed('message_stop', { type: 'message_stop' }),
	];
	streamFrames(req, res, lead, frames, tail);
}

function geminiGenerate(req, res, url, model, method, body, rec) {
	if (!Array.isArray(body.contents))
		return send(res, 400, errorBody('gemini', 400, '* GenerateContentRequest.contents: contents is not specified'));
	const candidate = (text, finish) => ({
		content: { parts: [{ text }], role: 'model' },
		...(finish ? { finishReason: finish } : {}),
		index: 0,
	});
	const responseId = `standin${++counter}`;
	if (method === 'generateContent') {
		return send(res, 200, {
			candidates: [candidate('Hello from the stand-in gemini provider.', 'STOP')],
			usageMetadata: { promptTokenCount: 1, candidatesTokenCount: 6, totalTokenCount: 7 },
			modelVersion: model, responseId,
		});
	}
	if (url.searchParams.get('alt') !== 'sse')
		return send(res, 400, errorBody('gemini', 400, 'stand-in gemini: only alt=sse streaming is implemented'));
	const n = eventsWanted(req);
	rec.events = n;
	const frames = [];
	for (let i = 0; i < n; i++) {
		// Gemini separates its events with CRLF CRLF.
		frames.push(`data: ${JSON.stringify({
			candidates: [candidate(chunkText(i, n), i === n - 1 ? 'STOP' : undefined)],
			usageMetadata: { promptTokenCount: 1, candidatesTokenCount: i + 1, totalTokenCount: i + 2 },
			modelVersion: model, responseId,
		})}\r\n\r\n`);
	}
	streamFrames(req, res, [], frames, []);
}

/* ---- routing ----------------------------------------------------------------------------- */

function route(vendor, rest, req, res, url, body, rec) {
	const notFound = () => send(res, 404, vendor === 'azure'
		? errorBody('azure', 404, 'Resource not found')
		: errorBody(vendor, 404, `stand-in ${vendor}: no route for ${req.method} ${rest}`));
	let m;
	if (vendor === 'openai' || vendor === 'mistral') {
		if (req.method === 'GET' && rest === '/v1/models')
			return listModels(vendor, res);
		if (req.method === 'POST' && rest === '/v1/chat/completions') {
			if (typeof body.model !== 'string' || !Array.isArray(body.messages))
				return send(res, 400, errorBody(vendor, 400, 'model and messages are required'));
			return openaiLike(vendor, req, res, body, body.model, rec);
		}
		return notFound();
	}
	if (vendor === 'azure') {
		m = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(rest);
		if (req.method !== 'POST' || !m)
			return notFound();
		// Azure answers a missing api-version with 404 Resource not found.
		if (!url.searchParams.get('api-version'))
			return notFound();
		if (!Array.isArray(body.messages))
			return send(res, 400, errorBody('azure', 400, "'messages' is a required property"));
		return openaiLike('azure', req, res, body, decodeURIComponent(m[1]), rec);
	}
	if (vendor === 'anthropic') {
		if (req.method === 'GET' && rest === '/v1/models')
			return listModels(vendor, res);
		if (req.method === 'POST' && rest === '/v1/messages')
			return anthropicMessages(req, res, body, rec);
		return notFound();
	}
	if (vendor === 'gemini') {
		m = /^\/v1beta\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(rest);
		if (req.method === 'POST' && m)
			return geminiGenerate(req, res, url, decodeURIComponent(m[1]), m[2], body, rec);
		return notFound();
	}
	return notFound();
}

const server = http.createServer((req, res) => {
	const chunks = [];
	req.on('data', (c) => chunks.push(c));
	req.on('end', () => {
		const url = new URL(req.url, 'http://stand-in');
		if (url.pathname === '/__requests')
			return send(res, 200, seen);
		if (url.pathname === '/__reset') {
			seen = [];
			return send(res, 200, { ok: true });
		}
		const m = /^\/(openai|azure|anthropic|gemini|mistral)(\/.*)$/.exec(
			VENDOR ? `/${VENDOR}${url.pathname}` : url.pathname);
		const rec = {
			method: req.method, vendor: m ? m[1] : null, path: redactedPath(url.pathname), query: redactedQuery(url),
			target: redactedTarget(req.url), host: req.headers.host ?? null,
			headers: headerPairs(req).map(([n]) => n),
			credential: null, refused: null, carrier: null, status: null, events: null,
		};
		seen.push(rec);
		res.on('finish', () => { rec.status = res.statusCode; });
		if (!m) {
			rec.status = 404;
			return send(res, 404, { error: { message: 'stand-in: unknown vendor prefix (expected /openai, /azure, /anthropic, /gemini or /mistral)' } });
		}
		const [, vendor, rest] = m;
		const failure = checkCredentials(vendor, req, url, rec);
		if (failure)
			return send(res, failure[0], failure[1]);

		const forced = Number(req.headers['x-standin-status']);
		if (Number.isInteger(forced) && forced >= 400 && forced <= 599) {
			const extra = {};
			if (req.headers['x-standin-retry-after'])
				extra['retry-after'] = String(req.headers['x-standin-retry-after']);
			return send(res, forced, errorBody(vendor, forced, `stand-in ${vendor}: forced status ${forced}`), extra);
		}

		let body = {};
		const raw = Buffer.concat(chunks).toString('utf8');
		if (raw !== '') {
			try {
				body = JSON.parse(raw);
			} catch {
				return send(res, 400, errorBody(vendor, 400, 'the request body is not valid JSON'));
			}
			if (body === null || typeof body !== 'object')
				return send(res, 400, errorBody(vendor, 400, 'the request body must be a JSON object'));
		}
		return route(vendor, rest, req, res, url, body, rec);
	});
});

// WebSocket upgrades (OpenAI's Realtime API, GET /v1/realtime): the same
// credential checks as any request, then an echo of every message.
const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
	const url = new URL(req.url, 'http://stand-in');
	const m = /^\/(openai|azure|anthropic|gemini|mistral)(\/.*)$/.exec(
		VENDOR ? `/${VENDOR}${url.pathname}` : url.pathname);
	const rec = {
		method: req.method, vendor: m ? m[1] : null, path: redactedPath(url.pathname), query: redactedQuery(url),
		target: redactedTarget(req.url), host: req.headers.host ?? null,
		headers: headerPairs(req).map(([n]) => n), upgrade: true,
		credential: null, refused: null, carrier: null, status: null, events: null,
	};
	seen.push(rec);
	const fail = !m ? [404, { error: { message: 'stand-in: unknown vendor prefix' } }]
		: m[2] !== '/v1/realtime' ? [404, errorBody(m[1], 404, `stand-in ${m[1]}: no WebSocket at ${m[2]}`)]
		: checkCredentials(m[1], req, url, rec);
	if (fail) {
		const body = JSON.stringify(fail[1]);
		rec.status = fail[0];
		socket.end(`HTTP/1.1 ${fail[0]} Refused\r\ncontent-type: application/json\r\n` +
			`content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
		return;
	}
	rec.status = 101;
	wss.handleUpgrade(req, socket, head, (ws) => {
		ws.on('message', (data, binary) => ws.send(data, { binary }));
	});
});

server.listen(port, '127.0.0.1', () => {
	console.log(`listening ${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM'])
	process.on(sig, () => {
		server.close(() => process.exit(0));
		server.closeAllConnections();
		for (const c of wss.clients)
			c.terminate();
	});
