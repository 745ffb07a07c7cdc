"""ONNX graphs as exporters write them today, rewritten into the form onnx2torch converts.

onnx2torch 1.5 registers converters per operator *version* up to opset 17, so a graph from
today's ``torch.onnx.export`` (the dynamo exporter: opset 18+, ``Reshape`` with ``allowzero=1``)
or from a framework that stores weights as ``Constant`` nodes is refused although every
operator in it is supported. Each step below keeps the graph's meaning and is skipped (and
recorded) when it does not apply or fails; the converted twin is still checked against
onnxruntime, so a wrong rewrite can never reach the audit. Only the copy given to onnx2torch is
rewritten: onnxruntime always runs the file as shipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditkit.errors import one_line

#: The newest default-domain opset onnx2torch 1.5 converts operator by operator.
CONVERTER_OPSET = 17


@dataclass
class Normalized:
    """The rewritten graph and, in words, what was done to it."""

    proto: Any
    steps: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def default_opset(proto: Any) -> int | None:
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def lift_constants(proto: Any) -> tuple[Any, int]:
    """``Constant`` nodes become initializers (onnx-ir's pass): converters read weights from
    initializers, not from the outputs of other nodes."""
    import onnx_ir as ir
    from onnx_ir.passes.common import LiftConstantsToInitializersPass

    before = sum(1 for n in proto.graph.node if n.op_type == "Constant")
    if not before:
        return proto, 0
    model = ir.from_proto(proto)
    LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)
    lifted = ir.to_proto(model)
    after = sum(1 for n in lifted.graph.node if n.op_type == "Constant")
    return lifted, before - after


def drop_needless_allowzero(proto: Any) -> int:
    """``Reshape(allowzero=1)`` with a constant target shape that holds no 0 means the same as
    ``allowzero=0`` (the dynamo exporter writes it always); onnx2torch converts only the
    latter. Returns how many nodes changed (in place)."""
    from onnx import numpy_helper

    shapes = {t.name: t for t in proto.graph.initializer}
    changed = 0
    for node in proto.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in shapes:
            continue
        attrs = [a for a in node.attribute if a.name == "allowzero" and a.i == 1]
        if not attrs or (numpy_helper.to_array(shapes[node.input[1]]) == 0).any():
            continue
        node.attribute.remove(attrs[0])
        changed += 1
    return changed


def normalize(proto: Any) -> Normalized:
    """The graph onnx2torch gets: constants lifted, opset lowered to ``CONVERTER_OPSET``,
    ``Reshape``'s needless ``allowzero`` dropped, shapes inferred."""
    import onnx

    result = Normalized(proto)
    try:
        result.proto, lifted = lift_constants(result.proto)
        if lifted:
            result.steps.append(f"{lifted} Constant node(s) lifted to initializers")
    except Exception as exc:  # a graph onnx-ir cannot read: convert it as it is
        result.skipped.append(f"constants not lifted ({one_line(exc, 120)})")
    opset = default_opset(result.proto)
    if opset is not None and opset > CONVERTER_OPSET:
        try:
            result.proto = onnx.version_converter.convert_version(result.proto, CONVERTER_OPSET)
            result.steps.append(f"opset {opset} converted to {CONVERTER_OPSET}")
        except Exception as exc:  # no down-conversion for some operator: say so
            result.skipped.append(
                f"opset {opset} not converted to {CONVERTER_OPSET} ({one_line(exc, 120)})")
    changed = drop_needless_allowzero(result.proto)
    if changed:
        result.steps.append(f"allowzero dropped from {changed} Reshape node(s)")
    try:
        result.proto = onnx.shape_inference.infer_shapes(result.proto)
        result.steps.append("shapes inferred")
    except Exception as exc:
        result.skipped.append(f"shapes not inferred ({one_line(exc, 120)})")
    return result
