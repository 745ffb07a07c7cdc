"""What gradient-free attacks share: a counted black box, per-feature limits, frozen features.

A gradient-free attack only *asks* the model: ``QueryModel`` wraps whatever answers (an
adapter's batched logits, an onnxruntime session, a scikit-learn pipeline) as an ``nn.Module``
so the attacks keep torchattacks' calling convention, and counts every example it is asked
about. ``Limits`` is the box an attack may move in: one ``(lo, hi)`` for all inputs (images),
or one pair per feature (the observed range of each column of a table); ``mask`` marks the
features an attack may change (categorical columns stay fixed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from auditkit.attacks._base import Box

Answer = Callable[[torch.Tensor], torch.Tensor]


class QueryModel(nn.Module):
    """A black box as a module: ``answer(x) -> scores`` without gradients, queries counted.

    Args:
        answer: maps a batch to one row of scores (or one-hot labels) per example.
        device: where the attack keeps its tensors.

    Example:
        >>> model = QueryModel(adapter.predict_logits)
        >>> model(x).shape, model.queries
    """

    def __init__(self, answer: Answer, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.answer = answer
        self.queries = 0
        # torchattacks reads the device from a parameter or buffer of the model.
        self.register_buffer("_anchor", torch.zeros(0, device=device), persistent=False)

    def train(self, mode: bool = True) -> QueryModel:
        self.training = mode  # a black box has no mode to switch
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        with torch.no_grad():
            out = self.answer(x.detach())
        return out.to(self._anchor.device).float()


@dataclass(frozen=True)
class Limits:
    """Where an attack may move: lower/upper bounds broadcastable to one example, and which
    features may change at all (``mask`` of 0/1, ``None``: all).

    Example:
        >>> Limits.from_box((0.0, 1.0))
        >>> Limits(lo=x.amin(0), hi=x.amax(0), mask=torch.tensor([1., 1., 0.]))
    """

    lo: torch.Tensor | None = None
    hi: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    @classmethod
    def from_box(cls, box: Box, mask: torch.Tensor | None = None) -> Limits:
        if box is None:
            return cls(mask=mask)
        return cls(torch.tensor(float(box[0])), torch.tensor(float(box[1])), mask)

    def to(self, device: torch.device) -> Limits:
        move = (lambda t: None if t is None else t.to(device))  # noqa: E731
        return Limits(move(self.lo), move(self.hi), move(self.mask))

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        if self.lo is not None:
            x = torch.maximum(x, self.lo.to(x.device, x.dtype).expand_as(x))
        if self.hi is not None:
            x = torch.minimum(x, self.hi.to(x.device, x.dtype).expand_as(x))
        return x

    def masked(self, delta: torch.Tensor) -> torch.Tensor:
        """``delta`` with the frozen features set to zero."""
        return delta if self.mask is None else delta * self.mask.to(delta.device, delta.dtype)

    def movable(self, like: torch.Tensor) -> int:
        """How many features of one example may change."""
        if self.mask is None:
            return int(like[0].numel())
        return int((self.mask.expand_as(like[0]) != 0).sum())
