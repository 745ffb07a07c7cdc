"""PGD with random restarts and best-iterate tracking, FGSM, and a random-noise baseline."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from auditkit.attacks._base import (
    AttackOutput,
    Box,
    BoxAttack,
    _view,
    clamp_box,
    finite_or_zero,
    margin,
    nonfinite_rows,
    normalized_l2,
    project,
)


class PGD(BoxAttack):
    r"""Projected gradient descent (Madry et al. 2018, https://arxiv.org/abs/1706.06083).

    Threat model: ``‖δ‖ ≤ eps`` in ``Linf`` or ``L2``, ``x + δ`` inside the input box. It ascends
    the cross-entropy loss like torchattacks' ``PGD`` / ``PGDL2`` (same random start, same step,
    same projection), and adds what torchattacks lacks: random restarts, and best-iterate
    tracking (the iterate with the largest margin is returned, not the last one; with
    ``track_best=False`` the last iterate of each restart is used).

    Args:
        model: pixels in, logits out (``adapter.as_module()``).
        eps: radius of the threat model in input units.
        norm: ``Linf`` or ``L2``.
        steps: gradient steps per restart.
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.).
        restarts: independent random starts; the worst case per example is kept.
        random_start: start uniformly in the Linf ball (Linf) or at a random radius along a
            random direction (L2), as torchattacks does; else start at the clean input.
        track_best: return the best iterate rather than the last one.
        box: the input box ``(lo, hi)``; ``None`` clamps nothing.
        generator: seeded generator on the model's device for the random starts.
        stop_when_fooled: stop stepping an example once an iterate misclassifies it (margin
            > 0), and start later restarts only for the examples no restart has fooled yet.
            The verdicts (``margin > 0``) are those of the full run: with best-iterate
            tracking a found adversarial example is kept whatever later steps do, and every
            example still standing follows exactly the full run's iterates. What changes is
            only how far past the boundary a fooled example's returned input lies, and the
            cost: a model that most examples fool within a few steps costs a few gradient
            passes per example instead of ``steps × restarts``. Needs ``track_best``.

    Example:
        >>> attack = PGD(adapter.as_module(), eps=0.1, steps=10, restarts=3, generator=g)
        >>> out = attack.perturb(x, y)
        >>> robust = (out.margin <= 0).float().mean()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        steps: int = 10,
        alpha: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        track_best: bool = True,
        box: Box = (0.0, 1.0),
        generator: torch.Generator | None = None,
        name: str = "PGD",
        stop_when_fooled: bool = False,
    ) -> None:
        super().__init__(name, model, eps=eps, norm=norm, box=box, generator=generator)
        if steps < 1 or restarts < 1:
            raise ValueError("steps and restarts must be ≥ 1")
        self.steps = int(steps)
        self.alpha = float(alpha) if alpha is not None else 2.5 * self.eps / self.steps
        self.restarts = int(restarts)
        self.random_start = bool(random_start)
        self.track_best = bool(track_best)
        self.stop_when_fooled = bool(stop_when_fooled) and self.track_best
        self.supported_mode = ["default"]

    # --- the pieces EOT overrides -------------------------------------------------------
    def _gradient(
        self, adv: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Input gradient of the loss at ``adv`` (non-finite entries zeroed), the margin of
        ``adv`` (one forward), and per input whether logits or gradient were non-finite."""
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.get_logits(adv).float()
            loss = F.cross_entropy(logits, labels)
            (grad,) = torch.autograd.grad(loss, adv)
        bad = nonfinite_rows(logits.detach()) | nonfinite_rows(grad)
        return finite_or_zero(grad), margin(logits.detach(), labels), bad

    def _final_margin(
        self, adv: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._margin(adv, labels)

    # --- PGD ----------------------------------------------------------------------------
    def _start(self, images: torch.Tensor) -> torch.Tensor:
        if not self.random_start or self.eps == 0:
            return images.clone()
        if self.norm == "Linf":
            delta = torch.empty_like(images).uniform_(-self.eps, self.eps, generator=self.generator)
        else:
            delta = torch.empty_like(images).normal_(generator=self.generator)
            norms = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
            radius = torch.empty_like(norms).uniform_(0, 1, generator=self.generator)
            delta = delta * _view(radius / norms * self.eps, delta)
        return clamp_box(images + delta, self.box)

    def _step(self, adv: torch.Tensor, grad: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "Linf":
            adv = adv + self.alpha * grad.sign()
        else:
            adv = adv + self.alpha * normalized_l2(grad)
        delta = project(adv - images, self.eps, self.norm)
        return clamp_box(images + delta, self.box)

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> AttackOutput:
        images = images.detach().to(self.device)
        labels = labels.detach().to(self.device)
        best_adv = images.clone()
        best_margin = torch.full((len(images),), float("-inf"), device=self.device)
        nonfinite = torch.zeros(len(images), dtype=torch.bool, device=self.device)
        restart_margins = []
        for _ in range(self.restarts):
            adv = self._start(images)
            run_adv = adv
            run_margin = torch.full_like(best_margin, float("-inf"))
            # stop_when_fooled: the examples still standing (an earlier restart's are not
            # attacked again). The random start above is drawn for the whole batch, as the
            # full run draws it, so every example still standing meets the full run's iterates.
            active = torch.nonzero(~(best_margin > 0)).squeeze(1) if self.stop_when_fooled else None
            if active is not None:
                adv, run_adv = adv.detach(), adv.detach().clone()
            for step in range(self.steps + 1):
                if active is not None and not len(active):
                    break
                a, y = _take(adv, active), _take(labels, active)
                last = step == self.steps
                if last:  # past the last step: the final iterate's margin only
                    current, bad = self._final_margin(a, y)
                else:
                    grad, current, bad = self._gradient(a, y)
                nonfinite = _put(nonfinite, active, _take(nonfinite, active) | bad)
                if self.track_best:
                    kept = _keep_better(_take(run_adv, active), _take(run_margin, active), a,
                                        current)
                    run_adv = _put(run_adv, active, kept[0])
                    run_margin = _put(run_margin, active, kept[1])
                elif last:
                    run_adv, run_margin = a, current
                if not last:
                    adv = _put(adv, active, self._step(a.detach(), grad, _take(images, active)))
                if active is not None:
                    active = active[~(run_margin[active] > 0)]
            restart_margins.append(run_margin)
            best_adv, best_margin = _keep_better(best_adv, best_margin, run_adv, run_margin)
        return AttackOutput(best_adv.detach(), best_margin, torch.stack(restart_margins),
                            nonfinite)


class FGSM(PGD):
    r"""Fast gradient sign method (Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572).

    One step of size ``eps`` from the clean input: ``x + eps·sign(∇)`` under Linf (identical to
    torchattacks' ``FGSM``), ``x + eps·∇/‖∇‖₂`` under L2 (the fast gradient method).

    Example:
        >>> FGSM(adapter.as_module(), eps=8 / 255).perturb(x, y).margin > 0
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        box: Box = (0.0, 1.0),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            model, eps=eps, norm=norm, steps=1, alpha=eps, restarts=1, random_start=False,
            track_best=False, box=box, generator=generator, name="FGSM",
        )


class RandomNoise(BoxAttack):
    r"""The baseline every attack must beat: random perturbations on the surface of the ball.

    Linf: ``eps·s`` with random signs ``s`` (a random corner of the cube, the largest Linf
    noise); L2: a uniformly random direction of length ``eps``. The worst of ``draws`` draws per
    example is kept.

    Example:
        >>> RandomNoise(model, eps=0.1, draws=8, generator=g).perturb(x, y).margin
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        draws: int = 1,
        box: Box = (0.0, 1.0),
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__("RandomNoise", model, eps=eps, norm=norm, box=box, generator=generator)
        self.draws = int(draws)
        self.supported_mode = ["default"]

    def _noise(self, images: torch.Tensor) -> torch.Tensor:
        if self.norm == "Linf":
            signs = torch.empty_like(images).bernoulli_(0.5, generator=self.generator) * 2 - 1
            return self.eps * signs
        direction = torch.empty_like(images).normal_(generator=self.generator)
        return self.eps * normalized_l2(direction)

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> AttackOutput:
        images = images.detach().to(self.device)
        labels = labels.detach().to(self.device)
        best_adv = images.clone()
        best_margin = torch.full((len(images),), float("-inf"), device=self.device)
        nonfinite = torch.zeros(len(images), dtype=torch.bool, device=self.device)
        margins = []
        for _ in range(self.draws):
            adv = clamp_box(images + self._noise(images), self.box)
            current, bad = self._margin(adv, labels)
            nonfinite |= bad
            margins.append(current)
            best_adv, best_margin = _keep_better(best_adv, best_margin, adv, current)
        return AttackOutput(best_adv, best_margin, torch.stack(margins), nonfinite)


def _take(t: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """The rows ``index`` of ``t`` (all of ``t``, no copy, when ``index`` is None)."""
    return t if index is None else t[index]


def _put(t: torch.Tensor, index: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    """``t`` with rows ``index`` set to ``value`` in place (``value`` itself when None)."""
    if index is None:
        return value
    t[index] = value
    return t


def _keep_better(
    best_adv: torch.Tensor, best_margin: torch.Tensor, adv: torch.Tensor, current: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # Strictly better only: on ties the earlier iterate stays, so eps = 0 returns the input.
    better = current > best_margin
    return (
        torch.where(_view(better, adv), adv.detach(), best_adv),
        torch.where(better, current, best_margin),
    )
