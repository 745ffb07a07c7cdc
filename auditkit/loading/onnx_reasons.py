"""Why an ONNX model is audited as a black box, in one sentence a newcomer can act on.

Each reason the converted torch network (the twin) is not used says what went wrong in plain
words and what to do to get gradient attacks back; the raw exception text, useful to whoever
files a bug, is kept apart (``Reason.details``, ``model.adapter.twin.details`` in audit.json)
and never stands alone in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditkit.errors import one_line
from auditkit.loading.onnx_normalize import CONVERTER_OPSET

#: What to run instead, named once: every sentence below ends with one of these.
LEGACY_EXPORT = (
    f"re-export with torch.onnx.export(model, (x,), 'model.onnx', dynamo=False, "
    f"opset_version={CONVERTER_OPSET})"
)
DYNAMIC_BATCH = (
    "re-export with a dynamic batch (torch.onnx.export(..., dynamic_shapes="
    "({0: torch.export.Dim('batch')},)), or dynamic_axes={'input': {0: 'batch'}} "
    "with dynamo=False)"
)
TORCH_ITSELF = "audit the torch model itself (auditkit.save_model writes a .pt2 file)"
GRADIENTS = "to get gradient attacks"


@dataclass(frozen=True)
class Reason:
    """A sentence for the report and, apart, the raw text behind it (None when there is none)."""

    sentence: str
    details: str | None = None


def _raw(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}", 300)


def no_converter() -> Reason:
    return Reason(
        "onnx2torch, which turns the graph into a torch network, is not installed; "
        f"from auditkit's clone run pip install -e '.[onnx]' {GRADIENTS}"
    )


def unreadable_weights(exc: BaseException) -> Reason:
    return Reason(
        "the weights in the model's external data file could not be read to build a "
        "torch network; check that the .onnx.data file next to the model is complete "
        f"(copy it again), or {TORCH_ITSELF}, {GRADIENTS}",
        _raw(exc),
    )


_UNSUPPORTED = re.compile(r"operation_type='(?P<op>[^']+)', version=(?P<version>\d+)")


def conversion_failed(exc: BaseException) -> Reason:
    """Why onnx2torch refused the graph."""
    text = str(exc)
    match = _UNSUPPORTED.search(text)
    if match:
        op, version = match["op"], int(match["version"])
        if version > CONVERTER_OPSET:
            advice = (
                f"export with opset {CONVERTER_OPSET} (torch.onnx.export(..., "
                f"opset_version={CONVERTER_OPSET})) {GRADIENTS}"
            )
        else:
            advice = f"replace it in the network, or {TORCH_ITSELF}, {GRADIENTS}"
        return Reason(
            f"the graph uses an operator the converter does not support: {op} v{version}; {advice}",
            _raw(exc),
        )
    if isinstance(exc, KeyError):
        return Reason(
            f"the converter could not find the tensor {one_line(text, 80)}, which the "
            "graph computes instead of storing it as a weight; export the weights as "
            f"initializers (or {LEGACY_EXPORT}) {GRADIENTS}",
            _raw(exc),
        )
    return Reason(
        "the converter (onnx2torch) could not turn this graph into a torch network; "
        f"{LEGACY_EXPORT}, or {TORCH_ITSELF}, {GRADIENTS}",
        _raw(exc),
    )


def module_fails(exc: BaseException, shape: tuple[int, ...], fixed_batch: int | None) -> Reason:
    """The converted network raised when run on a batch of the audit's inputs."""
    what = (
        f"the converted network fails on a batch of {shape[0]} inputs of shape {tuple(shape[1:])}"
    )
    if fixed_batch is not None:
        return Reason(
            f"{what} (the graph was exported for a fixed batch of {fixed_batch}); "
            f"{DYNAMIC_BATCH} {GRADIENTS}",
            _raw(exc),
        )
    return Reason(f"{what}; {LEGACY_EXPORT}, or {TORCH_ITSELF}, {GRADIENTS}", _raw(exc))


def disagrees(diff: float, fixed_batch: int | None) -> Reason:
    """The converted network runs but gives other scores than onnxruntime."""
    what = (
        f"the converted network's scores differ from onnxruntime's by up to {diff:.2g}, so "
        "its gradients would attack a different model"
    )
    if fixed_batch is not None:
        return Reason(
            f"{what} (the graph was exported for a fixed batch of {fixed_batch}); "
            f"{DYNAMIC_BATCH} {GRADIENTS}"
        )
    return Reason(f"{what}; {LEGACY_EXPORT}, or {TORCH_ITSELF}, {GRADIENTS}")
