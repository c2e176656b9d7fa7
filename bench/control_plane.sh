#!/usr/bin/env bash
# Benchmarks the control plane's push: starts a real `weft control-plane` (release
# build) in a temp state dir, connects N simulated proxies (the load client
# crates/control-plane/benches/xds_load.rs: real DeltaConfig streams, one connection
# each, sidecars spread over NAMESPACES namespaces, ACKing every response), then times
# CHANGES changes of (a) one endpoint (a WorkloadEntry's address, behind a ServiceEntry
# every proxy sees) and (b) one VirtualService (every proxy sees it): from `POST /apply`
# until every stream has ACKed a response carrying the change. With AFFECT "one" the
# changed service and VirtualService are exported to one namespace only, so a change
# concerns one proxy in NAMESPACES (and the others must be sent nothing). Each change's
# time goes to stderr; the control plane's CPU time per change is read from /proc. A
# fresh control plane per N; its peak RSS (VmHWM) is read after all kinds ran. Prints
# Markdown tables for BENCHMARKS.md.
#
# Settings (environment): STREAMS ("1000 2000"), NAMESPACES (10), CHANGES (30),
# AFFECT ("all one"), CLIENT_THREADS (2), CP_ARGS (more `weft control-plane` flags, e.g.
# "--debounce-after 0ms"), WEFT (a built weft binary; default: build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
streams_list="${STREAMS:-1000 2000}"
namespaces="${NAMESPACES:-10}"
changes="${CHANGES:-30}"
affect_list="${AFFECT:-all one}"
client_threads="${CLIENT_THREADS:-2}"
read -r -a cp_args <<<"${CP_ARGS:-}"
target="${CARGO_TARGET_DIR:-target}"

say() { echo "bench: $*" >&2; }
command -v curl >/dev/null || { say "curl is missing: apt-get install curl"; exit 1; }
command -v python3 >/dev/null || { say "python3 is missing: apt-get install python3"; exit 1; }

if [ -z "${WEFT:-}" ]; then
    cargo build --release --locked -q -p weft
    WEFT="$target/release/weft"
fi
client="$(cargo bench --locked -q -p weft-control-plane --bench xds_load --no-run \
    --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "xds_load" and m.get("executable"):
        print(m["executable"])')"
[ -x "$client" ] || { say "cannot build the load client"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

dir="$(mktemp -d)"
cp_pid=""
cleanup() {
    [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
# Two file descriptors per stream on each side, and some.
ulimit -n "$(ulimit -Hn)"

load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
latency_rows=()
memory_rows=()
for n in $streams_list; do
    api="127.0.0.1:$(free_port)"
    xds="127.0.0.1:$(free_port)"
    state="$dir/state-$n"
    "$WEFT" control-plane --state-dir "$state" --listen "$api" --xds-listen "$xds" \
        "${cp_args[@]}" 2>"$dir/cp-$n.log" &
    cp_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://$api/healthz/ready" >/dev/null && break
        sleep 0.1
    done
    rss_idle="$(awk '/VmRSS/ {print $2}' "/proc/$cp_pid/status")"
    for affect in $affect_list; do
        for kind in endpoint virtualservice; do
            say "$n streams, $kind, affecting $affect"
            latency_rows+=("$("$client" --xds "$xds" --api "$api" --token "$state/api-token" \
                --streams "$n" --namespaces "$namespaces" --changes "$changes" --kind "$kind" \
                --affect "$affect" --cp-pid "$cp_pid" --threads "$client_threads")")
        done
    done
    # The control plane's own view: pilot_proxy_convergence_time over both kinds' batches.
    conv="$(curl -s "http://$api/metrics" | awk '
        /^pilot_proxy_convergence_time_sum / {s=$2} /^pilot_proxy_convergence_time_count / {c=$2}
        END {if (c > 0) printf "%.1f ms over %d batches", s/c*1000, c; else print "none"}')"
    hwm="$(awk '/VmHWM/ {print $2}' "/proc/$cp_pid/status")"
    rss="$(awk '/VmRSS/ {print $2}' "/proc/$cp_pid/status")"
    kill "$cp_pid"
    wait "$cp_pid" 2>/dev/null || true
    cp_pid=""
    memory_rows+=("| $n | $(echo "$rss_idle" | awk '{printf "%.1f MiB", $1/1024}') | $(echo "$rss" | awk '{printf "%.1f MiB", $1/1024}') | $(echo "$hwm" | awk '{printf "%.1f MiB", $1/1024}') | $conv |")
done

echo "Change until every affected stream ACKed it (from POST /apply; the debounce included;"
echo "control plane flags: ${CP_ARGS:-none}; load client threads: $client_threads):"
echo
echo "| change | streams affected | changes | p50 | p99 | max | connect + first sync of all streams | responses sent during the changes | control plane CPU per change |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${latency_rows[@]}"
echo
echo "Load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo
echo "Control plane memory:"
echo
echo "| streams | RSS before the streams | RSS at the end | peak RSS (VmHWM) | mean pilot_proxy_convergence_time |"
echo "|---:|---:|---:|---:|---:|"
printf '%s\n' "${memory_rows[@]}"
