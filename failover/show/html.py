"""What the HTML report and the status page share: one stylesheet (inline: no fonts, CDNs
or scripts from anywhere), the page skeleton, escaping, and charts from the report's plain
data. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from failover.humanize import local_time
from failover.show.charts import COLORS, Band, Bucket, Mark, Timeline, outage_label, timeline_svg

CSS = """
:root { color-scheme: light; --ok: @ok@; --fail: @fail@; --partial: @partial@;
  --muted: #607d8b; --line: #e0e4e8; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2a30; background: #f6f8f9; }
main { max-width: 980px; margin: 0 auto; padding: 16px; }
header.top { margin-bottom: 8px; }
h1 { font-size: 1.6rem; margin: 8px 0 4px; }
h2 { font-size: 1.3rem; margin: 28px 0 8px; }
h3 { font-size: 1.1rem; margin: 20px 0 6px; }
p.meta, .muted { color: var(--muted); font-size: 0.9rem; margin: 2px 0; }
section.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 12px 16px; margin: 12px 0; }
.banner { border-radius: 8px; padding: 14px 16px; color: #fff; font-weight: 600;
  font-size: 1.15rem; margin: 12px 0; }
.banner.operational { background: var(--ok); }
.banner.degraded { background: var(--partial); color: #1f2a30; }
.banner.outage { background: var(--fail); }
.banner.unknown { background: var(--muted); }
.pill { display: inline-block; border-radius: 999px; padding: 0 10px; font-size: 0.85rem;
  font-weight: 600; color: #fff; background: var(--muted); }
.pill.ok, .pill.up { background: var(--ok); }
.pill.fail, .pill.down, .pill.no { background: var(--fail); }
.pill.suspect, .pill.recovering, .pill.partial { background: var(--partial); color: #1f2a30; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
ol.events { padding-left: 1.6em; margin: 6px 0; }
ol.events li { margin: 2px 0; }
ol.events .time { font-variant-numeric: tabular-nums; color: var(--muted); }
svg { display: block; max-width: 100%; height: auto; }
.legend { font-size: 0.82rem; color: var(--muted); }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 4px; vertical-align: -1px; }
footer { color: var(--muted); font-size: 0.85rem; margin: 24px 0 8px; }
@media (max-width: 600px) {
  body { font-size: 15px; }
  main { padding: 10px; }
  section.card { padding: 10px; }
  th, td { padding: 5px 6px; }
}
@media print {
  body { background: #fff; }
  section.card { border: none; padding: 0; break-inside: avoid; }
  .noprint { display: none; }
}
"""
for _name in ("ok", "fail", "partial"):
    CSS = CSS.replace(f"@{_name}@", COLORS[_name])


def e(value: Any) -> str:
    """Text for HTML: escaped, None as '-'."""
    return "-" if value is None else escape(str(value))


def page(title: str, body: str, *, refresh: int | None = None, description: str = "") -> str:
    """A whole self-contained document."""
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
    ]
    if description:
        head.append(f'<meta name="description" content="{e(description)}">')
    if refresh:
        head.append(f'<meta http-equiv="refresh" content="{int(refresh)}">')
    head += [f"<style>{CSS}</style>", "</head>", "<body>", "<main>"]
    return "\n".join([*head, body, "</main>", "</body>", "</html>", ""])


def timeline(data: Mapping[str, Any], title: str) -> Timeline:
    """A charts.Timeline from report.timeline_data()'s plain data."""
    return Timeline(
        title=title,
        start=float(data["start"]),
        end=float(data["end"]),
        buckets=[Bucket(**b) for b in data["buckets"]],
        bands=[
            Band(b["start"], b["end"], b["kind"], outage_label(b["start"], b["end"], b["ongoing"]))
            for b in data["bands"]
        ],
        marks=[Mark(m["ts"], m["label"]) for m in data["marks"]],
    )


def chart(data: Mapping[str, Any], title: str, *, numbered: bool = True) -> str:
    """The SVG, its legend, and (numbered) the marks it shows, as a list."""
    t = timeline(data, title)
    out = [f'<figure class="chart" style="margin:8px 0">{timeline_svg(t)}', _legend(data)]
    if numbered and t.marks:
        out.append(marks_list(t.marks))
    out.append("</figure>")
    return "\n".join(out)


def _legend(data: Mapping[str, Any]) -> str:
    items = [
        (COLORS["ok"], "all checks passed"),
        (COLORS["partial"], "some rounds failed"),
        (COLORS["fail"], "every round failed"),
        (COLORS["none"], "not watched"),
        (COLORS["latency"], f"latency of {data.get('check', 'the first check')} (mean)"),
    ]
    spans = "".join(f'<span><i style="background:{c}"></i>{e(t)}</span>' for c, t in items)
    if data.get("bands"):
        spans += f'<span><i style="background:{COLORS["outage"]};opacity:.35"></i>outage</span>'
    return f'<figcaption class="legend">{spans}</figcaption>'


def marks_list(marks: Sequence[Mark]) -> str:
    items = "".join(
        f'<li><span class="time">{e(local_time(m.ts))}</span> {e(m.label)}</li>' for m in marks
    )
    return f'<ol class="events">{items}</ol>'


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """A table whose cells are already HTML; columns in `numeric` align right."""
    head = "".join(
        f"<th{' class=num' if i in numeric else ''}>{e(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
