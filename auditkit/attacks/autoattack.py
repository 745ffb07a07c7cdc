"""AutoAttack (Croce & Hein 2020) through torchattacks, with the reference settings restored.

torchattacks' ``AutoAttack(version="standard")`` builds the right ensemble (APGD-CE, APGD-T,
FAB-T, Square) but leaves APGD, APGD-T and FAB at torchattacks' default of 10 iterations, where
the reference implementation (https://github.com/fra31/auto-attack) runs 100. ``AutoAttack``
here builds torchattacks' ensemble and sets the iterations back to 100; ``settings()`` reads
the numbers back from the constructed attacks so a test can compare them with ``REFERENCE``.

The torchattacks attacks require images ``(N, C, H, W)`` in ``[0, 1]``; other boxes are mapped
affinely onto ``[0, 1]`` (and ``eps`` with them). They also reseed torch's global generator; that
is contained here, so running AutoAttack does not change anyone else's random numbers.
"""

from __future__ import annotations

from typing import Any

import torch
import torchattacks
from torch import nn

from auditkit.attacks._base import check_norm

#: The reference ``version="standard"`` settings (fra31/auto-attack, ``autoattack.py``).
REFERENCE: dict[str, Any] = {
    "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "iterations": 100,
    "target_classes": 9,
    "restarts": 1,
    "square_queries": 5000,
}

ITERATIONS = REFERENCE["iterations"]
TARGET_CLASSES = REFERENCE["target_classes"]


class _UnitBox(nn.Module):
    """Inputs in ``[0, 1]`` mapped onto the model's box ``(lo, hi)``."""

    def __init__(self, model: nn.Module, lo: float, hi: float) -> None:
        super().__init__()
        self.model = model
        self.lo, self.width = float(lo), float(hi - lo)

    def train(self, mode: bool = True) -> _UnitBox:
        self.training = mode  # never reaches the wrapped model (see adapter.as_module)
        return self

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.model(self.lo + u * self.width)


def _fits(component: Any, num_classes: int) -> bool:
    kind = type(component).__name__
    if kind == "APGDT":
        return num_classes >= 4
    if kind == "APGD" and component.loss == "dlr":
        return num_classes >= 3
    return True


class AutoAttack:
    """The standard AutoAttack ensemble at the reference settings, in any bounded box.

    Args:
        model: pixels in, logits out (``adapter.as_module()``).
        eps: radius in input units.
        norm: ``Linf`` or ``L2``.
        num_classes: number of classes; the targeted attacks use ``min(9, num_classes - 1)``
            target classes, as the reference does for 10 or more classes.
        seed: fixed seed for every component.
        box: the input box ``(lo, hi)`` of the images.
        stochastic: use the reference's ``rand`` version (APGD-CE and APGD-DLR with 20 EOT
            iterations) for models whose forward pass is random.

    Example:
        >>> AutoAttack(model, eps=8 / 255, num_classes=10, seed=0)(x, y)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        num_classes: int = 10,
        seed: int = 0,
        box: tuple[float, float] = (0.0, 1.0),
        stochastic: bool = False,
    ) -> None:
        self.norm = check_norm(norm)
        self.box = (float(box[0]), float(box[1]))
        self.seed = int(seed)
        self.eps = float(eps)
        self.num_classes = int(num_classes)
        self.version = "rand" if stochastic else "standard"
        width = self.box[1] - self.box[0]
        self.module = _UnitBox(model, *self.box)
        # n_classes - 1 target classes in torchattacks; the reference caps them at 9.
        n_classes = min(TARGET_CLASSES + 1, self.num_classes)
        self.attack = torchattacks.AutoAttack(
            self.module, norm=self.norm, eps=self.eps / width, version=self.version,
            n_classes=n_classes, seed=self.seed,
        )
        components = self.attack._autoattack.attacks
        for component in components:
            if hasattr(component, "steps"):
                component.steps = ITERATIONS
        # The DLR losses read the 3rd (APGD-DLR) and 4th (APGD-T) largest logit.
        components[:] = [c for c in components if _fits(c, self.num_classes)]
        self.device = self.attack.device

    def settings(self) -> dict[str, Any]:
        """The settings actually in force, read back from torchattacks' attack objects."""
        parts = []
        for component in self.attack._autoattack.attacks:
            kind = type(component).__name__
            entry: dict[str, Any] = {"attack": kind, "seed": component.seed}
            for attr in ("steps", "n_restarts", "n_target_classes", "n_queries", "eot_iter"):
                if hasattr(component, attr):
                    entry[attr] = getattr(component, attr)
            if kind == "APGD":
                entry["loss"] = component.loss
            if kind == "FAB":
                entry["multi_targeted"] = component.multi_targeted
            parts.append(entry)
        return {
            "implementation": f"torchattacks {torchattacks.__version__} AutoAttack",
            "version": self.version,
            "norm": self.norm,
            "eps": self.eps,
            "seed": self.seed,
            "components": parts,
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Adversarial examples in the model's box (inputs the ensemble fails on stay clean)."""
        width = self.box[1] - self.box[0]
        cuda = self.device is not None and torch.device(self.device).type == "cuda"
        index = torch.device(self.device).index if cuda else None
        devices = ([index if index is not None else torch.cuda.current_device()] if cuda else [])
        with torch.random.fork_rng(devices=devices):
            unit = ((images - self.box[0]) / width).to(self.device)
            adv = self.attack(unit, labels.to(self.device))
        return (self.box[0] + adv * width).detach()
