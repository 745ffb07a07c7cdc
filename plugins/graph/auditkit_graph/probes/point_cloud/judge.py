"""Judge: metrics, checks, findings and status from a PointCloudMeasurement alone (no model)."""

from __future__ import annotations

from auditkit.results import Check, Finding
from auditkit_graph.probes.point_cloud.measure import PointCloudMeasurement

METRICS = ("clean_accuracy", "permutation_agreement", "max_permutation_logit_change",
           "z_rotation_accuracy", "rotation_accuracy", "pgd_accuracy", "eot_accuracy", "eps")


def metrics(m: PointCloudMeasurement) -> dict[str, float | None]:
    return {key: getattr(m, key) for key in METRICS}


def checks(m: PointCloudMeasurement) -> list[Check]:
    invariant = m.permutation_agreement >= 1.0
    return [
        Check(
            "permutation_invariance", "passed" if invariant else "failed",
            f"shuffling the points never changed a prediction ({m.permutations} shuffles × "
            f"{m.examples} clouds; max |Δ logit| {m.max_permutation_logit_change:.2g})"
            if invariant else
            f"shuffling the points changed {1 - m.permutation_agreement:.1%} of the predictions: "
            "the model reads the order the points are stored in",
            {"agreement": m.permutation_agreement, "max_logit_change": m.max_permutation_logit_change},
        ),
        Check(
            "attack_below_clean", "passed" if m.pgd_accuracy <= m.clean_accuracy else "failed",
            f"PGD accuracy {m.pgd_accuracy:.1%} ≤ clean {m.clean_accuracy:.1%}",
            {"pgd": m.pgd_accuracy, "clean": m.clean_accuracy},
        ),
    ]


def findings(m: PointCloudMeasurement) -> list[Finding]:
    out = []
    if m.permutation_agreement < 1.0:
        out.append(Finding(
            "critical", "the prediction depends on the order of the points",
            why="point clouds from scanners and meshes come in arbitrary order; the same object "
            "gets different answers",
            action="use a permutation-invariant architecture (shared per-point layers and a "
            "symmetric pooling such as max, as in PointNet/DGCNN)",
        ))
    if m.clean_accuracy - m.rotation_accuracy > 0.2:
        out.append(Finding(
            "warning",
            f"random 3-D rotations cut accuracy from {m.clean_accuracy:.1%} to {m.rotation_accuracy:.1%}",
            why="objects seen in another pose are misclassified",
            action="augment training with rotations, or canonicalize the pose before classifying",
        ))
    return out


def status(found: list[Check]) -> str:
    """Order dependence is a defect of the model (failed); a broken attack is a warning."""
    by_name = {c.name: c.status for c in found}
    if by_name.get("permutation_invariance") == "failed":
        return "failed"
    return "warned" if "failed" in by_name.values() else "passed"
