"""``save_model``: a self-describing ``torch.export`` archive, the format auditkit writes.

The metadata travels inside the archive (``auditkit.json``), so ``auditkit scan PATH`` needs no
flags: when the example inputs come from a data set auditkit ships, its name is recorded too
(``loading.provenance``).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import torch
from torch import nn

from auditkit.loading.metadata import METADATA_NAME, ModelMetadata


def save_model(
    model: nn.Module,
    path: str | Path,
    *,
    example_input: torch.Tensor,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Save ``model`` as a self-describing ``torch.export`` archive (batch dimension dynamic).

    The metadata (input shape, value range, normalization, class names, data set) travels inside
    the archive, so ``auditkit scan PATH`` needs no flags. When ``metadata`` names no data set
    and ``example_input`` is rows of a built-in data set (e.g. ``digits``), that data set is
    recorded (with its value range and modality where unset): the default ``--data``.

    Example:
        >>> save_model(net, "digits.pt2", example_input=x[:2], metadata=ModelMetadata(...))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch")
        program = torch.export.export(
            model, (example_input,), dynamic_shapes=({0: batch},), strict=False
        )
    finally:
        model.train(was_training)
    meta = metadata or ModelMetadata(input_shape=tuple(example_input.shape[1:]))
    if meta.input_shape is None:
        meta = dataclasses.replace(meta, input_shape=tuple(example_input.shape[1:]))
    if meta.dataset is None:
        meta = _with_builtin_dataset(meta, example_input)
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_NAME: json.dumps(meta.to_dict())})
    path.write_bytes(buffer.getvalue())
    return path


def _with_builtin_dataset(meta: ModelMetadata, example_input: torch.Tensor) -> ModelMetadata:
    """``meta`` naming the built-in data set ``example_input`` came from, if it came from one."""
    from auditkit.loading.provenance import builtin_dataset_of

    found = builtin_dataset_of(example_input)
    if found is None:
        return meta
    name, data = found
    return dataclasses.replace(
        meta,
        dataset=name,
        input_range=meta.input_range if meta.input_range is not None else data.input_range,
        modality=meta.modality or data.modality,
    )
