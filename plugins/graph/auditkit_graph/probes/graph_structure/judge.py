"""Judge: metrics, checks, findings and status from a StructureMeasurement alone (no model)."""

from __future__ import annotations

from typing import Any

from auditkit.results import Check, Finding
from auditkit_graph.probes.graph_structure.measure import StructureMeasurement

# A rise or an inversion smaller than this is sampling noise of a stochastic attack, not a defect.
MIN_TOLERANCE = 0.01


def tolerance(targets: int) -> float:
    """Two audited nodes' worth of accuracy, or 1 percentage point, whichever is larger."""
    return max(2.0 / max(targets, 1), MIN_TOLERANCE)


def headline_row(m: StructureMeasurement) -> dict[str, Any]:
    return min(m.curve, key=lambda r: abs(r["fraction"] - m.headline_budget))


def metrics(m: StructureMeasurement) -> dict[str, float | None]:
    head = headline_row(m)
    return {
        "clean_accuracy": m.clean_accuracy,
        "robust_accuracy": head["prbcd"],
        "random_flip_accuracy": head.get("random"),
        "dice_accuracy": head.get("dice"),
        "headline_budget_edges": head["edges"],
        "feature_pgd_accuracy": m.feature_pgd_accuracy,
        "feature_eps": m.feature_eps,
    }


def checks(m: StructureMeasurement) -> list[Check]:
    tol = tolerance(m.targets)
    found = []
    if "random" in m.attacks:
        gaps = [(r["fraction"], r["prbcd"] - r["random"]) for r in m.curve]
        fraction, gap = max(gaps, key=lambda g: g[1])
        ok = gap <= tol
        found.append(Check(
            "strong_attack_beats_random", "passed" if ok else "failed",
            "PRBCD lowers accuracy at least as much as random flips at every budget" if ok else
            f"at {fraction:.0%} of the edges PRBCD leaves {gap:.1%} more accuracy than random "
            "flips: the attack is not converging (raise prbcd_epochs) or its gradients are masked",
            {"tolerance": tol, "prbcd_minus_random": {f"{f:g}": d for f, d in gaps}},
        ))
    else:
        found.append(Check("strong_attack_beats_random", "skipped",
                           "not applicable: random flips were not run (option baselines)"))
    accuracies = [m.clean_accuracy] + [r["prbcd"] for r in m.curve]
    rise = max((b - a for a, b in zip(accuracies[:-1], accuracies[1:], strict=True)), default=0.0)
    ok = rise <= tol
    found.append(Check(
        "monotone_in_budget", "passed" if ok else "failed",
        "PRBCD accuracy does not rise with the edge budget" if ok else
        f"PRBCD accuracy rises by {rise:.1%} with a larger budget: a larger budget contains every "
        "smaller perturbation, so the attack is under-optimized (raise prbcd_epochs)",
        {"tolerance": tol, "accuracy": accuracies},
    ))
    return found


def findings(m: StructureMeasurement) -> list[Finding]:
    out = []
    head = headline_row(m)
    drop = m.clean_accuracy - head["prbcd"]
    if drop > 0.1:
        out.append(Finding(
            "warning" if drop < 0.3 else "critical",
            f"flipping {head['edges']} edges ({head['fraction']:.0%}) cuts accuracy from "
            f"{m.clean_accuracy:.1%} to {head['prbcd']:.1%} (PRBCD)",
            why="whoever can add or remove a few links (fake accounts, spam links) steers the "
            "predictions of the nodes around them",
            action="consider robust aggregation (e.g. GNNGuard, soft-median), adversarial "
            "training on the structure, or limit who can create edges",
        ))
    if m.feature_pgd_accuracy is not None and m.clean_accuracy - m.feature_pgd_accuracy > 0.1:
        out.append(Finding(
            "warning",
            f"perturbing every audited node's features by {m.feature_eps:g} (L∞) cuts accuracy "
            f"to {m.feature_pgd_accuracy:.1%}",
            why="node features are often user-controlled (profiles, text)",
            action="bound or validate features; train with feature perturbations",
        ))
    return out


def status(found: list[Check]) -> str:
    # A failed check says the attack numbers cannot be trusted, not that the model is bad.
    return "warned" if any(c.status == "failed" for c in found) else "passed"
