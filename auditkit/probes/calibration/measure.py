"""Measure: confidences, calibration numbers before and after a fitted temperature, sampled
predictive distributions, the risk–coverage curve and max-softmax OOD scores.

Runs the model (uncertainty samples, OOD sets) and fits the temperature; decides nothing. The
result is a ``CalibrationMeasurement`` of plain numbers that ``judge.py`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from auditkit.data.ood import OODSet, as_ood_set, generated_ood_sets
from auditkit.errors import AuditkitInputError
from auditkit.functional.calibration import (
    RiskCoverage,
    TemperatureFit,
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
from auditkit.probes.calibration.noise import bootstrap_standard_errors
from auditkit.probes.calibration.options import CalibrationOptions

# Fewer calibration examples than this: no temperature is fitted.
MIN_CALIBRATION_EXAMPLES = 10
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


@dataclass
class CalibrationMeasurement:
    """Everything measured, as plain data; ``judge.judge`` reads nothing else.

    ``before`` / ``after``: ``calibration_metrics`` of the evaluation split, before and after
    dividing the logits by the fitted temperature (``after`` is None when no temperature was
    fitted or the fit ran into a bound). ``uncertainty``: ``method``, ``metrics``,
    ``decomposition`` (None when nothing was sampled) and ``details``. ``ood``: ``ood_auroc``
    (minimum over the sets), ``worst`` and ``rows`` (one per set), ``details``.
    """

    n_bins: int
    n_calibration: int
    n_evaluation: int
    calibration_errors: int
    before: dict[str, Any]
    fit: TemperatureFit | None
    after: dict[str, Any] | None
    risk: RiskCoverage
    confidence_auroc: float | None
    uncertainty: dict[str, Any]
    ood: dict[str, Any]
    #: Bootstrap standard errors of ECE and MCE over the evaluation examples (for ``diff``).
    standard_errors: dict[str, float] = field(default_factory=dict)
    #: The model gives decision scores, not probabilities (a scikit-learn estimator with
    #: ``decision_function`` only, e.g. LinearSVC): the softmax of its scores is auditkit's, so
    #: their miscalibration is information, not a warning about the model.
    decision_scores: bool = False


def measure(context, opts: CalibrationOptions, budget: str) -> CalibrationMeasurement:
    """Measure the model in ``context`` (``opts`` carries the budget's sample sizes); leaves
    per-example confidences in ``context.artifacts["calibration"]`` for the bias probe."""
    n_bins = opts.n_bins
    data = context.data
    cal, ev = context.splits["calibration"], context.splits["evaluation"]
    if len(ev) == 0:
        raise AuditkitInputError(
            f"calibration: {len(data)} audit examples leave none for evaluation; "
            "give at least 2 examples"
        )
    logits = context.clean_logits.double()
    y = data.y
    confidence = softmax(logits).max(axis=1)
    correct = (context.clean_predictions == y).numpy()

    # Cross-probe: the bias probe computes ECE per group from these.
    context.artifacts["calibration"] = {
        "indices": np.arange(len(data)),
        "confidence": confidence.astype(np.float64),
        "correct": correct.astype(bool),
    }
    before = calibration_metrics(logits[ev], y[ev], n_bins)
    fit, after = None, None
    if len(cal) >= MIN_CALIBRATION_EXAMPLES:
        fit = fit_temperature(logits[cal], y[cal])
        if not fit.at_bound:
            after = calibration_metrics(logits[ev] / fit.temperature, y[ev], n_bins)
            after["nll_change_se"] = nll_change_standard_error(logits[ev], y[ev],
                                                               fit.temperature)
            context.artifacts["calibration"]["temperature"] = fit.temperature
            context.artifacts["calibration"]["calibrated_confidence"] = softmax(
                logits / fit.temperature
            ).max(axis=1)
    rc = risk_coverage(confidence[ev], correct[ev])
    uncertainty = measure_uncertainty(context, ev, opts.num_samples, opts.max_examples)
    return CalibrationMeasurement(
        n_bins=n_bins,
        n_calibration=int(len(cal)),
        n_evaluation=int(len(ev)),
        calibration_errors=int((~correct[cal]).sum()),
        before=before,
        fit=fit,
        after=after,
        risk=rc,
        confidence_auroc=nan_to_none(binary_auroc(-confidence[ev], ~correct[ev])),
        uncertainty=uncertainty,
        ood=measure_ood(context, confidence, opts.ood, opts.ood_size),
        standard_errors=bootstrap_standard_errors(
            confidence[ev], correct[ev], n_bins, context.rng("calibration/noise"),
            after=None if after is None else softmax(logits[ev] / fit.temperature).max(axis=1),
        ),
        decision_scores=getattr(context.adapter, "estimator", None) is not None
        and getattr(context.adapter, "outputs", None) == "logits",
    )


def nll_change_standard_error(logits: torch.Tensor, y: torch.Tensor, temperature: float) -> float:
    """Standard error of the held-out NLL change that dividing by ``temperature`` makes, paired
    per example: how far that change moves with the examples alone (a T fitted on 180 examples
    can raise NLL on 420 others by 2 % without being wrong about the model)."""
    if len(y) < 2:
        return 0.0
    index = y.long().view(-1, 1)
    before = -torch.log_softmax(logits, dim=1).gather(1, index).squeeze(1)
    after = -torch.log_softmax(logits / temperature, dim=1).gather(1, index).squeeze(1)
    change = (after - before).double()
    return float(change.std(unbiased=True) / len(change) ** 0.5)


def calibration_metrics(logits: torch.Tensor, y: torch.Tensor, n_bins: int) -> dict[str, Any]:
    """Accuracy, confidence, ECE/MCE (equal-width and equal-mass), classwise ECE, Brier, NLL and
    the reliability bins of ``softmax(logits)``."""
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


def nan_to_none(value):
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


# --- uncertainty ----------------------------------------------------------------------------
def measure_uncertainty(
    context, ev: np.ndarray, num_samples: int, max_examples: int | None
) -> dict[str, Any]:
    """Sample predictive distributions and split their entropy; say how they were drawn."""
    index = ev
    if max_examples is not None and len(ev) > max_examples:
        chosen = context.rng("calibration.uncertainty").choice(
            len(ev), size=int(max_examples), replace=False
        )
        index = np.sort(ev[chosen])
    x = context.data.x[torch.as_tensor(index)]
    samples, method, how = _sample_predictions(context, x, num_samples)
    correct = (
        context.clean_predictions[torch.as_tensor(index)] == context.data.y[torch.as_tensor(index)]
    ).numpy()
    details = {
        "method": method,
        "how": how,
        "samples": 1,
        "examples": len(index),
        "errors": int((~correct).sum()),
    }
    if samples is None:
        # One deterministic pass still gives total (= aleatoric) uncertainty.
        single = torch.from_numpy(softmax(context.clean_logits[torch.as_tensor(index)]))
        decomposition = decompose_uncertainty(single[None])
        metrics = dict.fromkeys(
            (
                "mean_predictive_entropy",
                "mean_aleatoric",
                "mean_epistemic",
                "uncertainty_auroc",
                "aleatoric_auroc",
                "epistemic_auroc",
            )
        )
        metrics["mean_predictive_entropy"] = float(decomposition.predictive.mean())
        metrics["uncertainty_auroc"] = nan_to_none(binary_auroc(decomposition.predictive, ~correct))
        details["epistemic"] = "not estimated"
        return {"method": method, "metrics": metrics, "decomposition": None, "details": details}
    decomposition = samples.result()
    metrics = {
        "mean_predictive_entropy": float(decomposition.predictive.mean()),
        "mean_aleatoric": float(decomposition.aleatoric.mean()),
        "mean_epistemic": float(decomposition.epistemic.mean()),
        "uncertainty_auroc": binary_auroc(decomposition.predictive, ~correct),
        "aleatoric_auroc": binary_auroc(decomposition.aleatoric, ~correct),
        "epistemic_auroc": binary_auroc(decomposition.epistemic, ~correct),
    }
    details.update(
        samples=decomposition.n_samples,
        epistemic=EPISTEMIC_MEANING[method],
        auroc_meaning="how well each uncertainty ranks wrong predictions above right ones (0.5: "
        "no better than chance; undefined without errors)",
    )
    return {
        "method": method,
        "metrics": {k: nan_to_none(v) for k, v in metrics.items()},
        "decomposition": decomposition,
        "details": details,
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


def _tta_shift(shape: tuple[int, ...]) -> int:
    # ~1/16 of the side: 2 px on 32×32, none on tiny images, where one pixel is a big move
    return min(shape[-2:]) // 16 if len(shape) >= 2 else 0


def _augment(x: torch.Tensor, context, generator: torch.Generator) -> torch.Tensor:
    """A small random shift (replicate-padded) plus Gaussian pixel noise: changes a careful model
    should shrug off."""
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


# --- out-of-distribution --------------------------------------------------------------------
def judged_ood(data, user_set) -> bool:
    """Whether the OOD AUROC can warn. Generated rows of a table are recorded, not judged: a
    classifier's confidence on a table is not an OOD detector by construction (a linear model
    grows more confident away from its boundary, a tree ensemble is flat outside the range it
    saw), so a warning on uniform, Gaussian or column-shuffled rows would come from the kind of
    model, not from this one. The user's own OOD set is judged whatever the data; generated
    images stay judged (noise images are far from any natural image)."""
    return user_set is not None or data.modality != "tabular"


def measure_ood(context, confidence: np.ndarray, user_set, ood_size: int) -> dict[str, Any]:
    """Max-softmax AUROC of the audit data (positives) against each OOD set."""
    data = context.data
    generator = context.generator("calibration.ood")
    if user_set is not None:
        sets = [as_ood_set(user_set, data)]
        if len(sets[0].x) > ood_size:
            keep = torch.randperm(len(sets[0].x), generator=generator)[:ood_size]
            s = sets[0]
            sets = [OODSet(s.name, s.x[keep.sort().values], s.description, s.generated)]
    else:
        sets = generated_ood_sets(data, n=ood_size, generator=generator)
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
                "auroc": nan_to_none(binary_auroc(scores, is_in)),
                "fpr_at_95_tpr": nan_to_none(fpr_at_tpr(confidence, ood_confidence)),
                "mean_confidence": float(ood_confidence.mean()),
            }
        )
    valid = [r for r in rows if r["auroc"] is not None]
    worst = min(valid, key=lambda r: r["auroc"]) if valid else None
    return {
        "ood_auroc": worst["auroc"] if worst else None,
        "worst": worst,
        "rows": rows,
        "judged": judged_ood(data, user_set),
        "details": {
            "score": "max softmax probability of the uncalibrated model (Hendrycks & Gimpel "
            "2017); positives: the audit examples",
            "in_distribution_n": int(len(confidence)),
            "in_distribution_mean_confidence": float(confidence.mean()),
            "sets": rows,
        },
    }
