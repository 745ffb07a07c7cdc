"""Vectorized bootstrap intervals for per-group metrics: counts, not DataFrames.

fairlearn's ``MetricFrame(n_boot=B)`` draws B resamples of the rows (with replacement, not
stratified: ``DataFrame.sample(frac=1, replace=True)``) and runs a pandas groupby and every metric
function on each; at 90k examples that is minutes. Every metric the bias probe bootstraps
(accuracy, selection rate, TPR, FPR, the mean of a per-example value, a group's ECE) is a
function of a few per-group sums, so one resample is a ``np.bincount`` over the resampled rows'
cell codes, and all B resamples are one ``bincount`` over ``row · cells + cell``.

Two resampling schemes, both the row bootstrap:

- ``"rows"`` replays fairlearn's own draws: the per-resample seeds come from
  ``default_rng(random_state).integers(0, 2**32 - 1, B, dtype=uint32)`` and resample ``i`` is
  ``RandomState(seed_i).choice(n, n, replace=True)``, exactly as ``MetricFrame`` does, so the
  intervals equal ``MetricFrame(n_boot=B, random_state=…).by_group_ci`` (tested). Cost
  O(B · n), in chunks of bounded memory.
- ``"multinomial"`` draws the per-cell counts of a resample directly: a row bootstrap puts
  ``Multinomial(n, cell frequencies)`` rows in the cells, so the intervals have the same
  distribution as fairlearn's (tested against it, and for coverage) at O(B · cells), whatever n.
  It needs metrics that are functions of cell counts only (not ``group_means`` / ``group_ece``).

Quantiles follow fairlearn: a group absent from a resample (or a rate without a denominator in
it) is NaN there and ignored by ``np.nanquantile``.

Example:
    >>> boot = group_confusion_bootstrap(codes, y, pred, n_groups=3, n_classes=2, n_boot=200,
    ...                                  random_state=7)
    >>> low, high = group_quantiles(accuracy_from_confusion(boot), [0.025, 0.975])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

SCHEMES = ("rows", "multinomial")
# Index-matrix chunks hold at most this many resampled rows (int64: 32 MB).
_CHUNK_ELEMENTS = 4_000_000


def resample_seeds(n_boot: int, random_state: int) -> np.ndarray:
    """The per-resample seeds fairlearn derives from an integer ``random_state``."""
    generator = np.random.default_rng(seed=int(random_state))
    return generator.integers(low=0, high=np.iinfo(np.uint32).max, size=n_boot, dtype=np.uint32)


def resampled_indices(
    n: int, n_boot: int, random_state: int, *, chunk_elements: int = _CHUNK_ELEMENTS
) -> Iterator[np.ndarray]:
    """Index matrices ``(b, n)`` of row resamples, chunk by chunk, identical to MetricFrame's.

    Row ``i`` is what ``DataFrame.sample(frac=1, replace=True, random_state=seed_i)`` picks.
    """
    seeds = resample_seeds(n_boot, random_state)
    rows = max(1, chunk_elements // max(n, 1))
    for start in range(0, n_boot, rows):
        block = seeds[start : start + rows]
        out = np.empty((len(block), n), dtype=np.intp)
        for i, seed in enumerate(block):
            out[i] = np.random.RandomState(seed).choice(n, size=n, replace=True)
        yield out


def cell_sums_bootstrap(
    cells: np.ndarray,
    n_cells: int,
    *,
    n_boot: int,
    random_state: int,
    values: Sequence[np.ndarray] = (),
    scheme: str = "rows",
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per-resample counts of each cell, and per-resample sums of ``values`` in each cell.

    Args:
        cells: ``(n,)`` integer cell code per example, in ``0..n_cells-1``.
        n_cells: number of cells.
        n_boot: number of resamples B.
        random_state: integer seed (as MetricFrame's ``random_state``).
        values: per-example arrays to sum per cell (``"rows"`` scheme only).
        scheme: ``"rows"`` or ``"multinomial"`` (see the module docstring).

    Returns:
        ``counts`` of shape ``(B, n_cells)`` and one ``(B, n_cells)`` float array per value.
    """
    cells = np.asarray(cells, dtype=np.intp).reshape(-1)
    n = cells.size
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if n_boot < 1:
        raise ValueError("n_boot must be a positive integer")
    if scheme == "multinomial":
        if values:
            raise ValueError("the multinomial scheme resamples counts only; use scheme='rows'")
        if n == 0:
            return np.zeros((n_boot, n_cells), dtype=np.int64), []
        frequencies = np.bincount(cells, minlength=n_cells) / n
        rng = np.random.default_rng(int(random_state))
        return rng.multinomial(n, frequencies, size=n_boot).astype(np.int64), []
    weights = [np.asarray(v, dtype=np.float64).reshape(-1) for v in values]
    counts = np.zeros((n_boot, n_cells), dtype=np.int64)
    sums = [np.zeros((n_boot, n_cells), dtype=np.float64) for _ in weights]
    start = 0
    for index in resampled_indices(n, n_boot, random_state):
        b = len(index)
        # One bincount for the whole chunk: resample r's cells are offset by r · n_cells.
        flat = (cells[index] + (np.arange(b, dtype=np.intp) * n_cells)[:, None]).reshape(-1)
        size = b * n_cells
        counts[start : start + b] = np.bincount(flat, minlength=size).reshape(b, n_cells)
        for out, w in zip(sums, weights, strict=True):
            out[start : start + b] = np.bincount(
                flat, weights=w[index].reshape(-1), minlength=size
            ).reshape(b, n_cells)
        start += b
    return counts, sums


def group_confusion_bootstrap(
    groups: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_groups: int,
    n_classes: int,
    n_boot: int,
    random_state: int,
    scheme: str = "rows",
) -> np.ndarray:
    """Per-resample confusion matrices of every group: ``(B, G, K, K)`` counts [true, pred].

    Args:
        groups: ``(n,)`` group code per example in ``0..n_groups-1``.
        y_true, y_pred: class indices in ``0..n_classes-1``.
    """
    groups = np.asarray(groups, dtype=np.intp)
    y_true = np.asarray(y_true, dtype=np.intp)
    y_pred = np.asarray(y_pred, dtype=np.intp)
    k = int(n_classes)
    cells = (groups * k + y_true) * k + y_pred
    counts, _ = cell_sums_bootstrap(
        cells, n_groups * k * k, n_boot=n_boot, random_state=random_state, scheme=scheme
    )
    return counts.reshape(n_boot, n_groups, k, k)


def group_confusion(groups, y_true, y_pred, *, n_groups: int, n_classes: int) -> np.ndarray:
    """The confusion matrix of every group on the data itself: ``(G, K, K)``."""
    k = int(n_classes)
    cells = (np.asarray(groups, np.intp) * k + np.asarray(y_true, np.intp)) * k + np.asarray(
        y_pred, np.intp
    )
    return np.bincount(cells, minlength=n_groups * k * k).reshape(n_groups, k, k)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def accuracy_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Accuracy per group from ``(..., K, K)`` confusion counts (NaN for an empty group)."""
    return _ratio(np.trace(confusion, axis1=-2, axis2=-1), confusion.sum(axis=(-2, -1)))


def selection_rate_from_confusion(confusion: np.ndarray, positive: int) -> np.ndarray:
    """P(pred = positive) per group, one-vs-rest."""
    return _ratio(confusion[..., :, positive].sum(-1), confusion.sum(axis=(-2, -1)))


def true_positive_rate_from_confusion(confusion: np.ndarray, positive: int) -> np.ndarray:
    """P(pred = positive | label = positive) per group; NaN without positives."""
    return _ratio(confusion[..., positive, positive], confusion[..., positive, :].sum(-1))


def false_positive_rate_from_confusion(confusion: np.ndarray, positive: int) -> np.ndarray:
    """P(pred = positive | label ≠ positive) per group; NaN without negatives."""
    predicted = confusion[..., :, positive].sum(-1) - confusion[..., positive, positive]
    negatives = confusion.sum(axis=(-2, -1)) - confusion[..., positive, :].sum(-1)
    return _ratio(predicted, negatives)


RATES_FROM_CONFUSION = {
    "selection_rate": selection_rate_from_confusion,
    "true_positive_rate": true_positive_rate_from_confusion,
    "false_positive_rate": false_positive_rate_from_confusion,
}


def group_means_bootstrap(
    groups: np.ndarray, values: np.ndarray, *, n_groups: int, n_boot: int, random_state: int
) -> np.ndarray:
    """Per-resample mean of ``values`` in every group, ``(B, G)`` (e.g. robust correctness)."""
    counts, (sums,) = cell_sums_bootstrap(
        groups, n_groups, n_boot=n_boot, random_state=random_state, values=[values]
    )
    return _ratio(sums, counts)


def group_ece_bootstrap(
    groups: np.ndarray,
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    n_groups: int,
    n_boot: int,
    random_state: int,
    n_bins: int = 15,
) -> np.ndarray:
    """Per-resample equal-width ECE of every group, ``(B, G)``.

    Bins as ``auditkit.functional.calibration.calibration_bins`` (right-closed, the first also
    holds 0): ECE = Σ_bins |Σ correct − Σ confidence| / n_group.
    """
    conf = np.asarray(confidence, dtype=np.float64).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    cells = np.asarray(groups, dtype=np.intp) * n_bins + bins
    counts, (hits, confs) = cell_sums_bootstrap(
        cells,
        n_groups * n_bins,
        n_boot=n_boot,
        random_state=random_state,
        values=[np.asarray(correct, dtype=np.float64), conf],
    )
    gap = np.abs(hits - confs).reshape(n_boot, n_groups, n_bins).sum(-1)
    return _ratio(gap, counts.reshape(n_boot, n_groups, n_bins).sum(-1))


def group_quantiles(samples: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """``np.nanquantile`` over resamples (axis 0), as MetricFrame's ``by_group_ci``.

    Returns ``(len(quantiles), *samples.shape[1:])``; all-NaN columns stay NaN.
    """
    samples = np.asarray(samples, dtype=np.float64)
    out = np.full((len(quantiles), *samples.shape[1:]), np.nan)
    defined = ~np.all(np.isnan(samples), axis=0)
    if defined.any():
        out[:, defined] = np.nanquantile(samples[:, defined], q=list(quantiles), axis=0)
    return out


def difference_samples(samples: np.ndarray) -> np.ndarray:
    """Highest minus lowest group per resample (NaN groups ignored), ``(B,)``."""
    with np.errstate(invalid="ignore"):
        defined = ~np.all(np.isnan(samples), axis=1)
        out = np.full(samples.shape[0], np.nan)
        out[defined] = np.nanmax(samples[defined], axis=1) - np.nanmin(samples[defined], axis=1)
    return out


def worst_group_samples(samples: np.ndarray) -> np.ndarray:
    """Lowest group value per resample (NaN groups ignored), ``(B,)``."""
    defined = ~np.all(np.isnan(samples), axis=1)
    out = np.full(samples.shape[0], np.nan)
    out[defined] = np.nanmin(samples[defined], axis=1)
    return out
