"""Measure: the confusion matrix of the shared clean predictions and the adapter's diagnostics."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from auditkit.adapters.base import Diagnostics
from auditkit.functional.chance import scores_for_auroc
from auditkit.functional.classification import balanced_accuracy, confusion_matrix, per_class_recall
from auditkit.probes.performance.options import PerformanceOptions


@dataclass
class PerformanceMeasurement:
    """Plain data the judge reads. ``matrix[i][j]`` counts true class ``i`` predicted as ``j``
    (a nested list is accepted); ``accuracy`` is the fraction of audit examples right."""

    accuracy: float
    matrix: torch.Tensor
    class_names: list[str]
    diagnostics: Diagnostics
    supports_gradients: bool
    #: Two-class models: the true labels and the class-1 score, for AUROC (None otherwise).
    labels: torch.Tensor | None = None
    scores: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.matrix = torch.as_tensor(self.matrix, dtype=torch.int64)

    @property
    def n(self) -> int:
        return int(self.matrix.sum())

    @property
    def recall(self) -> torch.Tensor:
        """Accuracy within each true class (NaN for a class without examples)."""
        return per_class_recall(self.matrix)

    @property
    def balanced_accuracy(self) -> float:
        return balanced_accuracy(self.matrix)

    @property
    def present(self) -> list[int]:
        """Classes with at least one audit example."""
        return [i for i in range(len(self.matrix)) if self.matrix[i].sum() > 0]


def measure(context, opts: PerformanceOptions, budget: str) -> PerformanceMeasurement:
    """Count the shared clean predictions per true and predicted class; no model call (the same
    work at every budget)."""
    data = context.data
    k = context.adapter.num_classes
    pred = context.clean_predictions
    return PerformanceMeasurement(
        accuracy=float((pred == data.y).float().mean()) if len(data) else float("nan"),
        matrix=confusion_matrix(data.y, pred, k),
        class_names=_every_output_named(data.class_names, k),
        diagnostics=context.adapter.diagnostics,
        supports_gradients=context.adapter.supports_gradients,
        labels=data.y if k == 2 else None,
        scores=scores_for_auroc(context.clean_logits) if k == 2 else None,
    )


def _every_output_named(names: list[str] | None, k: int) -> list[str]:
    """One name per model output: data whose labels cover fewer classes than the model has
    outputs names only those, and the per-class tables index by output."""
    given = list(names or [])[:k]
    return given + [str(i) for i in range(len(given), k)]
