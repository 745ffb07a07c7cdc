"""Present: the corruptions probe's summary, figures and details (figures as data, in the
shapes ``auditkit.results`` documents; nothing is drawn here)."""

from __future__ import annotations

from typing import Any

from auditkit.probes.corruptions.judge import Judgement
from auditkit.probes.corruptions.measure import CorruptionsMeasurement
from auditkit.results import ProbeResult

#: Images per gallery row (the figure sits in a half-width column of the report).
GALLERY_WIDTH = 4

CE_DEFINITION = (
    "Error E = 1 − accuracy. mCE against clean = mean over corruptions of (mean error over "
    "severities) / clean error. mCE against a baseline = mean over corruptions of Σ_s E_s / "
    "Σ_s E_s(baseline); relative mCE = mean of Σ_s (E_s − E_clean) / Σ_s (E_s(baseline) − "
    "E_clean(baseline)) (Hendrycks & Dietterich 2019)."
)


def present(name: str, m: CorruptionsMeasurement, j: Judgement) -> ProbeResult:
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        headline="mean_corruption_accuracy",
        summary=summary(m, j),
        findings=j.findings,
        figures=figures(m),
        details=details(m, j),
    )


def summary(m: CorruptionsMeasurement, j: Judgement) -> str:
    if not m.accuracy:
        return "no corruption applies to this data"
    values = j.metrics
    parts = [
        f"accuracy {m.clean_accuracy:.1%} clean, {values['mean_corruption_accuracy']:.1%} "
        f"averaged over {len(m.accuracy)} corruptions × {len(m.severities)} severities "
        f"({m.n_examples} examples)",
        f"worst: {j.worst.replace('_', ' ')} ({values['worst_corruption_accuracy']:.1%})",
        f"ECE {m.clean_ece:.1%} clean → {m.ece[-1]:.1%} at severity {m.severities[-1]}",
    ]
    if values.get("mce") is not None:
        parts.append(f"mCE {values['mce']:.2f} against the baseline")
    return "; ".join(parts)


def accuracy_table(m: CorruptionsMeasurement) -> dict[str, dict[str, float]]:
    """``{corruption: {severity: accuracy}}``: what a later audit reads as its baseline."""
    return {
        c: {str(s): a for s, a in zip(m.severities, accuracies, strict=True)}
        for c, accuracies in m.accuracy.items()
    }


def details(m: CorruptionsMeasurement, j: Judgement) -> dict[str, Any]:
    return {
        "modality": m.modality,
        "n_examples": m.n_examples,
        "severities": m.severities,
        "clean_accuracy": m.clean_accuracy,
        "clean_confidence": m.clean_confidence,
        "accuracy_table": accuracy_table(m),
        "confidence_table": {
            c: {str(s): v for s, v in zip(m.severities, values, strict=True)}
            for c, values in m.confidence.items()
        },
        "by_severity": [
            {"severity": s, "accuracy": a, "mean_confidence": c, "ece": e}
            for s, a, c, e in zip(
                m.severities, m.pooled_accuracy, m.pooled_confidence, m.ece, strict=True
            )
        ],
        "levels": m.levels,
        "worst_corruption": j.worst,
        "not_run": m.not_run,
        "baseline": j.baseline_note,
        "ce_definition": CE_DEFINITION,
        "seconds": m.seconds,
        "reference": "Hendrycks & Dietterich 2019, Benchmarking Neural Network Robustness to "
        "Common Corruptions and Perturbations (ImageNet-C)",
    }


def figures(m: CorruptionsMeasurement) -> list[dict[str, Any]]:
    if not m.accuracy:
        return []
    names = list(m.accuracy)
    out: list[dict[str, Any]] = [
        {
            "kind": "matrix",
            "id": "corruption-heatmap",
            "title": "Error rate by corruption and severity",
            "x_label": "severity",
            "y_label": "corruption",
            "x_labels": [str(s) for s in m.severities],
            "y_labels": [c.replace("_", " ") for c in names],
            "values": [[round(1 - a, 4) for a in m.accuracy[c]] for c in names],
            "caption": f"Share of {m.n_examples} examples misclassified; clean error "
            f"{1 - m.clean_accuracy:.1%}. Darker is worse.",
        },
        {
            "kind": "line",
            "id": "accuracy-vs-severity",
            "title": "Accuracy against severity",
            "x_label": "severity (0 = clean)",
            "y_label": "accuracy",
            "y_range": [0, 1],
            "series": [
                {"name": c.replace("_", " "), "x": [0, *m.severities],
                 "y": [m.clean_accuracy, *m.accuracy[c]]}
                for c in names
            ]
            + [
                {"name": "ECE (all corruptions)", "x": [0, *m.severities],
                 "y": [m.clean_ece, *m.ece]}
            ],
            "caption": "One line per corruption; the ECE line shows whether confidence stays "
            "honest as inputs degrade.",
        },
        {
            "kind": "table",
            "id": "corruption-levels",
            "title": "What each severity means",
            "columns": ["corruption", "family", "level", *[f"severity {s}" for s in m.severities]],
            "rows": [
                [c, m.levels[c]["family"], m.levels[c]["meaning"], *m.levels[c]["levels"]]
                for c in names
            ],
            "caption": "Levels in the spirit of ImageNet-C, spatial ones scaled to the input's "
            "size."
            if m.modality == "image"
            else "Each numeric column is noised in its own standard deviation and kept inside "
            "its observed range.",
        },
    ]
    if m.gallery:
        cells = []
        for example in m.gallery:
            label = example["corruption"].replace("_", " ")
            cells.append(
                {
                    "label": f"{label}: {example['predicted']} ({example['probability']:.0%})",
                    **example["image"],
                }
            )
        true = m.gallery[0]["true"]
        rows = [
            {"caption": f"true class {true}" if start == 0 else "",
             "cells": cells[start : start + GALLERY_WIDTH]}
            for start in range(0, len(cells), GALLERY_WIDTH)
        ]
        out.append(
            {
                "kind": "images",
                "id": "corruption-gallery",
                "title": f"One example under each corruption at severity {m.gallery_severity}",
                "columns": [],
                "rows": rows,
                "caption": "The same example, clean and under each corruption; labels give the "
                "corruption, the predicted class and its confidence.",
            }
        )
    return out
