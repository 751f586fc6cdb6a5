"""The config file's models. Each field's description is the documentation: it drives the
JSON schema in configs/, `failover init`'s sample and the README's key reference."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from failover.config.backup import BackupSet
from failover.config.base import Model, Name
from failover.config.compute import ComputeTemplate
from failover.config.coordination import Coordination
from failover.config.dns import DnsProviderConfig, SiteDns, check_value, located_error
from failover.config.drill import Drill
from failover.config.heartbeat import Ping
from failover.config.maintenance import MaintenanceWindow
from failover.config.show import MetricsConfig, StatusPageConfig
from failover.config.types import Duration, Secret
from failover.events import EventKind

# --- checks -------------------------------------------------------------------------------


class CheckBase(Model):
    name: Name | None = Field(
        None, description="A name for this check in status and logs; defaults to its type and port."
    )
    timeout: Duration = Field(
        5.0, description="Give up on one probe after this long.", examples=["5s"]
    )
    host: str | None = Field(
        None,
        description="Canaries only: the address to probe. Site checks always probe the "
        "endpoint's own address.",
    )

    def for_endpoint(self, endpoint: Endpoint) -> Any:
        """This check as it probes `endpoint` (an ssh check takes the endpoint's SSH port)."""
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        port = getattr(self, "port", None)
        return f"{self.type}:{port}" if port else str(self.type)  # type: ignore[attr-defined]


_STATUS = re.compile(r"^([1-5])xx$|^(\d{3})(?:-(\d{3}))?$")


class HttpCheck(CheckBase):
    type: Literal["http", "https"] = Field(description="HTTP or HTTPS request to the endpoint.")
    port: int | None = Field(None, ge=1, le=65535, description="Port; 80 for http, 443 for https.")
    path: str = Field("/", description="Path (and query) to request.", examples=["/healthz"])
    method: Literal["GET", "HEAD"] = Field("GET", description="HTTP method.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    expect_status: list[int | str] = Field(
        default_factory=lambda: list[int | str](["2xx", "3xx"]),
        description="Accepted status codes: numbers, ranges such as 200-204, or classes such as 2xx.",
        examples=[[200, "301-302"]],
    )
    expect_body: str | None = Field(
        None, description="A substring the body must contain.", examples=["<title>Shop"]
    )
    expect_body_regex: str | None = Field(
        None,
        description="A regular expression the body must match somewhere (RE2 syntax: "
        "matching takes linear time whatever the pattern; no backreferences or lookaround).",
    )
    tls_verify: bool = Field(
        True, description="Verify the certificate against the site's hostname (https)."
    )
    tls_expiry_warn: Duration = Field(
        14 * 86400, description="Warn when the certificate expires within this long (https)."
    )
    max_latency: Duration | None = Field(
        None, description="Count the probe as failed when the response takes longer than this."
    )

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int | str]) -> list[int | str]:
        for item in value:
            if isinstance(item, int):
                if not 100 <= item <= 599:
                    raise ValueError(f"status {item} is not between 100 and 599")
            elif not _STATUS.match(item):
                raise ValueError(f"{item!r} is not a status, a range (200-204) or a class (2xx)")
        return value

    @field_validator("expect_body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            from failover.watch.probes.regex import RegexError, compile_bounded

            try:
                compile_bounded(value)
            except RegexError as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def status_ok(self, status: int) -> bool:
        for item in self.expect_status:
            if isinstance(item, int):
                if status == item:
                    return True
                continue
            m = _STATUS.match(item)
            assert m
            if m.group(1):
                if status // 100 == int(m.group(1)):
                    return True
            else:
                low = int(m.group(2))
                high = int(m.group(3) or low)
                if low <= status <= high:
                    return True
        return False

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.type == "https" else 80)


class TcpCheck(CheckBase):
    type: Literal["tcp"] = Field(description="A TCP connection to a port.")
    port: int = Field(ge=1, le=65535, description="Port to connect to.", examples=[22])


class IcmpCheck(CheckBase):
    type: Literal["icmp"] = Field(description="ICMP echo (ping).")
    count: int = Field(3, ge=1, le=20, description="Echo requests per probe.")
    max_loss: float = Field(
        0.5, ge=0, le=1, description="Fail when more than this fraction of the echoes is lost."
    )


class DnsCheck(CheckBase):
    type: Literal["dns"] = Field(description="A DNS server answers a query.")
    port: int = Field(53, ge=1, le=65535, description="DNS port.")
    query: str = Field(description="The name to ask for.", examples=["example.com"])
    rdtype: str = Field("A", description="Record type to ask for.")
    protocol: Literal["udp", "tcp"] = Field("udp", description="Transport.")
    expect: list[str] | None = Field(
        None, description="Values the answer must contain; any answer passes when unset."
    )


class SshCheck(CheckBase):
    type: Literal["ssh"] = Field(
        description="The SSH server answers with its banner (SSH-2.0-...); it does not log in."
    )
    port: int | None = Field(
        None, ge=1, le=65535, description="Port; defaults to the endpoint's ssh.port (22)."
    )

    def for_endpoint(self, endpoint: Endpoint) -> Any:
        if self.port is not None:
            return self
        return self.model_copy(update={"port": endpoint.ssh.port if endpoint.ssh else 22})


Check = Annotated[
    HttpCheck | TcpCheck | IcmpCheck | DnsCheck | SshCheck, Field(discriminator="type")
]


# --- sites ----------------------------------------------------------------------------------


class SshTarget(Model):
    host: str | None = Field(
        None, description="Host to SSH to; defaults to the endpoint's address."
    )
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    user: str = Field("root", description="SSH user.")
    key: Path | None = Field(None, description="Private key file (kept out of logs and state).")
    known_hosts: Path | None = Field(
        None, description="known_hosts file to check the host key against."
    )
    options: list[str] = Field(
        default_factory=list, description="Extra `-o` options for ssh, such as ConnectTimeout=5."
    )


class Endpoint(Model):
    address: str = Field(
        description="The server's IP address. Probes go here directly, never through DNS.",
        examples=["203.0.113.10"],
    )
    description: str | None = Field(None, description="Free text shown in status.")
    ssh: SshTarget | None = Field(None, description="How to reach the server over SSH.")
    dns_values: dict[str, str] = Field(
        default_factory=dict,
        description="Per managed record type (A, AAAA, CNAME), the value this endpoint gives "
        "it; A defaults to the address when it is IPv4, AAAA when IPv6.",
    )

    @field_validator("address")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address (probes never go through DNS)"
            ) from None

    def dns_value(self, rtype: str) -> str | None:
        if rtype in self.dns_values:
            return self.dns_values[rtype]
        ip = ipaddress.ip_address(self.address)
        if rtype == "A" and ip.version == 4:
            return self.address
        if rtype == "AAAA" and ip.version == 6:
            return self.address
        return None


class FailureWindow(Model):
    failures: int = Field(ge=1, description="This many failed rounds ...")
    within: Duration = Field(description="... within this long declare the endpoint down.")


class Policy(Model):
    interval: Duration = Field(30.0, description="Time between probe rounds.", examples=["30s"])
    down_after: Duration = Field(
        180.0, description="Declare down after failing continuously for this long.", examples=["3m"]
    )
    up_after: Duration = Field(
        300.0,
        description="Declare up again after succeeding continuously for this long "
        "(at least two successes are always needed).",
        examples=["5m"],
    )
    window: FailureWindow | None = Field(
        None,
        description="Also declare down on intermittent failures: N failed rounds within a window.",
    )
    cooldown: Duration = Field(
        1800.0, description="Minimum time between two automatic switches of one site."
    )
    auto_failover: bool = Field(
        False,
        description="Switch to a healthy standby on its own when the active endpoint is down.",
    )
    auto_failback: bool = Field(
        False,
        description="Switch back to the primary on its own once it has been up for up_after "
        "(off: failback is a decision for a person).",
    )

    @model_validator(mode="after")
    def _sane(self) -> Policy:
        if self.interval <= 0:
            raise ValueError("interval must be more than 0")
        return self


class SiteFailover(Model):
    """How a switch to another endpoint is carried out (automatic failover, `switch`,
    `migrate`)."""

    standby: Literal["cold", "warm"] = Field(
        "cold",
        description="cold: the newest snapshot is restored onto the standby when failing over; "
        "warm: the standby is kept current by other means (or by warm_refresh) and the "
        "restore step is skipped.",
    )
    warm_refresh: Duration | None = Field(
        None,
        description="With a warm standby: restore the newest snapshot onto the standby this "
        "often, so that it is current when it is needed.",
        examples=["1h"],
    )
    restore_target: str = Field(
        "/",
        description="Where snapshots are restored on the target endpoint: restic puts "
        "/srv/shop from the snapshot at <restore_target>/srv/shop.",
    )
    after_restore: list[str] = Field(
        default_factory=list,
        description="Shell commands run on the target endpoint over SSH after the restore "
        "(load the database dump, restart services), in order; any failure stops the run.",
        examples=[["systemctl restart nginx"]],
    )
    fence: list[str] = Field(
        default_factory=list,
        description="Shell commands run on the old primary over SSH when it comes back after a "
        "failover, so that it stops serving an old copy (for example, stop its web server).",
        examples=[["systemctl stop nginx"]],
    )
    max_backup_age: Duration | None = Field(
        None,
        description="Refuse to fail over onto a snapshot older than this; defaults to the "
        "backup set's max_age.",
    )
    allow_stale_backup: bool = Field(
        False,
        description="Fail over even when the newest snapshot is older than max_backup_age "
        "(an old copy beats no site at all; your call).",
    )
    standby_checks: list[Check] = Field(
        default_factory=lambda: list[Check]([SshCheck(type="ssh")]),
        description="What a cold standby must pass to be ready for a failover, before anything "
        "is restored onto it (the site's checks may fail on a bare server; they are required "
        "after the restore, before DNS moves). An ssh check is always part of it (added when "
        "missing): the restore runs over SSH. Add, for example, {type: tcp, port: 443}, or an "
        "http check with expect_status [200-499] for 'the web server answers at all'.",
        examples=[[{"type": "ssh"}, {"type": "tcp", "port": 443}]],
    )
    recheck_timeout: Duration = Field(
        60.0,
        description="How long the target endpoint has to pass the site's checks after the restore.",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        description="How often the agent retries a failed run before it gives up and "
        "asks a person.",
    )
    command_timeout: Duration = Field(
        600.0, description="Timeout of each after_restore or fence command."
    )
    drill: Drill | None = Field(
        None,
        description="Rehearse a failover onto the standby (on a schedule with `every`, or by "
        "hand with `failover drill SITE`) and measure RTO and RPO; DNS and the active endpoint "
        "are never touched.",
    )

    @field_validator("standby_checks")
    @classmethod
    def _ssh_always(cls, checks: list[Any]) -> list[Any]:
        for check in checks:
            if check.host is not None:
                raise ValueError(
                    "standby checks probe the standby's address; `host` is for canaries"
                )
        if not any(c.type == "ssh" for c in checks):
            checks = [SshCheck(type="ssh"), *checks]
        return checks


class Site(Model):
    hostname: str = Field(
        description="The name users reach the site by: sent as HTTP Host and TLS SNI.",
        examples=["shop.example.com"],
    )
    endpoints: dict[Name, Endpoint] = Field(
        description="The servers that can serve the site, by name (primary, standby, ...).",
        min_length=1,
    )
    active: Name | None = Field(
        None, description="The endpoint that serves the site at first; defaults to the first one."
    )
    checks: list[Check] = Field(
        min_length=1, description="What to probe on every endpoint; all must pass for it to be up."
    )
    policy: Policy = Field(
        default_factory=lambda: Policy(), description="Thresholds and switching rules."
    )
    failover: SiteFailover = Field(
        default_factory=lambda: SiteFailover(),
        description="How a switch to another endpoint is carried out.",
    )
    dns: SiteDns | None = Field(
        None,
        description="The DNS records that point users at the active endpoint, and where "
        "they are hosted; unset: the tool never touches this site's DNS.",
    )
    backup: BackupSet | None = Field(
        None,
        description="What to back up for this site, from where, into which restic "
        "repository, how long to keep it and how fresh it must be; unset: no backups.",
    )
    notify: SiteNotify | None = Field(
        None,
        description="This site's own notification targets, added to the global list (or "
        "replacing it with replace: true).",
    )
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list,
        description="Maintenance windows: weekly ({days, at, duration}) or once ({from, "
        "until}). The site is probed but nothing is declared down, switched or notified, and "
        "the time does not count in uptime. `failover pause` does the same by hand.",
        examples=[[{"days": ["sun"], "at": "03:00", "duration": "1h", "reason": "updates"}]],
    )

    @model_validator(mode="after")
    def _backup_source(self) -> Site:
        if self.backup is None or self.backup.source == "local":
            return self
        endpoint = self.endpoints.get(self.backup.source)
        if endpoint is None:
            raise ValueError(
                f"backup.source {self.backup.source!r} is neither `local` nor one of the endpoints"
            )
        if endpoint.ssh is None:
            raise ValueError(f"backup.source {self.backup.source!r}: that endpoint has no `ssh`")
        return self

    @model_validator(mode="after")
    def _drill_target(self) -> Site:
        drill = self.failover.drill
        if drill is not None and drill.to is not None and drill.to not in self.endpoints:
            raise located_error(
                ("failover", "drill", "to"),
                f"{drill.to!r} is not one of the endpoints ({', '.join(self.endpoints)})",
            )
        return self

    @model_validator(mode="after")
    def _dns_values(self) -> Site:
        if self.dns is None:
            return self
        for name, endpoint in self.endpoints.items():
            for record in self.dns.records:
                value = endpoint.dns_value(record.type)
                if value is None:
                    raise located_error(
                        ("endpoints", name),
                        f"gives no value for the {record.type} record {record.name} "
                        f"(set dns_values.{record.type})",
                    )
                problem = check_value(record.type, value)
                if problem:
                    raise located_error(
                        ("endpoints", name, "dns_values"), f"{record.type} record: {problem}"
                    )
        return self

    @field_validator("checks")
    @classmethod
    def _no_host(cls, checks: list[Any]) -> list[Any]:
        for check in checks:
            if check.host is not None:
                raise ValueError(
                    "site checks probe each endpoint's address; `host` is for canaries"
                )
        return checks

    @model_validator(mode="after")
    def _consistent(self) -> Site:
        if self.active is not None and self.active not in self.endpoints:
            raise ValueError(f"active endpoint {self.active!r} is not one of the endpoints")
        slow = [c.label for c in self.checks if c.timeout >= self.policy.interval]
        if slow:
            raise ValueError(
                f"check timeout must be shorter than policy.interval ({', '.join(slow)})"
            )
        return self

    @property
    def initial_active(self) -> str:
        return self.active or next(iter(self.endpoints))


_CANARY_HOST = Field(
    description="The address or name to probe: something unrelated to your sites, such as a "
    "public resolver.",
    examples=["9.9.9.9"],
)


class HttpCanary(HttpCheck):
    host: str = _CANARY_HOST


class TcpCanary(TcpCheck):
    host: str = _CANARY_HOST


class IcmpCanary(IcmpCheck):
    host: str = _CANARY_HOST


class DnsCanary(DnsCheck):
    host: str = _CANARY_HOST


CanaryCheck = Annotated[
    HttpCanary | TcpCanary | IcmpCanary | DnsCanary, Field(discriminator="type")
]


class NotifyTarget(Model):
    url: Secret = Field(
        description="An apprise URL (mailto://, slack://, ntfy://, json://, ...); it usually "
        "holds a token, so it is a secret: ${ENV_VAR} or file:/path.",
        examples=["${FAILOVER_NOTIFY_URL}"],
    )
    events: list[EventKind] | None = Field(
        None, description="Which events to send; all when unset."
    )
    remind_every: Duration | None = Field(
        None,
        description="While an endpoint stays down, remind this target this often (down "
        "events); unset: one message per outage.",
        examples=["1h"],
    )


class SiteNotify(Model):
    """A site's own notification targets."""

    targets: list[NotifyTarget] = Field(
        default_factory=list,
        description="Where this site's events go, besides (or instead of) the global notify list.",
    )
    replace: bool = Field(
        False,
        description="Send this site's events only to its own targets, not to the global list.",
    )


class Heartbeat(Ping):
    """The agent's own pulse: a URL of yours (healthchecks.io, Uptime Kuma push, cronitor)
    signalled after rounds, so that someone else notices when the watcher itself dies."""

    every: Duration = Field(60.0, description="At most this often.", examples=["1m"])


class Config(Model):
    state: Path | None = Field(
        None,
        description="SQLite state file; defaults to /var/lib/failover/state.db as root, else "
        "the XDG state directory. Relative paths are relative to the config file.",
    )
    canaries: list[CanaryCheck] = Field(
        default_factory=list,
        description="Probes of unrelated things (public resolvers, well-known sites). When fewer "
        "than canary_min_ok pass, the agent's own network is down and nothing is declared down.",
    )
    canary_min_ok: int = Field(
        1, ge=1, description="How many canaries must pass for a round to count."
    )
    notify: list[NotifyTarget] = Field(
        default_factory=list, description="Where to send notifications."
    )
    heartbeat: Heartbeat | None = Field(
        None,
        description="Ping a URL of yours after rounds, so that the agent's own death is "
        "noticed by someone else.",
    )
    observation_retention: Duration = Field(
        90 * 86400, description="Keep probe results this long (transitions and incidents are kept)."
    )
    dns_providers: dict[Name, DnsProviderConfig] = Field(
        default_factory=dict,
        description="DNS hosts by name, with credentials by reference; sites name one in "
        "dns.provider.",
    )
    compute_templates: dict[Name, ComputeTemplate] = Field(
        default_factory=dict,
        description="Servers to create through a cloud API (libcloud compute), by name, with "
        "credentials by reference; `migrate SITE --provision NAME` uses one.",
    )
    metrics: MetricsConfig | None = Field(
        None,
        description="Prometheus metrics: served by the agent, or written to a textfile "
        "after each round; off when unset.",
    )
    status_page: StatusPageConfig | None = Field(
        None,
        description="A static status page published to an S3-compatible bucket; off when unset.",
    )
    coordination: Coordination | None = Field(
        None,
        description="Several watchers in different places decide together and one leader "
        "acts, through an S3 bucket or an etcd cluster; unset: this agent decides alone.",
    )
    sites: dict[Name, Site] = Field(description="The sites to watch, by name.", min_length=1)

    @model_validator(mode="after")
    def _status_page_sites(self) -> Config:
        page = self.status_page
        unknown = [s for s in (page.sites or []) if s not in self.sites] if page else []
        if unknown:
            raise located_error(
                ("status_page", "sites"), f"not a site of this config: {', '.join(unknown)}"
            )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_round(self) -> Config:
        c = self.coordination
        fastest = min(s.policy.interval for s in self.sites.values())
        if c is not None and c.lease_ttl - c.margin <= fastest:
            raise located_error(
                ("coordination", "lease_ttl"),
                f"lease_ttl minus its margin ({c.lease_ttl - c.margin:g}s) must be longer "
                f"than the fastest site interval ({fastest:g}s): the leader renews once a round",
            )
        return self

    @model_validator(mode="after")
    def _enough_canaries(self) -> Config:
        if self.canaries and self.canary_min_ok > len(self.canaries):
            raise ValueError("canary_min_ok is more than the number of canaries")
        return self

    @field_validator("sites")
    @classmethod
    def _dns_providers_exist(cls, sites: dict[str, Site], info: ValidationInfo) -> dict[str, Site]:
        if "dns_providers" not in info.data:  # invalid itself: reported on its own
            return sites
        providers = info.data["dns_providers"]
        for name, site in sites.items():
            if site.dns is not None and site.dns.provider not in providers:
                known = ", ".join(sorted(providers)) or "none configured"
                raise located_error(
                    (name, "dns", "provider"),
                    f"{site.dns.provider!r} is not one of dns_providers ({known})",
                )
        return sites
