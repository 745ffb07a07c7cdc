"""The calibration probe: measure confidences and uncertainty, judge them, present them."""

from __future__ import annotations

from auditkit.probes.base import MetricSpec, Probe
from auditkit.probes.calibration.judge import judge
from auditkit.probes.calibration.measure import measure
from auditkit.probes.calibration.options import CalibrationOptions
from auditkit.probes.calibration.present import present
from auditkit.probes.calibration.sizing import CalibrationSizing
from auditkit.results import ProbeResult


class CalibrationProbe(Probe):
    """Calibration (ECE, MCE, Brier, NLL, temperature scaling), uncertainty decomposition,
    max-softmax OOD detection and selective prediction.

    Options are declared in ``CalibrationOptions`` (``auditkit probes --verbose`` lists them).

    Example:
        >>> result = CalibrationProbe(budget="fast").run(build_context(adapter, data))
        >>> result.metrics["temperature"], result.metrics["ece_after_temperature"]
    """

    name = "calibration"
    title = "Calibration and uncertainty"
    description = (
        "Are the model's confidences honest, does it flag inputs unlike its data, and does its "
        "uncertainty point at its mistakes?"
    )
    order = 30
    metrics = {
        "accuracy": MetricSpec("higher", "accuracy on the evaluation split"),
        "ece": MetricSpec(
            "lower",
            "expected calibration error: the gap between confidence and accuracy, averaged over "
            "15 equal-width confidence bins weighted by their size (evaluation split)",
        ),
        "mce": MetricSpec(
            "lower",
            "maximum calibration error: the worst non-empty bin's gap between confidence and "
            "accuracy",
        ),
        "adaptive_ece": MetricSpec("lower", "ECE over equal-mass bins"),
        "classwise_ece": MetricSpec("lower", "mean over classes of the one-vs-rest ECE"),
        "brier": MetricSpec("lower", "multiclass Brier score, Σ_k (p_k − [y=k])², range 0–2"),
        "nll": MetricSpec("lower", "mean negative log-likelihood (nats)"),
        "mean_confidence": MetricSpec(None, "mean max-softmax probability (evaluation split)"),
        "temperature": MetricSpec(
            None,
            "temperature T fitted by NLL on the calibration split (> 1: over-confident); "
            "divide the logits by T before softmax",
        ),
        "ece_after_temperature": MetricSpec("lower", "ECE of softmax(logits / T)"),
        "mce_after_temperature": MetricSpec("lower", "MCE of softmax(logits / T)"),
        "nll_after_temperature": MetricSpec("lower", "NLL of softmax(logits / T)"),
        "brier_after_temperature": MetricSpec("lower", "Brier score of softmax(logits / T)"),
        "aurc": MetricSpec(
            "lower",
            "area under the risk-coverage curve: sort predictions by max-softmax confidence, keep "
            "the most confident share c, measure the error rate among the kept ones, and average "
            "that risk over all coverages c",
        ),
        "excess_aurc": MetricSpec("lower", "AURC minus the AURC of a perfect ranking"),
        "ood_auroc": MetricSpec(
            "higher",
            "how well the max softmax probability separates in-distribution from "
            "out-of-distribution inputs (AUROC; 0.5: not at all, 1: perfectly), the minimum over "
            "the OOD sets",
        ),
        "mean_predictive_entropy": MetricSpec(None, "mean total predictive entropy (nats)"),
        "mean_aleatoric": MetricSpec(None, "mean expected entropy of the samples (nats)"),
        "mean_epistemic": MetricSpec(None, "mean mutual information (nats)"),
        "uncertainty_auroc": MetricSpec(
            "higher", "AUROC of predictive entropy for telling wrong from right predictions"
        ),
        "aleatoric_auroc": MetricSpec("higher", "the same for the aleatoric part"),
        "epistemic_auroc": MetricSpec("higher", "the same for the epistemic part"),
        "confidence_auroc": MetricSpec(
            "higher", "the same for 1 − max softmax probability (Hendrycks & Gimpel baseline)"
        ),
    }
    budget_levels = {
        "fast": "8 uncertainty samples on up to 500 examples; 256 examples per OOD set",
        "standard": "20 uncertainty samples on up to 2,000 examples; 1,000 per OOD set",
        "thorough": "50 uncertainty samples on every evaluation example; 2,000 per OOD set",
    }
    Options = CalibrationOptions
    sizing = CalibrationSizing()
    opts: CalibrationOptions

    def run(self, context) -> ProbeResult:
        measured = measure(context, self.opts, self.budget)
        return present(self.name, measured, judge(measured))
