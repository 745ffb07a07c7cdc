"""The pipeline around a torch model: pixels in, logits out.

Normalization (``--mean``/``--std``), the model's own dtype, and the conversion of probability
or log-probability outputs into logits all happen inside one ``nn.Module`` (``_Network``), so
attacks differentiate through exactly what the audit measures. The adapters build it; this room
knows nothing of devices, batch sizes or diagnostics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from auditkit.adapters.base import Diagnostics
from auditkit.errors import AuditkitInputError


def output_kind(outputs: torch.Tensor) -> str:
    """``probabilities`` (rows in [0, 1] summing to 1), ``log_probabilities`` or ``logits``."""
    if outputs.ndim != 2 or not outputs.numel() or not torch.isfinite(outputs).all():
        return "logits"
    row_sums = outputs.sum(dim=-1)
    ones = torch.ones_like(row_sums)
    if (outputs >= 0).all() and (outputs <= 1).all() and torch.allclose(row_sums, ones, atol=1e-3):
        return "probabilities"
    if (outputs <= 0).all() and torch.allclose(outputs.exp().sum(-1), ones, atol=1e-3):
        return "log_probabilities"
    return "logits"


def read_logits_before_softmax(network: _Network, x: torch.Tensor, outputs: torch.Tensor,
                               diag: Diagnostics) -> bool:
    """Hook: point ``network`` at the logits before its model's final softmax when that
    reproduces the outputs (``softmax_head``); notes it in ``diag``."""
    from auditkit.adapters.softmax_head import logits_before_softmax

    inputs = (x - network.mean) / network.std if network.mean is not None else x
    stripped = logits_before_softmax(network.model, inputs, outputs, diag.output_kind)
    if stripped is None:
        return False
    diag.notes.append(
        f"the model ends in a {'log-' if diag.output_kind == 'log_probabilities' else ''}softmax; "
        "auditkit reads the logits before it, so attacks keep their gradients"
    )
    network.softmax_stripped_from = diag.output_kind
    network.model, network.output_kind, diag.output_kind = stripped, "logits", "logits"
    return True


def logits_of_copy(network: _Network, module: nn.Module) -> tuple[nn.Module, str]:
    """Hook for ``wrap``: a copy of a network whose softmax was stripped gets the same
    treatment (else its outputs are read as they are, probabilities)."""
    original = getattr(network, "softmax_stripped_from", None)
    if original is None:
        return module, network.output_kind
    from auditkit.adapters.softmax_head import strip_softmax

    stripped = strip_softmax(module)
    return (stripped, "logits") if stripped is not None else (module, original)


class _Network(nn.Module):
    """Pixels in, logits out: normalization and output conversion around the user's model."""

    def __init__(
        self,
        model: nn.Module,
        mean: torch.Tensor | None,
        std: torch.Tensor | None,
        output_kind: str,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.output_kind = output_kind
        self.input_dtype = input_dtype

    def train(self, mode: bool = True) -> _Network:
        # Never propagate: the wrapped model stays in eval mode whatever a library asks.
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if self.input_dtype is not None:
            # A half-precision model gets its own dtype; attacks and metrics stay in float32
            # (the cast is differentiable, so input gradients still reach the pixels).
            x = x.to(self.input_dtype)
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if self.input_dtype is not None:
            out = out.float()
        if self.output_kind == "probabilities":
            return torch.log(out.clamp_min(1e-12))
        return out


def _channel_tensor(values: Sequence[float] | None, ndim: int) -> torch.Tensor | None:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32)
    # Per-channel statistics broadcast over (C, H, W); per-feature over (D,).
    return t.view(-1, *([1] * (ndim - 1))) if ndim > 1 else t


def _normalization(
    values: Sequence[float] | float | None, flag: str, input_shape: tuple[int, ...]
) -> tuple[float, ...] | None:
    """Validated ``--mean`` / ``--std``: one value for all channels, or one per channel.

    A wrong length would otherwise surface as a broadcasting error or, in an exported program,
    an opaque "Guard failed" assertion in the middle of the audit.
    """
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = (values,)
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise AuditkitInputError(f"{flag} {values!r}: expected numbers, e.g. 0.5 or 0.5,0.5,0.5") from None
    channels = input_shape[0] if input_shape else 1
    unit = "channel" if len(input_shape) > 1 else "feature"
    if len(numbers) not in (1, channels):
        raise AuditkitInputError(
            f"{flag} has {len(numbers)} values but the model's inputs {input_shape} have "
            f"{channels} {unit}{'s' if channels != 1 else ''}; give one value, or one per {unit}"
        )
    if not all(np.isfinite(numbers)):
        raise AuditkitInputError(f"{flag} {','.join(map(str, numbers))}: values must be finite")
    if flag == "--std" and min(numbers) <= 0:
        raise AuditkitInputError(
            f"--std {','.join(map(str, numbers))}: every std must be positive (inputs are divided "
            "by it)"
        )
    return numbers


def _input_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype the model computes in, when it is not float32 (e.g. bfloat16)."""
    try:
        tensors = [*model.parameters(), *model.buffers()]
    except Exception:  # exotic modules (some scripted ones) may not list their tensors
        return None
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    if not floating or floating[0] == torch.float32:
        return None
    return floating[0]
