"""Shared pieces of auditkit's attacks: norms, the input box, margins and a quiet base class.

Every attack here works in the adapter's input box (``box=(lo, hi)``, or ``None`` for an
unbounded box, where nothing is clamped) and subclasses torchattacks' ``Attack``, so it keeps
torchattacks' calling convention (``attack(images, labels) -> adversarial images``) and can be
mixed with torchattacks' own attacks (``MultiAttack``).
"""

from __future__ import annotations

import contextlib
import io
from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import nn
from torchattacks.attack import Attack

from auditkit.errors import AuditkitInputError

NORMS = ("Linf", "L2")
_NORM_ALIASES = {"linf": "Linf", "inf": "Linf", "l_inf": "Linf", "l2": "L2", "2": "L2"}

Box = tuple[float, float] | None


def check_norm(norm: str) -> str:
    """The canonical name (``Linf`` or ``L2``) of ``norm``; a one-line error otherwise."""
    canonical = _NORM_ALIASES.get(str(norm).strip().lower())
    if canonical is None:
        raise AuditkitInputError(f"norm {norm!r}: unknown threat model; use Linf or L2")
    return canonical


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Largest wrong logit minus the true logit: positive exactly when the example is misclassified.

    Unlike the cross-entropy loss it does not saturate, so it ranks iterates even where a
    confident softmax has rounded to one. A NaN logit gives a margin of ``+inf``: a model that
    answers NaN has not given the right answer, and a NaN margin would never beat ``-inf`` in
    best-iterate tracking, so the input would silently count as robust.
    """
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    value = others.amax(dim=1) - true
    return torch.where(torch.isnan(value), torch.full_like(value, float("inf")), value)


def nonfinite_rows(values: torch.Tensor) -> torch.Tensor:
    """Per example (dimension 0): whether any entry is NaN or infinite."""
    return ~torch.isfinite(values.flatten(1)).all(dim=1)


def finite_or_zero(grad: torch.Tensor) -> torch.Tensor:
    """The gradient with NaN / inf entries set to 0: one non-finite step would turn the iterate,
    and every later one, into NaN instead of a real input."""
    return torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)


def per_example_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "Linf" else flat.norm(p=2, dim=1)


def _view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project perturbations onto the ``eps`` ball of ``norm``."""
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    norms = per_example_norm(delta, "L2")
    # clamp_min keeps eps = 0 (and delta = 0) free of 0/0.
    factor = torch.clamp(eps / norms.clamp_min(1e-12), max=1.0)
    return delta * _view(factor, delta)


def clamp_box(x: torch.Tensor, box: Box) -> torch.Tensor:
    return x if box is None else x.clamp(box[0], box[1])


def normalized_l2(grad: torch.Tensor) -> torch.Tensor:
    """Unit-L2 rows; a zero gradient stays zero (``tiny`` instead of torchattacks' +1e-10, which
    turns a very small but informative gradient into no step at all)."""
    norms = grad.flatten(1).norm(p=2, dim=1).clamp_min(torch.finfo(grad.dtype).tiny)
    return grad / _view(norms, grad)


@dataclass
class AttackOutput:
    """What an attack found for a batch.

    Attributes:
        adversarial: the strongest example found per input (best iterate over steps and
            restarts), in the input box.
        margin: its margin (largest wrong logit − true logit, averaged over samples for EOT);
            ``margin > 0`` means the attack succeeded on a deterministic model.
        restart_margins: best margin of each restart, shape ``(restarts, N)``.
        nonfinite: per input, whether the model returned a NaN / infinite logit or input
            gradient at any point the attack visited (a NaN answer counts as the attack's
            success, see ``margin``; a non-finite gradient entry is replaced by 0).
    """

    adversarial: torch.Tensor
    margin: torch.Tensor
    restart_margins: torch.Tensor
    nonfinite: torch.Tensor | None = None


class BoxAttack(Attack):
    """torchattacks' ``Attack`` for a threat model ``(norm, eps)`` inside an input box.

    Args:
        name: attack name (torchattacks' ``attack`` attribute).
        model: pixels in, logits out (``adapter.as_module()``).
        eps: radius of the threat model in input units.
        norm: ``Linf`` or ``L2``.
        box: the input box ``(lo, hi)``; ``None`` clamps nothing.
        generator: seeded generator (on the model's device) for every random draw.
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        box: Box = (0.0, 1.0),
        generator: torch.Generator | None = None,
    ) -> None:
        # torchattacks prints when the model has no parameters; auditkit never prints.
        with contextlib.redirect_stdout(io.StringIO()):
            super().__init__(name, model)
        if self.device is None:
            buffers = list(model.buffers())
            self.device = buffers[0].device if buffers else torch.device("cpu")
        if eps < 0:
            raise AuditkitInputError(f"eps {eps}: the perturbation budget must be ≥ 0")
        self.eps = float(eps)
        self.norm = check_norm(norm)
        self.box = (float(box[0]), float(box[1])) if box is not None else None
        self.generator = generator

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.perturb(images, labels).adversarial

    @abstractmethod
    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> AttackOutput:
        """Attack a batch; the model's train/eval mode is left as it is."""

    def _margin(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The margin at ``x`` and whether the model's logits there are non-finite."""
        with torch.no_grad():
            logits = self.get_logits(x).float()
        return margin(logits, labels), nonfinite_rows(logits)
