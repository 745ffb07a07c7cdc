"""Measure: plan the attacks from the options and the data, run them, return plain data.

Everything that touches the model is here (and in its helper ``_runner``; the attack plan is
``plan``'s): FGSM,
PGD with restarts and a doubled-step run, random noise, EOT-PGD, the unbounded attack,
AutoAttack, input gradients and the gallery's examples. The result is an
:class:`AdversarialMeasurement` of per-example verdicts and curves, which ``judge`` reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditkit.attacks import EOTPGD, FGSM, PGD, AutoAttack, RandomNoise
from auditkit.context import AuditContext, derive_seed, diagnostic_sample_size
from auditkit.probes.adversarial._runner import (
    AttackRunner,
    attack_space,
    detect_stochastic,
    fooling_input,
    gradient_stats,
    right_answers,
)
from auditkit.probes.adversarial.options import AdversarialOptions
from auditkit.probes.adversarial.plan import (  # noqa: F401 - default_threat: the plan's, read here too
    UNBOUNDED_RETRIES,
    UNBOUNDED_STEP_BOX,
    UNBOUNDED_STEP_STD,
    Plan,
    default_threat,
    make_plan,
    unbounded_eps,
)

GALLERY_SIZE = 6


def _mixed_precision(
    plan: Plan, adapter: Any, z: torch.Tensor, y: torch.Tensor, clean_correct: np.ndarray,
    seed: int,
) -> Plan:
    """Check bf16 against float32 on a sample; keep it only when robust accuracy agrees within
    one point and bf16 really runs (a GPU that supports it)."""
    from dataclasses import replace

    if not hasattr(adapter, "mixed_precision"):
        return replace(plan, mixed_precision=False)
    from auditkit.probes.adversarial.bf16 import compare_bf16_robust_accuracy

    sample = torch.as_tensor(np.flatnonzero(clean_correct)[:256])
    check = None
    if len(sample) and plan.norm == "Linf" and plan.eps > 0:
        check = compare_bf16_robust_accuracy(
            adapter, z[sample], y[sample], eps=plan.eps, steps=plan.steps, seed=seed
        )
    keep = bool(check and check["bf16_used"] and check["within_one_point"])
    return replace(plan, mixed_precision=keep, bf16_check=check)


@dataclass
class AdversarialMeasurement:
    """Everything the attacks found, per example and per radius; no model inside.

    Per-example arrays (booleans: correct clean and still correct under the attack) are
    aligned with ``indices`` (positions in the audit data). ``headline`` and ``secondary``
    (the L2 attacks beside an L∞ headline) hold ``curve`` (one dict per eps with ``fgsm``,
    ``pgd``, ``noise``, ``worst`` accuracies) and, at the headline eps, the arrays ``fgsm``,
    ``pgd`` (every restart), ``pgd_r0``, ``noise``, ``pgd_double_steps`` (headline only),
    ``robust`` and the list ``worst_case_over``.
    """

    plan: Plan
    labels: np.ndarray
    clean_correct: np.ndarray
    headline: dict[str, Any]
    eot_correct: np.ndarray
    unbounded_correct: np.ndarray
    gradients: dict[str, Any]
    num_classes: int
    class_names: list[str]
    indices: np.ndarray | None = None
    secondary: dict[str, Any] | None = None
    transform_correct: np.ndarray | None = None
    unbounded_eps: float = 1.0
    unbounded_runs: list[dict[str, Any]] = field(default_factory=list)
    autoattack_correct: np.ndarray | None = None
    autoattack_settings: dict[str, Any] | None = None
    autoattack_note: str | None = None
    stochastic: bool = False
    stochastic_diff: float = 0.0
    adapter_stochastic: bool = False
    best_iterate: bool = True
    nonfinite: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    gallery: list[dict[str, Any]] | None = None
    input_range: tuple[float, float] | None = None
    # A random model: correct under EOT-PGD over its own randomness alone (no transformations).
    own_randomness_correct: np.ndarray | None = None


def measure(context: AuditContext, opts: AdversarialOptions, budget: str) -> AdversarialMeasurement:
    """Run every attack of the plan on a seeded subset of the audit data."""
    devices = _cuda_devices(context.device)
    # A random model draws from torch's global generator: fork it so the audit is
    # reproducible and nobody else's random numbers change.
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(context.seed, "adversarial/model"))
        return _measure(context, opts, budget)


def _measure(
    context: AuditContext, opts: AdversarialOptions, budget: str
) -> AdversarialMeasurement:
    adapter, data = context.adapter, context.data
    space = attack_space(adapter, data)
    sample = data.x[: diagnostic_sample_size(data.input_shape)]
    stochastic, stochastic_diff = detect_stochastic(adapter, space, space.to_space(sample))
    plan = make_plan(opts, budget, context, stochastic)
    n_total = len(data)
    if plan.n_examples < n_total:
        rng = context.rng("adversarial/examples")
        indices = np.sort(rng.choice(n_total, size=plan.n_examples, replace=False))
    else:
        indices = np.arange(n_total)
    tindex = torch.as_tensor(indices)
    x, y = data.x[tindex], data.y[tindex]
    clean_logits = context.clean_logits[tindex]
    # A NaN row is no answer: right only if it is the true class with finite logits.
    clean_correct = right_answers(clean_logits.float(), y)
    z = space.to_space(x)

    if plan.mixed_precision:
        plan = _mixed_precision(
            plan, adapter, z, y, clean_correct, derive_seed(context.seed, "adversarial/bf16")
        )
    runner = AttackRunner(
        mixed_precision=plan.mixed_precision,
        autocast=(lambda: adapter.mixed_precision(True))
        if plan.mixed_precision
        else contextlib.nullcontext,
        progress=context.progress,
        space=space,
        z=z,
        y=y,
        clean_correct=clean_correct,
        device=adapter.device,
        batch_size=plan.batch_size,
        stochastic=stochastic,
        eval_samples=plan.eval_samples,
        seed_of=lambda tag: context.generator(f"adversarial/{tag}", adapter.device),
        int_seed_of=lambda tag: derive_seed(context.seed, f"adversarial/{tag}"),
    )
    clean_probabilities = torch.softmax(clean_logits.float(), dim=-1)
    if stochastic:
        # One random pass is a coin flip near the boundary: judge clean inputs by the same
        # averaged prediction as every attack, so eps = 0 reproduces clean accuracy.
        clean_probabilities = runner.all_probabilities(z)
        clean_correct = right_answers(clean_probabilities, y)
        runner.clean_correct = clean_correct
    # Best-iterate tracking needs exact margins; a random model's single-pass margins are
    # noise, so there the last iterate is kept and judged with averaged passes instead.
    track_best = not stochastic
    gradients = gradient_stats(space, z, y, adapter.device, plan.batch_size)

    headline = _attack_norm(
        runner, plan, plan.norm, plan.eps, plan.sweep, track_best, headline=True
    )
    secondary = None
    if plan.norm == "Linf" and plan.l2_eps is not None:
        secondary = _attack_norm(
            runner, plan, "L2", plan.l2_eps, plan.l2_sweep, track_best, headline=False
        )
    eot_correct = _eot(runner, plan, track_best)
    # robust_accuracy's EOT is over the model's own randomness only (one threat model): the
    # transformation distribution stays in eot_accuracy / transform_accuracy.
    own_randomness_correct = None
    if stochastic:
        own_randomness_correct = (
            eot_correct
            if plan.transform is None
            else _eot(runner, dataclasses.replace(plan, transform=None), track_best, "own")
        )
    transform_correct = runner.transform_correct(plan.transform) if plan.transform else None
    limit = unbounded_eps(plan.norm, space.box, tuple(adapter.input_shape))
    unbounded_correct, unbounded_runs = _unbounded(
        runner, plan, limit, track_best, tuple(adapter.input_shape)
    )
    autoattack_correct, autoattack_settings, autoattack_note = None, None, None
    if plan.autoattack:
        autoattack_correct, autoattack_settings, autoattack_note = _autoattack(
            runner, plan, adapter, stochastic, derive_seed(context.seed, "adversarial/aa")
        )
    names = data.class_names or [str(i) for i in range(adapter.num_classes)]
    adversarial = headline.pop("adversarial")
    gallery = _gallery_examples(
        runner,
        space,
        x,
        y,
        clean_probabilities,
        adversarial,
        headline["pgd"],
        clean_correct,
        names,
        adapter.input_range,
    )
    return AdversarialMeasurement(
        plan=plan,
        labels=y.numpy(),
        clean_correct=clean_correct,
        headline=headline,
        eot_correct=eot_correct,
        own_randomness_correct=own_randomness_correct,
        unbounded_correct=unbounded_correct,
        gradients=gradients,
        num_classes=adapter.num_classes,
        class_names=list(names),
        indices=indices,
        secondary=secondary,
        transform_correct=transform_correct,
        unbounded_eps=limit,
        unbounded_runs=unbounded_runs,
        autoattack_correct=autoattack_correct,
        autoattack_settings=autoattack_settings,
        autoattack_note=autoattack_note,
        stochastic=stochastic,
        stochastic_diff=stochastic_diff,
        adapter_stochastic=bool(getattr(adapter.diagnostics, "stochastic", False)),
        best_iterate=track_best,
        nonfinite=runner.nonfinite,
        timings=runner.timings,
        gallery=gallery,
        input_range=adapter.input_range,
    )


# --- attacks ----------------------------------------------------------------------------
def _attack_norm(
    runner: AttackRunner,
    plan: Plan,
    norm: str,
    eps: float,
    sweep: tuple[float, ...],
    track_best: bool,
    *,
    headline: bool,
) -> dict[str, Any]:
    """FGSM, PGD (restart 0) and noise over the sweep; at eps, restarts and 2× steps."""
    points = tuple(sorted(set(sweep) | {eps}))
    curve, at_eps = [], {}
    for e in points:
        if e == 0 and e != eps:
            # A radius of 0 changes no input: every attack returns the clean input, whose
            # verdict the runner already holds (the averaged one for a random model).
            fgsm = pgd = noise = runner.clean_correct.copy()
        else:
            fgsm, _ = runner.correct(f"fgsm/{norm}/{e:g}", FGSM, eps=e, norm=norm)
            pgd, adv = runner.correct(
                f"pgd/{norm}/{e:g}/r0",
                PGD,
                eps=e,
                norm=norm,
                steps=plan.steps,
                track_best=track_best,
                keep=headline and e == eps,
                stop_when_fooled=runner.stop_when_fooled,
            )
            noise, _ = runner.correct(
                f"noise/{norm}/{e:g}", RandomNoise, eps=e, norm=norm, draws=plan.noise_draws
            )
        if e == eps:
            at_eps = {"fgsm": fgsm, "pgd_r0": pgd, "noise": noise, "adversarial": adv}
        if e in sweep:
            curve.append(
                {
                    "eps": e,
                    "fgsm": _mean(fgsm),
                    "pgd": _mean(pgd),
                    "noise": _mean(noise),
                    "worst": _mean(fgsm & pgd & noise),
                }
            )
    pgd_all = at_eps["pgd_r0"]
    used = ["FGSM", f"PGD-{plan.steps}", "random noise"]
    if plan.restarts > 1:
        restarted, adv = runner.correct(
            f"pgd/{norm}/{eps:g}/restarts",
            PGD,
            eps=eps,
            norm=norm,
            steps=plan.steps,
            restarts=plan.restarts,
            track_best=track_best,
            keep=headline,
            stop_when_fooled=runner.stop_when_fooled,
        )
        pgd_all = restarted & at_eps["pgd_r0"]
        used[1] = f"PGD-{plan.steps} × {plan.restarts + 1} restarts"
        if headline:
            at_eps["adversarial"] = fooling_input(at_eps["adversarial"], adv, restarted)
    result = {
        "curve": curve,
        "fgsm": at_eps["fgsm"],
        "pgd": pgd_all,
        "pgd_r0": at_eps["pgd_r0"],
        "noise": at_eps["noise"],
        "adversarial": at_eps.get("adversarial"),
    }
    robust = at_eps["fgsm"] & pgd_all & at_eps["noise"]
    if headline:
        # Same random start as restart 0, twice the steps: the convergence check.
        doubled, _ = runner.correct(
            f"pgd/{norm}/{eps:g}/r0/double-steps",
            PGD,
            seed_tag=f"pgd/{norm}/{eps:g}/r0",
            eps=eps,
            norm=norm,
            steps=2 * plan.steps,
            track_best=track_best,
            stop_when_fooled=runner.stop_when_fooled,
        )
        result["pgd_double_steps"] = doubled
        robust &= doubled
        used.append(f"PGD-{2 * plan.steps}")
    result["robust"] = robust
    result["worst_case_over"] = used
    return result


def _eot(runner: AttackRunner, plan: Plan, track_best: bool, suffix: str = "") -> np.ndarray:
    # Examples the transformations alone already break count as fooled (the attacker may
    # choose δ = 0, see ``fooled_under_transformations``): only the others are attacked.
    among = runner.clean_transformed_right(plan.transform) if plan.transform else None
    correct, _ = runner.correct(
        f"eot/{plan.norm}/{plan.eps:g}" + (f"/{suffix}" if suffix else ""),
        EOTPGD,
        among=among,
        judge="eot",
        transform=plan.transform,
        eps=plan.eps,
        norm=plan.norm,
        steps=plan.steps,
        track_best=track_best,
        samples=plan.eot_samples,
        input_scale=runner.space.scale_on(runner.device),
    )
    return correct if among is None else correct & among


def _unbounded(
    runner: AttackRunner,
    plan: Plan,
    limit: float,
    track_best: bool,
    shape: tuple[int, ...],
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """PGD with a radius that reaches the whole box, from the clean input — a random point
    of the whole box is a random input, which would "succeed" without the gradients leading
    anywhere. The step is capped (a huge eps would otherwise jump over every nearby
    boundary) and what survives is attacked again with a 4× smaller step."""
    box = runner.space.box
    unit = UNBOUNDED_STEP_BOX * (box[1] - box[0]) if box is not None else UNBOUNDED_STEP_STD
    cap = unit if plan.norm == "Linf" else unit * math.sqrt(math.prod(shape))
    step = min(2.5 * limit / plan.steps, cap)
    still = runner.clean_correct.copy()
    runs: list[dict[str, Any]] = []
    for attempt in range(1 + UNBOUNDED_RETRIES):
        if not still.any():
            break
        attacked = int(still.sum())
        correct, _ = runner.correct(
            f"unbounded/{plan.norm}/{attempt}",
            PGD,
            among=still,
            eps=limit,
            norm=plan.norm,
            steps=plan.steps,
            alpha=step,
            track_best=track_best,
            random_start=False,
            stop_when_fooled=runner.stop_when_fooled,
        )
        still &= correct
        runs.append({"step_size": step, "attacked": attacked, "accuracy": _mean(still)})
        step /= 4
    return still, runs


def _autoattack(
    runner: AttackRunner, plan: Plan, adapter: Any, stochastic: bool, seed: int
) -> tuple[np.ndarray | None, dict[str, Any] | None, str | None]:
    import time

    box = runner.space.box
    if box is None or len(adapter.input_shape) != 3:
        return None, None, "AutoAttack runs on images (C, H, W) in a bounded box; skipped"
    if plan.eps == 0:
        return None, None, "eps is 0; AutoAttack skipped"
    started = time.perf_counter()
    attack = AutoAttack(
        runner.space.module,
        eps=plan.eps,
        norm=plan.norm,
        num_classes=adapter.num_classes,
        seed=seed,
        box=box,
        stochastic=stochastic,
    )
    targets = runner.targets
    adversarial = runner.z.clone()
    for start in range(0, len(targets), runner.batch_size):
        index = torch.as_tensor(targets[start : start + runner.batch_size])
        zb, yb = runner.z[index].to(runner.device), runner.y[index].to(runner.device)
        adversarial[index] = attack(zb, yb).cpu()
    fooled = (
        runner.fooled_random(adversarial)
        if stochastic
        else runner.fooled_deterministic(adversarial)
    )
    correct = runner.clean_correct & ~fooled
    runner.timings["autoattack"] = round(time.perf_counter() - started, 4)
    return correct, attack.settings(), None


def _gallery_examples(
    runner: AttackRunner,
    space: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_probabilities: torch.Tensor,
    adversarial: torch.Tensor | None,
    pgd_correct: np.ndarray,
    clean_correct: np.ndarray,
    names: list[str],
    box: tuple[float, float] | None,
) -> list[dict[str, Any]] | None:
    """Up to ``GALLERY_SIZE`` fooled examples (one per class first): the original and the
    adversarial input with the predicted class and its probability for each."""
    if adversarial is None or x.dim() != 4 or box is None:
        return None
    fooled = np.flatnonzero(clean_correct & ~pgd_correct)
    # One example per class first, so the gallery shows variety.
    chosen, seen = [], set()
    for i in fooled:
        if int(y[i]) not in seen:
            chosen.append(int(i))
            seen.add(int(y[i]))
        if len(chosen) == GALLERY_SIZE:
            break
    for i in fooled:
        if len(chosen) == GALLERY_SIZE:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    if not chosen:
        chosen = [int(i) for i in np.flatnonzero(clean_correct)[:GALLERY_SIZE]]
    if not chosen:
        return None
    index = torch.as_tensor(chosen)
    adv = space.from_space(adversarial[index])
    # The judging chunks and seeds, so a random model shows the very verdict that was counted.
    adv_probs = runner.all_probabilities(adversarial)[index]
    clean_probs = clean_probabilities[index]
    examples = []
    for row, i in enumerate(chosen):
        clean_pred = int(clean_probs[row].argmax())
        adv_pred = int(adv_probs[row].argmax())
        examples.append(
            {
                "true": names[int(y[i])],
                "original": x[i],
                "adversarial": adv[row],
                "clean_prediction": names[clean_pred],
                "clean_probability": float(clean_probs[row, clean_pred]),
                "adversarial_prediction": names[adv_pred],
                "adversarial_probability": float(adv_probs[row, adv_pred]),
            }
        )
    return examples


# --- helpers ----------------------------------------------------------------------------
def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


