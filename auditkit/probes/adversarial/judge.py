"""Judge: metrics, the validity checklist and findings from an ``AdversarialMeasurement`` alone.

Pure functions of measured data (no model, no randomness), so each check can be tested with a
hand-written measurement: a masked gradient fails ``gradients_nonzero_and_finite``, a curve that
rises with eps fails ``accuracy_decreases_with_eps``, and so on. A failed check marks the probe
``warned``: most published robustness claims that later collapsed were evaluation mistakes
(Athalye et al. 2018; Carlini et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from auditkit.probes.adversarial.findings import CHECK_NAMES, findings
from auditkit.probes.adversarial.measure import AdversarialMeasurement
from auditkit.results import Check, Finding

#: Tolerances of the checklist (absolute accuracy); each is at least 2 examples' worth.
ITERATIVE_TOLERANCE = 0.01
MONOTONE_TOLERANCE = 0.01
STEPS_TOLERANCE = 0.02
NOISE_TOLERANCE = 0.01
#: An unbounded attack must leave at most this accuracy (and never more than chance).
UNBOUNDED_MAX_ACCURACY = 0.05
#: Minimum share of examples with a non-zero input gradient.
GRADIENT_NONZERO_MIN = 0.99


@dataclass(frozen=True)
class Judgement:
    """What the measurement means: metrics, checks, findings, per-class rows and the status."""

    metrics: dict[str, float | None]
    robust: np.ndarray
    checks: list[Check]
    findings: list[Finding]
    per_class: list[dict[str, Any]]
    status: str

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]


def judge(m: AdversarialMeasurement) -> Judgement:
    """Metrics, checklist and findings of ``m``; ``warned`` when a validity check failed."""
    robust = robust_correct(m)
    values = metrics(m, robust)
    checks = checklist(m, values)
    failed = [c for c in checks if c.status == "failed"]
    rows = per_class(m.labels, m.clean_correct, robust, m.class_names)
    return Judgement(
        metrics=values,
        robust=robust,
        checks=checks,
        findings=findings(values, m.plan, failed, m.stochastic, rows),
        per_class=rows,
        status="warned" if failed else "passed",
    )


def robust_correct(m: AdversarialMeasurement) -> np.ndarray:
    """Per example: correct under every headline-norm attack at the headline eps (the worst
    case): FGSM, PGD (every restart and the doubled-step run), random noise of that norm and
    eps, AutoAttack when run and, for a random model, EOT over its own randomness. One threat
    model: EOT under the transformation distribution is its own number (``eot_accuracy``)."""
    robust = m.headline["robust"].copy()
    if m.own_randomness_correct is not None:
        robust &= m.own_randomness_correct
    if m.autoattack_correct is not None:
        robust &= m.autoattack_correct
    return robust


def metrics(m: AdversarialMeasurement, robust: np.ndarray) -> dict[str, float | None]:
    """The probe's metrics, in the order audit.json lists them."""
    values: dict[str, float | None] = {
        "clean_accuracy": _mean(m.clean_correct),
        "fgsm_accuracy": _mean(m.headline["fgsm"]),
        "pgd_accuracy": _mean(m.headline["pgd"]),
        "eot_accuracy": _mean(m.eot_correct),
        "robust_accuracy": _mean(robust),
        "eps": m.plan.eps,
        "noise_accuracy": _mean(m.headline["noise"]),
    }
    if m.transform_correct is not None:
        values["transform_accuracy"] = _mean(m.transform_correct)
        values["eot_accuracy_given_transform_correct"] = (
            float(m.eot_correct[m.transform_correct].mean()) if m.transform_correct.any() else None
        )
    if m.secondary is not None:
        values["fgsm_l2_accuracy"] = _mean(m.secondary["fgsm"])
        values["pgd_l2_accuracy"] = _mean(m.secondary["pgd"])
        values["l2_eps"] = m.plan.l2_eps
    if m.autoattack_correct is not None:
        values["autoattack_accuracy"] = _mean(m.autoattack_correct)
    values["n_examples"] = len(m.labels)
    return values


def checklist(m: AdversarialMeasurement, metrics: dict[str, float | None]) -> list[Check]:
    """The seven validity checks, in ``CHECK_NAMES`` order."""
    plan, headline, clean_correct = m.plan, m.headline, m.clean_correct
    unbounded_correct, unbounded_eps, unbounded_runs = (
        m.unbounded_correct,
        m.unbounded_eps,
        m.unbounded_runs,
    )
    nonfinite, num_classes, gradient_stats = m.nonfinite, m.num_classes, m.gradients
    stochastic, stochastic_diff, adapter_stochastic = (
        m.stochastic,
        m.stochastic_diff,
        m.adapter_stochastic,
    )
    n = len(clean_correct)
    curve = headline["curve"]
    attacked = [p for p in curve if p["eps"] > 0]
    nothing = not clean_correct.any()
    na = "not applicable: no example is classified correctly, so there is nothing to attack"
    checks = []

    # 1. iterative ≤ single-step
    tol = _tolerance(ITERATIVE_TOLERANCE, n)
    worse = [p for p in attacked if p["pgd"] > p["fgsm"] + tol]
    checks.append(
        Check(
            CHECK_NAMES[0],
            "skipped" if nothing or not attacked else ("failed" if worse else "passed"),
            na
            if nothing
            else (
                "no eps > 0 in the sweep"
                if not attacked
                else "PGD is weaker than single-step FGSM at eps "
                + ", ".join(f"{p['eps']:g}" for p in worse)
                if worse
                else "PGD accuracy ≤ FGSM accuracy at every eps of the sweep"
            ),
            {
                "eps": [p["eps"] for p in attacked],
                "pgd_accuracy": [p["pgd"] for p in attacked],
                "fgsm_accuracy": [p["fgsm"] for p in attacked],
                "tolerance": round(tol, 6),
            },
        )
    )

    # 2. monotone in eps
    tol = _tolerance(MONOTONE_TOLERANCE, n)
    rises = [
        (a["eps"], b["eps"], b["pgd"] - a["pgd"])
        for a, b in zip(curve, curve[1:], strict=False)
        if b["pgd"] > a["pgd"] + tol
    ]
    biggest = max(
        (b["pgd"] - a["pgd"] for a, b in zip(curve, curve[1:], strict=False)), default=0.0
    )
    checks.append(
        Check(
            CHECK_NAMES[1],
            "skipped" if nothing or len(curve) < 2 else ("failed" if rises else "passed"),
            na
            if nothing
            else (
                "a single eps: nothing to compare"
                if len(curve) < 2
                else "PGD accuracy rises from eps "
                + ", ".join(f"{a:g} to {b:g} (+{d:.1%})" for a, b, d in rises)
                if rises
                else "PGD accuracy never rises with eps"
            ),
            {
                "eps": [p["eps"] for p in curve],
                "pgd_accuracy": [p["pgd"] for p in curve],
                "largest_rise": biggest,
                "tolerance": round(tol, 6),
            },
        )
    )

    # 3. unbounded attack reaches ~0
    chance = 1.0 / max(num_classes, 1)
    threshold = min(chance, UNBOUNDED_MAX_ACCURACY)
    unbounded = _mean(unbounded_correct)
    unbounded_ok = not nothing and unbounded <= threshold
    steps_text = (
        f"step size {unbounded_runs[0]['step_size']:.3g}"
        if len(unbounded_runs) == 1
        else "step sizes "
        + ", ".join(f"{r['step_size']:.3g}" for r in unbounded_runs)
        + ", each retry on the examples still standing"
    )
    checks.append(
        Check(
            CHECK_NAMES[2],
            "skipped" if nothing else ("passed" if unbounded_ok else "failed"),
            na
            if nothing
            else (
                f"PGD from the clean input with eps {unbounded_eps:g} (the whole input box; "
                f"{steps_text}) leaves {unbounded:.1%} accuracy; it must reach ≤ {threshold:.0%} "
                f"(chance is {chance:.0%})"
            ),
            {
                "eps": unbounded_eps,
                "accuracy": unbounded,
                "threshold": threshold,
                "chance": chance,
                "step_sizes": [r["step_size"] for r in unbounded_runs],
            },
        )
    )

    # 4. doubling steps barely changes the result
    tol = _tolerance(STEPS_TOLERANCE, n)
    base, doubled = _mean(headline["pgd_r0"]), _mean(headline["pgd_double_steps"])
    change = abs(doubled - base)
    checks.append(
        Check(
            CHECK_NAMES[3],
            "skipped" if nothing else ("passed" if change <= tol else "failed"),
            na
            if nothing
            else (
                f"PGD-{plan.steps} {base:.1%} vs PGD-{2 * plan.steps} {doubled:.1%} from the same "
                f"start: change {change:.1%} (tolerance {tol:.1%})"
            ),
            {
                "steps": plan.steps,
                "accuracy": base,
                "double_steps_accuracy": doubled,
                "change": change,
                "tolerance": round(tol, 6),
            },
        )
    )

    # 5. random noise of the same norm is weaker than the attack. Only PGD leaving *more*
    # accuracy than noise is a failure: a robust model that neither moves is no evidence of
    # masking, as long as the unbounded attack shows that its gradients lead somewhere.
    tol = _tolerance(NOISE_TOLERANCE, n)
    weaker = [p for p in attacked if p["pgd"] > p["noise"] + tol]
    beats = [p for p in attacked if p["noise"] - p["pgd"] > tol]
    clean = _mean(clean_correct)
    moved = any(clean - p["pgd"] > tol for p in attacked)
    if nothing or not attacked:
        status, detail = "skipped", na if nothing else "no eps > 0 in the sweep"
    elif weaker:
        status, detail = (
            "failed",
            (
                "PGD leaves more accuracy than random noise of the same norm at eps "
                + ", ".join(f"{p['eps']:g}" for p in weaker)
            ),
        )
    elif beats:
        status, detail = (
            "passed",
            (
                "PGD beats random noise of the same norm (never weaker, stronger at eps "
                + ", ".join(f"{p['eps']:g}" for p in beats)
                + ")"
            ),
        )
    elif unbounded_ok:
        status, detail = (
            "passed",
            (
                (
                    "PGD is never weaker than random noise of the same norm (they tie at every eps "
                    "of the sweep)"
                    if moved
                    else f"neither PGD nor random noise moves the accuracy ({clean:.1%}) at any eps of "
                    "the sweep: the model is robust at these radii"
                )
                + f", and the unbounded attack reaches {unbounded:.1%}, so the gradients do lead "
                "to adversarial examples"
            ),
        )
    else:
        status, detail = (
            "skipped",
            (
                "inconclusive: PGD and random noise of the same norm tie at every eps of the "
                "sweep, and the unbounded attack fails too (see unbounded_attack_succeeds)"
            ),
        )
    checks.append(
        Check(
            CHECK_NAMES[4],
            status,
            detail,
            {
                "eps": [p["eps"] for p in attacked],
                "pgd_accuracy": [p["pgd"] for p in attacked],
                "noise_accuracy": [p["noise"] for p in attacked],
                "tolerance": round(tol, 6),
            },
        )
    )

    # 6. gradients non-zero and finite, at the clean inputs and wherever the attacks went
    g = gradient_stats
    worst_nonfinite = max(nonfinite.values(), default=0)
    ok = g["finite"] and g["nonzero_fraction"] >= GRADIENT_NONZERO_MIN and not worst_nonfinite
    detail = (
        f"input gradients finite: {g['finite']}; non-zero for "
        f"{g['nonzero_fraction']:.1%} of {n} examples (need ≥ {GRADIENT_NONZERO_MIN:.0%})"
    )
    if worst_nonfinite:
        detail += (
            f"; the model returned NaN/inf logits or gradients on perturbed inputs of up "
            f"to {worst_nonfinite} examples (in {', '.join(sorted(nonfinite))}); those "
            "inputs count as fooled"
        )
    if not ok and g["margin_nonzero_fraction"] > g["nonzero_fraction"] + 0.01:
        detail += (
            f"; the logit margin still has gradients for {g['margin_nonzero_fraction']:.1%}"
            ": the softmax is saturated"
        )
    checks.append(
        Check(
            CHECK_NAMES[5],
            "passed" if ok else "failed",
            detail,
            {**g, "nonfinite_examples_under_attack": worst_nonfinite},
        )
    )

    # 7. stochastic model attacked with EOT
    gap = (metrics["pgd_accuracy"] or 0.0) - (metrics["eot_accuracy"] or 0.0)
    values = {
        "stochastic": stochastic,
        "max_abs_diff_between_passes": stochastic_diff,
        "adapter_flagged": adapter_stochastic,
        "eot_samples": plan.eot_samples,
        "pgd_accuracy": metrics["pgd_accuracy"],
        "eot_accuracy": metrics["eot_accuracy"],
        "pgd_minus_eot": gap,
    }
    if not stochastic:
        status, detail = (
            "skipped",
            (
                "not applicable: the model's forward pass is deterministic (two passes agree; EOT "
                f"still ran over input transformations, PGD − EOT = {gap:+.1%})"
            ),
        )
    elif plan.eot_samples < 2:
        status, detail = (
            "failed",
            (
                f"the model is random (passes differ by up to {stochastic_diff:.3g}) but EOT "
                "averaged a single draw"
            ),
        )
    else:
        status, detail = (
            "passed",
            (
                f"random model detected (passes differ by up to {stochastic_diff:.3g}); attacked "
                f"with EOT over {plan.eot_samples} draws: PGD {metrics['pgd_accuracy']:.1%} vs "
                f"EOT {metrics['eot_accuracy']:.1%} (gap {gap:+.1%})"
            ),
        )
    checks.append(Check(CHECK_NAMES[6], status, detail, values))
    return checks


def per_class(
    y: np.ndarray, clean_correct: np.ndarray, robust: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for k, name in enumerate(names):
        mask = y == k
        count = int(mask.sum())
        rows.append(
            {
                "class": name,
                "count": count,
                "clean_accuracy": _mean(clean_correct[mask]) if count else None,
                "robust_accuracy": _mean(robust[mask]) if count else None,
            }
        )
    return rows


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _tolerance(base: float, n: int) -> float:
    # The 1e-9 keeps a difference of exactly the tolerance (0.59 − 0.57) from failing on
    # floating-point round-off.
    return max(base, 2.0 / max(n, 1)) + 1e-9
