"""Adapters: every model seen through one contract (pixels in a box → logits)."""

from auditkit.adapters.base import Diagnostics, ModelAdapter
from auditkit.adapters.callable_adapter import CallableAdapter
from auditkit.adapters.torch_adapter import (
    TorchModelAdapter,
    input_gradient,
    output_kind,
    resolve_device,
)

__all__ = [
    "CallableAdapter",
    "Diagnostics",
    "ModelAdapter",
    "TorchModelAdapter",
    "input_gradient",
    "output_kind",
    "resolve_device",
]
