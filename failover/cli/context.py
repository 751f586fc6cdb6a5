"""What every command shares: the global options, loading the config, opening the state,
printing JSON. Imports only the standard library and typer at module level, so that
`failover --help` stays fast."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig
    from failover.store import Store


@dataclass
class Globals:
    config_path: str | None = None
    debug: bool = False
    log_format: str = "text"
    watcher: str | None = None  # --watcher: this machine's name in a coordination group


G = Globals()


def load() -> LoadedConfig:
    """Load the config named by the global options, logging its warnings."""
    from failover.config.load import load_config
    from failover.logs import get_logger

    loaded = load_config(G.config_path, watcher=G.watcher)
    log = get_logger("config")
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded


def open_store(loaded: LoadedConfig, *, lock: bool = False, readonly: bool = False) -> Store:
    """The state file: a writer (`lock` takes the process lock, exit 4 when another
    process holds it), or a reader."""
    from failover.store import Store

    return Store.open(loaded.state_path, lock=lock, readonly=readonly)


def read_store(loaded: LoadedConfig) -> Store | None:
    """The state for reading, or None when there is none yet (or it cannot be read)."""
    from failover.errors import FailoverError
    from failover.store import Store

    if not loaded.state_path.exists():
        return None
    try:
        return Store.open(loaded.state_path, readonly=True)
    except FailoverError:
        return None


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def echo(line: str = "", *, err: bool = False) -> None:
    typer.echo(line, err=err)


def progress_to_stderr(message: str) -> None:
    typer.echo(message, err=True)
