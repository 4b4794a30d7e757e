#!/usr/bin/env python3
"""p2phttp: our `annexproxy p2phttp -J8` vs real `git annex p2phttp -J8`.

Run by `scripts/bench.py --only http` (not part of the default bench).
Standard library only; loopback only; every load bounded by a request
count. Each side gets its own server repository, initialised alike by the
real git-annex, and its own client clone driven by the same real client.

Measured per side, in one run:
- 200 x 2 KiB `git annex copy --to`, wall time and server CPU;
- 300 MB `copy --to` and `get` through the real client;
- 1 MiB GET latency from one client alone; checkpresent and 1 MiB GET
  latency p50/p99 and throughput at 8 and 32 concurrent keep-alive clients (Python threads: the client's own cost is
  in the figures, alike for both sides);
- server RSS idle, and its peak while 32 clients load it;
- children of the server left (running or zombie) after the loads;
- through a node the server proxies for: the 300 MB copy and the peak
  RSS meanwhile, 10k checkpresent requests at c=32, children left then.
"""

import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SMALL_FILES = 200
BIG = 300_000_000
LOAD_REQUESTS = 2000


def run(argv, cwd, env=None):
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {cwd}: {p.stderr.strip()[-2000:]}")


def proc_cpu(pid: int) -> float:
    """utime+stime of pid and its reaped children, in seconds."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> int:
    n = 0
    for d in Path("/proc").iterdir():
        try:
            rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[1] == str(pid):
            n += 1
    return n


class Side:
    def __init__(self, name: str, root: Path, env: dict, ours_bin: Path, real: Path):
        self.name, self.env = name, env
        self.srv, self.cli = root / f"{name}-srv", root / f"{name}-cli"
        run(["git", "init", "-q", str(self.srv)], root, env)
        run(["git", "annex", "init", f"{name}-srv"], self.srv, env)
        run(["git", "commit", "-q", "--allow-empty", "-m", "init"], self.srv, env)
        run(["git", "clone", "-q", str(self.srv), str(self.cli)], root, env)
        run(["git", "annex", "init", f"{name}-cli"], self.cli, env)
        self.uuid = self.config(self.srv, "annex.uuid")
        self.client_uuid = self.config(self.cli, "annex.uuid")
        # A node the server proxies for (a local repository), which the
        # client learns of from the server's git-annex branch.
        node = root / f"{name}-node1.git"
        run(["git", "init", "-q", "--bare", str(node)], root, env)
        run(["git", "annex", "init", f"{name}-node1"], node, env)
        self.node_uuid = self.config(node, "annex.uuid")
        run(["git", "remote", "add", "node1", str(node)], self.srv, env)
        run(["git", "config", "remote.node1.annex-proxy", "true"], self.srv, env)
        run(["git", "annex", "updateproxy"], self.srv, env)
        run(["git", "annex", "sync", "--no-content", "origin"], self.cli, env)
        if name == "ours":
            argv = [str(ours_bin / "annexproxy"), "-C", str(self.srv), "p2phttp", "-J8",
                    "--bind", "127.0.0.1", "--port", "0", "--wideopen"]
            # Its git-annex-shell serves the local node it proxies for.
            served = dict(env, PATH=f"{ours_bin}:{env['PATH']}")
            self.proc = subprocess.Popen(argv, env=served, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.addr = self.proc.stdout.readline().strip().removeprefix("listening on ")
        else:
            port = free_port()
            # The binary itself, not the venv's wrapper script, so its pid
            # is the server's.
            argv = [str(real), "p2phttp", "-J8", "--bind", "127.0.0.1", "--port", str(port), "--wideopen"]
            self.proc = subprocess.Popen(argv, cwd=self.srv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addr = f"127.0.0.1:{port}"
            wait_listening(self.addr)
        for k, v in [("remote.origin.annexUrl", f"annex+http://{self.addr}/git-annex/"),
                     ("remote.origin.url", "http://127.0.0.1:9/dead.git"),
                     ("annex.security.allowed-ip-addresses", "all")]:
            run(["git", "config", k, v], self.cli, env)

    def config(self, repo: Path, key: str) -> str:
        return subprocess.run(["git", "config", key], cwd=repo, env=self.env, check=True,
                              capture_output=True, text=True).stdout.strip()

    def annex_timed(self, argv) -> tuple[float, float]:
        """Wall seconds and server CPU seconds of `git annex ARGV`."""
        cpu0, t0 = proc_cpu(self.proc.pid), time.perf_counter()
        run(["git", "annex", *argv], self.cli, self.env)
        return time.perf_counter() - t0, proc_cpu(self.proc.pid) - cpu0

    def key_of(self, path: str) -> str:
        return subprocess.run(["git", "annex", "lookupkey", path], cwd=self.cli, env=self.env,
                              check=True, capture_output=True, text=True).stdout.strip()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(addr: str) -> None:
    import socket
    host, port = addr.rsplit(":", 1)
    for _ in range(400):
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {addr}")


def load(side: Side, method: str, path: str, clients: int, total: int) -> dict:
    """`total` requests from `clients` keep-alive connections; latencies,
    throughput and the server's peak RSS meanwhile."""
    host, port = side.addr.rsplit(":", 1)
    lat: list[float] = []
    lock = threading.Lock()
    peak = [rss_kb(side.proc.pid)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(side.proc.pid))
            time.sleep(0.02)

    def client(n: int):
        c = http.client.HTTPConnection(host, int(port), timeout=60)
        mine = []
        for _ in range(n):
            t0 = time.perf_counter()
            c.request(method, path, body=b"" if method == "POST" else None)
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError(f"{side.name} {path}: {r.status}")
            mine.append(time.perf_counter() - t0)
        c.close()
        with lock:
            lat.extend(mine)

    s = threading.Thread(target=sample)
    s.start()
    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(total // clients,)) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    done.set()
    s.join()
    lat.sort()
    return {"p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1],
            "rps": len(lat) / wall, "peak_rss_mb": peak[0] / 1024}


def bench_side(side: Side, quick: bool) -> dict:
    r: dict = {"idle_rss_mb": rss_kb(side.proc.pid) / 1024}
    n_small = 20 if quick else SMALL_FILES
    (side.cli / "small").mkdir()
    for i in range(n_small):
        (side.cli / "small" / f"f{i}").write_bytes(os.urandom(2048))
    (side.cli / "mib").write_bytes(os.urandom(1 << 20))
    big = 10_000_000 if quick else BIG
    with open(side.cli / "big", "wb") as f:
        for _ in range(big // (1 << 20)):
            f.write(os.urandom(1 << 20))
    run(["git", "annex", "add", "small", "mib", "big"], side.cli, side.env)
    run(["git", "commit", "-q", "-m", "files"], side.cli, side.env)
    # The client's first contact (config, version probe) is not measured.
    (side.cli / "warm").write_bytes(b"warm")
    run(["git", "annex", "add", "warm"], side.cli, side.env)
    run(["git", "annex", "copy", "--to", "origin", "warm"], side.cli, side.env)
    r["small_copy_s"], r["small_copy_cpu_s"] = side.annex_timed(["copy", "--to", "origin", "small"])
    r["big_copy_s"], r["big_copy_cpu_s"] = side.annex_timed(["copy", "--to", "origin", "big", "mib"])
    run(["git", "annex", "drop", "big"], side.cli, side.env)
    r["big_get_s"], r["big_get_cpu_s"] = side.annex_timed(["get", "--from", "origin", "big"])
    q = f"clientuuid={side.client_uuid}"
    small_key, mib_key = side.key_of("small/f0"), side.key_of("mib")
    total = 400 if quick else LOAD_REQUESTS
    # One client alone: a GET's latency, not the machine's throughput
    # shared among clients (at c=8, p50 is about 8 / req/s).
    r["get1m_c1"] = load(side, "GET", f"/git-annex/{side.uuid}/v4/key/{mib_key}?{q}", 1, total // 8)
    for c in (8, 32):
        cp = load(side, "POST", f"/git-annex/{side.uuid}/v4/checkpresent?key={small_key}&{q}", c, total)
        r[f"checkpresent_c{c}"] = cp
        g = load(side, "GET", f"/git-annex/{side.uuid}/v4/key/{mib_key}?{q}", c, total // 4)
        r[f"get1m_c{c}"] = g
    time.sleep(2)
    r["children_left"] = children(side.proc.pid)
    proxied(side, r, quick)
    return r


def proxied(side: Side, r: dict, quick: bool) -> None:
    """Peak RSS while the big file goes to the proxied node, and the
    server's children after many proxied checkpresent requests."""
    peak = [rss_kb(side.proc.pid)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(side.proc.pid))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    t.start()
    try:
        r["proxied_put_s"], _ = side.annex_timed(["copy", "--to", "origin-node1", "big"])
    finally:
        done.set()
        t.join()
    r["proxied_put_peak_rss_mb"] = peak[0] / 1024
    key = side.key_of("small/f0")
    n = 1000 if quick else 10_000
    path = f"/git-annex/{side.node_uuid}/v4/checkpresent?key={key}&clientuuid={side.client_uuid}"
    r["proxied_checkpresent_c32"] = load(side, "POST", path, 32, n)
    time.sleep(2)
    r["proxied_children_left"] = children(side.proc.pid)
    r["proxied_zombies"] = zombies(side.proc.pid)


def zombies(pid: int) -> int:
    n = 0
    for d in Path("/proc").iterdir():
        try:
            rest = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if rest[1] == str(pid) and rest[0] == "Z":
            n += 1
    return n


def table(res: dict) -> str:
    o, g = res["ours"], res["real"]
    rows = [
        ("200 x 2 KiB copy, s (server CPU s)", lambda x: f"{x['small_copy_s']:.2f} ({x['small_copy_cpu_s']:.2f})"),
        ("300 MB copy --to, s", lambda x: f"{x['big_copy_s']:.2f}"),
        ("300 MB get, s", lambda x: f"{x['big_get_s']:.2f}"),
    ]
    rows.append(("1 MiB GET c=1: p50 / p99 ms, req/s",
                 lambda x: "{p50_ms:.2f} / {p99_ms:.1f}, {rps:.0f}".format(**x["get1m_c1"])))
    for c in (8, 32):
        for k, label in (("checkpresent", "checkpresent"), ("get1m", "1 MiB GET")):
            rows.append((f"{label} c={c}: p50 / p99 ms, req/s",
                         lambda x, k=k, c=c: "{p50_ms:.2f} / {p99_ms:.1f}, {rps:.0f}".format(**x[f"{k}_c{c}"])))
    rows += [
        ("RSS idle, MB", lambda x: f"{x['idle_rss_mb']:.1f}"),
        ("RSS peak at 32 clients, MB", lambda x: f"{max(x['checkpresent_c32']['peak_rss_mb'], x['get1m_c32']['peak_rss_mb']):.1f}"),
        ("children left after the loads", lambda x: str(x["children_left"])),
        ("300 MB copy to a proxied node, s", lambda x: f"{x['proxied_put_s']:.2f}"),
        ("RSS peak during that proxied put, MB", lambda x: f"{x['proxied_put_peak_rss_mb']:.1f}"),
        ("proxied checkpresent c=32 (10k, 1k with --quick): p50 / p99 ms, req/s",
         lambda x: "{p50_ms:.2f} / {p99_ms:.1f}, {rps:.0f}".format(**x["proxied_checkpresent_c32"])),
        ("children after them (zombies)", lambda x: f"{x['proxied_children_left']} ({x['proxied_zombies']})"),
    ]
    out = ["| p2phttp | ours | git-annex |", "|---|---:|---:|"]
    out += [f"| {name} | {f(o)} | {f(g)} |" for name, f in rows]
    return "\n".join(out) + "\n"


def main(ours_bin: Path, venv: Path, top: Path, quick: bool = False, tmpdir: str | None = None) -> int:
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    for k, v in [("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "b@example.com"),
                 ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "b@example.com")]:
        env[k] = v
    hits = list(venv.glob("lib/python3*/site-packages/git_annex/git-annex"))
    if not hits:
        print(f"no real git-annex binary under {venv}", file=sys.stderr)
        return 1
    real = hits[0].resolve()
    res = {}
    with tempfile.TemporaryDirectory(prefix="annexproxy-bench-http-", dir=tmpdir) as d:
        for name in ("ours", "real"):
            side = Side(name, Path(d), env, ours_bin, real)
            try:
                res[name] = bench_side(side, quick)
            finally:
                side.stop()
            print(f"{name}: {res[name]}", file=sys.stderr)
    text = table(res)
    out = top / "target/bench-http.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours-bin", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--top", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tmpdir")
    a = ap.parse_args()
    sys.exit(main(Path(a.ours_bin), Path(a.venv), Path(a.top), a.quick, a.tmpdir))
