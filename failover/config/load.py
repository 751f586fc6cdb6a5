"""Loading and validating the config file.

`load_config()` finds the file, parses it with line numbers, validates it against the
models and returns a `LoadedConfig`; every problem is reported at once as
`FILE:LINE: key.path: message` in one ConfigError (exit code 2).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from failover.config.advice import advise
from failover.config.files import SmallFileError, expand_path
from failover.config.loader import LineMap, format_problem, load_yaml, read_config_text
from failover.config.models import Config, Endpoint, Policy, Site
from failover.config.types import Secret, warn_if_world_readable
from failover.config.wording import reword
from failover.errors import ConfigError

DEFAULT_PATHS = (Path("failover.yaml"), Path("/etc/failover/failover.yaml"))


@dataclass
class LoadedConfig:
    config: Config
    path: Path
    lines: LineMap
    warnings: list[str] = field(default_factory=list)
    # what makes a valid config useless at 3 a.m. (config/advice.py): `validate` shows it,
    # `check` and the agent log it once per change of the config
    advice: list[str] = field(default_factory=list)
    digest: str = ""  # of the config's text: tells one version of the config from another
    # coordination: this machine's watcher (--watcher, $FAILOVER_WATCHER, the watcher file)
    watcher: str | None = None
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
    text: str,
    filename: str,
    *,
    base_dir: Path | None = None,
    env: dict[str, str] | None = None,
    watcher: str | None = None,
) -> LoadedConfig:
    data, lines = load_yaml(text, filename)
    if not isinstance(data, dict):
        raise ConfigError([f"{filename}:1: (top): the config must be a mapping of keys"])
    warnings: list[str] = []
    environ = os.environ if env is None else env
    identity = None
    if "coordination" in data:
        from failover.config.coordination import resolve_watcher

        identity, problems = resolve_watcher(data["coordination"], base_dir, watcher, environ)
        if problems:
            raise ConfigError(problems)
    voter_only = identity is not None and not identity.can_act
    inline: list[str] = []
    context = {
        "env": environ,
        "warnings": warnings,
        "base_dir": base_dir,
        "absent_secrets": voter_only,  # it must not hold them: checked below
        "inline_secrets": inline,
    }
    try:
        with _no_pydantic_plugins():
            config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, lines)) from None
    unusable = [format_problem(lines, path, why) for path, why in _unusable_paths(config, ())]
    if unusable:
        raise ConfigError(unusable)
    if voter_only and identity is not None:
        _check_voter_only(config, lines, identity.name)
    for path in _inline_secrets(config, ()) if inline else ():
        warnings.append(
            format_problem(lines, path, "secret written inline; prefer ${ENV_VAR} or file:/path")
        )
    return LoadedConfig(
        config=config,
        path=Path(filename),
        lines=lines,
        warnings=warnings,
        watcher=identity.name if identity else None,
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


def _check_voter_only(config: Config, lines: LineMap, name: str) -> None:
    """A watcher with can_act: false holds no credentials to move the site, and the
    engine's own credentials are there."""
    from failover.config.coordination import engine_secrets_missing, held_credentials

    assert config.coordination is not None
    problems = [
        format_problem(
            lines,
            path,
            f"watcher {name} has can_act: false, but {what}: a voter-only watcher must not "
            "hold DNS, SSH or restic credentials",
        )
        for path, what in held_credentials(config)
    ]
    problems += [
        format_problem(lines, path, what)
        for path, what in engine_secrets_missing(config.coordination)
    ]
    if problems:
        raise ConfigError(problems)


def load_config(
    explicit: str | os.PathLike[str] | None = None, watcher: str | None = None
) -> LoadedConfig:
    path = find_config(explicit)
    text = read_config_text(path)
    loaded = parse_config(text, str(path), base_dir=path.parent.resolve(), watcher=watcher)
    if loaded.inline_secrets:
        warn_if_world_readable(path, "config file (it holds secrets)", loaded.warnings)
    for key_path in sorted(_key_files(loaded.config)):
        warn_if_world_readable(key_path, "SSH key", loaded.warnings)
    loaded.advice = [
        format_problem(loaded.lines, loc, message)
        for loc, message in advise(loaded.config, lambda p: p.exists())
    ]
    loaded.digest = hashlib.sha256(text.encode()).hexdigest()
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
        message = reword(dict(error), Config)  # the tool's words, "did you mean"
        problems.append(format_problem(lines, loc, message))
    return sorted(set(problems), key=_line_key)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # Discriminated unions add the tag ("https") as a location part: drop it.
    out: list[str | int] = []
    for part in loc:
        if part == "[key]":  # a mapping's key itself (a name): its place is the key's
            continue
        if (
            isinstance(part, str)
            and part in ("http", "https", "tcp", "icmp", "dns", "weekly", "dates")
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


def _unusable_paths(value: Any, path: tuple[str | int, ...]) -> list[tuple[Any, str]]:
    """Paths in the config that cannot be used as written (`~nouser/x`)."""
    found: list[tuple[Any, str]] = []
    if isinstance(value, Path):
        try:
            expand_path(value)
        except SmallFileError as exc:
            found.append((path, str(exc)))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _unusable_paths(getattr(value, name), (*path, name))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _unusable_paths(item, (*path, key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _unusable_paths(item, (*path, i))
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
