"""Measure: run random flips, DICE and PRBCD at each edge budget, and feature PGD; plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from auditkit.context import AuditContext
from auditkit_graph import attacks
from auditkit_graph.models import NodeClassifier
from auditkit_graph.probes.graph_structure.options import StructureOptions


@dataclass(frozen=True)
class StructureMeasurement:
    """Accuracy of the audited nodes on the clean graph and under each attack and budget.

    ``curve``: one dict per budget, ``{"fraction", "edges", "random", "dice", "prbcd"}``
    (accuracies; an attack that did not run is absent).
    """

    clean_accuracy: float
    curve: tuple[dict[str, Any], ...]
    attacks: tuple[str, ...]  # the baselines that ran, then "prbcd"
    headline_budget: float
    targets: int
    nodes: int = 0
    undirected_edges: int = 0
    prbcd_epochs: tuple[int, int] = (0, 0)
    feature_eps: float = 0.0
    feature_box: tuple[float, float] | None = None
    feature_steps: int = 0
    feature_pgd_accuracy: float | None = None


def measure(context: AuditContext, opts: StructureOptions) -> StructureMeasurement:
    classifier: NodeClassifier = context.adapter.model
    device = context.adapter.device
    gnn = classifier.gnn
    x = classifier.node_features.to(device)
    edge_index = classifier.edge_index.to(device)
    n = x.shape[0]
    targets = classifier.identify(context.data.x.to(device))
    target_labels = context.data.y.to(device)
    with torch.no_grad():
        predicted = classifier.graph_logits().argmax(-1)
    # Labels of every node for DICE and PRBCD: the audit labels where known, else predictions.
    labels = predicted.clone()
    labels[targets] = target_labels
    edges = int(attacks.undirected_pairs(edge_index, n).numel())

    def accuracy(graph_edges: torch.Tensor, features: torch.Tensor | None = None) -> float:
        with torch.no_grad():
            pred = gnn(x if features is None else features, graph_edges)[targets].argmax(-1)
        return float((pred == target_labels).float().mean())

    generator = context.generator("graph_structure/flips")
    fractions = tuple(sorted({*opts.budgets, opts.headline_budget}))
    fine_tune = max(1, opts.prbcd_epochs // 2)
    curve = []
    for fraction in context.progress.track(fractions, total=len(fractions), description="edge budgets"):
        budget = max(1, round(fraction * edges))
        row: dict[str, Any] = {"fraction": fraction, "edges": budget}
        if "random" in opts.baselines:
            row["random"] = accuracy(attacks.random_flips(edge_index, n, budget, generator))
        if "dice" in opts.baselines:
            row["dice"] = accuracy(attacks.dice(edge_index, labels, budget, generator))
        perturbed = attacks.prbcd(gnn, x, edge_index, labels, targets, budget,
                                  epochs=opts.prbcd_epochs, fine_tune_epochs=fine_tune)
        row["prbcd"] = accuracy(perturbed)
        curve.append(row)
    box = context.adapter.input_range
    if box is None:  # unbounded features: eps in each feature's standard deviation
        eps: Any = opts.feature_eps * x.std(dim=0, unbiased=False).clamp_min(1e-12)
    else:
        eps = opts.feature_eps * (box[1] - box[0])
    attacked = attacks.feature_pgd(gnn, x, edge_index, labels, targets, eps, box, opts.feature_steps)
    return StructureMeasurement(
        clean_accuracy=accuracy(edge_index), curve=tuple(curve), attacks=(*dict.fromkeys(opts.baselines), "prbcd"),
        headline_budget=opts.headline_budget, targets=int(len(targets)), nodes=n,
        undirected_edges=edges, prbcd_epochs=(opts.prbcd_epochs, fine_tune),
        feature_eps=opts.feature_eps, feature_box=tuple(box) if box else None,
        feature_steps=opts.feature_steps, feature_pgd_accuracy=accuracy(edge_index, attacked),
    )
