"""graph_structure: how much accuracy do a few flipped edges cost a node classifier?

Structure attacks (random flips and DICE as baselines, PRBCD as the strong attack) at several
edge budgets — fractions of the graph's undirected edges — plus a feature attack (PGD on the
audited nodes' features in the adapter's box). Accuracy is measured on the audited nodes.

Rooms as in every probe: ``measure`` runs the model and returns plain numbers; ``judge`` turns
those numbers into checks and findings (testable without a model); ``present`` draws figures.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from auditkit.errors import AuditkitInputError
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult
from auditkit_graph import attacks
from auditkit_graph._threads import one_thread
from auditkit_graph.models import NodeClassifier

ATTACKS = ("random", "dice", "prbcd")
ATTACK_NAMES = {"random": "random flips", "dice": "DICE", "prbcd": "PRBCD"}
BUDGET_PLANS = {
    "fast": {"budgets": (0.02, 0.05, 0.10), "epochs": 40, "fine_tune": 20, "pgd_steps": 10},
    "standard": {"budgets": (0.01, 0.02, 0.05, 0.10, 0.20), "epochs": 100, "fine_tune": 50,
                 "pgd_steps": 20},
    "thorough": {"budgets": (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30), "epochs": 200,
                 "fine_tune": 100, "pgd_steps": 50},
}
HEADLINE_BUDGET = 0.05
# A rise or an inversion smaller than this is sampling noise of a stochastic attack, not a defect.
MIN_TOLERANCE = 0.01


class GraphStructureProbe(Probe):
    """Random, DICE and PRBCD edge flips at several budgets, plus feature PGD."""

    name = "graph_structure"
    title = "Graph structure attacks"
    description = "How much accuracy do a few inserted or deleted edges cost the node classifier?"
    order = 35
    needs_gradients = True
    report_template: ClassVar[str | None] = "auditkit_graph:templates/graph_structure.html.j2"
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy of the audited nodes on the unperturbed graph"),
        "robust_accuracy": MetricSpec(
            "higher",
            "accuracy of the audited nodes under PRBCD flipping the headline budget of edges "
            "(option headline_budget, default 5% of the undirected edges)",
        ),
        "random_flip_accuracy": MetricSpec("higher", "accuracy under random edge flips at the headline budget"),
        "dice_accuracy": MetricSpec("higher", "accuracy under DICE at the headline budget"),
        "headline_budget_edges": MetricSpec(None, "edges the attacks may flip at the headline budget"),
        "feature_pgd_accuracy": MetricSpec(
            "higher", "accuracy when PGD perturbs every audited node's features (L∞, feature_eps)"
        ),
        "feature_eps": MetricSpec(None, "L∞ radius of the feature attack (box units, or feature stds if unbounded)"),
    }
    budget_levels = {
        level: f"edge budgets {', '.join(f'{b:.0%}' for b in plan['budgets'])}; PRBCD "
        f"{plan['epochs']}+{plan['fine_tune']} epochs; feature PGD {plan['pgd_steps']} steps"
        for level, plan in BUDGET_PLANS.items()
    }
    options = {
        "budgets": None,
        "headline_budget": HEADLINE_BUDGET,
        "attacks": ATTACKS,
        "feature_eps": 0.1,
        "epochs": None,
    }

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        c = self.config
        plan = dict(BUDGET_PLANS[budget])
        if c["budgets"] is not None:
            plan["budgets"] = tuple(_fractions(c["budgets"], "budgets"))
        (headline,) = _fractions([c["headline_budget"]], "headline_budget")
        plan["budgets"] = tuple(sorted({*plan["budgets"], headline}))
        if c["epochs"] is not None:
            if isinstance(c["epochs"], bool) or not isinstance(c["epochs"], int) or c["epochs"] < 1:
                raise AuditkitInputError(f"--set graph_structure.epochs={c['epochs']!r}: expected an integer >= 1")
            plan["epochs"], plan["fine_tune"] = c["epochs"], max(1, c["epochs"] // 2)
        chosen = (c["attacks"].split(",") if isinstance(c["attacks"], str) else list(c["attacks"]))
        unknown = [a for a in chosen if a not in ATTACKS]
        if unknown or "prbcd" not in chosen:
            raise AuditkitInputError(
                f"--set graph_structure.attacks={','.join(chosen)}: choose among "
                f"{', '.join(ATTACKS)}; prbcd (the headline attack) must be among them"
            )
        eps = c["feature_eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
            raise AuditkitInputError(f"--set graph_structure.feature_eps={eps!r}: expected a number >= 0")
        self.plan, self.headline, self.attacks, self.feature_eps = plan, headline, chosen, float(eps)

    def skip_reason(self, context) -> str | None:
        if not isinstance(getattr(context.adapter, "model", None), NodeClassifier):
            return "the model is not a node classifier on a graph (auditkit-graph's NodeClassifier)"
        return super().skip_reason(context)

    def run(self, context) -> ProbeResult:
        with one_thread():
            measured = self.measure(context)
        checks, findings = judge(measured)
        return present(self.name, measured, checks, findings)

    # ---- measure ------------------------------------------------------------------------
    def measure(self, context) -> dict[str, Any]:
        classifier: NodeClassifier = context.adapter.model
        device = context.adapter.device
        gnn = classifier.gnn
        x = classifier.node_features.to(device)
        edge_index = classifier.edge_index.to(device)
        n = x.shape[0]
        targets = classifier.identify(context.data.x.to(device))
        labels_targets = context.data.y.to(device)
        with torch.no_grad():
            clean_logits = classifier.graph_logits()
        # Labels of all nodes: the audit labels where known, the model's predictions elsewhere.
        labels = clean_logits.argmax(-1).clone()
        labels[targets] = labels_targets
        edges = int(attacks.undirected_pairs(edge_index, n).numel())

        def accuracy(ei: torch.Tensor, features: torch.Tensor | None = None) -> float:
            with torch.no_grad():
                pred = gnn(x if features is None else features, ei)[targets].argmax(-1)
            return float((pred == labels_targets).float().mean())

        generator = context.generator("graph_structure.flips")
        rows = []
        for fraction in context.progress.track(self.plan["budgets"], total=len(self.plan["budgets"]),
                                               description="edge budgets"):
            budget = max(1, round(fraction * edges))
            row = {"fraction": fraction, "edges": budget}
            if "random" in self.attacks:
                row["random"] = accuracy(attacks.random_flips(edge_index, n, budget, generator))
            if "dice" in self.attacks:
                row["dice"] = accuracy(attacks.dice(edge_index, labels, budget, generator))
            perturbed = attacks.prbcd(
                gnn, x, edge_index, labels, targets, budget,
                epochs=self.plan["epochs"], fine_tune_epochs=self.plan["fine_tune"],
            )
            row["prbcd"] = accuracy(perturbed)
            rows.append(row)
        box = context.adapter.input_range
        if box is None:  # unbounded features: eps in each feature's standard deviation
            eps: Any = self.feature_eps * x.std(dim=0, unbiased=False).clamp_min(1e-12)
        else:
            eps = self.feature_eps * (box[1] - box[0])
        feature_x = attacks.feature_pgd(gnn, x, edge_index, labels, targets, eps, box, self.plan["pgd_steps"])
        return {
            "nodes": n,
            "undirected_edges": edges,
            "targets": int(len(targets)),
            "clean_accuracy": accuracy(edge_index),
            "headline_budget": self.headline,
            "curve": rows,
            "attacks": list(self.attacks),
            "prbcd_epochs": [self.plan["epochs"], self.plan["fine_tune"]],
            "feature_eps": self.feature_eps,
            "feature_box": list(box) if box else None,
            "feature_pgd_steps": self.plan["pgd_steps"],
            "feature_pgd_accuracy": accuracy(edge_index, feature_x),
        }


def _fractions(values: Any, option: str) -> list[float]:
    if isinstance(values, str):
        values = values.split(",")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        out = []
    if not out or any(not 0 < v <= 1 for v in out):
        raise AuditkitInputError(
            f"--set graph_structure.{option}={values!r}: expected fractions of the edges in (0, 1]"
        )
    return out


# ---- judge: checks and findings from the measured numbers alone ---------------------------
def tolerance(targets: int) -> float:
    """Two audited nodes, or 1 percentage point, whichever is larger."""
    return max(2.0 / max(targets, 1), MIN_TOLERANCE)


def judge(measured: dict[str, Any]) -> tuple[list[Check], list[Finding]]:
    curve, tol = measured["curve"], tolerance(measured["targets"])
    checks = []
    if "random" in measured["attacks"]:
        gaps = [(r["fraction"], r["prbcd"] - r["random"]) for r in curve]
        worst = max(gaps, key=lambda g: g[1])
        ok = worst[1] <= tol
        checks.append(Check(
            "strong_attack_beats_random", "passed" if ok else "failed",
            "PRBCD lowers accuracy at least as much as random flips at every budget"
            if ok else f"at {worst[0]:.0%} of the edges PRBCD leaves {worst[1]:.1%} more accuracy "
            "than random flips: the attack is not converging (more epochs) or the gradients are masked",
            {"tolerance": tol, "prbcd_minus_random": {f"{f:g}": d for f, d in gaps}},
        ))
    accuracies = [measured["clean_accuracy"]] + [r["prbcd"] for r in curve]
    rises = [b - a for a, b in zip(accuracies[:-1], accuracies[1:], strict=True)]
    worst_rise = max(rises) if rises else 0.0
    ok = worst_rise <= tol
    checks.append(Check(
        "monotone_in_budget", "passed" if ok else "failed",
        "PRBCD accuracy does not rise with the edge budget" if ok else
        f"PRBCD accuracy rises by {worst_rise:.1%} with a larger budget: a larger budget contains "
        "every smaller perturbation, so the attack is under-optimized",
        {"tolerance": tol, "accuracy": accuracies},
    ))
    findings = []
    head = headline_row(measured)
    drop = measured["clean_accuracy"] - head["prbcd"]
    if drop > 0.1:
        findings.append(Finding(
            "warning" if drop < 0.3 else "critical",
            f"flipping {head['edges']} edges ({head['fraction']:.0%}) cuts accuracy from "
            f"{measured['clean_accuracy']:.1%} to {head['prbcd']:.1%} (PRBCD)",
            why="whoever can add or remove a few links (fake accounts, spam links) controls the "
            "predictions of the nodes around them",
            action="consider robust aggregation (e.g. GNNGuard, soft-median), adversarial "
            "training on structure, or limit who can create edges",
        ))
    feature_drop = measured["clean_accuracy"] - measured["feature_pgd_accuracy"]
    if feature_drop > 0.1:
        findings.append(Finding(
            "warning",
            f"perturbing node features by {measured['feature_eps']:g} (L∞) cuts accuracy to "
            f"{measured['feature_pgd_accuracy']:.1%}",
            why="node features are often user-controlled (profiles, text)",
            action="bound or validate features; train with feature perturbations",
        ))
    return checks, findings


def headline_row(measured: dict[str, Any]) -> dict[str, Any]:
    return min(measured["curve"], key=lambda r: abs(r["fraction"] - measured["headline_budget"]))


# ---- present ------------------------------------------------------------------------------
def present(name: str, measured: dict[str, Any], checks: list[Check], findings: list[Finding]) -> ProbeResult:
    head = headline_row(measured)
    metrics = {
        "clean_accuracy": measured["clean_accuracy"],
        "robust_accuracy": head["prbcd"],
        "random_flip_accuracy": head.get("random"),
        "dice_accuracy": head.get("dice"),
        "headline_budget_edges": head["edges"],
        "feature_pgd_accuracy": measured["feature_pgd_accuracy"],
        "feature_eps": measured["feature_eps"],
    }
    fractions = [0.0] + [r["fraction"] for r in measured["curve"]]
    series = [
        {"name": ATTACK_NAMES[a], "x": fractions,
         "y": [measured["clean_accuracy"]] + [r[a] for r in measured["curve"]]}
        for a in measured["attacks"]
    ]
    figure = {
        "kind": "line", "id": "accuracy-vs-edge-budget",
        "title": "Accuracy of the audited nodes vs. fraction of edges flipped",
        "x_label": "edge budget (fraction of undirected edges)", "y_label": "accuracy",
        "series": series, "y_range": [0, 1],
        "caption": f"{measured['undirected_edges']} undirected edges, {measured['targets']} audited "
        f"nodes; headline budget {head['fraction']:.0%} ({head['edges']} edges)",
    }
    status = "warned" if any(c.status == "failed" for c in checks) else "passed"
    return ProbeResult(
        name=name, status=status, metrics=metrics, checks=checks, findings=findings,
        headline="robust_accuracy",
        summary=f"PRBCD flipping {head['edges']} edges ({head['fraction']:.0%}) takes accuracy from "
        f"{measured['clean_accuracy']:.1%} to {head['prbcd']:.1%}"
        + (f" (random flips: {head['random']:.1%})" if "random" in head else ""),
        figures=[figure], details=measured,
    )
