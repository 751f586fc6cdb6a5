"""Running the CLI as a user would: a subprocess with a config file the test wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def failover(
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    check: bool = False,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "failover"]
    if config is not None:
        argv += ["--config", str(config)]
    argv += list(args)
    full_env = {**os.environ, **(env or {})}
    full_env.pop("FAILOVER_CONFIG", None)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd or REPO
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"failover {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def failover_json(*args: str, config: Path, **kw: Any) -> Any:
    proc = failover(*args, "--json", config=config, check=True, **kw)
    return json.loads(proc.stdout)


def popen_failover(
    *args: str, config: Path, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "failover", "--config", str(config), *args]
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the OS
    return subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=REPO
    )
