"""Present: the performance probe's summary, figures and details."""

from __future__ import annotations

from typing import Any

from auditkit.probes.performance.judge import Judgement
from auditkit.probes.performance.measure import PerformanceMeasurement
from auditkit.results import ProbeResult


def present(name: str, m: PerformanceMeasurement, j: Judgement) -> ProbeResult:
    """The probe's result: metrics and checks from the judge, words and pictures from here."""
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        headline="accuracy",
        summary=summary(m, j.metrics),
        findings=j.findings,
        figures=figures(m),
        details=details(m),
    )


def summary(m: PerformanceMeasurement, metrics: dict[str, Any]) -> str:
    return (
        f"{m.accuracy:.1%} accuracy on {m.n} audit examples "
        f"(balanced {metrics['balanced_accuracy']:.1%})"
    )


def figures(m: PerformanceMeasurement) -> list[dict[str, Any]]:
    """Accuracy per class (present classes) against the average, and the confusion matrix."""
    recall, names = m.recall, m.class_names
    return [
        {
            "kind": "bar",
            "id": "per-class-accuracy",
            "title": "Accuracy per class",
            "x_label": "class",
            "y_label": "accuracy",
            "bars": [
                {"label": names[i], "value": float(recall[i]), "count": int(m.matrix[i].sum())}
                for i in m.present
            ],
            "reference": m.accuracy,
            "y_range": [0, 1],
        },
        {
            "kind": "matrix",
            "id": "confusion-matrix",
            "title": "Confusion matrix (rows: true class, columns: predicted)",
            "labels": names,
            "values": m.matrix.tolist(),
            "x_label": "predicted",
            "y_label": "true",
        },
    ]


def details(m: PerformanceMeasurement) -> dict[str, Any]:
    recall, names = m.recall, m.class_names
    return {
        "per_class": [
            {"class": names[i], "accuracy": float(recall[i]), "count": int(m.matrix[i].sum())}
            for i in range(len(m.matrix))
        ],
        "confusion_matrix": m.matrix.tolist(),
    }
