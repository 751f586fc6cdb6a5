"""`failover status-page render | publish`: the public status page, written locally or
uploaded to the bucket now (the agent publishes on its own when `status_page` is set)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from failover.cli.context import echo, emit_json, load, open_store
from failover.errors import FailoverError, UsageError

if TYPE_CHECKING:
    from failover.config.load import LoadedConfig

status_page_app = typer.Typer(
    help="The public status page (static HTML and status.json per site).\n\n"
    "Examples:\n  failover status-page render --out /tmp/page\n  failover status-page publish",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _loaded_with_page() -> LoadedConfig:
    loaded = load()
    if loaded.config.status_page is None:
        raise UsageError(f"no status_page in {loaded.path}: add one (see README, Status page)")
    if not loaded.state_path.exists():
        raise FailoverError(
            f"no state yet at {loaded.state_path}: run `failover check` or start the agent first"
        )
    return loaded


@status_page_app.command("render")
def render(
    out: Path = typer.Option(..., "--out", "-o", help="The directory to write the page to."),
) -> None:
    """Write the page (index.html, SITE/index.html, SITE/status.json) to a directory.

    Examples:
      failover status-page render --out /tmp/page && xdg-open /tmp/page/index.html
    """
    from failover.show.status_page import write_local

    loaded = _loaded_with_page()
    with open_store(loaded, readonly=True) as store:
        try:
            written = write_local(loaded, store, out)
        except OSError as exc:
            raise FailoverError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    for path in written:
        echo(str(path))


@status_page_app.command("publish")
def publish(
    json_out: bool = typer.Option(False, "--json", help="Print the uploaded keys as JSON."),
) -> None:
    """Upload the page to the bucket now.

    Examples:
      failover status-page publish
    """
    from failover.show.status_page import publish as do_publish

    loaded = _loaded_with_page()
    cfg = loaded.config.status_page
    assert cfg is not None
    with open_store(loaded) as store:  # records when it was published
        keys = do_publish(loaded, store)
    if json_out:
        emit_json({"bucket": cfg.bucket_name, "keys": keys, "public_url": cfg.public_url})
        return
    for key in keys:
        echo(f"s3://{cfg.bucket_name}/{key}")
    if cfg.public_url:
        echo(f"users see it at {cfg.public_url}")
