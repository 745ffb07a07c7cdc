"""Group-fairness math on predictions: one-vs-rest rates, signed gaps, proxy slices.

Pure numpy, no I/O. The metric functions take ``(y_true, y_pred, ...)`` so they plug straight
into fairlearn's ``MetricFrame`` (which splits them by group and bootstraps them); they are kept
cheap on purpose, because a bootstrap calls each one ``n_boot × (groups + 1)`` times. Tests check
them against fairlearn's own ``selection_rate`` / ``true_positive_rate`` / ... on the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from auditkit.functional.calibration import expected_calibration_error

MetricFn = Callable[..., float]


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the label (NaN for no examples)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if y_true.size else float("nan")


def selection_rate(y_true, y_pred, *, positive: int = 1) -> float:
    """Fraction predicted as ``positive`` (one-vs-rest for multiclass)."""
    y_pred = np.asarray(y_pred)
    return float(np.mean(y_pred == positive)) if y_pred.size else float("nan")


def true_positive_rate(y_true, y_pred, *, positive: int = 1) -> float:
    """P(pred = positive | label = positive); NaN when the group has no positives."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    mask = y_true == positive
    return float(np.mean(y_pred[mask] == positive)) if mask.any() else float("nan")


def false_positive_rate(y_true, y_pred, *, positive: int = 1) -> float:
    """P(pred = positive | label ≠ positive); NaN when the group has no negatives."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    mask = y_true != positive
    return float(np.mean(y_pred[mask] == positive)) if mask.any() else float("nan")


def mean_of(y_true, y_pred, *, values) -> float:
    """Mean of a per-example value (e.g. robust correctness from the adversarial probe)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else float("nan")


def calibration_error(y_true, y_pred, *, confidence, correct, n_bins: int = 15) -> float:
    """ECE of a group's examples, from the calibration probe's confidences and hits."""
    if np.asarray(confidence).size == 0:
        return float("nan")
    return expected_calibration_error(confidence, correct, n_bins=n_bins)


RATE_FUNCTIONS: dict[str, Callable[..., float]] = {
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
}


def rate_metrics(positive: int, suffix: str = "") -> dict[str, MetricFn]:
    """Selection rate, TPR and FPR one-vs-rest for class ``positive``, keyed ``name + suffix``."""
    return {name + suffix: partial(fn, positive=positive) for name, fn in RATE_FUNCTIONS.items()}


def image_statistics(x, input_range: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Per-image brightness (mean), contrast (standard deviation) and ink coverage.

    Channels are averaged to grey first. Ink coverage is the fraction of pixels brighter than
    the middle of the input box (light strokes on a dark background, as in digits); without a
    box the middle of the observed range is used.
    """
    arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
    arr = arr.astype(np.float64)
    if arr.ndim == 4:
        arr = arr.mean(axis=1)
    flat = arr.reshape(len(arr), -1)
    if input_range is not None:
        lo, hi = float(input_range[0]), float(input_range[1])
    else:
        lo, hi = (float(flat.min()), float(flat.max())) if flat.size else (0.0, 1.0)
    middle = (lo + hi) / 2.0
    return {
        "brightness": flat.mean(axis=1),
        "contrast": flat.std(axis=1),
        "ink_coverage": (flat > middle).mean(axis=1),
    }


def quantile_slices(values, q: int, name: str) -> tuple[np.ndarray, list[str]]:
    """Cut ``values`` into at most ``q`` quantile bins; return a label per example and the labels
    in ascending order. Ties at bin edges can merge bins (discrete values such as ink coverage).
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, q + 1)))
    if len(edges) < 2:
        label = f"{name} (all {values[0]:.3g})" if values.size else name
        return np.full(len(values), label, dtype=object), [label]
    index = np.clip(np.searchsorted(edges[1:-1], values, side="right"), 0, len(edges) - 2)
    used = np.unique(index)
    labels = {}
    for rank, b in enumerate(used, start=1):
        members = values[index == b]
        labels[b] = f"{name} Q{rank}/{len(used)} [{members.min():.3g}, {members.max():.3g}]"
    out = np.array([labels[b] for b in index], dtype=object)
    return out, [labels[b] for b in used]
