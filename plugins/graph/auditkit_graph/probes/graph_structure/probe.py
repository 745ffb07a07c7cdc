"""The graph_structure probe: declarations, and ``run`` wiring measure → judge → present."""

from __future__ import annotations

from typing import ClassVar

from auditkit.context import AuditContext
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import ProbeResult
from auditkit_graph._threads import one_thread
from auditkit_graph.models import NodeClassifier
from auditkit_graph.probes.graph_structure import judge
from auditkit_graph.probes.graph_structure.measure import measure
from auditkit_graph.probes.graph_structure.options import StructureOptions
from auditkit_graph.probes.graph_structure.present import present


class GraphStructureProbe(Probe):
    """Random flips, DICE and PRBCD (Geisler et al. 2021) at several edge budgets; feature PGD.

    Threat model: at most ``budget`` undirected edges anywhere in the graph are inserted or
    deleted (evasion: the trained model is fixed); accuracy is measured on the audited nodes.
    """

    name = "graph_structure"
    title = "Graph structure attacks"
    description = "How much accuracy do a few inserted or deleted edges cost the node classifier?"
    order = 35
    needs_gradients = True
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy of the audited nodes on the unperturbed graph"),
        "robust_accuracy": MetricSpec(
            "higher", "accuracy of the audited nodes under PRBCD flipping the headline budget of "
            "edges (option headline_budget, default 5% of the undirected edges)",
        ),
        "random_flip_accuracy": MetricSpec("higher", "accuracy under random edge flips at the headline budget"),
        "dice_accuracy": MetricSpec("higher", "accuracy under DICE at the headline budget"),
        "headline_budget_edges": MetricSpec(None, "edges the attacks may flip at the headline budget"),
        "feature_pgd_accuracy": MetricSpec(
            "higher", "accuracy when PGD perturbs every audited node's features (L∞, feature_eps)"
        ),
        "feature_eps": MetricSpec(None, "L∞ radius of the feature attack (box widths, or feature stds if unbounded)"),
    }
    budget_levels = {
        "fast": "edge budgets 2%, 5%, 10%; PRBCD 40+20 epochs; feature PGD 10 steps",
        "standard": "edge budgets 1%–20% (5 levels); PRBCD 100+50 epochs; feature PGD 20 steps",
        "thorough": "edge budgets 1%–30% (7 levels); PRBCD 200+100 epochs; feature PGD 50 steps",
    }
    Options: ClassVar[type] = StructureOptions
    opts: StructureOptions
    report_template = "auditkit_graph:templates/graph_structure.html.j2"

    def not_applicable(self, context: AuditContext) -> str | None:
        if not isinstance(getattr(context.adapter, "model", None), NodeClassifier):
            return "node classifiers"  # auditkit-graph's NodeClassifier on a graph
        return None

    def run(self, context: AuditContext) -> ProbeResult:
        with one_thread():  # tiny kernels: see auditkit_graph._threads
            measured = measure(context, self.opts)
        found = judge.checks(measured)
        return present(self.name, measured, judge.metrics(measured), found,
                       judge.findings(measured), judge.status(found))
