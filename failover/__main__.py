"""Entry point: `failover` and `python -m failover`."""

from __future__ import annotations

import sys
import types


def main(argv: list[str] | None = None) -> int:
    _no_pydantic_plugins()
    from failover.cli.app import run

    return run(sys.argv[1:] if argv is None else argv)


def _no_pydantic_plugins() -> None:
    """Before pydantic builds its first validator (typer's for the options, then the
    config's), it imports its plugin loader, which imports importlib.metadata to read the
    entry points of every installed distribution: ~10 ms and ~2 MB per process, even when
    PYDANTIC_DISABLE_PLUGINS turns plugins off. The tool uses no pydantic plugin, so this
    process gets a loader that finds none."""
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "pydantic plugins: none in the failover command")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    sys.modules[name] = loader


if __name__ == "__main__":
    sys.exit(main())
