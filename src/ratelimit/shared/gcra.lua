-- One GCRA step, atomically, on the Redis server's clock (so replicas with skewed clocks
-- agree). KEYS[1] holds the key's theoretical arrival time (TAT) in microseconds.
-- ARGV[1]: the emission interval (period / quota) in microseconds, possibly fractional;
-- ARGV[2]: the quota, which is the burst; ARGV[3]: "1" counts the request, "0" only looks.
-- Returns {allowed (1 or 0), requests left, microseconds until one more fits (when refused)}.
-- A counted key expires once its quota has fully refilled, when it would read as new anyway.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tau = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - tau
if allow_at > now then
  return {0, 0, math.ceil(allow_at - now)}
end
if ARGV[3] == '1' then
  local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
end
local remaining = math.floor((tau - (new_tat - now)) / interval + 1e-6)
return {1, math.max(0, remaining), 0}
