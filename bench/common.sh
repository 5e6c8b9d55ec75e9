# Shared helpers for the bench harnesses (sourced).
BIN=${BIN:-$(swift build -c release --show-bin-path)}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# utime+stime of a process in seconds
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"; }
wait_port() { for _ in $(seq 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
machine_line() { echo "$(date -u '+%Y-%m-%d %H:%M') UTC, commit $(git rev-parse --short HEAD), $(nproc) cores, $(uname -m)"; }
# Starts the agent standalone on port $1 (no control plane, no tunnel); prints its PID.
start_standalone_agent() {
  local port=$1 dir
  dir=$(mktemp -d)
  printf 'pipeops:\n  api_url: ""\nagent:\n  port: %s\ntunnel:\n  enabled: false\nstate:\n  path: %s/state.json\n' "$port" "$dir" > "$dir/agent.yaml"
  "$BIN/pipeops-agent" --config "$dir/agent.yaml" --log-level warning --log-format json >/dev/null 2>"$dir/agent.log" &
  echo $!
}
# Waits until something listens on 127.0.0.1:$1 without connecting to it (a probe connection
# would reach the service behind a forward, and iperf3 takes it for a test).
wait_listen() { for _ in $(seq 200); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; return 1; }
# nginx with one worker, no access log and endless keep-alive, serving the `server { … }` block
# $2 from folder $1 (its config, pid and error log go there); prints its PID.
start_nginx() {
  local dir=$1 server=$2
  cat > "$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  default_type text/plain;
  $server
}
NGINX
  nginx -c "$dir/nginx.conf" -g 'daemon off;' >/dev/null 2>&1 &
  echo $!
}
# Requests per second under wrk (one thread, $1 connections) on URL $2 for DURATION seconds.
rps() { wrk -t1 -c"$1" -d"${DURATION:-3}s" "$2" | awk '/Requests\/sec/ {print $2}'; }
# The median of the numbers on stdin (separated by blanks). This machine's speed drifts, so
# harnesses let the servers they compare take turns and compare medians.
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# bench/relay-floor.c (the CPU floor the tunnel benches compare with), built once into
# .build/bench; prints its path.
build_relay_floor() {
  mkdir -p .build/bench
  # cc where there is one, else the Swift toolchain's clang (which is always there).
  local compiler=${CC:-$(command -v cc || command -v clang)}
  [ .build/bench/relay-floor -nt bench/relay-floor.c ] || "$compiler" -O2 -Wall -o .build/bench/relay-floor bench/relay-floor.c -lcrypto
  echo "$PWD/.build/bench/relay-floor"
}
