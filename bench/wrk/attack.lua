-- The flood: well-formed tokengate tokens (valid CRC-32 checksum) with random, unknown ids,
-- each from a random client address in X-Forwarded-For (10.x.y.z), at about BENCH_RATE
-- requests per second in all, paced with delay().
--
-- Token format (src/token/format.rs): tgt_{12 × [0-9a-z]}_{32 × base62}{6 × base62 checksum},
-- the checksum being CRC-32 (IEEE) of everything before it, written in base62, most
-- significant digit first. init() checks this code against BENCH_TOKEN, a real token.

local bit = require("bit")

local ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
local BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do
    if bit.band(c, 1) == 1 then
      c = bit.bxor(0xEDB88320, bit.rshift(c, 1))
    else
      c = bit.rshift(c, 1)
    end
  end
  crc_table[i] = c
end

local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = bit.bxor(crc_table[bit.band(bit.bxor(c, s:byte(i)), 0xFF)], bit.rshift(c, 8))
  end
  c = bit.bnot(c)
  if c < 0 then c = c + 4294967296 end
  return c
end

local function checksum(body)
  local n = crc32(body)
  local out = {}
  for i = 6, 1, -1 do
    local d = n % 62
    out[i] = BASE62:sub(d + 1, d + 1)
    n = (n - d) / 62
  end
  return table.concat(out)
end

local function pick(alphabet, n)
  local out = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

local function random_token()
  local body = "tgt_" .. pick(ID_ALPHABET, 12) .. "_" .. pick(BASE62, 32)
  return body .. checksum(body)
end

local path = os.getenv("BENCH_PATH") or "/rest/api/1.0/projects"
local rate = tonumber(os.getenv("BENCH_RATE") or "2000")

-- Pacing: one schedule for the whole thread, a request every 1000/rate ms, whichever
-- connection is free; a connection asks delay() before each request.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval_ms = 1000 / rate
local next_ms = nil

function init(args)
  local real = os.getenv("BENCH_TOKEN")
  if real and #real == 55 then
    local body, sum = real:sub(1, 49), real:sub(50)
    if checksum(body) ~= sum then
      error("attack.lua: the checksum code disagrees with tokengate's (" .. checksum(body) .. " vs " .. sum .. ")")
    end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function delay()
  local now = now_ms()
  if next_ms == nil or next_ms < now - 50 then
    next_ms = now -- started, or fell behind: do not burst to catch up
  end
  local slot = next_ms
  next_ms = next_ms + interval_ms
  return math.max(0, math.floor(slot - now))
end

function request()
  local headers = {
    ["Authorization"] = "Bearer " .. random_token(),
    ["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255), math.random(1, 254)),
  }
  return wrk.format("GET", path, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "ATTACK requests=%d duration_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
