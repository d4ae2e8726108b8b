// SPDX-License-Identifier: Apache-2.0
// One small wrapper per official vendor SDK, all with the same interface, so a
// test can run the same scenario through every SDK:
//
//   SDKS[name] = {
//     label,            'openai 6.49.0' etc. (package and version actually loaded)
//     vendor,           stand-in vendor prefix this SDK talks to (see vendors.js)
//     carrier,          where the SDK puts apiKey: { header, scheme } (scheme 'Bearer ' or '')
//     suffix,           what the SDK appends to baseURL, e.g. '/v1/messages'
//     standinBase(o),   baseURL that reaches the stand-in at origin o directly
//     make({ baseURL, apiKey, headers?, timeoutMs? }) -> client  (retries off)
//     call(client, { headers? }?) -> text of one non-streamed completion
//     stream(client, onEvent, { headers?, events? }?) -> [chunk texts]; onEvent(text)
//                       is called as each chunk arrives
//     classify(err) -> 'auth' | 'permission' | 'rate_limit' | 'unavailable' | 'other'
//     status(err) -> HTTP status the SDK recorded, or null
//     message(err) -> the human message the SDK took from the error body, or null
//   }
//
// classify() uses each SDK's own error classes: openai and @anthropic-ai/sdk
// have one class per status; @google/genai throws ApiError with .status;
// @mistralai/mistralai throws SDKError (a MistralError) with .statusCode.
// 'unavailable' is 503 (and Anthropic's 529 overloaded).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, { AzureOpenAI } from 'openai';
import Anthropic0 from 'anthropic-sdk-0';
import Anthropic1 from 'anthropic-sdk-1';
import { GoogleGenAI, ApiError as GenAIApiError } from '@google/genai';
import { Mistral } from '@mistralai/mistralai';
import { MistralError } from '@mistralai/mistralai/models/errors';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// Not require('<pkg>/package.json'): openai's "exports" does not list it.
const version = (pkg) => JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', pkg, 'package.json'), 'utf8')).version;

const DEFAULT_TIMEOUT_MS = 10000;
const PROMPT = 'Say hello.';

function merge(...hs) {
	return Object.assign({}, ...hs.filter(Boolean));
}
function eventsHeader(opts) {
	return opts?.events ? { 'x-standin-events': String(opts.events) } : {};
}

/* ---- openai and AzureOpenAI ------------------------------------------------------------ */

function openaiClassify(err) {
	if (err instanceof OpenAI.AuthenticationError)
		return 'auth';
	if (err instanceof OpenAI.PermissionDeniedError)
		return 'permission';
	if (err instanceof OpenAI.RateLimitError)
		return 'rate_limit';
	if (err instanceof OpenAI.InternalServerError && err.status === 503)
		return 'unavailable';
	return 'other';
}

const openaiShared = {
	async call(client, opts = {}) {
		const r = await client.chat.completions.create(
			{ model: client.__model, messages: [{ role: 'user', content: PROMPT }] },
			{ headers: opts.headers });
		return r.choices[0].message.content;
	},
	async stream(client, onEvent, opts = {}) {
		const s = await client.chat.completions.create(
			{ model: client.__model, messages: [{ role: 'user', content: PROMPT }], stream: true },
			{ headers: merge(eventsHeader(opts), opts.headers) });
		const out = [];
		for await (const chunk of s) {
			const t = chunk.choices?.[0]?.delta?.content;
			if (t) {
				out.push(t);
				onEvent?.(t);
			}
		}
		return out;
	},
	classify: openaiClassify,
	status: (err) => (err instanceof OpenAI.APIError ? err.status ?? null : null),
	// APIError.error is the body's "error" object.
	message: (err) => (err instanceof OpenAI.APIError && typeof err.error?.message === 'string' ? err.error.message : null),
};

const openai = {
	label: `openai ${version('openai')}`,
	vendor: 'openai',
	carrier: { header: 'authorization', scheme: 'Bearer ' },
	suffix: '/chat/completions',
	standinBase: (origin) => `${origin}/openai/v1`,
	make({ baseURL, apiKey, headers, timeoutMs }) {
		const c = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: timeoutMs ?? DEFAULT_TIMEOUT_MS, defaultHeaders: headers });
		c.__model = 'gpt-standin';
		return c;
	},
	...openaiShared,
};

const azure = {
	label: `openai ${version('openai')} AzureOpenAI`,
	vendor: 'azure',
	carrier: { header: 'api-key', scheme: '' },
	suffix: '/deployments/{deployment}/chat/completions?api-version=...',
	standinBase: (origin) => `${origin}/azure/openai`,
	make({ baseURL, apiKey, headers, timeoutMs }) {
		const c = new AzureOpenAI({
			baseURL, apiKey, apiVersion: '2024-10-21', maxRetries: 0,
			timeout: timeoutMs ?? DEFAULT_TIMEOUT_MS, defaultHeaders: headers,
		});
		c.__model = 'standin-deployment';   // AzureOpenAI puts the model in the path as the deployment
		return c;
	},
	...openaiShared,
};

/* ---- @anthropic-ai/sdk 0.x and 1.x --------------------------------------------------- */

function anthropicWrapper(Anthropic, pkg, carrier) {
	const v = version(pkg);
	const major1 = Number(v.split('.')[0]) >= 1;
	return {
		label: `@anthropic-ai/sdk ${v}`,
		vendor: 'anthropic',
		carrier,
		suffix: '/v1/messages',
		standinBase: (origin) => `${origin}/anthropic`,
		make({ baseURL, apiKey, headers, timeoutMs }) {
			return new Anthropic({ baseURL, apiKey, maxRetries: 0, timeout: timeoutMs ?? DEFAULT_TIMEOUT_MS, defaultHeaders: headers });
		},
		async call(client, opts = {}) {
			const r = await client.messages.create(
				{ model: 'claude-standin', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] },
				{ headers: opts.headers });
			return r.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
		},
		async stream(client, onEvent, opts = {}) {
			const s = await client.messages.create(
				{ model: 'claude-standin', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }], stream: true },
				{ headers: merge(eventsHeader(opts), opts.headers) });
			const out = [];
			for await (const ev of s) {
				if (ev.type === 'content_block_delta' && ev.delta?.type === 'text_delta') {
					out.push(ev.delta.text);
					onEvent?.(ev.delta.text);
				}
			}
			return out;
		},
		classify(err) {
			if (err instanceof Anthropic.AuthenticationError)
				return 'auth';
			if (err instanceof Anthropic.PermissionDeniedError)
				return 'permission';
			if (err instanceof Anthropic.RateLimitError)
				return 'rate_limit';
			// 1.x has ServiceUnavailableError (503) and OverloadedError (529);
			// 0.x only InternalServerError for every 5xx.
			if (err instanceof Anthropic.InternalServerError && (err.status === 503 || err.status === 529))
				return 'unavailable';
			return 'other';
		},
		status: (err) => (err instanceof Anthropic.APIError ? err.status ?? null : null),
		message(err) {
			if (!(err instanceof Anthropic.APIError))
				return null;
			// 0.x: .error is the whole body {"type":"error","error":{...}}; 1.x also
			// exposes the inner message as .apiMessage.
			if (major1 && typeof err.apiMessage === 'string')
				return err.apiMessage;
			const m = err.error?.error?.message;
			return typeof m === 'string' ? m : null;
		},
	};
}

// 0.x sends apiKey as X-Api-Key; 1.x (API version 2026-10-21) as Authorization: Bearer.
const anthropic0 = anthropicWrapper(Anthropic0, 'anthropic-sdk-0', { header: 'x-api-key', scheme: '' });
const anthropic1 = anthropicWrapper(Anthropic1, 'anthropic-sdk-1', { header: 'authorization', scheme: 'Bearer ' });

/* ---- @google/genai ------------------------------------------------------------------------ */

function genaiBody(err) {
	// ApiError.message is the JSON error body, stringified.
	try {
		return JSON.parse(err.message);
	} catch {
		return null;
	}
}

const gemini = {
	label: `@google/genai ${version('@google/genai')}`,
	vendor: 'gemini',
	carrier: { header: 'x-goog-api-key', scheme: '' },
	suffix: '/v1beta/models/{model}:generateContent | :streamGenerateContent?alt=sse',
	standinBase: (origin) => `${origin}/gemini`,
	make({ baseURL, apiKey, headers, timeoutMs }) {
		// No httpOptions.retryOptions: @google/genai then makes exactly one attempt.
		return new GoogleGenAI({
			apiKey,
			httpOptions: { baseUrl: baseURL, timeout: timeoutMs ?? DEFAULT_TIMEOUT_MS, headers: headers ?? {} },
		});
	},
	async call(client, opts = {}) {
		const r = await client.models.generateContent({
			model: 'gemini-standin', contents: PROMPT,
			config: opts.headers ? { httpOptions: { headers: opts.headers } } : undefined,
		});
		return r.text;
	},
	async stream(client, onEvent, opts = {}) {
		const h = merge(eventsHeader(opts), opts.headers);
		const s = await client.models.generateContentStream({
			model: 'gemini-standin', contents: PROMPT,
			config: Object.keys(h).length ? { httpOptions: { headers: h } } : undefined,
		});
		const out = [];
		for await (const chunk of s) {
			const t = chunk.text;
			if (t) {
				out.push(t);
				onEvent?.(t);
			}
		}
		return out;
	},
	classify(err) {
		if (!(err instanceof GenAIApiError))
			return 'other';
		switch (err.status) {
		case 401: return 'auth';
		case 403: return 'permission';
		case 429: return 'rate_limit';
		case 503: return 'unavailable';
		default: return 'other';
		}
	},
	status: (err) => (err instanceof GenAIApiError ? err.status ?? null : null),
	message(err) {
		if (!(err instanceof GenAIApiError))
			return null;
		const m = genaiBody(err)?.error?.message;
		return typeof m === 'string' ? m : null;
	},
};

/* ---- @mistralai/mistralai ---------------------------------------------------------------------- */

const mistral = {
	label: `@mistralai/mistralai ${version('@mistralai/mistralai')}`,
	vendor: 'mistral',
	carrier: { header: 'authorization', scheme: 'Bearer ' },
	suffix: '/v1/chat/completions',
	standinBase: (origin) => `${origin}/mistral`,
	make({ baseURL, apiKey, headers, timeoutMs }) {
		const c = new Mistral({ serverURL: baseURL, apiKey, retryConfig: { strategy: 'none' }, timeoutMs: timeoutMs ?? DEFAULT_TIMEOUT_MS });
		c.__headers = headers ?? {};
		return c;
	},
	async call(client, opts = {}) {
		const r = await client.chat.complete(
			{ model: 'mistral-standin', messages: [{ role: 'user', content: PROMPT }] },
			{ headers: merge(client.__headers, opts.headers) });
		return r.choices[0].message.content;
	},
	async stream(client, onEvent, opts = {}) {
		const s = await client.chat.stream(
			{ model: 'mistral-standin', messages: [{ role: 'user', content: PROMPT }] },
			{ headers: merge(client.__headers, eventsHeader(opts), opts.headers) });
		const out = [];
		for await (const ev of s) {
			const t = ev.data?.choices?.[0]?.delta?.content;
			if (typeof t === 'string' && t) {
				out.push(t);
				onEvent?.(t);
			}
		}
		return out;
	},
	classify(err) {
		if (!(err instanceof MistralError))
			return 'other';
		switch (err.statusCode) {
		case 401: return 'auth';
		case 403: return 'permission';
		case 429: return 'rate_limit';
		case 503: return 'unavailable';
		default: return 'other';
		}
	},
	status: (err) => (err instanceof MistralError ? err.statusCode ?? null : null),
	message(err) {
		if (!(err instanceof MistralError))
			return null;
		// MistralError.body is the raw response text; Mistral's bodies carry
		// "message" (API) or "detail" (its gateway's 401).
		try {
			const b = JSON.parse(err.body);
			const m = b?.message ?? b?.detail ?? b?.error?.message;
			return typeof m === 'string' ? m : null;
		} catch {
			return null;
		}
	},
};

export const SDKS = { openai, azure, anthropic0, anthropic1, gemini, mistral };
