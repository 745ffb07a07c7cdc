"""The performance probe: count the clean predictions, judge them, present them."""

from __future__ import annotations

from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.performance.judge import judge
from auditkit.probes.performance.measure import measure
from auditkit.probes.performance.options import PerformanceOptions
from auditkit.probes.performance.present import present
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
        measured = measure(context, self.opts, self.budget)
        return present(self.name, measured, judge(measured))
