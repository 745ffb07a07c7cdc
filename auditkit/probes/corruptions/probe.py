"""The corruptions probe: corrupt the audit examples, judge the damage, present it."""

from __future__ import annotations

from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.corruptions.baseline import read_baseline
from auditkit.probes.corruptions.catalog import IMAGE_CORRUPTIONS, SEVERITIES
from auditkit.probes.corruptions.judge import judge
from auditkit.probes.corruptions.measure import image_shape_problem, measure
from auditkit.probes.corruptions.options import CorruptionsOptions
from auditkit.probes.corruptions.present import present
from auditkit.probes.corruptions.sizing import CorruptionsSizing
from auditkit.probes.corruptions.tabular import TABLE_CORRUPTIONS
from auditkit.results import ProbeResult

ALL_CORRUPTIONS = IMAGE_CORRUPTIONS + TABLE_CORRUPTIONS
#: The data kinds the corruptions are defined for.
APPLIES_TO = "image and table classifiers"


def _declared_metrics() -> dict[str, MetricSpec]:
    out = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the uncorrupted examples used"),
        "mean_corruption_accuracy": MetricSpec(
            "higher", "accuracy averaged over every corruption and severity run"
        ),
        "worst_corruption_accuracy": MetricSpec(
            "higher", "the lowest of the corruptions' accuracies averaged over severities (the "
            "details name the corruption)"
        ),
        "mce_vs_clean": MetricSpec(
            "lower", "mean over corruptions of the error averaged over severities, divided by "
            "the clean error (1: corruptions cost nothing; undefined at zero clean error)"
        ),
        "mce": MetricSpec(
            "lower", "mean corruption error against the baseline audit: mean over corruptions "
            "of Σ_s error / Σ_s baseline error (Hendrycks & Dietterich 2019; 1: as robust as "
            "the baseline; only with --set corruptions.baseline=audit.json)"
        ),
        "relative_mce": MetricSpec(
            "lower", "relative mCE against the baseline: mean over corruptions of Σ_s (error − "
            "clean error) / the baseline's same sum (how much accuracy corruptions take away, "
            "compared with the baseline)"
        ),
        "ece_clean": MetricSpec("lower", "ECE of the uncorrupted examples used (15 bins)"),
    }
    for s in SEVERITIES:
        out[f"ece_s{s}"] = MetricSpec(
            "lower", f"ECE of every corruption's predictions at severity {s}, pooled"
        )
    for c in ALL_CORRUPTIONS:
        out[f"{c}_error"] = MetricSpec(
            "lower", f"error under {c.replace('_', ' ')} averaged over the severities run"
        )
        for s in SEVERITIES:
            out[f"{c}_s{s}_accuracy"] = MetricSpec(
                "higher", f"accuracy under {c.replace('_', ' ')} at severity {s}"
            )
    return out


class CorruptionsProbe(Probe):
    """Common corruptions (noise, blur, weather, digital; tables: noise, missing values,
    category swaps) at five severities: accuracy, mCE, the worst corruption and ECE per
    severity.

    Options are declared in ``CorruptionsOptions`` (``auditkit probes --verbose`` lists them).

    Example:
        >>> result = CorruptionsProbe(budget="fast").run(build_context(adapter, data))
        >>> result.metrics["mean_corruption_accuracy"], result.metrics["gaussian_noise_error"]
    """

    name = "corruptions"
    title = "Corruption robustness"
    description = (
        "Does the model survive noisy, blurred, badly compressed or darker inputs (noisy, "
        "incomplete or mistyped rows), and does its confidence fall when its accuracy does?"
    )
    order = 35
    metrics = _declared_metrics()
    budget_levels = {
        "fast": "4 image corruptions (noise, blur, contrast, JPEG) at severities 1, 3, 5 on 200 "
        "examples",
        "standard": "11 image corruptions at 5 severities on 300 examples",
        "thorough": "11 image corruptions at 5 severities on every audit example",
    }
    Options = CorruptionsOptions
    sizing = CorruptionsSizing()
    opts: CorruptionsOptions

    def __init__(self, *, budget: str = "standard", **options) -> None:
        super().__init__(budget=budget, **options)
        # Read now, so a bad file ends the scan with its one-line error before any work.
        self.baseline = None if self.opts.baseline is None else read_baseline(self.opts.baseline)

    def not_applicable(self, context) -> str | None:
        """Graphs and point clouds have their own perturbations (the graph plugin's)."""
        return None if context.data.modality in ("image", "tabular") else APPLIES_TO

    def skip_reason(self, context) -> str | None:
        phrase = self.not_applicable(context)
        if phrase is not None:
            return f"not applicable to this model: applies to {phrase}"
        if context.data.modality == "image":
            return image_shape_problem(context.data)
        return super().skip_reason(context)

    def run(self, context) -> ProbeResult:
        measured = measure(context, self.opts, self.baseline)
        return present(self.name, measured, judge(measured))
