"""The bias probe: plan the slicings, measure them, judge the gaps, present the result."""

from __future__ import annotations

import dataclasses
from typing import Any

from auditkit.functional.fairness import accuracy
from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.bias import judge as judging
from auditkit.probes.bias import measure as measuring
from auditkit.probes.bias import present
from auditkit.probes.bias.measure import PROXY_NOTE, BiasMeasurement
from auditkit.probes.bias.options import N_BOOT, BiasOptions
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
    opts: BiasOptions

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        # The positive class is an index or a name; Python and TOML may give the index as a
        # number.
        wanted = options.get("positive_class")
        if isinstance(wanted, int) and not isinstance(wanted, bool):
            options["positive_class"] = str(wanted)
        super().__init__(budget=budget, **options)
        self.n_boot = self.opts.n_boot
        self.alpha = 1.0 - float(self.opts.confidence)

    def skip_reason(self, context) -> str | None:
        return super().skip_reason(context) or self._plan(context).skip_reason

    def _plan(self, context) -> measuring.Plan:
        o = self.opts
        return measuring.plan(
            context,
            sensitive=o.sensitive,
            intersections=o.intersections,
            proxy_slices=o.proxy_slices,
            quantiles=o.proxy_quantiles,
        )

    def measure(self, context) -> BiasMeasurement | str:
        """Everything the judge needs, or why there is nothing to measure."""
        plan = self._plan(context)
        if plan.skip_reason:
            return plan.skip_reason
        y = context.data.y.numpy()
        pred = context.clean_predictions.numpy()
        classes = measuring.classes_of_interest(context, y, self.opts.positive_class)
        seeds = context.rng(self.name)
        settings = {
            "min_group_size": self.opts.min_group_size,
            "n_boot": self.n_boot,
            "alpha": self.alpha,
        }
        slicings = [
            measuring.measure_slicing(s, y, pred, classes, seeds, **settings) for s in plan.slicings
        ]
        problems = measuring.measure_cross_probe(
            context, plan.slicings, slicings, seeds, **settings
        )
        return BiasMeasurement(
            slicings=slicings,
            columns=plan.columns,
            single_group_columns=plan.single_group_columns,
            classes=classes,
            class_names=measuring.class_names(context),
            overall_accuracy=accuracy(y, pred),
            n_boot=self.n_boot,
            cross_probe_problems=problems,
        )

    def run(self, context) -> ProbeResult:
        measured = self.measure(context)
        if isinstance(measured, str):
            return ProbeResult(
                name=self.name, status="skipped", skip_reason=measured, summary=measured
            )
        min_size = self.opts.min_group_size
        thresholds = {
            f.name: getattr(self.opts, f.name)
            for f in dataclasses.fields(self.opts)
            if f.name.startswith("max_")
        }
        judged = judging.judge(
            measured,
            thresholds={k.removeprefix("max_"): v for k, v in thresholds.items()},
            confidence=self.opts.confidence,
            min_group_size=min_size,
        )
        conf = f"{1 - self.alpha:.0%}"
        names = measured.class_names
        return ProbeResult(
            name=self.name,
            status=judged.status,
            metrics=judged.metrics,
            checks=judged.checks,
            summary=present.summary(judged.reports, judged.proxy_only, min_size),
            headline=present.headline(judged.proxy_only),
            findings=judged.findings,
            figures=present.figures(
                judged.reports,
                judged.metrics["overall_accuracy"],
                names,
                conf,
                self.n_boot,
                min_size,
            ),
            details=present.details(
                judged.reports,
                proxy_only=judged.proxy_only,
                names=names,
                classes=measured.classes,
                n_boot=self.n_boot,
                confidence=1 - self.alpha,
                min_size=min_size,
                thresholds=thresholds,
            ),
        )
