-- The valid client: GET /rest/api/1.0/projects with the token in BENCH_TOKEN (when set).
-- The request is built once, so wrk sends it at full speed; done() prints one line that
-- bench/run.sh reads.

wrk.method = "GET"
wrk.path = os.getenv("BENCH_PATH") or "/rest/api/1.0/projects"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d status_errors=%d socket_errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
