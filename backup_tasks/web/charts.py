"""Server-side SVG line charts for the dashboard: no JavaScript, nothing from a CDN.

The plant may be offline, so a chart is plain markup drawn here from a few
hundred points the database already averaged (see dashboard.temperature_series).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from backup_tasks import conf

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 28, 28
DASH = ' stroke-dasharray="5 3"'


@dataclass
class Series:
    label: str
    colour: str
    points: Sequence[tuple[datetime, float | None]]  # None: no data there, the line breaks
    dashed: bool = False
    markers: bool = False  # a dot on every point, for sparse series such as backups


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values covering low..high, about `count` of them (1, 2 or 5 times a power of ten)."""
    if high <= low:
        high = low + 1
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    ticks = [math.floor(low / step) * step]
    while ticks[-1] < high:  # the top tick at or above the highest value
        ticks.append(ticks[0] + step * len(ticks))
    return [round(tick, 10) for tick in ticks]


def _number(value: float) -> str:
    return f"{value:.1f}"


def _tick_label(value: float) -> str:
    return f"{value:g}"


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    *,
    unit: str,
    empty_text: str,
    from_zero: bool = False,
) -> SafeString:
    """An SVG line chart of time series between start and end, in the plant's zone.

    from_zero: the value axis starts at 0 (sizes, durations), not at the lowest value.
    """
    values = [v for s in series for _, v in s.points if v is not None]
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="{escape(chart_id)}-title">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<text class="chart-title" x="{LEFT}" y="16">{escape(title)}</text>',
    ]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts.append(f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>')
    if not values:
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
            f'text-anchor="middle">{escape(empty_text)}</text></svg>'
        )
        return mark_safe("".join(parts))

    ticks = nice_ticks(0.0 if from_zero else min(values), max(values))
    low, high = ticks[0], ticks[-1]
    span = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return LEFT + plot_w * (moment - start).total_seconds() / span

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (value - low) / ((high - low) or 1))

    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w}" y1="{_number(y(tick))}" y2="{_number(y(tick))}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{_number(y(tick) + 4)}" text-anchor="end">'
            f"{escape(_tick_label(tick))}</text>"
        )
    parts.append(f'<text class="axis" x="6" y="{TOP - 8}">{escape(unit)}</text>')
    for moment, label in time_ticks(start, end):
        parts.append(
            f'<line class="grid" x1="{_number(x(moment))}" x2="{_number(x(moment))}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"/><text class="axis" x="{_number(x(moment))}" y="{HEIGHT - 10}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    legend_x = WIDTH - RIGHT
    for s in reversed(series):
        legend_x -= 14 + 7 * len(s.label) + 18
        parts.append(
            f'<line x1="{legend_x}" x2="{legend_x + 14}" y1="12" y2="12" stroke="{escape(s.colour)}" '
            f'stroke-width="3"{DASH if s.dashed else ""}/>'
            f'<text class="legend" x="{legend_x + 18}" y="16">{escape(s.label)}</text>'
        )
    for s in series:
        for run in _unbroken(s.points):
            coords = " ".join(f"{_number(x(m))},{_number(y(v))}" for m, v in run)
            parts.append(
                f'<polyline class="series" data-series="{escape(s.label)}" fill="none" '
                f'stroke="{escape(s.colour)}" stroke-width="1.6"'
                f'{DASH if s.dashed else ""} points="{coords}"/>'
            )
        if s.markers:
            parts.extend(
                f'<circle class="marker" cx="{_number(x(m))}" cy="{_number(y(v))}" r="2.5" fill="{escape(s.colour)}"/>'
                for m, v in s.points
                if v is not None
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _unbroken(points: Sequence[tuple[datetime, float | None]]) -> list[list[tuple[datetime, float]]]:
    """The stretches of a series without gaps; a single point is drawn as a tiny line."""
    runs: list[list[tuple[datetime, float]]] = [[]]
    for moment, value in points:
        if value is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((moment, value))
    drawn = []
    for run in runs:
        if len(run) == 1:
            run = [run[0], (run[0][0] + timedelta(seconds=1), run[0][1])]
        if run:
            drawn.append(run)
    return drawn


def time_ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    """Labelled moments on the time axis, on round plant-local hours or days."""
    span = end - start
    zone = conf.plant_zone()
    local_start = timezone.localtime(start, zone)
    if span <= timedelta(days=2):
        step, fmt = timedelta(hours=4 if span > timedelta(hours=12) else 1), "%H:%M"
        first = local_start.replace(minute=0, second=0, microsecond=0)
        hours = step.total_seconds() // 3600
        while first.hour % hours:
            first += timedelta(hours=1)
    else:
        step, fmt = timedelta(days=1 if span <= timedelta(days=10) else 7), "%d.%m."
        first = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    ticks = []
    moment = first
    while moment <= end:
        if moment >= start:
            ticks.append((moment, moment.strftime(fmt)))
        # Step in local wall time, then normalise, so days stay on midnight across DST.
        moment = timezone.make_aware(moment.replace(tzinfo=None) + step, zone)
    return ticks


@dataclass
class Bar:
    label: str
    value: float  # a ratio: ours / reference
    target: float | None = None  # the largest ratio that meets the target
    meets: bool | None = None  # None: nothing asked of this one


BAR_HEIGHT, BAR_LEFT, BAR_WIDTH = 22, 430, 1000
# For a chart read outside the admin (the benchmark's picture), which has no stylesheet.
STANDALONE_STYLE = (
    "<style>text{font:12px sans-serif;fill:#333}.chart-title{font-weight:bold}"
    ".plot{fill:none;stroke:#ccc}.grid{stroke:#e4e4e4}.one{stroke:#666}.target{stroke:#000;stroke-width:2}"
    ".meets{fill:#3a8a3a}.misses{fill:#c0392b}.info{fill:#8a9aa8}</style>"
)


def ratio_chart(chart_id: str, title: str, bars: Sequence[Bar], *, standalone: bool = False) -> SafeString:
    """Horizontal bars of ratios on a logarithmic axis centred on 1 (as fast as the reference).

    Each bar starts at 1: to the left we are faster, to the right slower. A bar's target is a
    black tick across it; the bar is green when it meets its target, red when not, grey when
    nothing is asked of it.
    """
    values = [b.value for b in bars if b.value > 0] + [b.target for b in bars if b.target]
    low = 10 ** math.floor(math.log10(min([*values, 1.0])))
    high = 10 ** math.ceil(math.log10(max([*values, 1.0]) * 1.0001))
    plot_w = BAR_WIDTH - BAR_LEFT - 40
    height = TOP + BAR_HEIGHT * len(bars) + BOTTOM + 8
    width = BAR_WIDTH

    def x(value: float) -> float:
        return BAR_LEFT + plot_w * (math.log10(value) - math.log10(low)) / (
            math.log10(high) - math.log10(low)
        )

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
        f'aria-labelledby="{escape(chart_id)}-title">',
        STANDALONE_STYLE if standalone else "",
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<text class="chart-title" x="6" y="16">{escape(title)}</text>',
        f'<rect class="plot" x="{BAR_LEFT}" y="{TOP}" width="{plot_w}" height="{BAR_HEIGHT * len(bars)}"/>',
    ]
    bottom = TOP + BAR_HEIGHT * len(bars)
    tick = low
    while tick <= high * 1.0001:
        parts.append(
            f'<line class="{"one" if tick == 1 else "grid"}" x1="{_number(x(tick))}" x2="{_number(x(tick))}" '
            f'y1="{TOP}" y2="{bottom}"/><text class="axis" x="{_number(x(tick))}" y="{bottom + 16}" '
            f'text-anchor="middle">{escape(f"{tick:g}×")}</text>'
        )
        tick *= 10
    parts.append(
        f'<text class="axis" x="{BAR_LEFT}" y="{bottom + 30}">ours / reference: left of 1× faster, right slower</text>'
    )
    for row, bar in enumerate(bars):
        top = TOP + BAR_HEIGHT * row
        value = max(bar.value, low)
        left, right = sorted((x(1.0), x(value)))
        kind = "info" if bar.meets is None else "meets" if bar.meets else "misses"
        parts.append(
            f'<text x="{BAR_LEFT - 6}" y="{top + 15}" text-anchor="end">{escape(bar.label)}</text>'
            f'<rect class="{kind}" data-ratio="{bar.value:g}" x="{_number(left)}" y="{top + 4}" '
            f'width="{_number(max(right - left, 1.0))}" height="{BAR_HEIGHT - 8}"/>'
            f'<text x="{_number(right + 4)}" y="{top + 15}">{escape(f"{bar.value:.2f}×")}</text>'
        )
        if bar.target:
            parts.append(
                f'<line class="target" x1="{_number(x(bar.target))}" x2="{_number(x(bar.target))}" '
                f'y1="{top + 1}" y2="{top + BAR_HEIGHT - 1}"/>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))
