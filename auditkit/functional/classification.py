"""Plain classification metrics on predictions."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``m[i, j]`` = number of examples of true class i predicted as j."""
    index = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_recall(matrix: torch.Tensor) -> torch.Tensor:
    """Accuracy within each true class (NaN for a class with no examples)."""
    support = matrix.sum(dim=1).double()
    return torch.where(support > 0, matrix.diag().double() / support.clamp_min(1), torch.nan)


def balanced_accuracy(matrix: torch.Tensor) -> float:
    """Mean per-class recall over classes present in the data (scikit-learn's definition)."""
    recall = per_class_recall(matrix)
    present = ~torch.isnan(recall)
    return float(recall[present].mean()) if present.any() else float("nan")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Wilson score interval for a proportion (Wilson 1927): well-behaved near 0 and 1
    and for small ``n``, unlike the normal approximation."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


# "At chance" means not meaningfully above it: below chance plus this share of the way to 100%.
CHANCE_MARGIN = 0.1


@dataclass(frozen=True)
class ChanceComparison:
    """Is accuracy clearly above what guessing gets? ``verdict``: ``at`` (the interval's upper
    bound is below chance + ``CHANCE_MARGIN`` of the way to 100%: the model has learned little
    or nothing), ``above`` (otherwise, and its lower bound is above chance), or ``undecided``
    (too few examples to tell either way)."""

    accuracy: float
    low: float
    high: float
    chance: float  # max(uniform, majority)
    uniform: float  # 1 / number of classes
    majority: float  # share of the most common class
    n: int
    confidence: float
    verdict: str

    def describe(self) -> str:
        return (
            f"accuracy {self.accuracy:.1%} ({self.confidence:.0%} interval {self.low:.1%}–"
            f"{self.high:.1%}, n={self.n}) vs chance {self.chance:.1%} (1/K = {self.uniform:.1%}, "
            f"majority class {self.majority:.1%})"
        )


def accuracy_vs_chance(
    correct: int, class_counts: Sequence[int], confidence: float = 0.95
) -> ChanceComparison:
    """``correct`` of ``sum(class_counts)`` examples right, against ``max(1/K, majority rate)``
    with a Wilson interval; ``class_counts`` holds every class's number of examples (K = its
    length, zeros included)."""
    counts = [int(c) for c in class_counts]
    n = sum(counts)
    majority = max(counts) / n if n else 0.0
    uniform = 1.0 / max(len(counts), 1)
    chance = max(uniform, majority)
    low, high = wilson_interval(int(correct), n, confidence)
    if high < chance + CHANCE_MARGIN * (1 - chance):
        verdict = "at"  # even the interval's optimistic end is barely above guessing
    elif low > chance:
        verdict = "above"
    else:
        verdict = "undecided"
    accuracy = int(correct) / n if n else float("nan")
    return ChanceComparison(accuracy, low, high, chance, uniform, majority, n, confidence, verdict)


def compare_to_chance(
    y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int, confidence: float = 0.95
) -> ChanceComparison:
    """Accuracy with a Wilson interval against ``max(1/K, majority-class rate)``.

    Example:
        >>> compare_to_chance(y, logits.argmax(1), 10).verdict   # "above" for a trained model
    """
    correct = int((y_true.long() == y_pred.long()).sum())
    counts = torch.bincount(y_true.long(), minlength=num_classes).tolist()
    return accuracy_vs_chance(correct, counts, confidence)


def matrix_vs_chance(matrix: torch.Tensor, confidence: float = 0.95) -> ChanceComparison:
    """The same from a confusion matrix (``m[i, j]``: true class i predicted as j)."""
    matrix = torch.as_tensor(matrix)
    return accuracy_vs_chance(int(matrix.diag().sum()), matrix.sum(dim=1).tolist(), confidence)
