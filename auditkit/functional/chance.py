"""Above chance on imbalanced data: balanced accuracy against 1/K, AUROC against 0.5.

Plain accuracy against the majority-class rate calls a class-balanced model on a 90/10 table
"at chance" although it separates the classes (balanced accuracy 0.66, AUROC 0.70): it trades
majority-class hits for minority-class ones, which is what it was built to do. So the judgement
reads balanced accuracy (mean per-class recall; guessing gets 1/K whatever the class shares)
and, for two classes with scores, AUROC (guessing gets 0.5). Plain accuracy against
max(1/K, majority rate) is still reported beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

from auditkit.functional.classification import CHANCE_MARGIN, ChanceComparison, matrix_vs_chance


@dataclass(frozen=True)
class Interval:
    """A statistic with its interval against what guessing gets, and the verdict."""

    name: str  # "balanced accuracy" | "AUROC"
    value: float
    low: float
    high: float
    chance: float
    verdict: str  # above | at | undecided

    def describe(self) -> str:
        return (
            f"{self.name} {self.value:.1%} (interval {self.low:.1%}–{self.high:.1%}) vs chance "
            f"{self.chance:.1%}"
        )


def _verdict(low: float, high: float, chance: float) -> str:
    # The same rule as accuracy_vs_chance, so "at" means the same thing everywhere.
    if high < chance + CHANCE_MARGIN * (1 - chance):
        return "at"
    return "above" if low > chance else "undecided"


def balanced_interval(matrix: torch.Tensor, confidence: float = 0.95) -> Interval:
    """Balanced accuracy over the present classes with a normal interval whose per-class
    variances use Agresti–Coull-adjusted recalls (never zero, so a perfect class still has
    width), against 1/K of the present classes."""
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    counts = matrix.sum(dim=1)
    present = counts > 0
    k = int(present.sum())
    if k == 0:
        return Interval("balanced accuracy", float("nan"), 0.0, 1.0, 1.0, "undecided")
    hits, n = matrix.diag()[present], counts[present]
    value = float((hits / n).mean())
    adjusted = (hits + 2) / (n + 4)
    se = math.sqrt(float((adjusted * (1 - adjusted) / n).sum())) / k
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    low, high = max(0.0, value - z * se), min(1.0, value + z * se)
    chance = 1.0 / k
    return Interval("balanced accuracy", value, low, high, chance, _verdict(low, high, chance))


def auroc_interval(y: torch.Tensor, score: torch.Tensor, confidence: float = 0.95) -> Interval | None:
    """AUROC of ``score`` (higher: class 1) with the Hanley–McNeil (1982) interval; None when
    one class is absent or the score is constant."""
    y = torch.as_tensor(y).long().flatten()
    score = torch.as_tensor(score, dtype=torch.float64).flatten()
    pos, neg = score[y == 1], score[y == 0]
    n1, n0 = len(pos), len(neg)
    if not n1 or not n0 or bool((score == score[0]).all()):
        return None  # one class absent, or a constant score that ranks nothing
    # Mann–Whitney with ties counted half, via mid-ranks.
    order = torch.cat([pos, neg])
    ranks = _midranks(order)
    auc = float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n0 - 1) * (q2 - auc * auc)) / (n1 * n0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * math.sqrt(max(var, 1e-12))
    low, high = max(0.0, auc - half), min(1.0, auc + half)
    return Interval("AUROC", auc, low, high, 0.5, _verdict(low, high, 0.5))


def _midranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks from 1, ties sharing their mean rank."""
    sorted_values, order = torch.sort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(
        sorted_values, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = mean_rank[inverse]
    return ranks


@dataclass(frozen=True)
class ChanceJudgement:
    """Plain accuracy (reported), balanced accuracy and AUROC (judged), and the verdict."""

    accuracy: ChanceComparison
    balanced: Interval
    auroc: Interval | None
    verdict: str  # above | at | undecided

    def describe(self) -> str:
        parts = [self.balanced.describe()]
        if self.auroc is not None:
            parts.append(self.auroc.describe())
        return "; ".join(parts) + f" (plain {self.accuracy.describe()})"


def judge_chance(
    matrix: torch.Tensor, y: torch.Tensor | None = None, score: torch.Tensor | None = None
) -> ChanceJudgement:
    """Above chance when balanced accuracy or (two classes, scores given) AUROC is clearly above
    its chance level; at chance when every judged statistic is."""
    balanced = balanced_interval(matrix)
    auroc = None
    if y is not None and score is not None and torch.as_tensor(matrix).shape[0] == 2:
        auroc = auroc_interval(y, score)
    verdicts = [balanced.verdict] + ([auroc.verdict] if auroc is not None else [])
    if "above" in verdicts:
        verdict = "above"
    elif all(v == "at" for v in verdicts):
        verdict = "at"
    else:
        verdict = "undecided"
    return ChanceJudgement(matrix_vs_chance(matrix), balanced, auroc, verdict)


def scores_for_auroc(logits: torch.Tensor) -> torch.Tensor | None:
    """Class-1 score of a two-output model (logit or probability difference: same ranking)."""
    logits = torch.as_tensor(logits)
    if logits.ndim != 2 or logits.shape[1] != 2:
        return None
    return (logits[:, 1] - logits[:, 0]).double()
