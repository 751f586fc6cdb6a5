"""Charts drawn as inline SVG, for the HTML report and the status page. Pure: the caller
hands in plain data (buckets of probe results, bands, marks) and gets SVG text back; no
fonts, scripts or anything else fetched from outside.

A timeline is three things over one time axis: an availability strip (each bucket of
rounds green when every round passed, red when every round failed, amber in between, grey
when nothing was watched), the probe latency under it (the mean per bucket, and the
slowest as a faint line), and on top of both the bands (the outage, from the first failed
probe to recovery) and the numbered marks (declared down, each step of the run, ...).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from failover.humanize import duration, utc_offset

COLORS = {
    "ok": "#2e7d32",
    "fail": "#c62828",
    "partial": "#f9a825",
    "none": "#e0e0e0",
    "latency": "#1565c0",
    "latency_max": "#90caf9",
    "outage": "#c62828",
    "mark": "#37474f",
    "grid": "#eceff1",
    "text": "#37474f",
}

_STEPS: tuple[int, ...] = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_STEPS += (86400, 172800, 604800, 1209600, 2592000)


@dataclass(frozen=True)
class Bucket:
    """The rounds of one endpoint inside [start, end)."""

    start: float
    end: float
    rounds: int = 0  # conclusive rounds (the agent's network was fine)
    failed: int = 0  # of those, rounds in which a check failed
    inconclusive: int = 0  # rounds with the agent's own network down
    latency_avg: float | None = None  # ms, mean over the probes that got an answer
    latency_max: float | None = None

    @property
    def state(self) -> str:
        if self.rounds == 0:
            return "none"
        if self.failed == 0:
            return "ok"
        return "fail" if self.failed == self.rounds else "partial"


@dataclass(frozen=True)
class Band:
    start: float
    end: float
    kind: str  # "outage" (drawn red), "unwatched" (hatched grey)
    label: str


@dataclass(frozen=True)
class Mark:
    ts: float
    label: str


@dataclass(frozen=True)
class Timeline:
    title: str
    start: float
    end: float
    buckets: Sequence[Bucket]
    bands: Sequence[Band] = ()
    marks: Sequence[Mark] = ()


@dataclass(frozen=True)
class _Frame:
    start: float
    end: float
    left: float
    right: float

    def x(self, ts: float) -> float:
        span = max(self.end - self.start, 1e-9)
        ts = min(max(ts, self.start), self.end)
        return round(self.left + (ts - self.start) / span * (self.right - self.left), 2)


WIDTH = 900
_LEFT, _RIGHT = 58.0, WIDTH - 14.0
_MARK_Y, _STRIP_Y, _STRIP_H = 12.0, 26.0, 22.0
_PLOT_Y, _PLOT_H = 60.0, 130.0
_AXIS_Y = _PLOT_Y + _PLOT_H
HEIGHT = int(_AXIS_Y + 26)


def timeline_svg(t: Timeline) -> str:
    """The timeline as one <svg> element that scales to its container's width."""
    f = _Frame(t.start, t.end, _LEFT, _RIGHT)
    peak = max(
        [b.latency_max or b.latency_avg or 0.0 for b in t.buckets if b.latency_avg is not None]
        or [0.0]
    )
    top = nice_ceiling(peak)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 {WIDTH} '
        f'{HEIGHT}" width="100%" role="img" aria-label="{escape(t.title)}" '
        f'data-start="{t.start:.3f}" data-end="{t.end:.3f}" '
        f'font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(t.title)}</title>",
    ]
    parts += _grid(f, top)
    parts += _strip(f, t.buckets)
    parts += _latency(f, t.buckets, top)
    parts += _bands(f, t.bands)
    parts += _marks(f, t.marks)
    parts += _time_axis(f)
    parts.append("</svg>")
    return "\n".join(parts)


def nice_ceiling(value: float) -> float:
    """A round number at or above `value` for an axis' top: 1, 2, 2.5, 5 x 10^n (ms)."""
    if value <= 0:
        return 10.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _grid(f: _Frame, top: float) -> list[str]:
    out = [
        f'<text x="{_LEFT - 6}" y="{_STRIP_Y + _STRIP_H - 7}" text-anchor="end" '
        f'fill="{COLORS["text"]}">up?</text>'
    ]
    for frac in (0.0, 0.5, 1.0):
        y = round(_AXIS_Y - frac * _PLOT_H, 2)
        out.append(
            f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{y}" y2="{y}" stroke="{COLORS["grid"]}"/>'
        )
        out.append(
            f'<text x="{_LEFT - 6}" y="{y + 4}" text-anchor="end" fill="{COLORS["text"]}">'
            f"{_ms(frac * top)}</text>"
        )
    out.append(
        f'<text x="14" y="{_PLOT_Y + _PLOT_H / 2}" fill="{COLORS["text"]}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_PLOT_Y + _PLOT_H / 2})">latency</text>'
    )
    return out


def _strip(f: _Frame, buckets: Sequence[Bucket]) -> list[str]:
    out = [
        f'<rect x="{_LEFT}" y="{_STRIP_Y}" width="{round(_RIGHT - _LEFT, 2)}" '
        f'height="{_STRIP_H}" fill="{COLORS["none"]}"/>'
    ]
    for b in buckets:
        state = b.state
        if state == "none":
            continue
        x0, x1 = f.x(b.start), f.x(b.end)
        tip = f"{_clock(b.start)}: {b.rounds - b.failed} of {b.rounds} rounds passed" + (
            f", {b.inconclusive} inconclusive" if b.inconclusive else ""
        )
        out.append(
            f'<rect class="avail {state}" x="{x0}" y="{_STRIP_Y}" '
            f'width="{max(round(x1 - x0, 2), 0.5)}" height="{_STRIP_H}" '
            f'fill="{COLORS[state]}"><title>{escape(tip)}</title></rect>'
        )
    return out


def _latency(f: _Frame, buckets: Sequence[Bucket], top: float) -> list[str]:
    def y(ms: float) -> float:
        return round(_AXIS_Y - min(ms / top, 1.0) * _PLOT_H, 2)

    out: list[str] = []
    for key, color, width, cls in (
        ("latency_max", COLORS["latency_max"], 1.0, "latency-max"),
        ("latency_avg", COLORS["latency"], 1.6, "latency"),
    ):
        segment: list[str] = []
        segments: list[list[str]] = []
        for b in buckets:
            value = getattr(b, key)
            if value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{f.x((b.start + b.end) / 2)},{y(value)}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:  # one point: a dot, or it would not show
                cx, cy = seg[0].split(",")
                out.append(f'<circle class="{cls}" cx="{cx}" cy="{cy}" r="1.8" fill="{color}"/>')
            else:
                out.append(
                    f'<polyline class="{cls}" fill="none" stroke="{color}" '
                    f'stroke-width="{width}" points="{" ".join(seg)}"/>'
                )
    return out


def _bands(f: _Frame, bands: Sequence[Band]) -> list[str]:
    out = []
    for band in bands:
        if band.end < f.start or band.start > f.end:
            continue
        x0, x1 = f.x(band.start), f.x(band.end)
        w = max(round(x1 - x0, 2), 1.0)
        if band.kind == "outage":
            style = f'fill="{COLORS["outage"]}" fill-opacity="0.14" stroke="{COLORS["outage"]}"'
        else:
            style = 'fill="#90a4ae" fill-opacity="0.18" stroke="none"'
        out.append(
            f'<rect class="band {escape(band.kind)}" x="{x0}" y="{_STRIP_Y - 4}" width="{w}" '
            f'height="{round(_AXIS_Y - _STRIP_Y + 4, 2)}" {style} '
            f'data-start="{band.start:.3f}" data-end="{band.end:.3f}">'
            f"<title>{escape(band.label)}</title></rect>"
        )
    return out


def _marks(f: _Frame, marks: Sequence[Mark]) -> list[str]:
    """Numbered dashed lines; marks closer than a few pixels share one label (5-12)."""
    groups: list[tuple[float, list[tuple[int, Mark]]]] = []
    for n, mark in enumerate(marks, 1):
        if mark.ts < f.start or mark.ts > f.end:
            continue
        x = f.x(mark.ts)
        if groups and x - groups[-1][0] < 6:
            groups[-1][1].append((n, mark))
        else:
            groups.append((x, [(n, mark)]))
    out = []
    for row, (x, members) in enumerate(groups):
        first, last = members[0][0], members[-1][0]
        label = str(first) if first == last else f"{first}-{last}"
        tips = "; ".join(f"{n}. {_clock(m.ts)} {m.label}" for n, m in members)
        ty = _MARK_Y - 2 + (row % 2) * 9  # alternate rows so that neighbours stay readable
        out.append(
            f'<g class="mark" data-ts="{members[0][1].ts:.3f}"><title>{escape(tips)}</title>'
            f'<line x1="{x}" x2="{x}" y1="{_STRIP_Y - 4}" y2="{_AXIS_Y}" '
            f'stroke="{COLORS["mark"]}" stroke-dasharray="3 2" stroke-width="1"/>'
            f'<text x="{x}" y="{ty}" text-anchor="middle" font-size="10" '
            f'font-weight="bold" fill="{COLORS["mark"]}">{label}</text></g>'
        )
    return out


def _time_axis(f: _Frame) -> list[str]:
    span = f.end - f.start
    step = next((s for s in _STEPS if span / s <= 8), _STEPS[-1])
    offset = time.localtime(f.start).tm_gmtoff
    first = math.ceil((f.start + offset) / step) * step - offset
    out = [
        f'<line x1="{_LEFT}" x2="{_RIGHT}" y1="{_AXIS_Y}" y2="{_AXIS_Y}" '
        f'stroke="{COLORS["text"]}" stroke-width="0.8"/>'
    ]
    tick = first
    while tick <= f.end:
        x = f.x(tick)
        label = time.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d", time.localtime(tick))
        out.append(
            f'<line x1="{x}" x2="{x}" y1="{_AXIS_Y}" y2="{_AXIS_Y + 4}" stroke="{COLORS["text"]}"/>'
            f'<text x="{x}" y="{_AXIS_Y + 16}" text-anchor="middle" fill="{COLORS["text"]}">'
            f"{label}</text>"
        )
        tick += step
    return out


def zone_label(ts: float) -> str:
    """The local zone the axis is drawn in: 'CET (UTC+01:00)'."""
    t = time.localtime(ts)
    name = time.strftime("%Z", t)
    off = utc_offset(t.tm_gmtoff)
    return f"{name} (UTC{off})" if name and name[0] not in "+-" else f"UTC{off}"


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g} s"
    return f"{value:g} ms"


def uptime_bars_svg(days: Sequence[tuple[float, float | None, str]], target: float) -> str:
    """The status page's bars: one per day, (day start, uptime or None, tooltip), coloured
    by how the day went against the target."""
    n = max(len(days), 1)
    gap = 2.0
    w = WIDTH / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="days" viewBox="0 0 {WIDTH} 34" '
        f'width="100%" preserveAspectRatio="none" role="img" '
        f'aria-label="uptime per day over the last {len(days)} days">'
    ]
    for i, (start, frac, tip) in enumerate(days):
        if frac is None:
            color, cls = COLORS["none"], "none"
        elif frac >= target:
            color, cls = COLORS["ok"], "ok"
        elif frac >= 0.95:
            color, cls = COLORS["partial"], "partial"
        else:
            color, cls = COLORS["fail"], "fail"
        parts.append(
            f'<rect class="day {cls}" x="{round(i * w + gap / 2, 2)}" y="0" '
            f'width="{round(max(w - gap, 0.5), 2)}" height="34" rx="1.5" fill="{color}" '
            f'data-day="{start:.0f}"><title>{escape(tip)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


def outage_label(start: float, end: float, ongoing: bool) -> str:
    return (
        f"outage {_clock(start)} to {'now' if ongoing else _clock(end)} ({duration(end - start)})"
    )
