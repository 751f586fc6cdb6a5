"""What a backup run asks restic besides the backup itself (issue 15): `restic init` only
for a repository the state does not know yet (or one that is gone), and `restic version`
once per binary file, remembered in the state across processes.

restic is the real binary, behind a two-line wrapper that records each command's name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from failover.backup import restic as restic_module
from failover.backup.run import list_snapshots, run_backup
from tests.integration.backup.conftest import make_source


def _spy(tmp: Path, restic_bin: str) -> tuple[Path, Path]:
    log = tmp / "restic-calls.log"
    wrapper = tmp / "bin" / "restic"
    wrapper.parent.mkdir()
    wrapper.write_text(
        '#!/bin/sh\nfor a; do case "$a" in -*) ;; *) echo "$a" >> '
        + str(log)
        + "; break;; esac; done\n"
        f'exec {restic_bin} "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper, log


def _calls(log: Path) -> list[str]:
    calls = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _new_process() -> None:
    """What a new process starts with: no restic version known in memory."""
    restic_module._VERSIONS.clear()


def test_init_once_and_version_once_per_binary(
    tmp_path, restic_bin, config_factory, store_for
) -> None:
    wrapper, log = _spy(tmp_path, restic_bin)
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(make_source(tmp_path))],
            "retention": {"last": 3},
            "restic": str(wrapper),
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    store = store_for(loaded)
    _new_process()
    run_backup(loaded, store, "shop")
    assert _calls(log) == ["init", "backup", "version", "forget"]

    # Later runs (new processes): the repository and the version are known.
    for _ in range(2):
        _new_process()
        run_backup(loaded, store, "shop")
        assert _calls(log) == ["backup", "forget"]

    # A new restic binary (another mtime): its version is asked again, once.
    os.utime(wrapper, ns=(0, os.stat(wrapper).st_mtime_ns + 10**9))
    _new_process()
    run_backup(loaded, store, "shop")
    assert _calls(log) == ["backup", "version", "forget"]
    assert len(list_snapshots(loaded, "shop")) == 3


def test_a_known_repository_that_is_gone_is_created_again(
    tmp_path, restic_bin, config_factory, store_for
) -> None:
    wrapper, log = _spy(tmp_path, restic_bin)
    repo = tmp_path / "repo"
    loaded = config_factory(
        {
            "repository": str(repo),
            "paths": [str(make_source(tmp_path))],
            "restic": str(wrapper),
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    store = store_for(loaded)
    run_backup(loaded, store, "shop")
    assert _calls(log) == ["init", "backup"]
    shutil.rmtree(repo)
    result = run_backup(loaded, store, "shop")
    assert result.ok, result.error
    # The backup failed on "no repository", then init, then the backup again.
    assert _calls(log) == ["backup", "init", "backup"]
    assert len(list_snapshots(loaded, "shop")) == 1


def test_without_a_state_the_repository_is_created_when_missing(
    tmp_path, restic_bin, config_factory
) -> None:
    wrapper, log = _spy(tmp_path, restic_bin)
    loaded = config_factory(
        {
            "repository": str(tmp_path / "repo"),
            "paths": [str(make_source(tmp_path))],
            "restic": str(wrapper),
        }
    )
    assert run_backup(loaded, None, "shop").ok
    assert run_backup(loaded, None, "shop").ok
    assert _calls(log) == ["init", "backup", "init", "backup"]
