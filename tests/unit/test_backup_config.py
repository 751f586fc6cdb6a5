"""The backup set's config: validation with file:line, source cross-check, secrets."""

from __future__ import annotations

import pytest
import yaml

from failover.config.load import parse_config
from failover.errors import ConfigError, RemoteError
from providers.remote import Remote, encode_env


def load(backup, endpoints=None):
    data = {
        "sites": {
            "shop": {
                "hostname": "shop.example.test",
                "endpoints": endpoints or {"primary": {"address": "127.0.0.1"}},
                "checks": [{"type": "tcp", "port": 80}],
                "backup": backup,
            }
        }
    }
    return parse_config(
        yaml.safe_dump(data, sort_keys=False), "f.yaml", env={"PW": "s3cret-pass", "KEY": "k"}
    )


def test_full_example_loads():
    loaded = load(
        {
            "repository": "s3:http://127.0.0.1:9000/b",
            "password": "${PW}",
            "env": {"AWS_ACCESS_KEY_ID": "${KEY}"},
            "source": "primary",
            "paths": ["/srv"],
            "databases": [
                {"type": "postgres", "name": "shop", "password": "${PW}"},
                {"type": "mysql", "name": "shop"},
                {"type": "sqlite", "path": "/a.db"},
            ],
            "every": "6h",
            "at": ["03:30"],
            "retention": {"last": 7, "daily": 14},
            "max_age": "26h",
            "verify_every": "7d",
            "check_read_data_subset": "5%",
            "stale_lock_age": "2h",
        },
        endpoints={"primary": {"address": "127.0.0.1", "ssh": {"port": 2222}}},
    )
    bset = loaded.config.sites["shop"].backup
    assert bset.every == 6 * 3600 and bset.max_age == 26 * 3600
    assert bset.password.reveal() == "s3cret-pass"
    assert "s3cret-pass" not in repr(bset)
    assert [d.label for d in bset.databases] == ["postgres-shop", "mysql-shop", "sqlite-a"]


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"paths": ["/x"], "source": "nowhere"}, "neither `local` nor one of the endpoints"),
        ({"paths": ["/x"], "source": "primary"}, "that endpoint has no `ssh`"),
        ({}, "needs paths or databases"),
        ({"paths": ["/x"], "retention": {}}, "retention keeps nothing"),
        ({"paths": ["/x"], "at": ["25:00"]}, "HH:MM"),
        ({"paths": ["/x"], "env": {"RESTIC_PASSWORD": "${PW}"}}, "not in env"),
        ({"paths": ["/x"], "stale_lock_age": "5m"}, "at least 15m"),
        ({"paths": ["/x"], "check_read_data_subset": "lots"}, "percentage"),
        ({"paths": ["/x"], "unknown": 1}, "unknown key"),
        (
            {
                "databases": [
                    {"type": "sqlite", "path": "/a.db"},
                    {"type": "sqlite", "path": "/b/a.db"},
                ]
            },
            "same name",
        ),
    ],
)
def test_invalid(backup, message):
    with pytest.raises(ConfigError) as info:
        load({"repository": "/r", "password": "${PW}", **backup})
    assert message in str(info.value)
    assert "f.yaml:" in str(info.value)


def test_remote_never_puts_secrets_on_the_command_line():
    class Target:
        host = None
        port = 2222
        user = "backup"
        key = "/k"
        known_hosts = "/kh"
        options = ["ConnectTimeout=5"]

    remote = Remote(Target(), "127.0.0.1")
    argv = remote.ssh_argv(
        remote.command_line(["restic", "backup", "/srv"], env={"RESTIC_CACHE_DIR": "/c"})
    )
    assert "BatchMode=yes" in argv and "StrictHostKeyChecking=yes" in argv
    assert argv[argv.index("-l") + 1] == "backup" and "127.0.0.1" in argv
    assert "s3cret" not in " ".join(argv)
    assert encode_env({"RESTIC_PASSWORD": "s3cret"}) == b"RESTIC_PASSWORD=s3cret\n\n"
    with pytest.raises(RemoteError):
        encode_env({"X": "a\nb"})
    with pytest.raises(RemoteError):
        encode_env({"bad name": "x"})
