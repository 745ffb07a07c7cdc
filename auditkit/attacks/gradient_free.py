"""Robustness of a model without gradients: Square (scores) or HopSkipJump (labels only).

``measure`` attacks the correctly classified examples through the adapter's batched answers
(``predict_logits``: onnxruntime, scikit-learn, a black-box function), counts the queries and
compares with random noise of the same size; ``judge`` turns the numbers into the checklist
that applies to a gradient-free attack. Both attacks are seeded so that a larger budget repeats
the shorter run first: the accuracy at half the budget is read off the same run (the examples
fooled within half the queries), which is what "more queries do not change the result much"
compares, at no extra cost.

Units: for a bounded input box eps is in input units; for unbounded inputs (tables) it is in
feature standard deviations, and each numeric feature stays within the range observed in the
audit data (categorical features, the adapter's ``feature_mask``, stay fixed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditkit.attacks._base import margin
from auditkit.attacks._query import Limits, QueryModel
from auditkit.attacks.hopskipjump import HopSkipJump
from auditkit.attacks.square import Square, drive
from auditkit.results import Check

SQUARE, DECISION = "square", "hopskipjump"
#: Absolute accuracy tolerances of the checklist (as the gradient checklist uses).
QUERIES_TOLERANCE = 0.02
NOISE_TOLERANCE = 0.01
MONOTONE_TOLERANCE = 0.01
#: Unbounded attack radius: the whole box (bounded) or this many feature stds (tables).
UNBOUNDED_STD_EPS = 100.0
UNBOUNDED_MAX_ACCURACY = 0.05


def choose_attack(adapter: Any) -> str:
    """HopSkipJump for a labels-only model, Square for any model that returns scores."""
    return DECISION if adapter.diagnostics.output_kind == "labels" else SQUARE


@dataclass(frozen=True)
class GradientFreePlan:
    """What to run: the attack, the threat model, the query budget and the baselines."""

    attack: str
    norm: str
    eps: float
    queries: int
    sweep: tuple[float, ...] = ()  # extra radii (input units / stds), judged at the same budget
    noise_draws: int = 8
    batch_size: int = 256

    def describe(self) -> dict[str, Any]:
        return {"attack": self.attack, "norm": self.norm, "eps": self.eps,
                "queries_per_example": self.queries, "sweep": list(self.sweep),
                "noise_draws": self.noise_draws}


@dataclass
class GradientFreeMeasurement:
    """Per-example verdicts and query counts (plain data; ``judge`` needs nothing else)."""

    plan: GradientFreePlan
    n_examples: int
    clean_correct: np.ndarray
    attack_correct: np.ndarray
    half_budget_correct: np.ndarray
    noise_correct: np.ndarray
    queries: np.ndarray  # per attacked example
    sweep: list[dict[str, float]] = field(default_factory=list)
    unbounded_accuracy: float | None = None
    unbounded_eps: float | None = None
    units: str = "input units"
    frozen_features: tuple[str, ...] = ()
    nonfinite_examples: int = 0
    seconds: float = 0.0
    adversarial: torch.Tensor | None = None

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.mean()) if self.n_examples else 0.0

    @property
    def attack_accuracy(self) -> float:
        return float(self.attack_correct.mean()) if self.n_examples else 0.0

    @property
    def robust_correct(self) -> np.ndarray:
        return self.attack_correct & self.noise_correct

    def metrics(self) -> dict[str, float | None]:
        prefix = "square" if self.plan.attack == SQUARE else "decision"
        attacked = len(self.queries)
        return {
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": float(self.robust_correct.mean()) if self.n_examples else 0.0,
            f"{prefix}_accuracy": self.attack_accuracy,
            f"{prefix}_queries_mean": float(self.queries.mean()) if attacked else 0.0,
            f"{prefix}_queries_budget": float(self.plan.queries),
            "noise_accuracy": float(self.noise_correct.mean()) if self.n_examples else 0.0,
            "eps": self.plan.eps,
            "n_examples": self.n_examples,
        }


def _limits(adapter: Any, x: torch.Tensor, scale: torch.Tensor | None) -> Limits:
    mask = getattr(adapter, "feature_mask", None)
    if adapter.input_range is not None:
        return Limits.from_box(adapter.input_range, mask)
    lo, hi = x.amin(dim=0), x.amax(dim=0)
    if scale is not None:
        lo, hi = lo / scale, hi / scale
    return Limits(lo, hi, mask)


def _scale(adapter: Any, x: torch.Tensor) -> torch.Tensor | None:
    """Feature stds (unbounded inputs): eps is measured in them. Frozen features keep scale 1,
    so their values (category codes) come back from the attack bit for bit."""
    if adapter.input_range is not None:
        return None
    std = x.std(dim=0)
    mask = getattr(adapter, "feature_mask", None)
    moves = std > 0 if mask is None else (std > 0) & (mask.to(std.device) != 0)
    return torch.where(moves, std, torch.ones_like(std))


def measure(
    adapter: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_correct: np.ndarray,
    plan: GradientFreePlan,
    generator_of: Callable[[str], torch.Generator],
    *,
    baselines: bool = True,
    progress: Callable[[str, int, int], None] | None = None,
) -> GradientFreeMeasurement:
    """Attack the correctly classified examples of ``(x, y)`` without gradients.

    ``baselines=False`` skips the random-noise and unbounded runs (Square beside PGD needs
    only its own number).

    Example:
        >>> plan = GradientFreePlan(SQUARE, "Linf", eps=0.1, queries=500)
        >>> m = measure(adapter, x, y, clean_correct, plan, lambda tag: torch.Generator())
        >>> m.metrics()["square_accuracy"], m.metrics()["square_queries_mean"]
    """
    started = time.perf_counter()
    scale = _scale(adapter, x)
    z = x if scale is None else x / scale
    limits = _limits(adapter, x, scale)

    def answer(points: torch.Tensor) -> torch.Tensor:
        # The caller sized the batch (``_query_batch``): one model call, not 512-row chunks.
        return adapter.predict_logits(points if scale is None else points * scale,
                                      batch_size=max(len(points), 1))

    targets = np.flatnonzero(clean_correct)
    n = len(x)
    # A black box costs a fixed overhead per call (a DataFrame for a scikit-learn pipeline, a
    # session run for onnxruntime): the attacks ask about the whole attacked set at once, up to
    # a memory cap, instead of the gradient attacks' batch.
    batch = _query_batch(plan, z)

    def attack_for(tag: str, eps: float, queries: int):
        cls = Square if plan.attack == SQUARE else HopSkipJump
        return cls(QueryModel(answer), eps=eps, norm=plan.norm, queries=queries, box=None,
                   limits=limits, generator=generator_of(tag))

    def verdicts(eps: float, outs: list, keep: bool):
        correct = clean_correct.copy()
        used = np.zeros(len(targets))
        adversarial = z.clone() if keep else None
        nonfinite = 0
        for start, out in zip(range(0, len(targets), batch), outs, strict=True):
            index = targets[start : start + batch]
            correct[index] = (out.margin <= 0).numpy()
            used[start : start + len(index)] = out.queries.numpy()
            nonfinite += int(out.nonfinite.sum()) if out.nonfinite is not None else 0
            if adversarial is not None:
                adversarial[index] = out.adversarial
        return correct, used, nonfinite, adversarial

    def run(tag: str, eps: float, queries: int, keep: bool = False):
        attack = attack_for(tag, eps, queries)
        outs = []
        for start in range(0, len(targets), batch):
            index = targets[start : start + batch]
            outs.append(attack.perturb(z[index], y[index]))
            if progress is not None:
                progress(f"{plan.attack} eps={eps:.3g}", start + len(index), len(targets))
        return verdicts(eps, outs, keep)

    # Every run's radius and budget, headline first (each run has its own seeded generator).
    sweep_eps = sorted(set(plan.sweep) - {plan.eps})
    if scale is None and adapter.input_range is not None:
        unbounded_eps = float(adapter.input_range[1] - adapter.input_range[0])
    else:
        unbounded_eps = UNBOUNDED_STD_EPS
    if plan.norm == "L2":
        unbounded_eps *= float(np.sqrt(int(np.prod(x.shape[1:]))))
    runs = [("headline", plan.eps, plan.queries, True)]
    runs += [(f"sweep/{eps}", eps, plan.queries, False) for eps in sweep_eps]
    if baselines:
        runs.append(("unbounded", unbounded_eps, max(plan.queries // 4, 50), False))
    per_example = max(int(np.prod(z.shape[1:])), 1)
    together = (plan.attack == SQUARE and 0 < len(targets) <= batch
                and len(runs) * len(targets) * per_example <= QUERY_VALUES)
    if together:
        # Square at every radius in lockstep: one model call per iteration for all of them.
        attacks = [attack_for(tag, eps, queries) for tag, eps, queries, _ in runs]
        outs = drive([a.search(z[targets], y[targets]) for a in attacks], attacks[0].get_logits)
        results = [verdicts(eps, [out], keep)
                   for (_, eps, _, keep), out in zip(runs, outs, strict=True)]
        if progress is not None:
            progress(f"{plan.attack} eps={plan.eps:.3g}", len(targets), len(targets))
    else:
        results = [run(tag, eps, queries, keep) for tag, eps, queries, keep in runs]

    attack_correct, queries, nonfinite, adversarial = results[0]
    # The same run, cut at half the budget (each example's search is a prefix of the longer one).
    half = clean_correct.copy()
    fooled_early = (~attack_correct[targets]) & (queries <= plan.queries // 2)
    half[targets] = ~fooled_early

    noise_correct = clean_correct.copy()
    if baselines and len(targets) and plan.eps > 0:
        noise_correct[targets] = _survives_noise(answer, z[targets], y[targets], plan, limits,
                                                 generator_of("noise"))

    sweep = []
    for eps, (correct, _, _, _) in zip(sweep_eps, results[1:], strict=False):
        sweep.append({"eps": eps, "accuracy": float(correct.mean()) if n else 0.0})
    sweep.append({"eps": plan.eps, "accuracy": float(attack_correct.mean()) if n else 0.0})
    sweep.sort(key=lambda p: p["eps"])

    unbounded = results[-1][0] if baselines else None

    names = getattr(adapter, "frozen_features", ()) or ()
    return GradientFreeMeasurement(
        plan=plan, n_examples=n, clean_correct=clean_correct, attack_correct=attack_correct,
        half_budget_correct=half, noise_correct=noise_correct, queries=queries, sweep=sweep,
        unbounded_accuracy=float(unbounded.mean()) if n and unbounded is not None else None,
        unbounded_eps=unbounded_eps,
        units="input units" if scale is None else "feature standard deviations",
        frozen_features=tuple(names), nonfinite_examples=nonfinite,
        seconds=round(time.perf_counter() - started, 3),
        adversarial=adversarial if scale is None else adversarial * scale,
    )


#: Most input values one black-box query holds (examples × features): 16M float32 = 64 MB.
QUERY_VALUES = 2**24


def _query_batch(plan: GradientFreePlan, z: torch.Tensor) -> int:
    """Examples per model call: all of them (tables), fewer for big images, never fewer than
    the plan's batch."""
    per_example = max(int(np.prod(z.shape[1:])), 1)
    return max(plan.batch_size, min(len(z), QUERY_VALUES // per_example), 1)


def _survives_noise(answer: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                    y: torch.Tensor, plan: GradientFreePlan, limits: Limits,
                    generator: torch.Generator) -> np.ndarray:
    """Still correct under each of ``noise_draws`` random perturbations on the surface of the
    eps ball (L∞: random corners), within the same limits and frozen features as the attack.
    All draws are asked about together (one call for a table)."""
    draws = []
    for _ in range(plan.noise_draws):
        if plan.norm == "Linf":
            delta = plan.eps * (torch.rand(z.shape, generator=generator) * 2 - 1).sign()
        else:
            delta = limits.masked(torch.randn(z.shape, generator=generator))
            delta = plan.eps * delta / delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                -1, *[1] * (z.dim() - 1))
        draws.append(limits.clamp(z + limits.masked(delta)))
    noisy, labels = torch.cat(draws), y.repeat(plan.noise_draws)
    size = _query_batch(plan, noisy)
    correct = np.empty(len(noisy), dtype=bool)
    for start in range(0, len(noisy), size):
        chunk = slice(start, start + size)
        with torch.no_grad():
            scores = answer(noisy[chunk]).float()
        correct[chunk] = (margin(scores, labels[chunk]) <= 0).numpy()
    return correct.reshape(plan.noise_draws, len(z)).all(axis=0)


def _pct(value: float) -> str:
    return f"{value:.1%}"


def judge(m: GradientFreeMeasurement, *, stochastic: bool = False) -> list[Check]:
    """The checklist for a gradient-free attack, in the gradient checklist's names and order."""
    name = "Square" if m.plan.attack == SQUARE else "HopSkipJump"
    na = "not applicable: the model gives no input gradients (gradient-free attack)"
    checks = [Check("iterative_beats_single_step", "skipped", na)]

    # accuracy never rises with eps (same budget)
    rises = [(a, b) for a, b in zip(m.sweep, m.sweep[1:], strict=False)
             if b["accuracy"] > a["accuracy"] + MONOTONE_TOLERANCE]
    if len(m.sweep) < 2:
        checks.append(Check("accuracy_decreases_with_eps", "skipped",
                            "only one eps was attacked", {"sweep": m.sweep}))
    else:
        detail = (f"{name} accuracy over eps " + ", ".join(
            f"{p['eps']:.3g}: {_pct(p['accuracy'])}" for p in m.sweep))
        if rises:
            a, b = rises[0]
            detail += f"; rises from {_pct(a['accuracy'])} to {_pct(b['accuracy'])}"
        checks.append(Check("accuracy_decreases_with_eps", "failed" if rises else "passed",
                            detail, {"sweep": m.sweep, "tolerance": MONOTONE_TOLERANCE}))

    # an unbounded gradient-free attack breaks (nearly) everything
    ok = (m.unbounded_accuracy or 0.0) <= UNBOUNDED_MAX_ACCURACY
    if m.unbounded_accuracy is None:
        checks.append(Check("unbounded_attack_succeeds", "skipped",
                            "the unbounded run was not made"))
    else:
        checks.append(Check(
            "unbounded_attack_succeeds", "passed" if ok else "failed",
            f"{name} with eps {m.unbounded_eps:.3g} ({m.units}) leaves "
            f"{_pct(m.unbounded_accuracy)} accuracy (need ≤ {_pct(UNBOUNDED_MAX_ACCURACY)})",
            {"eps": m.unbounded_eps, "accuracy": m.unbounded_accuracy},
        ))

    # more queries do not change the result much
    half = float(m.half_budget_correct.mean()) if m.n_examples else 0.0
    change = half - m.attack_accuracy
    converged = change <= QUERIES_TOLERANCE
    numbers = (f"{name} accuracy {_pct(half)} after {m.plan.queries // 2} queries per example, "
               f"{_pct(m.attack_accuracy)} after {m.plan.queries}")
    checks.append(Check(
        "converged_in_steps", "passed" if converged else "failed",
        (f"more queries do not change the result much: {numbers} (change {change:+.1%}, "
         f"tolerance {_pct(QUERIES_TOLERANCE)})" if converged else
         f"more queries still lower the result: {numbers} (down {change:.1%}, more than the "
         f"tolerance {_pct(QUERIES_TOLERANCE)})"),
        {"half_budget_accuracy": half, "full_budget_accuracy": m.attack_accuracy,
         "queries": m.plan.queries, "tolerance": QUERIES_TOLERANCE},
    ))

    # the attack beats random noise of the same size
    noise = float(m.noise_correct.mean()) if m.n_examples else 0.0
    ok = m.attack_accuracy <= noise - NOISE_TOLERANCE or m.attack_accuracy == 0.0
    # Neither moved anything: attack and noise agree because nothing in the ball flips a
    # prediction (a linear model far from its boundary), so the check cannot tell them apart.
    unflipped = m.n_examples > 0 and bool(
        np.array_equal(m.attack_correct, m.clean_correct)
        and np.array_equal(m.noise_correct, m.clean_correct)
    )
    if unflipped and not ok:
        status, detail = "skipped", (
            f"not applicable: neither {name} nor random noise flips any prediction at eps "
            f"{m.plan.eps:.3g} (both leave the clean accuracy {_pct(m.clean_accuracy)}), so "
            "there is nothing to tell them apart")
    elif ok:
        status, detail = "passed", (
            f"{name} {_pct(m.attack_accuracy)} is below random noise {_pct(noise)} at eps "
            f"{m.plan.eps:.3g}")
    else:
        status, detail = "failed", (
            f"{name} {_pct(m.attack_accuracy)} is not below random noise {_pct(noise)} at eps "
            f"{m.plan.eps:.3g} by the tolerance {_pct(NOISE_TOLERANCE)}")
    checks.append(Check(
        "attack_beats_random_noise", status, detail,
        {"attack_accuracy": m.attack_accuracy, "noise_accuracy": noise,
         "tolerance": NOISE_TOLERANCE},
    ))
    checks.append(Check("gradients_nonzero_and_finite", "skipped", na,
                        {"nonfinite_examples_under_attack": m.nonfinite_examples}))
    if stochastic:
        checks.append(Check(
            "stochastic_model_attacked_with_eot", "failed",
            "the black box answers differently to the same input; the gradient-free attack "
            "judged single answers, so its numbers are noisy", {"stochastic": True}))
    else:
        checks.append(Check("stochastic_model_attacked_with_eot", "skipped",
                            "not applicable: two answers to the same inputs agree",
                            {"stochastic": False}))
    return checks
