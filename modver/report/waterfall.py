"""Blames and bisects in the report, as inline SVG made here (no script needed):

- each blame (``.modver/explain/blames/<id>.json``, written by ``modver blame``) as a waterfall
  chart — run A's metric, each factor's share with its sign, the interaction, run B's metric;
- each bisect (``.modver/explain/bisects/<id>.json``, written by ``modver bisect``) as a line of
  the metric by step — the good and bad runs at the ends, each probe between (skips marked on
  the axis), the threshold dashed, the first bad step marked.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modver import _fs, errors

__all__ = ["bisects_html", "blames_html", "explain_html", "load_bisects", "load_blames"]

_WIDTH, _LABEL, _ROW = 720, 260, 24


def _load_kept(folder: Path, lists: tuple[str, ...], mapping: str | None = None) -> list[dict[str, Any]]:
    """Every JSON file kept in ``folder``, oldest first, whose ``lists`` keys are lists (and
    ``mapping`` key a mapping); a damaged or foreign file is passed over."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = _fs.read_json(path)
        except (errors.ModverError, OSError):
            continue
        if not isinstance(data, dict) or (mapping is not None and not isinstance(data.get(mapping), dict)):
            continue
        if all(isinstance(data.get(key), list) for key in lists):
            out.append(data)
    return out


def load_blames(folder: Path) -> list[dict[str, Any]]:
    """Every blame kept in ``folder``, oldest first; a damaged file is passed over."""
    return _load_kept(folder, ("factors",), mapping="a")


def _bars(blame: Mapping[str, Any]) -> list[tuple[str, float, float, str]]:
    """(label, start, end, kind) of each bar: kind is total, up, down or none (not measured)."""
    a, b = float(blame["a"]["value"]), float(blame["b"]["value"])
    bars = [(f"A {blame['a']['run']}", 0.0, a, "total")]
    level = a
    for factor in blame["factors"]:
        share = factor.get("share")
        if share is None:
            bars.append((str(factor.get("label")), level, level, "none"))
            continue
        bars.append((str(factor.get("label")), level, level + float(share), "up" if share >= 0 else "down"))
        level += float(share)
    interaction = float(blame.get("interaction") or 0.0)
    bars.append(("interaction", level, level + interaction, "up" if interaction >= 0 else "down"))
    bars.append((f"B {blame['b']['run']}", 0.0, b, "total"))
    return bars


def _svg(blame: Mapping[str, Any]) -> str:
    bars = _bars(blame)
    low = min(0.0, *(min(s, e) for _, s, e, _ in bars))
    high = max(0.0, *(max(s, e) for _, s, e, _ in bars))
    span = (high - low) or 1.0
    plot = _WIDTH - _LABEL - 90

    def x(value: float) -> float:
        return _LABEL + (value - low) / span * plot

    colour = {"total": "#4a6fa5", "up": "#3a9a5b", "down": "#c0392b", "none": "#999"}
    rows = []
    for i, (label, start, end, kind) in enumerate(bars):
        y = i * _ROW + 4
        left, width = min(x(start), x(end)), max(abs(x(end) - x(start)), 1.5)
        value = end if kind == "total" else end - start
        shown = "not measured" if kind == "none" else (f"{value:.4g}" if kind == "total" else f"{value:+.4g}")
        rows.append(
            f'<text x="{_LABEL - 6}" y="{y + 15}" text-anchor="end">{html.escape(label[:40])}</text>'
            f'<rect class="bar-{kind}" x="{left:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" '
            f'fill="{colour[kind]}"><title>{html.escape(label)}: {shown}</title></rect>'
            f'<text x="{max(x(start), x(end)) + 4:.1f}" y="{y + 15}">{shown}</text>'
        )
    height = len(bars) * _ROW + 8
    return (f'<svg class="waterfall" width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" '
            f'font-size="12" role="img">{"".join(rows)}</svg>')  # fmt: skip


def blames_html(blames: Sequence[Mapping[str, Any]]) -> str:
    """The report's section of blames (empty when there is none)."""
    if not blames:
        return ""
    parts = ['<section id="blames">\n  <h2>Blames</h2>',
             '  <p class="dim">Each blame: run A\'s metric, the share of each factor that differs, the '
             "interaction, run B's metric (<code>modver blame</code>).</p>"]  # fmt: skip
    for blame in blames:
        title = (f"{blame.get('metric')}: {blame['a']['run']} \u2192 {blame['b']['run']} "
                 f"({blame.get('method')}, blame {blame.get('blame')})")  # fmt: skip
        parts.append(f'  <div class="blame"><h3>{html.escape(title)}</h3>{_svg(blame)}</div>')
    return "\n".join(parts) + "\n</section>"


def load_bisects(folder: Path) -> list[dict[str, Any]]:
    """Every bisect kept in ``folder``, oldest first; a damaged file is passed over."""
    return _load_kept(folder, ("steps", "probes"))


def _points(bisect: Mapping[str, Any]) -> list[tuple[int, str, float | None, str]]:
    """(step, label, metric or None, verdict) of the good run, each probe and the bad run."""
    steps = [str(s) for s in bisect["steps"]]
    out = [(0, steps[0], bisect.get("good_value"), "good")] if steps else []
    for probe in bisect["probes"]:
        value = probe.get("value")
        out.append((int(probe["step"]), str(probe.get("label")), None if value is None else float(value),
                    str(probe.get("verdict"))))  # fmt: skip
    if len(steps) > 1:
        out.append((len(steps) - 1, steps[-1], bisect.get("bad_value"), "bad"))
    return sorted(out)


def _line_svg(bisect: Mapping[str, Any]) -> str:
    steps, points = list(bisect["steps"]), _points(bisect)
    threshold = bisect.get("threshold")
    values = [v for _, _, v, _ in points if v is not None] + ([float(threshold)] if threshold is not None else [])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = (high - low) or 1.0
    left, right, top, bottom = 70, _WIDTH - 20, 16, 176
    height = bottom + 64

    def x(step: int) -> float:
        return left + step / max(len(steps) - 1, 1) * (right - left)

    def y(value: float) -> float:
        return bottom - (value - low) / span * (bottom - top)

    colour = {"good": "#3a9a5b", "bad": "#c0392b", "skip": "#999"}
    parts = [f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
             f'<text x="{left - 6}" y="{y(high) + 4:.1f}" text-anchor="end">{high:.4g}</text>',
             f'<text x="{left - 6}" y="{y(low) + 4:.1f}" text-anchor="end">{low:.4g}</text>']  # fmt: skip
    if threshold is not None:
        ty = y(float(threshold))
        parts.append(f'<line class="threshold" x1="{left}" y1="{ty:.1f}" x2="{right}" y2="{ty:.1f}" '
                     f'stroke="#888" stroke-dasharray="4 3"><title>threshold {float(threshold):.4g}</title></line>')  # fmt: skip
    first = bisect.get("first_bad")
    if first in steps:
        fx = x(steps.index(first))
        parts.append(f'<line class="first-bad" x1="{fx:.1f}" y1="{top}" x2="{fx:.1f}" y2="{bottom}" stroke="#c0392b" '
                     f'stroke-width="2"><title>first bad: {html.escape(str(first))}</title></line>'
                     f'<text x="{fx:.1f}" y="{top - 4}" text-anchor="middle">first bad: {html.escape(str(first)[:40])}</text>')  # fmt: skip
    known = [(s, v) for s, _, v, _ in points if v is not None]
    path = " ".join(f"{'M' if i == 0 else 'L'}{x(s):.1f} {y(v):.1f}" for i, (s, v) in enumerate(known))
    if path:
        parts.append(f'<path class="metric-line" d="{path}" fill="none" stroke="#4a6fa5" stroke-width="1.5"/>')
    for step, label, value, verdict in points:
        cy = bottom if value is None else y(value)
        shown = "skipped" if value is None else f"{value:.4g}"
        parts.append(f'<circle class="probe probe-{html.escape(verdict)}" cx="{x(step):.1f}" cy="{cy:.1f}" r="5" '
                     f'fill="{colour.get(verdict, "#999")}"><title>{html.escape(label)}: {shown} ({html.escape(verdict)})'
                     "</title></circle>")  # fmt: skip
    for i, label in enumerate(steps) if len(steps) <= 24 else []:
        parts.append(f'<text x="{x(i):.1f}" y="{bottom + 14}" text-anchor="end" '
                     f'transform="rotate(-30 {x(i):.1f} {bottom + 14})">{html.escape(str(label)[:24])}</text>')  # fmt: skip
    return (f'<svg class="bisect-line" width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" '
            f'font-size="12" role="img">{"".join(parts)}</svg>')  # fmt: skip


def bisects_html(bisects: Sequence[Mapping[str, Any]]) -> str:
    """The report's section of bisects (empty when there is none)."""
    if not bisects:
        return ""
    parts = ['<section id="bisects">\n  <h2>Bisects</h2>',
             '  <p class="dim">Each bisect: the metric at the good run, each probe and the bad run, by step '
             "(<code>modver bisect</code>); the dashed line is the threshold, the red line the first bad step.</p>"]  # fmt: skip
    for bisect in bisects:
        found = bisect.get("first_bad") or "ambiguous: " + ", ".join(map(str, bisect.get("candidates") or []))
        title = (f"{bisect.get('metric')}: {bisect.get('good')} \u2192 {bisect.get('bad')} "
                 f"({len(bisect['probes'])} probes over {len(bisect['steps'])} steps, bisect {bisect.get('bisect')})")  # fmt: skip
        notes = "".join(f'<li class="dim">{html.escape(str(n))}</li>' for n in bisect.get("notes") or [])
        changes = "".join(
            f"<li>{html.escape(str(c.get('stage')))}: {html.escape(str(c.get('summary')))} — "
            f"<code>{html.escape(str(c.get('command')))}</code></li>"
            for c in bisect.get("changes") or []
        )
        parts.append(f'  <div class="bisect"><h3>{html.escape(title)}</h3>{_line_svg(bisect)}'
                     f"<p>first bad: <b>{html.escape(str(found))}</b></p><ul>{changes}{notes}</ul></div>")  # fmt: skip
    return "\n".join(parts) + "\n</section>"


def explain_html(folder: Path) -> str:
    """The report's sections of the blames and bisects kept under ``folder`` (``.modver/explain``)."""
    return "\n".join(
        p for p in (blames_html(load_blames(folder / "blames")), bisects_html(load_bisects(folder / "bisects"))) if p
    )
