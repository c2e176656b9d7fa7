#!/usr/bin/env bash
# Runs Weft's whole test suite: the README's test command, and what CI runs.
# Checks for what the tests need and says what to do when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "weft tests: '$1' is missing. $2" >&2
    exit 1
}
need cargo "Install Rust with rustup (https://rustup.rs), then run this script again."

shared="$(cd .. && pwd)/shared"
if [ ! -d "$shared/istio-samples" ]; then
    echo "weft tests: Istio's sample corpus is expected at $shared (the project's shared/ folder beside this checkout)." >&2
    exit 1
fi

cargo test --workspace --locked "$@"
