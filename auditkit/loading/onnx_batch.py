"""Graphs exported for one fixed batch size, made into a twin that takes any batch.

An exporter traces the network with an example input. Without ``dynamic_shapes``
(``torch.export``) or ``dynamic_axes`` (the legacy exporter) the graph's input is, say,
``(2, 1, 8, 8)`` and every shape computed from it becomes a constant: the flatten before the
classifier turns into ``Reshape(x, [2, 512])``. Most third-party exports look like this (often
with batch 1). onnxruntime then accepts only that batch (the adapter feeds it in chunks), and the
converted torch network fails on any other. Two remedies, tried in this order:

1. ``free_batch``: the input's batch becomes symbolic, shapes are re-inferred, and a constant
   ``Reshape`` target that starts with the batch is rewritten to start with ``0`` ("copy the
   input's first dimension", so shape inference carries the symbol on) where that is provably
   the batch: the reshaped tensor's first dimension *is* the symbolic batch and the
   target's other dimensions hold exactly one example's values, so every example is reshaped on
   its own. The rewrite is kept only if the scores then carry the symbolic batch too (nothing
   else in the graph fixed it). The twin then runs any batch at full speed.
2. ``FixedBatch``: the converted network run in chunks of the graph's batch, the last chunk
   zero-padded, exactly as onnxruntime is run. Always faithful (for graphs that keep examples
   apart), slower for batch 1; gradients flow through it.

Either twin is still compared with onnxruntime (chunked) on a batch of a different size, so a
rewrite that mixed examples would show as a disagreement and never reach the audit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: The symbolic name the graph's batch dimension gets in the rewritten copy.
BATCH = "auditkit_batch"


@dataclass
class FreedBatch:
    """The rewritten graph (None when no rewrite frees the batch) and what was done to it."""

    proto: Any
    steps: list[str] = field(default_factory=list)
    why_not: str = ""


def _dims(value_info: Any) -> list[int | str | None] | None:
    tensor = value_info.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            out.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            out.append(dim.dim_param)
        else:
            out.append(None)
    return out


def _make_batch_symbolic(value_info: Any) -> None:
    tensor = value_info.type.tensor_type
    if tensor.HasField("shape") and len(tensor.shape.dim):
        tensor.shape.dim[0].Clear()
        tensor.shape.dim[0].dim_param = BATCH


def _inferred(proto: Any) -> tuple[Any, dict[str, list[int | str | None] | None]]:
    import onnx

    proto = onnx.shape_inference.infer_shapes(proto)
    shapes = {
        v.name: _dims(v) for v in [*proto.graph.input, *proto.graph.value_info, *proto.graph.output]
    }
    return proto, shapes


def _free_target(
    target: list[int], data: list[int | str | None] | None, batch: int
) -> list[int] | None:
    """``target`` with its batch entry made ``0`` (copy the input's), or None when that is not
    provably right: the input's first dimension must be the symbolic batch and the other
    entries must hold exactly one example's values."""
    if not target or target[0] != batch or data is None or not data or data[0] != BATCH:
        return None
    rest, example = target[1:], data[1:]
    if 0 in rest or not all(isinstance(d, int) and d > 0 for d in example):
        return None  # a copied or unknown dimension: cannot check one example's size
    size = math.prod(example)  # type: ignore[arg-type]
    known = math.prod(d for d in rest if d != -1)
    if rest.count(-1) == 1:  # resolve the other -1, so the batch can take it
        if known == 0 or size % known:
            return None
        rest = [size // known if d == -1 else d for d in rest]
    elif -1 in rest or known != size:
        return None
    return [0, *rest]


def free_batch(proto: Any, batch: int, output: str) -> FreedBatch:
    """A copy of ``proto`` whose batch is symbolic, with constant ``Reshape`` targets freed."""
    from onnx import numpy_helper

    model = type(proto)()
    model.CopyFrom(proto)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    (graph_input,) = [i for i in graph.input if i.name not in initializers][:1] or [None]
    if graph_input is None:
        return FreedBatch(None, why_not="the graph has no input")
    _make_batch_symbolic(graph_input)
    for out in graph.output:  # declared at the fixed batch: inferred again below
        out.type.tensor_type.ClearField("shape")
    del graph.value_info[:]  # inferred at the fixed batch: inferred again from the new input
    try:
        model, shapes = _inferred(model)
    except Exception:  # noqa: BLE001 - no shapes, no proof: the chunked twin is used instead
        return FreedBatch(None, why_not="shapes could not be inferred")
    targets = {t.name: t for t in model.graph.initializer}
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in targets:
            continue
        target = [int(v) for v in numpy_helper.to_array(targets[node.input[1]]).reshape(-1)]
        freed = _free_target(target, shapes.get(node.input[0]), batch)
        if freed is None:
            continue
        name = f"{node.input[1]}__{BATCH}_{rewritten}"
        model.graph.initializer.append(numpy_helper.from_array(_int64(freed), name))
        node.input[1] = name
        for attr in [a for a in node.attribute if a.name == "allowzero"]:
            node.attribute.remove(attr)  # 0 must mean "copy", and no other entry is 0
        rewritten += 1
    if not rewritten:
        return FreedBatch(None, why_not="no Reshape fixes the batch")
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    try:
        model, shapes = _inferred(model)
    except Exception:  # noqa: BLE001
        return FreedBatch(None, why_not="shapes could not be inferred after the rewrite")
    scores = shapes.get(output)
    if not scores or scores[0] != BATCH:
        return FreedBatch(None, why_not="something besides Reshape fixes the batch")
    return FreedBatch(
        model,
        steps=[
            f"the graph's fixed batch of {batch} freed ({rewritten} Reshape target(s) now copy the "
            "input's batch)"
        ],
    )


def _int64(values: list[int]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.int64)


class FixedBatch(nn.Module):
    """A network that takes only batches of ``batch``, run on any batch in zero-padded chunks.

    The padding rows are computed and dropped; they never reach the outputs or the gradients of
    the real rows (for graphs that keep examples apart, which the onnxruntime check verifies).
    """

    def __init__(self, module: nn.Module, batch: int) -> None:
        super().__init__()
        self.module, self.batch = module, int(batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == self.batch:
            return self.module(x)
        parts = []
        for start in range(0, max(len(x), 1), self.batch):
            chunk = x[start : start + self.batch]
            short = self.batch - len(chunk)
            if short:
                chunk = torch.cat([chunk, chunk.new_zeros((short, *x.shape[1:]))])
            parts.append(self.module(chunk)[: self.batch - short])
        return torch.cat(parts)

    def without_softmax(self) -> nn.Module | None:
        """The same chunking around the network without its final softmax."""
        from auditkit.adapters.softmax_head import strip_softmax

        inner = strip_softmax(self.module)
        return None if inner is None else FixedBatch(inner, self.batch)
