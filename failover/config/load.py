"""Loading and validating the config file.

`load_config()` finds the file, parses it with line numbers, validates it against the
models and returns a `LoadedConfig`; every problem is reported at once as
`FILE:LINE: key.path: message` in one ConfigError (exit code 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from failover.config.loader import LineMap, format_problem, load_yaml, read_config_text
from failover.config.models import Config, Endpoint, Policy, Site
from failover.config.types import Secret, warn_if_world_readable
from failover.errors import ConfigError

DEFAULT_PATHS = (Path("failover.yaml"), Path("/etc/failover/failover.yaml"))


@dataclass
class LoadedConfig:
    config: Config
    path: Path
    lines: LineMap
    warnings: list[str] = field(default_factory=list)
    inline_secrets: int = 0

    @property
    def state_path(self) -> Path:
        if self.config.state is not None:
            state = self.config.state.expanduser()
            return state if state.is_absolute() else self.path.parent / state
        return default_state_path()


def default_state_path() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/failover/state.db")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "failover" / "state.db"


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """--config, then $FAILOVER_CONFIG, then ./failover.yaml, then /etc/failover/failover.yaml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("FAILOVER_CONFIG")
    if env:
        return Path(env)
    for candidate in DEFAULT_PATHS:
        if candidate.exists():
            return candidate
    raise ConfigError(
        [
            "no config file: pass --config, set FAILOVER_CONFIG, or create ./failover.yaml "
            "(`failover init` writes a starting one)"
        ]
    )


def parse_config(
    text: str, filename: str, *, base_dir: Path | None = None, env: dict[str, str] | None = None
) -> LoadedConfig:
    data, lines = load_yaml(text, filename)
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: (top): the config must be a mapping of keys"])
    warnings: list[str] = []
    inline: list[str] = []
    context = {
        "env": os.environ if env is None else env,
        "warnings": warnings,
        "base_dir": base_dir,
        "inline_secrets": inline,
    }
    try:
        with _no_pydantic_plugins():
            config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, lines)) from None
    for path in _inline_secrets(config, ()) if inline else ():
        warnings.append(
            format_problem(lines, path, "secret written inline; prefer ${ENV_VAR} or file:/path")
        )
    return LoadedConfig(
        config=config,
        path=Path(filename),
        lines=lines,
        warnings=warnings,
        inline_secrets=len(inline),
    )


@contextmanager
def _no_pydantic_plugins() -> Iterator[None]:
    """Build the (deferred) validators without pydantic's plugin discovery, which reads the
    entry points of every installed distribution (~10 ms per process); the config's models
    use no plugin. Typer does the same for the validators of command-line options."""
    previous = os.environ.get("PYDANTIC_DISABLE_PLUGINS")
    os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PYDANTIC_DISABLE_PLUGINS", None)
        else:
            os.environ["PYDANTIC_DISABLE_PLUGINS"] = previous


def load_config(explicit: str | os.PathLike[str] | None = None) -> LoadedConfig:
    path = find_config(explicit)
    text = read_config_text(path)
    loaded = parse_config(text, str(path), base_dir=path.parent.resolve())
    if loaded.inline_secrets:
        warn_if_world_readable(path, "config file (it holds secrets)", loaded.warnings)
    for key_path in sorted(_key_files(loaded.config)):
        # a missing key shows up, with a hint, when it is used
        warn_if_world_readable(key_path, "SSH key", loaded.warnings)
    return loaded


def _key_files(config: Config) -> set[Path]:
    keys = set()
    for site in config.sites.values():
        for endpoint in site.endpoints.values():
            if endpoint.ssh is not None and endpoint.ssh.key is not None:
                keys.add(endpoint.ssh.key.expanduser())
    for template in getattr(config, "compute_templates", {}).values():
        ssh = getattr(template, "ssh", None)
        if ssh is not None and getattr(ssh, "key", None) is not None:
            keys.add(Path(ssh.key).expanduser())
    return keys


def _problems(exc: ValidationError, lines: LineMap) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif message.startswith("Assertion failed, "):
            message = message[len("Assertion failed, ") :]
        problems.append(format_problem(lines, loc, message))
    return sorted(set(problems), key=_line_key)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # Discriminated unions add the tag ("https") as a location part: drop it.
    out: list[str | int] = []
    for part in loc:
        if (
            isinstance(part, str)
            and part in ("http", "https", "tcp", "icmp", "dns")
            and out
            and isinstance(out[-1], int)
        ):
            continue
        out.append(part)
    return tuple(out)


def _line_key(problem: str) -> tuple[str, int, str]:
    head, _, rest = problem.partition(": ")
    name, _, line = head.rpartition(":")
    return (name, int(line), rest) if line.isdigit() else (head, 0, rest)


def _inline_secrets(value: Any, path: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = []
    if isinstance(value, Secret):
        if value.source == "inline":
            found.append(path)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _inline_secrets(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _inline_secrets(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _inline_secrets(item, (*path, i))
    return found


__all__ = [
    "Config",
    "Endpoint",
    "LoadedConfig",
    "Policy",
    "Secret",
    "Site",
    "find_config",
    "load_config",
    "parse_config",
]
