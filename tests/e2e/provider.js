// SPDX-License-Identifier: Apache-2.0
// A local stand-in for an OpenAI-compatible provider, for `make run` and the
// end-to-end tests. It answers GET /v1/models and POST /v1/chat/completions,
// and records what reached it (method, path, query, headers) so a test can
// prove which credentials went upstream: GET /__requests lists them,
// POST /__reset clears the list. Those two paths are only reachable on the
// provider's own port, never through HAProxy.
//
// usage: node provider.js [PORT]   (0 or absent: a free port; prints "listening PORT")
import http from 'node:http';

const port = Number(process.argv[2] || 0);
let seen = [];

function send(res, status, obj) {
	const body = JSON.stringify(obj);
	res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
	res.end(body);
}

const server = http.createServer((req, res) => {
	let body = '';
	req.on('data', (c) => { body += c; });
	req.on('end', () => {
		const url = new URL(req.url, 'http://provider');
		if (url.pathname === '/__requests') return send(res, 200, seen);
		if (url.pathname === '/__reset') { seen = []; return send(res, 200, { ok: true }); }
		seen.push({ method: req.method, path: url.pathname, query: url.search, headers: req.headers });
		const auth = req.headers.authorization || '';
		const received = { authorization_present: auth !== '', provider_credential: auth.startsWith('Bearer ') ? auth.slice(7) : '' };
		if (req.method === 'GET' && url.pathname.endsWith('/v1/models')) {
			return send(res, 200, { object: 'list', data: [{ id: 'stand-in-model', object: 'model', created: 0, owned_by: 'keyauth' }], received });
		}
		if (req.method === 'POST' && url.pathname.endsWith('/v1/chat/completions')) {
			let model = 'stand-in-model';
			try { model = JSON.parse(body).model || model; } catch { /* not JSON: keep default */ }
			return send(res, 200, {
				id: 'chatcmpl-standin', object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
				choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Hello from the stand-in provider.' } }],
				usage: { prompt_tokens: 1, completion_tokens: 6, total_tokens: 7 },
				received,
			});
		}
		return send(res, 404, { error: { message: 'not found on the stand-in provider', type: 'invalid_request_error', param: null, code: null } });
	});
});

server.listen(port, '127.0.0.1', () => {
	console.log(`listening ${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
