#!/usr/bin/env bash
# Benchmark: the real git-annex-shell against ours (served directly, and as
# a gateway to 3-node clusters, local and over ssh, and to a proxied node),
# driven by the same real git-annex client, alternating, several rounds;
# prints a table and writes target/bench-results.md and .json. Options go
# to scripts/bench.py (--quick, --rounds N, --only NAME,..., --keep; see
# --help); `python3 scripts/bench.py --readme target/bench-results.json`
# prints the README's tables from a results file.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/install-git-annex.sh >&2
target=${CARGO_TARGET_DIR:-$top/target}
# Ours as the README recommends installing it: a static-pie, which starts
# without loading and linking shared libraries (see "Benchmarks").
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --target "$host" -p annex-shell --bins >&2
# What each server session's and the client command's process tree spends
# (CPU, writes, peak RSS), and when the client waits on a session.
cc -O2 -Wall -o "$target/bench-reap" scripts/bench-reap.c
exec python3 scripts/bench.py --ours-bin "$target/$host/release" --reap "$target/bench-reap" --venv "$top/.venv" "$@"
