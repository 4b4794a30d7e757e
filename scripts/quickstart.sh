#!/usr/bin/env bash
# Build annexproxy, serve a demo repository in a temp dir with our
# git-annex-shell, and show a real git-annex client using it over a loopback
# stand-in for ssh (no sshd needed). The server side has no git-annex.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/install-git-annex.sh
cargo build --release -p annex-shell --bins
bin=${CARGO_TARGET_DIR:-$top/target}/release

demo=$(mktemp -d "${TMPDIR:-/tmp}/annexproxy-demo.XXXXXX")
mkdir -p "$demo/bin" "$demo/home" "$demo/server-home"
ln -s "$top/scripts/ssh-standin" "$demo/bin/ssh"
export ANNEXPROXY_SERVER_PATH="$bin:/usr/local/bin:/usr/bin:/bin"
export ANNEXPROXY_SERVER_HOME="$demo/server-home"
export HOME="$demo/home" GIT_CONFIG_NOSYSTEM=1
export PATH="$demo/bin:$top/.venv/bin:$PATH"
git config --global user.name "Demo User"
git config --global user.email demo@example.org
git config --global init.defaultBranch main
git config --global annex.sshcaching false

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "== server: a bare git repository, served by $bin/git-annex-shell,"
echo "   proxying for two repositories behind it (set up with annexproxy, no git-annex)"
for n in node1 node2; do
  say git init -q --bare "$demo/$n.git"
  say "$bin/annexproxy" -C "$demo/$n.git" init "$n behind the proxy"
done
say git init -q --bare "$demo/server.git"
say "$bin/annexproxy" -C "$demo/server.git" init "demo proxy"
for n in node1 node2; do
  say git -C "$demo/server.git" remote add "$n" "$demo/$n.git"
  say git -C "$demo/server.git" config "remote.$n.annex-proxy" true
done
say "$bin/annexproxy" -C "$demo/server.git" updateproxy

echo "== client: real $(git annex version --raw) talking to it over ssh"
say git clone -q "localhost:$demo/server.git" "$demo/client"
cd "$demo/client"
say git annex init -q laptop
printf 'hello from annexproxy\n' > hello.txt
head -c 1048576 /dev/urandom > data.bin
say git annex add -q hello.txt data.bin
say git commit -q -m "two files"
say git annex sync -q
say git annex copy --to origin
say git annex drop hello.txt data.bin
say git annex get --from origin
say git annex fsck --from origin --fast
say git annex sync -q
say git annex whereis

echo "== the client reaches node1 and node2 only through the proxy"
say git annex copy --to origin-node1 hello.txt
say git annex copy --to origin-node2 data.bin
say git annex drop --from origin hello.txt data.bin
say git annex drop hello.txt data.bin
say git annex get --from origin-node1 hello.txt
say git annex get --from origin-node2 data.bin
say git annex sync -q
say git annex whereis
echo
echo "Demo left in $demo (remove it when done)."
