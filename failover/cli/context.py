"""What every command shares: the global options, loading the config, opening the state,
printing JSON. Imports only the standard library and typer at module level, so that
`failover --help` stays fast."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
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


JSON_VERSION = 1  # of every --json document: raised when a field is removed or renamed


def load(*, log_warnings: bool = True) -> LoadedConfig:
    """Load the config named by the global options, logging its warnings (commands that
    run every minute log them once per change instead: `log_config_warnings`)."""
    from failover.config.load import load_config
    from failover.logs import get_logger

    loaded = load_config(G.config_path, watcher=G.watcher)
    if log_warnings:
        log = get_logger("config")
        for warning in loaded.warnings:
            log.warning(warning)
    return loaded


def log_config_warnings(loaded: LoadedConfig, store: Store) -> bool:
    """The config's warnings and advice, logged once per change of the config or of the
    warnings (their digest is kept in the state), not on every cron round. True when
    they were logged."""
    import hashlib

    from failover.logs import get_logger

    lines = [*loaded.warnings, *loaded.advice]
    digest = hashlib.sha256("\n".join([loaded.digest, *lines]).encode()).hexdigest()
    if store.get_meta("config_warnings") == digest:
        return False
    log = get_logger("config")
    for line in lines:
        log.warning(line)
    store.set_meta("config_warnings", digest)
    return True


def open_store(
    loaded: LoadedConfig, *, lock: bool = False, readonly: bool = False, role: str = "failover"
) -> Store:
    """The state file: a writer (`lock` takes the process lock, exit 4 when another
    process holds it; `role` says who holds it), or a reader."""
    from failover.store import Store

    return Store.open(loaded.state_path, lock=lock, readonly=readonly, role=role)


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


def duration_flag(flag: str, value: str | None) -> float | None:
    """A command-line duration (`--deadline 2m`, `--wait 90s`, or seconds): the same parser
    as the config's durations; a usage error (exit 2) naming the flag otherwise."""
    if value is None:
        return None
    from failover.durations import DurationError, parse_duration
    from failover.errors import UsageError

    try:
        return parse_duration(value)
    except DurationError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def emit_json(data: dict[str, Any]) -> None:
    """One JSON document on stdout, its first key `version` (JSON_VERSION)."""
    assert "version" not in data, "`version` is the document's: name the field otherwise"
    document = {"version": JSON_VERSION, **data}
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def duration_option(flag: str) -> Callable[[str], float]:
    """A typer `parser=` for an option that takes a duration, written as in the config
    (30s, 5m, 2h, 1d; a bare number is seconds)."""

    def parse(value: str) -> float:
        from failover.durations import DurationError, parse_duration

        try:
            return float(parse_duration(value))
        except DurationError as exc:
            raise typer.BadParameter(str(exc), param_hint=flag) from None

    return parse


def echo(line: str = "", *, err: bool = False) -> None:
    typer.echo(line, err=err)


def progress_to_stderr(message: str) -> None:
    typer.echo(message, err=True)
