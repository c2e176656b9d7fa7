#!/usr/bin/env bash
# Runs Weft's whole test suite: the README's test command, and what CI runs.
# Installs the system tools the end-to-end tests drive (on Debian/Ubuntu, as root), or says
# exactly what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
    echo "weft tests: cargo is missing. Install Rust with rustup (https://rustup.rs), then run this again." >&2
    exit 1
}

# The tools the end-to-end tests run, and the Debian packages they come in.
declare -A packages=([curl]=curl [ip]=iproute2 [iptables]=iptables [openssl]=openssl [nsenter]=util-linux [setpriv]=util-linux)
missing=()
for tool in "${!packages[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${packages[$tool]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "weft tests: installing ${missing[*]}" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "weft tests: missing tools; install them first: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

shared="$(cd .. && pwd)/shared"
if [ ! -d "$shared/istio-samples" ]; then
    echo "weft tests: Istio's sample corpus is expected at $shared (the project's shared/ folder beside this checkout)." >&2
    exit 1
fi

cargo test --workspace --locked "$@"
