"""Present: summary sentence, the accuracy-vs-budget curve as data, details."""

from __future__ import annotations

import dataclasses

from auditkit.results import Check, Finding, ProbeResult
from auditkit_graph.probes.graph_structure.judge import headline_row
from auditkit_graph.probes.graph_structure.measure import StructureMeasurement

ATTACK_NAMES = {"random": "random flips", "dice": "DICE", "prbcd": "PRBCD"}


def present(name: str, m: StructureMeasurement, metrics: dict[str, float | None],
            found: list[Check], findings: list[Finding], status: str) -> ProbeResult:
    head = headline_row(m)
    fractions = [0.0] + [r["fraction"] for r in m.curve]
    figure = {
        "kind": "line", "id": "accuracy-vs-edge-budget",
        "title": "Accuracy of the audited nodes vs. fraction of edges flipped",
        "x_label": "edge budget (fraction of undirected edges)", "y_label": "accuracy",
        "series": [{"name": ATTACK_NAMES[a], "x": fractions,
                    "y": [m.clean_accuracy] + [r[a] for r in m.curve]} for a in m.attacks],
        "y_range": [0, 1],
        "caption": f"{m.undirected_edges} undirected edges, {m.targets} audited nodes; headline "
        f"budget {head['fraction']:.0%} ({head['edges']} edges)",
    }
    random_part = f" (random flips: {head['random']:.1%})" if "random" in head else ""
    return ProbeResult(
        name=name, status=status, metrics=metrics, checks=found, findings=findings,
        headline="robust_accuracy",
        summary=f"PRBCD flipping {head['edges']} edges ({head['fraction']:.0%}) takes accuracy "
        f"from {m.clean_accuracy:.1%} to {head['prbcd']:.1%}{random_part}",
        figures=[figure], details=dataclasses.asdict(m),
    )
