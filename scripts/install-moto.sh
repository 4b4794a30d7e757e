#!/bin/sh
# Installs moto's standalone S3 server (`moto[server]`), the S3 service the
# tests of s3/ run against, into the venv that holds the tests' git-annex
# (<workspace>/.venv or $ANNEX_VENV). Idempotent: does nothing when the venv
# already has the pinned version.
set -eu
version=5.2.5
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${ANNEX_VENV:-$root/.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if "$venv/bin/python" -c "import importlib.metadata as m, flask; assert m.version('moto') == '$version'" 2>/dev/null; then
  echo "moto $version already in $venv"
  exit 0
fi
"$venv/bin/pip" install --quiet "moto[server]==$version"
"$venv/bin/python" -m moto.server --help >/dev/null || {
  echo "moto's server does not start from $venv" >&2
  exit 1
}
echo "moto $version installed in $venv"
