"""A freshly re-initialized, trainable copy of an audited network (same architecture, new weights).

The memorization probe retrains the user's architecture from scratch, so it needs the network's
structure without its learned weights, and it must never touch the audited model itself.

- ``nn.Module``: ``copy.deepcopy``, then ``reset_parameters()`` on every submodule that has it
  (PyTorch's per-layer defaults, not any custom init the architecture's constructor applied).
- Exported programs (``torch.export``'s ``ep.module()``) and TorchScript: their submodules keep no
  layer types, so every parameter is re-initialized with PyTorch's default scheme chosen by shape:
  ``kaiming_uniform_(a=√5)`` for weights with two or more dimensions, ``uniform(±1/√fan_in)`` for
  the matching biases, ones/zeros for normalization scales/shifts, and batch-norm running
  statistics reset to 0/1.
- Parameters that no ``reset_parameters()`` covers get the same shape-based scheme, and anything
  left as it was is listed, so the report says exactly what was done.

Example:
    >>> fresh = fresh_copy(adapter.model, seed=1234)
    >>> fresh.set_training(True)   # a no-op for exported programs, whose mode is frozen
    >>> fresh.describe()["method"]
"""

from __future__ import annotations

import copy
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

KIND_MODULE = "nn.Module"
KIND_EXPORT = "torch.export"
KIND_TORCHSCRIPT = "torchscript"

_RESET_BUFFERS = {
    "running_mean": 0.0,
    "running_var": 1.0,
    "num_batches_tracked": 0,
}


def model_kind(model: nn.Module) -> str:
    """``torchscript``, ``torch.export`` (an exported program's module) or ``nn.Module``."""
    if isinstance(model, torch.jit.ScriptModule):
        return KIND_TORCHSCRIPT
    # ep.module() replaces train/eval on the instance with methods that raise: that override,
    # not the GraphModule class, is what tells an exported program from an fx-traced module.
    if isinstance(model, torch.fx.GraphModule) and "train" in vars(model):
        return KIND_EXPORT
    return KIND_MODULE


def batch_norm_layers(model: nn.Module) -> list[nn.Module]:
    """The batch-norm layers whose running statistics an eval-mode pass of ``model`` uses and
    that a training pass can recompute: those of an ``nn.Module``. An exported program keeps
    its mode fixed and a TorchScript module hides its layers' types, so both give none."""
    if model_kind(model) != KIND_MODULE:
        return []
    return [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def training_problem(model: Any) -> str | None:
    """Why a fresh copy of ``model`` cannot be trained, or None when it can."""
    if not isinstance(model, nn.Module):
        return f"a {type(model).__name__} is not a torch module, so it cannot be retrained"
    params = list(model.parameters())
    if not params:
        return "the model has no parameters to train (quantized or weightless network)"
    tensors = [*params, *model.buffers()]
    if any(t.is_quantized for t in tensors):
        return "the model holds quantized tensors, which autograd cannot train"
    if any(not t.is_floating_point() for t in params):
        return "the model has non-floating-point parameters, which autograd cannot train"
    return None


@dataclass
class FreshCopy:
    """A re-initialized copy of a network and a record of how it was made.

    Attributes:
        module: the copy, with every floating-point parameter trainable.
        kind: ``nn.Module`` | ``torch.export`` | ``torchscript``.
        can_switch_mode: False for exported programs (their train/eval behaviour is fixed at
            export: dropout stays off and batch norm uses its stored statistics).
        reset_modules: submodules re-initialized with their own ``reset_parameters()``.
        reset_failed: submodules whose ``reset_parameters()`` raised (their parameters were
            re-initialized by shape instead).
        by_shape: parameter or buffer name → the default scheme applied by shape.
        kept: names left as they were (no default scheme fits them), e.g. a PReLU slope.
        unfrozen: parameters that were frozen in the original and are trainable in the copy.
        seed: the seed that fixes the new weights.
    """

    module: nn.Module
    kind: str
    can_switch_mode: bool
    reset_modules: list[str] = field(default_factory=list)
    reset_failed: list[str] = field(default_factory=list)
    by_shape: dict[str, str] = field(default_factory=dict)
    kept: list[str] = field(default_factory=list)
    unfrozen: list[str] = field(default_factory=list)
    seed: int = 0

    def set_training(self, mode: bool) -> None:
        """Switch train/eval mode where the format allows it (never on exported programs)."""
        if self.can_switch_mode:
            self.module.train(mode)

    @property
    def method(self) -> str:
        if self.kind == KIND_MODULE:
            text = (
                f"deep copy; reset_parameters() on {len(self.reset_modules)} submodules "
                "(PyTorch's per-layer defaults)"
            )
            if self.by_shape:
                text += f"; {len(self.by_shape)} other tensors re-initialized by shape"
        else:
            how = "serialized round trip" if self.kind == KIND_TORCHSCRIPT else "deep copy"
            text = (
                f"{how}; {len(self.by_shape)} tensors re-initialized with PyTorch's default "
                "schemes by shape (kaiming_uniform(a=√5) weights, uniform(±1/√fan_in) biases, "
                "ones/zeros for normalization)"
            )
        if not self.can_switch_mode:
            text += (
                "; train/eval mode is frozen at export, so dropout stays off and batch norm "
                "uses its (reset) stored statistics while training"
            )
        return text

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "seed": self.seed,
            "can_switch_mode": self.can_switch_mode,
            "reset_modules": list(self.reset_modules),
            "reset_failed": list(self.reset_failed),
            "by_shape": dict(self.by_shape),
            "kept": list(self.kept),
            "unfrozen": list(self.unfrozen),
            "trainable_parameters": int(
                sum(p.numel() for p in self.module.parameters() if p.requires_grad)
            ),
        }


def _fan_in(weight: torch.Tensor) -> int:
    # Same convention as torch.nn.init: dimension 1 times the receptive field.
    return int(weight.shape[1] * math.prod(weight.shape[2:])) if weight.ndim >= 2 else 0


def _sibling_weight(name: str, params: dict[str, torch.Tensor]) -> torch.Tensor | None:
    prefix, _, leaf = name.rpartition(".")
    # bias ↔ weight, bias_ih_l0 ↔ weight_ih_l0 (recurrent layers name their pairs this way).
    sibling = "weight" + leaf[len("bias") :]
    return params.get(f"{prefix}.{sibling}" if prefix else sibling)


def reinit_by_shape(
    module: nn.Module, *, only: Iterable[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Re-initialize parameters and batch-norm statistics of ``module`` in place, by shape.

    Uses the global torch RNG (seed it, or wrap the call in ``torch.random.fork_rng``).

    Args:
        module: the network to re-initialize.
        only: restrict to these parameter names (default: all parameters).

    Returns:
        ``({name: scheme applied}, [names kept as they were])``.
    """
    params = dict(module.named_parameters())
    wanted = set(params) if only is None else set(only)
    applied: dict[str, str] = {}
    kept: list[str] = []
    with torch.no_grad():
        for name, tensor in params.items():
            if name not in wanted:
                continue
            leaf = name.rpartition(".")[2]
            if tensor.ndim >= 2:
                # Drawn in the default layout and copied: a tensor in channels_last (a CPU scan
                # may run a conv net in it) would get the same draws in other places.
                fresh = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)
                nn.init.kaiming_uniform_(fresh, a=math.sqrt(5))
                tensor.copy_(fresh)
                applied[name] = "kaiming_uniform(a=√5)"
            elif tensor.ndim == 1 and leaf.startswith("bias"):
                weight = _sibling_weight(name, params)
                if weight is not None and weight.ndim >= 2 and _fan_in(weight) > 0:
                    bound = 1.0 / math.sqrt(_fan_in(weight))
                    nn.init.uniform_(tensor, -bound, bound)
                    applied[name] = "uniform(±1/√fan_in)"
                else:
                    nn.init.zeros_(tensor)
                    applied[name] = "zeros (normalization shift)"
            elif tensor.ndim == 1 and leaf.startswith("weight"):
                nn.init.ones_(tensor)
                applied[name] = "ones (normalization scale)"
            else:
                kept.append(name)
        if only is None:
            for name, buffer in module.named_buffers():
                value = _RESET_BUFFERS.get(name.rpartition(".")[2])
                if value is not None:
                    buffer.fill_(value)
                    applied[name] = f"filled with {value} (batch-norm statistics)"
    return applied, kept


def _copy(model: nn.Module, kind: str) -> nn.Module:
    if kind == KIND_TORCHSCRIPT:
        # deepcopy of a ScriptModule can leave autograd writing into the original's parameters;
        # a save/load round trip gives a copy that shares nothing.
        buffer = io.BytesIO()
        torch.jit.save(model, buffer)
        buffer.seek(0)
        return torch.jit.load(buffer, map_location=_device_of(model))
    return copy.deepcopy(model)


def _device_of(model: nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _reset_modules(module: nn.Module) -> tuple[list[str], set[str], list[str]]:
    """Call every ``reset_parameters()``; returns (reset modules, covered params, failures)."""
    reset, covered, failed = [], set(), []
    for name, sub in module.named_modules():
        method = getattr(sub, "reset_parameters", None)
        if not callable(method):
            continue
        try:
            method()
        except Exception:  # a custom reset can break on a copy; shape-based init covers it
            failed.append(name or "<root>")
            continue
        reset.append(name or "<root>")
        prefix = f"{name}." if name else ""
        covered.update(prefix + p for p, _ in sub.named_parameters(recurse=False))
    return reset, covered, failed


def fresh_copy(model: nn.Module, *, seed: int) -> FreshCopy:
    """A re-initialized, trainable copy of ``model``; ``model`` itself is never modified.

    Args:
        model: the audited network (``nn.Module``, exported program module or TorchScript).
        seed: fixes the new weights; the global RNG state is restored afterwards.

    Raises:
        ValueError: the model cannot be trained (see ``training_problem``).

    Example:
        >>> fresh = fresh_copy(net, seed=0)
        >>> optimizer = torch.optim.Adam(fresh.module.parameters(), lr=1e-3)
    """
    problem = training_problem(model)
    if problem:
        raise ValueError(problem)
    kind = model_kind(model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    clone = _copy(model, kind)
    device = _device_of(clone)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if kind == KIND_MODULE:
            reset, covered, failed = _reset_modules(clone)
            rest = [n for n, _ in clone.named_parameters() if n not in covered]
            applied, kept = reinit_by_shape(clone, only=rest) if rest else ({}, [])
        else:
            reset, failed = [], []
            applied, kept = reinit_by_shape(clone)
    for param in clone.parameters():
        param.requires_grad_(True)
        param.grad = None
    return FreshCopy(
        module=clone,
        kind=kind,
        can_switch_mode=kind != KIND_EXPORT,
        reset_modules=reset,
        reset_failed=failed,
        by_shape=applied,
        kept=kept,
        unfrozen=sorted(frozen),
        seed=int(seed),
    )
