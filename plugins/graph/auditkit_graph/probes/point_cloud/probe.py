"""The point_cloud probe: declarations, and ``run`` wiring measure → judge → present."""

from __future__ import annotations

from typing import ClassVar

from auditkit.context import AuditContext
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import ProbeResult
from auditkit_graph._threads import one_thread
from auditkit_graph.probes.point_cloud import judge
from auditkit_graph.probes.point_cloud.measure import measure
from auditkit_graph.probes.point_cloud.options import PointCloudOptions
from auditkit_graph.probes.point_cloud.present import present


class PointCloudProbe(Probe):
    """Permutation invariance, rotations and point-perturbation attacks for (points, 3) inputs.

    - A point cloud is an unordered set: shuffling its points must not change the prediction.
      Failing that is a defect of the model, so the probe fails.
    - Rotations: accuracy under random rotations about the vertical axis and uniform 3-D ones.
    - L∞ PGD on the coordinates, and EOT-PGD over vertical rotations (Athalye et al. 2018),
      judged by the prediction expected under freshly drawn rotations.
    """

    name = "point_cloud"
    title = "Point-cloud invariances and attacks"
    description = "Does shuffling, rotating or nudging the points change the prediction?"
    order = 36
    needs_gradients = True
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the evaluated clouds, points as given"),
        "permutation_agreement": MetricSpec(
            "higher", "fraction of (cloud, shuffle) pairs whose prediction equals the unshuffled one (1 = invariant)"
        ),
        "max_permutation_logit_change": MetricSpec("lower", "largest |Δ logit| caused by shuffling the points"),
        "z_rotation_accuracy": MetricSpec("higher", "mean accuracy under random rotations about the vertical axis"),
        "rotation_accuracy": MetricSpec("higher", "mean accuracy under uniformly random 3-D rotations"),
        "pgd_accuracy": MetricSpec("higher", "accuracy under L∞ PGD moving every point at most eps"),
        "eot_accuracy": MetricSpec(
            "higher", "accuracy under EOT-PGD over vertical-axis rotations, judged under fresh rotations"
        ),
        "eps": MetricSpec(None, "L∞ radius of the point attacks, in coordinate units"),
    }
    budget_levels = {
        "fast": "100 clouds, 3 shuffles, 8 rotations, PGD 10 steps, EOT 4 rotations per step",
        "standard": "500 clouds, 5 shuffles, 16 rotations, PGD 20 steps, EOT 8 rotations per step",
        "thorough": "5,000 clouds, 10 shuffles, 32 rotations, PGD 50 steps, EOT 16 rotations per step",
    }
    Options: ClassVar[type] = PointCloudOptions
    opts: PointCloudOptions
    report_template = "auditkit_graph:templates/point_cloud.html.j2"

    def not_applicable(self, context: AuditContext) -> str | None:
        shape = tuple(context.adapter.input_shape)
        if len(shape) != 2 or shape[1] != 3:
            return "point clouds"  # examples of shape (points, 3)
        return None

    def run(self, context: AuditContext) -> ProbeResult:
        with one_thread():  # tiny kernels: see auditkit_graph._threads
            measured = measure(context, self.opts)
        found = judge.checks(measured)
        return present(self.name, measured, judge.metrics(measured), found,
                       judge.findings(measured), judge.status(found))
