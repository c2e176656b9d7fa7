#!/usr/bin/env bash
# Runs Weft's main job: the one-host mesh in the foreground (`weft up`, by default with the
# Bookinfo demo). Installs what the mesh needs on Debian/Ubuntu (as root) or says exactly what
# to install, builds the release binary, then starts `weft up` with the given arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "weft: the mesh makes network namespaces and iptables rules: run this as root (sudo $0 $*)" >&2
    exit 1
fi

# Under sudo, build as the user who ran it, with their Rust (sudo's PATH does not have
# ~/.cargo/bin, and a build as root would leave root-owned files in their target/).
builder=()
cargo_bin="$(command -v cargo 2>/dev/null || true)"
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
    home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
    cargo_bin="$(sudo -u "$SUDO_USER" -H bash -lc 'command -v cargo' 2>/dev/null || true)"
    if [ -z "$cargo_bin" ] && [ -x "$home/.cargo/bin/cargo" ]; then
        cargo_bin="$home/.cargo/bin/cargo"
    fi
    builder=(sudo -u "$SUDO_USER" -H env "PATH=$(dirname "${cargo_bin:-/}"):$PATH")
fi
[ -n "$cargo_bin" ] || {
    echo "weft: cargo is missing. Install Rust with rustup (https://rustup.rs), then run this again." >&2
    exit 1
}

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

"${builder[@]}" "$cargo_bin" build --release --locked -q
[ "$#" -gt 0 ] || set -- --demo bookinfo
exec "${CARGO_TARGET_DIR:-target}/release/weft" up "$@"
