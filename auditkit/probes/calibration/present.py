"""Present: the calibration probe's summary, figures and details."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from auditkit.probes.calibration.judge import OOD_WARNING, Judgement, fit_values
from auditkit.probes.calibration.judge import pct as _pct
from auditkit.probes.calibration.measure import CalibrationMeasurement
from auditkit.results import ProbeResult

AURC_DEFINITION = (
    "Risk–coverage: abstain on examples in order of increasing confidence (max softmax "
    "probability). At coverage k/n the model answers only its k most confident examples and the "
    "selective risk is their error rate. AURC = (1/n) Σ_k risk(k/n), the area under this curve; "
    "lower is better. The oracle curve ranks every error below every correct prediction."
)


def present(name: str, m: CalibrationMeasurement, j: Judgement) -> ProbeResult:
    """The probe's result: metrics and checks from the judge, words and pictures from here."""
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        headline="ece",
        summary=summary(m),
        findings=j.findings,
        figures=figures(m),
        details=details(m, j),
    )


def details(m: CalibrationMeasurement, judged: Judgement) -> dict[str, Any]:
    fit, after = m.fit, m.after
    return {
        "n_bins": m.n_bins,
        "splits": {"calibration": m.n_calibration, "evaluation": m.n_evaluation},
        "temperature_fit": None
        if fit is None
        else {
            **fit_values(m),
            "usable": after is not None,
            "reason": judged.reason,
            "apply": f"probabilities = softmax(logits / {fit.temperature:.4g})"
            if after is not None
            else None,
        },
        "reliability": m.before["bins"],
        "reliability_after_temperature": after["bins"] if after else None,
        "adaptive_bins": m.before["adaptive_bins"],
        "aurc_definition": AURC_DEFINITION,
        "optimal_aurc": m.risk.optimal_aurc,
        "uncertainty": m.uncertainty["details"],
        "ood": m.ood["details"],
        "ood_auroc_rule": "minimum AUROC over the OOD sets (the set the model separates worst "
        "decides)",
        "ood_judged": m.ood.get("judged", True),
        # Read by ``auditkit diff`` to tell seed noise from a regression (calibration.noise).
        "standard_errors": m.standard_errors,
    }


def _confidence_direction(confidence: float, accuracy: float, n: int) -> str:
    """Over- or under-confident, unless the gap is within two standard errors of the accuracy
    (calling a 0.1-point gap 'under-confident' next to a fitted T > 1 only confuses)."""
    standard_error = math.sqrt(max(accuracy * (1 - accuracy), 1.0 / max(n, 1)) / max(n, 1))
    if abs(confidence - accuracy) <= 2 * standard_error:
        return "confidence matches accuracy within sampling noise"
    return "over-confident" if confidence > accuracy else "under-confident"


def summary(m: CalibrationMeasurement) -> str:
    """ECE and its direction, the temperature, OOD detection and how uncertainty was sampled."""
    before, fit, after, ood, uncertainty = m.before, m.fit, m.after, m.ood, m.uncertainty
    n_eval = m.n_evaluation
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
            f"{'s' if len(ood['rows']) > 1 else ''}: {ood['worst']['name']}"
            + ("; generated table rows, recorded, not judged)" if not ood.get("judged", True)
               else ")")
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


def figures(m: CalibrationMeasurement) -> list[dict[str, Any]]:
    """Reliability diagrams, confidence histogram, risk–coverage, OOD AUROC, uncertainty."""
    before, fit, after, rc, ood = m.before, m.fit, m.after, m.risk, m.ood
    uncertainty, n_bins = m.uncertainty, m.n_bins
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
                        "flag": ood.get("judged", True)
                        and r["auroc"] is not None
                        and r["auroc"] < OOD_WARNING,
                    }
                    for r in ood["rows"]
                ],
                "reference": 0.5,
                "y_range": [0, 1],
                "caption": "AUROC of the audit examples against each OOD set, scored by max "
                "softmax probability; 0.5 = cannot tell them apart, 1 = perfect. "
                "ood_auroc is the minimum over sets."
                + ("" if ood.get("judged", True) else " Generated table rows are recorded, not "
                   "judged: a classifier's confidence on a table is not an OOD detector by "
                   "construction; pass your own set with --set calibration.ood=PATH."),
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
