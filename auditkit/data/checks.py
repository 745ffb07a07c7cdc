"""Checks every data file and loader shares: the file itself, finite values, integer labels,
the input box, class names. Below the loaders (``loaders``, ``tables``) that call them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit.data.core import AuditData, one_hot_message
from auditkit.errors import AuditkitInputError


def check_data_file(path: Path) -> None:
    # Regular file, safe zip, declared sizes within --load-memory: auditkit.bounds.data (#24).
    from auditkit.bounds.data import check_data_file as bounded

    bounded(path)


def check_finite(x: np.ndarray, where: str) -> None:
    # NaN inputs give NaN logits and silently wrong metrics; say so up front.
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise AuditkitInputError(
            f"{where}: {bad} examples contain NaN or infinite values; clean or drop them"
        )


def complete_class_names(data: AuditData, num_classes: int | None) -> None:
    """Name every model output: data whose labels cover only some classes (a two-class model
    audited on one-class data) gets its class names from its labels, fewer than the outputs.
    The missing ones are named by index, so every per-class table has a row per output."""
    names = data.class_names
    if names and num_classes and len(names) < num_classes:
        data.class_names = [*names, *(str(i) for i in range(len(names), num_classes))]


def align_class_order(data: AuditData, model_names: list[str] | None) -> str | None:
    """Re-number the data's labels to the model's class order when both name the same classes
    in different orders (an image folder sorts its classes by name; the model's metadata gives
    its output order). Returns a sentence for the report, or None when nothing moved. Names
    that are not the same set are left alone: the performance probe says if the predictions
    match another order."""
    model = [str(n) for n in model_names or []]
    listed = [str(n) for n in data.class_names or []]
    if not listed or not model or listed == model or len(set(model)) != len(model):
        return None
    if sorted(listed) != sorted(model):
        return None
    for part in (data, data.train):
        names = [str(n) for n in (part.class_names or [])] if part is not None else []
        if part is None or sorted(names) != sorted(model):
            continue  # training data named otherwise (or not at all) keeps its labels
        where = torch.as_tensor([model.index(n) for n in names], dtype=part.y.dtype)
        part.y, part.class_names = where[part.y.long()], list(model)
    return (f"labels re-numbered to the model's class order ({', '.join(model)}); the data "
            f"listed them as {', '.join(listed)}")


def check_input_box(data: AuditData, box: tuple[float, float] | None) -> None:
    """Refuse data outside the declared input box: attacks clamp to the box, so pixels in
    [0, 16] audited as [0, 1] would be "attacked" by the clamp alone."""
    if box is None or not len(data.x) or not torch.is_floating_point(data.x):
        return
    lo, hi = float(data.x.min()), float(data.x.max())
    slack = 1e-4 * (box[1] - box[0])
    if lo < box[0] - slack or hi > box[1] + slack:
        raise AuditkitInputError(
            f"data {data.name}: values span [{lo:.4g}, {hi:.4g}] but the model's input box is "
            f"[{box[0]:g}, {box[1]:g}] (--input-range or the model file's metadata); rescale "
            f"the data, or pass --input-range {lo:.4g},{hi:.4g} if that is the model's real range"
        )


def int_labels(values: Any, path: Path) -> np.ndarray:
    raw = np.asarray(values)
    if raw.ndim == 2 and raw.shape[1] > 1:
        raise AuditkitInputError(one_hot_message(f"--data {path}", tuple(raw.shape)))
    y = raw.reshape(-1)
    if not np.issubdtype(y.dtype, np.number) or (
        np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y))
    ):
        raise AuditkitInputError(
            f"--data {path}: labels 'y' must be integer class indices 0..K-1 (got {y.dtype})"
        )
    # The range (0..K-1, K = the model's outputs) is checked once, in pipeline.build_context,
    # where the model's class count is known; here only that they are integers.
    return y.astype(np.int64)
