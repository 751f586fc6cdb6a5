"""`python3 -m tests.support.migrate_demo`: the lab (tests/support/lab.py) plus a cloud to
migrate to, for running `failover migrate` by hand (the README's walk-through). Needs root.

It starts the lab (primary, standby, PowerDNS, SeaweedFS S3 with a restic repository, a
notification receiver), moto's EC2 in server mode on 127.0.0.1 (reached through libcloud's
EC2 driver with the test-only shim), a subnet in it, and a network-namespace host with sshd
and a web server at the address moto gives the first server of that subnet, so that the
server `--provision` creates is a real host. It writes a config with a compute template
`small`, prints what to export and the commands to run, and keeps everything running until
Ctrl-C / SIGTERM, which removes it all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import time
import uuid
from typing import Any

from tests.support.cli import REPO

TEMPLATE = "small"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.support.migrate_demo")
    parser.add_argument(
        "--hide-restic",
        action="store_true",
        help="the new server has no restic (failover uploads this machine's)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("the demo needs root (network and mount namespaces)", file=sys.stderr)
        return 2
    from tests.integration.compute.moto_ec2 import (
        Ec2Lab,
        Ec2MotoServer,
        first_address,
        make_subnet,
        some_image,
    )
    from tests.support.lab import HOSTNAME, Lab
    from tests.support.newserver import NewServer, pick_subnet

    stop = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(Lab())
        moto = stack.enter_context(Ec2MotoServer())
        cidr, ip = pick_subnet()
        short = uuid.uuid4().hex[:9]
        new = NewServer("cloud", lab.dir, ip, short=short)
        new.create()
        stack.callback(new.destroy)
        new.start_sshd(lab.authorized_keys, lab.key, lab.known_hosts)
        if args.hide_restic:
            new.hide_restic()
        assert lab.s3 is not None
        new.start_forwarder(lab.s3.s3_port, lab.s3.s3_socket)
        new.start_web(lab.cert)
        vpc, subnet = make_subnet(moto, cidr)
        assert first_address(cidr) == ip
        ec2 = Ec2Lab(moto, subnet, some_image(moto), vpc, moto.port)
        template = ec2.template(
            ssh={
                "user": "root",
                "key": str(lab.key),
                "known_hosts": str(lab.known_hosts),
                "options": ["ConnectTimeout=3"],
            },
            ssh_timeout="30s",
            boot_timeout="60s",
            poll_interval="1s",
        )
        config = lab.write_config(compute_templates={TEMPLATE: template})

        env = {**lab.env(), "PYTHONPATH": str(REPO)}
        print(f"lab directory: {lab.dir}")
        print(f"primary: {lab.primary.ip}   standby: {lab.standby.ip}")
        print(
            f"EC2 (moto): http://127.0.0.1:{moto.port}, subnet {subnet} ({cidr}); the first "
            f"server created there gets {ip}, where a namespace host with sshd waits"
        )
        assert lab.pdns is not None
        print(f"PowerDNS: {lab.pdns.nameserver} serves {HOSTNAME}")
        print("\nin another shell:")
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
        print(f"export FAILOVER_CONFIG={shlex.quote(str(config))}")
        print(f"cd {shlex.quote(str(REPO))}")
        print(f"failover migrate shop --provision {TEMPLATE}            # the plan only")
        print(f"failover migrate shop --provision {TEMPLATE} --yes --write-config")
        print("failover status")
        print("failover dns show")
        print("\nCtrl-C stops everything and removes it.", flush=True)
        while not stop:
            time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
