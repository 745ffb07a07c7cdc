"""Present: summary sentence, accuracy per condition as a bar figure, details."""

from __future__ import annotations

import dataclasses

from auditkit.results import Check, Finding, ProbeResult
from auditkit_graph.probes.point_cloud.measure import PointCloudMeasurement


def present(name: str, m: PointCloudMeasurement, metrics: dict[str, float | None],
            found: list[Check], findings: list[Finding], status: str) -> ProbeResult:
    invariant = m.permutation_agreement >= 1.0
    bars = [
        ("clean", m.clean_accuracy), ("vertical rotations", m.z_rotation_accuracy),
        ("3-D rotations", m.rotation_accuracy), (f"PGD ε={m.eps:g}", m.pgd_accuracy),
        ("EOT-PGD (rotations)", m.eot_accuracy),
    ]
    order = "permutation invariant" if invariant else (
        f"NOT permutation invariant ({1 - m.permutation_agreement:.0%} of shuffles change the answer)"
    )
    return ProbeResult(
        name=name, status=status, metrics=metrics, checks=found, findings=findings,
        headline="permutation_agreement",
        summary=f"{order}; accuracy {m.clean_accuracy:.1%} clean, {m.rotation_accuracy:.1%} under "
        f"3-D rotations, {m.pgd_accuracy:.1%} under PGD ε={m.eps:g}",
        figures=[{
            "kind": "bar", "id": "point-cloud-accuracy", "title": "Accuracy under each transformation",
            "x_label": "condition", "y_label": "accuracy", "y_range": [0, 1],
            "bars": [{"label": label, "value": value} for label, value in bars],
        }],
        details=dataclasses.asdict(m),
    )
