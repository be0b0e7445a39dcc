"""The parts both HTML pages draw with (the report, html.py; the aggregates' section, html_aggregates.py): escaped
text, number formats, cards, and inline SVG column, bar and stacked-bar charts whose marks carry `class="mark"`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any

from tripstream.views.formatting import money, number

WIDTH = 560
DASH = "\u2013"  # en dash, for ranges and missing values


def escaped(value: Any) -> str:
    return escape(str(value), quote=True)


def money_text(value: Decimal | None) -> str:
    return money(value, missing=DASH)


def number_text(value: Decimal | None, suffix: str = "") -> str:
    return number(value, suffix, missing=DASH)


def count_text(value: int) -> str:
    return f"{value:,}"


def axis(value: float, ticks: int = 4) -> tuple[float, float]:
    """A round axis for values up to `value`: (maximum, step), the step 1, 2 or 5 x 10^k, at most `ticks` steps."""
    if value <= 0:
        return 1.0, 1.0
    rough = value / ticks
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= rough)
    if step < 1:
        step = 1.0  # counts: no fractional ticks
    return step * math.ceil(value / step), step


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    tooltip: str
    color: str


def column_chart(
    name: str,
    title: str,
    bars: Sequence[Bar],
    *,
    height: int = 220,
    label_every: int = 1,
    markers: Sequence[tuple[float, str]] = (),
    marker_scale: tuple[float, float] | None = None,
) -> str:
    """Vertical bars with a y axis; optional vertical markers at positions of a numeric x scale."""
    left, right, top, bottom = 44, 12, 14, 36
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    y_max, y_step = axis(max((b.value for b in bars), default=0))
    slot = plot_w / max(1, len(bars))
    gap = min(6.0, slot * 0.2)
    out = [
        f'<svg class="chart" data-chart="{escaped(name)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{escaped(title)}">',
        f"<title>{escaped(title)}</title>",
    ]
    for i in range(round(y_max / y_step) + 1):
        value = y_step * i
        y = top + plot_h - plot_h * value / y_max
        out.append(f'<line class="grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    for i, bar in enumerate(bars):
        bar_h = plot_h * bar.value / y_max
        x = left + i * slot + gap / 2
        y = top + plot_h - bar_h
        out.append(
            f'<rect class="mark" data-value="{bar.value:g}" x="{x:.1f}" y="{y:.1f}" width="{slot - gap:.1f}" '
            f'height="{bar_h:.1f}" fill="{bar.color}"><title>{escaped(bar.tooltip)}</title></rect>'
        )
        if i % label_every == 0:
            out.append(
                f'<text class="axis" x="{x + (slot - gap) / 2:.1f}" y="{top + plot_h + 15}" '
                f'text-anchor="middle">{escaped(bar.label)}</text>'
            )
    if marker_scale is not None:
        low, high = marker_scale
        for position, label in markers:
            if high <= low:
                break
            fraction = min(1.0, max(0.0, (position - low) / (high - low)))
            x = left + plot_w * fraction
            out.append(
                f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>'
                f'<text class="marker-label" x="{x + 3:.1f}" y="{top + 10}">{escaped(label)}</text>'
            )
    out.append(
        f'<line class="baseline" x1="{left}" x2="{WIDTH - right}" y1="{top + plot_h}" y2="{top + plot_h}"/></svg>'
    )
    return "".join(out)


def bar_chart(name: str, title: str, bars: Sequence[Bar], *, label_width: int = 250) -> str:
    """Horizontal bars, one row each, label on the left and the value at the bar's end."""
    row_h, top = 24, 6
    height = top * 2 + row_h * max(1, len(bars))
    plot_w = WIDTH - label_width - 70
    x_max = max((b.value for b in bars), default=0) or 1
    out = [
        f'<svg class="chart" data-chart="{escaped(name)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{escaped(title)}">',
        f"<title>{escaped(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = top + i * row_h
        width = plot_w * bar.value / x_max
        fits = max(8, int((label_width - 12) / 6.6))  # characters of 12px text that fit left of the bars
        label = bar.label if len(bar.label) <= fits else bar.label[: fits - 1] + "\u2026"
        out.append(
            f'<text class="label" x="{label_width - 8}" y="{y + 16}" text-anchor="end">{escaped(label)}</text>'
            f'<rect class="mark" data-value="{bar.value:g}" x="{label_width}" y="{y + 4}" width="{width:.1f}" '
            f'height="{row_h - 8}" rx="2" fill="{bar.color}"><title>{escaped(bar.tooltip)}</title></rect>'
            f'<text class="value" x="{label_width + width + 6:.1f}" y="{y + 16}">'
            f"{escaped(count_text(int(bar.value)))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def stacked_bar(name: str, title: str, parts: Sequence[Bar]) -> str:
    """One horizontal bar split into parts (shares), with a legend below."""
    height, bar_h = 64, 26
    total = sum(p.value for p in parts) or 1
    out = [
        f'<svg class="chart" data-chart="{escaped(name)}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="{escaped(title)}">',
        f"<title>{escaped(title)}</title>",
    ]
    x = 0.0
    legend_x = 0
    for part in parts:
        width = (WIDTH - 2) * part.value / total
        out.append(
            f'<rect class="mark" data-value="{part.value:g}" x="{x + 1:.1f}" y="4" width="{width:.1f}" '
            f'height="{bar_h}" fill="{part.color}"><title>{escaped(part.tooltip)}</title></rect>'
        )
        x += width
        out.append(
            f'<rect x="{legend_x}" y="{bar_h + 18}" width="12" height="12" fill="{part.color}"/>'
            f'<text class="label" x="{legend_x + 17}" y="{bar_h + 28}">{escaped(part.tooltip)}</text>'
        )
        legend_x += 186
    out.append("</svg>")
    return "".join(out)


def card(label: str, value: str, detail: str = "") -> str:
    extra = f'<div class="detail">{escaped(detail)}</div>' if detail else ""
    return (
        f'<div class="card"><div class="card-label">{escaped(label)}</div>'
        f'<div class="card-value">{escaped(value)}</div>{extra}</div>'
    )
