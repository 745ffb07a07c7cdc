"""Plain classification metrics on predictions."""

from __future__ import annotations

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
