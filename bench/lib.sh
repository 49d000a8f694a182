# What bench/run.sh and bench/instructions.sh share: messages, the release build, a work
# directory whose processes are stopped on exit, free ports, and the parts of their nginx
# configs. Sourced after `bin` and `plain_bin` are set.

say() { printf '==> %s\n' "$*" >&2; }
# Exit codes: 0 every target met, 1 some target missed, 2 usage, 3 the bench itself failed.
die() { printf 'bench: %s\n' "$*" >&2; exit 3; }

# Builds tokengate and examples/plain_proxy in release mode, unless BENCH_NO_BUILD is set.
build_release() {
  if [[ -z ${BENCH_NO_BUILD:-} ]]; then
    say "cargo build --release"
    cargo build --release --quiet --bin tokengate --example plain_proxy
  fi
  [[ -x $bin ]] || die "no binary at $bin (set CARGO_TARGET_DIR?)"
  [[ -x $plain_bin ]] || die "no binary at $plain_bin (cargo build --release --example plain_proxy)"
}

# Makes the work directory `work` (named after $1); every pid added to `pids` is stopped on
# exit, and the directory removed unless BENCH_KEEP is set or the bench failed.
start_work() { # name
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=()
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n ${BENCH_KEEP:-} || $status -gt 1 ]]; then
    echo "bench: work directory kept: $work" >&2
  else
    rm -rf "$work"
  fi
}

# A port nothing listens on (127.0.0.1 only), below the ephemeral range so that no outgoing
# connection holds it either.
used_ports=" "
ephemeral_low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
((ephemeral_low > 12000)) || ephemeral_low=32768
free_port() {
  local port
  while :; do
    port=$((10000 + RANDOM % (ephemeral_low - 10000)))
    [[ $used_ports == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      used_ports+="$port "
      echo "$port"
      return
    fi
  done
}

# The top of an nginx config of the work directory $1: in the foreground, its files there.
nginx_common() { # dir
  echo "daemon off;"
  echo "pid $1/nginx.pid;"
  echo "lock_file $1/nginx.lock;"
  echo "error_log $1/error.log warn;"
}

# The `http` lines every nginx here shares: temp files in $1 (for the modules this nginx was
# built with), and keep-alive connections that last the whole bench.
nginx_http_common() { # dir
  local kind
  nginx_v=${nginx_v:-$(nginx -V 2>&1)}
  for kind in client_body proxy fastcgi uwsgi scgi; do
    if [[ $kind == client_body || $nginx_v == *"--http-${kind}-temp-path"* ]]; then
      echo "  ${kind}_temp_path $1/${kind}_temp;"
    fi
  done
  echo "  keepalive_timeout 300s;"
  echo "  keepalive_requests 100000000;"
}

# The stand-in Bitbucket's `server` block: every path answers 200 with an empty page of JSON.
nginx_upstream_server() { # port
  echo "  access_log off;"
  echo "  server {"
  echo "    listen 127.0.0.1:$1;"
  echo "    location / { default_type application/json; return 200 '{\"size\":0,\"values\":[]}'; }"
  echo "  }"
}

# The proxying nginx's `upstream` and `server` blocks: port $1 forwards to the stand-in on $2
# over pooled keep-alive connections, setting what tokengate sets.
nginx_proxy_server() { # port upstream_port
  echo "  upstream bitbucket { server 127.0.0.1:$2; keepalive 64; }"
  echo "  server {"
  echo "    listen 127.0.0.1:$1;"
  echo "    location / {"
  echo "      proxy_pass http://bitbucket;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_set_header Host \$host;"
  echo "      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
  echo "      proxy_set_header X-Forwarded-Proto \$scheme;"
  echo "    }"
  echo "  }"
}
