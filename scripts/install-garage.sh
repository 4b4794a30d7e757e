#!/bin/sh
# Installs Garage (crate `garage`, pinned), the real S3-compatible object
# store the Garage tests (tests/tests/garage.rs) and `bench.sh --only s3
# --garage` run against, into a project-local tools directory:
# $GARAGE_ROOT, else <workspace>/target/tools (the binary in its bin/).
# Idempotent: does nothing when that version is there. It builds from
# source (10+ minutes on 2 cores), so it runs niced, one job at a time,
# with a build directory of its own (kept for a later re-install; remove
# $GARAGE_ROOT/build to reclaim the space).
set -eu
version=2.5.0
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${GARAGE_ROOT:-$root/target/tools}
bin=$dest/bin/garage
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v\?$version\b"; then
  echo "garage $version already in $dest/bin"
  exit 0
fi
mkdir -p "$dest"
nice -n 19 cargo install --locked --version "$version" garage -j "${GARAGE_JOBS:-1}" \
  --root "$dest" --target-dir "$dest/build"
"$bin" --version | grep -q "$version" || {
  echo "$bin does not report version $version" >&2
  exit 1
}
echo "garage $version installed in $dest/bin"
