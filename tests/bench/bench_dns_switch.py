"""From `failover dns set SITE --to ENDPOINT --yes` to every authoritative server answering
the new values, for each DNS adapter against its local server.

Two figures per adapter, switching three records (A, A, AAAA) back and forth:
- cli: wall time of the command as a subprocess (`python3 -m failover ...`), which exits
  only once its own verification saw every authoritative server serve the new values;
- core: `failover.dns.apply.switch_site_dns()` in a warm process (read, plan, journal, apply,
  wait for the provider, verify), i.e. without interpreter start-up and imports.

Route 53 runs against moto's server; moto has no DNS side, so "the authoritative server"
is the test responder that answers from moto's data (tests/support/dns_servers.py).

Side by side with the peers (PowerDNS, the same server and the same three records), each
run in turn, timed from process start until every authoritative server serves the new
values (the tool exits only after it saw that; for the peers the bench asks the server
right after they exit):
- octoDNS (`octodns-sync --doit` with octodns-powerdns, from a YAML zone file holding the
  whole zone), installed into a virtual environment of its own under the bench cache;
- libcloud in a fresh script (the PowerDNS driver: get the zone, list its records, update
  the three);
- floor: a script that only imports what the command cannot do without (typer, pydantic,
  libcloud's PowerDNS driver, dnspython, PyYAML, sqlite3) and exits.

    python tests/bench/bench_dns_switch.py [--runs 20] [--adapters]
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
TARGETS = {
    "standby": {"A": "198.51.100.20", "AAAA": "2001:db8::20"},
    "primary": {"A": "192.0.2.10", "AAAA": "2001:db8::10"},
}
MANAGED = [("shop.example.com", "A"), ("www.example.com", "A"), ("shop.example.com", "AAAA")]

LIBCLOUD_SCRIPT = """
import os, sys
from libcloud.dns.providers import get_driver
from libcloud.dns.types import Provider
port, values = int(sys.argv[1]), dict(zip(("A", "AAAA"), sys.argv[2:4]))
managed = {"shop.example.com.", "www.example.com."}
driver = get_driver(Provider.POWERDNS)(
    key=os.environ["PDNS_API_KEY"], host="127.0.0.1", port=port, api_version="v1", secure=False
)
zone = driver.get_zone("example.com.")
for record in driver.list_records(zone):
    if record.name in managed and record.type in values:
        driver.update_record(record, record.name, record.type, values[record.type],
                             extra={"ttl": 60})
"""
FLOOR_SCRIPT = (
    "import typer, pydantic.main, libcloud.dns.drivers.powerdns, dns.message, dns.query, "
    "yaml, sqlite3"
)


def octodns_files(tmp: Path, api_port: int) -> tuple[Path, Path]:
    config = tmp / "octodns.yaml"
    config.write_text(
        "providers:\n"
        f"  config: {{class: octodns.provider.yaml.YamlProvider, directory: {tmp / 'zones'}}}\n"
        "  powerdns:\n"
        "    class: octodns_powerdns.PowerDnsProvider\n"
        f"    host: 127.0.0.1\n    port: {api_port}\n    scheme: http\n"
        "    api_key: env/PDNS_API_KEY\n"
        "zones:\n  example.com.: {sources: [config], targets: [powerdns]}\n"
    )
    (tmp / "zones").mkdir(exist_ok=True)
    return config, tmp / "zones" / "example.com.yaml"


def octodns_zone(path: Path, target: str) -> None:
    """The whole zone as octoDNS wants it (it owns every record of the zone)."""
    v = TARGETS[target]
    path.write_text(
        "---\n"
        "'': {type: NS, values: [ns1.example.com.]}\n"
        "ns1: {ttl: 3600, type: A, value: 127.0.0.1}\n"
        "other: {ttl: 3600, type: A, value: 192.0.2.99}\n"
        f"shop:\n  - {{ttl: 60, type: A, value: {v['A']}}}\n"
        f"  - {{ttl: 60, type: AAAA, value: '{v['AAAA']}'}}\n"
        f"www: {{ttl: 60, type: A, value: {v['A']}}}\n"
    )


def served(dns_port: int, target: str, deadline: float = 5.0) -> bool:
    from tests.support.dns_servers import query

    end = time.monotonic() + deadline
    while True:
        if all(
            query(dns_port, name, rtype)[0] == [TARGETS[target][rtype]] for name, rtype in MANAGED
        ):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.005)


def peers(runs: int) -> None:
    """The tool, octoDNS and libcloud against one PowerDNS, run by run in turn."""
    from _common import (
        failover_bin,
        installed_failover,
        load_line,
        ms_summary,
        peer_venv,
        ratio_summary,
        run_timed,
    )

    from tests.integration.dns.conftest import make_backend

    python = installed_failover()
    octo_bin = peer_venv("octodns", ["octodns", "octodns-powerdns"])
    with tempfile.TemporaryDirectory(prefix="bench-dns-peers-") as tmp_name:
        tmp = Path(tmp_name)
        gen = make_backend("libcloud", tmp)
        backend = next(gen)
        try:
            config = backend.write(tmp)
            env = {**backend.subprocess_env(), "PDNS_API_KEY": backend.server.api_key}
            api_port, dns_port = backend.server.api_port, backend.server.dns_port
            octo_config, octo_zone = octodns_files(tmp, api_port)
            script = tmp / "libcloud_switch.py"
            script.write_text(LIBCLOUD_SCRIPT)

            def tool(target: str) -> list[str]:
                return [failover_bin(python), "--config", str(config), "dns", "set",
                        "shop", "--to", target, "--yes"]  # fmt: skip

            def octodns(target: str) -> list[str]:
                octodns_zone(octo_zone, target)
                return [str(octo_bin / "octodns-sync"), f"--config-file={octo_config}",
                        "--doit", "--force"]  # fmt: skip

            def libcloud(target: str) -> list[str]:
                v = TARGETS[target]
                return [python, str(script), str(api_port), v["A"], v["AAAA"]]

            def floor(target: str) -> list[str]:
                return [python, "-c", FLOOR_SCRIPT]

            contenders = {
                "failover dns set --yes": tool,
                "octoDNS (octodns-sync --doit)": octodns,
                "libcloud, fresh script": libcloud,
                "floor: imports only": floor,
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            cpu: dict[str, list[float]] = {name: [] for name in contenders}
            before = load_line()
            names = list(contenders)
            for i in range(runs):
                # each switches the records the other way; the order rotates every run
                for k, name in enumerate(names[i % len(names) :] + names[: i % len(names)]):
                    target = ("standby", "primary")[(i * len(names) + k) % 2]
                    argv = contenders[name](target)
                    started = time.perf_counter()
                    _, used, code, out = run_timed(argv, env=env, cwd=REPO)
                    ok = code == 0 and (name.startswith("floor") or served(dns_port, target))
                    times[name].append(time.perf_counter() - started)
                    cpu[name].append(used)
                    if not ok:
                        raise SystemExit(f"{name}: failed: {out[-1500:].decode(errors='replace')}")
            after = load_line()
        finally:
            gen.close()
    tool_times = times["failover dns set --yes"]
    print(
        f"DNS switch at PowerDNS, process start -> every authoritative server serves ({runs} runs each, interleaved)"
    )
    print(f"before: {before}; after: {after}")
    print()
    tool_cpu = cpu["failover dns set --yes"]
    print(
        "| who | wall: median (min–max) | failover / this, wall | CPU: median (min–max) "
        "| failover / this, CPU |"
    )
    print("|---|---|---|---|---|")
    for name, values in times.items():
        mine = values is tool_times
        print(
            f"| {name} | {ms_summary(values)} | {'' if mine else ratio_summary(tool_times, values)} "
            f"| {ms_summary(cpu[name])} | {'' if mine else ratio_summary(tool_cpu, cpu[name])} |"
        )
    print()


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
    runs = RUNS
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    peers(runs)
    if "--adapters" not in sys.argv:
        return
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
