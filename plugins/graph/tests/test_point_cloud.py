"""point_cloud: a DGCNN is permutation invariant, an MLP over the flattened points is not."""

from __future__ import annotations

import pytest
import torch
from auditkit_graph.data import POINT_BOX, shapes
from auditkit_graph.models import DGCNN, PointMLP
from auditkit_graph.probes.point_cloud import random_rotations, rotate

import auditkit
from auditkit.adapters import TorchModelAdapter

POINTS = 32


@pytest.fixture(scope="module")
def clouds():
    return shapes(n_per_class=4, train_per_class=1, points=POINTS)


def _scan(model, data):
    torch.manual_seed(0)
    adapter = TorchModelAdapter(model, input_shape=(POINTS, 3), num_classes=5, input_range=POINT_BOX)
    result = auditkit.scan(adapter, data, probes=["point_cloud"], budget="fast",
                           options={"point_cloud": {"examples": 12}})
    return result.probes["point_cloud"]


def test_dgcnn_passes_the_permutation_check(clouds):
    torch.manual_seed(0)
    result = _scan(DGCNN(5, k=6), clouds)
    check = next(c for c in result.checks if c.name == "permutation_invariance")
    assert check.status == "passed" and result.metrics["permutation_agreement"] == 1.0
    assert result.status != "failed"
    assert result.metrics["pgd_accuracy"] <= result.metrics["clean_accuracy"]


def test_order_dependent_mlp_fails_the_permutation_check(clouds):
    torch.manual_seed(0)
    result = _scan(PointMLP(POINTS, 5), clouds)
    check = next(c for c in result.checks if c.name == "permutation_invariance")
    assert check.status == "failed" and result.status == "failed"
    assert result.metrics["permutation_agreement"] < 1.0
    assert any("order of the points" in f.title for f in result.findings)


def test_rotations_are_rotations():
    g = torch.Generator().manual_seed(0)
    for axis in ("z", "any"):
        r = random_rotations(16, g, axis=axis)
        assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(16, 3, 3), atol=1e-5)
        assert torch.allclose(torch.linalg.det(r), torch.ones(16), atol=1e-5)
    cloud = torch.randn(16, 10, 3)
    turned = rotate(cloud, random_rotations(16, g, axis="z"))
    assert torch.allclose(turned[..., 2], cloud[..., 2], atol=1e-6)  # the vertical axis stays
