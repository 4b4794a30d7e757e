#!/bin/sh
# Installs the git-annex the end-to-end tests are pinned to into
# <workspace>/.venv (or $ANNEX_VENV). Idempotent: does nothing when the venv
# already reports the pinned version.
set -eu
version=10.20261026
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${ANNEX_VENV:-$root/.venv}
if [ -x "$venv/bin/git-annex" ] && "$venv/bin/git-annex" version --raw 2>/dev/null | grep -q "^$version"; then
  echo "git-annex $version already in $venv"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "git-annex==$version"
"$venv/bin/git-annex" version --raw | grep -q "^$version" || {
  echo "installed git-annex does not report $version" >&2
  exit 1
}
echo "git-annex $version installed in $venv"
