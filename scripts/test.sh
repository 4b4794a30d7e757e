#!/usr/bin/env bash
# Run every test: installs the real git-annex client the end-to-end tests
# compare against, moto's S3 server (the S3 tests' bucket) and OpenSSH (one
# scenario runs a real sshd), openssl and curl (the HTTPS tests), the external
# special remote programs (datalad's ora, rclone's), gpg (encrypted special
# remotes), builds our binaries, then runs the whole
# workspace suite. With ANNEXPROXY_GARAGE=1 it also installs Garage
# (scripts/install-garage.sh: a 10+ minute build the first time) and runs
# the S3 scenarios against it (tests/tests/garage.rs), which the default
# run leaves out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-git-annex.sh
bash scripts/install-moto.sh
bash scripts/install-openssh.sh
bash scripts/install-tls-tools.sh
bash scripts/install-external-remotes.sh
bash scripts/install-gnupg.sh
cargo build --workspace --bins
# The end-to-end tests use the binaries just built; a build of their own
# from inside a test would resolve features differently and recompile.
ANNEXPROXY_NO_BUILD=1 cargo test --workspace --no-fail-fast "$@"
if [ "${ANNEXPROXY_GARAGE:-}" = 1 ]; then
  bash scripts/install-garage.sh
  export GARAGE_BIN=${GARAGE_BIN:-${GARAGE_ROOT:-$PWD/target/tools}/bin/garage}
  ANNEXPROXY_NO_BUILD=1 cargo test -p annexproxy-tests --test garage -- --ignored
fi
