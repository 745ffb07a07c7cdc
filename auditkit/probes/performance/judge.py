"""Judge: metrics, the adapter's diagnostics as checks, and the weak-class finding — from a
``PerformanceMeasurement`` alone."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.probes.performance.measure import PerformanceMeasurement
from auditkit.results import Check, Finding

# A class this far (absolute) below the average accuracy gets a finding.
WEAK_CLASS_GAP = 0.1


@dataclass(frozen=True)
class Judgement:
    """What the counts mean: metrics, the adapter's checks, findings and the probe's status."""

    metrics: dict[str, float | None]
    checks: list[Check]
    findings: list[Finding]
    status: str
    worst_class: int | None


def judge(m: PerformanceMeasurement) -> Judgement:
    """A failed adapter check makes the probe ``warned`` (the other probes say what it costs);
    accuracy itself is judged by policy gates, not here."""
    recall = m.recall
    present = m.present
    worst = min(present, key=lambda i: float(recall[i])) if present else None
    metrics = {
        "accuracy": m.accuracy,
        "balanced_accuracy": m.balanced_accuracy,
        "worst_class_accuracy": float(recall[worst]) if worst is not None else None,
    }
    checks = adapter_checks(m)
    findings = []
    if worst is not None and m.accuracy - float(recall[worst]) > WEAK_CLASS_GAP:
        findings.append(
            Finding(
                "warning",
                f"class {m.class_names[worst]!s} is recognised far less often "
                f"({float(recall[worst]):.1%}) than average ({m.accuracy:.1%})",
                why="average accuracy hides classes the model fails",
                action="look at that class's confusions and collect more of its examples",
            )
        )
    status = "warned" if any(c.status == "failed" for c in checks) else "passed"
    return Judgement(metrics, checks, findings, status, worst)


def adapter_checks(m: PerformanceMeasurement) -> list[Check]:
    """The adapter's diagnostics as named checks, so they reach the report and junit.xml."""
    diag = m.diagnostics
    # A black box is declared to return probabilities: that is its contract, not a defect.
    saturating = diag.output_kind == "probabilities" and m.supports_gradients
    checks = [
        Check(
            "outputs_are_logits",
            "failed" if saturating else "passed",
            f"model outputs {diag.output_kind}"
            + ("; softmax inside the model can saturate and mask gradients" if saturating else ""),
            {"output_kind": diag.output_kind},
        ),
        Check(
            "deterministic_forward",
            "passed" if not diag.stochastic else "warned",
            "two passes agree"
            if not diag.stochastic
            else f"two passes differ (max |Δlogit| {diag.stochastic_max_diff:.3g}); attacks use "
            "EOT",
            {"max_abs_diff": diag.stochastic_max_diff},
        ),
    ]
    if diag.gradient_finite is not None and m.supports_gradients:
        ok = diag.gradient_finite and (diag.gradient_nonzero_fraction or 0) >= 1.0
        checks.append(
            Check(
                "input_gradients_usable",
                "passed" if ok else "failed",
                f"finite: {diag.gradient_finite}, non-zero for "
                f"{(diag.gradient_nonzero_fraction or 0):.0%} of sampled examples",
                {
                    "finite": diag.gradient_finite,
                    "nonzero_fraction": diag.gradient_nonzero_fraction,
                },
            )
        )
    return checks
