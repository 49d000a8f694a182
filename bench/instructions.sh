#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: nginx, hyper untouched
# (examples/plain_proxy.rs) and tokengate doing all of its work. See bench/README.md.
#
#   bench/instructions.sh
#
# Each proxy runs alone under `valgrind --tool=callgrind` (every thread counted), twice: once
# for BENCH_REQUESTS_LOW requests and once for BENCH_REQUESTS_HIGH, sent one after another on
# one keep-alive connection by a client that sends exactly that many. Instructions per request
# are (total at HIGH - total at LOW) / (HIGH - LOW), so start-up, shutdown and tokengate's one
# argon2 verification cancel out. Unlike requests/s, the count does not depend on what else
# the machine is doing.
#
# Environment (defaults in brackets):
#   CARGO_TARGET_DIR      where cargo builds [target]
#   BENCH_REQUESTS_LOW    requests of the first run of each proxy [1000]
#   BENCH_REQUESTS_HIGH   requests of the second run [5000]
#   BENCH_TOP             tokengate's functions listed, by instructions per request [25]
#   BENCH_KEEP=1          keep the work directory (configs, logs, callgrind files)
#   BENCH_NO_BUILD=1      use the binaries already built
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: bench/instructions.sh" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
low=${BENCH_REQUESTS_LOW:-1000}
high=${BENCH_REQUESTS_HIGH:-5000}
top=${BENCH_TOP:-25}
((high > low)) || { echo "bench: BENCH_REQUESTS_HIGH must exceed BENCH_REQUESTS_LOW" >&2; exit 2; }
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/release/tokengate"
plain_bin="$target_dir/release/examples/plain_proxy"
export PATH="$PATH:/usr/sbin:/sbin"

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

for tool in valgrind callgrind_annotate nginx python3 ss; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install valgrind nginx-light python3 iproute2)"
done

build_release

start_work tokengate-instructions
# The binaries counted are the ones just built, even if another build replaces them meanwhile.
cp "$bin" "$work/tokengate-bin"
cp "$plain_bin" "$work/plain_proxy-bin"
bin="$work/tokengate-bin"
plain_bin="$work/plain_proxy-bin"


# Ready when the port is listening: no connection is made, so nothing is counted before the
# client's requests.
wait_listening() { # port pid what
  for _ in $(seq 1200); do
    [[ -n $(ss -Hltn "sport = :$1") ]] && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited before listening; see $work"
    sleep 0.1
  done
  die "$3 did not listen on port $1; see $work"
}

# Under callgrind a signal that arrives just as the client hangs up can go unseen: it is sent
# again until the process has exited.
stop() { # pid
  for _ in $(seq 600); do
    kill -TERM "$1" 2>/dev/null || break
    for _ in $(seq 10); do kill -0 "$1" 2>/dev/null || break 2; sleep 0.1; done
  done
  wait "$1" 2>/dev/null || true
}

# Sends exactly COUNT requests on one keep-alive connection, each after the previous answer,
# and checks every answer is the upstream's 200.
cat >"$work/client.py" <<'EOF'
import socket, sys

port, count, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = (
    "GET /rest/api/1.0/projects HTTP/1.1\r\n"
    f"Host: 127.0.0.1:{port}\r\n"
    "User-Agent: tokengate-instructions\r\n"
    "Accept: application/json\r\n"
    f"Authorization: Bearer {token}\r\n"
    "\r\n"
).encode()
sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buffer = b""
for n in range(count):
    sock.sendall(request)
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit(f"connection closed after {n} answers")
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 200 "):
        sys.exit(f"answer {n + 1}: {lines[0].decode(errors='replace')}")
    length = next(
        (int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:")),
        None,
    )
    if length is None:
        sys.exit(f"answer {n + 1} has no Content-Length")
    while len(buffer) < length:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit(f"connection closed inside answer {n + 1}")
        buffer += chunk
    buffer = buffer[length:]
sock.close()
EOF

total_ir() { # callgrind file
  awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

callgrind=(valgrind --tool=callgrind --quiet)

# --- the stand-in Bitbucket, not counted -------------------------------------------------
upstream_port=$(free_port)
mkdir -p "$work/upstream"
{
  nginx_common "$work/upstream"
  echo "worker_processes 1;"
  echo "events { worker_connections 1024; }"
  echo "http {"
  nginx_http_common "$work/upstream"
  nginx_upstream_server "$upstream_port"
  echo "}"
} >"$work/upstream/nginx.conf"
nginx -e "$work/upstream/error.log" -p "$work/upstream" -c "$work/upstream/nginx.conf" 2>>"$work/upstream/error.log" &
upstream_pid=$!
pids+=($upstream_pid)
wait_listening "$upstream_port" "$upstream_pid" "the upstream nginx"

# --- tokengate's database and token, made once, copied for every run ----------------------
tokengate_config() { # dir port admin_port
  cat <<EOF
node_id = "BENCH01"
[proxy]
listen = "127.0.0.1:$2"
trusted_proxies = ["127.0.0.1/32"]
worker_threads = 1
shutdown_grace = "1s"
[upstream]
url = "http://127.0.0.1:$upstream_port"
[database]
url = "sqlite://$1/tokengate.db"
[auth]
basic_auth_fallback = false
[rate_limit]
default = "4000000000/1s"
[admin]
listen = "127.0.0.1:$3"
[audit]
coverage = "full"
spill_file = "$1/audit-spill.ndjson"
[log]
level = "info"
file = "$1/tokengate.log"
EOF
}
mkdir -p "$work/seed"
tokengate_config "$work/seed" "$(free_port)" "$(free_port)" >"$work/seed/tokengate.toml"
"$bin" --config "$work/seed/tokengate.toml" migrate >"$work/seed/migrate.log" 2>&1 \
  || die "tokengate migrate failed: $(cat "$work/seed/migrate.log")"
token=$("$bin" --config "$work/seed/tokengate.toml" token create --user bench-user \
  --description "tokengate bench" --scope read-only 2>"$work/seed/create.err" \
  | grep -o 'tgt_[0-9a-z]\{12\}_[0-9A-Za-z]\{38\}' | head -n1) || true
[[ -n $token ]] || die "token create failed: $(cat "$work/seed/create.err")"

# --- one counted run -----------------------------------------------------------------------
run() { # proxy requests: writes the total instructions to $work/<proxy>-<requests>/total
  local name=$1 count=$2 dir="$work/$1-$2" port pid
  port=$(free_port)
  mkdir -p "$dir"
  case $name in
    nginx)
      {
        nginx_common "$dir"
        echo "master_process off;"
        echo "worker_processes 1;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        nginx_http_common "$dir"
        echo "  access_log $dir/access.log combined buffer=64k;"
        nginx_proxy_server "$port" "$upstream_port"
        echo "}"
      } >"$dir/nginx.conf"
      "${callgrind[@]}" --callgrind-out-file="$dir/callgrind.out" \
        nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
      ;;
    plain_proxy)
      "${callgrind[@]}" --callgrind-out-file="$dir/callgrind.out" \
        "$plain_bin" "127.0.0.1:$port" "http://127.0.0.1:$upstream_port" 1 >"$dir/stdout.log" 2>&1 &
      ;;
    tokengate)
      tokengate_config "$dir" "$port" "$(free_port)" >"$dir/tokengate.toml"
      cp "$work/seed"/tokengate.db* "$dir/"
      "${callgrind[@]}" --callgrind-out-file="$dir/callgrind.out" \
        "$bin" --config "$dir/tokengate.toml" serve >"$dir/stdout.log" 2>&1 &
      ;;
  esac
  pid=$!
  pids+=($pid)
  wait_listening "$port" "$pid" "$name"
  python3 "$work/client.py" "$port" "$count" "$token" || die "the client of $name failed; see $dir"
  stop "$pid"
  [[ -s $dir/callgrind.out ]] || die "callgrind wrote nothing for $name; see $dir"
  total_ir "$dir/callgrind.out" >"$dir/total"
}

declare -A per_request
printf '\ninstructions per request: callgrind, %s and %s requests on one keep-alive connection, one worker\n\n' "$low" "$high"
printf '%-12s %16s %16s %12s\n' proxy "total at $low" "total at $high" 'per request'
for name in nginx plain_proxy tokengate; do
  say "$name under callgrind: $low requests, then $high"
  run "$name" "$low"
  run "$name" "$high"
  a=$(cat "$work/$name-$low/total")
  b=$(cat "$work/$name-$high/total")
  per_request[$name]=$(( (b - a) / (high - low) ))
  printf '%-12s %16s %16s %12s\n' "$name" "$a" "$b" "${per_request[$name]}"
done
own=$((per_request[tokengate] - per_request[plain_proxy]))
printf '\n%-44s %12s\n' "tokengate's own share (tokengate - plain_proxy)" "$own"
printf '%-44s %12s\n' 'tokengate / nginx' "$(awk -v a="${per_request[tokengate]}" -v b="${per_request[nginx]}" 'BEGIN { printf "%.2f", a / b }')"
printf '%-44s %12s\n' 'plain_proxy / nginx' "$(awk -v a="${per_request[plain_proxy]}" -v b="${per_request[nginx]}" 'BEGIN { printf "%.2f", a / b }')"

printf "\ntokengate's top functions, instructions per request (self cost, every thread)\n\n"
python3 bench/callgrind-top.py "$work/tokengate-$low/callgrind.out" "$work/tokengate-$high/callgrind.out" \
  "$((high - low))" "$top"
