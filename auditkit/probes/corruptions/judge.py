"""Judge: metrics, checks, findings and status from a ``CorruptionsMeasurement`` alone.

Pure: no model, no data. The checks ask whether the mildest severity stays near clean
accuracy, whether accuracy falls (never rises) as severity grows (a rise beyond sampling noise
is an evaluation smell: a corruption that does not do what it says, or a model that reads an
artefact), and whether confidence falls when accuracy does. The probe never fails on its own:
a policy gate (``corruptions.mean_corruption_accuracy >= 0.7``) does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from auditkit.probes.corruptions.measure import CorruptionsMeasurement
from auditkit.results import Check, Finding

#: A corruption whose mean accuracy is this far below clean gets a warning finding.
WORST_DROP = 0.10
#: Confidence should fall by at least this share of the accuracy drop at the harshest severity.
TRACKING_SHARE = 0.5
#: An accuracy drop smaller than this at the harshest severity leaves nothing to track.
TRACKING_MIN_DROP = 0.05
#: ECE at the harshest severity this far above clean ECE gets a warning finding.
ECE_RISE = 0.05

ADVICE = {
    "noise": "train with Gaussian and Poisson (shot) noise augmentation",
    "blur": "train with blur augmentation (Gaussian, disk and motion kernels)",
    "weather": "train with brightness and haze (fog-like) augmentation",
    "digital": "train with JPEG, resize and contrast augmentation",
    "table": "train on rows with noised, missing and swapped values (as they arrive in "
    "production), and impute missing values at inference exactly as during training",
}
AUGMIX = (
    "AugMix-style training (Hendrycks et al. 2020: mixtures of chained augmentations with a "
    "consistency loss) improves robustness to corruptions not seen in training"
)


@dataclass(frozen=True)
class Judgement:
    """What the measurement means: metrics, checks, findings, status, the worst corruption."""

    metrics: dict[str, float | None]
    checks: list[Check]
    findings: list[Finding]
    status: str
    worst: str | None
    baseline_note: str | None


def mean_accuracy(m: CorruptionsMeasurement) -> dict[str, float]:
    """Each corruption's accuracy averaged over the severities run."""
    return {c: float(np.mean(a)) for c, a in m.accuracy.items()}


def baseline_errors(m: CorruptionsMeasurement) -> tuple[float | None, float | None, str]:
    """mCE and relative mCE against the baseline audit, and how they were formed.

    CE_c = Σ_s E_{s,c} / Σ_s E^base_{s,c};  relative CE_c = Σ_s (E_{s,c} − E_clean) /
    Σ_s (E^base_{s,c} − E^base_clean); both averaged over the corruptions and severities the
    two audits share (a corruption whose baseline denominator is 0 is left out).
    """
    b = m.baseline
    if b is None:
        return None, None, "no baseline given (--set corruptions.baseline=audit.json)"
    ces, relative, used = [], [], []
    for c, accuracies in m.accuracy.items():
        shared = [(s, a) for s, a in zip(m.severities, accuracies, strict=True)
                  if s in b.accuracy.get(c, {})]
        if not shared:
            continue
        error = sum(1 - a for _, a in shared)
        base = sum(1 - b.accuracy[c][s] for s, _ in shared)
        if base > 0:
            ces.append(error / base)
            used.append(c)
        rel_base = sum((1 - b.accuracy[c][s]) - (1 - b.clean_accuracy) for s, _ in shared)
        if rel_base > 0:
            rel = sum((1 - a) - (1 - m.clean_accuracy) for _, a in shared)
            relative.append(rel / rel_base)
    if not ces:
        return None, None, f"the baseline {b.source} shares no corruption and severity with "\
            "this audit (or makes no errors on them)"
    note = f"against {b.source}, over {len(used)} shared corruptions: {', '.join(used)}"
    return (float(np.mean(ces)), float(np.mean(relative)) if relative else None, note)


def metrics(m: CorruptionsMeasurement) -> tuple[dict[str, float | None], str | None, str]:
    out: dict[str, float | None] = {"clean_accuracy": m.clean_accuracy}
    means = mean_accuracy(m)
    worst = min(means, key=means.get) if means else None
    out["mean_corruption_accuracy"] = float(np.mean(list(means.values()))) if means else None
    out["worst_corruption_accuracy"] = means[worst] if worst else None
    clean_error = 1 - m.clean_accuracy
    out["mce_vs_clean"] = (
        float(np.mean([1 - a for a in means.values()])) / clean_error
        if means and clean_error > 0
        else None
    )
    mce, relative, note = baseline_errors(m)
    out["mce"], out["relative_mce"] = mce, relative
    out["ece_clean"] = m.clean_ece
    for s, ece in zip(m.severities, m.ece, strict=True):
        out[f"ece_s{s}"] = ece
    for c, accuracies in m.accuracy.items():
        out[f"{c}_error"] = 1 - means[c]
        for s, a in zip(m.severities, accuracies, strict=True):
            out[f"{c}_s{s}_accuracy"] = a
    return {k: _finite(v) for k, v in out.items()}, worst, note


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def noise_tolerance(accuracy: float, n: int) -> float:
    """Two standard errors of an accuracy on ``n`` examples, and at least one example's worth."""
    p = min(max(accuracy, 0.0), 1.0)
    return 2 * math.sqrt(max(p * (1 - p), 1 / max(n, 1)) / max(n, 1)) + 1 / max(n, 1)


def checklist(m: CorruptionsMeasurement) -> list[Check]:
    checks = []
    if not m.accuracy:
        return [Check("corruptions_run", "skipped", "no corruption applies to this data")]
    mild = m.severities[0]
    low = {c: a[0] for c, a in m.accuracy.items() if a[0] < m.clean_accuracy - m.mild_tolerance}
    checks.append(
        Check(
            "mild_severity_near_clean",
            "warned" if low else "passed",
            (
                f"at severity {mild} accuracy stays within {m.mild_tolerance:.0%} of clean "
                f"({m.clean_accuracy:.1%}) under every corruption"
                if not low
                else f"at severity {mild}, the mildest, accuracy falls more than "
                f"{m.mild_tolerance:.0%} below clean ({m.clean_accuracy:.1%}) under "
                + ", ".join(f"{c} ({a:.1%})" for c, a in low.items())
            ),
            {"severity": mild, "clean_accuracy": m.clean_accuracy,
             "tolerance": m.mild_tolerance, "below": low},
        )
    )
    rises = []
    for c, accuracies in m.accuracy.items():
        for (s0, a0), (s1, a1) in zip(
            zip(m.severities, accuracies, strict=True),
            zip(m.severities[1:], accuracies[1:], strict=True),
            strict=False,
        ):
            if a1 > a0 + noise_tolerance((a0 + a1) / 2, m.n_examples):
                rises.append({"corruption": c, "from": s0, "to": s1, "accuracy": [a0, a1]})
    checks.append(
        Check(
            "monotone_in_severity",
            "warned" if rises else "passed",
            "accuracy never rises beyond sampling noise (two standard errors) as severity grows"
            if not rises
            else "accuracy rises with severity under "
            + ", ".join(f"{r['corruption']} ({r['from']}→{r['to']}: {r['accuracy'][0]:.1%}→"
                        f"{r['accuracy'][1]:.1%})" for r in rises)
            + "; a harsher corruption should not help: check the corruption's levels for this "
            "input, or whether the model reads an artefact the corruption removes",
            {"rises": rises, "n": m.n_examples},
        )
    )
    acc_drop = m.clean_accuracy - m.pooled_accuracy[-1]
    conf_drop = m.clean_confidence - m.pooled_confidence[-1]
    harsh = m.severities[-1]
    growth = None  # of over-confidence: judged only when accuracy falls enough to track
    if acc_drop < TRACKING_MIN_DROP:
        status, detail = "passed", (
            f"accuracy falls only {acc_drop:.1%} at severity {harsh}: nothing for confidence "
            "to track"
        )
    else:
        # Over-confidence (mean confidence − accuracy) may grow by at most TRACKING_SHARE of the
        # accuracy drop. A model under-confident on clean data (a random forest's averaged
        # votes) starts below zero: moving towards calibration is no fault, so its growth is
        # counted from zero, not from its clean deficit.
        clean_gap = m.clean_confidence - m.clean_accuracy
        harsh_gap = m.pooled_confidence[-1] - m.pooled_accuracy[-1]
        growth = harsh_gap - max(clean_gap, 0.0)
        tracks = growth <= (1 - TRACKING_SHARE) * acc_drop
        status = "passed" if tracks else "warned"
        under = " (under-confident: counted from 0)" if clean_gap < 0 else ""
        detail = (
            f"at severity {harsh} accuracy falls {acc_drop:.1%} and mean confidence "
            f"{conf_drop:.1%}: confidence exceeds accuracy by {harsh_gap:+.1%} "
            f"(clean {clean_gap:+.1%}{under}; ECE {m.clean_ece:.1%} → {m.ece[-1]:.1%})"
            + ("" if tracks else f"; over-confidence grew by {growth:.1%}, more than "
               f"{1 - TRACKING_SHARE:.0%} of the accuracy drop: the model stays confident on "
               "inputs it gets wrong")
        )
    checks.append(
        Check(
            "confidence_tracks_accuracy",
            status,
            detail,
            {"accuracy_drop": acc_drop, "confidence_drop": conf_drop, "severity": harsh,
             "overconfidence_growth": growth,
             "ece": dict(zip([str(s) for s in m.severities], m.ece, strict=True))},
        )
    )
    return checks


def findings(m: CorruptionsMeasurement, values: dict, worst: str | None, note: str) -> list[Finding]:
    out = []
    if worst is not None:
        drop = m.clean_accuracy - values["worst_corruption_accuracy"]
        family = m.levels[worst]["family"]
        out.append(
            Finding(
                "warning" if drop > WORST_DROP else "info",
                f"{worst.replace('_', ' ')} hurts most: accuracy {m.clean_accuracy:.1%} clean, "
                f"{values['worst_corruption_accuracy']:.1%} averaged over severities "
                f"{', '.join(map(str, m.severities))}",
                why=f"mean corruption accuracy {values['mean_corruption_accuracy']:.1%} over "
                f"{len(m.accuracy)} corruptions; inputs in production are rarely as clean as a "
                "test set",
                action=f"{ADVICE[family]}; " + (AUGMIX if m.modality == "image" else
                                                "then re-audit"),
            )
        )
    if len(m.ece) and m.ece[-1] is not None and m.ece[-1] > m.clean_ece + ECE_RISE:
        out.append(
            Finding(
                "warning",
                f"calibration breaks under shift: ECE {m.clean_ece:.1%} clean, {m.ece[-1]:.1%} "
                f"at severity {m.severities[-1]}",
                why="confidence does not fall as fast as accuracy on corrupted inputs, so "
                "thresholds on the model's confidence let corrupted errors through",
                action="temperature scaling on clean data does not fix this; train with the "
                "corruptions (or AugMix), or use an ensemble, and check confidence on shifted "
                "data before trusting it",
            )
        )
    if values.get("mce") is not None:
        worse = values["mce"] > 1
        out.append(
            Finding(
                "warning" if worse else "info",
                f"mCE {values['mce']:.2f} against the baseline"
                + (f", relative mCE {values['relative_mce']:.2f}"
                   if values.get("relative_mce") is not None else ""),
                why=f"{note}; below 1: fewer corruption errors than the baseline",
                action="compare augmentation recipes by this number, not by clean accuracy"
                if not worse else "this model is less robust to corruptions than the baseline; "
                + ADVICE[m.levels[worst]["family"]],
            )
        )
    elif m.baseline is not None:
        out.append(Finding("warning", "no mCE against the baseline", why=note,
                           action="audit the baseline with the same corruptions and severities"))
    for name, why in m.not_run.items():
        out.append(Finding("info", f"{name.replace('_', ' ')} not run", why=why))
    return out


def judge(m: CorruptionsMeasurement) -> Judgement:
    """``warned`` when a check warns or a finding is more than information, else ``passed``."""
    values, worst, note = metrics(m)
    checks = checklist(m)
    found = findings(m, values, worst, note)
    warned = any(c.status in ("warned", "failed") for c in checks) or any(
        f.severity != "info" for f in found
    )
    return Judgement(values, checks, found, "warned" if warned else "passed", worst,
                     note if m.baseline is not None else None)
