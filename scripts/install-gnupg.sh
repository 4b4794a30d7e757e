#!/bin/sh
# Installs gpg and gpgconf, which encrypted special remotes need (the
# proxy runs gpg; the tests make a key for the server's user and stop its
# agent with gpgconf). Idempotent.
set -eu
if command -v gpg >/dev/null 2>&1 && command -v gpgconf >/dev/null 2>&1; then
  echo "gpg already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "gpg is needed and apt-get is not available; install it by hand" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnupg >/dev/null
echo "gpg installed"
