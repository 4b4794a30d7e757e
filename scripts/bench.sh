#!/usr/bin/env bash
# Benchmark: the real git-annex-shell against ours (served directly, and as
# a gateway to a 3-node cluster and to a proxied node), driven by the same real
# git-annex client, alternating, several rounds; prints a table and writes
# target/bench-results.md and .json. Options go to scripts/bench.py
# (--quick, --rounds N, --only NAME,..., --keep; see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/install-git-annex.sh >&2
if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time (peak RSS of the server sessions)" >&2
  apt-get install -y -q time >&2 || { apt-get update -q >&2 && apt-get install -y -q time >&2; }
fi
cargo build --release -p annex-shell --bins >&2
exec python3 scripts/bench.py --ours-bin "${CARGO_TARGET_DIR:-$top/target}/release" --venv "$top/.venv" "$@"
