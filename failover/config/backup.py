"""Config models of a site's backup set (`sites.NAME.backup`).

Kept apart from models.py so that the backup feature owns its keys; models.py imports
`BackupSet` from here (this module imports nothing from models.py: no import cycle).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from failover.config.base import Model
from failover.config.heartbeat import Ping
from failover.config.types import Duration, Secret

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SUBSET = re.compile(r"^(\d+(\.\d+)?%|\d+/\d+|\d+[kKmMgGtT]?)$")
_DUMP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


class Retention(Model):
    """How many snapshots `restic forget` keeps; unset keys keep nothing by that rule."""

    last: int | None = Field(None, ge=1, description="Keep the newest N snapshots.", examples=[7])
    hourly: int | None = Field(
        None, ge=1, description="Keep the last snapshot of each of the last N hours.", examples=[24]
    )
    daily: int | None = Field(
        None, ge=1, description="Keep the last snapshot of each of the last N days.", examples=[14]
    )
    weekly: int | None = Field(
        None, ge=1, description="Keep the last snapshot of each of the last N weeks.", examples=[8]
    )
    monthly: int | None = Field(
        None,
        ge=1,
        description="Keep the last snapshot of each of the last N months.",
        examples=[12],
    )
    yearly: int | None = Field(
        None, ge=1, description="Keep the last snapshot of each of the last N years.", examples=[3]
    )

    @model_validator(mode="after")
    def _something(self) -> Retention:
        if all(getattr(self, k) is None for k in type(self).model_fields):
            raise ValueError(
                "retention keeps nothing: set at least one of last, hourly, "
                "daily, weekly, monthly, yearly"
            )
        return self


class _DumpBase(Model):
    dump_name: str | None = Field(
        None,
        description="File name of the dump inside the snapshot (under /failover-dumps/); "
        "defaults to TYPE-NAME.sql.",
        examples=["shop.sql"],
    )
    command: str | None = Field(
        None,
        description="Replace the dump command entirely (run by /bin/sh where the source is; "
        "its standard output is the dump). The password, if any, is still passed in the "
        "environment.",
        examples=["sudo -u postgres pg_dump shop"],
    )
    extra_args: list[str] = Field(
        default_factory=list,
        description="Extra arguments for the dump program.",
        examples=[["--exclude-table=sessions"]],
    )

    @field_validator("dump_name")
    @classmethod
    def _dump_name(cls, value: str | None) -> str | None:
        if value is not None and not _DUMP_NAME.match(value):
            raise ValueError("dump_name must be a plain file name (letters, digits, _ . -)")
        return value


class PostgresDump(_DumpBase):
    type: Literal["postgres"] = Field(description="A PostgreSQL database dumped with pg_dump.")
    name: str = Field(description="Database name.", examples=["shop"])
    user: str | None = Field(None, description="Role to connect as.", examples=["postgres"])
    host: str | None = Field(
        None,
        description="Server host or unix socket directory; pg_dump's default when unset.",
        examples=["/var/run/postgresql"],
    )
    port: int | None = Field(None, ge=1, le=65535, description="Server port.", examples=[5432])
    password: Secret | None = Field(
        None,
        description="Password (passed as PGPASSWORD, never on a command line).",
        examples=["${PG_PASSWORD}"],
    )
    format: Literal["plain", "custom"] = Field(
        "plain",
        description="pg_dump format: plain SQL (deduplicates well) or custom (pg_restore).",
    )
    pg_dump: str = Field(
        "pg_dump",
        description="The pg_dump program.",
        examples=["/usr/lib/postgresql/15/bin/pg_dump"],
    )

    @property
    def label(self) -> str:
        return f"postgres-{self.name}"


class MysqlDump(_DumpBase):
    type: Literal["mysql", "mariadb"] = Field(
        description="A MySQL or MariaDB database dumped with mysqldump."
    )
    name: str = Field(description="Database name.", examples=["shop"])
    user: str | None = Field(None, description="User to connect as.", examples=["backup"])
    host: str | None = Field(None, description="Server host.", examples=["127.0.0.1"])
    port: int | None = Field(None, ge=1, le=65535, description="Server port.", examples=[3306])
    socket: str | None = Field(
        None, description="Unix socket path.", examples=["/run/mysqld/mysqld.sock"]
    )
    password: Secret | None = Field(
        None,
        description="Password (passed as MYSQL_PWD, never on a command line).",
        examples=["${MYSQL_PASSWORD}"],
    )
    mysqldump: str = Field(
        "mysqldump", description="The mysqldump program.", examples=["mariadb-dump"]
    )

    @property
    def label(self) -> str:
        return f"mysql-{self.name}"


class SqliteDump(_DumpBase):
    type: Literal["sqlite"] = Field(
        description="An SQLite database, dumped online (consistent, in one read transaction) "
        "as SQL text with the sqlite3 program."
    )
    path: str = Field(description="The database file.", examples=["/var/www/shop/app.db"])
    sqlite3: str = Field(
        "sqlite3", description="The sqlite3 program.", examples=["/usr/bin/sqlite3"]
    )

    @property
    def label(self) -> str:
        return "sqlite-" + re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.path).stem or "db")


DatabaseDump = Annotated[PostgresDump | MysqlDump | SqliteDump, Field(discriminator="type")]


class BackupSet(Model):
    repository: str = Field(
        description="The restic repository: a local path, sftp:user@host:/path, "
        "s3:https://host/bucket/prefix, rest:https://host/, or anything else restic accepts. "
        "Keep it off the primary's provider. Passed to restic in its environment, never on a "
        "command line (a rest: URL may hold credentials).",
        examples=["/var/backups/restic/shop", "s3:https://s3.example.net/backups/shop"],
    )
    password: Secret = Field(
        description="The repository password: ${ENV_VAR} or file:/path.",
        examples=["file:/etc/failover/restic.pass"],
    )
    env: dict[str, Secret] = Field(
        default_factory=dict,
        description="Extra environment for restic, such as the S3 or B2 credentials; each "
        "value is a secret reference.",
        examples=[{"AWS_ACCESS_KEY_ID": "${S3_KEY}", "AWS_SECRET_ACCESS_KEY": "${S3_SECRET}"}],
    )
    options: list[str] = Field(
        default_factory=list,
        description="Extended restic options (-o key=value), such as sftp.command.",
        examples=[["sftp.command=ssh -i /etc/failover/backup_key backup@vault -s sftp"]],
    )
    source: str = Field(
        "local",
        description="Where the data is: `local` (the machine the agent runs on) or the name of "
        "one of the site's endpoints with `ssh`, where restic then runs over SSH with the "
        "repository secrets passed through the SSH channel.",
        examples=["primary"],
    )
    paths: list[str] = Field(
        default_factory=list,
        description="Files and directories to back up, where the source is.",
        examples=[["/var/www/shop", "/etc/nginx"]],
    )
    exclude: list[str] = Field(
        default_factory=list,
        description="restic exclude patterns.",
        examples=[["*.tmp", "/var/www/shop/cache"]],
    )
    databases: list[DatabaseDump] = Field(
        default_factory=list,
        description="Database dumps, streamed into restic without a temporary file (one "
        "snapshot each, under /failover-dumps/). A dump that fails fails the backup.",
    )
    before: list[str] = Field(
        default_factory=list,
        description="Shell commands run before the backup, where the source is; a failure "
        "aborts the backup.",
        examples=[["systemctl stop shop-worker"]],
    )
    after: list[str] = Field(
        default_factory=list,
        description="Shell commands run after the backup (also after a failed one), where the "
        "source is.",
        examples=[["systemctl start shop-worker"]],
    )
    tags: list[str] = Field(
        default_factory=list, description="Extra snapshot tags.", examples=[["shop"]]
    )
    host: str | None = Field(
        None,
        description="Host name recorded in the snapshots; defaults to the site's name, "
        "so that snapshots stay one series when the source server changes.",
        examples=["shop-primary"],
    )
    every: Duration | None = Field(
        None, description="Back up this often (the agent runs it when due).", examples=["6h"]
    )
    at: list[str] = Field(
        default_factory=list,
        description="Back up daily at these times (HH:MM, the agent's local time); may be "
        "combined with `every`.",
        examples=[["03:30"]],
    )
    retry_after: Duration = Field(
        300.0,
        description="After a failed run, try again once this long has passed (a failed "
        "run never counts as done).",
        examples=["5m"],
    )
    retention: Retention | None = Field(
        None,
        description="Which snapshots to keep; `restic forget --prune` runs after each "
        "successful backup. Nothing is ever forgotten when unset.",
    )
    max_age: Duration = Field(
        26 * 3600.0,
        description="The recovery point objective: the backup is stale when its newest good "
        "snapshot is older than this.",
        examples=["26h"],
    )
    verify_every: Duration | None = Field(
        7 * 86400.0,
        description="Run `restic check` and a test restore this often (null: only "
        "by hand with `failover backup verify`).",
        examples=["7d"],
    )
    verify_sample: int = Field(
        20,
        ge=1,
        description="How many files a verification restores and compares byte for "
        "byte with the snapshot's content.",
        examples=[20],
    )
    check_read_data_subset: str | None = Field(
        None,
        description="Also read and verify this subset of the pack data on each "
        "verification (restic check --read-data-subset): 5%, 1/10, 500M.",
        examples=["5%"],
    )
    stale_lock_age: Duration | None = Field(
        None,
        description="Remove restic locks older than this even when restic cannot tell "
        "they are stale (a run killed on another host). restic's own rule (dead process on "
        "this host, or 30 minutes without refresh) always applies. At least 15m.",
        examples=["2h"],
    )
    timeout: Duration = Field(
        6 * 3600.0,
        description="Give up a restic command after this long (it is interrupted "
        "and leaves no lock).",
        examples=["6h"],
    )
    restic: str = Field(
        "restic", description="The restic program where it runs.", examples=["/usr/bin/restic"]
    )
    heartbeat: Ping | None = Field(
        None,
        description="Signal each backup run to a URL of yours: start when it begins, then "
        "its exit status (healthchecks.io /start and /<status>, Uptime Kuma push up/down).",
    )
    cache_dir: str | None = Field(
        None,
        description="restic's cache directory where it runs; restic's default when unset.",
        examples=["/var/cache/restic"],
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name.startswith("RESTIC_"):
                raise ValueError(
                    f"{name}: set the repository and password with `repository` "
                    "and `password`, not in env"
                )
        return value

    @field_validator("at")
    @classmethod
    def _times(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _TIME.match(item):
                raise ValueError(f"{item!r} is not a time of day as HH:MM")
        return value

    @field_validator("check_read_data_subset")
    @classmethod
    def _subset(cls, value: str | None) -> str | None:
        if value is not None and not _SUBSET.match(value):
            raise ValueError("expected a percentage (5%), a fraction (1/10) or a size (500M)")
        return value

    @field_validator("stale_lock_age")
    @classmethod
    def _lock_age(cls, value: float | None) -> float | None:
        if value is not None and value < 900:
            raise ValueError(
                "stale_lock_age must be at least 15m (restic refreshes live locks every 5 minutes)"
            )
        return value

    @model_validator(mode="after")
    def _something_to_back_up(self) -> BackupSet:
        if not self.paths and not self.databases:
            raise ValueError("a backup set needs paths or databases")
        labels = [d.dump_name or d.label for d in self.databases]
        if len(set(labels)) != len(labels):
            raise ValueError("two databases dump to the same name: set dump_name")
        return self


__all__ = ["BackupSet", "DatabaseDump", "MysqlDump", "PostgresDump", "Retention", "SqliteDump"]
