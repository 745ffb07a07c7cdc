"""The performance probe: count the clean predictions, judge them, present them."""

from __future__ import annotations

from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.performance import judge as judging
from auditkit.probes.performance import present
from auditkit.probes.performance.measure import measure
from auditkit.probes.performance.options import PerformanceOptions
from auditkit.results import ProbeResult


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
    budget_levels = {
        level: "same work at every budget: one shared clean pass"
        for level in ("fast", "standard", "thorough")
    }
    Options = PerformanceOptions

    def run(self, context) -> ProbeResult:
        measured = measure(context)
        judged = judging.judge(measured)
        return ProbeResult(
            name=self.name,
            status=judged.status,
            metrics=judged.metrics,
            checks=judged.checks,
            headline=present.HEADLINE,
            summary=present.summary(measured, judged.metrics),
            findings=judged.findings,
            figures=present.figures(measured),
            details=present.details(measured),
        )
