-- SPDX-License-Identifier: Apache-2.0
--
-- mix.lua: wrk script for the end-to-end benchmark (tests/bench/e2e.sh).
--
-- Each request is a small POST to the URL given to wrk, carrying a valid key
-- (MIX_VALID_PCT, default 80), a well-formed unknown key (the rest) or no key
-- at all (MIX_MISSING_PCT, default 5), as "Authorization: Bearer <key>", and
-- an "x-bench-kind" header naming its kind; the upstream stub echoes that
-- header back as "x-kind". Keys come from 0600 files named by MIX_KEYS and
-- MIX_INVALID (never from argv) and are never printed. Requests are
-- pre-formatted at start (a pool per wrk thread) so that wrk spends its CPU
-- on I/O, not on Lua.
--
-- Checking: every response must be 200 or 401. With MIX_EXPECT=auth a 200
-- must echo kind "valid" (anything else let a bad key through), and the 200
-- and 401 counts must match what was sent within 2 x MIX_CONNS (requests still
-- in flight when wrk stops, requests re-sent after a reconnection), so with
-- 100% valid keys any 401 is an error; with MIX_EXPECT=noauth every response
-- must be 200.
-- done() prints one "wrk key=value ..." line; errors=0 means all was as
-- expected (socket errors and timeouts included).

local expect_auth = (os.getenv("MIX_EXPECT") or "auth") ~= "noauth"
local valid_pct = tonumber(os.getenv("MIX_VALID_PCT") or "80")
local missing_pct = tonumber(os.getenv("MIX_MISSING_PCT") or "5")
local conns = tonumber(os.getenv("MIX_CONNS") or "0")
local header = os.getenv("MIX_HEADER") or "Authorization"
local pool_size = tonumber(os.getenv("MIX_POOL") or "8192")
local body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

local threads = {}
local next_id = 0

function setup(thread)
	next_id = next_id + 1
	thread:set("id", next_id)
	table.insert(threads, thread)
end

local function read_keys(var)
	local path = os.getenv(var)
	local keys = {}
	if path == nil then
		return keys
	end
	local f = assert(io.open(path, "r"), var .. ": cannot open the key file")
	for line in f:lines() do
		if #line > 0 then
			keys[#keys + 1] = line
		end
	end
	f:close()
	return keys
end

local pool, pool_kind = {}, {}
-- per-thread counters, read by done() through thread:get()
sent_valid, sent_invalid, sent_missing = 0, 0, 0
n200_valid, n200_other, n401, nother = 0, 0, 0, 0

function init(args)
	local valid = read_keys("MIX_KEYS")
	local invalid = read_keys("MIX_INVALID")
	math.randomseed(os.time() * 1000 + (id or 0))
	if valid_pct > 0 then
		assert(#valid > 0, "MIX_KEYS: no valid keys")
	end
	if 100 - valid_pct - missing_pct > 0 then
		assert(#invalid > 0, "MIX_INVALID: no invalid keys")
	end
	for i = 1, pool_size do
		local r = math.random(100)
		local h = { ["Content-Type"] = "application/json" }
		local kind
		if r <= valid_pct then
			kind = 1
			h[header] = "Bearer " .. valid[math.random(#valid)]
		elseif r <= valid_pct + missing_pct then
			kind = 3
		else
			kind = 2
			h[header] = "Bearer " .. invalid[math.random(#invalid)]
		end
		h["x-bench-kind"] = ({ "valid", "invalid", "missing" })[kind]
		pool[i] = wrk.format("POST", nil, h, body)
		pool_kind[i] = kind
	end
	valid, invalid = nil, nil
end

function request()
	local i = math.random(pool_size)
	local k = pool_kind[i]
	if k == 1 then
		sent_valid = sent_valid + 1
	elseif k == 2 then
		sent_invalid = sent_invalid + 1
	else
		sent_missing = sent_missing + 1
	end
	return pool[i]
end

function response(status, headers, body)
	if status == 200 then
		local kind = headers["x-kind"] or headers["X-Kind"]
		if kind == "valid" then
			n200_valid = n200_valid + 1
		else
			n200_other = n200_other + 1
		end
	elseif status == 401 then
		n401 = n401 + 1
	else
		nother = nother + 1
	end
end

function done(summary, latency, requests)
	local t = { sent_valid = 0, sent_invalid = 0, sent_missing = 0,
	            n200_valid = 0, n200_other = 0, n401 = 0, nother = 0 }
	for _, thread in ipairs(threads) do
		for k, _ in pairs(t) do
			t[k] = t[k] + (thread:get(k) or 0)
		end
	end
	local e = summary.errors
	local sock = e.connect + e.read + e.write + e.timeout
	local errors = sock + t.nother
	local sent_bad = t.sent_invalid + t.sent_missing
	if expect_auth then
		-- A bad key answered 200 is the worst error there is.
		errors = errors + t.n200_other
		-- Slack: one request in flight per connection when wrk stops, and
		-- one re-sent request per reconnection (wrk calls request() again).
		local slack = 2 * conns
		local short200 = t.sent_valid - slack - t.n200_valid
		local short401 = sent_bad - slack - t.n401
		if short200 > 0 then errors = errors + short200 end
		if short401 > 0 then errors = errors + short401 end
		-- more 200s or 401s than were sent of that kind: a mix-up
		if t.n200_valid > t.sent_valid then errors = errors + t.n200_valid - t.sent_valid end
		if t.n401 > sent_bad then errors = errors + t.n401 - sent_bad end
	else
		errors = errors + t.n401
	end
	local secs = summary.duration / 1e6
	io.write(string.format("wrk requests=%d seconds=%.3f rate=%.0f p50_us=%.0f p90_us=%.0f " ..
		"p99_us=%.0f p999_us=%.0f max_us=%.0f ok200=%d bad200=%d n401=%d other=%d " ..
		"sent_valid=%d sent_invalid=%d sent_missing=%d sock_errors=%d timeouts=%d errors=%d\n",
		summary.requests, secs, summary.requests / secs,
		latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9), latency.max,
		t.n200_valid, t.n200_other, t.n401, t.nother,
		t.sent_valid, t.sent_invalid, t.sent_missing, sock, e.timeout, errors))
end
