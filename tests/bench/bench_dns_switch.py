"""From `failover dns set SITE --to ENDPOINT --yes` to every authoritative server answering
the new values, for each DNS adapter against its local server.

Two figures per adapter, switching three records (A, A, AAAA) back and forth:
- cli: wall time of the command as a subprocess (`python3 -m failover ...`), which exits
  only once its own verification saw every authoritative server serve the new values;
- core: `failover.dns.apply.switch_site_dns()` in a warm process (read, plan, journal, apply,
  wait for the provider, verify), i.e. without interpreter start-up and imports.

Route 53 runs against moto's server; moto has no DNS side, so "the authoritative server"
is the test responder that answers from moto's data (tests/support/dns_servers.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, summary

RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def bench(kind: str) -> tuple[str, str]:
    from failover.store import Store
    from tests.integration.dns.conftest import make_backend

    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp_name:
        tmp = Path(tmp_name)
        gen = make_backend(kind, tmp)
        backend = next(gen)
        try:
            config = backend.write(tmp)
            env = backend.subprocess_env()
            targets = ["standby", "primary"]
            cli: list[float] = []
            for i in range(RUNS):
                started = time.perf_counter()
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "failover",
                        "--config",
                        str(config),
                        "dns",
                        "set",
                        "shop",
                        "--to",
                        targets[i % 2],
                        "--yes",
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=REPO,
                )
                cli.append(time.perf_counter() - started)
                if proc.returncode != 0 or "all serve the new values" not in proc.stdout:
                    raise SystemExit(f"{kind}: switch failed: {proc.stdout}{proc.stderr}")
            os.environ.update(backend.env)
            loaded = backend.load(tmp)
            core: list[float] = []
            with Store.open(loaded.state_path, lock=True) as store:
                for i in range(RUNS):
                    from failover.dns.apply import switch_site_dns

                    started = time.perf_counter()
                    result = switch_site_dns(loaded, "shop", targets[i % 2], store)
                    core.append(time.perf_counter() - started)
                    assert result.verification is not None and result.verification.ok
            return summary(cli), summary(core)
        finally:
            gen.close()


def main() -> None:
    sys.path.insert(0, str(REPO))
    for key, value in {
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing-access-key",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    print(f"DNS switch to every authoritative server serving the new values ({RUNS} runs each)")
    labels = {
        "libcloud": "libcloud -> PowerDNS 4.7",
        "rfc2136": "RFC 2136 -> BIND 9.18",
        "route53": "Route 53 -> moto",
    }
    for kind in ("libcloud", "rfc2136", "route53"):
        cli, core = bench(kind)
        print(f"  {labels[kind]:<26} cli: {cli}")
        print(f"  {'':<26} core: {core}")


if __name__ == "__main__":
    main()
