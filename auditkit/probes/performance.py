"""Performance: clean accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from auditkit.functional.classification import balanced_accuracy, confusion_matrix, per_class_recall
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult


class PerformanceProbe(Probe):
    """Clean accuracy from the shared clean predictions, plus what the adapter noticed."""

    name = "performance"
    title = "Clean performance"
    description = "How often is the model right on the audit data, per class?"
    order = 0
    metrics = {
        "accuracy": MetricSpec("higher", "fraction of audit examples classified correctly"),
        "balanced_accuracy": MetricSpec("higher", "mean of per-class accuracies"),
        "worst_class_accuracy": MetricSpec("higher", "accuracy of the worst class"),
    }
    budget_levels = {level: "same work at every budget: one shared clean pass" for level in
                     ("fast", "standard", "thorough")}

    def run(self, context) -> ProbeResult:
        data = context.data
        k = context.adapter.num_classes
        pred = context.clean_predictions
        matrix = confusion_matrix(data.y, pred, k)
        recall = per_class_recall(matrix)
        names = data.class_names or [str(i) for i in range(k)]
        accuracy = float((pred == data.y).float().mean()) if len(data) else float("nan")
        present = [i for i in range(k) if matrix[i].sum() > 0]
        worst = min(present, key=lambda i: float(recall[i])) if present else None
        metrics = {
            "accuracy": accuracy,
            "balanced_accuracy": balanced_accuracy(matrix),
            "worst_class_accuracy": float(recall[worst]) if worst is not None else None,
        }
        checks = _adapter_checks(context.adapter)
        findings = []
        if worst is not None and accuracy - float(recall[worst]) > 0.1:
            findings.append(
                Finding(
                    "warning",
                    f"class {names[worst]!s} is recognised far less often "
                    f"({float(recall[worst]):.1%}) than average ({accuracy:.1%})",
                    why="average accuracy hides classes the model fails",
                    action="look at that class's confusions and collect more of its examples",
                )
            )
        status = "warned" if any(c.status == "failed" for c in checks) else "passed"
        return ProbeResult(
            name=self.name,
            status=status,
            metrics=metrics,
            checks=checks,
            headline="accuracy",
            summary=f"{accuracy:.1%} accuracy on {len(data)} audit examples "
            f"(balanced {metrics['balanced_accuracy']:.1%})",
            findings=findings,
            figures=[
                {
                    "kind": "bar",
                    "id": "per-class-accuracy",
                    "title": "Accuracy per class",
                    "x_label": "class",
                    "y_label": "accuracy",
                    "bars": [
                        {"label": names[i], "value": float(recall[i]), "count": int(matrix[i].sum())}
                        for i in present
                    ],
                    "reference": accuracy,
                    "y_range": [0, 1],
                },
                {
                    "kind": "matrix",
                    "id": "confusion-matrix",
                    "title": "Confusion matrix (rows: true class, columns: predicted)",
                    "labels": names,
                    "values": matrix.tolist(),
                    "x_label": "predicted",
                    "y_label": "true",
                },
            ],
            details={
                "per_class": [
                    {"class": names[i], "accuracy": float(recall[i]), "count": int(matrix[i].sum())}
                    for i in range(k)
                ],
                "confusion_matrix": matrix.tolist(),
            },
        )


def _adapter_checks(adapter) -> list[Check]:
    """The adapter's diagnostics as named checks, so they reach the report and junit.xml."""
    diag = adapter.diagnostics
    # A black box is declared to return probabilities: that is its contract, not a defect.
    saturating = diag.output_kind == "probabilities" and adapter.supports_gradients
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
            "two passes agree" if not diag.stochastic else
            f"two passes differ (max |Δlogit| {diag.stochastic_max_diff:.3g}); attacks use EOT",
            {"max_abs_diff": diag.stochastic_max_diff},
        ),
    ]
    if diag.gradient_finite is not None and adapter.supports_gradients:
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
