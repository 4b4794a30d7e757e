#!/bin/sh
# Installs the OpenSSH server and client that tests/tests/openssh.rs runs on
# a loopback port. Idempotent: does nothing when both are already there.
# Only the test's own sshd (own config, own port) is ever used, so the
# package must not start a system sshd on port 22: a policy-rc.d that
# refuses service starts is put in place for the install when none exists.
set -eu
if [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1; then
  echo "openssh server and client already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "openssh-server/openssh-client are needed and apt-get is not available; install them by hand" >&2
  exit 1
fi
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by annexproxy scripts/install-openssh.sh for one install\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  own_policy=1
fi
status=0
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; } || status=$?
if [ -n "$own_policy" ]; then rm -f "$policy"; fi
if [ "$status" -ne 0 ]; then
  echo "installing openssh-server/openssh-client failed ($status)" >&2
  exit "$status"
fi
[ -x /usr/sbin/sshd ] || { echo "/usr/sbin/sshd missing after install" >&2; exit 1; }
echo "openssh server and client installed"
