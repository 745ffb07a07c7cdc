"""HopSkipJump: a decision-based attack that needs only the predicted label (Chen et al. 2020).

"HopSkipJumpAttack: a query-efficient decision-based attack", https://arxiv.org/abs/1904.02144.
Threat model: ``‖δ‖ ≤ eps`` (L2 or L∞), ``x + δ`` inside the limits, frozen features unchanged;
the attacker sees only the top-1 label. It is a minimum-norm attack: it finds a misclassified
point, walks to the decision boundary by binary search, estimates the boundary's normal from
the labels of random probes around it, steps along it and searches back to the boundary; the
distance shrinks with every round. An example counts as fooled when the attack ends within
``eps`` of it. The loop stops at that point, so a robust example costs the whole query budget
and a fragile one little.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import torch
from torch import nn

from auditkit.attacks._base import Box, BoxAttack, per_example_norm
from auditkit.attacks._query import Limits
from auditkit.attacks.square import QueryAttackOutput

#: One example's search: yields the points it wants labelled, is sent their scores.
Ask = Generator[torch.Tensor, torch.Tensor, object]


class _Budget(Exception):
    """The example's query budget is spent."""


class HopSkipJump(BoxAttack):
    r"""Decision-based HopSkipJump (L2 or L∞) with a per-example query budget.

    Args:
        model: anything that returns one row of scores per example; only ``argmax`` is used,
            so one-hot labels work (a labels-only model).
        eps: radius in input units; the search stops once an example is fooled within it.
        norm: ``L2`` or ``Linf``.
        queries: most model queries per example.
        init_evals: random probes of the first gradient estimate (grows with √iteration up to
            ``max_evals``).
        init_tries: random points tried to find a first misclassified input.
        box / limits: where inputs may go (``limits``: per-feature bounds, frozen features).
        generator: seeded generator for every random draw.

    Example:
        >>> out = HopSkipJump(QueryModel(labels_as_one_hot), eps=0.5, queries=1000,
        ...                   generator=g).perturb(x, y)
        >>> (out.margin <= 0).float().mean(), out.queries.mean()
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "L2",
        queries: int = 1000,
        init_evals: int = 50,
        max_evals: int = 200,
        init_tries: int = 50,
        box: Box = (0.0, 1.0),
        limits: Limits | None = None,
        generator: torch.Generator | None = None,
        name: str = "HopSkipJump",
    ) -> None:
        super().__init__(name, model, eps=eps, norm=norm, box=box, generator=generator)
        if queries < 1:
            raise ValueError("queries must be ≥ 1")
        self.queries = int(queries)
        self.init_evals = int(init_evals)
        self.max_evals = int(max_evals)
        self.init_tries = int(init_tries)
        self.limits = limits if limits is not None else Limits.from_box(self.box)
        self.supported_mode = ["default"]

    def perturb(self, images: torch.Tensor, labels: torch.Tensor) -> QueryAttackOutput:
        x = images.detach().to(self.device)
        y = labels.detach().to(self.device)
        limits = self.limits.to(self.device)
        adversarial = x.clone()
        margins = torch.full((len(x),), float("-inf"), device=self.device)
        queries = torch.zeros(len(x), device=self.device)
        nonfinite = torch.zeros(len(x), dtype=torch.bool, device=self.device)
        # One random stream per example: with a larger budget each example repeats its shorter
        # run first, so more queries are never weaker.
        device = self.generator.device if self.generator is not None else torch.device("cpu")
        seeds = torch.randint(0, 2**62, (len(x),), generator=self.generator, device=device)
        runs = []
        for i in range(len(x)):
            stream = torch.Generator(device=device)
            stream.manual_seed(int(seeds[i]))
            runs.append(_Run(self, x[i], int(y[i]), limits, stream))
        _lockstep(self, runs)
        for i, run in enumerate(runs):
            queries[i] = run.used
            nonfinite[i] = run.nonfinite
            if run.best is not None:
                adversarial[i] = run.best
                distance = float(per_example_norm((run.best - x[i])[None], self.norm)[0])
                margins[i] = self.eps - distance if distance > 0 else 0.0
        # margin > 0 exactly when a misclassified point lies strictly within eps (eps - distance).
        return QueryAttackOutput(adversarial, margins, margins[None].clone(), nonfinite, queries)


def _lockstep(attack: HopSkipJump, runs: list[_Run]) -> None:
    """Drive every example's search together: each step, the points all unfinished examples
    want labelled go to the model in one call (a black box's overhead is per call), and each
    example gets its own answers back. Every example keeps its own random stream and budget,
    so the result is the one of attacking it alone."""
    pending: dict[int, torch.Tensor] = {}
    steps: dict[int, Ask] = {}
    for k, run in enumerate(runs):
        steps[k] = run.attack()
        _advance(pending, steps, k, None)
    while pending:
        order = list(pending)
        points = torch.cat([pending[k] for k in order])
        with torch.no_grad():
            scores = attack.get_logits(points).float()
        start = 0
        for k in order:
            count = len(pending[k])
            answer = scores[start : start + count]
            start += count
            _advance(pending, steps, k, answer)


def _advance(pending: dict[int, torch.Tensor], steps: dict[int, Ask], k: int,
             answer: torch.Tensor | None) -> None:
    """Resume example ``k``'s search with ``answer`` until it asks again (or ends)."""
    try:
        points = steps[k].send(answer) if answer is not None else next(steps[k])
    except (StopIteration, _Budget):
        pending.pop(k, None)
        return
    pending[k] = points


class _Run:
    """One example's attack: its query counter, current boundary point and distance."""

    def __init__(self, attack: HopSkipJump, x0: torch.Tensor, label: int, limits: Limits,
                 stream: torch.Generator) -> None:
        self.a, self.x0, self.label, self.limits = attack, x0, label, limits
        self.stream = stream
        self.used = 0
        self.nonfinite = False
        self.best: torch.Tensor | None = None
        self.dim = max(limits.movable(x0[None]), 1)
        if attack.norm == "L2":
            self.theta = 1.0 / (self.dim * math.sqrt(self.dim))
        else:
            self.theta = 1.0 / (self.dim * self.dim)

    def _rand(self, *shape: int, normal: bool = False) -> torch.Tensor:
        draw = torch.randn if normal else torch.rand
        return draw(*shape, generator=self.stream, device=self.stream.device).to(self.x0.device)

    # --- the model, asked about a batch of candidates ------------------------------------
    def fooled(self, points: torch.Tensor) -> Generator[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ask the model (``yield``: the driver batches all examples' questions)."""
        if self.used + len(points) > self.a.queries:
            points = points[: self.a.queries - self.used]
            if not len(points):
                raise _Budget
        self.used += len(points)
        scores = yield points
        bad = ~torch.isfinite(scores).all(dim=1)
        self.nonfinite = self.nonfinite or bool(bad.any())
        # A NaN answer is never the right answer.
        return (scores.argmax(dim=1) != self.label) | bad

    def distance(self, point: torch.Tensor) -> float:
        return float(per_example_norm((point - self.x0)[None], self.a.norm)[0])

    def _keep(self, point: torch.Tensor) -> None:
        if self.best is None or self.distance(point) < self.distance(self.best):
            self.best = point.clone()

    # --- the algorithm --------------------------------------------------------------------
    def attack(self) -> Ask:
        start = yield from self.initial()
        if start is None:
            return
        self._keep(start)
        boundary = yield from self.binary_search(start)
        self._keep(boundary)
        for iteration in range(1, 10_000):
            distance = self.distance(boundary)
            if distance <= self.a.eps:
                return
            grad = yield from self.gradient_direction(boundary, distance, iteration)
            step = distance / math.sqrt(iteration)
            while True:
                trial = self.project(boundary + step * grad)
                if bool((yield from self.fooled(trial[None]))[0]):
                    break
                step /= 2
                if step < 1e-8:
                    return
            boundary = yield from self.binary_search(trial)
            self._keep(boundary)

    def project(self, point: torch.Tensor) -> torch.Tensor:
        delta = self.limits.masked(point - self.x0)
        return self.limits.clamp(self.x0 + delta)

    def initial(self) -> Generator[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A misclassified point: uniform noise inside the limits (or wide Gaussian noise
        around the input where there are none), a batch of tries at a time."""
        x0, lim = self.x0, self.limits
        for _ in range(max(1, math.ceil(self.a.init_tries / 10))):
            if lim.lo is not None and lim.hi is not None:
                lo, hi = lim.lo.expand_as(x0), lim.hi.expand_as(x0)
                noise = lo + (hi - lo) * self._like(10)
            else:
                noise = x0 + 3.0 * self._rand(10, *x0.shape, normal=True)
            points = self.project(noise)
            hit = yield from self.fooled(points)
            if hit.any():
                return points[hit.nonzero()[0, 0]]
        return None

    def _like(self, n: int) -> torch.Tensor:
        return self._rand(n, *self.x0.shape)

    def binary_search(self, adversarial: torch.Tensor
                      ) -> Generator[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The point nearest to the input on the segment (L2) or shrinking cube (L∞) towards
        ``adversarial`` that is still misclassified."""
        low, high = 0.0, 1.0
        delta = adversarial - self.x0
        linf = float(delta.abs().max())
        threshold = self.theta if self.a.norm == "L2" else min(self.theta, 1e-3)

        def blend(alpha: float) -> torch.Tensor:
            if self.a.norm == "L2":
                return self.x0 + alpha * delta
            return self.x0 + delta.clamp(-alpha * linf, alpha * linf)

        while high - low > threshold:
            middle = (low + high) / 2
            if bool((yield from self.fooled(blend(middle)[None]))[0]):
                high = middle
            else:
                low = middle
        return blend(high)

    def gradient_direction(self, boundary: torch.Tensor, distance: float,
                           iteration: int) -> Generator[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Monte Carlo estimate of the boundary's normal from the labels of random probes."""
        evals = min(int(self.a.init_evals * math.sqrt(iteration)), self.a.max_evals)
        if self.a.norm == "L2":
            radius = math.sqrt(self.dim) * self.theta * distance
            probes = self._rand(evals, *boundary.shape, normal=True)
        else:
            radius = self.dim * self.theta * distance
            probes = self._rand(evals, *boundary.shape) * 2 - 1
        radius = max(radius, 1e-6)
        probes = self.limits.masked(probes)
        probes = probes / probes.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * boundary.dim())
        points = self.limits.clamp(boundary + radius * probes)
        probes = (points - boundary) / radius
        signs = (yield from self.fooled(points)).float() * 2 - 1
        probes = probes[: len(signs)]
        mean = signs.mean()
        if abs(float(mean)) == 1.0:
            grad = mean * probes.mean(dim=0)
        else:
            grad = ((signs - mean).view(-1, *[1] * boundary.dim()) * probes).mean(dim=0)
        if self.a.norm == "Linf":
            return grad.sign()
        return grad / grad.norm().clamp_min(1e-12)
