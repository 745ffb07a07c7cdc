"""The bias probe: plan the slicings, measure them, judge the gaps, present the result."""

from __future__ import annotations

from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.bias._slicing import PROXY_NOTE, plan
from auditkit.probes.bias.judge import judge
from auditkit.probes.bias.measure import NothingToCompare, measure
from auditkit.probes.bias.options import N_BOOT, BiasOptions
from auditkit.probes.bias.present import present
from auditkit.probes.bias.sizing import BiasSizing
from auditkit.results import ProbeResult


class BiasProbe(Probe):
    """Per-group accuracy, selection and error rates with bootstrap intervals, built on
    fairlearn's ``MetricFrame``; worst group, differences and ratios; intersections; proxy
    slices for data without sensitive columns; robust accuracy and ECE per group.

    Example:
        >>> result = BiasProbe(budget="fast", min_group_size=50).run(context)
        >>> result.metrics["accuracy_difference"], result.details["slicings"][0]["groups"]
    """

    name = "bias"
    title = "Subgroup bias"
    description = "Who does the model fail? Accuracy and error rates per group, with error bars."
    order = 80
    # DESIGN names are demographic: measured on sensitive columns only, None without them (a
    # gate on them then fails closed as "not measured"). Proxy slices publish under proxy_*.
    metrics = {
        "overall_accuracy": MetricSpec("higher", "accuracy on all audit examples"),
        "worst_group_accuracy": MetricSpec(
            "higher", "accuracy of the worst group with at least min_group_size examples"
        ),
        "accuracy_difference": MetricSpec(
            "lower", "best minus worst group accuracy (largest over columns and intersections)"
        ),
        "accuracy_ratio": MetricSpec("higher", "worst over best group accuracy (smallest)"),
        "demographic_parity_difference": MetricSpec(
            "lower", "largest gap in selection rate (share predicted positive) between groups"
        ),
        "demographic_parity_ratio": MetricSpec(
            "higher", "smallest ratio of selection rates between groups"
        ),
        "equalized_odds_difference": MetricSpec(
            "lower", "largest gap in true- or false-positive rate between groups"
        ),
        "min_group_size": MetricSpec(None, "examples in the smallest non-empty group"),
        "small_groups": MetricSpec("lower", "groups below min_group_size (flagged, not ranked)"),
        "worst_group_robust_accuracy": MetricSpec(
            "higher", "robust accuracy (adversarial probe) of the worst group"
        ),
        "robust_accuracy_difference": MetricSpec(
            "lower", "best minus worst group robust accuracy (adversarial probe's examples)"
        ),
        "worst_group_ece": MetricSpec("lower", "ECE (calibration probe) of the worst group"),
        "ece_difference": MetricSpec("lower", "largest gap in ECE between groups"),
        "proxy_worst_slice_accuracy": MetricSpec(
            "higher", f"accuracy of the worst slice with min_group_size+ examples — {PROXY_NOTE}"
        ),
        "proxy_accuracy_difference": MetricSpec(
            "lower", f"best minus worst slice accuracy (largest over slicings) — {PROXY_NOTE}"
        ),
        "proxy_accuracy_ratio": MetricSpec(
            "higher", f"worst over best slice accuracy (smallest) — {PROXY_NOTE}"
        ),
        "proxy_equalized_odds_difference": MetricSpec(
            "lower", f"largest gap in true- or false-positive rate between slices — {PROXY_NOTE}"
        ),
        "proxy_min_slice_size": MetricSpec(
            None, f"examples in the smallest non-empty slice — {PROXY_NOTE}"
        ),
        "proxy_small_slices": MetricSpec(
            "lower", f"slices below min_group_size (flagged, not ranked) — {PROXY_NOTE}"
        ),
        "proxy_worst_slice_robust_accuracy": MetricSpec(
            "higher", f"robust accuracy (adversarial probe) of the worst slice — {PROXY_NOTE}"
        ),
        "proxy_robust_accuracy_difference": MetricSpec(
            "lower", f"best minus worst slice robust accuracy — {PROXY_NOTE}"
        ),
        "proxy_worst_slice_ece": MetricSpec(
            "lower", f"ECE (calibration probe) of the worst slice — {PROXY_NOTE}"
        ),
        "proxy_ece_difference": MetricSpec(
            "lower", f"largest gap in ECE between slices — {PROXY_NOTE}"
        ),
    }
    budget_levels = {
        "fast": f"{N_BOOT['fast']} bootstrap resamples for the intervals",
        "standard": f"{N_BOOT['standard']} bootstrap resamples",
        "thorough": f"{N_BOOT['thorough']} bootstrap resamples",
    }
    Options = BiasOptions
    sizing = BiasSizing()
    opts: BiasOptions

    def skip_reason(self, context) -> str | None:
        return super().skip_reason(context) or plan(context, self.opts).skip_reason

    def run(self, context) -> ProbeResult:
        try:
            measured = measure(context, self.opts, self.budget)
        except NothingToCompare as exc:
            reason = str(exc)
            return ProbeResult(name=self.name, status="skipped", skip_reason=reason, summary=reason)
        return present(self.name, measured, judge(measured))
