"""The adversarial result when the headline is exact: a linear model's closed form leads.

``linear.certify`` gives the exact robust accuracy; this module turns it into the probe's words.
The headline is computed on every audit row (up to :data:`HEADLINE_ROWS`), not on the attacked
subset: the closed form costs a few model calls, so a sampled subset would only widen the
grade's interval (50 rows of a table whose model is ten points above the majority rate cannot
tell "robust" from "at chance"). Square, on its subset and in its own threat model (the subset's
ranges and spreads), is the cross-check: ``exact_optimum_for_linear_model`` fails if it flips an
example the closed form for that same subset calls robust, and the attack-strength checks (which
ask whether a search went far enough) are not applicable to an exact number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from auditkit.attacks.gradient_free import _limits as attack_limits
from auditkit.attacks.gradient_free import _scale as attack_scale
from auditkit.probes.adversarial._runner import right_answers
from auditkit.probes.adversarial.linear import LinearCertificate, certify
from auditkit.results import Check, Finding

#: Most audit rows the exact headline covers (a seeded sample beyond it).
HEADLINE_ROWS = 50_000


@dataclass
class ExactHeadline:
    """The exact robust accuracy over the audit rows at the headline eps."""

    indices: np.ndarray
    labels: np.ndarray
    clean: np.ndarray
    robust: np.ndarray
    certificate: LinearCertificate

    @property
    def accuracy(self) -> float:
        return float(self.robust.mean()) if len(self.robust) else 0.0

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean.mean()) if len(self.clean) else 0.0


def certify_subset(
    adapter: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_correct: np.ndarray,
    m: Any,
    generator: torch.Generator,
) -> LinearCertificate | None:
    """The closed form on Square's own examples and threat model, at every radius it ran."""
    if m.units == "input units":  # a bounded box (images): not a table's attack space
        return None
    scale = attack_scale(adapter, x)
    radii = sorted(
        {
            m.plan.eps,
            *(p["eps"] for p in m.sweep),
            *([m.unbounded_eps] if m.unbounded_eps is not None else []),
        }
    )
    return certify(
        adapter,
        x,
        y,
        clean_correct,
        m.plan.norm,
        radii,
        scale,
        attack_limits(adapter, x, scale),
        generator,
    )


def exact_headline(context: Any, m: Any) -> ExactHeadline | None:
    """The closed form on every audit row (eps in the whole table's standard deviations, each
    column within its whole observed range)."""
    data, adapter = context.data, context.adapter
    n = len(data)
    if n > HEADLINE_ROWS:
        rng = context.rng("adversarial/exact-headline")
        indices = np.sort(rng.choice(n, size=HEADLINE_ROWS, replace=False))
    else:
        indices = np.arange(n)
    index = torch.as_tensor(indices)
    x, y = data.x[index], data.y[index]
    clean = right_answers(context.clean_logits[index].float(), y)
    scale = attack_scale(adapter, x)
    certificate = certify(
        adapter,
        x,
        y,
        clean,
        m.plan.norm,
        [m.plan.eps],
        scale,
        attack_limits(adapter, x, scale),
        context.generator("adversarial/exact-headline"),
    )
    if certificate is None:
        return None
    return ExactHeadline(indices, y.numpy(), clean, certificate.robust[m.plan.eps], certificate)


def exact_metrics(metrics: dict[str, Any], head: ExactHeadline) -> dict[str, Any]:
    """The attack's metrics with the exact headline over the audit rows (Square's stay, on its
    own examples)."""
    return {
        **metrics,
        "clean_accuracy": head.clean_accuracy,
        "robust_accuracy": head.accuracy,
        "exact_robust_accuracy": head.accuracy,
        "n_examples": len(head.robust),
    }


EXACT_BOUND = "exact (closed form for a linear model)"


def _pct(value: float) -> str:
    return f"{value:.1%}"


def certified_checks(checks: list[Check], m: Any, certificate: LinearCertificate) -> list[Check]:
    """The gradient-free checklist with the headline exact: the checks that ask whether Square
    was strong enough cannot make an exact number overestimated, so they are not applicable and
    say what Square reached; ``exact_optimum_for_linear_model`` cross-checks the two."""
    eps, n = m.plan.eps, max(m.n_examples, 1)
    exact = certificate.accuracy(eps)
    square = m.attack_accuracy
    above = int(round((square - exact) * n))
    lead = f"not applicable: the headline is the exact robust accuracy of a linear model ({_pct(exact)})"
    sweep = ", ".join(
        f"{e:.3g}: {_pct(certificate.accuracy(e))}"
        for e in sorted(certificate.robust)
        if e != m.unbounded_eps
    )
    replaced = {
        "accuracy_decreases_with_eps": f"{lead}, which falls with eps by construction (exact "
        f"accuracy over eps {sweep})",
        "unbounded_attack_succeeds": f"{lead}; with eps {m.unbounded_eps:.3g} ({m.units}) within "
        f"the observed ranges exactly "
        f"{_pct(certificate.accuracy(m.unbounded_eps)) if m.unbounded_eps in certificate.robust else 'n/a'}"
        f" stay correct (Square {_pct(m.unbounded_accuracy or 0.0)})",
        "converged_in_steps": f"{lead}, not a query-limited upper bound (Square "
        f"{_pct(float(m.half_budget_correct.mean()) if m.n_examples else 0.0)} after "
        f"{m.plan.queries // 2} queries per example, {_pct(square)} after {m.plan.queries})",
        "attack_beats_random_noise": (
            f"not applicable: the attack reaches the exact optimum for a linear model "
            f"({_pct(exact)}; Square {_pct(square)}, random noise "
            f"{_pct(float(m.noise_correct.mean()) if m.n_examples else 0.0)})"
            if above <= 1
            else f"{lead}; Square stays at {_pct(square)} ({above} examples above it) and "
            f"random noise at {_pct(float(m.noise_correct.mean()) if m.n_examples else 0.0)}"
        ),
    }
    out = []
    for check in checks:
        if check.name in replaced:
            values = {**check.values, "exact_accuracy": exact}
            check = Check(check.name, "skipped", replaced[check.name], values)
        out.append(check)
    robust = certificate.robust[eps]
    # Square flipping an example the closed form calls robust would mean the model is not the
    # affine function it was confirmed to be.
    contradictions = int((robust & ~m.attack_correct).sum())
    ok = contradictions == 0 and certificate.disagreements <= 1
    parts = " → ".join(certificate.structure)
    if ok:
        detail = (
            f"exact robust accuracy {_pct(exact)} in closed form ({parts}); every "
            f"closed-form flip confirmed on the model; Square reaches {_pct(square)} "
            "and finds no flip the closed form rules out"
        )
    else:
        detail = (
            f"the closed form ({parts}, {_pct(exact)}) disagrees with the model: Square "
            f"flips {contradictions} example(s) it calls robust and "
            f"{certificate.disagreements} closed-form flip(s) do not flip the model (need "
            "none and at most one)"
        )
    out.insert(
        1,
        Check(
            "exact_optimum_for_linear_model",
            "passed" if ok else "failed",
            detail,
            {
                "exact_accuracy": exact,
                "square_accuracy": square,
                "contradictions": contradictions,
                "disagreements": certificate.disagreements,
                "affine_check_max_relative_deviation": certificate.max_deviation,
            },
        ),
    )
    return out


def certified_threat(m: Any) -> str:
    """The threat model in words: any perturbation within the bounds, worst case exact."""
    norm = "L∞" if m.plan.norm == "Linf" else "L2"
    text = (
        f"‖δ‖_{norm[1:]} ≤ {m.plan.eps:.4g} ({m.units}); each feature stays within the "
        "range observed in the audit data"
    )
    if m.frozen_features:
        text += f"; categorical features {', '.join(m.frozen_features)} are held fixed"
    return (
        text + f"; worst case exact (closed form for a linear model), cross-checked by "
        f"Square with {m.plan.queries} queries per example"
    )


def certified_summary(m: Any, head: ExactHeadline, failed: list[Check]) -> str:
    norm = "L∞" if m.plan.norm == "Linf" else "L2"
    text = (
        f"A linear model ({' → '.join(head.certificate.structure)}): the worst {norm} "
        f"perturbation of {m.plan.eps:.3g} ({m.units}) is known in closed form, so the robust "
        f"accuracy is exact (a certificate, not an attack's upper bound): on all "
        f"{len(head.robust)} audit rows accuracy falls from {_pct(head.clean_accuracy)} to "
        f"{_pct(head.accuracy)}"
    )
    if m.frozen_features:
        text += f" (categorical features {', '.join(m.frozen_features)} held fixed)"
    text += (
        f". Cross-check on {m.n_examples} of them: the gradient-free Square attack "
        f"({m.plan.queries} queries per example) leaves {_pct(m.attack_accuracy)}"
    )
    if failed:
        return text + f"; {', '.join(c.name for c in failed)} failed."
    return text + "; the closed form and the model agree."


def certified_findings(m: Any, head: ExactHeadline) -> list[Finding]:
    """What the exact number means (no 'upper bound' words: nothing stronger can be found)."""
    clean, robust = head.clean_accuracy, head.accuracy
    if not (clean > 0 and m.plan.eps > 0):
        return []
    norm = "L∞" if m.plan.norm == "Linf" else "L2"
    if robust >= clean:
        return [
            Finding(
                "info",
                f"no {norm} perturbation of {m.plan.eps:.3g} ({m.units}) changes a correct answer",
                why="the model is linear, so the closed form gives the worst perturbation of each "
                "example exactly: this is a certificate for this threat model, not a search result",
                action="nothing, unless the threat model needs a larger radius",
            )
        ]
    flipped = 1 - robust / clean
    return [
        Finding(
            "warning" if robust < 0.5 * clean else "info",
            f"exactly {flipped:.0%} of correctly classified rows change their answer under an "
            f"{norm} perturbation of {m.plan.eps:.3g} ({m.units})",
            why="the model is linear, so the closed form gives each row's worst perturbation "
            "exactly (each one confirmed on the model): rows near the decision boundary flip "
            "under small changes of their numeric features",
            action="if the model faces adversaries, widen its margin (regularisation, fewer "
            "easily moved features) and re-audit; otherwise read this as a stress test",
        )
    ]


def certified_curve(
    curve: dict[str, Any], m: Any, certificate: LinearCertificate
) -> dict[str, Any]:
    radii = [e for e in sorted(certificate.robust) if e != m.unbounded_eps]
    series = [
        {
            "name": "exact (closed form, same examples)",
            "x": radii,
            "y": [certificate.accuracy(e) for e in radii],
        },
        *curve["series"],
    ]
    return {
        **curve,
        "series": series,
        "title": curve["title"].replace("gradient-free", "exact and gradient-free"),
        "caption": curve["caption"] + " The exact curve is the closed form for a linear "
        "model; Square is its cross-check.",
    }
