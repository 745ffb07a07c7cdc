"""Number and value formatting shared by the HTML, JUnit and Markdown renderers.

Every function is pure and locale-free, so the same audit.json always gives the same text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MISSING = "—"

# Metrics whose value is a fraction of examples read more naturally as a percentage.
_PERCENT_WORDS = ("accuracy", "coverage", "error_rate", "selection_rate")


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN and None are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_number(value: Any, digits: int = 4) -> str:
    """A compact, deterministic rendering: ints as ints, floats to ``digits`` significant digits."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value == 0:
            return "0"
        if value.is_integer() and abs(value) < 1e6:
            return str(int(value))
        if 1e-4 <= abs(value) < 1e6:
            text = f"{value:.{digits}g}"
            return text if "e" not in text else f"{value:.{max(digits - 3, 0)}f}"
        return f"{value:.{max(digits - 1, 1)}e}"
    return str(value)


def format_percent(value: Any, decimals: int = 1) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{100 * number:.{decimals}f}%"


def is_fraction_metric(name: str, value: Any) -> bool:
    """Accuracies, rates and coverages in [0, 1] are shown as percentages."""
    number = as_number(value)
    return (
        number is not None
        and 0.0 <= number <= 1.0
        and any(word in name for word in _PERCENT_WORDS)
        and "difference" not in name
        and "ratio" not in name
    )


def format_metric(name: str, value: Any) -> str:
    """How a metric reads on a scorecard tile: ``98.9%`` for an accuracy, ``0.0123`` for ECE."""
    if is_fraction_metric(name, value):
        return format_percent(value)
    return format_number(value, 3)


def format_value(value: Any, *, max_items: int = 8) -> str:
    """A check value (number, bool, string, short list or mapping) as one short line."""
    if isinstance(value, (bool, int, float)) or value is None:
        return format_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        # Never raw JSON: each entry formatted like a value of its own (numbers to 4 significant
        # digits), so a nested record reads as "key value" pairs and can wrap between them.
        pairs = [f"{k} {format_value(v, max_items=max_items)}"
                 for k, v in list(value.items())[:max_items]]
        more = len(value) - max_items
        return "{" + ", ".join(pairs) + (f", … {more} more" if more > 0 else "") + "}"
    if isinstance(value, Sequence):
        items = [format_value(v, max_items=max_items) for v in list(value)[:max_items]]
        more = len(value) - max_items
        return "[" + ", ".join(items) + (f", … {more} more" if more > 0 else "") + "]"
    return str(value)


def format_seconds(value: Any) -> str:
    number = as_number(value)
    if number is None:
        return MISSING
    if number < 1:
        return f"{number:.2f} s"
    if number < 120:
        return f"{number:.1f} s"
    minutes, seconds = divmod(int(round(number)), 60)
    return f"{minutes} min {seconds:02d} s"


def headline_text(probe: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(metric name, formatted value)`` of a probe's headline metric, if it has one."""
    name = probe.get("headline")
    metrics = probe.get("metrics") or {}
    if not name or name not in metrics:
        return None
    return str(name), format_metric(str(name), metrics[name])


def threat_model(probe: Mapping[str, Any] | Any) -> str:
    """What the headline number measures against, when the probe says (``details.threat_model``,
    e.g. "L∞ eps 0.1: worst case over FGSM, PGD"); every headline names its threat model."""
    details = probe.get("details") if isinstance(probe, Mapping) else getattr(probe, "details", None)
    value = (details or {}).get("threat_model") if isinstance(details, Mapping) else None
    return " ".join(str(value).split()) if value else ""


def clip_words(text: Any, limit: int = 200) -> tuple[str, bool]:
    """Collapse whitespace and, when longer than ``limit``, cut at a word boundary with "…".

    Returns ``(text, was_cut)``; a renderer that cuts keeps the full text at hand (a tooltip),
    so nothing is lost and no word is ever split.
    """
    flat = " ".join(str(text or "").split())
    if len(flat) <= limit:
        return flat, False
    head = flat[: limit - 1]
    space = head.rfind(" ")
    if space >= limit // 3:
        head = head[:space]
    return head.rstrip(" ,;:(-") + "…", True


def one_line(text: Any, limit: int = 200) -> str:
    """Collapse whitespace and cut at a word before ``limit`` characters (with an ellipsis)."""
    return clip_words(text, limit)[0]
