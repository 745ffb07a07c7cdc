"""The exact robust accuracy of a linear scikit-learn model: a certificate, not an attack's bound.

A query-limited attack (Square) only gives an upper bound on robust accuracy, and its checklist
asks whether the attack was strong enough. For a model whose decision scores are affine in the
features the attack may move, nothing has to be searched: the worst perturbation of each example
is known in closed form, so the headline is exact and the attack becomes a cross-check.

**What counts as linear.** The final estimator is one of :data:`LINEAR_CLASSIFIERS` (their
``decision_function`` is ``W x + b`` and ``predict`` its arg-max); every step before it is one of
:data:`AFFINE_STEPS` (scalers, imputers, projections), ``passthrough``/``drop``, a nested
pipeline of those, or a ColumnTransformer whose parts are affine or encode categorical columns
(which the adapter holds fixed, so they never move). A tree, kernel or network anywhere makes the
model non-linear and Square stays the headline. The structure is then confirmed on the model
itself: the scores at a random corner of every example's feasible box must equal the affine
prediction, or there is no certificate.

**The threat model is the attack's** (``auditkit.attacks.gradient_free``): eps in feature
standard deviations, each moved feature within the range observed in the attacked examples,
categorical and unread columns fixed; a missing cell stays missing. In that space the margin
against class ``j`` is ``m_j(z + δ) = m_j(z) + d_j · δ`` with ``d_j = w_y − w_j``; under L∞
its minimum takes, feature by feature, the end of the feasible interval ``[max(−eps, lo − z),
min(eps, hi − z)]`` that lowers the margin (without the range limits: ``m_j − eps‖d_j‖₁``).
Under L2 the minimiser is ``clip(−λ d_j, lower, upper)`` with ``λ`` found by bisection so that
``‖δ‖₂ = eps``. An example is robust when no class can overtake its own. Each minimiser is then
asked of the model itself: a flipped answer there is a real adversarial example, so the exact
count never rests on the algebra alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditkit.adapters.sklearn_adapter import CATEGORICAL_ENCODERS

#: Final estimators whose decision function is affine in their input and whose prediction is
#: its arg-max (the sign of a binary score).
LINEAR_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "LogisticRegressionCV",
        "LinearSVC",
        "SGDClassifier",
        "RidgeClassifier",
        "RidgeClassifierCV",
        "Perceptron",
        "PassiveAggressiveClassifier",
        "LinearDiscriminantAnalysis",
    }
)
#: Steps that are affine on the values an attack produces (an imputer is the identity on a
#: present value; a missing cell stays missing under attack).
AFFINE_STEPS = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "MaxAbsScaler",
        "RobustScaler",
        "SimpleImputer",
        "PCA",
        "TruncatedSVD",
        "VarianceThreshold",
        "SelectKBest",
        "SelectPercentile",
    }
)
#: Relative disagreement between the model's scores and the affine prediction it may show.
AFFINE_TOLERANCE = 1e-5
#: Bisection rounds for the L2 multiplier (each halves the bracket).
L2_ROUNDS = 80


def _name(step: Any) -> str:
    return type(step).__name__


def _encodes(transformer: Any) -> bool:
    parts = [s for _, s in transformer.steps] if hasattr(transformer, "steps") else [transformer]
    return any(_name(p) in CATEGORICAL_ENCODERS for p in parts)


def _affine(step: Any) -> list[str] | None:
    """The names of an affine preprocessing step's parts, or None when it is not affine."""
    if step is None or (isinstance(step, str) and step in ("passthrough", "drop")):
        return []
    name = _name(step)
    if name in AFFINE_STEPS:
        return [name]
    if name == "FunctionTransformer" and getattr(step, "func", None) is None:
        return []
    if hasattr(step, "steps"):
        names: list[str] = []
        for _, inner in step.steps:
            part = _affine(inner)
            if part is None:
                return None
            names += part
        return names
    if hasattr(step, "transformers_"):
        names = []
        for _, transformer, _ in step.transformers_:
            if not isinstance(transformer, str) and _encodes(transformer):
                names.append(f"{_name(transformer)} (categorical, held fixed)")
                continue
            part = _affine(transformer)
            if part is None:
                return None
            names += part
        return [f"ColumnTransformer({', '.join(names)})"]
    return None


def linear_structure(estimator: Any) -> list[str] | None:
    """The pipeline's parts when the estimator counts as linear (module docstring), else None.

    Example:
        >>> linear_structure(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y))
        ['StandardScaler', 'LogisticRegression']
    """
    steps = list(getattr(estimator, "steps", []))
    final = steps[-1][1] if steps else estimator
    if _name(final) not in LINEAR_CLASSIFIERS or not hasattr(final, "decision_function"):
        return None
    names = []
    for _, step in steps[:-1]:
        part = _affine(step)
        if part is None:
            return None
        names += part
    return [*dict.fromkeys(names), _name(final)]


@dataclass
class LinearCertificate:
    """Exact robustness per radius, with what confirmed it.

    ``robust[eps]``: per example of the attacked set, True when no perturbation within eps
    changes a correct answer (False for examples already wrong).
    """

    structure: list[str]
    norm: str
    robust: dict[float, np.ndarray] = field(default_factory=dict)
    witnesses_flipped: dict[float, int] = field(default_factory=dict)
    disagreements: int = 0
    max_deviation: float = 0.0

    def accuracy(self, eps: float) -> float:
        values = self.robust[eps]
        return float(values.mean()) if len(values) else 0.0

    def describe(self) -> dict[str, Any]:
        return {
            "method": "closed form for a model affine in the attacked features (exact)",
            "model": " → ".join(self.structure),
            "norm": self.norm,
            "exact_accuracy": {f"{eps:g}": self.accuracy(eps) for eps in sorted(self.robust)},
            "affine_check_max_relative_deviation": self.max_deviation,
            "disagreements_with_the_model": self.disagreements,
        }


def _decision(adapter: Any, x: torch.Tensor) -> np.ndarray:
    """The estimator's decision scores in the data's class columns (-inf: never predicted)."""
    scores = np.asarray(adapter.estimator.decision_function(adapter.table(x)), dtype=np.float64)
    out = np.full((len(x), adapter.num_classes), -np.inf)
    columns = adapter.class_columns
    if scores.ndim == 1:  # binary: positive for classes_[1]
        out[:, columns[0]], out[:, columns[1]] = -scores / 2, scores / 2
    else:
        out[:, columns] = scores
    return out


def _feasible(
    z: torch.Tensor, eps: float, lo: np.ndarray, hi: np.ndarray, moves: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per example and feature, the interval a perturbation may take (0 where it may not move:
    frozen features, missing cells)."""
    values = z.double().numpy()
    movable = moves[None, :] & np.isfinite(values)
    lower = np.where(movable, np.maximum(-eps, np.nan_to_num(lo - values, nan=0.0)), 0.0)
    upper = np.where(movable, np.minimum(eps, np.nan_to_num(hi - values, nan=0.0)), 0.0)
    return np.minimum(lower, 0.0), np.maximum(upper, 0.0)


def _minimiser(
    d: np.ndarray, lower: np.ndarray, upper: np.ndarray, norm: str, eps: float
) -> np.ndarray:
    """The perturbation in the feasible box (and the L2 ball) that lowers ``d · δ`` most."""
    corner = np.where(d > 0, lower, np.where(d < 0, upper, 0.0))
    if norm == "Linf":
        return corner
    inside = np.linalg.norm(corner, axis=-1) <= eps
    low = np.zeros(d.shape[:-1])
    high = np.full(d.shape[:-1], 1.0)
    # grow the bracket until clip(-λ d) leaves the ball (or is the whole corner)
    for _ in range(200):
        grow = ~inside & (
            np.linalg.norm(np.clip(-high[..., None] * d, lower, upper), axis=-1) < eps
        )
        if not grow.any():
            break
        high = np.where(grow, high * 2, high)
    for _ in range(L2_ROUNDS):
        mid = (low + high) / 2
        long = np.linalg.norm(np.clip(-mid[..., None] * d, lower, upper), axis=-1) > eps
        high, low = np.where(long, mid, high), np.where(long, low, mid)
    delta = np.clip(-low[..., None] * d, lower, upper)
    return np.where(inside[..., None], corner, delta)


def certify(
    adapter: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_correct: np.ndarray,
    norm: str,
    radii: list[float],
    scale: torch.Tensor | None,
    limits: Any,
    generator: torch.Generator,
) -> LinearCertificate | None:
    """The exact robust accuracy at each radius, or None when the model is not linear.

    ``scale`` and ``limits`` are the attack's (``auditkit.attacks.gradient_free``): eps in the
    space ``z = x / scale``, each feature within ``[limits.lo, limits.hi]``, ``limits.mask``
    the features that may move.
    """
    structure = linear_structure(getattr(adapter, "estimator", None))
    if structure is None or not hasattr(adapter, "table") or adapter.input_range is not None:
        return None
    x = x.double()
    s = torch.ones(x.shape[1], dtype=torch.float64) if scale is None else scale.double()
    z = x / s
    d_features = z.shape[1]
    moves = np.ones(d_features, bool) if limits.mask is None else limits.mask.numpy() != 0
    values = z.numpy()
    finite = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(all="ignore"):
        lo = np.nanmin(finite, axis=0) if len(z) else np.zeros(d_features)
        hi = np.nanmax(finite, axis=0) if len(z) else np.zeros(d_features)
    moves &= np.isfinite(lo) & (hi > lo)
    targets = np.flatnonzero(clean_correct)
    certificate = LinearCertificate(structure, norm)
    if not len(targets):
        certificate.robust = {eps: clean_correct.copy() for eps in radii}
        return certificate

    # W in z space, by one unit step along each moved feature from a complete example.
    complete = np.flatnonzero(np.isfinite(values).all(axis=1))
    anchor = z[complete[0] if len(complete) else targets[0]].clone()
    anchor = torch.where(torch.isfinite(anchor), anchor, torch.as_tensor(lo).double())
    columns = np.flatnonzero(moves)
    steps = anchor.repeat(len(columns) + 1, 1)
    steps[np.arange(1, len(columns) + 1), columns] += 1.0
    at = _decision(adapter, steps * s)
    weights = np.zeros((adapter.num_classes, d_features))
    known = np.isfinite(at[0])
    weights[np.ix_(known, columns)] = (at[1:, known] - at[0, known]).T

    labels = y.numpy()[targets]
    base = _decision(adapter, z[targets] * s)
    classes = np.flatnonzero(known)
    rows = np.arange(len(targets))

    # Confirm: a random corner of every example's widest feasible box, scores as predicted.
    widest = max(radii)
    lower, upper = _feasible(z[targets], widest, lo, hi, moves)
    pick = torch.rand(lower.shape, generator=generator, dtype=torch.float64).numpy() < 0.5
    corner = np.where(pick, lower, upper)
    predicted = base[:, known] + corner @ weights[known].T
    actual = _decision(adapter, (z[targets] + torch.as_tensor(corner)) * s)[:, known]
    size = 1.0 + np.abs(base[:, known]).max() + np.abs(corner @ np.abs(weights[known]).T).max()
    deviation = float(np.abs(predicted - actual).max() / size)
    certificate.max_deviation = deviation
    if not np.isfinite(deviation) or deviation > AFFINE_TOLERANCE:
        return None

    for eps in radii:
        lower, upper = _feasible(z[targets], eps, lo, hi, moves)
        robust = np.ones(len(targets), bool)
        witnesses = []
        for j in classes:
            rivals = labels != j
            if not rivals.any():
                continue
            d = weights[labels[rivals]] - weights[j]
            delta = _minimiser(d, lower[rivals], upper[rivals], norm, eps)
            lowest = base[rows[rivals], labels[rivals]] - base[rivals, j] + (d * delta).sum(axis=1)
            falls = lowest < 0
            robust[np.flatnonzero(rivals)[falls]] = False
            witnesses.append((np.flatnonzero(rivals)[falls], delta[falls]))
        # Ask the model at every minimiser that flips: the flip must be real.
        flipped_for_real = np.zeros(len(targets), bool)
        for index, delta in witnesses:
            if not len(index):
                continue
            scores = _decision(adapter, (z[targets][index] + torch.as_tensor(delta)) * s)
            own = scores[np.arange(len(index)), labels[index]]
            others = scores.copy()
            others[np.arange(len(index)), labels[index]] = -np.inf
            flipped_for_real[index] |= others.max(axis=1) > own
        certificate.disagreements += int((~robust & ~flipped_for_real).sum())
        exact = clean_correct.copy()
        exact[targets] = robust | ~flipped_for_real  # a flip counts only where the model flips
        certificate.robust[eps] = exact
        certificate.witnesses_flipped[eps] = int(flipped_for_real.sum())
    return certificate
