"""Calibration math on confidences and logits (Guo et al. 2017). Pure functions, numpy or torch in.

The probe and the bias probe's per-group ECE share these; they are checked against
torchmetrics' ``CalibrationError``, scikit-learn and scipy in the tests.

Conventions:
    - Equal-width bins are right-closed ``(lo, hi]`` with the first bin closed on the left, as in
      Guo et al., so a confidence of exactly 1.0 falls in the last bin. torchmetrics (1.9) agrees
      except on exact bin edges: its bins are ``[lo, hi)`` and it counts a confidence of exactly
      1.0 in a hidden extra bin (Lightning-AI/torchmetrics#3510), which a saturated float32
      softmax produces often.
    - Multiclass Brier score sums the squared error over classes (range 0–2), like
      scikit-learn's ``brier_score_loss`` for more than two classes.
    - NLL is the mean cross-entropy in nats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEMPERATURE_BOUNDS = (0.01, 100.0)
_NORMS = ("l1", "max")


def _as_numpy(values) -> np.ndarray:
    detach = getattr(values, "detach", None)
    if callable(detach):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _labels(values) -> np.ndarray:
    detach = getattr(values, "detach", None)
    if callable(detach):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64).reshape(-1)


def _check_norm(norm: str) -> None:
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {', '.join(_NORMS)}, got {norm!r}")


def _summarise(conf: np.ndarray, hits: np.ndarray, groups: list[np.ndarray], edges) -> list[dict]:
    bins = []
    for b, members in enumerate(groups):
        count = int(members.size)
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "confidence": float(conf[members].mean()) if count else None,
                "accuracy": float(hits[members].mean()) if count else None,
                "count": count,
            }
        )
    return bins


def _gap(bins: list[dict], norm: str) -> float:
    _check_norm(norm)
    filled = [b for b in bins if b["count"]]
    if not filled:
        return float("nan")
    gaps = np.array([abs(b["accuracy"] - b["confidence"]) for b in filled])
    if norm == "max":
        return float(gaps.max())
    weights = np.array([b["count"] for b in filled], dtype=np.float64)
    return float((weights * gaps).sum() / weights.sum())


def calibration_bins(confidence, correct, n_bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins over [0, 1]: per bin its bounds, mean confidence, accuracy
    and count (empty bins included with ``count = 0``). Bins are right-closed ``(lo, hi]`` (the
    first also holds 0), so confidence 1.0 falls in the last bin.

    Args:
        confidence: predicted probability of the predicted class, shape ``(N,)``.
        correct: 1/True where the prediction was right (any values in [0, 1] work: the
            classwise ECE passes one-vs-rest labels).
        n_bins: number of bins.

    Example:
        >>> calibration_bins([0.95, 0.6], [1, 0], n_bins=2)[1]["accuracy"]
        0.5
    """
    conf = _as_numpy(confidence).reshape(-1)
    hits = _as_numpy(correct).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    groups = [np.flatnonzero(index == b) for b in range(n_bins)]
    return _summarise(conf, hits, groups, edges)


def expected_calibration_error(confidence, correct, n_bins: int = 15, norm: str = "l1") -> float:
    """ECE (``norm="l1"``) or MCE (``norm="max"``) with equal-width bins.

    ECE = Σ_b (n_b / n) · |acc_b − conf_b|;  MCE = max_b |acc_b − conf_b| over non-empty bins.

    Example:
        >>> expected_calibration_error(probs.max(-1).values, probs.argmax(-1) == y)
    """
    return _gap(calibration_bins(confidence, correct, n_bins), norm)


def adaptive_calibration_bins(confidence, correct, n_bins: int = 15) -> list[dict[str, float]]:
    """Equal-mass bins: examples sorted by confidence and cut into ``n_bins`` groups whose sizes
    differ by at most one (Nixon et al. 2019). ``lower``/``upper`` are the smallest and largest
    confidence inside each bin. Fewer examples than bins gives one bin per example."""
    conf = _as_numpy(confidence).reshape(-1)
    hits = _as_numpy(correct).reshape(-1)
    order = np.argsort(conf, kind="stable")
    groups = [g for g in np.array_split(order, min(n_bins, max(conf.size, 1))) if g.size]
    bins = _summarise(conf, hits, groups, np.zeros(len(groups) + 1))
    for b, members in zip(bins, groups, strict=True):
        b["lower"], b["upper"] = float(conf[members].min()), float(conf[members].max())
    return bins


def adaptive_calibration_error(confidence, correct, n_bins: int = 15, norm: str = "l1") -> float:
    """ECE over equal-mass bins: every bin holds the same number of examples, so the estimate is
    not dominated by the one crowded bin near confidence 1 that equal-width bins produce."""
    return _gap(adaptive_calibration_bins(confidence, correct, n_bins), norm)


def classwise_calibration_error(probabilities, labels, n_bins: int = 15) -> float:
    """Classwise ECE (Kull et al. 2019): the mean over classes of the equal-width ECE of
    ``p_k`` against the one-vs-rest label ``[y = k]``. Unlike top-label ECE it also checks the
    probabilities of the classes the model did not predict.

    Args:
        probabilities: ``(N, K)`` predicted class probabilities.
        labels: ``(N,)`` true classes.
    """
    probs = _as_numpy(probabilities)
    y = _labels(labels)
    if probs.ndim != 2 or len(probs) != len(y):
        raise ValueError("probabilities must be (N, K) with one label per row")
    if not len(y):
        return float("nan")
    per_class = [
        expected_calibration_error(probs[:, k], y == k, n_bins) for k in range(probs.shape[1])
    ]
    return float(np.mean(per_class))


def brier_score(probabilities, labels) -> float:
    """Multiclass Brier score: mean over examples of Σ_k (p_k − [y = k])² (0 best, 2 worst)."""
    probs = _as_numpy(probabilities)
    y = _labels(labels)
    if not len(y):
        return float("nan")
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((probs - onehot) ** 2).sum(axis=1).mean())


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits) -> np.ndarray:
    """Row-wise softmax in float64 (numpy out)."""
    return np.exp(_log_softmax(_as_numpy(logits)))


def negative_log_likelihood(logits, labels, temperature: float = 1.0) -> float:
    """Mean cross-entropy (nats) of ``softmax(logits / temperature)`` against ``labels``."""
    z = _as_numpy(logits) / float(temperature)
    y = _labels(labels)
    if not len(y):
        return float("nan")
    return float(-_log_softmax(z)[np.arange(len(y)), y].mean())


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature: ``probs = softmax(logits / temperature)``.

    Attributes:
        temperature: the fitted T (> 1: the model was over-confident; < 1: under-confident).
        nll_before, nll_after: mean NLL on the fitting examples at T = 1 and at the fitted T.
        at_bound: the optimum lies on the search bound (e.g. a fitting set without errors makes
            NLL fall forever as T → 0), so T is a limit, not an estimate.
        n: number of fitting examples.
    """

    temperature: float
    nll_before: float
    nll_after: float
    at_bound: bool
    n: int


def fit_temperature(
    logits,
    labels,
    *,
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS,
    tol: float = 1e-7,
) -> TemperatureFit:
    """Temperature scaling (Guo et al. 2017): the T that minimises the NLL of
    ``softmax(logits / T)`` on held-out ``labels``.

    NLL is convex in 1/T, hence unimodal in log T, so a golden-section search over
    ``log T ∈ log(bounds)`` finds the global optimum deterministically (no optimizer state, no
    learning rate to tune).

    Example:
        >>> fit = fit_temperature(logits[cal], y[cal])
        >>> calibrated = torch.softmax(logits[test] / fit.temperature, dim=-1)
    """
    z = _as_numpy(logits)
    y = _labels(labels)
    if z.ndim != 2 or len(z) != len(y) or not len(y):
        raise ValueError("logits must be (N, K) with N ≥ 1 and one label per row")
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-_log_softmax(z * np.exp(-log_t))[rows, y].mean())

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    log_t = (a + b) / 2.0
    at_bound = bool(min(log_t - lo, hi - log_t) < 1e-4)
    return TemperatureFit(
        temperature=float(np.exp(log_t)),
        nll_before=nll(0.0),
        nll_after=nll(log_t),
        at_bound=at_bound,
        n=len(y),
    )


def binary_auroc(scores, positive) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative),
    ties counting one half (Mann–Whitney U). NaN when either class is empty."""
    s = _as_numpy(scores).reshape(-1)
    pos = np.asarray(positive, dtype=bool).reshape(-1)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # average rank of each distinct value (1-based), so tied scores share their rank
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = mean_rank[inverse][pos].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def fpr_at_tpr(scores_in, scores_out, tpr: float = 0.95) -> float:
    """Fraction of ``scores_out`` at or above the threshold that keeps ``tpr`` of ``scores_in``
    (FPR at 95% TPR, the usual OOD-detection companion of AUROC)."""
    s_in, s_out = _as_numpy(scores_in).reshape(-1), _as_numpy(scores_out).reshape(-1)
    if not s_in.size or not s_out.size:
        return float("nan")
    # the highest threshold that still accepts at least ``tpr`` of the in-distribution scores
    keep_from = min(int(np.floor(s_in.size * (1.0 - tpr) + 1e-9)), s_in.size - 1)
    threshold = np.sort(s_in)[keep_from]
    return float((s_out >= threshold).mean())


@dataclass(frozen=True)
class RiskCoverage:
    """Selective prediction: abstain on the least confident examples first.

    Attributes:
        coverage: ``k / n`` for k = 1..n (fraction of examples still answered).
        risk: error rate among the k most confident examples (ties broken by their expected
            value, so the curve does not depend on the order of tied confidences).
        aurc: area under the risk–coverage curve, ``mean_k risk(k / n)``; lower is better.
        optimal_risk: the curve of a perfect ranking (every error less confident than every
            correct prediction) at the same error rate.
        optimal_aurc: its area.
        excess_aurc: ``aurc − optimal_aurc`` (Geifman et al. 2019's E-AURC).
    """

    coverage: np.ndarray
    risk: np.ndarray
    optimal_risk: np.ndarray
    aurc: float
    optimal_aurc: float

    @property
    def excess_aurc(self) -> float:
        return self.aurc - self.optimal_aurc


def risk_coverage(confidence, correct) -> RiskCoverage:
    """Risk–coverage curve and AURC (Geifman & El-Yaniv 2017).

    Answering only the ``k`` most confident of ``n`` examples has coverage ``k / n`` and
    selective risk ``errors among them / k``; AURC averages that risk over k = 1..n.

    Example:
        >>> rc = risk_coverage(probs.max(-1).values, probs.argmax(-1) == y)
        >>> rc.aurc
    """
    conf = _as_numpy(confidence).reshape(-1)
    errors = 1.0 - _as_numpy(correct).reshape(-1)
    n = conf.size
    if n == 0:
        empty = np.zeros(0)
        return RiskCoverage(empty, empty, empty, float("nan"), float("nan"))
    # Group tied confidences (most confident first); inside a tie group of size m holding e
    # errors, the first j answered carry j·e/m errors in expectation over tie-breaking.
    values, inverse = np.unique(-conf, return_inverse=True)
    group_errors = np.bincount(inverse, weights=errors, minlength=values.size)
    group_sizes = np.bincount(inverse, minlength=values.size).astype(np.float64)
    ends = np.cumsum(group_sizes)
    starts = ends - group_sizes
    errors_before = np.cumsum(group_errors) - group_errors
    k = np.arange(1, n + 1, dtype=np.float64)
    group = np.searchsorted(ends, k, side="left")
    cumulative_errors = errors_before[group] + (k - starts[group]) * (
        group_errors[group] / group_sizes[group]
    )
    risk = cumulative_errors / k
    n_errors = errors.sum()
    optimal = np.clip(k - (n - n_errors), 0.0, None) / k
    return RiskCoverage(
        coverage=k / n,
        risk=risk,
        optimal_risk=optimal,
        aurc=float(risk.mean()),
        optimal_aurc=float(optimal.mean()),
    )
