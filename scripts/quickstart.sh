#!/usr/bin/env bash
# Build annexproxy, make a gateway for a cluster of three nodes in a temp
# dir (set up with annexproxy: no git-annex on the server side), and show a
# real git-annex client using the cluster over a loopback stand-in for ssh
# (no sshd needed). Stops at the first failing command.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
bash scripts/install-git-annex.sh
cargo build --release -p annex-shell --bins
start=$SECONDS
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

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
annexproxy() { "$bin/annexproxy" "$@"; }
gw=$demo/gateway.git

echo "== server: three node repositories and a gateway serving them as"
echo "   cluster 'demo', with $bin/git-annex-shell (no git-annex)"
for n in n1 n2 n3; do
  say git init -q --bare "$demo/$n.git"
  say annexproxy -C "$demo/$n.git" init "node $n"
done
say git init -q --bare "$gw"
say annexproxy -C "$gw" init "demo gateway"
say annexproxy -C "$gw" initcluster demo
for n in n1 n2 n3; do
  say git -C "$gw" remote add "$n" "$demo/$n.git"
  say git -C "$gw" config "remote.$n.annex-cluster-node" demo
done
# The nodes' git-annex branches bring their descriptions along.
say git -C "$gw" fetch -q --all
say annexproxy -C "$gw" updatecluster

echo "== client: real $(git annex version --raw) talking to the gateway over ssh"
say git clone -q "localhost:$gw" "$demo/client"
cd "$demo/client"
say git annex init -q laptop
printf 'hello from annexproxy\n' > hello.txt
head -c 5242880 /dev/urandom > big.bin
say git annex add -q hello.txt big.bin
say git commit -q -m "two files"
say git annex sync -q --no-commit   # learns origin-demo (the cluster) and origin-n1..n3 (its nodes)
say git annex copy --to origin-demo
say git annex whereis   # each node holds both files

echo "== get back from the cluster, then drop one file from every node at once"
say git annex drop hello.txt big.bin
say git annex get --from origin-demo
say git annex drop --from origin-demo big.bin
say git annex whereis

echo "== server: what the gateway sees"
say annexproxy -C "$gw" status
echo
echo "Demo done in $((SECONDS - start)) s; left in $demo (remove it when done)."
