#!/usr/bin/env bash
# tokengate against nginx, side by side, on 127.0.0.1. See bench/README.md.
#
#   bench/run.sh            nginx (plain reverse proxy) vs tokengate (doing all its work), with
#                           hyper forwarding untouched (examples/plain_proxy.rs) as the floor
#   bench/run.sh --attack   the same, then the valid client with and without a flood of
#                           well-formed unknown tokens
#   bench/run.sh --audit    the same, then tokengate with audit coverage full against a
#                           second tokengate with coverage off (target: full >= 0.95 x off)
#   bench/run.sh --redis    the same, then tokengate with rate_limit.backend = "redis" against
#                           the local limiter, and the accuracy (allowed / quota) of a quota
#                           under a concurrent burst over two gateways, for both backends
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR   where cargo builds [target]
#   BENCH_DURATION     seconds per measured round [10]
#   BENCH_WARMUP       seconds of warm-up per server [3]
#   BENCH_ROUNDS       rounds per server (alternating) [3]
#   BENCH_CONNECTIONS  wrk connections of the valid client [32]
#   BENCH_ATTACK_RATE  requests/s of the flood [2000]
#   BENCH_QUOTA        the quota of the accuracy burst, per day [1000]
#   BENCH_WORKERS      nginx worker_processes and tokengate proxy.worker_threads [2]
#   BENCH_UPSTREAM_WORKERS  worker_processes of the stand-in upstream [1]
#   BENCH_KEEP=1       keep the work directory (configs, logs, database)
#   BENCH_NO_BUILD=1   use the binary already built
set -euo pipefail

mode=compare
case "${1:-}" in
  "") ;;
  --attack) mode=attack ;;
  --audit) mode=audit ;;
  --redis) mode=redis ;;
  -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bench/run.sh [--attack | --audit | --redis]" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${BENCH_DURATION:-10}
warmup=${BENCH_WARMUP:-3}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-32}
attack_rate=${BENCH_ATTACK_RATE:-2000}
burst_quota=${BENCH_QUOTA:-1000}
workers=${BENCH_WORKERS:-2}
upstream_workers=${BENCH_UPSTREAM_WORKERS:-1}
# auth.cache_ttl, the product's default: a verified token's record is read again once per
# cache lifetime (its secret, matched once, is not hashed again).
cache_ttl=60
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/release/tokengate"
plain_bin="$target_dir/release/examples/plain_proxy"
export PATH="$PATH:/usr/sbin:/sbin"

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# --- tools -------------------------------------------------------------------------------
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if [[ $mode == redis ]]; then command -v redis-server >/dev/null || missing+=(redis-server); fi
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root"
    sudo=(sudo)
  fi
  say "installing ${missing[*]} from Debian"
  "${sudo[@]}" apt-get update -qq
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null; then
    # Some releases only ship the full nginx package.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]/nginx-light/nginx}" >/dev/null
  fi
fi

build_release

# --- processes and cleanup ---------------------------------------------------------------
start_work tokengate-bench
# The binary measured is the one just built, even if another build replaces it meanwhile.
cp "$bin" "$work/tokengate-bin"
bin="$work/tokengate-bin"


wait_http() { # url what
  for _ in $(seq 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not start; see $work"
}

upstream_port=$(free_port)
nginx_port=$(free_port)
gateway_port=$(free_port)
admin_port=$(free_port)
off_port=$(free_port)
plain_port=$(free_port)
off_admin_port=$(free_port)
redis_port=$(free_port)

# --- nginx: the stand-in Bitbucket and the plain reverse proxy ----------------------------

mkdir -p "$work/upstream" "$work/nginx" "$work/tokengate"
{
  nginx_common "$work/upstream"
  echo "worker_processes $upstream_workers;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  nginx_http_common "$work/upstream"
  nginx_upstream_server "$upstream_port"
  echo "}"
} >"$work/upstream/nginx.conf"
{
  nginx_common "$work/nginx"
  echo "worker_processes $workers;"
  echo "events { worker_connections 4096; }"
  echo "http {"
  nginx_http_common "$work/nginx"
  echo "  access_log $work/nginx/access.log;"
  nginx_proxy_server "$nginx_port" "$upstream_port"
  echo "}"
} >"$work/nginx/nginx.conf"

start_nginx() { # dir
  nginx -t -q -e "$1/error.log" -p "$1" -c "$1/nginx.conf" 2>>"$1/error.log" || die "nginx config in $1 refused: $(cat "$1/error.log")"
  nginx -e "$1/error.log" -p "$1" -c "$1/nginx.conf" 2>>"$1/error.log" &
  pids+=($!)
}
start_nginx "$work/upstream"
start_nginx "$work/nginx"
wait_http "http://127.0.0.1:$upstream_port/" "the upstream nginx"
wait_http "http://127.0.0.1:$nginx_port/" "the proxy nginx"

# --- the floor: hyper forwarding untouched, on the stack tokengate is built on ---------------
"$plain_bin" "127.0.0.1:$plain_port" "http://127.0.0.1:$upstream_port" "$workers" >"$work/plain.log" 2>&1 &
plain_pid=$!
pids+=($plain_pid)
wait_http "http://127.0.0.1:$plain_port/" "the plain hyper proxy"

# --- tokengate -----------------------------------------------------------------------------
gateway_workers=$workers
cat >"$work/tokengate/tokengate.toml" <<EOF
node_id = "BENCH01"
[proxy]
listen = "127.0.0.1:$gateway_port"
trusted_proxies = ["127.0.0.1/32"]
worker_threads = $gateway_workers
shutdown_grace = "1s"
[upstream]
url = "http://127.0.0.1:$upstream_port"
[database]
url = "sqlite://$work/tokengate/tokengate.db"
[auth]
basic_auth_fallback = false
cache_ttl = "${cache_ttl}s"
[rate_limit]
default = "4000000000/1s"
[admin]
listen = "127.0.0.1:$admin_port"
[audit]
coverage = "full"
spill_file = "$work/tokengate/audit-spill.ndjson"
[log]
level = "info"
file = "$work/tokengate/tokengate.log"
EOF
config="$work/tokengate/tokengate.toml"
"$bin" --config "$config" token --help >/dev/null 2>&1 || die "this tokengate has no 'token create' command"
"$bin" --config "$config" migrate >"$work/tokengate/migrate.log" 2>&1 \
  || die "tokengate migrate failed: $(cat "$work/tokengate/migrate.log")"
token=$("$bin" --config "$config" token create --user bench-user --description "tokengate bench" --scope read-only 2>"$work/tokengate/create.err" \
  | grep -o 'tgt_[0-9a-z]\{12\}_[0-9A-Za-z]\{38\}' | head -n1) || true
[[ -n $token ]] || die "token create failed: $(cat "$work/tokengate/create.err")"
export BENCH_TOKEN=$token

"$bin" --config "$config" serve >"$work/tokengate/stdout.log" 2>&1 &
gateway_pid=$!
pids+=($gateway_pid)
wait_http "http://127.0.0.1:$admin_port/healthz" "tokengate"
wait_http "http://127.0.0.1:$gateway_port/" "tokengate's proxy listener"

for target in "nginx $nginx_port" "hyper $plain_port" "tokengate $gateway_port"; do
  set -- $target
  answer=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$2/rest/api/1.0/projects")
  [[ $answer == '{"size":0,"values":[]} 200' ]] || die "$1 answered '$answer' instead of the upstream's 200"
done

# --- measuring -----------------------------------------------------------------------------
metric() { # name: sum of every series of a Prometheus metric
  curl -s "http://127.0.0.1:$admin_port/metrics" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%d\n", s }'
}
refused_by_gateway() { # every decision but "allowed", and upstream failures
  curl -s "http://127.0.0.1:$admin_port/metrics" \
    | awk '/^tokengate_requests_total\{/ && !/outcome="allowed"/ { s += $2 } END { printf "%d\n", s }'
}
refused_by_nginx() { # 499 is nginx's note that wrk closed a connection at the end of a run
  awk '$9 !~ /^2/ && $9 != 499 { n++ } END { printf "%d\n", n }' "$work/nginx/access.log"
}
field() { sed -n "s/.*[ ]$1=\([0-9]*\).*/\1/p" <<<"$2"; }
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$gateway_pid/status"; }

# CPU time (user + system, in clock ticks) the server has used so far: every thread of the
# tokengate process, or nginx's master and workers.
clk_tck=$(getconf CLK_TCK)
server_pids() { # name
  local master
  case $1 in
    nginx) master=$(cat "$work/nginx/nginx.pid"); echo "$master" $(pgrep -P "$master") ;;
    tokengate-off) echo "$off_pid" ;;
    tokengate-redis) echo "$redis_gw_pid" "$redis_pid" ;;
    hyper) echo "$plain_pid" ;;
    *) echo "$gateway_pid" ;;
  esac
}
cpu_ticks() { # pids...
  local pid total=0
  for pid in "$@"; do
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')))
  done
  echo "$total"
}

# One wrk run of the valid client; prints "req/s p99_ms non2xx cpu_us", cpu_us being the
# server's CPU time per request (all of its threads, user and system). Non-2xx answers are what wrk
# saw (status >= 400, socket errors) or, when higher, what the server counted as refused (the
# nginx access log, tokengate's tokengate_requests_total); "flood" skips the server's count,
# which then includes the flood's refusals.
drive() { # name port seconds [flood]
  local out req dur p99 status sock server_before=0 server_after=0 ticks_before ticks_after
  local -a spids
  read -r -a spids <<<"$(server_pids "$1")"
  ticks_before=$(cpu_ticks "${spids[@]}")
  if [[ -n ${4:-} ]]; then :; elif [[ $1 == nginx ]]; then server_before=$(refused_by_nginx); else server_before=$(refused_by_gateway); fi
  out=$(wrk -t1 -c"$connections" -d"${3}s" --timeout 5s -s bench/wrk/valid.lua "http://127.0.0.1:$2" | grep '^BENCH ') \
    || die "wrk against $1 failed"
  ticks_after=$(cpu_ticks "${spids[@]}")
  if [[ -n ${4:-} ]]; then :; elif [[ $1 == nginx ]]; then server_after=$(refused_by_nginx); else server_after=$(refused_by_gateway); fi
  req=$(field requests "$out"); dur=$(field duration_us "$out"); p99=$(field p99_us "$out")
  status=$(field status_errors "$out"); sock=$(field socket_errors "$out")
  local bad=$((status + sock))
  ((server_after - server_before > bad)) && bad=$((server_after - server_before))
  awk -v r="$req" -v d="$dur" -v p="$p99" -v b="$bad" -v t="$((ticks_after - ticks_before))" -v hz="$clk_tck" \
    'BEGIN { printf "%.0f %.3f %d %.1f\n", r / (d / 1e6), p / 1000, b, t / hz * 1e6 / r }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
column_of() { awk -v c="$1" '{ print $c }'; }

printf '\ntokengate bench: %s round(s) of %ss per server, wrk -t1 -c%s, %s nginx workers, %s tokengate workers, %s CPU(s), load average %s\n' \
  "$rounds" "$duration" "$connections" "$workers" "$gateway_workers" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
say "warm-up (${warmup}s each)"
drive nginx "$nginx_port" "$warmup" >/dev/null
drive hyper "$plain_port" "$warmup" skip-server-count >/dev/null
drive tokengate "$gateway_port" "$warmup" >/dev/null

: >"$work/nginx.rounds"
: >"$work/hyper.rounds"
: >"$work/tokengate.rounds"
printf '\n%-6s %-10s %12s %10s %8s %12s\n' round server 'req/s' 'p99 ms' non-2xx 'CPU us/req'
for r in $(seq "$rounds"); do
  for server in nginx hyper tokengate; do
    case $server in nginx) port=$nginx_port ;; hyper) port=$plain_port ;; *) port=$gateway_port ;; esac
    # The plain proxy counts nothing itself: its refusals are what wrk saw.
    line=$(drive "$server" "$port" "$duration" $([[ $server == hyper ]] && echo skip-server-count))
    echo "$line" >>"$work/$server.rounds"
    set -- $line
    printf '%-6s %-10s %12s %10s %8s %12s\n' "$r" "$server" "$1" "$2" "$3" "$4"
  done
done

n_rps=$(column_of 1 <"$work/nginx.rounds" | median)
t_rps=$(column_of 1 <"$work/tokengate.rounds" | median)
n_p99=$(column_of 2 <"$work/nginx.rounds" | median)
t_p99=$(column_of 2 <"$work/tokengate.rounds" | median)
n_cpu=$(column_of 4 <"$work/nginx.rounds" | median)
t_cpu=$(column_of 4 <"$work/tokengate.rounds" | median)
n_bad=$(column_of 3 <"$work/nginx.rounds" | awk '{ s += $1 } END { print s + 0 }')
t_bad=$(column_of 3 <"$work/tokengate.rounds" | awk '{ s += $1 } END { print s + 0 }')
h_rps=$(column_of 1 <"$work/hyper.rounds" | median)
h_p99=$(column_of 2 <"$work/hyper.rounds" | median)
h_cpu=$(column_of 4 <"$work/hyper.rounds" | median)
h_bad=$(column_of 3 <"$work/hyper.rounds" | awk '{ s += $1 } END { print s + 0 }')
rss=$(rss_kib)
rps_ratio=$(awk -v a="$t_rps" -v b="$n_rps" 'BEGIN { printf "%.3f", a / b }')
p99_ratio=$(awk -v a="$t_p99" -v b="$n_p99" 'BEGIN { printf "%.3f", a / b }')

failed=0
verdict() { # ok(0/1) text
  if [[ $1 == 1 ]]; then printf '  PASS  %s\n' "$2"; else printf '  FAIL  %s\n' "$2"; failed=1; fi
}
yes_if() { awk "BEGIN { print ($1) ? 1 : 0 }"; }

# hyper: the same HTTP stack forwarding untouched, for reference (no target). The difference
# in CPU per request between it and tokengate is what tokengate's own work costs.
printf '\n%-22s %12s %12s %12s %10s\n' "median of $rounds" nginx hyper tokengate ratio
printf '%-22s %12s %12s %12s %10s\n' 'requests/s' "$n_rps" "$h_rps" "$t_rps" "$rps_ratio"
printf '%-22s %12s %12s %12s %10s\n' 'p99 latency (ms)' "$n_p99" "$h_p99" "$t_p99" "$p99_ratio"
printf '%-22s %12s %12s %12s %10s\n' 'CPU per request (us)' "$n_cpu" "$h_cpu" "$t_cpu" "$(awk -v a="$t_cpu" -v b="$n_cpu" 'BEGIN { printf "%.3f", a / b }')"
printf '%-22s %12s %12s %12s\n' 'non-2xx (all rounds)' "$n_bad" "$h_bad" "$t_bad"
printf '%-22s %12s %12s %12s\n' 'tokengate VmRSS' '' '' "$((rss / 1024)) MiB"
printf '%-22s %12s %12s %12s\n' 'argon2 hashes so far' '' '' "$(metric tokengate_hash_verifications_total)"
printf '%-22s %12s   (tokengate CPU per request minus hyper'"'"'s)\n' "tokengate's own work" \
  "$(awk -v a="$t_cpu" -v b="$h_cpu" 'BEGIN { printf "%.1f us", a - b }')"
echo
verdict "$(yes_if "$rps_ratio >= 0.9")" "requests/s ratio $rps_ratio >= 0.9"
verdict "$(yes_if "$p99_ratio <= 1.2")" "p99 ratio $p99_ratio <= 1.2"
verdict "$(yes_if "$n_bad + $t_bad == 0")" "no non-2xx answers (nginx $n_bad, tokengate $t_bad)"
verdict "$(yes_if "$rss < 64 * 1024")" "tokengate VmRSS $((rss / 1024)) MiB < 64 MiB"

# --- the flood -----------------------------------------------------------------------------
if [[ $mode == attack ]]; then
  attackers=$(( attack_rate >= 500 ? attack_rate / 125 : 4 ))
  printf '\nattack: %s req/s of well-formed unknown tokens from random 10.x.y.z (%s connections) beside the valid client\n' \
    "$attack_rate" "$attackers"
  hashes_before=$(metric tokengate_hash_verifications_total)
  attack_started=$SECONDS
  : >"$work/quiet.rounds"
  : >"$work/flood.rounds"
  printf '\n%-6s %-10s %12s %10s %8s %14s\n' round phase 'req/s' 'p99 ms' non-2xx 'flood req/s'
  for r in $(seq "$rounds"); do
    line=$(drive tokengate "$gateway_port" "$duration")
    echo "$line" >>"$work/quiet.rounds"
    set -- $line
    printf '%-6s %-10s %12s %10s %8s %14s\n' "$r" quiet "$1" "$2" "$3" -
    BENCH_RATE=$attack_rate \
      wrk -t1 -c"$attackers" -d"$((duration + 2))s" --timeout 5s -s bench/wrk/attack.lua \
      "http://127.0.0.1:$gateway_port" >"$work/attack.$r.out" 2>&1 &
    attack_pid=$!
    pids+=($attack_pid)
    sleep 1
    line=$(drive tokengate "$gateway_port" "$duration" flood)
    wait "$attack_pid" || die "the attacking wrk failed: $(cat "$work/attack.$r.out")"
    attack=$(grep '^ATTACK ' "$work/attack.$r.out") || die "the attacking wrk failed: $(cat "$work/attack.$r.out")"
    flood_rps=$(awk -v r="$(field requests "$attack")" -v d="$(field duration_us "$attack")" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    echo "$line" >>"$work/flood.rounds"
    set -- $line
    printf '%-6s %-10s %12s %10s %8s %14s\n' "$r" flood "$1" "$2" "$3" "$flood_rps"
  done
  hashes_after=$(metric tokengate_hash_verifications_total)
  # The flood's ids are unknown, so it may cause no hash at all; the valid token was verified
  # before the phase and is not hashed again, so the counter may not move.
  attack_seconds=$((SECONDS - attack_started))
  hashes_allowed=0
  q_p99=$(column_of 2 <"$work/quiet.rounds" | median)
  f_p99=$(column_of 2 <"$work/flood.rounds" | median)
  q_rps=$(column_of 1 <"$work/quiet.rounds" | median)
  f_rps=$(column_of 1 <"$work/flood.rounds" | median)
  f_bad=$(column_of 3 <"$work/flood.rounds" | awk '{ s += $1 } END { print s + 0 }')
  flood_ratio=$(awk -v a="$f_p99" -v b="$q_p99" 'BEGIN { printf "%.3f", a / b }')
  rss=$(rss_kib)
  printf '\n%-30s %12s %12s %10s\n' "median of $rounds (valid client)" quiet flood ratio
  printf '%-30s %12s %12s\n' 'requests/s' "$q_rps" "$f_rps"
  printf '%-30s %12s %12s %10s\n' 'p99 latency (ms)' "$q_p99" "$f_p99" "$flood_ratio"
  printf '%-30s %12s   (over %ss; allowed: %s)\n' \
    'argon2 hashes, attack phase' "$((hashes_after - hashes_before))" "$attack_seconds" "$hashes_allowed"
  printf '%-30s %12s\n' 'tokengate VmRSS after' "$((rss / 1024)) MiB"
  echo
  verdict "$(yes_if "$flood_ratio <= 2")" "valid client's p99 under the flood $flood_ratio x <= 2 x"
  verdict "$(yes_if "$hashes_after - $hashes_before <= $hashes_allowed")" \
    "hash verifications rose by $((hashes_after - hashes_before)) <= $hashes_allowed (none caused by the flood)"
  verdict "$(yes_if "$f_bad == 0")" "the valid client got no non-2xx under the flood ($f_bad)"
fi

# --- audit coverage full against off --------------------------------------------------------
if [[ $mode == audit ]]; then
  # The same database (so the same token), its own ports, log file and spill file.
  sed -e "s/127.0.0.1:$gateway_port/127.0.0.1:$off_port/" -e "s/127.0.0.1:$admin_port/127.0.0.1:$off_admin_port/" \
      -e 's/^coverage = "full"/coverage = "off"/' -e "s#tokengate.log#tokengate-off.log#" \
      -e "s#audit-spill.ndjson#audit-spill-off.ndjson#" "$config" >"$work/tokengate/tokengate-off.toml"
  "$bin" --config "$work/tokengate/tokengate-off.toml" serve >"$work/tokengate/stdout-off.log" 2>&1 &
  off_pid=$!
  pids+=($off_pid)
  wait_http "http://127.0.0.1:$off_admin_port/healthz" "tokengate (coverage off)"
  drive tokengate-off "$off_port" "$warmup" flood >/dev/null
  : >"$work/full.rounds"
  : >"$work/off.rounds"
  printf '\naudit: tokengate with coverage full against coverage off\n'
  printf '\n%-6s %-10s %12s %10s %8s %12s\n' round coverage 'req/s' 'p99 ms' non-2xx 'CPU us/req'
  for r in $(seq "$rounds"); do
    for coverage in full off; do
      port=$gateway_port; [[ $coverage == off ]] && port=$off_port
      line=$(drive "tokengate-$coverage" "$port" "$duration" skip-server-count)
      echo "$line" >>"$work/$coverage.rounds"
      set -- $line
      printf '%-6s %-10s %12s %10s %8s %12s\n' "$r" "$coverage" "$1" "$2" "$3" "$4"
    done
  done
  full_rps=$(column_of 1 <"$work/full.rounds" | median)
  off_rps=$(column_of 1 <"$work/off.rounds" | median)
  full_p99=$(column_of 2 <"$work/full.rounds" | median)
  off_p99=$(column_of 2 <"$work/off.rounds" | median)
  full_cpu=$(column_of 4 <"$work/full.rounds" | median)
  off_cpu=$(column_of 4 <"$work/off.rounds" | median)
  audit_ratio=$(awk -v a="$full_rps" -v b="$off_rps" 'BEGIN { printf "%.3f", a / b }')
  printf '\n%-22s %12s %12s %10s\n' "median of $rounds" full off ratio
  printf '%-22s %12s %12s %10s\n' 'requests/s' "$full_rps" "$off_rps" "$audit_ratio"
  printf '%-22s %12s %12s\n' 'p99 latency (ms)' "$full_p99" "$off_p99"
  printf '%-22s %12s %12s   (an audit event costs about %s us)\n' 'CPU per request (us)' "$full_cpu" "$off_cpu" \
    "$(awk -v a="$full_cpu" -v b="$off_cpu" 'BEGIN { printf "%.1f", a - b }')"
  printf '%-22s %12s\n' 'audit events written' "$(metric tokengate_audit_events_written_total)"
  echo
  verdict "$(yes_if "$audit_ratio >= 0.95")" "requests/s with coverage full $audit_ratio x coverage off >= 0.95"
fi

# --- rate limits in Redis ------------------------------------------------------------------
if [[ $mode == redis ]]; then
  mkdir -p "$work/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work/redis" --logfile "$work/redis/redis.log" &
  redis_pid=$!
  pids+=($redis_pid)
  for _ in $(seq 100); do
    [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] || die "redis-server did not start; see $work/redis"

  # Another gateway on the same database: its own ports, log and spill file; "redis" counts
  # its limits in the Redis above.
  twin() { # name proxy_port admin_port backend
    local out="$work/tokengate/tokengate-$1.toml"
    sed -e "s/127.0.0.1:$gateway_port/127.0.0.1:$2/" -e "s/127.0.0.1:$admin_port/127.0.0.1:$3/" \
        -e "s#tokengate.log#tokengate-$1.log#" -e "s#audit-spill.ndjson#audit-spill-$1.ndjson#" \
        "$config" >"$out"
    if [[ $4 == redis ]]; then
      sed -i "s#^\[rate_limit\]#[rate_limit]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:$redis_port/0\"\nredis_key_prefix = \"bench:\"#" "$out"
    fi
    "$bin" --config "$out" serve >"$work/tokengate/stdout-$1.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$3/healthz" "tokengate ($1)"
    echo "$!"
  }
  r1_port=$(free_port); r1_admin=$(free_port)
  r2_port=$(free_port); r2_admin=$(free_port)
  l2_port=$(free_port); l2_admin=$(free_port)
  redis_gw_pid=$(twin redis1 "$r1_port" "$r1_admin" redis)
  pids+=($redis_gw_pid)
  twin redis2 "$r2_port" "$r2_admin" redis >/dev/null
  twin local2 "$l2_port" "$l2_admin" local >/dev/null
  up=$(curl -s "http://127.0.0.1:$r1_admin/metrics" | awk '$1 == "tokengate_rate_limit_backend_up" { print $2 }')
  [[ $up == 1 ]] || die "the Redis gateway does not reach Redis (tokengate_rate_limit_backend_up $up)"

  drive tokengate-redis "$r1_port" "$warmup" skip-server-count >/dev/null
  : >"$work/local.rounds"
  : >"$work/redis.rounds"
  printf '\nredis: tokengate with rate_limit.backend = "redis" against "local", a check per request\n'
  printf '\n%-6s %-10s %12s %10s %8s %12s\n' round backend 'req/s' 'p99 ms' non-2xx 'CPU us/req'
  for r in $(seq "$rounds"); do
    for backend in local redis; do
      if [[ $backend == local ]]; then
        line=$(drive tokengate "$gateway_port" "$duration")
      else
        line=$(drive tokengate-redis "$r1_port" "$duration" skip-server-count)
      fi
      echo "$line" >>"$work/$backend.rounds"
      set -- $line
      printf '%-6s %-10s %12s %10s %8s %12s\n' "$r" "$backend" "$1" "$2" "$3" "$4"
    done
  done
  l_rps=$(column_of 1 <"$work/local.rounds" | median)
  r_rps=$(column_of 1 <"$work/redis.rounds" | median)
  l_p99=$(column_of 2 <"$work/local.rounds" | median)
  r_p99=$(column_of 2 <"$work/redis.rounds" | median)
  l_cpu=$(column_of 4 <"$work/local.rounds" | median)
  r_cpu=$(column_of 4 <"$work/redis.rounds" | median)
  r_bad=$(column_of 3 <"$work/redis.rounds" | awk '{ s += $1 } END { print s + 0 }')

  # Accuracy: a fresh token with a daily quota, a concurrent burst from two wrk clients, one
  # per gateway, and the requests the two gateways allowed between them.
  allowed_on() { # admin_port
    curl -s "http://127.0.0.1:$1/metrics" \
      | awk '/^tokengate_requests_total\{/ && /outcome="allowed"/ { s += $2 } END { printf "%d\n", s }'
  }
  burst() { # port_a admin_a port_b admin_b: prints the requests allowed
    local token before_a before_b
    token=$("$bin" --config "$config" token create --user bench-burst --description "bench burst" \
      --scope read-only --rate-limit "$burst_quota/1d" 2>>"$work/tokengate/create.err" \
      | grep -o 'tgt_[0-9a-z]\{12\}_[0-9A-Za-z]\{38\}' | head -n1) || true
    [[ -n $token ]] || die "token create failed: $(cat "$work/tokengate/create.err")"
    before_a=$(allowed_on "$2"); before_b=$(allowed_on "$4")
    BENCH_TOKEN=$token wrk -t1 -c16 -d3s --timeout 5s -s bench/wrk/valid.lua "http://127.0.0.1:$1" >/dev/null &
    local wa=$!
    BENCH_TOKEN=$token wrk -t1 -c16 -d3s --timeout 5s -s bench/wrk/valid.lua "http://127.0.0.1:$3" >/dev/null &
    local wb=$!
    wait "$wa" "$wb" || die "a wrk of the burst failed"
    echo $(( $(allowed_on "$2") - before_a + $(allowed_on "$4") - before_b ))
  }
  r_allowed=$(burst "$r1_port" "$r1_admin" "$r2_port" "$r2_admin")
  l_allowed=$(burst "$gateway_port" "$admin_port" "$l2_port" "$l2_admin")
  r_accuracy=$(awk -v a="$r_allowed" -v q="$burst_quota" 'BEGIN { printf "%.3f", a / q }')
  l_accuracy=$(awk -v a="$l_allowed" -v q="$burst_quota" 'BEGIN { printf "%.3f", a / q }')

  printf '\n%-30s %12s %12s %10s\n' "median of $rounds" local redis ratio
  printf '%-30s %12s %12s %10s\n' 'requests/s' "$l_rps" "$r_rps" "$(awk -v a="$r_rps" -v b="$l_rps" 'BEGIN { printf "%.3f", a / b }')"
  printf '%-30s %12s %12s %10s\n' 'p99 latency (ms)' "$l_p99" "$r_p99" "$(awk -v a="$r_p99" -v b="$l_p99" 'BEGIN { printf "%.3f", a / b }')"
  printf '%-30s %12s %12s   (redis: the gateway and redis-server)\n' 'CPU per request (us)' "$l_cpu" "$r_cpu"
  printf '%-30s %12s %12s\n' "allowed of $burst_quota/1d, 2 gateways" "$l_allowed" "$r_allowed"
  printf '%-30s %12s %12s   (allowed / quota under a burst of 2 x 16 connections)\n' 'accuracy' "$l_accuracy" "$r_accuracy"
  echo
  verdict "$(yes_if "$r_allowed == $burst_quota")" "Redis: exactly the quota allowed across two gateways ($r_allowed of $burst_quota)"
  verdict "$(yes_if "$r_bad == 0")" "Redis: no non-2xx answers while measuring ($r_bad)"
fi

echo
if ((failed)); then echo "bench: some targets were missed"; exit 1; fi
echo "bench: every target met"
