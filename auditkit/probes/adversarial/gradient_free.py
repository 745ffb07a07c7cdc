"""The adversarial probe without gradients, and the Square attack beside PGD.

A model without input gradients (an ONNX graph onnx2torch cannot convert, a scikit-learn
pipeline, a black-box function) is attacked through its answers alone: the Square attack when
it returns scores, HopSkipJump when it returns labels only (``auditkit.attacks.gradient_free``).
A model that has gradients *and* a black-box runtime (an ONNX file with a torch twin) gets PGD
on the twin and Square on the runtime, both reported with the gap.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from auditkit.attacks.gradient_free import (
    DECISION,
    SQUARE,
    GradientFreeMeasurement,
    GradientFreePlan,
    choose_attack,
    judge,
    measure,
)
from auditkit.context import AuditContext
from auditkit.probes.adversarial._runner import right_answers
from auditkit.probes.adversarial.certified import (
    EXACT_BOUND,
    certified_checks,
    certified_curve,
    certified_findings,
    certified_summary,
    certified_threat,
    certify_subset,
    exact_headline,
    exact_metrics,
)
from auditkit.probes.adversarial.grade import apply_grade
from auditkit.probes.adversarial.measure import make_plan
from auditkit.probes.adversarial.options import AdversarialOptions
from auditkit.results import Check, Finding, ProbeResult

NAMES = {SQUARE: "Square", DECISION: "HopSkipJump"}
#: Square finding this much more than PGD means PGD's gradients mislead it.
SQUARE_GAP_TOLERANCE = 0.02


def wants_square_beside_pgd(opts: AdversarialOptions, adapter: Any) -> bool:
    """``auto``: when the model also has a black-box runtime (ONNX with a torch twin)."""
    if opts.gradient_free == "never":
        return False
    return opts.gradient_free == "always" or adapter.format == "onnx"


def _subset(context: AuditContext, n_examples: int) -> np.ndarray:
    n_total = len(context.data)
    if n_examples < n_total:
        rng = context.rng("adversarial/examples")
        return np.sort(rng.choice(n_total, size=n_examples, replace=False))
    return np.arange(n_total)


def _generators(context: AuditContext):
    return lambda tag: context.generator(f"adversarial/gradient-free/{tag}")


def _progress(context: AuditContext):
    def advance(description: str, completed: int, total: int) -> None:
        advance_fn = getattr(context.progress, "advance", None)
        if advance_fn is not None:
            advance_fn(description, completed, total)

    return advance


def run_without_gradients(name: str, context: AuditContext, opts: AdversarialOptions,
                          budget: str) -> ProbeResult:
    """Square (scores) or HopSkipJump (labels) at the headline eps, with its checklist."""
    started = time.perf_counter()
    adapter, data = context.adapter, context.data
    base = make_plan(opts, budget, context, stochastic=False)
    indices = _subset(context, base.n_examples)
    index = torch.as_tensor(indices)
    x, y = data.x[index], data.y[index]
    clean_correct = right_answers(context.clean_logits[index].float(), y)
    attack = choose_attack(adapter)
    sweep = tuple(opts.sweep) if opts.sweep is not None else (base.eps / 2, base.eps * 2)
    plan = GradientFreePlan(attack, base.norm, base.eps, opts.queries,
                            tuple(e for e in sweep if e > 0), noise_draws=base.noise_draws,
                            batch_size=base.batch_size)
    m = measure(adapter, x, y, clean_correct, plan, _generators(context),
                progress=_progress(context))
    checks = judge(m, stochastic=adapter.diagnostics.stochastic)
    certificate = certify_subset(adapter, x, y, clean_correct, m,
                                 context.generator("adversarial/linear-certificate"))
    head = exact_headline(context, m) if certificate is not None else None
    if head is not None:  # a linear model: the headline is exact, Square cross-checks
        checks = certified_checks(checks, m, certificate)
    failed = [c for c in checks if c.status == "failed"]
    metrics = m.metrics()
    robust, labels = m.robust_correct, y.numpy()
    if head is not None:
        metrics = exact_metrics(metrics, head)
        indices, labels, clean_correct, robust = head.indices, head.labels, head.clean, head.robust
    context.artifacts["adversarial"] = {
        "indices": indices.astype(np.int64),
        "robust_correct": robust.astype(bool),
        "clean_correct": clean_correct.astype(bool),
        "eps": float(plan.eps),
        "norm": plan.norm,
    }
    result = ProbeResult(
        name=name,
        status="warned" if failed else "passed",
        metrics=metrics,
        checks=checks,
        summary=_summary(m, adapter, checks, failed) if head is None
        else certified_summary(m, head, failed),
        headline="robust_accuracy",
        findings=_findings(m, failed) if head is None else certified_findings(m, head),
        figures=[_curve(m) if head is None else certified_curve(_curve(m), m, certificate)],
        details={
            "gradient_free": True,
            "why": "the model gives no input gradients"
            + (f" ({adapter.describe().get('path')})" if adapter.describe().get("path") else ""),
            "settings": {**plan.describe(), "budget": budget, "eps_units": m.units,
                         "n_examples": len(indices), "defaults": base.defaults_reason},
            "threat_model": _threat(m) if head is None else certified_threat(m),
            "curve": m.sweep,
            "queries": _query_stats(m),
            "frozen_features": list(m.frozen_features),
            "unbounded_attack": {"eps": m.unbounded_eps, "accuracy": m.unbounded_accuracy},
            "nonfinite_under_attack": m.nonfinite_examples,
            "worst_case_over": ["exact (closed form, all rows)"] if head is not None
            else [NAMES[attack], "random noise"],
            **({"linear_certificate": {**head.certificate.describe(), "rows": len(head.robust),
                                       "cross_check": certificate.describe()}}
               if head is not None else {}),
        },
        seconds=round(time.perf_counter() - started, 4),
    )
    converged = next((c.status for c in checks if c.name == "converged_in_steps"), "skipped")
    black_box = {"attack": NAMES[attack], "queries": plan.queries,
                 "converged": None if converged == "skipped" else converged == "passed"}
    if head is not None:  # exact, so not an upper bound whatever Square's convergence
        return apply_grade(result, robust, labels, adapter.num_classes, plan.norm, plan.eps,
                           bound=EXACT_BOUND, population=data.y.numpy())
    return apply_grade(result, robust, y.numpy(), adapter.num_classes, plan.norm, plan.eps,
                       black_box=black_box, population=data.y.numpy())


def square_beside_pgd(context: AuditContext, opts: AdversarialOptions, plan: Any,
                      indices: np.ndarray, clean_correct: np.ndarray) -> GradientFreeMeasurement:
    """Square through the model's runtime on the examples PGD attacked, at the headline eps."""
    data = context.data
    index = torch.as_tensor(indices)
    square = GradientFreePlan(SQUARE, plan.norm, plan.eps, opts.queries, (),
                              batch_size=plan.batch_size)
    return measure(context.adapter, data.x[index], data.y[index], clean_correct, square,
                   _generators(context), baselines=False, progress=_progress(context))


def merge_square(result: ProbeResult, m: GradientFreeMeasurement, robust: np.ndarray
                 ) -> tuple[ProbeResult, np.ndarray]:
    """PGD's result with Square's numbers, the gap, and Square in the worst case."""
    from dataclasses import replace

    robust = robust & m.attack_correct
    metrics = dict(result.metrics)
    metrics["square_accuracy"] = m.attack_accuracy
    metrics["square_queries_mean"] = float(m.queries.mean()) if len(m.queries) else 0.0
    metrics["square_queries_budget"] = float(m.plan.queries)
    pgd = metrics.get("pgd_accuracy")
    gap = None if pgd is None else float(pgd) - m.attack_accuracy
    metrics["pgd_minus_square"] = gap
    metrics["robust_accuracy"] = float(robust.mean()) if len(robust) else 0.0
    findings = list(result.findings)
    if gap is not None and gap > SQUARE_GAP_TOLERANCE:
        findings.insert(0, Finding(
            "warning",
            f"the gradient-free Square attack beats PGD by {gap:.1%}: the gradients mislead PGD",
            why="a gradient attack should be at least as strong as a random search of the same "
            "budget; when it is not, the gradients are masked or obfuscated",
            action="quote the worst case (robust_accuracy), which includes Square",
        ))
    details = dict(result.details)
    details["square"] = {"accuracy": m.attack_accuracy, "pgd_minus_square": gap,
                         "queries": _query_stats(m),
                         "runs_on": "the model's own runtime (onnxruntime for ONNX files)"}
    details["worst_case_over"] = [*details.get("worst_case_over", []), "Square"]
    summary = result.summary.replace("EOT and noise", "EOT, Square and noise", 1)
    if gap is not None:
        summary += (f" Square (gradient-free, {m.plan.queries} queries): "
                    f"{m.attack_accuracy:.1%}; PGD − Square = {gap:+.1%}.")
    return replace(result, metrics=metrics, findings=findings, details=details,
                   summary=summary), robust


def _query_stats(m: GradientFreeMeasurement) -> dict[str, float]:
    q = m.queries
    if not len(q):
        return {"mean": 0.0, "median": 0.0, "max": 0.0, "budget": float(m.plan.queries)}
    return {"mean": float(q.mean()), "median": float(np.median(q)), "max": float(q.max()),
            "budget": float(m.plan.queries), "total": float(q.sum())}


def _threat(m: GradientFreeMeasurement) -> str:
    norm = "L∞" if m.plan.norm == "Linf" else "L2"
    text = (f"‖δ‖_{norm[1:]} ≤ {m.plan.eps:.4g} ({m.units}); the attacker sees only the "
            f"model's {'labels' if m.plan.attack == DECISION else 'scores'}, "
            f"{m.plan.queries} queries per example")
    if m.units != "input units":
        text += "; each feature stays within the range observed in the audit data"
    if m.frozen_features:
        text += f"; categorical features {', '.join(m.frozen_features)} are held fixed"
    return text


def _summary(m: GradientFreeMeasurement, adapter: Any, checks: list[Check],
             failed: list[Check]) -> str:
    norm = "L∞" if m.plan.norm == "Linf" else "L2"
    name = NAMES[m.plan.attack]
    kind = "labels only" if m.plan.attack == DECISION else "scores"
    ran = [c for c in checks if c.status != "skipped"]
    robust = float(m.robust_correct.mean()) if m.n_examples else 0.0
    text = (
        f"No input gradients, so the gradient-free {name} attack ({kind}, up to "
        f"{m.plan.queries} queries per example, {float(m.queries.mean()) if len(m.queries) else 0:.0f} "
        f"used on average) attacked {m.n_examples} examples: under {norm} perturbations of "
        f"{m.plan.eps:.3g} ({m.units}) accuracy falls from {m.clean_accuracy:.1%} to "
        f"{robust:.1%}"
    )
    if m.frozen_features:
        text += f" (categorical features {', '.join(m.frozen_features)} held fixed)"
    text += "; "
    if failed:
        return text + (f"{len(failed)} of {len(ran)} applicable validity checks failed "
                       f"({', '.join(c.name for c in failed)}), so robustness is likely "
                       "overestimated.")
    return text + f"all {len(ran)} applicable validity checks passed (gradient checks not applicable)."


_ADVICE = {
    "accuracy_decreases_with_eps": "accuracy rises although the attacker may change more",
    "unbounded_attack_succeeds": "even an unbounded gradient-free attack cannot break the model",
    "converged_in_steps": "more queries still change the result",
    "attack_beats_random_noise": "the attack is no stronger than random noise",
    "stochastic_model_attacked_with_eot": "the black box answers at random",
}


def _findings(m: GradientFreeMeasurement, failed: list[Check]) -> list[Finding]:
    found = [
        Finding("warning", f"{_ADVICE.get(c.name, c.name)}: robustness is likely overestimated",
                why=f"{c.detail}.",
                action="raise --set adversarial.queries (the query budget per example) and "
                "re-run with --budget thorough")
        for c in failed
    ]
    robust = float(m.robust_correct.mean()) if m.n_examples else 0.0
    if m.clean_accuracy > 0 and m.plan.eps > 0 and robust >= m.clean_accuracy:
        norm = "L∞" if m.plan.norm == "Linf" else "L2"
        found.append(Finding(
            "info",
            f"{NAMES[m.plan.attack]} found no {norm} perturbation of {m.plan.eps:.3g} that "
            "changes a correct answer",
            why="a gradient-free attack gives an upper bound on robustness; the convergence "
            "check says whether more queries could still find some",
            action="nothing, unless the threat model needs a larger radius",
        ))
    elif m.clean_accuracy > 0 and m.plan.eps > 0:
        flipped = 1 - robust / m.clean_accuracy
        norm = "L∞" if m.plan.norm == "Linf" else "L2"
        found.append(Finding(
            "warning" if robust < 0.5 * m.clean_accuracy else "info",
            f"at least {flipped:.0%} of correctly classified examples change their answer under "
            f"an {norm} perturbation of {m.plan.eps:.3g} found without gradients",
            why="a black-box attacker needs nothing but the model's answers; a gradient-free "
            "attack gives an upper bound on robustness (a stronger attack may find more)",
            action="if the model faces adversaries, harden it and re-audit with a larger query "
            "budget; otherwise read this as a worst-case stress test",
        ))
    return found


def _curve(m: GradientFreeMeasurement) -> dict[str, Any]:
    label = "L∞" if m.plan.norm == "Linf" else "L2"
    xs = [p["eps"] for p in m.sweep]
    name = NAMES[m.plan.attack]
    return {
        "kind": "line",
        "id": "accuracy-vs-eps",
        "title": f"Accuracy under gradient-free {label} attacks as the budget grows",
        "x_label": f"{label} eps ({m.units})",
        "y_label": "accuracy",
        "series": [{"name": f"{name} ({m.plan.queries} queries)", "x": xs,
                    "y": [p["accuracy"] for p in m.sweep]}],
        "y_range": [0, 1],
        "caption": (f"Each point attacks the same examples with the same query budget; the "
                    f"headline eps is {m.plan.eps:.4g}. Random noise at the headline eps leaves "
                    f"{float(m.noise_correct.mean()) if m.n_examples else 0:.1%}."),
    }
