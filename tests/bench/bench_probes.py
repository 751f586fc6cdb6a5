#!/usr/bin/env python3
"""Benchmark: 1,000 endpoints probed within one 10 s interval (run on demand, not by pytest).

    python3 tests/bench/bench_probes.py [--endpoints 1000] [--rounds 5] [--scheme both]

Starts one server process with a listener on each of N loopback addresses (127.0.x.y, one
port); a tenth of them accept and never answer (neither HTTP nor TLS). Then, like the agent,
runs one probe round per interval with `failover.watch.probes.engine.run_probes` (a fresh event loop per
round), http and/or https checks with a 5 s timeout, and reports round durations, probes/s
(from an extra round of the answering endpoints only), CPU time and max RSS of the probing
process. A round longer than the interval would skip the next one: the target is none.

Traffic goes only to 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import resource
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

HOSTNAME = "bench.test"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)


def address(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


def is_hanger(i: int, fraction: float) -> bool:
    every = max(1, round(1 / fraction)) if fraction > 0 else 0
    return every > 0 and i % every == every - 1


def raise_nofile(need: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


# --- the server side (a separate process) ---------------------------------------------------


async def serve(n: int, port: int, fraction: float, cert: str | None, key: str | None) -> None:
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
    held: set[asyncio.StreamWriter] = set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(RESPONSE)
            await writer.drain()
        except Exception:
            pass
        finally:
            writer.close()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.add(writer)
        try:
            while await reader.read(65536):  # never answer; wait for the client to go
                pass
        except Exception:
            pass
        finally:
            held.discard(writer)
            writer.close()

    servers = []
    for i in range(n):
        if is_hanger(i, fraction):
            servers.append(await asyncio.start_server(hang, address(i), port, backlog=64))
        else:
            servers.append(
                await asyncio.start_server(answer, address(i), port, ssl=ctx, backlog=64)
            )
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def start_server(n: int, fraction: float, cert: Path | None, key: Path | None) -> tuple[Any, int]:
    from tests.support import free_port

    for _ in range(20):
        port = free_port()
        argv = [sys.executable, __file__, "--serve", str(n), "--port", str(port)]
        argv += ["--hang-fraction", str(fraction)]
        if cert and key:
            argv += ["--cert", str(cert), "--key", str(key)]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() == "ready":
            return proc, port
        proc.wait()
    raise RuntimeError("could not start the bench server")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the peers: the same probes written the two usual ways -----------------------------------


class _SniHttps(http.client.HTTPSConnection):
    """HTTPS to an address with another name for SNI and the certificate check."""

    def __init__(self, address: str, port: int, sni: str, **kw: Any) -> None:
        super().__init__(address, port, **kw)
        self._sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


def _threads_one(address: str, port: int, ctx: ssl.SSLContext | None, timeout: float) -> bool:
    if ctx is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            address, port, timeout=timeout
        )
    else:
        conn = _SniHttps(address, port, HOSTNAME, timeout=timeout, context=ctx)
    try:
        conn.request("GET", "/", headers={"Host": HOSTNAME, "Connection": "close"})
        response = conn.getresponse()
        body = response.read(1 << 20)
        return 200 <= response.status < 400 and b"ok" in body
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def peer_threads(
    addresses: list[str], port: int, ctx: ssl.SSLContext | None, timeout: float, workers: int
) -> int:
    """concurrent.futures threads, one http.client request each; returns how many passed."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(lambda a: _threads_one(a, port, ctx, timeout), addresses))


async def _asyncio_one(address: str, port: int, ctx: ssl.SSLContext | None, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            if ctx is None:
                reader, writer = await asyncio.open_connection(address, port)
            else:
                reader, writer = await asyncio.open_connection(
                    address, port, ssl=ctx, server_hostname=HOSTNAME
                )
            try:
                writer.write(
                    f"GET / HTTP/1.1\r\nHost: {HOSTNAME}\r\nConnection: close\r\n\r\n".encode()
                )
                data = await reader.read(-1)
            finally:
                writer.close()
        status = int(data.split(b" ", 2)[1])
        return 200 <= status < 400 and b"ok" in data.partition(b"\r\n\r\n")[2]
    except (OSError, ValueError, IndexError, TimeoutError, ssl.SSLError):
        return False


def peer_asyncio(
    addresses: list[str], port: int, ctx: ssl.SSLContext | None, timeout: float
) -> int:
    """Plain asyncio streams (asyncio's TLS transport for https); returns how many passed."""

    async def sweep() -> int:
        return sum(await asyncio.gather(*(_asyncio_one(a, port, ctx, timeout) for a in addresses)))

    return asyncio.run(sweep())


def compare(
    scheme: str, healthy: list[Any], port: int, timeout: float, reps: int, workers: int
) -> dict[str, list[float]]:
    """Sweeps of the answering endpoints by the engine and the peers, interleaved (each
    round in a rotating order, so that a load spike hits each of them alike)."""
    from failover.watch.probes.engine import run_probes
    from failover.watch.probes.http import tls_context

    ctx = tls_context(True) if scheme == "https" else None
    addresses = [t[2] for t in healthy]
    runners = {
        "engine": lambda: sum(r.ok for r in run_probes(healthy).values()),
        f"threads + http.client ({workers})": lambda: peer_threads(
            addresses, port, ctx, timeout, workers
        ),
        "asyncio streams": lambda: peer_asyncio(addresses, port, ctx, timeout),
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            t0, c0 = time.perf_counter(), cpu_now()
            passed = runners[name]()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(cpu_now() - c0)
            if passed != len(healthy):
                print(f"  {name}: {len(healthy) - passed} failed", file=sys.stderr)
    return {**times, **{f"{name} (CPU)": values for name, values in cpu.items()}}


# --- the probing side -------------------------------------------------------------------------


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench(scheme: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from failover.config.models import HttpCheck
    from failover.watch.probes.engine import run_probes

    cert = key = None
    if scheme == "https":
        from tests.support.webserver import TestCA

        ca = TestCA(tmp / "ca")
        issued = ca.issue(HOSTNAME, days=90)
        cert, key = issued.cert, issued.key
        os.environ["SSL_CERT_FILE"] = str(ca.cert_path)
    server, port = start_server(args.endpoints, args.hang_fraction, cert, key)
    try:
        check = HttpCheck(type=scheme, port=port, timeout=args.timeout, expect_body="ok")  # type: ignore[arg-type]
        n = args.endpoints
        targets = [(i, check, address(i), HOSTNAME) for i in range(n)]
        healthy = [t for t in targets if not is_hanger(t[0], args.hang_fraction)]
        hangers = n - len(healthy)

        # Throughput: the answering endpoints only, back to back.
        run_probes(healthy[:50])  # warm-up (TLS context, imports)
        t0, c0 = time.monotonic(), cpu_now()
        res = run_probes(healthy)
        tp_time, tp_cpu = time.monotonic() - t0, cpu_now() - c0
        assert all(r.ok for r in res.values()), [r for r in res.values() if not r.ok][:3]

        peers = compare(scheme, healthy, port, args.timeout, args.peer_reps, args.peer_threads)

        rounds: list[dict[str, float]] = []
        skipped = 0
        server_cpu0 = proc_cpu(server.pid)
        start = time.monotonic()
        for k in range(args.rounds):
            due = start + k * args.interval
            now = time.monotonic()
            if now > due + 0.001:
                skipped += 1
            time.sleep(max(0.0, due - now))
            t0, c0 = time.monotonic(), cpu_now()
            res = run_probes(targets)
            took, cpu = time.monotonic() - t0, cpu_now() - c0
            ok = [r for r in res.values() if r.ok]
            failed = [r for r in res.values() if not r.ok]
            wrong = [r for r in failed if not r.detail.startswith("timeout after")]
            rounds.append(
                {
                    "duration": took,
                    "cpu": cpu,
                    "ok": len(ok),
                    "timeouts": len(failed) - len(wrong),
                    "wrong": len(wrong),
                    "max_ok_latency_ms": max((r.latency_ms or 0) for r in ok) if ok else 0,
                }
            )
            if wrong:
                print(f"  unexpected failures in round {k}: {wrong[:3]}", file=sys.stderr)
            print(
                f"  {scheme} round {k + 1}: {took:.2f} s, {len(ok)} ok, "
                f"{len(failed)} failed, cpu {cpu:.2f} s",
                file=sys.stderr,
            )
        server_cpu = proc_cpu(server.pid) - server_cpu0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    durations = [r["duration"] for r in rounds]
    return {
        "scheme": scheme,
        "endpoints": n,
        "hangers": hangers,
        "p50": statistics.median(durations),
        "max": max(durations),
        "skipped": skipped + sum(1 for d in durations if d > args.interval),
        "throughput": len(healthy) / tp_time,
        "tp_cpu_per_probe_ms": tp_cpu / len(healthy) * 1000,
        "cpu_per_round": statistics.mean(r["cpu"] for r in rounds),
        "max_ok_latency_ms": max(r["max_ok_latency_ms"] for r in rounds),
        "all_ok": all(r["ok"] == len(healthy) and r["timeouts"] == hangers for r in rounds),
        "server_cpu_per_round": server_cpu / len(rounds),
        "peers": peers,
        "answering": len(healthy),
    }


def _ratio(mine: list[float], theirs: list[float]) -> str:
    """engine / peer, sweep by sweep: median (min–max)."""
    pairs = sorted(a / b for a, b in zip(mine, theirs, strict=True))
    return f"{statistics.median(pairs):.2f} ({pairs[0]:.2f}–{pairs[-1]:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--hang-fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--scheme", choices=["http", "https", "both"], default="both")
    parser.add_argument("--peer-reps", type=int, default=7, help="sweeps of each, interleaved")
    parser.add_argument("--peer-threads", type=int, default=64, help="the thread peer's pool")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.endpoints > 250 * 254:
        parser.error("at most 63,500 endpoints")
    raise_nofile(4 * args.endpoints + 256)
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.hang_fraction, args.cert, args.key))
        return 0

    load_before = os.getloadavg()
    schemes = ["http", "https"] if args.scheme == "both" else [args.scheme]
    results = []
    with tempfile.TemporaryDirectory(prefix="fot-bench-") as tmp:
        for scheme in schemes:
            results.append(bench(scheme, args, Path(tmp)))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cores = os.cpu_count()
    print()
    print(
        f"Probe rounds: {args.endpoints} endpoints on loopback ({results[0]['hangers']} accept "
        f"and never answer), timeout {args.timeout:g} s, interval {args.interval:g} s, "
        f"{args.rounds} rounds, {cores} cores, Python {sys.version.split()[0]}"
    )
    print()
    print(
        "| scheme | round p50 | round max | rounds skipped | probes/s | CPU per round "
        "| CPU per probe | slowest answer | all as expected |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scheme']} | {r['p50']:.2f} s | {r['max']:.2f} s | {r['skipped']} "
            f"| {r['throughput']:,.0f} | {r['cpu_per_round']:.2f} s "
            f"| {r['tp_cpu_per_probe_ms']:.2f} ms | {r['max_ok_latency_ms']:.0f} ms "
            f"| {'yes' if r['all_ok'] else 'NO'} |"
        )
    print()
    print(
        f"Max RSS of the probing process: {rss_mb:.0f} MB. The server process (same machine) "
        "used "
        + ", ".join(f"{r['server_cpu_per_round']:.2f} s ({r['scheme']})" for r in results)
        + " of CPU per round."
    )
    print()
    print(
        f"Side by side: the answering endpoints swept by each, {args.peer_reps} times, "
        "interleaved; load average before/after: "
        + ", ".join(f"{x:.2f}" for x in load_before)
        + " / "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print()
    print(
        "| scheme | who | sweep: median (min–max) | probes/s: median (best) "
        "| engine / peer, wall | CPU per sweep: median | engine / peer, CPU |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        peers = r["peers"]
        for name, values in peers.items():
            if name.endswith(" (CPU)"):
                continue
            used = peers[f"{name} (CPU)"]
            mine = name == "engine"
            wall_ratio = "" if mine else _ratio(peers["engine"], values)
            cpu_ratio = "" if mine else _ratio(peers["engine (CPU)"], used)
            print(
                f"| {r['scheme']} | {name} | {statistics.median(values):.3f} s "
                f"({min(values):.3f}–{max(values):.3f}) "
                f"| {r['answering'] / statistics.median(values):,.0f} "
                f"({r['answering'] / min(values):,.0f}) | {wall_ratio} "
                f"| {statistics.median(used):.3f} s | {cpu_ratio} |"
            )
    ok = all(r["all_ok"] and r["skipped"] == 0 and r["max"] < args.interval for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
