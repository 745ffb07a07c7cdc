"""Which built-in data set a model's example inputs came from, so ``save_model`` can record it.

"No flags" means no flags: a model trained on data auditkit ships (``digits``, ``credit``) and
saved with ``save_model`` names that data set in its metadata without the user spelling
``ModelMetadata(dataset=...)``. The example inputs are matched row by row, exactly, against the
data set's audit and training splits: the values, not how the tensor was made, decide (a clone,
a DataLoader batch or a copy on another device is recognized; normalized or augmented inputs are
not, and then nothing is recorded). Only names of data sets auditkit itself provides are
recorded, never a path, and never a plugin's data set (building one runs the plugin's code).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from auditkit.data.core import AuditData

#: Most example rows matched: a few rows identify a data set as well as thousands do.
MAX_ROWS = 64


def builtin_dataset_of(example_input: torch.Tensor) -> tuple[str, AuditData] | None:
    """``(name, data)`` of the built-in data set every example row belongs to, else None."""
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 2 or not len(example_input):
        return None
    rows = example_input.detach().to("cpu")[:MAX_ROWS]
    for name, data in _own_builtins():
        for split in (data, data.train):
            if split is not None and _all_rows_in(rows, split.x):
                return name, data
    return None


def _own_builtins() -> Iterator[tuple[str, AuditData]]:
    """auditkit's own built-in data sets, built with their defaults (what ``--data NAME`` loads)."""
    from auditkit.data.loaders import DATASET_GROUP, build_registered, builtin_datasets
    from auditkit.registry import iter_entry_points

    own = {"digits"} | {
        ep.name for ep in iter_entry_points(DATASET_GROUP)
        if ep.value.partition(".")[0].partition(":")[0] == "auditkit"
    }
    for name, build in sorted(builtin_datasets().items()):
        if name in own:
            yield name, build_registered(build, f"--data {name}")


def _all_rows_in(rows: torch.Tensor, x: torch.Tensor) -> bool:
    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(rows.shape[1:]):
        return False
    try:
        rows = rows.to(x.dtype)
    except (RuntimeError, TypeError):
        return False
    flat = x.reshape(len(x), -1)
    return all(bool((flat == row.reshape(1, -1)).all(dim=1).any()) for row in rows)
