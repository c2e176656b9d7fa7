#!/usr/bin/env bash
# Benchmarks `weft validate` over a directory of N generated objects (default 1,000) with
# hyperfine, and prints the figures for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-1000}"
command -v hyperfine >/dev/null || { echo "bench: hyperfine is missing: apt-get install hyperfine" >&2; exit 1; }
cargo build --release --locked -q -p weft
weft="${CARGO_TARGET_DIR:-target}/release/weft"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
python3 bench/gen_config.py "$dir" "$count"
"$weft" validate -f "$dir" | tail -n 1
hyperfine --warmup 3 --runs 30 --export-markdown "$dir/result.md" "$weft validate -f $dir"
cat "$dir/result.md"
