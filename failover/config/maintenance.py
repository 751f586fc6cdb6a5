"""Maintenance windows of a site: a weekly recurring window (`days`, `at`, `duration`) or
a date range (`from`, `until`). While one is open the site is probed and recorded as in
maintenance: nothing is declared down, switched or notified, and the time does not count
in uptime. Times are in `timezone` (an IANA name), else the machine's local time.
Whether a window is open now is decided in failover/maintenance/window.py (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from failover.config.base import Model
from failover.config.types import Duration

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
WEEK = 7 * 86400.0


def _timezone(value: str | None) -> str | None:
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)"
        ) from None
    return value


class WeeklyWindow(Model):
    """Every week on `days` at `at` for `duration` (a window may run past midnight)."""

    days: list[Day] = Field(
        default_factory=lambda: list[Day](DAYS),  # type: ignore[arg-type]
        min_length=1,
        description="The days the window opens (mon ... sun); every day when unset.",
        examples=[["sun"]],
    )
    at: str = Field(description="When it opens (HH:MM).", examples=["03:00"])
    duration: Duration = Field(description="How long it stays open.", examples=["1h"])
    timezone: str | None = Field(
        None, description="IANA time zone of `at`; the machine's local time when unset."
    )
    reason: str | None = Field(None, description="Shown in status, logs and the report.")

    @field_validator("at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"expected a time of day such as 03:00, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _timezone(value)

    @field_validator("duration")
    @classmethod
    def _length(cls, value: float) -> float:
        if not 0 < value < WEEK:
            raise ValueError("a weekly window lasts more than 0 and less than a week")
        return value

    @property
    def minutes(self) -> int:
        hours, minutes = self.at.split(":")
        return int(hours) * 60 + int(minutes)


class DateWindow(Model):
    """Once, from one time to another."""

    from_: datetime = Field(
        alias="from",
        description="When it opens: YYYY-MM-DD HH:MM (or an ISO 8601 time).",
        examples=["2026-12-24 08:00"],
    )
    until: datetime = Field(description="When it closes.", examples=["2026-12-24 18:00"])
    timezone: str | None = Field(
        None, description="IANA time zone of from/until without an offset; local time when unset."
    )
    reason: str | None = Field(None, description="Shown in status, logs and the report.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _timezone(value)

    @model_validator(mode="after")
    def _order(self) -> DateWindow:
        a, b = self.from_, self.until
        if (a.tzinfo is None) != (b.tzinfo is None):
            raise ValueError("give a UTC offset on both `from` and `until`, or on neither")
        if b <= a:
            raise ValueError("`until` must be after `from`")
        return self


def _window_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "dates" if ("from" in value or "until" in value) else "weekly"
    return "dates" if isinstance(value, DateWindow) else "weekly"


MaintenanceWindow = Annotated[
    Annotated[WeeklyWindow, Tag("weekly")] | Annotated[DateWindow, Tag("dates")],
    Discriminator(_window_kind),
]
