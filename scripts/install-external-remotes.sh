#!/bin/sh
# Installs the external special remote programs the tests of external
# remotes run (tests/tests/special/external.rs), none of them ours:
# - datalad's git-annex-remote-ora (the `datalad` package) into the venv
#   that holds the tests' git-annex (<workspace>/.venv or $ANNEX_VENV);
# - Debian's rclone, and the git-annex-remote-rclone script alone, taken
#   out of its Debian package (never installed: that package pulls in
#   Debian's own git-annex, which must never reach the server's PATH) into
#   <venv>/external-remotes/.
# The script's 0.6 release misreads `rclone size` as rclone 1.60 prints it
# ("Total objects: 1 (1)" then "Total size: ..."; upstream issue #54), so
# CHECKPRESENT of a present key says UNKNOWN; the copy here has that one
# pattern widened, nothing else changed.
# Idempotent: does nothing when everything is there.
set -eu
datalad_version=1.7.1
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${ANNEX_VENV:-$root/.venv}
dest=$venv/external-remotes
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('datalad') == '$datalad_version'" 2>/dev/null \
  && [ -x "$venv/bin/git-annex-remote-ora" ]; then
  echo "datalad $datalad_version already in $venv"
else
  "$venv/bin/pip" install --quiet "datalad==$datalad_version"
  [ -x "$venv/bin/git-annex-remote-ora" ] || { echo "git-annex-remote-ora missing after installing datalad" >&2; exit 1; }
  echo "datalad $datalad_version installed in $venv"
fi
if ! command -v rclone >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { echo "rclone is needed and apt-get is not available" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
  command -v rclone >/dev/null 2>&1 || { echo "rclone missing after install" >&2; exit 1; }
  echo "rclone installed"
fi
if [ -x "$dest/git-annex-remote-rclone" ]; then
  echo "git-annex-remote-rclone already in $dest"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "apt-get is needed to fetch git-annex-remote-rclone" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
( cd "$work" && apt-get download git-annex-remote-rclone >/dev/null 2>&1 ) || {
  apt-get update -qq
  ( cd "$work" && apt-get download git-annex-remote-rclone >/dev/null )
}
dpkg-deb -x "$work"/git-annex-remote-rclone_*.deb "$work/x"
mkdir -p "$dest"
sed "s/'Total objects: \[1-9\]\[0-9\]\* Total size'/'Total objects: [1-9][0-9]*( \\\\([0-9]*\\\\))? Total size'/" \
  "$work/x/usr/bin/git-annex-remote-rclone" > "$dest/git-annex-remote-rclone.new"
grep -q 'Total objects: \[1-9\]\[0-9\]\*( ' "$dest/git-annex-remote-rclone.new" || {
  echo "git-annex-remote-rclone: the size pattern to widen was not found" >&2
  exit 1
}
chmod 755 "$dest/git-annex-remote-rclone.new"
mv "$dest/git-annex-remote-rclone.new" "$dest/git-annex-remote-rclone"
echo "git-annex-remote-rclone installed in $dest"
