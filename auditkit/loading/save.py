"""``save_model``: a self-describing ``torch.export`` archive, the format auditkit writes.

The metadata travels inside the archive (``auditkit.json``), so ``auditkit scan PATH`` needs no
flags.
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
    the archive, so ``auditkit scan PATH`` needs no flags.

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
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_NAME: json.dumps(meta.to_dict())})
    path.write_bytes(buffer.getvalue())
    return path
