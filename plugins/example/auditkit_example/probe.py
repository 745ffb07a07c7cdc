"""The probe class: declarations the runner and the report read, and ``run`` wiring the rooms."""

from __future__ import annotations

from typing import ClassVar

from auditkit.context import AuditContext
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import ProbeResult
from auditkit_example import judge
from auditkit_example.measure import measure
from auditkit_example.options import NoiseOptions
from auditkit_example.present import present
from auditkit_example.sizing import NoiseSizing


class NoiseRobustnessProbe(Probe):
    """Accuracy under random Gaussian input noise, and whether it falls with the noise."""

    name = "noise_robustness"
    title = "Robustness to random noise (example plugin)"
    description = "How much accuracy does random input noise cost?"
    order = 70
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the examples used, no noise"),
        "noise_accuracy": MetricSpec("higher", "accuracy under noise at the headline sigma"),
        "accuracy_drop": MetricSpec("lower", "clean accuracy minus noise accuracy"),
        "sigma": MetricSpec(None, "headline noise std, in box widths"),
    }
    budget_levels = {
        "fast": "200 examples, 1 noisy copy per level",
        "standard": "500 examples, 4 noisy copies per level",
        "thorough": "2,000 examples, 8 noisy copies per level",
    }
    Options: ClassVar[type] = NoiseOptions
    opts: NoiseOptions
    sizing = NoiseSizing()
    report_template = "auditkit_example:templates/noise_robustness.html.j2"

    def run(self, context: AuditContext) -> ProbeResult:
        measured = measure(context, self.opts)
        found = judge.checks(measured, self.opts.max_drop)
        return present(self.name, measured, judge.metrics(measured), found,
                       judge.findings(measured, found), judge.status(found))
