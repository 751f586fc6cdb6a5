"""Config model of a site's drills (`sites.NAME.failover.drill`): rehearsals of a failover
onto the standby that never touch DNS or the active endpoint.

Kept apart from models.py so that the drill feature owns its keys; models.py imports `Drill`
from here (this module imports nothing from models.py: no import cycle).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from failover.config.base import Model, Name
from failover.config.types import Duration

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Drill(Model):
    """A rehearsal of a failover: preflight, restore the newest snapshot onto the standby
    (a warm standby: check that it is current), run the after-restore commands, check the
    standby with the site's checks; measure RTO and RPO. Never DNS, never fencing, never the
    active endpoint."""

    every: Duration | None = Field(
        None,
        description="Run a drill this often (the agent does it when due); unset: only by hand "
        "with `failover drill SITE`.",
        examples=["7d"],
    )
    at: str | None = Field(
        None,
        description="With `every`: start the drill at this time of day (HH:MM, the agent's "
        "local time), on the first day it is due.",
        examples=["04:00"],
    )
    to: Name | None = Field(
        None,
        description="The endpoint to drill onto; defaults to the first endpoint that is not "
        "the site's initial active one. No drill runs while it is the active endpoint.",
        examples=["standby"],
    )
    cleanup: list[str] = Field(
        default_factory=list,
        description="Shell commands run on the standby over SSH when the drill ends (passed or "
        "failed, not when it is abandoned for a real failover), to leave a cold standby as the "
        "drill found it, for example stop the web server it started. The standby's data is "
        "never deleted by the tool.",
        examples=[["systemctl stop nginx php8.2-fpm"]],
    )
    notify_on_pass: bool = Field(
        False,
        description="Also notify when a drill passes (a failed drill always notifies, with "
        "what failed and the step's output).",
    )
    sample: int = Field(
        20,
        ge=1,
        le=1000,
        description="A warm standby is current when a sample of this many files of the newest "
        "snapshot is on it with the same content (or changed there after the snapshot).",
    )

    @field_validator("at")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and not _TIME.match(value):
            raise ValueError(f"{value!r} is not a time of day as HH:MM")
        return value

    @model_validator(mode="after")
    def _every(self) -> Drill:
        if self.at is not None and self.every is None:
            raise ValueError("`at` says when in the day; set `every` too (1d for a daily drill)")
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be more than 0")
        return self


__all__ = ["Drill"]
