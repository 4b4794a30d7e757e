#!/bin/sh
# Installs the openssl and curl commands the HTTPS tests use
# (tests/src/tls.rs makes a throw-away CA with openssl; the --authenv
# test asks over HTTPS with curl). Idempotent.
set -eu
if command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
  echo "openssl and curl already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "openssl and curl are needed and apt-get is not available; install them by hand" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl curl >/dev/null
echo "openssl and curl installed"
