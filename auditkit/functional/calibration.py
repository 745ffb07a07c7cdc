"""Calibration math on confidences (Guo et al. 2017). Pure functions, numpy or torch in.

The probe and the bias probe's per-group ECE share these; they are checked against
torchmetrics' ``CalibrationError`` in the tests.
"""

from __future__ import annotations

import numpy as np


def _as_numpy(values) -> np.ndarray:
    tolist = getattr(values, "detach", None)
    if callable(tolist):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def calibration_bins(confidence, correct, n_bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins over [0, 1]: per bin its bounds, mean confidence, accuracy
    and count (empty bins included with ``count = 0``). Bins are right-closed ``(lo, hi]``, as
    in torchmetrics, so confidence 1.0 falls in the last bin."""
    conf = _as_numpy(confidence)
    hits = _as_numpy(correct)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = index == b
        count = int(mask.sum())
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "confidence": float(conf[mask].mean()) if count else None,
                "accuracy": float(hits[mask].mean()) if count else None,
                "count": count,
            }
        )
    return bins


def expected_calibration_error(confidence, correct, n_bins: int = 15, norm: str = "l1") -> float:
    """ECE (``norm="l1"``) or MCE (``norm="max"``) with equal-width bins.

    ECE = Σ_b (n_b / n) · |acc_b − conf_b|;  MCE = max_b |acc_b − conf_b| over non-empty bins.
    """
    bins = [b for b in calibration_bins(confidence, correct, n_bins) if b["count"]]
    if not bins:
        return float("nan")
    gaps = np.array([abs(b["accuracy"] - b["confidence"]) for b in bins])
    if norm == "max":
        return float(gaps.max())
    weights = np.array([b["count"] for b in bins], dtype=np.float64)
    return float((weights * gaps).sum() / weights.sum())
