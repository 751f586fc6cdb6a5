"""The command line's conventions, applied to every command in one place, so that a new
command follows them without thinking about it:

- global options anywhere: `failover validate -c FILE` is `failover -c FILE validate`
  (`--config/-c`, `--debug`, `--log-format`, `--watcher`, `--quiet/-q` are moved in front of the
  command before click parses; an option value that looks like one is left alone);
- metavars are names (`SITE`, `ENDPOINT`, `PATH`, `DURATION`): an argument's is its name,
  an option's its `metavar=` or its name, never a Python type;
- a command's summary in the list of commands is its first paragraph, whole;
- the `Examples:` block at the end of a command's docstring is its help's epilog, with
  its lines kept as written.

Only typer at module level: `failover --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

# The root's options: the ones that take a value, and the flags.
GLOBAL_WITH_VALUE = ("--config", "-c", "--log-format", "--watcher")
GLOBAL_FLAGS = ("--debug", "--quiet", "-q")
EXAMPLES_HEADINGS = ("Examples:", "Example:")


class FailoverGroup(TyperGroup):
    """The root command: moves global options given after a command in front of it, and
    polishes the help of every command beneath it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        polish(self)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, ctx, list(args)))


def _value_options(command: Any) -> set[str]:
    """The option strings of `command` that take a value (the next token is theirs)."""
    out: set[str] = set()
    for param in getattr(command, "params", []):
        if getattr(param, "param_type_name", "") != "option":
            continue
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        out.update(param.opts)
        out.update(getattr(param, "secondary_opts", []))
    return out


def _is_global(token: str) -> tuple[bool, bool]:
    """(a global option, it takes the next token as its value)."""
    if token in GLOBAL_FLAGS:
        return True, False
    if token in GLOBAL_WITH_VALUE:
        return True, True
    if any(token.startswith(f"{o}=") for o in GLOBAL_WITH_VALUE if o.startswith("--")):
        return True, False
    if token.startswith("-c") and len(token) > 2 and not token.startswith("--"):
        return True, False  # -cFILE
    return False, False


def hoist_global_options(root: Any, ctx: Any, args: list[str]) -> list[str]:
    """`args` with the global options that stand after the command moved in front of it.

    Walks the tokens the way click will: options of the command reached so far that take
    a value keep their value; a word names a subcommand while the command is a group;
    after `--` nothing moves."""
    hoisted: list[str] = []
    rest: list[str] = []
    command = root
    nested = False  # past the root's own options: a command was named
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest += args[i:]
            break
        takes_value = token in _value_options(command)
        is_global, global_value = _is_global(token)
        if nested and is_global and token not in _value_options(command):
            hoisted.append(token)
            if global_value and i + 1 < len(args):
                hoisted.append(args[i + 1])
                i += 1
        elif takes_value:
            rest += args[i : i + 2]
            i += 1
        else:
            rest.append(token)
            if not token.startswith("-") and hasattr(command, "get_command"):
                sub = command.get_command(ctx, token)
                if sub is not None:
                    command, nested = sub, True
        i += 1
    return hoisted + rest


def polish(command: Any) -> None:
    """Metavars, summaries and examples of `command` and every command beneath it."""
    _split_examples(command)
    if command.help and not command.short_help:
        command.short_help = " ".join(command.help.split("\n\n")[0].split())
    for param in getattr(command, "params", []):
        kind = getattr(param, "param_type_name", "")
        if not param.name or getattr(param, "_failover_polished", False):
            continue
        param._failover_polished = True
        if kind == "argument":
            param.metavar = param.metavar or param.name.upper()
            _plain_argument(param)
        elif kind == "option" and not getattr(param, "is_flag", False):
            param.metavar = param.metavar or param.name.upper()
    for sub in getattr(command, "commands", {}).values():
        polish(sub)


def _plain_argument(param: Any) -> None:
    """An argument reads `SITE` (required) or `[SITE]` in the usage line and `SITE` in the
    list of arguments, whatever typer's own style (`{site}`, `site <str>`). Wraps the
    parameter's click API methods (get_usage_pieces, get_help_record)."""
    name = param.metavar + ("..." if param.nargs != 1 else "")
    usage = name if param.required else f"[{name}]"
    record = param.get_help_record

    def get_usage_pieces(_ctx: Any) -> list[str]:
        return [usage]

    def get_help_record(ctx: Any) -> tuple[str, str] | None:
        found = record(ctx)
        return None if found is None else (name, found[1])

    param.get_usage_pieces = get_usage_pieces
    param.get_help_record = get_help_record


def _split_examples(command: Any) -> None:
    help_text = command.help or ""
    for heading in EXAMPLES_HEADINGS:
        head, sep, block = help_text.partition(f"\n{heading}")
        if sep:
            command.help = head.rstrip()
            # \b: click keeps the lines of the next paragraph as they are
            command.epilog = "\b\n" + heading + block.rstrip()
            return
