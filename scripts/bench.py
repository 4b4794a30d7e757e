#!/usr/bin/env python3
"""Real git-annex-shell vs ours, side by side, with this machine's limits.

Driven by scripts/bench.sh (which builds and installs what this needs); run
it directly only with --ours-bin, --reap and --venv, or with --readme to
print the tables of a results JSON. Standard library only.

Every scenario runs against two servers prepared the same way, one served
by the real git-annex-shell and one by ours, in every round, the order of
the two alternating between rounds so neither always runs on a warm or a
cold cache. The client is the same real git-annex for both; it reaches the
servers through the loopback ssh stand-in, which runs each server session
under bench-reap (scripts/bench-reap.c) to learn what its whole process
tree spent: CPU, bytes written, peak RSS, and when its client waited on
it. The client command runs under bench-reap too: its tree's CPU less the
sessions' is the client's own, its wall less the waits the client-only
wall (README, "The client's share").

Besides the plain server, each side has a gateway serving a 3-node cluster
(set up alike on both sides by the real git-annex: initcluster,
updatecluster); the client reaches the cluster as `<side>-gw-cl` and, as a
single proxied node behind the same gateway, `<side>-gw-n1`. A second
gateway, `<side>-sgw`, reaches its three nodes over ssh (`<side>-far`).
The client scenarios drive those unchanged through `Bench.via`.

The p2pstdio GET starts from the object out of the page cache on both
sides (`Bench.evict`), or, in the `cached` row, in it on both
(`Bench.warm`); the client GETs find it as the copy before left it.

Adding a scenario: write a function `(bench, server) -> Sample` and append a
Scenario to SCENARIOS (before any scenario that depends on the state it
leaves).
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import socket
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MB = 1_000_000
CLIENT_UUID = "b0000000-0000-4000-8000-00000000b0b0"
CHUNK = 1 << 20


@dataclass
class Sizes:
    rounds: int
    small_n: int
    small_size: int
    big: int
    startup_n: int
    p2p: int


DEFAULT = Sizes(rounds=5, small_n=200, small_size=1000, big=300 * MB, startup_n=200, p2p=1000 * MB)
QUICK = Sizes(rounds=3, small_n=40, small_size=1000, big=30 * MB, startup_n=40, p2p=100 * MB)


@dataclass
class Session:
    """What one process tree spent, as scripts/bench-reap.c reports it: a
    server session's (with the intervals its client waited on it), or a
    client command's (with the moment the command itself exited)."""

    user: float
    sys: float
    rss_kb: int
    written: int  # bytes dirtied for files (the kernel's write_bytes)
    start: float = 0.0  # time.monotonic() seconds
    main: float = 0.0  # when the command itself exited
    end: float = 0.0  # when its whole tree was gone
    self_cpu: float = 0.0  # the reaper's own CPU (relaying), in no figure above
    busy: list[tuple[float, float]] = field(default_factory=list)

    @staticmethod
    def parse(line: str) -> "Session | None":
        f = line.split()
        if len(f) < 11 or len(f) % 2 == 0 or f[0] != "session":
            return None
        kv = dict(zip(f[1::2], f[2::2]))
        busy = []
        for pair in kv.get("busy", "-").split(","):
            if pair != "-":
                a, b = pair.split("-")
                busy.append((float(a), float(b)))
        return Session(
            float(kv["user"]),
            float(kv["sys"]),
            int(kv["rss"]),
            int(kv["written"]),
            float(kv.get("start", 0)),
            float(kv.get("main", 0)),
            float(kv.get("end", 0)),
            float(kv.get("self", 0)),
            busy,
        )

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def union_length(spans: list[tuple[float, float]], lo: float, hi: float) -> float:
    """Seconds of [lo, hi] covered by at least one of `spans`."""
    total, reach = 0.0, lo
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, hi)
        if b > a:
            total += b - a
            reach = b
    return total


@dataclass
class Sample:
    seconds: float
    rss_kb: int | None = None
    # Seconds the server sessions went on after the client returned (not
    # part of `seconds`).
    tail: float = 0.0
    # CPU seconds of every server-side process of the step, summed over
    # its sessions (a gateway's node children included).
    user: float = 0.0
    sys: float = 0.0
    written: int = 0  # bytes the server side wrote to files
    sessions: int = 0
    # The client's own share, for client steps only (see `client_share`):
    # CPU of the client's process tree less the server sessions', and the
    # wall seconds in which no server session kept the client waiting.
    client_cpu: float | None = None
    client_only: float | None = None

    @staticmethod
    def of(seconds: float, sessions: list[Session], tail: float = 0.0) -> "Sample":
        return Sample(
            seconds,
            max((x.rss_kb for x in sessions), default=None),
            tail,
            sum(x.user for x in sessions),
            sum(x.sys for x in sessions),
            sum(x.written for x in sessions),
            len(sessions),
        )

    def client_share(self, client: Session, sessions: list[Session], t0: float) -> None:
        """Fills the client's own share from the client command's tree
        (`client`, run under bench-reap: every process it started is in
        it, the server sessions too, since each session's reaper is the
        client's descendant and is reaped by the client or, orphaned, by
        the client's reaper) and the sessions' busy intervals, within the
        step's wall [t0, t0 + seconds]."""
        servers = sum(x.cpu for x in sessions)
        if client.cpu + 0.001 < servers:
            raise Failed(f"the client's tree spent {client.cpu:.3f} s of CPU, its server sessions {servers:.3f} s")
        self.client_cpu = client.cpu - servers - sum(x.self_cpu for x in sessions)
        waited = union_length([span for x in sessions for span in x.busy], t0, t0 + self.seconds)
        self.client_only = self.seconds - waited

    @property
    def cpu(self) -> float:
        return self.user + self.sys


@dataclass
class Server:
    kind: str  # "real" or "ours"
    bindir: Path  # first on the server's PATH, holds git-annex-shell
    repo: Path
    remote: str  # the client's name for it
    host: str = ""  # the ssh host name, which picks the side; `remote` when empty

    @property
    def ssh_host(self) -> str:
        return self.host or self.remote

    @property
    def path(self) -> str:
        # No /usr/local/bin: our server must never find a git-annex there.
        return f"{self.bindir}:/usr/bin:/bin"

    @property
    def shell(self) -> Path:
        return self.bindir / "git-annex-shell"


@dataclass
class Scenario:
    name: str
    run: object  # (Bench, Server) -> Sample
    nbytes: int = 0  # payload moved, for a MB/s column; 0 when meaningless
    group: str = ""  # scenarios that share server state
    restores: bool = False  # puts its group's servers back as they were


class Failed(Exception):
    pass


def human(n: int) -> str:
    if n >= MB and n % MB == 0:
        return f"{n // MB} MB"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000} KB"
    return f"{n} B"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left > 0:
            chunk = os.urandom(min(CHUNK, left))
            f.write(chunk)
            left -= len(chunk)


class LineReader:
    """Lines and counted bodies from a raw pipe fd, with the body moved by
    splice(2) to /dev/null when the kernel allows, so the driver costs as
    little as possible next to the server it measures."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = b""
        self.null = os.open(os.devnull, os.O_WRONLY)

    def line(self) -> str:
        while b"\n" not in self.buf:
            more = os.read(self.fd, 65536)
            if not more:
                raise Failed(f"server closed the connection (pending {self.buf[:200]!r})")
            self.buf += more
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def discard(self, n: int) -> None:
        take = min(n, len(self.buf))
        self.buf = self.buf[take:]
        n -= take
        splice = getattr(os, "splice", None)
        while n > 0:
            got = 0
            if splice is not None:
                try:
                    got = splice(self.fd, self.null, min(n, 1 << 24))
                except OSError:
                    splice = None
                    continue
            else:
                got = len(os.read(self.fd, min(n, CHUNK)))
            if got == 0:
                raise Failed(f"server closed the connection with {n} body bytes to go")
            n -= got


class Bench:
    def __init__(self, args: argparse.Namespace, sizes: Sizes):
        self.sizes = sizes
        self.top = Path(args.top).resolve()
        self.root = Path(tempfile.mkdtemp(prefix="annexproxy-bench-", dir=args.tmpdir))
        self.keep = args.keep
        real = find_real_git_annex(Path(args.venv))
        self.real_binary = real
        self.ours_binary = Path(args.ours_bin).resolve() / "git-annex-shell"
        if not self.ours_binary.is_file():
            raise Failed(f"no {self.ours_binary}: build it first")
        self.reap = Path(args.reap).resolve()
        if not os.access(self.reap, os.X_OK):
            raise Failed(f"no {self.reap}: scripts/bench.sh builds it from scripts/bench-reap.c")
        self.venv = Path(args.venv)
        self.want_s3 = False  # main sets it when the S3 group runs
        self.want_crypt = False  # main sets it when the encrypted group runs
        self.moto: subprocess.Popen | None = None
        self.gpg_home: Path | None = None
        self.crypt_stores: dict[tuple[str, str], Path] = {}
        self.results: dict[str, dict[str, list[Sample]]] = {}
        self.limits: dict[str, list[float]] = {}
        self.rounds: list[dict] = []  # per round: the order and the load

    # ---------------------------------------------------------------- setup

    def setup(self) -> None:
        r = self.root
        for d in ["client-bin", "real-bin", "ours-bin", "home", "server-home", "far-home", "srv", "far", "state", "data"]:
            (r / d).mkdir()
        # The client: the real git-annex binary itself (the venv's python
        # wrapper would add its start-up to every client command).
        (r / "client-bin/git-annex").symlink_to(self.real_binary)
        (r / "real-bin/git-annex-shell").symlink_to(self.real_binary)
        (r / "real-bin/git-annex").symlink_to(self.real_binary)
        (r / "ours-bin/git-annex-shell").symlink_to(self.ours_binary)
        self.servers = [
            Server("real", r / "real-bin", r / "srv/real.git", "real-server"),
            Server("ours", r / "ours-bin", r / "srv/ours.git", "ours-server"),
        ]
        self.write_ssh()
        self.env = {
            "HOME": str(r / "home"),
            "PATH": f"{r / 'client-bin'}:{os.environ['PATH']}",
            "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8",
            "USER": os.environ.get("USER", "bench"),
            "BENCH_CLIENT": "1",
        }
        for k, v in [
            ("user.name", "Bench"),
            ("user.email", "bench@example.org"),
            ("init.defaultBranch", "main"),
            ("annex.sshcaching", "false"),
        ]:
            self.git(["config", "--global", k, v])
        # The server account's git identity: without one, git refuses the
        # real server's git-annex branch commits on a host with no domain
        # name (and the real server would skip work ours does).
        # No ssh connection caching for the gateways' node sessions either.
        for home in ["server-home", "far-home"]:
            (r / home / ".gitconfig").write_text(
                "[user]\n\tname = Bench Server\n\temail = server@example.org\n[annex]\n\tsshcaching = false\n"
            )
        for s in self.servers:
            # Both servers made alike, by plain git and the real git-annex;
            # only their UUIDs differ (one client talks to both).
            self.git(["init", "-q", "--bare", str(s.repo)])
            self.annex(["init", "-q", f"{s.kind} server"], cwd=s.repo)
        client = r / "client"
        self.client = client
        self.git(["init", "-q", str(client)])
        self.annex(["init", "-q", "bench client"], cwd=client)
        for s in self.servers:
            self.git(["remote", "add", s.remote, f"{s.remote}:{s.repo}"], cwd=client)
        log(f"generating {self.sizes.small_n} x {human(self.sizes.small_size)} and {human(self.sizes.big)} files")
        (client / "small").mkdir()
        for i in range(self.sizes.small_n):
            write_random(client / f"small/{i:04}", self.sizes.small_size)
        write_random(client / "big.bin", self.sizes.big)
        self.annex(["add", "-q", "small", "big.bin"], cwd=client)
        self.git(["commit", "-q", "-m", "bench files"], cwd=client)
        # First contact: the client learns each server's UUID and the
        # servers get the branches; not measured.
        for s in self.servers:
            self.annex(["sync", "-q", "--no-content", s.remote], cwd=client)
            self.wait_sessions()
        self.setup_clusters()
        if self.want_s3:
            self.setup_s3()
        if self.want_crypt:
            self.setup_crypt()
        log(f"generating the {human(self.sizes.p2p)} P2P file")
        self.p2p_file = r / "data/p2p.bin"
        write_random(self.p2p_file, self.sizes.p2p)
        out = subprocess.run(["sha256sum", str(self.p2p_file)], capture_output=True, text=True, check=True)
        self.p2p_key = f"SHA256E-s{self.sizes.p2p}--{out.stdout.split()[0]}"

    CLUSTER = "cl"
    NODES = 3

    def setup_clusters(self) -> None:
        """Per side, two gateways, each serving three nodes as cluster
        `cl`, all made by the real git-annex the same way; the client
        learns of them by a sync with each gateway. `gw` has its nodes in
        directories on its machine (local remotes); `sgw` reaches its nodes
        over ssh, in another account (`<side>-far`, see `write_ssh`)."""
        self.via_servers: dict[tuple[str, str], Server] = {}
        self.node_repos: dict[tuple[str, str], list[Path]] = {}
        p = subprocess.run(["git-annex", "lookupkey", "big.bin"], cwd=self.client, env=self.env, capture_output=True, text=True)
        self.big_key = p.stdout.strip()
        for s in self.servers:
            self.setup_gateway(s, "gw", far=False, via=[("cluster", self.CLUSTER), ("node", "n1")])
            self.setup_gateway(s, "sgw", far=True, via=[("sshcluster", self.CLUSTER)])

    def setup_gateway(self, s: Server, name: str, far: bool, via: list[tuple[str, str]]) -> None:
        r = self.root
        gw = r / f"srv/{s.kind}-{name}.git"
        self.git(["init", "-q", "--bare", str(gw)])
        self.annex(["init", "-q", f"{s.kind} {name}"], cwd=gw)
        nodes = []
        for i in range(1, self.NODES + 1):
            node = r / ("far" if far else "srv") / f"{s.kind}-{name}-n{i}.git"
            self.git(["init", "-q", "--bare", str(node)])
            self.annex(["init", "-q", f"{s.kind} {name} node {i}"], cwd=node)
            self.git(["remote", "add", f"n{i}", f"{self.node_host(s)}:{node}" if far else str(node)], cwd=gw)
            self.git(["config", f"remote.n{i}.annex-cluster-node", self.CLUSTER], cwd=gw)
            if far:
                # What git-annex would learn from the node's configlist.
                uuid = subprocess.run(["git", "config", "annex.uuid"], cwd=node, capture_output=True, text=True, check=True)
                self.git(["config", f"remote.n{i}.annex-uuid", uuid.stdout.strip()], cwd=gw)
            nodes.append(node)
        self.annex(["initcluster", "-q", self.CLUSTER], cwd=gw)
        self.annex(["updatecluster", "-q"], cwd=gw)
        remote = f"{s.kind}-{name}"
        self.git(["remote", "add", remote, f"{s.ssh_host}:{gw}"], cwd=self.client)
        self.annex(["sync", "-q", "--no-content", remote], cwd=self.client)
        self.wait_sessions()
        # The client must see the cluster through the gateway.
        p = subprocess.run(["git-annex", "info", "--fast", remote], cwd=self.client, env=self.env, capture_output=True, text=True)
        if f"gateway to cluster: {remote}-{self.CLUSTER}" not in p.stdout:
            raise Failed(f"the client does not see the cluster of {remote}:\n{p.stdout}{p.stderr}")
        for what, behind in via:
            self.node_repos[(s.kind, what)] = nodes
            self.via_servers[(s.kind, what)] = Server(s.kind, s.bindir, gw, f"{remote}-{behind}", s.ssh_host)

    S3_KEY = {"AWS_ACCESS_KEY_ID": "AKIABENCH0000000000", "AWS_SECRET_ACCESS_KEY": "benchsecretbenchsecretbenchsecret00000"}

    def setup_s3(self) -> None:
        """Per side, an S3 remote `s3` of the server repository in a bucket
        of moto's (started from the venv), made by the real git-annex
        (`initremote` caches the credentials in annex/creds/<uuid>, where
        either proxy finds them), proxied (`annex-proxy=true`, then the
        side's own `updateproxy`); the client learns of it by a sync. Also
        the S3 group's small files (S3_SMALL_N of S3_SMALL_SIZE bytes)."""
        r = self.root
        port = free_port()
        py = "import sys; from moto.server import main; main(sys.argv[1:])"
        self.moto = subprocess.Popen(
            [str(self.venv / "bin/python"), "-c", py, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port)
        client = self.client
        (client / "s3small").mkdir()
        for i in range(S3_SMALL_N):
            write_random(client / f"s3small/{i:04}", S3_SMALL_SIZE)
        self.annex(["add", "-q", "s3small"], cwd=client)
        self.git(["commit", "-q", "-m", "s3 small files"], cwd=client)
        real_path = f"{r / 'real-bin'}:{os.environ['PATH']}"
        env = dict(self.server_env(self.servers[0]), PATH=real_path, **self.S3_KEY)
        for s in self.servers:
            bucket = f"bench-{s.kind}"
            req = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}", method="PUT")
            urllib.request.urlopen(req).read()
            setup = [
                ["git", "config", "annex.security.allowed-ip-addresses", "127.0.0.1"],
                ["git-annex", "initremote", "s3", "type=S3", "host=127.0.0.1", f"port={port}", "protocol=http",
                 "requeststyle=path", "signature=v4", "encryption=none", f"bucket={bucket}"],
                ["git", "config", "remote.s3.annex-proxy", "true"],
                ["git-annex", "updateproxy"] if s.kind == "real" else [str(self.ours_binary.parent / "annexproxy"), "updateproxy"],
            ]
            for argv in setup:
                p = subprocess.run(argv, cwd=s.repo, env=env, capture_output=True, text=True)
                if p.returncode != 0:
                    raise Failed(f"{' '.join(argv)} (in {s.repo}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
            self.verify_proxied_special(s, f"{s.remote}-s3")
            self.via_servers[(s.kind, "s3")] = Server(s.kind, s.bindir, s.repo, f"{s.remote}-s3", s.ssh_host)

    CRYPT_KEY = "bench@annexproxy.invalid"
    # The encrypted directory remotes of each side: name, initremote's
    # parameters beyond the directory and the cipher.
    CRYPT_REMOTES = [("crypt", []), ("cryptc", ["chunk=1MiB"])]

    def setup_crypt(self) -> None:
        """Per side, directory remotes with `encryption=hybrid` (the cipher
        encrypted to a gpg key without a passphrase that the bench makes for
        the server's account, so either proxy decrypts it with gpg as a real
        server would), unchunked (`crypt`: git-annex encrypts a whole copy
        to disk first) and with `chunk=1MiB` (`cryptc`), made by the real
        git-annex, proxied by the side's own `updateproxy`."""
        r = self.root
        home = r / "server-home"
        (home / ".gnupg").mkdir(mode=0o700, exist_ok=True)
        env = dict(self.server_env(self.servers[0]), PATH=f"{r / 'real-bin'}:{os.environ['PATH']}")
        gen = ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"bench <{self.CRYPT_KEY}>", "default", "default", "never"]
        p = subprocess.run(gen, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise Failed(f"gpg --quick-gen-key exited {p.returncode}:\n{p.stdout}{p.stderr}")
        self.gpg_home = home
        for s in self.servers:
            for name, extra in self.CRYPT_REMOTES:
                store = r / f"srv/{s.kind}-{name}store"
                store.mkdir()
                self.crypt_stores[(s.kind, name)] = store
                setup = [
                    ["git-annex", "initremote", name, "type=directory", f"directory={store}",
                     "encryption=hybrid", f"keyid={self.CRYPT_KEY}", *extra],
                    ["git", "config", f"remote.{name}.annex-proxy", "true"],
                ]
                for argv in setup:
                    p = subprocess.run(argv, cwd=s.repo, env=env, capture_output=True, text=True)
                    if p.returncode != 0:
                        raise Failed(f"{' '.join(argv)} (in {s.repo}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
            update = ["git-annex", "updateproxy"] if s.kind == "real" else [str(self.ours_binary.parent / "annexproxy"), "updateproxy"]
            p = subprocess.run(update, cwd=s.repo, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise Failed(f"{' '.join(update)} (in {s.repo}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
            self.verify_proxied_special(s, *(f"{s.remote}-{name}" for name, _ in self.CRYPT_REMOTES))
            for name, _ in self.CRYPT_REMOTES:
                self.via_servers[(s.kind, name)] = Server(s.kind, s.bindir, s.repo, f"{s.remote}-{name}", s.ssh_host)

    def verify_proxied_special(self, s: Server, *names: str) -> None:
        """The client's first sync learns of the proxied special remotes and
        git-annex 10.20261026 refuses to push until the client's user
        accepts each one's configuration (`verifyremote NAME --safe ID`)."""
        argv = ["git-annex", "sync", "-q", "--no-content", s.remote]
        subprocess.run(argv, cwd=self.client, env=self.env, capture_output=True, text=True)
        self.wait_sessions()
        for name in names:
            p = subprocess.run(["git-annex", "verifyremote", name], cwd=self.client, env=self.env, capture_output=True, text=True)
            words = (p.stdout + p.stderr).split("--safe ", 1)
            if len(words) == 2:
                self.annex(["verifyremote", name, "--safe", words[1].split()[0]], cwd=self.client)
            # verifyremote leaves a `remote.NAME` section of its own, which
            # hides the proxied remote git-annex makes from proxy.log; the
            # acceptance itself is in annex/verified-remote.log.
            subprocess.run(["git", "config", "--remove-section", f"remote.{name}"], cwd=self.client, env=self.env, capture_output=True)
        self.annex(argv[1:], cwd=self.client)
        self.wait_sessions()

    def objects(self, key: str) -> list[str]:
        """Every copy of `key`'s object on this machine: both sides'
        servers and nodes, and the client's."""
        return glob.glob(str(self.root / "**" / "annex/objects/*/*" / key / key), recursive=True)

    def evict(self, key: str) -> None:
        """Every copy of `key`'s object synced and dropped from the page
        cache, untimed: the p2pstdio GET starts from the disk on both
        sides, as a GET of content stored some time ago does. (Ours writes
        objects of 16 MiB or more past the cache, real through it: left as
        the PUT leaves them, real would read from memory and ours from the
        disk.)"""
        for path in self.objects(key):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def warm(self, key: str) -> None:
        """Every copy of `key`'s object read into the page cache, untimed."""
        for path in self.objects(key):
            with open(path, "rb") as f:
                while f.read(CHUNK):
                    pass

    def via(self, s: Server, what: str) -> Server:
        """The cluster (`what` = "cluster") or its proxied node n1 ("node")
        on `s`'s side."""
        return self.via_servers[(s.kind, what)]

    def node_host(self, s: Server) -> str:
        """The ssh host of `s`'s side's far cluster nodes."""
        return f"{s.kind}-far"

    def write_ssh(self) -> None:
        """One ssh for the client and for the gateways (on the servers'
        PATH): the host picks the side and the account, the server's own
        (`real-server`, `ours-server`) or the far nodes' (`real-far`,
        `ours-far`, another HOME, reached by the gateway of that side)."""
        r = self.root
        cases = "\n".join(
            f"    {host}) ANNEXPROXY_SERVER_PATH='{s.path}'; ANNEXPROXY_SERVER_HOME='{home}'; break ;;"
            for s in self.servers
            for host, home in [(s.ssh_host, r / "server-home"), (self.node_host(s), r / "far-home")]
        )
        standin = self.top / "scripts/ssh-standin"
        script = f"""#!/bin/sh
# Bench ssh. A session the client starts (BENCH_CLIENT set) is counted in
# state/sessions and, when BENCH_RSS_FILE is set, run under bench-reap,
# which relays and times its stdio and adds a line for the session's whole
# process tree. A gateway's own
# sessions to its nodes are part of its tree: neither counted nor wrapped.
for a in "$@"; do
  case $a in
{cases}
  esac
done
export ANNEXPROXY_SERVER_PATH ANNEXPROXY_SERVER_HOME
[ -n "${{BENCH_CLIENT:-}}" ] || exec '{standin}' "$@"
echo s >> '{r / "state/sessions"}'
if [ -n "${{BENCH_RSS_FILE:-}}" ]; then
  exec '{self.reap}' -r "$BENCH_RSS_FILE" '{standin}' "$@"
fi
'{standin}' "$@"
rc=$?
echo e >> '{r / "state/ends"}'
exit $rc
"""
        ssh = r / "client-bin/ssh"
        ssh.write_text(script)
        ssh.chmod(0o755)
        for s in self.servers:
            (s.bindir / "ssh").symlink_to(ssh)

    # -------------------------------------------------------------- helpers

    def git(self, argv: list[str], cwd: Path | None = None) -> None:
        self.run(["git", *argv], cwd=cwd)

    def annex(self, argv: list[str], cwd: Path | None = None, extra: dict | None = None) -> None:
        self.run(["git-annex", *argv], cwd=cwd, extra=extra)

    def run(self, argv: list[str], cwd: Path | None = None, extra: dict | None = None) -> None:
        env = dict(self.env, **(extra or {}))
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise Failed(f"{' '.join(argv)} (in {cwd}) exited {p.returncode}:\n{p.stdout}{p.stderr}")

    def count(self, name: str) -> int:
        try:
            return len((self.root / "state" / name).read_text().splitlines())
        except FileNotFoundError:
            return 0

    def wait_sessions(self, rss_file: Path | None = None) -> None:
        """Waits until every server session the client started has ended:
        git-annex may return before its ssh child is reaped, and the next
        step must not overlap with a server still committing."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ended = self.count("ends") + (len(read_sessions(rss_file)) if rss_file else 0)
            if ended >= self.count("sessions"):
                return
            time.sleep(0.01)
        raise Failed("a server session did not end within 60 s")

    def client_step(self, server: Server, argv: list[str]) -> Sample:
        # Every step starts with nothing dirty, outside its timing: git-annex
        # never syncs what it writes, and the kernel's writeback of it would
        # otherwise land on whichever step runs next, often the other side's
        # (README, "Each step starts synced").
        os.sync()
        stamp = time.monotonic_ns()
        rss_file = self.root / "state" / f"rss.{stamp}"
        rss_file.touch()
        client_file = self.root / "state" / f"client.{stamp}"
        # Sessions counted so far belong to steps that already ended.
        (self.root / "state/sessions").write_text("")
        (self.root / "state/ends").write_text("")
        env = dict(self.env, BENCH_RSS_FILE=str(rss_file))
        # The client under its own reaper, for its tree's CPU; the wall
        # ends, as without it, when the client and every server session
        # have let go of its output (the reaper holds none of it), not
        # when the reaper is done.
        # time.monotonic is the reapers' CLOCK_MONOTONIC.
        t0 = time.monotonic()
        p = subprocess.Popen(
            [str(self.reap), str(client_file), "git-annex", *argv],
            cwd=self.client,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = p.stdout.read()
        elapsed = time.monotonic() - t0
        p.stdout.close()
        if p.wait() != 0:
            raise Failed(f"git-annex {' '.join(argv)} exited {p.returncode}:\n{out.decode(errors='replace')}")
        self.wait_sessions(rss_file)
        tail = time.monotonic() - t0 - elapsed
        sessions = read_sessions(rss_file)
        sample = Sample.of(elapsed, sessions, tail)
        client = read_sessions(client_file)
        if len(client) != 1:
            raise Failed(f"no client line in {client_file}")
        sample.client_share(client[0], sessions, t0)
        return sample

    def server_env(self, server: Server) -> dict:
        return {
            "HOME": str(self.root / "server-home"),
            "PATH": server.path,
            "USER": self.env["USER"],
            "GIT_CONFIG_NOSYSTEM": "1",
        }

    # -------------------------------------------------------------- running

    def measure(self, rounds: int, scenarios: list[Scenario]) -> None:
        for rnd in range(rounds):
            order = self.servers if rnd % 2 == 0 else list(reversed(self.servers))
            log(f"== round {rnd + 1}/{rounds} ({' then '.join(s.kind for s in order)})")
            load = {"round": rnd + 1, "order": [s.kind for s in order], "loadavg_start": loadavg()}
            for sc in scenarios:
                for s in order:
                    sample = sc.run(self, s)
                    self.results.setdefault(sc.name, {}).setdefault(s.kind, []).append(sample)
                    rss = f", rss {sample.rss_kb / 1024:.1f} MiB" if sample.rss_kb else ""
                    log(
                        f"  {sc.name:<34} {s.kind:<4} {sample.seconds:8.3f} s, cpu {sample.cpu:.3f} s, "
                        f"wrote {sample.written / MB:.1f} MB{rss}"
                    )
            # The machine's limits in the first and the last round only:
            # they take several seconds (a GB hashed twice, copied, synced).
            if rnd in (0, rounds - 1):
                for name, rate in measure_limits(self).items():
                    self.limits.setdefault(name, []).append(rate)
                    log(f"  limit {name:<52} {rate:8.1f}")
            load["loadavg_end"] = loadavg()
            self.rounds.append(load)

    def cleanup(self) -> None:
        if self.moto:
            self.moto.terminate()
            self.moto.wait()
        if self.gpg_home:
            # The agent the server's gpg started for the bench's key.
            env = dict(os.environ, HOME=str(self.gpg_home))
            subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
        if self.keep:
            log(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def read_sessions(path: Path | None) -> list[Session]:
    if path is None:
        return []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [x for x in map(Session.parse, text.splitlines()) if x is not None]


def find_real_git_annex(venv: Path) -> Path:
    hits = glob.glob(str(venv / "lib/python3*/site-packages/git_annex/git-annex"))
    if not hits:
        raise Failed(f"no real git-annex binary under {venv} (scripts/install-git-annex.sh)")
    return Path(hits[0]).resolve()


# ------------------------------------------------------------------ scenarios


def small_copy(b: Bench, s: Server) -> Sample:
    return b.client_step(s, ["copy", "--quiet", "--to", s.remote, "small"])


def small_drop(b: Bench, s: Server) -> Sample:
    return b.client_step(s, ["drop", "--quiet", "--from", s.remote, "small"])


def big_copy(b: Bench, s: Server) -> Sample:
    return b.client_step(s, ["copy", "--quiet", "--to", s.remote, "big.bin"])


def big_get(b: Bench, s: Server) -> Sample:
    # Local drop without asking any remote: only the get is measured.
    b.annex(["drop", "--quiet", "--force", "big.bin"], cwd=b.client)
    return b.client_step(s, ["get", "--quiet", "--from", s.remote, "big.bin"])


def big_drop(b: Bench, s: Server) -> Sample:
    return b.client_step(s, ["drop", "--quiet", "--from", s.remote, "big.bin"])


def startup(b: Bench, s: Server) -> Sample:
    """`configlist DIR` run directly (no ssh) n times: the price of starting
    the server, which every ssh session pays."""
    env = b.server_env(s)
    argv = [str(s.shell), "configlist", str(s.repo)]
    quiet = dict(env=env, cwd=env["HOME"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # CPU and writes: what this process's reaped children spent meanwhile.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for _ in range(b.sizes.startup_n):
        rc = subprocess.call(argv, **quiet)
        if rc != 0:
            raise Failed(f"{s.kind} configlist exited {rc}")
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The peak RSS from one more run under the reaper, outside the timing:
    # a child forked from this python would report python's RSS as its own.
    rss_file = b.root / "state" / f"rss.configlist.{time.monotonic_ns()}"
    subprocess.run([str(b.reap), str(rss_file), *argv], check=True, **quiet)
    rss = max((x.rss_kb for x in read_sessions(rss_file)), default=None)
    return Sample(
        elapsed,
        rss,
        user=after.ru_utime - before.ru_utime,
        sys=after.ru_stime - before.ru_stime,
        written=(after.ru_oublock - before.ru_oublock) * 512,
        sessions=b.sizes.startup_n,
    )


class P2P:
    """One raw `git-annex-shell p2pstdio` session, protocol version 4."""

    def __init__(self, b: Bench, s: Server):
        self.kind = s.kind
        self.err = open(b.root / "state" / f"p2p-{s.kind}.stderr", "ab")
        # Under the reaper, for what the session spends (see startup).
        self.rss_file = b.root / "state" / f"rss.p2p.{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            [str(b.reap), str(self.rss_file), str(s.shell), "p2pstdio", str(s.repo), CLIENT_UUID],
            env=b.server_env(s),
            cwd=b.root / "server-home",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.err,
            bufsize=0,
        )
        self.out = self.proc.stdin.fileno()
        self.reader = LineReader(self.proc.stdout.fileno())
        hello = self.reader.line()
        if not hello.startswith("AUTH-SUCCESS "):
            raise Failed(f"{s.kind}: expected AUTH-SUCCESS, got {hello!r}")
        self.send("VERSION 4")
        self.expect("VERSION 4")

    def send(self, line: str) -> None:
        data = (line + "\n").encode()
        while data:
            data = data[os.write(self.out, data) :]

    def expect(self, want: str) -> str:
        got = self.reader.line()
        if got != want:
            raise Failed(f"{self.kind}: expected {want!r}, got {got!r}")
        return got

    def put(self, path: Path, key: str) -> None:
        size = path.stat().st_size
        self.send(f"PUT bench.bin {key}")
        self.expect("PUT-FROM 0")
        self.send(f"DATA {size}")
        with open(path, "rb") as f:
            sent = 0
            while sent < size:
                try:
                    n = os.sendfile(self.out, f.fileno(), sent, size - sent)
                except OSError:
                    f.seek(sent)
                    n = os.write(self.out, f.read(CHUNK))
                if n == 0:
                    raise Failed(f"{self.kind}: server stopped reading the DATA")
                sent += n
        self.send("VALID")
        self.expect("SUCCESS")

    def get(self, key: str, size: int) -> None:
        self.send(f"GET 0 bench.bin {key}")
        self.expect(f"DATA {size}")
        self.reader.discard(size)
        self.expect("VALID")
        self.send("SUCCESS")

    def close(self, seconds: float) -> Sample:
        """Hangs up; the sample of the timed `seconds` with what the
        server's session spent (its whole life, hand-shake included)."""
        self.proc.stdin.close()
        rc = self.proc.wait()
        self.proc.stdout.close()
        self.err.close()
        if rc != 0:
            raise Failed(f"{self.kind} p2pstdio exited {rc} (see {self.err.name})")
        return Sample.of(seconds, read_sessions(self.rss_file))


def p2p_put(b: Bench, s: Server) -> Sample:
    sess = P2P(b, s)
    t0 = time.perf_counter()
    sess.put(b.p2p_file, b.p2p_key)
    elapsed = time.perf_counter() - t0
    return sess.close(elapsed)


def p2p_get(b: Bench, s: Server) -> Sample:
    """From the disk on both sides (see `Bench.evict`)."""
    b.evict(b.p2p_key)
    sess = P2P(b, s)
    t0 = time.perf_counter()
    sess.get(b.p2p_key, b.sizes.p2p)
    elapsed = time.perf_counter() - t0
    return sess.close(elapsed)


def p2p_get_cached(b: Bench, s: Server) -> Sample:
    """From the page cache on both sides."""
    b.warm(b.p2p_key)
    sess = P2P(b, s)
    t0 = time.perf_counter()
    sess.get(b.p2p_key, b.sizes.p2p)
    elapsed = time.perf_counter() - t0
    # Leave the server as the round found it, for the next PUT.
    sess.send(f"REMOVE {b.p2p_key}")
    sess.expect("SUCCESS")
    return sess.close(elapsed)


S3_SMALL_N = 100
S3_SMALL_SIZE = 16 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Failed(f"moto did not listen on port {port} within 60 s")


def s3_small(verb: list[str]):
    def go(b: "Bench", s: Server) -> Sample:
        if verb[0] == "get":
            b.annex(["drop", "--quiet", "--force", "s3small"], cwd=b.client)
        return b.client_step(s, [verb[0], "--quiet", verb[1], s.remote, "s3small"])

    return go


def s3_big_copy_checked(b: "Bench", s: Server) -> Sample:
    """The big copy to the proxied S3 remote, then (untimed) the proxy's
    disk: a file of the object's size left in its repository (a
    store-and-forward temporary file) is reported; on our side it fails
    the bench."""
    via = b.via(s, "s3")
    sample = big_copy(b, via)
    left = [
        p for p in glob.glob(str(via.repo / "annex/**"), recursive=True)
        if os.path.isfile(p) and os.path.getsize(p) >= b.sizes.big
    ]
    if left:
        msg = f"{s.kind}: after copy --to {via.remote}, files of the object's size on the proxy: {left}"
        if s.kind == "ours":
            raise Failed(msg)
        log(f"  note: {msg}")
    return sample


def crypt_big_copy_checked(name: str):
    """The big copy to a proxied encrypted remote, then (untimed) its
    store: it must hold only objects named by an HMAC (`GPGHMACSHA1--`),
    none of them the plaintext's first MiB."""

    def go(b: "Bench", s: Server) -> Sample:
        sample = big_copy(b, b.via(s, name))
        store = b.crypt_stores[(s.kind, name)]
        files = [p for p in glob.glob(str(store / "**"), recursive=True) if os.path.isfile(p)]
        head = (b.client / "big.bin").open("rb").read(1 << 20)
        if not files or not all("GPGHMACSHA1--" in p for p in files):
            raise Failed(f"{s.kind}: after copy --to {name}, the store holds {files[:5]}")
        for p in files[:3]:
            if Path(p).read_bytes()[: 1 << 21].find(head[:4096]) >= 0:
                raise Failed(f"{s.kind}: {p} holds plaintext")
        return sample

    return go


def through(what: str, fn):
    """`fn` run against the cluster or the proxied node of the side."""
    return lambda b, s: fn(b, b.via(s, what))


def big_copy_checked(what: str):
    """The big copy through the gateway, then (untimed) a look at the
    nodes: the cluster must have put it on all three, the proxied node
    alone must have it otherwise; a fast wrong answer is no result."""

    def go(b: Bench, s: Server) -> Sample:
        sample = big_copy(b, b.via(s, what))
        held = [bool(glob.glob(str(n / "annex/objects/*/*" / b.big_key / b.big_key))) for n in b.node_repos[(s.kind, what)]]
        want = [True] * len(held) if what != "node" else [True] + [False] * (len(held) - 1)
        if held != want:
            raise Failed(f"{s.kind}: after copy --to {s.remote} the nodes hold big.bin: {held}, expected {want}")
        return sample

    return go


def scenarios(z: Sizes) -> list[Scenario]:
    small = f"{z.small_n} x {human(z.small_size)}"
    big = human(z.big)
    # Each group leaves the servers as it found them (drops what it
    # copied), for the next group and the next round.
    behind = []
    for what, label in [("cluster", "3-node cluster"), ("node", "proxied node")]:
        behind += [
            Scenario(f"{label}: {small} copy --to", through(what, small_copy), 0, what),
            Scenario(f"{label}: {small} drop --from", through(what, small_drop), 0, what, True),
            Scenario(f"{label}: {big} copy --to", big_copy_checked(what), z.big, what),
            Scenario(f"{label}: {big} get --from", through(what, big_get), z.big, what),
            Scenario(f"{label}: {big} drop --from", through(what, big_drop), 0, what, True),
        ]
    # Nodes behind ssh: what the fan-out to other machines costs.
    what, label = "sshcluster", "3 ssh nodes cluster"
    behind += [
        Scenario(f"{label}: {small} copy --to", through(what, small_copy), 0, what),
        Scenario(f"{label}: {small} drop --from", through(what, small_drop), 0, what, True),
        Scenario(f"{label}: {big} copy --to", big_copy_checked(what), z.big, what),
        Scenario(f"{label}: {big} drop --from", through(what, big_drop), 0, what, True),
    ]
    # A proxied S3 remote (moto); only with --only s3 (see main).
    s3 = [
        Scenario(f"s3 proxied: {big} copy --to", s3_big_copy_checked, z.big, "s3"),
        Scenario(f"s3 proxied: {big} get --from", through("s3", big_get), z.big, "s3"),
        Scenario(f"s3 proxied: {big} drop --from", through("s3", big_drop), 0, "s3", True),
        Scenario(f"s3 proxied: {S3_SMALL_N} x 16 KiB copy --to", through("s3", s3_small(["copy", "--to"])), 0, "s3"),
        Scenario(f"s3 proxied: {S3_SMALL_N} x 16 KiB get --from", through("s3", s3_small(["get", "--from"])), 0, "s3"),
        Scenario(f"s3 proxied: {S3_SMALL_N} x 16 KiB drop --from", through("s3", s3_small(["drop", "--from"])), 0, "s3", True),
    ]
    # Proxied directory remotes with encryption=hybrid, unchunked and in
    # 1 MiB chunks; only with --only crypt (see main).
    crypt = []
    for name, label in [("crypt", "encrypted dir proxied"), ("cryptc", "encrypted dir chunk=1MiB proxied")]:
        crypt += [
            Scenario(f"{label}: {big} copy --to", crypt_big_copy_checked(name), z.big, name),
            Scenario(f"{label}: {big} get --from", through(name, big_get), z.big, name),
            Scenario(f"{label}: {big} drop --from", through(name, big_drop), 0, name, True),
        ]
    direct = [
        Scenario(f"{small} copy --to", small_copy, 0, "direct"),
        Scenario(f"{small} drop --from", small_drop, 0, "direct", True),
        Scenario(f"{big} copy --to", big_copy, z.big, "direct"),
        Scenario(f"{big} get --from", big_get, z.big, "direct"),
        Scenario(f"{big} drop --from", big_drop, 0, "direct", True),
    ]
    return direct + behind + s3 + crypt + [
        Scenario(f"{z.startup_n} x configlist (no ssh)", startup),
        Scenario(f"p2pstdio PUT {human(z.p2p)} (no client)", p2p_put, z.p2p, "p2p"),
        Scenario(f"p2pstdio GET {human(z.p2p)} (no client)", p2p_get, z.p2p, "p2p"),
        Scenario(f"p2pstdio GET {human(z.p2p)} cached (no client)", p2p_get_cached, z.p2p, "p2p", True),
    ]


def only(scs: list[Scenario], wanted: list[str]) -> list[Scenario]:
    """The scenarios named, and those that put their groups' servers back
    for the next round."""
    picked = [s for s in scs if any(w in s.name for w in wanted)]
    groups = {s.group for s in picked if s.group}
    return [s for s in scs if s in picked or (s.restores and s.group in groups)]


# --------------------------------------------------------------------- limits


def timed(argv: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, **kw)
    return time.perf_counter() - t0


HASHLIB_SNIPPET = """
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        h.update(chunk)
"""


def measure_limits(b: Bench) -> dict[str, float]:
    """What this machine allows for the data paths, on the P2P file (in the
    page cache by now, as it is for the servers)."""
    f = b.p2p_file
    size = f.stat().st_size
    out = {}
    # Pipe: cat writes the cached file into a pipe, the driver's own
    # reader takes it out, as it does a GET body.
    t0 = time.perf_counter()
    cat = subprocess.Popen(["cat", str(f)], stdout=subprocess.PIPE, bufsize=0)
    LineReader(cat.stdout.fileno()).discard(size)
    cat.wait()
    out["pipe: cat FILE into the bench reader (MB/s)"] = size / (time.perf_counter() - t0) / MB
    copy = b.root / "data/copy.bin"
    out["disk copy: cp FILE, sync (MB/s)"] = size / timed(["sh", "-c", f"cp '{f}' '{copy}' && sync '{copy}'"]) / MB
    copy.unlink()
    # What starting any process costs the bench, to read the configlist
    # row against.
    n = b.sizes.startup_n
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.call(["/bin/true"])
    out[f"process start: {n} x /bin/true from the bench (ms each)"] = (time.perf_counter() - t0) / n * 1000
    out["sha256: sha256sum FILE (MB/s)"] = size / timed(["sha256sum", str(f)], stdout=subprocess.DEVNULL) / MB
    # coreutils' sha256sum may not use the CPU's SHA instructions; OpenSSL
    # (python's hashlib) does, as a Rust server can.
    out["sha256: python hashlib, OpenSSL (MB/s)"] = size / timed([sys.executable, "-c", HASHLIB_SNIPPET, str(f)]) / MB
    out.update(unlink_floor(b))
    out.update(sync_floor(b))
    return out


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def unlink_floor(b: Bench) -> dict[str, float]:
    """The kernel's share of a drop that no server can avoid: unlinking a
    big object frees its page cache, and creating any file costs an inode
    allocation (on this machine's ext4 without a journal that walks past
    every inode freed in the last minutes, so it grows with the bench's
    own churn). Measured in this process, on the bench's file system."""
    out = {}
    big = b.root / "data/unlink-floor.bin"
    block = b"\0" * 65504  # what one pipe read of the real client's body gives
    with open(big, "wb", buffering=0) as w:
        left = b.sizes.big
        while left > 0:
            left -= w.write(block[: min(left, len(block))])
        os.fsync(w.fileno())
    c0 = self_cpu()
    big.unlink()
    out[f"unlink: a cached {b.sizes.big // MB} MB file just written and fsynced (ms of CPU)"] = (self_cpu() - c0) * 1000
    # Beside the servers' repositories, where their files are made (ext4
    # looks for a free inode from the parent directory's group first).
    names = [b.root / f"srv/.create-floor.{i}" for i in range(b.sizes.startup_n)]
    c0 = self_cpu()
    for name in names:
        os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
    per = (self_cpu() - c0) / len(names) * 1e6
    out[f"create: {len(names)} empty files beside the servers' repositories (µs of CPU each)"] = per
    for name in names:
        name.unlink()
    return out


def sync_floor(b: Bench) -> dict[str, float]:
    """What making one small file durable costs in wall time here: ours
    syncs every object before it answers SUCCESS (README, durability),
    git-annex does not, so a small copy waits this long per key on our
    side only."""
    n = 50
    names = [b.root / f"srv/.sync-floor.{i}" for i in range(n)]
    body = b"x" * b.sizes.small_size
    t0 = time.perf_counter()
    for name in names:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            os.write(fd, body)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    per = (time.perf_counter() - t0) / n * 1000
    for name in names:
        name.unlink()
    return {f"sync: {n} new {human(b.sizes.small_size)} files written and fdatasynced beside the servers' repositories (ms wall each)": per}


# --------------------------------------------------------------------- report


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "kernel": platform.release(),
    }


# Every figure of a sample, as the JSON names it.
FIGURES = ["seconds", "user", "sys", "cpu", "written", "rss_kb", "sessions", "tail", "client_cpu", "client_only"]


def sample_json(x: Sample) -> dict:
    return {
        "seconds": x.seconds,
        "user": x.user,
        "sys": x.sys,
        "cpu": x.cpu,
        "written": x.written,
        "rss_kb": x.rss_kb,
        "sessions": x.sessions,
        "tail": x.tail,
        "client_cpu": x.client_cpu,
        "client_only": x.client_only,
    }


def goal(name: str) -> float | None:
    """Issue #16's wall ratio for a row: drops 1.5x, small-file copies 2x."""
    if "drop --from" in name:
        return 1.5
    if " x " in name and "copy --to" in name:
        return 2.0
    return None


def ceiling(real: dict, ours: dict) -> float | None:
    """The best wall ratio real/ours any server could reach on a row:
    real's wall over the client-only wall, the smaller of the two sides'
    (the client's own work is the same against either server; taking the
    smaller never overstates how little room is left)."""
    only = [x["client_only"] for x in (real, ours) if x.get("client_only") is not None]
    if not only or min(only) <= 0:
        return None
    return real["seconds"] / min(only)


def client_json(name: str, per: dict[str, list[dict]], med: dict[str, dict]) -> dict | None:
    """A row's ceiling, per round and from the medians, and its goal."""
    med_ceiling = ceiling(med["real"], med["ours"])
    if med_ceiling is None:
        return None
    rounds = [ceiling(r, o) for r, o in zip(per["real"], per["ours"])]
    g = goal(name)
    return {
        "ceiling_rounds": rounds,
        "ceiling": med_ceiling,
        "goal": g,
        "goal_above_ceiling": g is not None and g > med_ceiling,
    }


def medians(samples: list[dict]) -> dict:
    """Each figure's median over the rounds (the peak RSS: its maximum)."""
    out = {}
    for f in FIGURES:
        vals = [x[f] for x in samples if x[f] is not None]
        out[f] = (max(vals) if f == "rss_kb" else statistics.median(vals)) if vals else None
    return out


def results_json(b: Bench, scs: list[Scenario], started: datetime.datetime, wall: float, argv: list[str]) -> dict:
    """Everything the run measured, every round of every row; `render`
    makes the tables from it alone."""
    data = {
        "format": 3,
        "command": " ".join(["bash scripts/bench.sh", *argv]),
        "started": started.isoformat(),
        "wall_seconds": wall,
        "sizes": vars(b.sizes),
        "machine": machine(),
        "loadavg_end": loadavg(),
        "rounds": b.rounds,
        "units": {
            "seconds": "wall seconds of the client step (or of the timed protocol exchange)",
            "user": "CPU seconds in user mode of every server-side process of the step",
            "sys": "CPU seconds in the kernel of the same processes",
            "cpu": "user + sys",
            "written": "bytes the server-side processes dirtied for files (the kernel's write_bytes)",
            "rss_kb": "peak RSS of the largest server-side process, KiB",
            "sessions": "server sessions the step started",
            "tail": "seconds the server sessions ran after the client returned (not in seconds)",
            "client_cpu": "CPU seconds of the client command's whole process tree less the server sessions' "
            "(cpu) and their reapers' relaying",
            "client_only": "wall seconds in which no server session kept the client waiting: seconds less the "
            "union of the sessions' busy intervals (from the session's start, or the client's last write, to "
            "the server's next output; from the first end of file to the session's end)",
            "ceiling": "real's wall over the smaller client_only of the two sides: the best wall ratio "
            "real/ours any server could reach (client steps only)",
        },
        "scenarios": [],
        "limits": dict(b.limits),
    }
    for sc in scs:
        res = b.results.get(sc.name, {})
        if not res.get("real") or not res.get("ours"):
            continue
        per = {kind: [sample_json(x) for x in res[kind]] for kind in ["real", "ours"]}
        med = {k: medians(v) for k, v in per.items()}
        row = {"name": sc.name, "bytes": sc.nbytes, "samples": per, "median": med}
        client = client_json(sc.name, per, med)
        if client:
            row["client"] = client
        data["scenarios"].append(row)
    return data


def ratio(real, ours, floor: float = 0) -> str:
    """real/ours; "–" when either is unknown or both are under `floor`
    (a ratio of two noises)."""
    if real is None or ours is None or max(real, ours) < floor:
        return "–"
    if ours == 0:
        return "–" if real == 0 else "∞"
    return f"{real / ours:.2f}"


def render(data: dict) -> str:
    """The markdown tables of a results JSON (the README's are this)."""
    m = data["machine"]
    sizes = data["sizes"]
    rounds = sizes["rounds"]
    ends = [r["loadavg_end"] for r in data["rounds"] if r.get("loadavg_end")]
    load = (
        f"load average (1 min) {min(x[0] for x in ends):.1f}-{max(x[0] for x in ends):.1f} over the rounds"
        if ends
        else "load average unknown"
    )
    started = datetime.datetime.fromisoformat(data["started"])
    lines = [
        f"`{data['command']}`, {started:%Y-%m-%d %H:%M} UTC, "
        f"{rounds} rounds (medians; peak RSS: the largest), {data['wall_seconds'] / 60:.1f} min in all; "
        f"{m['nproc']} cores ({m['cpu'] or 'cpu unknown'}), {m['memory_gib']} GiB memory, "
        f"Linux {m['kernel']}; {load}.",
        "",
        "| scenario | wall real (s) | wall ours (s) | real/ours | CPU real (s) | CPU ours (s) | real/ours "
        "| written real (MB) | written ours (MB) | real/ours | peak RSS real (MiB) | peak RSS ours (MiB) | real/ours |",
        "|---|" + "---:|" * 12,
    ]
    for sc in data["scenarios"]:
        r, o = sc["median"]["real"], sc["median"]["ours"]
        cells = [sc["name"]]
        # Writes under 64 KiB on both sides are a few pages of logs: no ratio.
        for f, scale, fmt, floor in [
            ("seconds", 1, ".3f", 0),
            ("cpu", 1, ".3f", 0),
            ("written", MB, ".1f", 1 << 16),
            ("rss_kb", 1024, ".1f", 0),
        ]:
            rv, ov = r[f], o[f]
            cells += [
                "–" if rv is None else format(rv / scale, fmt),
                "–" if ov is None else format(ov / scale, fmt),
                ratio(rv, ov, floor),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += client_table(data)
    lines += ["", "| this machine, same run | median | rounds measured |", "|---|---:|---:|"]
    for name, rates in data["limits"].items():
        lines.append(f"| {name} | {statistics.median(rates):.1f} | {len(rates)} |")
    return "\n".join(lines) + "\n"


def client_table(data: dict) -> list[str]:
    """The client's own share of each client row (see the README's
    "The client's share"); none for results without it."""
    rows = [sc for sc in data["scenarios"] if sc.get("client")]
    if not rows:
        return []
    lines = [
        "",
        "| scenario | client CPU real (s) | client CPU ours (s) | client-only wall real (s) "
        "| client-only wall ours (s) | client share of wall real | client share of wall ours "
        "| wall real/ours | ceiling real/client-only | goal | tail real (s) | tail ours (s) |",
        "|---|" + "---:|" * 8 + "---|" + "---:|" * 2,
    ]
    for sc in rows:
        r, o, c = sc["median"]["real"], sc["median"]["ours"], sc["client"]
        share = [f"{x['client_only'] / x['seconds'] * 100:.0f} %" for x in (r, o)]
        g = c["goal"]
        mark = "–" if g is None else f"{g:g}" + (" **above the ceiling**" if c["goal_above_ceiling"] else "")
        cells = [
            sc["name"],
            f"{r['client_cpu']:.3f}",
            f"{o['client_cpu']:.3f}",
            f"{r['client_only']:.3f}",
            f"{o['client_only']:.3f}",
            *share,
            ratio(r["seconds"], o["seconds"]),
            f"{c['ceiling']:.2f}",
            mark,
            # What the sessions' trees did after the client's output
            # closed: outside the wall, inside the CPU.
            f"{r['tail']:.3f}",
            f"{o['tail']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours-bin", help="directory with our release git-annex-shell")
    ap.add_argument("--venv", help="venv holding the real git-annex")
    ap.add_argument("--reap", help="the bench-reap binary (scripts/bench-reap.c)")
    ap.add_argument("--readme", metavar="JSON", help="print the tables of a results JSON (the README's) and exit")
    ap.add_argument("--top", default=str(Path(__file__).resolve().parent.parent), help="workspace root")
    ap.add_argument("--quick", action="store_true", help="small sizes and 3 rounds (about a minute)")
    ap.add_argument("--rounds", type=int, help="rounds (default 5, 3 with --quick)")
    ap.add_argument("--only", help="comma-separated substrings: run only the scenarios whose name holds one (and the drops that put their servers back for the next round); `s3` and `crypt` add the proxied S3 and encrypted-directory groups, never in the default run; `http` runs the p2phttp group instead (scripts/bench_http.py), ours vs real `git annex p2phttp -J8`")
    ap.add_argument("--out", help="results file (default <top>/target/bench-results.md, .json beside it)")
    ap.add_argument("--tmpdir", help="where the servers and the client go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the servers and the client afterwards")
    args = ap.parse_args()
    if args.readme:
        print(render(json.loads(Path(args.readme).read_text())), end="")
        return 0
    if args.only and "http" in [w.strip() for w in args.only.split(",")]:
        # The p2phttp group (scripts/bench_http.py) runs on its own, only
        # when asked for, so the default bench keeps its length.
        if not (args.ours_bin and args.venv):
            ap.error("--ours-bin and --venv are needed for --only http")
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_http

        return bench_http.main(Path(args.ours_bin), Path(args.venv), Path(args.top), args.quick, args.tmpdir)
    if not (args.ours_bin and args.venv and args.reap):
        ap.error("--ours-bin, --venv and --reap are needed to run (scripts/bench.sh passes them)")
    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(**dict(vars(base), rounds=args.rounds or base.rounds))
    scs = scenarios(sizes)
    wanted = [w.strip() for w in (args.only or "").split(",") if w.strip()]
    # The S3 group (moto, a proxied S3 remote per side) runs only when
    # asked for: the default bench stays as long as it was.
    if not any("s3" in w for w in wanted):
        scs = [sc for sc in scs if sc.group != "s3"]
    # So does the encrypted group (gpg through 300 MB, several times).
    if not any("crypt" in w for w in wanted):
        scs = [sc for sc in scs if not sc.group.startswith("crypt")]
    if wanted:
        scs = only(scs, wanted)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    b = Bench(args, sizes)
    b.want_s3 = any(sc.group == "s3" for sc in scs)
    b.want_crypt = any(sc.group.startswith("crypt") for sc in scs)
    try:
        b.setup()
        b.measure(sizes.rounds, scs)
    except Failed as e:
        log(f"bench failed: {e}")
        b.keep = True
        b.cleanup()
        return 1
    wall = time.perf_counter() - t0
    shown = (["--quick"] if args.quick else []) + ([f"--rounds {args.rounds}"] if args.rounds else [])
    shown += [f"--only '{args.only}'"] if args.only else []
    data = results_json(b, scs, started, wall, shown)
    text = render(data)
    out = Path(args.out) if args.out else b.top / "target/bench-results.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    print(text)
    log(f"written to {out} and {out.with_suffix('.json')}")
    b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
