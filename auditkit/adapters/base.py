"""The adapter contract every probe relies on.

A ``ModelAdapter`` presents any classifier the same way: inputs in a declared box (images:
[0, 1]), normalization inside, logits out, eval mode, device handled. Probes never touch the
user's model directly, so the same probe audits an ``nn.Module``, an exported program, a
TorchScript file or a black-box function.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class Diagnostics:
    """What the adapter noticed about the model on a sample of the audit data."""

    output_kind: str = "logits"  # logits | probabilities | log_probabilities
    stochastic: bool = False
    stochastic_max_diff: float = 0.0
    gradient_finite: bool | None = None
    gradient_nonzero_fraction: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_kind": self.output_kind,
            "stochastic": self.stochastic,
            "stochastic_max_diff": self.stochastic_max_diff,
            "gradient_finite": self.gradient_finite,
            "gradient_nonzero_fraction": self.gradient_nonzero_fraction,
            "notes": list(self.notes),
        }


class ModelAdapter(ABC):
    """A classifier seen through auditkit's contract.

    Attributes:
        num_classes: number of outputs.
        input_shape: shape of one example.
        input_range: the box inputs live in (``None``: unbounded, e.g. standardized tables).
        device: where computation happens.
        supports_gradients: whether input gradients exist (False for black boxes).
        format: how the model arrived (``nn.Module``, ``torch.export``, ``callable`` ...).
    """

    num_classes: int
    input_shape: tuple[int, ...]
    input_range: tuple[float, float] | None
    device: torch.device
    supports_gradients: bool = True
    format: str = "nn.Module"
    diagnostics: Diagnostics

    @abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch ``x`` (moved to ``device``); differentiable when gradients exist."""

    def predict_logits(self, x: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Logits for many examples, batched, without autograd, returned on the CPU.

        ``batch_size`` defaults to ``auto_batch_size("forward")``; a batch that runs out of
        device memory is split in half and retried, so the result never depends on it.
        """
        size = int(batch_size or self.auto_batch_size("forward"))
        outputs = []
        start = 0
        while start < len(x):
            try:
                with torch.inference_mode():
                    out = self.logits(x[start : start + size]).float().cpu()
            except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
                if size == 1 or not is_out_of_memory(exc):
                    raise
                size = max(1, size // 2)
                release_cached_memory(self.device)
                continue
            outputs.append(out)
            start += len(out)
        if not outputs:
            return torch.empty(0, self.num_classes)
        # A new tensor outside inference mode: later probes may use it in autograd (temperature
        # scaling fits a parameter on it).
        return torch.cat(outputs).clone()

    def auto_batch_size(self, kind: str = "forward") -> int:
        """Examples per batch for ``kind``: ``forward`` (no autograd) or ``gradient`` (attacks).

        Adapters that know their memory use override this; the defaults are the sizes auditkit
        has always used.
        """
        if kind == "gradient":
            return 1024 if self.device.type == "cuda" else 256
        return 512

    def as_module(self) -> nn.Module:
        """A differentiable ``nn.Module`` (pixels in, logits out) to hand to attack libraries.

        Its ``eval()`` / ``train()`` never reach the wrapped model, so libraries that toggle
        modes (torchattacks does) cannot break exported programs or enable dropout by accident.
        """
        raise NotImplementedError(f"{self.format} models expose no differentiable module")

    @contextmanager
    def dropout_enabled(self) -> Iterator[bool]:
        """Turn on dropout layers only (MC dropout); yields whether any dropout layer exists."""
        yield False

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        """Project ``x`` into the input box."""
        if self.input_range is None:
            return x
        return x.clamp(*self.input_range)

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "input_range": list(self.input_range) if self.input_range else None,
            "supports_gradients": self.supports_gradients,
            "device": str(self.device),
            "diagnostics": self.diagnostics.to_dict(),
        }


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, MPS or the CPU allocator)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def release_cached_memory(device: torch.device) -> None:
    """Return cached blocks to the device after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def class_indices(labels: Any, class_names: Any, *, owner: str = "") -> list[int]:
    """For each class label a model answers with, the data's class index.

    Non-negative integer labels are indices already; other labels (strings) are looked up in
    the data's class names, or in their own sorted order when the data names none. Shared by
    every adapter whose model names its own classes (scikit-learn ``classes_``, ONNX ZipMap keys
    and label outputs). ``owner`` prefixes the one-line error, e.g. the model file's path.
    """
    import numpy as np

    from auditkit.errors import AuditkitInputError

    labels = list(labels)
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0 for c in labels):
        return [int(c) for c in labels]
    names = list(class_names) if class_names else sorted(str(c) for c in labels)
    lookup = {str(name): i for i, name in enumerate(names)}
    missing = [str(c) for c in labels if str(c) not in lookup]
    if missing:
        raise AuditkitInputError(
            f"{owner + ': ' if owner else ''}the model's class labels {', '.join(missing[:5])} "
            f"are not among the data's classes ({', '.join(map(str, names[:10]))}); check --target"
        )
    return [lookup[str(c)] for c in labels]
