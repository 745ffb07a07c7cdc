"""Inline SVG drawings of the figure kinds in ``auditkit.results``: line, bar, reliability, matrix.

Charts are plain strings assembled here rather than in a template because their geometry is
arithmetic. Every string that came from audit.json (titles, axis labels, series, class and group
names) goes through ``markupsafe.escape`` — text inside ``<text>``, ``<title>`` and ``<desc>``
included — and every coordinate is printed with fixed precision, so a figure always gives the
same bytes. Colours come from CSS classes (``s0`` … ``s7``, ``axis``, ``grid``) whose values the
page's style sheet sets for light, dark and print; series also differ by dash pattern and marker
shape so no information is carried by colour alone.

This module is over 500 lines on purpose and stays whole (issue 28 allows it while it remains
one idea): it is one idea, drawing audit.json figures as deterministic, escaped SVG. The four
chart kinds (and the status icons) share one set of private primitives: fixed-precision
coordinates, escaping, scales and ticks, the frame, legend and markers, and the text-width
estimates that keep labels readable. Split by chart kind, each piece would import those
primitives from a sibling and the escaping and precision rules would live apart from the
drawings they protect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from auditkit.render.fmt import as_number, clip_words, format_number

# Charts are drawn 380 units wide with text of at least 12 units, and shrink with their card
# down to 380 × 10 / 12 ≈ 317 px (a 360 px phone's card) before any text is under 10 px.
WIDTH = 380
FONT_PX = 12
CHAR_PX = 8.0  # generous mean glyph width of a 12 px sans-serif; only used to estimate label widths
SERIES_STYLES = 8
DASHES = ("", "6 3", "2 3", "8 3 2 3", "10 4", "1 2", "4 2 1 2", "12 2")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "triangle-down", "x", "bar")
MAX_MARKED_POINTS = 40  # beyond this, markers clutter: series stay apart by dash pattern
MAX_DESC_ITEMS = 30
MAX_LABEL_CHARS = 28
MIN_TEXT_PX = 10  # smallest text a reader gets, in CSS px, at any screen width
SMALLEST_FONT_PX = 12  # the smallest font-size the chart style sheet uses (.cv)
#: A line series with more points than this is thinned to the first, lowest, highest and last
#: point per pixel column before drawing: the picture is the same, and drawing stays linear.
MAX_LINE_POINTS = 1000
MAX_DETAILED_CELLS = 400
TEXT_FLIP = 0.5  # heat-map cells above this strength get inverse-coloured numbers


def _f(value: float) -> str:
    """A coordinate with one decimal, never ``-0.0`` (keeps output byte-stable)."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _t(value: Any) -> Markup:
    """Escaped text of a user-supplied value."""
    return escape("" if value is None else str(value))


def _short(value: Any, limit: int = MAX_LABEL_CHARS) -> str:
    """A label cut at a word (never inside one) when longer than ``limit``."""
    return clip_words("" if value is None else value, limit)[0]


def _label(value: Any, limit: int = MAX_LABEL_CHARS) -> str:
    """Escaped text for an SVG <text>, cut at a word; a cut label carries its full text as a
    <title> child (the tooltip), so nothing is lost."""
    full = " ".join(str("" if value is None else value).split())
    shown = _short(full, limit)
    return str(_t(shown)) + (f"<title>{_t(full)}</title>" if shown != full else "")


def _fitting_chars(px: float, *, bold: bool = True) -> int:
    """How many characters fit in ``px`` (at least 6: a label is cut at a word, its full text
    the tooltip)."""
    return max(6, int(px / (CHAR_PX * (1.12 if bold else 1.0))))


def _text_px(text: str, *, bold: bool = False) -> float:
    """Estimated width; symbols (⚑, ∞, ×) often come from a wider fallback font."""
    width = sum(CHAR_PX if ord(ch) < 128 else 1.6 * CHAR_PX for ch in text)
    return width * (1.12 if bold else 1.0)


# --- axes ---------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^k steps) covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = magnitude
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= raw * (1 - 1e-9):
            break
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _tick_label(value: float, ticks: Sequence[float]) -> str:
    if len(ticks) >= 2:
        step = abs(ticks[1] - ticks[0])
        decimals = 0
        while decimals < 8 and abs(round(step * 10**decimals) - step * 10**decimals) > 1e-6:
            decimals += 1
        if abs(value) >= 1e5 or (value and abs(value) < 1e-4):
            return f"{value:.1e}"
        text = f"{value:.{decimals}f}"
        return "0" if float(text) == 0 else text
    return format_number(value, 3)


def _log_ticks(lo: float, hi: float) -> list[float]:
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [
        10.0**k for k in range(first, last + 1) if lo * (1 - 1e-9) <= 10.0**k <= hi * (1 + 1e-9)
    ]
    if len(ticks) < 3:
        ticks = sorted(
            {
                m * 10.0**k
                for k in range(first, last + 1)
                for m in (1, 2, 5)
                if lo * (1 - 1e-9) <= m * 10.0**k <= hi * (1 + 1e-9)
            }
        )
    return ticks or [lo, hi]


class _Scale:
    """Maps data values in ``[lo, hi]`` to pixels in ``[a, b]`` (linear or log10)."""

    def __init__(self, lo: float, hi: float, a: float, b: float, *, log: bool = False) -> None:
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if self.hi == self.lo:
            self.hi = self.lo + 1.0
        self.a, self.b = a, b

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        v = min(max(v, self.lo), self.hi)  # out-of-range values sit on the frame edge
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _value_range(values: Sequence[float], forced: Any = None) -> tuple[float, float, list[float]]:
    """Axis range and ticks: a figure's own ``y_range`` wins; fractions get [0, 1]."""
    if isinstance(forced, Sequence) and len(forced) == 2:
        lo, hi = as_number(forced[0]), as_number(forced[1])
        if lo is not None and hi is not None and hi > lo:
            return lo, hi, [t for t in nice_ticks(lo, hi) if lo - 1e-9 <= t <= hi + 1e-9]
    if not values:
        return 0.0, 1.0, nice_ticks(0.0, 1.0)
    lo, hi = min(values), max(values)
    if lo >= 0 and hi <= 1 and hi > 0.2:
        return 0.0, 1.0, nice_ticks(0.0, 1.0)
    lo = min(lo, 0.0) if lo >= 0 and lo < 0.5 * hi else lo
    ticks = nice_ticks(lo, hi)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    lo = min(lo, ticks[0])
    hi = max(hi, ticks[-1])
    if ticks[-1] < hi - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
        hi = ticks[-1]
    if ticks[0] > lo + 1e-12:
        ticks.insert(0, round(ticks[0] - step, 12))
        lo = ticks[0]
    return lo, hi, ticks


def _open_svg(uid: str, width: float, height: float, title: Any, desc: str) -> list[str]:
    # The chart may shrink to fit, but never so far that its smallest text (11 px) drops below
    # MIN_TEXT_PX: on a phone it keeps that width and scrolls inside its own box instead.
    min_width = math.ceil(width * MIN_TEXT_PX / SMALLEST_FONT_PX)
    return [
        f'<svg class="chart" viewBox="0 0 {_f(width)} {_f(height)}" width="{_f(width)}" '
        f'height="{_f(height)}" style="min-width: {min_width}px" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d">',
        f'<title id="{uid}-t">{_t(title or "figure")}</title>',
        f'<desc id="{uid}-d">{_t(desc)}</desc>',
    ]


def _frame(
    parts: list[str],
    x: _Scale,
    y: _Scale,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    x_label: Any,
    y_label: Any,
    *,
    x_tick_text: Sequence[str] | None = None,
) -> None:
    """Grid, axes, tick labels and axis titles around a plot area."""
    left, right, top, bottom = x.a, x.b, y.b, y.a
    for tick in y_ticks:
        py = y(tick)
        parts.append(
            f'<line class="grid" x1="{_f(left)}" x2="{_f(right)}" y1="{_f(py)}" y2="{_f(py)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_f(left - 6)}" y="{_f(py + 4)}" text-anchor="end">'
            f"{_t(_tick_label(tick, y_ticks))}</text>"
        )
    for i, tick in enumerate(x_ticks):
        px = x(tick)
        label = x_tick_text[i] if x_tick_text else _tick_label(tick, x_ticks)
        parts.append(
            f'<line class="grid" x1="{_f(px)}" x2="{_f(px)}" y1="{_f(top)}" y2="{_f(bottom)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_f(px)}" y="{_f(bottom + 16)}" text-anchor="middle">'
            f"{_t(label)}</text>"
        )
    parts.append(f'<path class="axis" d="M{_f(left)},{_f(top)} V{_f(bottom)} H{_f(right)}"/>')
    if x_label:
        centre = (left + right) / 2
        parts.append(
            f'<text class="label" x="{_f(centre)}" y="{_f(bottom + 34)}" '
            f'text-anchor="middle">{_label(x_label, _fitting_chars(2 * centre - 8))}</text>'
        )
    if y_label:
        cy = (top + bottom) / 2
        parts.append(
            f'<text class="label" x="14" y="{_f(cy)}" text-anchor="middle" '
            f'transform="rotate(-90 14 {_f(cy)})">{_label(y_label, _fitting_chars(bottom - top + 24))}</text>'
        )


def marker(shape: str, x: float, y: float, r: float = 3.6) -> str:
    """One point marker; the shape tells series apart in print and for colour-blind readers."""
    if shape == "circle":
        return f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}"/>'
    if shape == "square":
        return f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" height="{_f(2 * r)}"/>'
    if shape == "triangle":
        return f'<path d="M{_f(x)},{_f(y - r - 0.6)} L{_f(x + r)},{_f(y + r)} L{_f(x - r)},{_f(y + r)} Z"/>'
    if shape == "triangle-down":
        return f'<path d="M{_f(x)},{_f(y + r + 0.6)} L{_f(x + r)},{_f(y - r)} L{_f(x - r)},{_f(y - r)} Z"/>'
    if shape == "diamond":
        return f'<path d="M{_f(x)},{_f(y - r - 0.8)} L{_f(x + r + 0.8)},{_f(y)} L{_f(x)},{_f(y + r + 0.8)} L{_f(x - r - 0.8)},{_f(y)} Z"/>'
    if shape == "cross":
        return f'<path class="open" d="M{_f(x - r)},{_f(y)} H{_f(x + r)} M{_f(x)},{_f(y - r)} V{_f(y + r)}"/>'
    if shape == "x":
        return f'<path class="open" d="M{_f(x - r)},{_f(y - r)} L{_f(x + r)},{_f(y + r)} M{_f(x - r)},{_f(y + r)} L{_f(x + r)},{_f(y - r)}"/>'
    return f'<rect x="{_f(x - r / 2)}" y="{_f(y - r)}" width="{_f(r)}" height="{_f(2 * r)}"/>'


def _legend(
    parts: list[str], entries: Sequence[tuple[str, str]], top: float, width: float
) -> float:
    """Legend rows below the plot; entries are (css class list, name). Returns the new height."""
    x, y = 16.0, top + 14
    for index, (classes, name) in enumerate(entries):
        limit = min(40, _fitting_chars(width - 16 - 44 - 8, bold=False))
        label = _short(name, limit)
        needed = 44 + _text_px(label) + 18
        if x + needed > width and x > 16:
            x, y = 16.0, y + 20
        style = index % SERIES_STYLES
        dash = DASHES[style]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="{classes}">')
        parts.append(
            f'<line class="ln" x1="{_f(x)}" x2="{_f(x + 30)}" y1="{_f(y - 4)}" y2="{_f(y - 4)}"{dash_attr}/>'
        )
        parts.append(marker(MARKERS[style], x + 15, y - 4))
        parts.append("</g>")
        parts.append(f'<text class="legend" x="{_f(x + 38)}" y="{_f(y)}">{_label(name, limit)}</text>')
        x += needed
    return y + 10


# --- line ---------------------------------------------------------------------------------


def _series_points(
    series: Mapping[str, Any], log: bool
) -> list[tuple[float, float | None, float | None, float | None]]:
    xs = series.get("x") or []
    ys = series.get("y") or []
    lows = series.get("low") or []
    highs = series.get("high") or []
    points = []
    for i, raw_x in enumerate(xs):
        x = as_number(raw_x)
        if x is None or (log and x <= 0):
            continue
        y = as_number(ys[i]) if i < len(ys) else None
        low = as_number(lows[i]) if i < len(lows) else None
        high = as_number(highs[i]) if i < len(highs) else None
        points.append((x, y, low, high))
    return points


def line_chart(figure: Mapping[str, Any], uid: str) -> Markup:
    """Several series of (x, y) points on shared axes; ``None`` values break a line."""
    series = [s for s in figure.get("series") or [] if isinstance(s, Mapping)]
    log = figure.get("x_scale") == "log"
    data = [(s, _series_points(s, log)) for s in series]
    xs = [p[0] for _, pts in data for p in pts]
    ys = [v for _, pts in data for p in pts for v in (p[1], p[2], p[3]) if v is not None]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_hi <= x_lo:  # one x value: a range around it that never invents negative values
        if log:
            x_lo, x_hi = x_lo / 2, x_lo * 2
        elif x_lo > 0:
            x_lo, x_hi = 0.0, 2 * x_lo
        elif x_lo < 0:
            x_lo, x_hi = 2 * x_lo, 0.0
        else:
            x_lo, x_hi = 0.0, 1.0
    y_lo, y_hi, y_ticks = _value_range(ys, figure.get("y_range"))
    x_ticks = (
        _log_ticks(x_lo, x_hi)
        if log
        else [t for t in nice_ticks(x_lo, x_hi) if x_lo - 1e-9 <= t <= x_hi + 1e-9]
    )
    tick_width = max((_text_px(_tick_label(t, y_ticks)) for t in y_ticks), default=20)
    left = 30 + tick_width
    plot_h = 220
    x = _Scale(x_lo, x_hi, left, WIDTH - 18, log=log)
    y = _Scale(y_lo, y_hi, 12 + plot_h, 12)

    desc = _line_desc(figure, data)
    body: list[str] = []
    _frame(body, x, y, x_ticks, y_ticks, figure.get("x_label"), figure.get("y_label"))
    legend: list[tuple[str, str]] = []
    for index, (s, pts) in enumerate(data):
        pts = thin_points(pts, x)
        style = index % SERIES_STYLES
        name = str(s.get("name") if s.get("name") is not None else f"series {index + 1}")
        classes = f"series s{style}"
        legend.append((classes, name))
        body.append(f'<g class="{classes}">')
        band = [(px, lo, hi) for px, _, lo, hi in pts if lo is not None and hi is not None]
        if len(band) >= 2:
            upper = " L".join(f"{_f(x(px))},{_f(y(hi))}" for px, _, hi in band)
            lower = " L".join(f"{_f(x(px))},{_f(y(lo))}" for px, lo, _ in reversed(band))
            body.append(f'<path class="band" d="M{upper} L{lower} Z"/>')
        path, pen_down = [], False
        for px, py, _, _ in pts:
            if py is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{_f(x(px))},{_f(y(py))}")
            pen_down = True
        dash = DASHES[style]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if path:
            body.append(f'<path class="ln" d="{" ".join(path)}"{dash_attr}/>')
        if len(pts) <= MAX_MARKED_POINTS:
            for px, py, _, _ in pts:
                if py is None:
                    continue
                shape = marker(MARKERS[style], x(px), y(py))
                point = f"{name}: {figure.get('x_label') or 'x'} = {format_number(px)}, {figure.get('y_label') or 'y'} = {format_number(py)}"
                body.append(f"<g>{shape}<title>{_t(point)}</title></g>")
        body.append("</g>")
    named = len(legend) > 1 or any(s.get("name") for s in series)
    height = _legend(body, legend, 12 + plot_h + 40, WIDTH) if named else 12 + plot_h + 44
    parts = _open_svg(uid, WIDTH, height, figure.get("title"), desc)
    return Markup("\n".join([*parts, *body, "</svg>"]))


def thin_points(
    pts: Sequence[tuple[float, float | None, float | None, float | None]], x: _Scale
) -> list[tuple[float, float | None, float | None, float | None]]:
    """At most about four points per pixel column (first, lowest, highest, last, in order) once
    a series is longer than ``MAX_LINE_POINTS``; gaps (None) are kept so lines still break."""
    if len(pts) <= MAX_LINE_POINTS:
        return list(pts)
    kept: list[tuple[float, float | None, float | None, float | None]] = []
    column: list[tuple[float, float | None, float | None, float | None]] = []
    current = None

    def flush() -> None:
        if not column:
            return
        known = [p for p in column if p[1] is not None]
        if not known:
            kept.append(column[0])
            return
        picks = {id(p): p for p in (known[0], min(known, key=lambda p: p[1]),
                                    max(known, key=lambda p: p[1]), known[-1])}
        kept.extend(p for p in column if id(p) in picks)
        if len(known) < len(column):
            kept.append(next(p for p in column if p[1] is None))  # keep the break

    for point in pts:
        key = int(x(point[0]))
        if key != current:
            flush()
            column, current = [], key
        column.append(point)
    flush()
    return kept


def _line_desc(figure: Mapping[str, Any], data: Sequence[tuple[Mapping[str, Any], list]]) -> str:
    x_label = figure.get("x_label") or "x"
    y_label = figure.get("y_label") or "y"
    pieces = [
        f"Line chart of {y_label} against {x_label}"
        + (" (log scale)" if figure.get("x_scale") == "log" else "")
        + "."
    ]
    for index, (s, pts) in enumerate(data[:MAX_DESC_ITEMS]):
        name = s.get("name") if s.get("name") is not None else f"series {index + 1}"
        known = [(px, py) for px, py, _, _ in pts if py is not None]
        if not known:
            pieces.append(f"{name}: no values.")
            continue
        (x0, y0), (x1, y1) = known[0], known[-1]
        low = min(known, key=lambda p: p[1])
        high = max(known, key=lambda p: p[1])
        pieces.append(
            f"{name}: {len(known)} points, {format_number(y0)} at {x_label} {format_number(x0)} to "
            f"{format_number(y1)} at {format_number(x1)}; lowest {format_number(low[1])}, "
            f"highest {format_number(high[1])}."
        )
    return " ".join(pieces)


# --- bar ----------------------------------------------------------------------------------


def _flag_text(flag: Any) -> str:
    if flag is True:
        return "flagged"
    if isinstance(flag, str) and flag.strip():
        return f"flagged: {flag.strip()}"
    return ""


def bar_chart(figure: Mapping[str, Any], uid: str) -> Markup:
    """Horizontal bars with confidence intervals and flags: each bar under its own line of text
    (label on the left, value, interval and n on the right), so a long group name or note never
    pushes the chart wider than ``WIDTH``; the label then wraps to a line of its own, and what
    is cut short is in the bar's tooltip."""
    bars = [b for b in figure.get("bars") or [] if isinstance(b, Mapping)]
    values = [
        v
        for b in bars
        for v in (as_number(b.get("value")), as_number(b.get("low")), as_number(b.get("high")))
        if v is not None
    ]
    reference = as_number(figure.get("reference"))
    if reference is not None:
        values.append(reference)
    lo, hi, ticks = _value_range(values, figure.get("y_range"))
    fractions = all(-1.0 <= v <= 1.0 for v in values)
    left, right, width = 22.0, WIDTH - 22.0, WIDTH
    text_w = width - 16
    # Per bar: the text lines above it (label and note on one line when both fit).
    rows = []
    for bar in bars:
        note = _bar_annotation(bar, fractions)
        note = _short(note, _fitting_chars(text_w, bold=False)) if _text_px(note) > text_w else note
        full_label = " ".join(("" if bar.get("label") is None else str(bar.get("label"))).split())
        room = text_w - _text_px(note, bold="⚑" in note) - 16
        if _text_px(full_label) <= room:
            rows.append((full_label, note, 1))
        else:
            rows.append((_short(full_label, _fitting_chars(text_w, bold=False)), note, 2))
    line_h, bar_h, top = 16, 22, 26
    body: list[str] = []
    x_label = figure.get("x_label")
    if x_label:
        body.append(f'<text class="label" x="8" y="16">{_label(x_label, _fitting_chars(text_w / 2))}</text>')
    x = _Scale(lo, hi, left, right)
    zero = x(min(max(0.0, lo), hi))
    row_top = top
    for bar, (label, note, lines) in zip(bars, rows, strict=True):
        full_note = _bar_annotation(bar, fractions, full=True)
        value = as_number(bar.get("value"))
        flagged = bool(_flag_text(bar.get("flag")))
        full_label = "" if bar.get("label") is None else str(bar.get("label"))
        text_y = row_top + 12
        cy = row_top + line_h * lines + bar_h / 2 - 2
        body.append(f'<g class="bar{" flagged" if flagged else ""}">')
        body.append(f"<title>{_t(full_label + ': ' + full_note)}</title>")
        body.append(f'<text class="tick" x="8" y="{_f(text_y)}">{_t(label)}</text>')
        note_y = text_y + line_h * (lines - 1)
        body.append(
            f'<text class="note" x="{_f(width - 8)}" y="{_f(note_y)}" text-anchor="end">{_t(note)}</text>'
        )
        if value is not None:
            end = x(value)
            body.append(
                f'<rect class="b" x="{_f(min(zero, end))}" y="{_f(cy - 7)}" '
                f'width="{_f(abs(end - zero))}" height="14"/>'
            )
        low, high = as_number(bar.get("low")), as_number(bar.get("high"))
        if low is not None and high is not None:
            a, b = x(low), x(high)
            body.append(
                f'<path class="ci" d="M{_f(a)},{_f(cy)} H{_f(b)} M{_f(a)},{_f(cy - 5)} V{_f(cy + 5)} '
                f'M{_f(b)},{_f(cy - 5)} V{_f(cy + 5)}"/>'
            )
        body.append("</g>")
        row_top += line_h * lines + bar_h
    plot_bottom = max(row_top, top + bar_h)
    y = _Scale(0, 1, plot_bottom, top)  # only used for the frame's vertical extent
    frame: list[str] = []
    _frame(frame, x, y, ticks, [], figure.get("y_label"), None)
    body = frame + body
    if reference is not None:
        rx = x(reference)
        body.append(
            f'<line class="ref" x1="{_f(rx)}" x2="{_f(rx)}" y1="{_f(top - 4)}" y2="{_f(plot_bottom)}"/>'
        )
        text = f"reference {format_number(reference, 3)}"
        half = _text_px(text) / 2
        # Centred on the line, but kept inside the chart and clear of the axis label that
        # shares its row (a reference at 0 used to print over it).
        start = left
        if x_label:
            shown = _short(" ".join(str(x_label).split()), _fitting_chars(text_w / 2))
            start = max(start, 8 + _text_px(shown, bold=True) + 8)
        tx = min(max(rx, start + half), width - 4 - half)
        body.append(
            f'<text class="tick" x="{_f(tx)}" y="{_f(top - 8)}" text-anchor="middle">'
            f"{_t(text)}</text>"
        )
    height = plot_bottom + 44
    parts = _open_svg(uid, width, height, figure.get("title"), _bar_desc(figure, bars, reference))
    return Markup("\n".join([*parts, *body, "</svg>"]))


def _bar_annotation(bar: Mapping[str, Any], fractions: bool = False, *, full: bool = False) -> str:
    """``0.981 [0.950, 1.000] n=53 ⚑ flagged: reason`` (the reason cut short unless ``full``)."""

    def number(v: float) -> str:
        return f"{v:.3f}" if fractions else format_number(v, 3)

    value = as_number(bar.get("value"))
    text = "n/a" if value is None else number(value)
    low, high = as_number(bar.get("low")), as_number(bar.get("high"))
    if low is not None and high is not None:
        text += f" [{number(low)}, {number(high)}]"
    count = bar.get("count")
    if as_number(count) is not None:
        text += f" n={format_number(count)}"
    flag = _flag_text(bar.get("flag"))
    if flag:
        text += f" ⚑ {flag if full else _short(flag, 24)}"
    return text


def _bar_desc(
    figure: Mapping[str, Any], bars: Sequence[Mapping[str, Any]], reference: float | None
) -> str:
    what = figure.get("y_label") or "value"
    per = figure.get("x_label") or "item"
    items = [f"{b.get('label')}: {_bar_annotation(b, full=True)}" for b in bars][:MAX_DESC_ITEMS]
    more = len(bars) - len(items)
    text = (
        f"Bar chart of {what} per {per}"
        + (
            " with confidence intervals in brackets"
            if any(b.get("low") is not None for b in bars)
            else ""
        )
        + ". "
    )
    text += "; ".join(items) + (f"; and {more} more" if more > 0 else "") + "."
    if reference is not None:
        text += f" Reference line at {format_number(reference, 3)}."
    return text


# --- reliability --------------------------------------------------------------------------


def reliability_chart(figure: Mapping[str, Any], uid: str) -> Markup:
    """Reliability diagram (accuracy per confidence bin against the diagonal) over a histogram."""
    bins = []
    for b in figure.get("bins") or []:
        if not isinstance(b, Mapping):
            continue
        lower, upper = as_number(b.get("lower")), as_number(b.get("upper"))
        if lower is None or upper is None:
            continue
        bins.append(
            (
                lower,
                upper,
                as_number(b.get("confidence")),
                as_number(b.get("accuracy")),
                as_number(b.get("count")) or 0.0,
            )
        )
    x_lo = min((b[0] for b in bins), default=0.0)
    x_lo = 0.0 if x_lo >= 0 else x_lo
    left, right = 56.0, WIDTH - 16.0
    top, plot_h, gap, hist_h = 12.0, 250.0, 56.0, 80.0
    x = _Scale(x_lo, 1.0, left, right)
    y = _Scale(0.0, 1.0, top + plot_h, top)
    ticks = nice_ticks(0.0, 1.0)
    x_ticks = [t for t in nice_ticks(x_lo, 1.0) if t >= x_lo - 1e-9]
    body: list[str] = []
    _frame(body, x, y, x_ticks, ticks, "confidence", "accuracy")
    body.append(
        f'<line class="ref" x1="{_f(x(x_lo))}" y1="{_f(y(x_lo))}" x2="{_f(x(1))}" y2="{_f(y(1))}"/>'
    )
    for lower, upper, confidence, accuracy, count in bins:
        if not count or accuracy is None:
            continue
        a, b = x(lower), x(upper)
        body.append(
            f'<rect class="acc" x="{_f(a)}" y="{_f(y(accuracy))}" width="{_f(b - a)}" '
            f'height="{_f(y(0) - y(accuracy))}"><title>{_t(_bin_text(lower, upper, confidence, accuracy, count))}</title></rect>'
        )
        if confidence is not None:
            top_v, bottom_v = max(confidence, accuracy), min(confidence, accuracy)
            body.append(
                f'<rect class="gap" x="{_f(a)}" y="{_f(y(top_v))}" width="{_f(b - a)}" '
                f'height="{_f(y(bottom_v) - y(top_v))}"/>'
            )
            body.append(
                f'<line class="conf" x1="{_f(a)}" x2="{_f(b)}" y1="{_f(y(confidence))}" y2="{_f(y(confidence))}"/>'
            )
    # Confidence histogram: the share of examples in each bin, so empty bins read as empty.
    total = sum(b[4] for b in bins) or 1.0
    shares = [b[4] / total for b in bins]
    h_top = top + plot_h + gap
    h_max = max(shares, default=1.0) or 1.0
    h_ticks = nice_ticks(0.0, h_max, 2)
    h_hi = max(h_ticks[-1], h_max)
    hy = _Scale(0.0, h_hi, h_top + hist_h, h_top)
    _frame(body, x, hy, x_ticks, h_ticks, "confidence", "share")
    for (lower, upper, _, _, count), share in zip(bins, shares, strict=True):
        if not count:
            continue
        a, b = x(lower), x(upper)
        body.append(
            f'<rect class="hist" x="{_f(a + 0.5)}" y="{_f(hy(share))}" width="{_f(max(b - a - 1, 0.5))}" '
            f'height="{_f(hy(0) - hy(share))}"><title>{_t(f"{format_number(lower, 3)}–{format_number(upper, 3)}: {format_number(count)} examples")}</title></rect>'
        )
    legend_y = h_top + hist_h + 54
    entries = [
        ("acc", "accuracy in bin"),
        ("gap", "gap to mean confidence"),
        ("ref", "perfect calibration"),
    ]
    lx = 16.0
    body.append('<g class="key">')
    for cls, name in entries:
        if lx + 30 + _text_px(name) > WIDTH:
            lx, legend_y = 16.0, legend_y + 20
        if cls == "ref":
            body.append(
                f'<line class="ref" x1="{_f(lx)}" x2="{_f(lx + 24)}" y1="{_f(legend_y - 4)}" y2="{_f(legend_y - 4)}"/>'
            )
        else:
            body.append(
                f'<rect class="{cls}" x="{_f(lx)}" y="{_f(legend_y - 11)}" width="24" height="12"/>'
            )
        body.append(f'<text class="legend" x="{_f(lx + 30)}" y="{_f(legend_y)}">{_t(name)}</text>')
        lx += 30 + _text_px(name) + 22
    body.append("</g>")
    height = legend_y + 12
    desc = _reliability_desc(bins)
    parts = _open_svg(uid, WIDTH, height, figure.get("title") or "Reliability diagram", desc)
    return Markup("\n".join([*parts, *body, "</svg>"]))


def _bin_text(
    lower: float, upper: float, confidence: float | None, accuracy: float | None, count: float
) -> str:
    return (
        f"confidence {format_number(lower, 3)}–{format_number(upper, 3)}: {format_number(count)} examples, "
        f"mean confidence {format_number(confidence, 3)}, accuracy {format_number(accuracy, 3)}"
    )


def _reliability_desc(bins: Sequence[tuple]) -> str:
    filled = [b for b in bins if b[4]]
    items = [_bin_text(*b) for b in filled[:MAX_DESC_ITEMS]]
    return (
        "Reliability diagram: accuracy of the predictions in each confidence bin compared with the "
        "diagonal of perfect calibration, and below it the share of examples per bin. "
        + "; ".join(items)
        + ("." if items else "No examples.")
    )


# --- matrix -------------------------------------------------------------------------------


def matrix_chart(figure: Mapping[str, Any], uid: str) -> Markup:
    """A heat map with the numbers written in the cells (while they fit)."""
    rows = [
        list(r) if isinstance(r, Sequence) and not isinstance(r, str) else []
        for r in figure.get("values") or []
    ]
    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    labels = list(figure.get("labels") or [])
    row_labels = list(figure.get("y_labels") or labels)
    col_labels = list(figure.get("x_labels") or labels)
    numbers = [[as_number(v) for v in r] for r in rows]
    peak = max((abs(v) for r in numbers for v in r if v is not None), default=0.0) or 1.0
    # Fit WIDTH: row labels take at most a third of it, the cells share the rest (and the
    # overhang of slanted column labels past the last column).
    chars = min(16, _fitting_chars(WIDTH / 3 - 40, bold=False))
    row_text = [_short(row_labels[i] if i < len(row_labels) else i, chars) for i in range(n_rows)]
    col_text = [_short(col_labels[j] if j < len(col_labels) else j, chars) for j in range(n_cols)]
    label_w = max((_text_px(t) for t in row_text), default=10) + 10
    left = 30 + label_w
    overhang = max((_text_px(t) for t in col_text), default=10) * 0.65
    cell = max(4.0, min(34.0, (WIDTH - left - 12) / max(n_rows, n_cols, 1)))
    rotate = any(len(t) > 3 for t in col_text) or cell < 24
    if rotate:
        cell = max(4.0, min(cell, (WIDTH - left - overhang - 4) / max(n_cols, 1)))
    widest = max((len(_cell_number(v)) for r in numbers for v in r if v is not None), default=1)
    show_text = cell >= max(24.0, 7.2 * widest + 4)  # the numbers fit inside their cells
    col_h = (max((_text_px(t) for t in col_text), default=10) * 0.75 + 12) if rotate else 18
    top = 22 + col_h
    width = WIDTH
    height = top + cell * n_rows + 16
    # A 100-class confusion matrix has 10,000 cells: past a few hundred, drop the per-cell
    # tooltips and the empty cells so the report stays small (the numbers are in audit.json).
    large = n_rows * n_cols > MAX_DETAILED_CELLS
    body: list[str] = []
    if large:
        body.append(
            f'<rect class="cell" x="{_f(left)}" y="{_f(top)}" width="{_f(cell * n_cols)}" '
            f'height="{_f(cell * n_rows)}" fill-opacity="{cell_opacity(0.0):.2f}"/>'
        )
    if figure.get("x_label"):
        body.append(
            f'<text class="label" x="{_f(left + cell * n_cols / 2)}" y="14" text-anchor="middle">{_label(figure.get("x_label"), 50)}</text>'
        )
    if figure.get("y_label"):
        cy = top + cell * n_rows / 2
        body.append(
            f'<text class="label" x="14" y="{_f(cy)}" text-anchor="middle" transform="rotate(-90 14 {_f(cy)})">{_label(figure.get("y_label"), 40)}</text>'
        )
    for j in range(len(col_text)):
        cx = left + cell * (j + 0.5)
        shown = _label(col_labels[j] if j < len(col_labels) else j, chars)
        if rotate:
            body.append(
                f'<text class="tick" x="{_f(cx)}" y="{_f(top - 6)}" transform="rotate(-50 {_f(cx)} {_f(top - 6)})">{shown}</text>'
            )
        else:
            body.append(
                f'<text class="tick" x="{_f(cx)}" y="{_f(top - 6)}" text-anchor="middle">{shown}</text>'
            )
    for i, (row, text) in enumerate(zip(numbers, row_text, strict=True)):
        cy = top + cell * i
        shown = _label(row_labels[i] if i < len(row_labels) else i, chars)
        body.append(
            f'<text class="tick" x="{_f(left - 6)}" y="{_f(cy + cell / 2 + 4)}" text-anchor="end">{shown}</text>'
        )
        for j, value in enumerate(row):
            cx = left + cell * j
            strength = 0.0 if value is None else abs(value) / peak
            if large and not strength:
                continue  # the background rectangle already shows empty cells
            cls = "cell neg" if value is not None and value < 0 else "cell"
            tip = ""
            if not large:
                row_name = row_labels[i] if i < len(row_labels) else i
                col_name = col_labels[j] if j < len(col_labels) else j
                text = (
                    f"{figure.get('y_label') or 'row'} {row_name}, "
                    f"{figure.get('x_label') or 'column'} {col_name}: {format_number(value)}"
                )
                tip = f"<title>{_t(text)}</title>"
            body.append(
                f'<rect class="{cls}" x="{_f(cx)}" y="{_f(cy)}" width="{_f(cell)}" height="{_f(cell)}" '
                f'fill-opacity="{cell_opacity(strength):.2f}">{tip}</rect>'
            )
            if show_text and value is not None:
                tone = "hi" if strength > TEXT_FLIP else "lo"
                body.append(
                    f'<text class="cv {tone}" x="{_f(cx + cell / 2)}" y="{_f(cy + cell / 2 + 4)}" '
                    f'text-anchor="middle">{_t(_cell_number(value))}</text>'
                )
    body.append(
        f'<rect class="frame" x="{_f(left)}" y="{_f(top)}" width="{_f(cell * n_cols)}" height="{_f(cell * n_rows)}"/>'
    )
    desc = _matrix_desc(figure, numbers, row_labels, col_labels)
    parts = _open_svg(uid, width, height, figure.get("title"), desc)
    return Markup("\n".join([*parts, *body, "</svg>"]))


def cell_opacity(strength: float) -> float:
    """Heat-map opacity for ``|value| / max``: monotone, but it skips the middle tones.

    Around half opacity neither the page's text colour nor the inverse reaches a 4.5:1
    contrast with the cell, so cells jump from light to dark where their text flips colour.
    """
    if strength <= TEXT_FLIP:
        return 0.06 + 0.64 * strength
    return 0.70 + 0.60 * (strength - TEXT_FLIP)


def _cell_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}" if abs(value) < 10 else format_number(value, 3)


def _matrix_desc(
    figure: Mapping[str, Any],
    numbers: Sequence[Sequence[float | None]],
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
) -> str:
    text = (
        f"Matrix with {len(numbers)} rows ({figure.get('y_label') or 'rows'}) and "
        f"{max((len(r) for r in numbers), default=0)} columns ({figure.get('x_label') or 'columns'})."
    )
    if len(numbers) <= 15:
        for i, row in enumerate(numbers):
            name = row_labels[i] if i < len(row_labels) else i
            text += f" Row {name}: " + ", ".join(format_number(v, 3) for v in row) + "."
    return text


# --- status icons -------------------------------------------------------------------------

_ICON_PATHS = {
    # a tick in a circle
    "pass": '<circle cx="8" cy="8" r="7"/><path class="mark" d="M4.5,8.3 L7,10.8 L11.6,5.6"/>',
    # an exclamation mark in a triangle
    "warn": '<path d="M8,1.2 L15.2,14.4 H0.8 Z"/><path class="mark" d="M8,5.6 V9.6 M8,11.6 V12.2"/>',
    # a cross in a square
    "fail": '<rect x="1" y="1" width="14" height="14" rx="2"/><path class="mark" d="M5,5 L11,11 M11,5 L5,11"/>',
    # a lightning bolt in an octagon: the probe itself broke
    "error": '<path d="M5,1 H11 L15,5 V11 L11,15 H5 L1,11 V5 Z"/><path class="mark" d="M9,3.5 L6,8.5 H10 L7,12.5"/>',
    # a dash in a dotted circle: not run
    "skip": '<circle class="hollow" cx="8" cy="8" r="6.5"/><path class="mark dark" d="M4.5,8 H11.5"/>',
    # an "i" in a circle
    "info": '<circle cx="8" cy="8" r="7"/><path class="mark" d="M8,7 V11.8 M8,4.2 V4.8"/>',
}


def icon(name: str) -> Markup:
    """A 16 px status icon; decorative (``aria-hidden``) because a text label always follows."""
    shape = _ICON_PATHS.get(name, _ICON_PATHS["info"])
    return Markup(
        f'<svg class="icon i-{name}" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" '
        f'focusable="false">{shape}</svg>'
    )
