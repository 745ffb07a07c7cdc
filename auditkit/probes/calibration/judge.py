"""Judge: metrics, checks, findings and status from a ``CalibrationMeasurement`` alone.

Pure: no model, no data. The checks ask whether the temperature could be fitted on enough
errors, whether it carries over to held-out data, and whether the evaluation split is large
enough for ECE to mean anything; the findings say what the numbers mean for the user. The
calibration probe never fails on its own: a policy gate (``calibration.ece <= 0.05``) does that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditkit.probes.calibration.measure import (
    MIN_CALIBRATION_EXAMPLES,
    CalibrationMeasurement,
    nan_to_none,
)
from auditkit.results import Check, Finding

FEW_ERRORS = 5  # a temperature resting on fewer calibration errors is rough
SMALL_EVALUATION = 100  # ECE from fewer evaluation examples is mostly sampling noise
ECE_WARNING = 0.05
OOD_WARNING = 0.9
# A temperature within noise of 1 moves held-out NLL by a fraction of a percent either way; only a
# rise beyond this (relative) says the fitted T does not carry over.
NLL_TOLERANCE = 0.01
#: z of the paired NLL change's standard error that a rise must also exceed (two-sided 95 %).
NLL_NOISE_Z = 1.96


@dataclass(frozen=True)
class Judgement:
    """What the measurement means: metrics, checks, findings, status. ``reason``: why no temperature is usable (None when one is); ``transfers``: whether the
    fitted temperature lowers held-out NLL (within ``NLL_TOLERANCE``)."""

    metrics: dict[str, float | None]
    checks: list[Check]
    findings: list[Finding]
    status: str
    reason: str | None
    transfers: bool


def judge(m: CalibrationMeasurement) -> Judgement:
    """``warned`` when a check warns or a finding is more than information, else ``passed``."""
    checks: list[Check] = []
    fit, before, after = m.fit, m.before, m.after
    reason = unusable_reason(m)
    if fit is None:
        checks.append(Check("temperature_fit", "skipped", reason, {"n": m.n_calibration}))
    else:
        few = m.calibration_errors < FEW_ERRORS
        checks.append(
            Check(
                "temperature_fit",
                "warned" if fit.at_bound or few else "passed",
                reason
                or f"T = {fit.temperature:.3g} from {fit.n} calibration examples "
                f"({m.calibration_errors} misclassified), NLL {fit.nll_before:.4f} → "
                f"{fit.nll_after:.4f}"
                + (
                    f"; T rests on fewer than {FEW_ERRORS} errors and will move with more "
                    "held-out data"
                    if few
                    else ""
                ),
                fit_values(m),
            )
        )
    transfers = False
    if after is not None:
        # T was fitted on the calibration split; only data it never saw can say whether applying
        # it helps (dividing by T > 0 keeps every arg-max, so accuracy cannot move).
        # ... and only by more than the tolerance *and* the change's own noise (paired over the
        # evaluation examples): a T fitted on a small split moves held-out NLL by chance too.
        noise = NLL_NOISE_Z * float(after.get("nll_change_se", 0.0))
        rise = after["nll"] - before["nll"]
        transfers = rise <= max(before["nll"] * NLL_TOLERANCE, noise)
        checks.append(
            Check(
                "temperature_lowers_held_out_nll",
                "passed" if transfers else "warned",
                f"NLL on the {m.n_evaluation} evaluation examples {before['nll']:.4f} → "
                f"{after['nll']:.4f} after dividing the logits by T = {fit.temperature:.3g}"
                + (f" (noise ±{noise:.4f})" if noise else "")
                + (
                    ""
                    if transfers
                    else "; the temperature fitted on the calibration split does not carry over "
                    f"to held-out data (NLL rises by more than {NLL_TOLERANCE:.0%} and more "
                    "than its noise)"
                ),
                {
                    "nll_before": before["nll"],
                    "nll_after": after["nll"],
                    "relative_tolerance": NLL_TOLERANCE,
                    "noise": noise,
                },
            )
        )
    checks.append(
        Check(
            "evaluation_size",
            "passed" if m.n_evaluation >= SMALL_EVALUATION else "warned",
            f"{m.n_evaluation} evaluation examples"
            + (
                ""
                if m.n_evaluation >= SMALL_EVALUATION
                else f"; ECE from fewer than {SMALL_EVALUATION} examples is mostly sampling noise"
            ),
            {"n": m.n_evaluation},
        )
    )
    found = findings(m, reason, transfers)
    status = (
        "warned"
        if any(c.status in ("failed", "warned") for c in checks)
        or any(f.severity != "info" for f in found)
        else "passed"
    )
    return Judgement(metrics(m), checks, found, status, reason, transfers)


def unusable_reason(m: CalibrationMeasurement) -> str | None:
    """Why no temperature can be applied (too few examples, or NLL at a bound), or None."""
    fit = m.fit
    if fit is None:
        return f"only {m.n_calibration} calibration examples (need {MIN_CALIBRATION_EXAMPLES})"
    if not fit.at_bound:
        return None
    if fit.temperature < 1:
        return (
            f"NLL on the {fit.n} calibration examples keeps falling as T → 0 "
            f"({m.calibration_errors} of them misclassified), so no temperature is identifiable"
        )
    return (
        f"NLL on the {fit.n} calibration examples keeps falling as T → ∞: the logits carry no "
        "usable confidence information"
    )


def fit_values(m: CalibrationMeasurement) -> dict[str, Any]:
    """The numbers behind a temperature fit, as the check and the details report them."""
    fit = m.fit
    return {
        "temperature": fit.temperature,
        "nll_before": fit.nll_before,
        "nll_after": fit.nll_after,
        "at_bound": fit.at_bound,
        "n": fit.n,
        "errors": m.calibration_errors,
    }


def metrics(m: CalibrationMeasurement) -> dict[str, float | None]:
    before, after = m.before, m.after
    out: dict[str, Any] = {
        key: before[key]
        for key in (
            "accuracy",
            "ece",
            "mce",
            "adaptive_ece",
            "classwise_ece",
            "brier",
            "nll",
            "mean_confidence",
        )
    }
    out.update(
        temperature=m.fit.temperature if after else None,
        ece_after_temperature=after["ece"] if after else None,
        mce_after_temperature=after["mce"] if after else None,
        nll_after_temperature=after["nll"] if after else None,
        brier_after_temperature=after["brier"] if after else None,
    )
    out["aurc"] = m.risk.aurc
    out["excess_aurc"] = m.risk.excess_aurc
    out.update(m.uncertainty["metrics"])
    out["confidence_auroc"] = m.confidence_auroc
    out["ood_auroc"] = m.ood["ood_auroc"]
    return {k: nan_to_none(v) for k, v in out.items()}


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def table_ood_finding(ood: dict) -> Finding:
    """Generated OOD rows of a table, recorded in words and not judged (``judged_ood``)."""
    aurocs = ", ".join(f"{r['name']} {r['auroc']:.2f}" for r in ood["rows"]
                       if r["auroc"] is not None)
    return Finding(
        "info",
        f"max-softmax confidence against generated table rows (not judged): AUROC {aurocs}",
        why="measured: how well the model's top-class probability ranks the audit rows above "
        "synthetic rows (each column uniform over its observed range; Gaussian with its mean "
        "and spread; columns shuffled across rows, every marginal kept). A classifier's "
        "confidence on a table is not an out-of-distribution detector by construction: a linear "
        "model is most confident far from its boundary, a tree ensemble is flat outside the "
        "range it saw, so these numbers describe the kind of model rather than this one",
        action="to judge OOD detection, pass rows the model should not trust "
        "(--set calibration.ood=PATH); that set is judged (warning below AUROC "
        f"{OOD_WARNING:.2f})",
    )


def findings(m: CalibrationMeasurement, reason: str | None, transfers: bool) -> list[Finding]:
    """What the numbers mean: miscalibration, the temperature to apply (or why not), OOD
    detection, what the uncertainty measured, and what abstaining buys."""
    fit, before, after, n_eval = m.fit, m.before, m.after, m.n_evaluation
    out = []
    gap = before["mean_confidence"] - before["accuracy"]
    if before["ece"] > ECE_WARNING and getattr(m, "decision_scores", False):
        out.append(
            Finding(
                "info",
                f"the model gives decision scores, not probabilities: their softmax is off by "
                f"{pct(before['ece'])} on average (ECE)",
                why=f"mean confidence {pct(before['mean_confidence'])} against accuracy "
                f"{pct(before['accuracy'])}; the estimator has no predict_proba, so auditkit "
                "turned its decision_function into probabilities, and a margin (hinge loss) is "
                "not fitted to be one",
                action="if you need probabilities, wrap the model in scikit-learn's "
                "CalibratedClassifierCV, or apply the temperature below",
            )
        )
    elif before["ece"] > ECE_WARNING:
        out.append(
            Finding(
                "warning",
                f"confidences are off by {pct(before['ece'])} on average (ECE): the model is "
                f"{'over' if gap > 0 else 'under'}-confident",
                why=f"mean confidence {pct(before['mean_confidence'])} against accuracy "
                f"{pct(before['accuracy'])}; downstream thresholds and risk estimates built on "
                "these probabilities will be wrong",
                action="apply the temperature below, or recalibrate on held-out data",
            )
        )
    if after is None:
        out.append(
            Finding(
                "warning",
                "temperature scaling could not be fitted",
                why=reason or "",
                action="audit on more held-out data (the calibration split is 30% of it), so that "
                "it holds enough misclassified examples to fit T",
            )
        )
    elif not transfers:
        out.append(
            Finding(
                "warning",
                f"temperature scaling with T = {fit.temperature:.3g} does not carry over to "
                "held-out data",
                why=f"T was fitted by NLL on {fit.n} calibration examples, yet on the {n_eval} "
                f"evaluation examples it raises NLL {before['nll']:.3f} → {after['nll']:.3f} "
                f"(ECE {pct(before['ece'])} → {pct(after['ece'])}): the two splits disagree "
                "about how confident the model should be",
                action="do not apply this temperature; audit on more (and more representative) "
                "held-out data before recalibrating",
            )
        )
    else:
        helped = after["ece"] < before["ece"]
        out.append(
            Finding(
                "info",
                f"temperature scaling: divide the logits by T = {fit.temperature:.3g}",
                why=f"T fitted by NLL on {fit.n} calibration examples (T "
                f"{'> 1: the model is over' if fit.temperature > 1 else '< 1: the model is under'}"
                f"-confident); on the {n_eval} evaluation examples "
                f"ECE {pct(before['ece'])} → {pct(after['ece'])}, NLL {before['nll']:.3f} → "
                f"{after['nll']:.3f}, accuracy unchanged"
                + (
                    f"; only {m.calibration_errors} calibration errors, so T is rough"
                    if m.calibration_errors < FEW_ERRORS
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
    worst = m.ood["worst"]
    if worst is not None and not m.ood.get("judged", True):
        out.append(table_ood_finding(m.ood))
    elif worst is not None:
        if worst["auroc"] < OOD_WARNING:
            out.append(
                Finding(
                    "warning",
                    f"max-softmax confidence barely separates {worst['name']} from real inputs "
                    f"(AUROC {worst['auroc']:.2f})",
                    why=f"mean confidence on that set is {pct(worst['mean_confidence'])}; "
                    "a model extrapolates with confidence far from the data it was fitted on",
                    action="do not use the softmax confidence as an OOD filter; add a dedicated "
                    "detector (energy score, Mahalanobis distance) or train with outlier "
                    "exposure",
                )
            )
        else:
            out.append(
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
    uncertainty = m.uncertainty
    if uncertainty["decomposition"] is None:
        out.append(
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
        out.append(
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
    rc = m.risk
    coverage = 0.9
    k = max(1, int(round(coverage * len(rc.risk)))) if len(rc.risk) else 0
    if k and rc.risk[-1] > 0:
        out.append(
            Finding(
                "info",
                f"abstaining on the 10% least confident examples cuts the error rate from "
                f"{pct(float(rc.risk[-1]))} to {pct(float(rc.risk[k - 1]))}",
                why=f"AURC {rc.aurc:.4f} (a perfect ranking would give {rc.optimal_aurc:.4f})",
                action="route low-confidence predictions to a human or a fallback",
            )
        )
    return out
