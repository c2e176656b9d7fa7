#!/usr/bin/env bash
# Benchmarks one Weft gateway proxy against a direct connection, nginx and haproxy as
# reverse proxies, in the same run, to the same backend, under the same load, on 127.0.0.1
# only: HTTP/1.1 keep-alive GETs of a small fixed body, driven by wrk. Prints Markdown
# tables (requests/s, latency p50/p90/p99, rps vs direct, the proxy's CPU time and peak
# RSS) for BENCHMARKS.md.
#
# Cores: wrk runs alone on LOAD_CPU; the backend and the proxy under test share SERVER_CPU.
# Every row thus gets the same server budget (one core), the ratio vs direct shows what
# the proxy's per-request work costs out of it, and the load generator neither steals from
# the servers nor, with a core of its own, limits the proxies. Each proxy runs one worker
# (nginx worker_processes 1, haproxy nbthread 1, Weft's tokio runtime sizes itself from
# its CPU affinity: one worker thread).
#
# Peers are measured in ROUNDS interleaved rounds (direct, weft, nginx, haproxy, then
# again) and each row is the round with the median rps, so that load from other work on
# the machine spreads over all peers instead of landing on one.
#
# Settings (environment): CONNS (32), DURATION (10 s), C1_DURATION (5 s, the one-connection
# run for unloaded latency), ROUNDS (5), WARMUP (2 s), LOAD_CPU (0), SERVER_CPU (1),
# WEFT (a built weft binary; default: build --release), PEERS ("direct weft nginx haproxy"),
# PERF (peer names: after the rounds, one more CONNS run of each under `perf record` and
# `perf stat`, printing system calls per request and the top of the profile; needs the
# `linux-perf` package), PERF_DATA (a path prefix to keep the profiles at).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin:/sbin"

conns="${CONNS:-32}"
duration="${DURATION:-10}"
c1_duration="${C1_DURATION:-5}"
rounds="${ROUNDS:-5}"
warmup="${WARMUP:-2}"
load_cpu="${LOAD_CPU:-0}"
server_cpu="${SERVER_CPU:-1}"
peers="${PEERS:-direct weft nginx haproxy}"

say() { echo "bench: $*" >&2; }
die() {
    say "$*"
    exit 1
}

# Installs what is missing (Debian package names).
install_missing() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx)
    command -v haproxy >/dev/null || missing+=(haproxy)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v taskset >/dev/null || missing+=(util-linux)
    command -v curl >/dev/null || missing+=(curl)
    command -v python3 >/dev/null || missing+=(python3)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_missing
[ "$(nproc --all)" -ge 2 ] || die "needs 2 cores (one for wrk, one for the servers)"

if [ -n "${WEFT:-}" ]; then
    weft="$WEFT"
else
    cargo build --release --locked -q -p weft
    weft="${CARGO_TARGET_DIR:-target}/release/weft"
fi
[ -x "$weft" ] || die "no weft binary at $weft"

work="$(mktemp -d /tmp/weft-bench.XXXXXX)"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        # Bounded: 50 x 0.1 s, then SIGKILL.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A copy, so that a rebuild of the shared target dir during the run cannot swap it.
cp "$weft" "$work/weft-bin"
weft="$work/weft-bin"

# Five ports the kernel says are free now (backend, weft, weft admin, nginx, haproxy).
read -r p_backend p_weft p_admin p_nginx p_haproxy < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

body="hello from the weft bench backend"

# nginx's paths all point into the temp dir so that nothing outside it is written.
nginx_common() {
    local dir="$1"
    cat <<EOF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    # nginx closes a keep-alive connection after 1,000 requests by default; a benchmark
    # connection would then reconnect every few milliseconds.
    keepalive_requests 100000000;
EOF
}

mkdir -p "$work/backend" "$work/nginx"

# The backend: nginx answering every GET with a fixed small body.
nginx_common "$work/backend" >"$work/backend/nginx.conf"
cat >>"$work/backend/nginx.conf" <<EOF
    server {
        listen 127.0.0.1:$p_backend;
        location / {
            default_type text/plain;
            return 200 "$body\n";
        }
    }
}
EOF

# nginx as a reverse proxy, configured as one would in production: a pooled upstream
# (keepalive, HTTP/1.1, Connection cleared), and the headers Weft adds too (request id,
# X-Forwarded-For/-Proto, the client's Host).
nginx_common "$work/nginx" >"$work/nginx/nginx.conf"
cat >>"$work/nginx/nginx.conf" <<EOF
    upstream backend {
        server 127.0.0.1:$p_backend;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$p_nginx;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Request-Id \$request_id;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF

# haproxy in HTTP mode, reusing idle server connections across client connections like
# nginx's and Weft's pools do, adding the same headers.
cat >"$work/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
    option forwardfor
    unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Request-Id
frontend bench
    bind 127.0.0.1:$p_haproxy
    http-request set-header X-Forwarded-Proto http
    default_backend backend
backend backend
    server b1 127.0.0.1:$p_backend
EOF

# Weft: the bookinfo-style Gateway + VirtualService, the backend as a ServiceEntry.
mkdir -p "$work/weft"
cat >"$work/weft/bench.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bench-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: $p_weft
      name: http
      protocol: HTTP
    hosts:
    - "*"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench
spec:
  hosts:
  - "*"
  gateways:
  - bench-gateway
  http:
  - route:
    - destination:
        host: backend
        port:
          number: 8080
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: backend
spec:
  hosts:
  - backend.default.svc.cluster.local
  location: MESH_INTERNAL
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: $p_backend
EOF

# Started directly (not through a shell function) so that $! is the server's own pid.
taskset -c "$server_cpu" nginx -p "$work/backend" -e "$work/backend/error.log" -c "$work/backend/nginx.conf" &
pid_backend=$!
pids+=("$pid_backend")
declare -A pid_of port_of
port_of[direct]=$p_backend
pid_of[direct]=""
for peer in $peers; do
    case "$peer" in
    direct) ;;
    weft)
        taskset -c "$server_cpu" "$weft" proxy --config-dir "$work/weft" --admin "127.0.0.1:$p_admin" \
            2>"$work/weft.log" &
        pid_of[weft]=$!
        port_of[weft]=$p_weft
        ;;
    nginx)
        taskset -c "$server_cpu" nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" &
        pid_of[nginx]=$!
        port_of[nginx]=$p_nginx
        ;;
    haproxy)
        taskset -c "$server_cpu" haproxy -db -f "$work/haproxy.cfg" 2>"$work/haproxy.log" &
        pid_of[haproxy]=$!
        port_of[haproxy]=$p_haproxy
        ;;
    *) die "unknown peer $peer (direct, weft, nginx, haproxy)" ;;
    esac
    [ -n "${pid_of[$peer]}" ] && pids+=("${pid_of[$peer]}")
done

# Waits (at most 10 s) until the peer answers with the backend's body.
wait_ready() {
    local peer="$1" got=""
    for _ in $(seq 100); do
        got="$(curl -fsS --max-time 1 "http://127.0.0.1:${port_of[$peer]}/" 2>/dev/null || true)"
        [ "$got" = "$body" ] && return
        sleep 0.1
    done
    tail -n 20 "$work"/*.log "$work"/*/error.log >&2 2>/dev/null || true
    die "$peer on port ${port_of[$peer]} never answered with the backend's body (last: ${got:-nothing})"
}
for peer in $peers; do wait_ready "$peer"; done

# A process and its children (nginx's master and worker).
tree() {
    [ -n "$1" ] || return 0
    { echo "$1"; pgrep -P "$1" || true; } | tr '\n' ' '
}
# CPU ticks (user + system, all threads) used so far by the given pids.
ticks() {
    local sum=0 pid rest
    for pid in "$@"; do
        rest="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
        rest="${rest##*) }" # past "pid (comm) ": field 1 is now the state
        read -r -a f <<<"$rest"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
# Busy and total ticks of one CPU from /proc/stat.
cpu_ticks() {
    awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
# Peak resident memory (kB) of the given pids since their counters were last reset.
hwm() {
    local sum=0 pid kb
    for pid in "$@"; do
        kb="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)"
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}

# Context switches (voluntary + not) of the given pids' threads so far.
switches() {
    for pid in "$@"; do cat /proc/"$pid"/task/*/status 2>/dev/null || true; done |
        awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }'
}

hz="$(getconf CLK_TCK)"
results="$work/results.tsv"

wrk_run() {
    local peer="$1" c="$2" d="$3"
    timeout $((d + 30)) taskset -c "$load_cpu" \
        wrk -t1 -c"$c" -d"${d}s" --latency "http://127.0.0.1:${port_of[$peer]}/"
}

# One measured run: wrk output plus the processes' CPU, peak RSS and the cores' load,
# appended as one line of $results.
measure() {
    local peer="$1" c="$2" d="$3" round="$4"
    local proxy backend out
    read -r -a proxy <<<"$(tree "${pid_of[$peer]}")"
    read -r -a backend <<<"$(tree "$pid_backend")"
    for pid in "${proxy[@]}"; do echo 5 >"/proc/$pid/clear_refs" || true; done
    local p0 b0 s0 l0 x0 p1 b1 s1 l1 x1
    x0=$(switches "${proxy[@]}")
    p0=$(ticks "${proxy[@]}")
    b0=$(ticks "${backend[@]}")
    read -r -a s0 < <(cpu_ticks "$server_cpu")
    read -r -a l0 < <(cpu_ticks "$load_cpu")
    out="$work/wrk-$peer-$c-$round.txt"
    wrk_run "$peer" "$c" "$d" >"$out"
    p1=$(ticks "${proxy[@]}")
    b1=$(ticks "${backend[@]}")
    read -r -a s1 < <(cpu_ticks "$server_cpu")
    read -r -a l1 < <(cpu_ticks "$load_cpu")
    x1=$(switches "${proxy[@]}")
    python3 - "$out" "$peer" "$c" "$round" "$hz" "$((p1 - p0))" "$((b1 - b0))" \
        "$(hwm "${proxy[@]}")" "${s0[@]}" "${s1[@]}" "${l0[@]}" "${l1[@]}" "$((x1 - x0))" >>"$results" <<'EOF'
import re, sys
out, peer, conns, rnd, hz, pt, bt, rss, sb0, st0, sb1, st1, lb0, lt0, lb1, lt1, sw = sys.argv[1:]
text = open(out).read()
def us(v, unit):
    return float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
lat = {p: us(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
reqs = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: (.*)", text)
errors = (int(bad.group(1)) if bad else 0)
errs = f"{errors} non-2xx" + (f"; socket errors {sock.group(1)}" if sock else "")
hz = int(hz)
server_busy = (int(sb1) - int(sb0)) / max(1, int(st1) - int(st0))
load_busy = (int(lb1) - int(lb0)) / max(1, int(lt1) - int(lt0))
# What the server core spent on anything but the proxy and the backend (other work on
# the machine), as a share of that core.
elapsed = max(1, int(st1) - int(st0))
others = max(0.0, ((int(sb1) - int(sb0)) - int(pt) - int(bt)) / elapsed)
print("\t".join(str(x) for x in [peer, conns, rnd, rps, lat["50"], lat["90"], lat["99"], reqs,
      int(pt) / hz, int(bt) / hz, rss, server_busy, load_busy, others, errs, sw]))
EOF
}

say "uptime before: $(uptime)"
for round in $(seq "$rounds"); do
    for peer in $peers; do
        say "round $round/$rounds: $peer"
        wrk_run "$peer" "$conns" "$warmup" >/dev/null
        measure "$peer" "$conns" "$duration" "$round"
        measure "$peer" 1 "$c1_duration" "$round"
    done
done
say "uptime after: $(uptime)"

# What ran where, for the record.
cat <<EOF
date: $(date -u '+%Y-%m-%d %H:%M UTC')
machine: $(nproc --all) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)
weft: $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(nginx -v 2>&1 | sed 's/.*: //'); $(haproxy -v | head -n 1 | cut -d' ' -f1-3); $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2)
cores: wrk on cpu $load_cpu; backend and proxy on cpu $server_cpu
EOF

# The tables: per peer and connection count, the round with the median rps.
python3 - "$results" "$conns" "$duration" "$c1_duration" "$rounds" "$peers" <<'EOF'
import sys
path, conns, duration, c1_duration, rounds, peers = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
def pick(peer, c):
    runs = sorted((r for r in rows if r[0] == peer and r[1] == c), key=lambda r: float(r[3]))
    return runs[len(runs) // 2], runs
for c, d in ((conns, duration), ("1", c1_duration)):
    print(f"\nwrk -t1 -c{c} -d{d}s --latency; median of {rounds} rounds by rps\n")
    print("| peer | rps | p50 | p90 | p99 | rps vs direct | proxy CPU | CPU per request | proxy peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    direct = float(pick("direct", c)[0][3]) if "direct" in peers.split() else None
    for peer in peers.split():
        r, _ = pick(peer, c)
        rps, reqs, cpu, rss = float(r[3]), int(r[7]), float(r[8]), int(r[10])
        fmt = lambda v: f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"
        ratio = f"{rps / direct:.2f}" if direct else "–"
        proxy = peer != "direct"
        print(f"| {peer} | {rps:,.0f} | {fmt(float(r[4]))} | {fmt(float(r[5]))} | {fmt(float(r[6]))} | {ratio} | "
              + (f"{cpu:.2f} s | {cpu / reqs * 1e6:.1f} µs | {rss / 1024:.1f} MiB |" if proxy else "– | – | – |"))
    print(f"\nConditions of those runs (server core = proxy + backend, load core = wrk):\n")
    print("| peer | backend CPU per request | proxy context switches per request | server core busy | load core busy | others on the server core | rps of all rounds | errors |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for peer in peers.split():
        r, runs = pick(peer, c)
        sw = f"{int(r[15]) / int(r[7]):.2f}" if peer != "direct" else "–"
        print(f"| {peer} | {float(r[9]) / int(r[7]) * 1e6:.1f} µs | {sw} | {float(r[11]):.0%} | {float(r[12]):.0%} | "
              f"{float(r[13]):.0%} | {', '.join(f'{float(x[3]):,.0f}' for x in runs)} | {r[14]} |")
EOF

# Where a proxy spends its time: one more run of each PERF peer under `perf record`
# (sampled stacks) and `perf stat` (system calls), then the top of the profile.
for peer in ${PERF:-}; do
    command -v perf >/dev/null || die "PERF needs perf: apt-get install linux-perf"
    read -r -a proxy <<<"$(tree "${pid_of[$peer]}")"
    [ ${#proxy[@]} -gt 0 ] || die "PERF: $peer is not a running proxy"
    list="$(IFS=,; echo "${proxy[*]}")"
    say "perf: one more $peer run under perf record and perf stat"
    timeout $((duration + 30)) perf record -q -F 1999 -g -o "$work/perf-$peer.data" \
        -p "$list" -- sleep "$duration" 2>/dev/null &
    rec=$!
    timeout $((duration + 30)) perf stat -x, -o "$work/stat-$peer.csv" \
        -e raw_syscalls:sys_enter -p "$list" -- sleep "$duration" &
    stat=$!
    sleep 0.5
    wrk_run "$peer" "$conns" "$((duration - 1))" >"$work/wrk-perf-$peer.txt"
    wait "$rec" "$stat" || true
    [ -n "${PERF_DATA:-}" ] && cp "$work/perf-$peer.data" "$PERF_DATA-$peer"
    reqs="$(awk '/requests in/ { print $1 }' "$work/wrk-perf-$peer.txt")"
    calls="$(awk -F, '/raw_syscalls/ { print $1 }' "$work/stat-$peer.csv")"
    echo
    echo "perf of $peer: $reqs requests, $(awk -v c="$calls" -v r="$reqs" 'BEGIN { printf "%.2f", c / r }') system calls per request; time by binary, then symbols over 1%:"
    for sort in dso symbol; do
        perf report -i "$work/perf-$peer.data" --no-children --stdio --percent-limit 1 -g none \
            --sort "$sort" 2>/dev/null | grep -v '^#' | grep -v '^$' | sed 's/  *$//' |
            sed 's/  *-  *-$//' | cut -c 1-150 | head -n 30
    done
done
