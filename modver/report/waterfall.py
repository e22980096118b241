"""Blames in the report: each blame (``.modver/explain/blames/<id>.json``, written by ``modver
blame``) drawn as a waterfall chart — run A's metric, each factor's share with its sign, the
interaction, run B's metric — as inline SVG made here (no script needed)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modver import _fs, errors

__all__ = ["blames_html", "load_blames"]

_WIDTH, _LABEL, _ROW = 720, 260, 24


def load_blames(folder: Path) -> list[dict[str, Any]]:
    """Every blame kept in ``folder``, oldest first; a damaged file is passed over."""
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = _fs.read_json(path)
        except (errors.ModverError, OSError):
            continue
        if isinstance(data, dict) and isinstance(data.get("a"), dict) and isinstance(data.get("factors"), list):
            out.append(data)
    return out


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
