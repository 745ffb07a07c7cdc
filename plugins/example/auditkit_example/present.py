"""Present: the sentence for the scorecard, a figure described as data, the details."""

from __future__ import annotations

from typing import Any

from auditkit.results import Check, Finding, ProbeResult
from auditkit_example.measure import NoiseMeasurement


def present(name: str, m: NoiseMeasurement, metrics: dict[str, float | None],
            found: list[Check], findings: list[Finding], status: str) -> ProbeResult:
    return ProbeResult(
        name=name,
        status=status,
        metrics=metrics,
        checks=found,
        headline="noise_accuracy",
        summary=(f"Gaussian noise of {m.headline_sigma:g} box widths moves accuracy from "
                 f"{m.clean_accuracy:.1%} to {metrics['noise_accuracy']:.1%} "
                 f"({m.n_examples} examples)"),
        findings=findings,
        figures=[_curve(m)],
        details={"curve": [{"sigma": s, "accuracy": a}
                           for s, a in zip(m.sigmas, m.accuracies, strict=True)]},
    )


def _curve(m: NoiseMeasurement) -> dict[str, Any]:
    # Figures are data: the report draws them (inline SVG); a probe never draws anything.
    return {
        "kind": "line",
        "id": "noise-robustness-curve",
        "title": "Accuracy under random Gaussian noise",
        "x_label": "noise std (box widths)",
        "y_label": "accuracy",
        "series": [{"name": "accuracy", "x": list(m.sigmas), "y": list(m.accuracies)}],
        "y_range": [0, 1],
        "caption": "each point averages several noisy copies of the same examples",
    }
