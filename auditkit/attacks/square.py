"""Square attack: score-based random search, no gradients (Andriushchenko et al. 2020).

"Square Attack: a query-efficient black-box adversarial attack via random search",
https://arxiv.org/abs/1912.00833. Threat model: ``‖δ‖ ≤ eps`` (L∞ or L2), ``x + δ`` inside
the limits (a box, or per-feature bounds), frozen features unchanged. The attacker sees the
model's scores (logits or probabilities), never its gradients.

Why not torchattacks' ``Square``: it clamps every input to [0, 1], only takes (C, H, W)
images and does not return its query counts; audits need per-feature bounds for tables,
frozen categorical columns and the number of queries spent per example.

Differences from the paper, on purpose:
- The window-size schedule runs on the absolute iteration (the paper's 10,000-query schedule,
  not rescaled to the budget), and random draws are made for every example at every
  iteration: a run with more queries repeats the shorter run first, so more queries are never
  weaker.
- Tables (one-dimensional inputs) get windows of randomly chosen features instead of squares.
- L2: the paper moves mass between two windows; here a square-shaped step of size
  ``eps·√p`` is added in one window and the perturbation is put back on the sphere of radius
  eps (a plain random search with the same windows and schedule; see ``_l2_step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass

import torch
from torch import nn

from auditkit.attacks._base import AttackOutput, Box, BoxAttack, _view, margin, nonfinite_rows
from auditkit.attacks._query import Limits

#: (last iteration, divisor of p_init) of the paper's schedule.
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))


def window_fraction(p_init: float, iteration: int) -> float:
    """The share of features one step changes at ``iteration`` (halving as the search goes)."""
    for last, divisor in _SCHEDULE:
        if iteration <= last:
            return p_init / divisor
    return p_init / 512


@dataclass
class QueryAttackOutput(AttackOutput):
    """``AttackOutput`` plus the model queries each example cost (``queries``, shape (N,))."""

    queries: torch.Tensor | None = None


class Square(BoxAttack):
    r"""Score-based Square attack (L∞ and L2) with a per-example query budget.

    Each example starts from a random corner (L∞: vertical stripes of ±eps for images, random
    signs for tables; L2: a random direction of length eps) and then, one query per step,
    tries a new value on a random window (a square of pixels, or a random set of features),
    keeping it when the margin loss (largest wrong score − true score) grows. An example stops
    costing queries once it is misclassified.

    Args:
        model: scores in, for a batch (a ``QueryModel`` around a black box, or any module).
        eps: radius in input units.
        norm: ``Linf`` or ``L2``.
        queries: most model queries per example (the first is the random start).
        p_init: share of features the first steps change; default 0.05 (L∞) / 0.1 (L2) for
            images, 0.3 for tables.
        box: one ``(lo, hi)`` for every input; ``limits`` (per-feature bounds, frozen
            features) replaces it when given.
        generator: seeded generator for every random draw.

    Example:
        >>> out = Square(QueryModel(adapter.predict_logits), eps=0.1, queries=500,
        ...              generator=g).perturb(x, y)
        >>> (out.margin <= 0).float().mean(), out.queries.mean()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        queries: int = 1000,
        p_init: float | None = None,
        box: Box = (0.0, 1.0),
        limits: Limits | None = None,
        generator: torch.Generator | None = None,
        name: str = "Square",
    ) -> None:
        super().__init__(name, model, eps=eps, norm=norm, box=box, generator=generator)
        if queries < 1:
            raise ValueError("queries must be ≥ 1")
        self.queries = int(queries)
        self.p_init = p_init
        self.limits = limits if limits is not None else Limits.from_box(self.box)
        self.supported_mode = ["default"]

    # --- random draws: on the generator's device, for every example, every step ----------
    def _rand(self, *shape: int) -> torch.Tensor:
        device = self.generator.device if self.generator is not None else "cpu"
        return torch.rand(*shape, generator=self.generator, device=device).to(self.device)

    def _signs(self, *shape: int) -> torch.Tensor:
        return (self._rand(*shape) < 0.5).float() * 2 - 1

    @staticmethod
    def _is_image(x: torch.Tensor) -> bool:
        return x.dim() == 4 and min(x.shape[2:]) >= 2

    def _window(self, x: torch.Tensor, p: float, movable: torch.Tensor) -> torch.Tensor:
        """A boolean window per example: a random square (images) or random features."""
        n = len(x)
        if self._is_image(x):
            height, width = x.shape[2:]
            side = int(round(math.sqrt(p * height * width)))
            side = min(max(side, 1), min(height, width) - 1)
            top = (self._rand(n) * (height - side + 1)).long().clamp(max=height - side)
            left = (self._rand(n) * (width - side + 1)).long().clamp(max=width - side)
            rows = torch.arange(height, device=self.device)
            cols = torch.arange(width, device=self.device)
            in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
            in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
            square = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
            return square.expand_as(x) & movable
        flat = movable.reshape(n, -1)
        count = max(1, int(round(p * int(flat[0].sum()))))
        scores = self._rand(n, flat.shape[1]).masked_fill(~flat, 2.0)
        chosen = scores.argsort(dim=1)[:, :count]
        window = torch.zeros_like(flat).scatter_(1, chosen, True) & flat
        return window.view_as(x)

    def _pattern(self, x: torch.Tensor) -> torch.Tensor:
        """One random sign per channel of a square (images) or per feature (tables)."""
        if self._is_image(x):
            return self._signs(len(x), x.shape[1], 1, 1).expand_as(x)
        return self._signs(*x.shape)

    def _start(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "Linf":
            if self._is_image(x):
                stripes = self._signs(len(x), x.shape[1], 1, x.shape[3]).expand_as(x)
                return self.eps * stripes
            return self.eps * self._signs(*x.shape)
        return self._on_sphere(self.limits.masked(self._rand(*x.shape) * 2 - 1))

    def _on_sphere(self, delta: torch.Tensor) -> torch.Tensor:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        return delta * _view(self.eps / norms, delta)

    def _l2_step(self, delta: torch.Tensor, window: torch.Tensor, p: float,
                 x: torch.Tensor) -> torch.Tensor:
        # A square-shaped step of length eps·√p inside the window, then back onto the sphere.
        step = self._pattern(x) * window
        size = step.flatten(1).norm(dim=1).clamp_min(1e-12)
        step = step * _view(self.eps * math.sqrt(p) / size, step)
        return self._on_sphere(delta + step)

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> QueryAttackOutput:
        return drive([self.search(images, labels)], self.get_logits)[0]

    def search(self, images: torch.Tensor, labels: torch.Tensor
               ) -> Generator[torch.Tensor, torch.Tensor, QueryAttackOutput]:
        """The attack as a conversation: yields each batch it wants scored, is sent the scores
        (``drive`` asks the model; several searches can share its calls)."""
        x = images.detach().to(self.device)
        y = labels.detach().to(self.device)
        limits = self.limits.to(self.device)
        movable = (
            torch.ones_like(x, dtype=torch.bool) if limits.mask is None
            else (limits.mask.expand_as(x[0]) != 0).expand_as(x)
        )
        p_init = self.p_init or (
            (0.05 if self.norm == "Linf" else 0.1) if self._is_image(x) else 0.3
        )
        queries = torch.ones(len(x), device=self.device)
        if self.eps == 0 or not movable.any():
            scores = yield x
            best_margin, bad = margin(scores.float(), y), nonfinite_rows(scores)
            return QueryAttackOutput(x.clone(), best_margin, best_margin[None], bad, queries)
        delta = limits.masked(self._start(x))
        best = limits.clamp(x + delta)
        delta = best - x
        scores = (yield best).float()
        best_margin, nonfinite = margin(scores, y), nonfinite_rows(scores)
        for iteration in range(1, self.queries):
            p = window_fraction(p_init, iteration)
            window = self._window(x, p, movable)
            if self.norm == "Linf":
                proposal = torch.where(window, self.eps * self._pattern(x), delta)
            else:
                proposal = self._l2_step(delta, window, p, x)
            active = best_margin <= 0
            if not active.any():
                break
            index = active.nonzero().squeeze(1)
            candidate = limits.clamp(x[index] + limits.masked(proposal[index]))
            scores = (yield candidate).float()
            current = margin(scores, y[index])
            nonfinite[index] |= nonfinite_rows(scores)
            queries[index] += 1
            better = current > best_margin[index]
            keep = index[better]
            best[keep] = candidate[better]
            delta[keep] = best[keep] - x[keep]
            best_margin[keep] = current[better]
        return QueryAttackOutput(best, best_margin, best_margin[None].clone(), nonfinite, queries)


def drive(searches: list[Generator[torch.Tensor, torch.Tensor, QueryAttackOutput]],
          answer: Callable[[torch.Tensor], torch.Tensor]) -> list[QueryAttackOutput]:
    """Run several searches together: each step, what every unfinished one asks goes to
    ``answer`` in one call (a black box's overhead is per call); each gets its own rows back,
    so each result is the one it gets alone."""
    results: list[QueryAttackOutput | None] = [None] * len(searches)
    asks: dict[int, torch.Tensor] = {}

    def resume(k: int, scores: torch.Tensor | None) -> None:
        try:
            asks[k] = next(searches[k]) if scores is None else searches[k].send(scores)
        except StopIteration as done:
            asks.pop(k, None)
            results[k] = done.value

    for k in range(len(searches)):
        resume(k, None)
    while asks:
        order = list(asks)
        with torch.no_grad():
            scores = answer(torch.cat([asks[k] for k in order]))
        start = 0
        for k in order:
            count = len(asks[k])
            resume(k, scores[start : start + count])
            start += count
    return results  # type: ignore[return-value]
