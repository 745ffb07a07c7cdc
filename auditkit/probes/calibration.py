"""Calibration and uncertainty: does the model know what it doesn't know?

Calibration follows Guo et al. (2017): ECE/MCE over equal-width confidence bins (plus
equal-mass and classwise ECE), Brier score, NLL, and temperature scaling fitted by NLL on the
``calibration`` split and judged on the ``evaluation`` split. Uncertainty splits predictive
entropy into aleatoric and epistemic parts from MC dropout or test-time augmentation;
out-of-distribution detection uses the maximum softmax probability (Hendrycks & Gimpel 2017);
selective prediction is summarised by the risk–coverage curve and its area (AURC).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from auditkit.data.core import AuditData
from auditkit.data.ood import OODSet, as_ood_set, generated_ood_sets
from auditkit.errors import AuditkitInputError
from auditkit.functional.calibration import (
    adaptive_calibration_bins,
    adaptive_calibration_error,
    binary_auroc,
    brier_score,
    calibration_bins,
    classwise_calibration_error,
    expected_calibration_error,
    fit_temperature,
    fpr_at_tpr,
    negative_log_likelihood,
    risk_coverage,
    softmax,
)
from auditkit.functional.uncertainty import UncertaintyAccumulator, decompose_uncertainty
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult

# samples per example, examples used for uncertainty, examples per OOD set
_BUDGET = {
    "fast": (8, 500, 256),
    "standard": (20, 2000, 1000),
    "thorough": (50, None, 2000),
}
MIN_CALIBRATION_EXAMPLES = 10
FEW_ERRORS = 5
SMALL_EVALUATION = 100
ECE_WARNING = 0.05
OOD_WARNING = 0.9
# A temperature within noise of 1 moves held-out NLL by a fraction of a percent either way; only
# a rise beyond this (relative) says the fitted T does not carry over.
NLL_TOLERANCE = 0.01

AURC_DEFINITION = (
    "Risk–coverage: abstain on examples in order of increasing confidence (max softmax "
    "probability). At coverage k/n the model answers only its k most confident examples and the "
    "selective risk is their error rate. AURC = (1/n) Σ_k risk(k/n), the area under this curve; "
    "lower is better. The oracle curve ranks every error below every correct prediction."
)


class CalibrationProbe(Probe):
    """Calibration (ECE, MCE, Brier, NLL, temperature scaling), uncertainty decomposition,
    max-softmax OOD detection and selective prediction.

    Options:
        n_bins: equal-width (and equal-mass) bins for ECE; 15 as in Guo et al.
        ood: the user's OOD set (data path, ``AuditData`` or input tensor). When ``None``,
            generated sets are used: uniform noise, Gaussian noise, pixel-shuffled images (for
            tables: feature-wise noise and shuffled columns).
        num_samples, max_examples, ood_size: override the budget's uncertainty samples per
            example, examples that get them, and examples per OOD set.

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
    options = {
        "n_bins": 15,
        "ood": None,
        "num_samples": None,
        "max_examples": None,
        "ood_size": None,
    }

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        _positive_int("n_bins", self.config["n_bins"])
        for key, least in (("num_samples", 2), ("max_examples", 1), ("ood_size", 2)):
            if self.config[key] is not None:
                _positive_int(key, self.config[key], least)
        ood = self.config["ood"]
        if ood is not None and not isinstance(ood, (str, Path, AuditData, torch.Tensor)):
            raise AuditkitInputError(
                f"--set calibration.ood: expected a data path, got {type(ood).__name__}"
            )
        samples, examples, ood_size = _BUDGET[self.budget]
        self.num_samples = int(self.config["num_samples"] or samples)
        self.max_examples = self.config["max_examples"] or examples
        self.ood_size = int(self.config["ood_size"] or ood_size)

    # ------------------------------------------------------------------------------------
    def run(self, context) -> ProbeResult:
        data = context.data
        n_bins = int(self.config["n_bins"])
        cal, ev = context.splits["calibration"], context.splits["evaluation"]
        if len(ev) == 0:
            raise AuditkitInputError(
                f"calibration: {len(data)} audit examples leave none for evaluation; "
                "give at least 2 examples"
            )
        logits = context.clean_logits.double()
        y = data.y
        probs = softmax(logits)
        confidence = probs.max(axis=1)
        correct = (context.clean_predictions == y).numpy()

        # Cross-probe: the bias probe computes ECE per group from these.
        context.artifacts["calibration"] = {
            "indices": np.arange(len(data)),
            "confidence": confidence.astype(np.float64),
            "correct": correct.astype(bool),
        }

        before = _calibration_metrics(logits[ev], y[ev], n_bins)
        metrics: dict[str, float | None] = {
            "accuracy": before["accuracy"],
            "ece": before["ece"],
            "mce": before["mce"],
            "adaptive_ece": before["adaptive_ece"],
            "classwise_ece": before["classwise_ece"],
            "brier": before["brier"],
            "nll": before["nll"],
            "mean_confidence": before["mean_confidence"],
        }
        checks: list[Check] = []

        fit, after, reason, transfers = None, None, None, False
        cal_errors = int((~correct[cal]).sum())
        if len(cal) < MIN_CALIBRATION_EXAMPLES:
            reason = f"only {len(cal)} calibration examples (need {MIN_CALIBRATION_EXAMPLES})"
            checks.append(Check("temperature_fit", "skipped", reason, {"n": int(len(cal))}))
        else:
            fit = fit_temperature(logits[cal], y[cal])
            if fit.at_bound:
                reason = (
                    f"NLL on the {fit.n} calibration examples keeps falling as T → 0 "
                    f"({cal_errors} of them misclassified), so no temperature is identifiable"
                    if fit.temperature < 1
                    else f"NLL on the {fit.n} calibration examples keeps falling as T → ∞: the "
                    "logits carry no usable confidence information"
                )
            few = cal_errors < FEW_ERRORS
            checks.append(
                Check(
                    "temperature_fit",
                    "warned" if fit.at_bound or few else "passed",
                    reason
                    or f"T = {fit.temperature:.3g} from {fit.n} calibration examples "
                    f"({cal_errors} misclassified), NLL {fit.nll_before:.4f} → {fit.nll_after:.4f}"
                    + (
                        f"; T rests on fewer than {FEW_ERRORS} errors and will move with more "
                        "held-out data"
                        if few
                        else ""
                    ),
                    _fit_values(fit, cal_errors),
                )
            )
        if fit is not None and reason is None:
            after = _calibration_metrics(logits[ev] / fit.temperature, y[ev], n_bins)
            context.artifacts["calibration"]["temperature"] = fit.temperature
            context.artifacts["calibration"]["calibrated_confidence"] = softmax(
                logits / fit.temperature
            ).max(axis=1)
            # T was fitted on the calibration split; only data it never saw can say whether
            # applying it helps (dividing by T > 0 keeps every arg-max, so accuracy cannot move).
            transfers = after["nll"] <= before["nll"] * (1 + NLL_TOLERANCE)
            checks.append(
                Check(
                    "temperature_lowers_held_out_nll",
                    "passed" if transfers else "warned",
                    f"NLL on the {len(ev)} evaluation examples {before['nll']:.4f} → "
                    f"{after['nll']:.4f} after dividing the logits by T = {fit.temperature:.3g}"
                    + (
                        ""
                        if transfers
                        else "; the temperature fitted on the calibration split does not carry "
                        "over to held-out data"
                    ),
                    {
                        "nll_before": before["nll"],
                        "nll_after": after["nll"],
                        "relative_tolerance": NLL_TOLERANCE,
                    },
                )
            )
        metrics.update(
            temperature=fit.temperature if after else None,
            ece_after_temperature=after["ece"] if after else None,
            mce_after_temperature=after["mce"] if after else None,
            nll_after_temperature=after["nll"] if after else None,
            brier_after_temperature=after["brier"] if after else None,
        )
        temperature = {
            "fit": fit,
            "after": after,
            "reason": reason,
            "errors": cal_errors,
            "transfers": transfers,
        }
        checks.append(
            Check(
                "evaluation_size",
                "passed" if len(ev) >= SMALL_EVALUATION else "warned",
                f"{len(ev)} evaluation examples"
                + (
                    ""
                    if len(ev) >= SMALL_EVALUATION
                    else f"; ECE from fewer than {SMALL_EVALUATION} examples is mostly sampling noise"
                ),
                {"n": len(ev)},
            )
        )

        rc = risk_coverage(confidence[ev], correct[ev])
        metrics["aurc"] = rc.aurc
        metrics["excess_aurc"] = rc.excess_aurc

        uncertainty = self._uncertainty(context, ev)
        metrics.update(uncertainty["metrics"])
        metrics["confidence_auroc"] = _nan_to_none(binary_auroc(-confidence[ev], ~correct[ev]))

        ood = self._ood(context, confidence)
        metrics["ood_auroc"] = ood["ood_auroc"]

        findings = _findings(before, temperature, rc, ood, uncertainty, len(ev))
        status = (
            "warned"
            if any(c.status in ("failed", "warned") for c in checks)
            or any(f.severity != "info" for f in findings)
            else "passed"
        )
        return ProbeResult(
            name=self.name,
            status=status,
            metrics={k: _nan_to_none(v) for k, v in metrics.items()},
            checks=checks,
            headline="ece",
            summary=_summary(before, temperature, ood, uncertainty, len(ev)),
            findings=findings,
            figures=_figures(before, temperature, rc, ood, uncertainty, n_bins),
            details={
                "n_bins": n_bins,
                "splits": {"calibration": int(len(cal)), "evaluation": int(len(ev))},
                "temperature_fit": None
                if fit is None
                else {
                    **_fit_values(fit, cal_errors),
                    "usable": after is not None,
                    "reason": reason,
                    "apply": f"probabilities = softmax(logits / {fit.temperature:.4g})"
                    if after is not None
                    else None,
                },
                "reliability": before["bins"],
                "reliability_after_temperature": after["bins"] if after else None,
                "adaptive_bins": before["adaptive_bins"],
                "aurc_definition": AURC_DEFINITION,
                "optimal_aurc": rc.optimal_aurc,
                "uncertainty": uncertainty["details"],
                "ood": ood["details"],
                "ood_auroc_rule": "minimum AUROC over the OOD sets (the set the model "
                "separates worst decides)",
            },
        )

    # ------------------------------------------------------------------------------------
    def _uncertainty(self, context, ev: np.ndarray) -> dict[str, Any]:
        """Sample predictive distributions and split their entropy; say how they were drawn."""
        index = ev
        if self.max_examples is not None and len(ev) > self.max_examples:
            chosen = context.rng("calibration.uncertainty").choice(
                len(ev), size=int(self.max_examples), replace=False
            )
            index = np.sort(ev[chosen])
        x = context.data.x[torch.as_tensor(index)]
        samples, method, how = _sample_predictions(context, x, self.num_samples)
        correct = (
            context.clean_predictions[torch.as_tensor(index)]
            == context.data.y[torch.as_tensor(index)]
        ).numpy()
        empty = {
            "mean_predictive_entropy": None,
            "mean_aleatoric": None,
            "mean_epistemic": None,
            "uncertainty_auroc": None,
            "aleatoric_auroc": None,
            "epistemic_auroc": None,
        }
        if samples is None:
            # One deterministic pass still gives total (= aleatoric) uncertainty.
            single = torch.from_numpy(softmax(context.clean_logits[torch.as_tensor(index)]))
            decomposition = decompose_uncertainty(single[None])
            metrics = dict(empty)
            metrics["mean_predictive_entropy"] = float(decomposition.predictive.mean())
            metrics["uncertainty_auroc"] = _nan_to_none(
                binary_auroc(decomposition.predictive, ~correct)
            )
            return {
                "method": method,
                "metrics": metrics,
                "decomposition": None,
                "details": {
                    "method": method,
                    "how": how,
                    "samples": 1,
                    "examples": len(index),
                    "errors": int((~correct).sum()),
                    "epistemic": "not estimated",
                },
            }
        decomposition = samples.result()
        metrics = {
            "mean_predictive_entropy": float(decomposition.predictive.mean()),
            "mean_aleatoric": float(decomposition.aleatoric.mean()),
            "mean_epistemic": float(decomposition.epistemic.mean()),
            "uncertainty_auroc": binary_auroc(decomposition.predictive, ~correct),
            "aleatoric_auroc": binary_auroc(decomposition.aleatoric, ~correct),
            "epistemic_auroc": binary_auroc(decomposition.epistemic, ~correct),
        }
        return {
            "method": method,
            "metrics": {k: _nan_to_none(v) for k, v in metrics.items()},
            "decomposition": decomposition,
            "details": {
                "method": method,
                "how": how,
                "samples": decomposition.n_samples,
                "examples": len(index),
                "errors": int((~correct).sum()),
                "epistemic": EPISTEMIC_MEANING[method],
                "auroc_meaning": "how well each uncertainty ranks wrong predictions above right "
                "ones (0.5: no better than chance; undefined without errors)",
            },
        }

    def _ood(self, context, confidence: np.ndarray) -> dict[str, Any]:
        """Max-softmax AUROC of the audit data (positives) against each OOD set."""
        data = context.data
        generator = context.generator("calibration.ood")
        user = self.config["ood"]
        if user is not None:
            sets = [as_ood_set(user, data)]
            if len(sets[0].x) > self.ood_size:
                keep = torch.randperm(len(sets[0].x), generator=generator)[: self.ood_size]
                s = sets[0]
                sets = [OODSet(s.name, s.x[keep.sort().values], s.description, s.generated)]
        else:
            sets = generated_ood_sets(data, n=self.ood_size, generator=generator)
        rows = []
        for ood_set in sets:
            ood_logits = context.adapter.predict_logits(context.adapter.clamp(ood_set.x))
            ood_confidence = softmax(ood_logits.double()).max(axis=1)
            scores = np.concatenate([confidence, ood_confidence])
            is_in = np.concatenate(
                [np.ones(len(confidence), bool), np.zeros(len(ood_confidence), bool)]
            )
            rows.append(
                {
                    "name": ood_set.name,
                    "generated": ood_set.generated,
                    "description": ood_set.description,
                    "n": int(len(ood_confidence)),
                    "auroc": _nan_to_none(binary_auroc(scores, is_in)),
                    "fpr_at_95_tpr": _nan_to_none(fpr_at_tpr(confidence, ood_confidence)),
                    "mean_confidence": float(ood_confidence.mean()),
                }
            )
        valid = [r for r in rows if r["auroc"] is not None]
        worst = min(valid, key=lambda r: r["auroc"]) if valid else None
        return {
            "ood_auroc": worst["auroc"] if worst else None,
            "worst": worst,
            "rows": rows,
            "details": {
                "score": "max softmax probability of the uncalibrated model (Hendrycks & Gimpel "
                "2017); positives: the audit examples",
                "in_distribution_n": int(len(confidence)),
                "in_distribution_mean_confidence": float(confidence.mean()),
                "sets": rows,
            },
        }


# ----------------------------------------------------------------------------------------
def _positive_int(key: str, value: Any, least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise AuditkitInputError(
            f"--set calibration.{key}={value!r}: expected an integer ≥ {least}"
        )


def _nan_to_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _calibration_metrics(logits: torch.Tensor, y: torch.Tensor, n_bins: int) -> dict[str, Any]:
    probs = softmax(logits)
    conf = probs.max(axis=1)
    hits = logits.argmax(-1).numpy() == y.numpy()
    return {
        "accuracy": float(hits.mean()),
        "mean_confidence": float(conf.mean()),
        "ece": expected_calibration_error(conf, hits, n_bins),
        "mce": expected_calibration_error(conf, hits, n_bins, norm="max"),
        "adaptive_ece": adaptive_calibration_error(conf, hits, n_bins),
        "classwise_ece": classwise_calibration_error(probs, y, n_bins),
        "brier": brier_score(probs, y),
        "nll": negative_log_likelihood(logits, y),
        "bins": calibration_bins(conf, hits, n_bins),
        "adaptive_bins": adaptive_calibration_bins(conf, hits, n_bins),
    }


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(2**31 - 1, (1,), generator=generator))


def _repeated_passes(context, x: torch.Tensor, samples: int, seed: int) -> UncertaintyAccumulator:
    accumulator = UncertaintyAccumulator()
    devices = [context.adapter.device] if context.adapter.device.type == "cuda" else []
    # fork_rng: dropout draws from the global RNG; seed it without disturbing anyone else's
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for _ in range(samples):
            accumulator.update(torch.softmax(context.adapter.predict_logits(x).double(), -1))
    return accumulator


def _sample_predictions(
    context, x: torch.Tensor, samples: int
) -> tuple[UncertaintyAccumulator | None, str, str]:
    """The sampled predictive distributions (None: not estimated), the method and how it ran.

    MC dropout when the model has dropout layers (only they switch on), else the model's own
    randomness if its forward pass is stochastic, else test-time augmentation for images.
    """
    adapter = context.adapter
    seed = _seed_from(context.generator("calibration.samples"))
    with adapter.dropout_enabled() as has_dropout:
        if has_dropout:
            how = "dropout layers switched on, everything else in eval mode"
            return _repeated_passes(context, x, samples, seed), "MC dropout", how
    if adapter.diagnostics.stochastic:
        how = "the model's own randomness: repeated forward passes on the same inputs"
        return _repeated_passes(context, x, samples, seed), "stochastic forward passes", how
    if context.data.modality == "image":
        generator = context.generator("calibration.tta")
        shift = _tta_shift(tuple(x.shape[1:]))
        how = (f"random shifts of up to ±{shift} px (replicate padding) and " if shift else "") + (
            f"Gaussian pixel noise with σ = {TTA_NOISE:g} × the input range"
        )
        accumulator = UncertaintyAccumulator()
        for _ in range(samples):
            augmented = _augment(x, context, generator)
            accumulator.update(torch.softmax(adapter.predict_logits(augmented).double(), -1))
        return accumulator, "test-time augmentation", how
    how = "no dropout layers, a deterministic forward pass and no image augmentation for this data"
    return None, "none", how


TTA_NOISE = 0.05  # pixel noise, as a fraction of the input range

# What the mutual information of each sampling method measures. Only MC dropout and a stochastic
# forward pass sample the model; augmentation samples the input, so a perfectly deterministic
# network still gets MI > 0 there, and that number is sensitivity to the augmentation.
EPISTEMIC_MEANING = {
    "MC dropout": "model uncertainty: disagreement between dropout sub-networks, an "
    "approximation of a posterior over the weights (Gal & Ghahramani 2016)",
    "stochastic forward passes": "disagreement between the model's own random forward passes",
    "test-time augmentation": "augmentation sensitivity: how much small shifts and pixel noise "
    "change the prediction; a proxy for what the model does not know, not a posterior over "
    "its weights",
}


def _tta_shift(shape: tuple[int, ...]) -> int:
    # ~1/16 of the side: 2 px on 32×32, none on tiny images, where one pixel is a big move
    return min(shape[-2:]) // 16 if len(shape) >= 2 else 0


def _augment(x: torch.Tensor, context, generator: torch.Generator) -> torch.Tensor:
    """A small random shift (replicate-padded) plus Gaussian pixel noise: changes a careful
    model should shrug off."""
    lo, hi = context.adapter.input_range or (float(x.min()), float(x.max()))
    out = x
    shift = _tta_shift(tuple(x.shape[1:]))
    if shift:
        height, width = x.shape[-2:]
        flat = x.reshape(len(x), -1, height, width)
        padded = F.pad(flat, (shift, shift, shift, shift), mode="replicate")
        dy = torch.randint(-shift, shift + 1, (len(x),), generator=generator)
        dx = torch.randint(-shift, shift + 1, (len(x),), generator=generator)
        shifted = torch.empty_like(flat)
        for a in range(-shift, shift + 1):
            for b in range(-shift, shift + 1):
                rows = torch.nonzero((dy == a) & (dx == b)).flatten()
                if len(rows):
                    shifted[rows] = padded[
                        rows, :, shift + a : shift + a + height, shift + b : shift + b + width
                    ]
        out = shifted.reshape(x.shape)
    noise = torch.randn(x.shape, generator=generator) * (TTA_NOISE * (hi - lo))
    return (out + noise).clamp(lo, hi)


# ----------------------------------------------------------------------------------------
def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _confidence_direction(confidence: float, accuracy: float, n: int) -> str:
    """Over- or under-confident, unless the gap is within two standard errors of the accuracy
    (calling a 0.1-point gap 'under-confident' next to a fitted T > 1 only confuses)."""
    standard_error = math.sqrt(max(accuracy * (1 - accuracy), 1.0 / max(n, 1)) / max(n, 1))
    if abs(confidence - accuracy) <= 2 * standard_error:
        return "confidence matches accuracy within sampling noise"
    return "over-confident" if confidence > accuracy else "under-confident"


def _summary(before, temperature, ood, uncertainty, n_eval: int) -> str:
    fit, after = temperature["fit"], temperature["after"]
    parts = [
        f"ECE {_pct(before['ece'])} on {n_eval} held-out examples ("
        f"{_confidence_direction(before['mean_confidence'], before['accuracy'], n_eval)}: "
        f"mean confidence {_pct(before['mean_confidence'])} vs accuracy {_pct(before['accuracy'])})"
    ]
    if after is not None:
        parts.append(f"dividing logits by T = {fit.temperature:.3g} gives ECE {_pct(after['ece'])}")
    else:
        parts.append("no temperature could be fitted")
    if ood["worst"] is not None:
        parts.append(
            f"max-softmax OOD AUROC {ood['ood_auroc']:.2f} (worst of {len(ood['rows'])} "
            f"{'generated ' if ood['worst']['generated'] else ''}set"
            f"{'s' if len(ood['rows']) > 1 else ''}: {ood['worst']['name']})"
        )
    details = uncertainty["details"]
    if uncertainty["method"] == "test-time augmentation":
        parts.append(
            f"uncertainty from test-time augmentation ({details['samples']} samples; its "
            "epistemic part is augmentation sensitivity)"
        )
    elif uncertainty["decomposition"] is not None:
        parts.append(f"uncertainty from {uncertainty['method']} ({details['samples']} samples)")
    else:
        parts.append("epistemic uncertainty not estimated (no dropout, not images)")
    return "; ".join(parts)


def _findings(before, temperature, rc, ood, uncertainty, n_eval: int) -> list[Finding]:
    fit, after = temperature["fit"], temperature["after"]
    findings = []
    gap = before["mean_confidence"] - before["accuracy"]
    if before["ece"] > ECE_WARNING:
        findings.append(
            Finding(
                "warning",
                f"confidences are off by {_pct(before['ece'])} on average (ECE): the model is "
                f"{'over' if gap > 0 else 'under'}-confident",
                why=f"mean confidence {_pct(before['mean_confidence'])} against accuracy "
                f"{_pct(before['accuracy'])}; downstream thresholds and risk estimates built on "
                "these probabilities will be wrong",
                action="apply the temperature below, or recalibrate on held-out data",
            )
        )
    if after is None:
        findings.append(
            Finding(
                "warning",
                "temperature scaling could not be fitted",
                why=temperature["reason"] or "",
                action="audit on more held-out data (the calibration split is 30% of it), so that "
                "it holds enough misclassified examples to fit T",
            )
        )
    elif not temperature["transfers"]:
        findings.append(
            Finding(
                "warning",
                f"temperature scaling with T = {fit.temperature:.3g} does not carry over to "
                "held-out data",
                why=f"T was fitted by NLL on {fit.n} calibration examples, yet on the {n_eval} "
                f"evaluation examples it raises NLL {before['nll']:.3f} → {after['nll']:.3f} "
                f"(ECE {_pct(before['ece'])} → {_pct(after['ece'])}): the two splits disagree "
                "about how confident the model should be",
                action="do not apply this temperature; audit on more (and more representative) "
                "held-out data before recalibrating",
            )
        )
    else:
        helped = after["ece"] < before["ece"]
        findings.append(
            Finding(
                "info",
                f"temperature scaling: divide the logits by T = {fit.temperature:.3g}",
                why=f"T fitted by NLL on {fit.n} calibration examples (T "
                f"{'> 1: the model is over' if fit.temperature > 1 else '< 1: the model is under'}"
                f"-confident); on the {n_eval} evaluation examples "
                f"ECE {_pct(before['ece'])} → {_pct(after['ece'])}, NLL {before['nll']:.3f} → "
                f"{after['nll']:.3f}, accuracy unchanged"
                + (
                    f"; only {temperature['errors']} calibration errors, so T is rough"
                    if temperature["errors"] < FEW_ERRORS
                    else ""
                ),
                action=f"at inference use probabilities = softmax(logits / {fit.temperature:.4g}); "
                "the arg-max (and so accuracy) does not change"
                + (
                    ""
                    if helped
                    else "; here it does not lower ECE on held-out data, so keeping "
                    "the logits as they are is just as good"
                ),
            )
        )
    worst = ood["worst"]
    if worst is not None:
        if worst["auroc"] < OOD_WARNING:
            findings.append(
                Finding(
                    "warning",
                    f"max-softmax confidence barely separates {worst['name']} from real inputs "
                    f"(AUROC {worst['auroc']:.2f})",
                    why=f"mean confidence on that set is {_pct(worst['mean_confidence'])}; "
                    "networks extrapolate with confidence far from their training data",
                    action="do not use the softmax confidence as an OOD filter; add a dedicated "
                    "detector (energy score, Mahalanobis distance) or train with outlier "
                    "exposure",
                )
            )
        else:
            findings.append(
                Finding(
                    "info",
                    f"max-softmax confidence flags {'generated ' if worst['generated'] else ''}"
                    f"OOD inputs (worst AUROC {worst['auroc']:.2f}, {worst['name']})",
                    why="generated noise is easy; real distribution shift is usually harder"
                    if worst["generated"]
                    else "",
                    action="for a stronger check pass your own OOD set (--set calibration.ood=PATH)"
                    if worst["generated"]
                    else "",
                )
            )
    if uncertainty["decomposition"] is None:
        findings.append(
            Finding(
                "info",
                "epistemic uncertainty was not estimated",
                why="the model has no dropout layers, its forward pass is deterministic and the "
                "data are not images, so there was nothing to sample",
                action="add dropout (MC dropout) or audit a deep ensemble to measure what the "
                "model does not know",
            )
        )
    elif uncertainty["method"] == "test-time augmentation":
        findings.append(
            Finding(
                "info",
                "uncertainty sampled by test-time augmentation (no dropout layers): its "
                "epistemic part is augmentation sensitivity",
                why="the mutual information here measures how much small shifts and noise change "
                "the prediction, a proxy for the model's ignorance, not a posterior over weights; "
                "a fully deterministic network gets a non-zero value from the augmentation alone",
                action="add dropout layers (MC dropout) for a model-based estimate",
            )
        )
    coverage = 0.9
    k = max(1, int(round(coverage * len(rc.risk)))) if len(rc.risk) else 0
    if k and rc.risk[-1] > 0:
        findings.append(
            Finding(
                "info",
                f"abstaining on the 10% least confident examples cuts the error rate from "
                f"{_pct(float(rc.risk[-1]))} to {_pct(float(rc.risk[k - 1]))}",
                why=f"AURC {rc.aurc:.4f} (a perfect ranking would give {rc.optimal_aurc:.4f})",
                action="route low-confidence predictions to a human or a fallback",
            )
        )
    return findings


def _figures(before, temperature, rc, ood, uncertainty, n_bins: int) -> list[dict[str, Any]]:
    fit, after = temperature["fit"], temperature["after"]
    figures: list[dict[str, Any]] = [
        {
            "kind": "reliability",
            "id": "reliability",
            "title": "Reliability diagram (evaluation split, before temperature scaling)",
            "bins": before["bins"],
            "caption": f"{n_bins} equal-width confidence bins; a calibrated model sits on the "
            f"diagonal. ECE {_pct(before['ece'])}, MCE {_pct(before['mce'])}.",
        }
    ]
    if after is not None:
        figures.append(
            {
                "kind": "reliability",
                "id": "reliability-after-temperature",
                "title": f"Reliability diagram after dividing logits by T = {fit.temperature:.3g}",
                "bins": after["bins"],
                "caption": f"Same evaluation examples; T fitted on the calibration split. ECE "
                f"{_pct(after['ece'])}, MCE {_pct(after['mce'])}.",
            }
        )
    total = sum(b["count"] for b in before["bins"]) or 1
    figures.append(
        {
            "kind": "bar",
            "id": "confidence-histogram",
            "title": "Confidence histogram (evaluation split)",
            "x_label": "max softmax probability",
            "y_label": "fraction of examples",
            "bars": [
                {
                    "label": f"{b['lower']:.2f}–{b['upper']:.2f}",
                    "value": b["count"] / total,
                    "count": b["count"],
                }
                for b in before["bins"]
            ],
            "caption": f"Mean confidence {_pct(before['mean_confidence'])}, accuracy "
            f"{_pct(before['accuracy'])}.",
        }
    )
    n = len(rc.risk)
    if n:
        keep = np.unique(np.linspace(0, n - 1, min(n, 200)).round().astype(int))
        figures.append(
            {
                "kind": "line",
                "id": "risk-coverage",
                "title": "Risk–coverage curve (selective prediction)",
                "x_label": "coverage (fraction of examples answered)",
                "y_label": "selective risk (error rate on answered examples)",
                "series": [
                    {
                        "name": f"model (AURC {rc.aurc:.4f})",
                        "x": rc.coverage[keep].tolist(),
                        "y": rc.risk[keep].tolist(),
                    },
                    {
                        "name": f"oracle (AURC {rc.optimal_aurc:.4f})",
                        "x": rc.coverage[keep].tolist(),
                        "y": rc.optimal_risk[keep].tolist(),
                    },
                ],
                "caption": AURC_DEFINITION,
            }
        )
    if ood["rows"]:
        figures.append(
            {
                "kind": "bar",
                "id": "ood-auroc",
                "title": "OOD detection by max softmax probability: AUROC per set",
                "x_label": "OOD set",
                "y_label": "AUROC",
                "bars": [
                    {
                        "label": r["name"] + ("" if r["generated"] else " (user)"),
                        "value": r["auroc"],
                        "flag": r["auroc"] is not None and r["auroc"] < OOD_WARNING,
                    }
                    for r in ood["rows"]
                ],
                "reference": 0.5,
                "y_range": [0, 1],
                "caption": "AUROC of the audit examples against each OOD set, scored by max "
                "softmax probability; 0.5 = cannot tell them apart, 1 = perfect. "
                "ood_auroc is the minimum over sets.",
            }
        )
        figures.append(
            {
                "kind": "table",
                "id": "ood-sets",
                "title": "OOD sets",
                "columns": [
                    "set",
                    "how it was made",
                    "n",
                    "AUROC",
                    "FPR at 95% TPR",
                    "mean confidence",
                ],
                "rows": [
                    [
                        r["name"],
                        r["description"],
                        r["n"],
                        None if r["auroc"] is None else round(r["auroc"], 4),
                        None if r["fpr_at_95_tpr"] is None else round(r["fpr_at_95_tpr"], 4),
                        round(r["mean_confidence"], 4),
                    ]
                    for r in ood["rows"]
                ],
                "caption": "FPR at 95% TPR: share of OOD inputs still accepted when the threshold "
                "keeps 95% of real inputs.",
            }
        )
    m = uncertainty["metrics"]
    figures.append(
        {
            "kind": "table",
            "id": "uncertainty",
            "title": f"Uncertainty decomposition ({uncertainty['method']})",
            "columns": ["quantity", "mean (nats)", "AUROC for errors"],
            "rows": [
                [
                    "predictive entropy (total)",
                    _round(m["mean_predictive_entropy"]),
                    _round(m["uncertainty_auroc"]),
                ],
                [
                    "expected entropy (aleatoric)",
                    _round(m["mean_aleatoric"]),
                    _round(m["aleatoric_auroc"]),
                ],
                [
                    "mutual information (epistemic: augmentation sensitivity)"
                    if uncertainty["method"] == "test-time augmentation"
                    else "mutual information (epistemic)",
                    _round(m["mean_epistemic"]),
                    _round(m["epistemic_auroc"]),
                ],
            ],
            "caption": "Predictive entropy = expected entropy (aleatoric) + mutual information "
            "(epistemic). AUROC for errors: how well each ranks wrong predictions above right "
            "ones (0.5 = chance). Empty cells were not estimated.",
        }
    )
    return figures


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _fit_values(fit, errors: int) -> dict[str, Any]:
    """The numbers behind a temperature fit, as the check and the details report them."""
    return {
        "temperature": fit.temperature,
        "nll_before": fit.nll_before,
        "nll_after": fit.nll_after,
        "at_bound": fit.at_bound,
        "n": fit.n,
        "errors": errors,
    }
