"""Figure dictionaries (schema in ``auditkit.results``) to escaped, self-contained HTML.

One entry point, :func:`render_figure`, draws any figure kind generically, so a new probe's
pictures appear in the report without renderer changes. Charts are inline SVG (``svg.py``);
image galleries are PNG ``data:`` URIs (an SVG ``<rect>`` per pixel grows too fast for
32×32×3 images), which the report's Content-Security-Policy allows through ``img-src data:``
and nothing else.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from auditkit.images import (  # the encoding is shared with the probes that make galleries
    MAX_IMAGE_SIDE,
    PIXEL_LIST_MAX_VALUES,  # noqa: F401 - re-exported for the renderer's callers
    image_array,
    image_cell,  # noqa: F401
    png_bytes,  # noqa: F401
    png_data_uri,
)
from auditkit.images import PNG_URI as _PNG_URI
from auditkit.render import svg
from auditkit.render.fmt import as_number, format_number

MAX_TABLE_ROWS = 200
GALLERY_PX = 96  # images are scaled up by a whole factor to about this size, pixelated
GALLERY_MAX_PX = 128  # larger images are shown at most this wide

STATUS_WORDS = {
    "passed": ("pass", "PASS"),
    "pass": ("pass", "PASS"),
    "ok": ("pass", "PASS"),
    "true": ("pass", "PASS"),
    "warned": ("warn", "WARN"),
    "warn": ("warn", "WARN"),
    "warning": ("warn", "WARN"),
    "failed": ("fail", "FAIL"),
    "fail": ("fail", "FAIL"),
    "false": ("fail", "FAIL"),
    "error": ("error", "ERROR"),
    "skipped": ("skip", "SKIPPED"),
    "skip": ("skip", "SKIPPED"),
}


def badge(status: Any, label: str | None = None) -> Markup:
    """Icon plus text label: status is never shown by colour alone."""
    key = str(status).lower()
    icon_name, word = STATUS_WORDS.get(key, ("info", key.upper()))
    return Markup('<span class="badge b-{0}">{1}<span class="word">{2}</span></span>').format(
        icon_name, svg.icon(icon_name), label or word
    )


def render_figure(figure: Any, uid: str) -> Markup:
    """A ``<figure>`` with title, drawing, caption and (for charts) the data behind it."""
    if not isinstance(figure, Mapping):
        return Markup('<p class="note">A figure could not be read from audit.json.</p>')
    kind = str(figure.get("kind") or "")
    drawers = {
        "line": (svg.line_chart, _line_data),
        "bar": (svg.bar_chart, _bar_data),
        "reliability": (svg.reliability_chart, _reliability_data),
        "matrix": (svg.matrix_chart, None),
        "images": (_gallery, None),
        "table": (_table, None),
    }
    if kind not in drawers:
        body = Markup(
            '<p class="note">This report cannot draw figures of kind “{0}”; its data is in audit.json.</p>'
        ).format(kind)
        data = Markup("")
    else:
        drawer, data_table = drawers[kind]
        try:
            body = drawer(figure, uid)
            data = data_table(figure) if data_table else Markup("")
        except (
            TypeError,
            ValueError,
            KeyError,
            IndexError,
            ZeroDivisionError,
            OverflowError,
        ) as exc:
            # A malformed figure must not take the whole report down with it.
            body = Markup(
                '<p class="note">This {0} figure could not be drawn ({1}); its data is in audit.json.</p>'
            ).format(kind, f"{type(exc).__name__}: {exc}")
            data = Markup("")
    title = figure.get("title")
    caption = figure.get("caption")
    parts = [Markup('<figure class="fig fig-{0}" id="{1}">').format(kind or "unknown", uid)]
    if title:
        parts.append(Markup('<h4 class="fig-title">{0}</h4>').format(title))
    parts.append(Markup('<div class="fig-body">{0}</div>').format(body))
    if caption:
        parts.append(Markup("<figcaption>{0}</figcaption>").format(caption))
    parts.append(data)
    parts.append(Markup("</figure>"))
    return Markup("\n").join(parts)


# --- data tables behind charts -------------------------------------------------------------


def _data_details(
    header: Sequence[Any], rows: Sequence[Sequence[Any]], total: int | None = None
) -> Markup:
    """The chart's numbers as a collapsed table: its first ``MAX_TABLE_ROWS`` rows (``total``:
    how many there are, when the caller built only those)."""
    shown = rows[:MAX_TABLE_ROWS]
    head = Markup("").join(Markup('<th scope="col">{0}</th>').format(h) for h in header)
    body = Markup("").join(
        Markup("<tr>{0}</tr>").format(
            Markup("").join(Markup("<td>{0}</td>").format(_cell_text(c)) for c in row)
        )
        for row in shown
    )
    count = len(rows) if total is None else total
    more = count - len(shown)
    note = (
        Markup('<p class="note">First {0} of {1} rows; all are in audit.json.</p>').format(
            len(shown), count
        )
        if more > 0
        else Markup("")
    )
    return Markup(
        '<details class="data"><summary>Data</summary><div class="scroll"><table class="num"><thead>'
        "<tr>{0}</tr></thead><tbody>{1}</tbody></table></div>{2}</details>"
    ).format(head, body, note)


def _cell_text(value: Any) -> str:
    return format_number(value) if not isinstance(value, str) else value


def _line_data(figure: Mapping[str, Any]) -> Markup:
    series = [s for s in figure.get("series") or [] if isinstance(s, Mapping)]
    seen: set[float] = set()  # a set, not a list: a 100k-point series stays linear
    columns: list[dict[float, Any]] = []
    for s in series:
        lookup: dict[float, Any] = {}
        ys = s.get("y") or []
        for i, raw in enumerate(s.get("x") or []):
            x = as_number(raw)
            if x is None:
                continue
            if x not in lookup:
                lookup[x] = ys[i] if i < len(ys) else None
            seen.add(x)
        columns.append(lookup)
    xs = sorted(seen)
    header = [figure.get("x_label") or "x"] + [
        s.get("name") if s.get("name") is not None else f"series {i + 1}"
        for i, s in enumerate(series)
    ]
    rows = [[x] + [col.get(x) for col in columns] for x in xs[:MAX_TABLE_ROWS]]
    return _data_details(header, rows, total=len(xs))


def _bar_data(figure: Mapping[str, Any]) -> Markup:
    bars = [b for b in figure.get("bars") or [] if isinstance(b, Mapping)]
    has_ci = any(b.get("low") is not None or b.get("high") is not None for b in bars)
    has_count = any(b.get("count") is not None for b in bars)
    has_flag = any(b.get("flag") for b in bars)
    header = [figure.get("x_label") or "label", figure.get("y_label") or "value"]
    header += ["low", "high"] if has_ci else []
    header += ["n"] if has_count else []
    header += ["flag"] if has_flag else []
    rows = []
    for b in bars:
        row = [str(b.get("label")), b.get("value")]
        row += [b.get("low"), b.get("high")] if has_ci else []
        row += [b.get("count")] if has_count else []
        row += [svg._flag_text(b.get("flag")) or ""] if has_flag else []
        rows.append(row)
    return _data_details(header, rows)


def _reliability_data(figure: Mapping[str, Any]) -> Markup:
    rows = [
        [b.get("lower"), b.get("upper"), b.get("count"), b.get("confidence"), b.get("accuracy")]
        for b in figure.get("bins") or []
        if isinstance(b, Mapping)
    ]
    return _data_details(["bin from", "bin to", "examples", "mean confidence", "accuracy"], rows)


# --- table --------------------------------------------------------------------------------


def _table(figure: Mapping[str, Any], uid: str) -> Markup:
    columns = list(figure.get("columns") or [])
    rows = list(figure.get("rows") or [])
    if not columns and rows and isinstance(rows[0], Mapping):
        columns = list(rows[0])
    head = Markup("").join(Markup('<th scope="col">{0}</th>').format(c) for c in columns)
    lines = []
    for row in rows[:MAX_TABLE_ROWS]:
        cells = (
            [row.get(c) for c in columns]
            if isinstance(row, Mapping)
            else list(row if isinstance(row, Sequence) and not isinstance(row, str) else [row])
        )
        lines.append(
            Markup("<tr>{0}</tr>").format(
                Markup("").join(Markup("<td>{0}</td>").format(table_cell(c)) for c in cells)
            )
        )
    more = len(rows) - MAX_TABLE_ROWS
    note = (
        Markup('<p class="note">First {0} of {1} rows; all are in audit.json.</p>').format(
            MAX_TABLE_ROWS, len(rows)
        )
        if more > 0
        else Markup("")
    )
    return Markup(
        '<div class="scroll"><table class="num"><thead><tr>{0}</tr></thead><tbody>{1}</tbody></table></div>{2}'
    ).format(head, Markup("").join(lines), note)


def table_cell(value: Any) -> Markup:
    """A table cell: status words become badges, numbers are formatted, the rest escaped."""
    if isinstance(value, bool):
        return badge("passed" if value else "failed", "yes" if value else "no")
    if (
        isinstance(value, str)
        and value.lower() in STATUS_WORDS
        and value.lower() not in ("true", "false")
    ):
        return badge(value)
    if isinstance(value, (int, float)) or value is None:
        return Markup("{0}").format(format_number(value))
    if isinstance(value, (list, tuple)):
        return Markup("{0}").format(
            ", ".join(format_number(v) if not isinstance(v, str) else v for v in value)
        )
    return Markup("{0}").format(value)


# --- image gallery ------------------------------------------------------------------------


def png_size(uri: Any) -> tuple[int, int]:
    """(height, width) of a PNG ``data:`` URI; ValueError unless it is one (audit.json may come
    from anywhere: only a well-formed PNG data URI reaches the report's ``src``)."""
    if not isinstance(uri, str) or not uri.startswith(_PNG_URI):
        raise ValueError("png is not a data:image/png;base64 URI")
    try:
        data = base64.b64decode(uri[len(_PNG_URI) :], validate=True)
    except ValueError as exc:
        raise ValueError("png is not valid base64") from exc
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("png data is not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise ValueError(f"a {height}×{width} image is too large for the report")
    return height, width


def _gallery(figure: Mapping[str, Any], uid: str) -> Markup:
    columns = list(figure.get("columns") or [])
    rows = [r for r in figure.get("rows") or [] if isinstance(r, Mapping)]
    n_cols = max([len(columns)] + [len(r.get("cells") or []) for r in rows])
    has_captions = any(r.get("caption") for r in rows)
    head = Markup("").join(
        Markup('<th scope="col">{0}</th>').format(columns[j] if j < len(columns) else "")
        for j in range(n_cols)
    )
    if has_captions:
        head = Markup('<th scope="col"><span class="sr">example</span></th>') + head
    lines = []
    for i, row in enumerate(rows):
        cells = []
        for j, cell in enumerate(row.get("cells") or []):
            cells.append(
                _gallery_cell(
                    cell,
                    columns[j] if j < len(columns) else "",
                    row.get("caption") or f"row {i + 1}",
                )
            )
        caption = (
            Markup('<th scope="row">{0}</th>').format(row.get("caption") or "")
            if has_captions
            else Markup("")
        )
        lines.append(Markup("<tr>{0}{1}</tr>").format(caption, Markup("").join(cells)))
    return Markup(
        '<div class="scroll"><table class="gallery"><thead><tr>{0}</tr></thead><tbody>{1}</tbody></table></div>'
    ).format(head, Markup("").join(lines))


def _gallery_cell(cell: Any, column: Any, row_caption: Any) -> Markup:
    if not isinstance(cell, Mapping):
        return Markup("<td></td>")
    label = cell.get("label")
    alt = " — ".join(str(p) for p in (row_caption, column, label) if p not in (None, ""))
    try:
        if "png" in cell:
            uri = cell["png"]
            height, width = png_size(uri)
        else:
            array = image_array(cell.get("pixels"))  # once: old audits hold 224×224 lists
            uri = png_data_uri(array)
            height, width = array.shape[:2]
    except (TypeError, ValueError) as exc:
        return Markup(
            '<td><span class="note">image unreadable ({0})</span><div class="cell-label">{1}</div></td>'
        ).format(str(exc), label or "")
    side = max(height, width)
    # Small images scale up by a whole factor to about GALLERY_PX; large ones are shown at most
    # GALLERY_MAX_PX wide (the PNG keeps every pixel), so three columns fit a card.
    scale = GALLERY_MAX_PX / side if side > GALLERY_MAX_PX else max(1, GALLERY_PX // side)
    return Markup(
        '<td><img src="{0}" alt="{1}" width="{2}" height="{3}"><div class="cell-label">{4}</div></td>'
    ).format(
        uri, alt, max(1, round(width * scale)), max(1, round(height * scale)),
        label if label is not None else "",
    )
