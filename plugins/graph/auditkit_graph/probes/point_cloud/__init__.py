"""point_cloud: permutation invariance, rotations and point-perturbation attacks."""

from auditkit_graph.probes.point_cloud.measure import (
    PointCloudMeasurement,
    measure,
    random_rotations,
    rotate,
)
from auditkit_graph.probes.point_cloud.options import PointCloudOptions
from auditkit_graph.probes.point_cloud.probe import PointCloudProbe

__all__ = ["PointCloudMeasurement", "PointCloudOptions", "PointCloudProbe", "measure",
           "random_rotations", "rotate"]
