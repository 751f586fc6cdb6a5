"""Secrets never reach a log line, the state or `status`: one scrubbing function
(failover.scrub) behind every hook's failure, the log formatters, restic's repository and
output, and the provider adapters (issue #10)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from failover.backup.restic_parse import redact_output, redact_repository
from failover.config.load import parse_config
from failover.hooks import HookContext
from failover.logs import JsonFormatter, TextFormatter
from failover.notify import Notifier
from failover.scrub import describe_exception, forget_secrets, register_secret, scrub
from failover.store import Store
from failover.watch.daemon import inline_spawn, run_hooks

TOKEN = "3f2a9c1e-77b0-4d2e-9f6a-0c1d2e3f4a5b"
MINIMAL = """\
sites:
  shop:
    hostname: shop.test
    endpoints:
      primary: {address: 192.0.2.1}
    checks:
      - {type: tcp, port: 22}
"""


@pytest.fixture(autouse=True)
def _no_known_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "text,expected",
    [
        ("rest:http://user:p@ss@host:8000/repo", "rest:http://***@host:8000/repo"),
        ("rest:https://u:a@b@c@host/", "rest:https://***@host/"),
        (
            "s3:https://AKIA:s3cr@t@s3.example/bucket?region=x",
            "s3:https://***@s3.example/bucket?region=x",
        ),
        ("rest:https://user:pw@host:8000/repo", "rest:https://***@host:8000/repo"),
        ("sftp:backup@host:/srv/restic", "sftp:backup@host:/srv/restic"),
        ("/var/backups/x", "/var/backups/x"),
        ("https://host/a?email=me@example.com", "https://host/a?email=me@example.com"),
    ],
)
def test_repository_userinfo_is_masked_up_to_the_last_at(text: str, expected: str) -> None:
    assert redact_repository(text) == expected


def test_restic_output_masks_the_whole_password_and_known_values() -> None:
    out = redact_output(
        "\x1b[31mFatal: unable to open repo at rest:http://user:p@ss@host:8000/r: "
        "secret-pass denied\x1b[0m",
        ["secret-pass"],
    )
    assert out == "Fatal: unable to open repo at rest:http://***@host:8000/r: *** denied"
    assert "p@ss" not in out and "ss@host" not in out


def test_query_tokens_are_masked_and_plain_parameters_kept() -> None:
    text = (
        "GET https://kuma.example/api/push/x?status=up&msg=OK&token=abc123 and "
        f"https://h.example/p?full=1&id={TOKEN}&X-Amz-Signature=deadbeef"
    )
    assert scrub(text) == (
        "GET https://kuma.example/api/push/x?status=up&msg=OK&token=*** and "
        "https://h.example/p?full=1&id=***&X-Amz-Signature=***"
    )


def test_registered_secrets_and_their_url_parts_are_masked() -> None:
    register_secret(f"https://hc-ping.example/{TOKEN}")
    register_secret("mailto://me:hunter22@mail.example")
    assert scrub(f"GET https://hc-ping.example/{TOKEN} failed") == "GET *** failed"
    # the same token in another form: without the scheme, or with a port
    assert TOKEN not in scrub(f"unknown url type: 'hc-ping.example/{TOKEN}'")
    assert TOKEN not in scrub(f"https://hc-ping.example:443/{TOKEN}")
    assert "hunter22" not in scrub("auth failed for me:hunter22")
    assert scrub("abc", ["abc"]) == "abc"  # shorter than 4: not worth masking


def test_describe_exception_is_one_scrubbed_line() -> None:
    exc = ValueError(f"bad\nport in https://u:pw@hc.example:99999/{TOKEN}?key=s3cr3t")
    register_secret(TOKEN)
    line = describe_exception(exc)
    assert line == "ValueError: bad port in https://***@hc.example:99999/***?key=***"


def _capture(fmt: logging.Formatter) -> tuple[logging.Logger, io.StringIO, logging.Handler]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(fmt)
    logger = logging.getLogger("failover")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream, handler


@pytest.mark.parametrize("fmt", [TextFormatter(), JsonFormatter()])
def test_a_heartbeat_like_hook_that_raises_logs_no_url_or_token(
    tmp_path: Path, fmt: logging.Formatter
) -> None:
    # The URL as the config holds it (a secret); the hook's error quotes it whole.
    loaded = parse_config(
        "heartbeat: {url: '${HB_URL}'}\n" + MINIMAL,
        "f.yaml",
        env={"HB_URL": f"https://hc-ping.example/{TOKEN}"},
    )
    store = Store.open(tmp_path / "state.db", lock=True)
    url = loaded.config.heartbeat.url.reveal()  # type: ignore[union-attr]

    def heartbeat(ctx: HookContext) -> None:  # what urllib says of a URL without a scheme
        raise ValueError(f"unknown url type: {url!r}")

    def pinger(ctx: HookContext) -> None:
        def ping(_store: Store) -> None:
            raise ValueError("nonnumeric port: 'https://user:pa@ss@hb.example:x/ping?key=k3y-v4l'")

        ctx.spawn("heartbeat", ping)

    logger, stream, handler = _capture(fmt)
    try:
        ctx = HookContext(loaded, store, Notifier([]), None, spawn=inline_spawn(store))
        run_hooks(ctx, [heartbeat, pinger])
    finally:
        logger.removeHandler(handler)
        store.close()
    out = stream.getvalue()
    assert "heartbeat failed: ValueError: unknown url type: '***'" in out
    assert (
        "heartbeat failed: ValueError: nonnumeric port: 'https://***@hb.example:x/ping?key=***'"
        in out
    )
    for leak in (TOKEN, "hc-ping.example", "pa@ss", "ss@hb", "k3y-v4l"):
        assert leak not in out


def test_a_log_line_with_a_credential_is_scrubbed_by_the_formatter() -> None:
    logger, stream, handler = _capture(TextFormatter())
    try:
        logging.getLogger("failover.test").error("pushing to https://bot:t0ken@chat.example/x")
    finally:
        logger.removeHandler(handler)
    assert "t0ken" not in stream.getvalue()
    assert "https://***@chat.example/x" in stream.getvalue()
