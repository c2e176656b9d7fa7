#!/usr/bin/env bash
# Runs Weft's main job: the one-host mesh in the foreground (`weft up`, by default with the
# Bookinfo demo). Installs what the mesh needs on Debian/Ubuntu (as root) or says exactly what
# to install, builds the release binary, then starts `weft up` with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
    echo "weft: cargo is missing. Install Rust with rustup (https://rustup.rs), then run this again." >&2
    exit 1
}
if [ "$(id -u)" != 0 ]; then
    echo "weft: the mesh makes network namespaces and iptables rules: run this as root (sudo $0 $*)" >&2
    exit 1
fi

# The tools the mesh drives, and the Debian packages they come in.
declare -A packages=([ip]=iproute2 [iptables]=iptables [nsenter]=util-linux [setpriv]=util-linux [curl]=curl)
missing=()
for tool in "${!packages[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${packages[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "weft: installing ${missing[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "weft: missing tools; install the packages ${missing[*]} first" >&2
        exit 1
    fi
fi

cargo build --release --locked -q
[ "$#" -gt 0 ] || set -- --demo bookinfo
exec target/release/weft up "$@"
