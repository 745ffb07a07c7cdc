"""Calibration judged in the model's own terms on a table: generated OOD rows are recorded in
words, not judged (the user's own set is), and a margin classifier's scores are not probabilities.

A logistic regression is by construction most confident far from its boundary, so uniform noise
over each column's range gets *higher* confidence than real rows (AUROC well below 0.5) on every
linear model: a warning there would come from the model's kind, not from this model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import auditkit

pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402


def _table(n=600, seed=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3))
    x[:, 0] += np.where(y == 1, 1.0, -1.0)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)


def _calibration(model, x, y, **options):
    result = auditkit.scan(
        model,
        (x, y),
        budget="fast",
        device="cpu",
        probes=["calibration"],
        options={"calibration": options} if options else None,
    )
    return result.probes["calibration"]


def test_generated_table_rows_are_recorded_not_judged():
    x, y = _table()
    model = LogisticRegression().fit(x.numpy(), y.numpy())
    calibration = _calibration(model, x, y)
    assert calibration.metrics["ood_auroc"] < 0.5  # the kind: more confident on noise
    assert calibration.details["ood_judged"] is False
    assert not [f.title for f in calibration.findings if f.severity == "warning"]
    assert calibration.status == "passed"
    (recorded,) = [f for f in calibration.findings if "generated table rows" in f.title]
    assert "not judged" in recorded.title and "shuffled" in recorded.why
    assert "calibration.ood" in recorded.action


def test_the_users_own_ood_rows_are_judged(tmp_path):
    x, y = _table()
    model = LogisticRegression().fit(x.numpy(), y.numpy())
    far = np.random.default_rng(0).uniform(-6, 6, size=(200, 3)).astype(np.float32)
    path = tmp_path / "far.npz"
    np.savez(path, x=far, y=np.zeros(200, dtype=np.int64))
    calibration = _calibration(model, x, y, ood=str(path))
    assert calibration.details["ood_judged"] is True
    assert any(
        "barely separates" in f.title for f in calibration.findings if f.severity == "warning"
    )
    assert calibration.status == "warned"


def test_a_linear_svm_decision_score_miscalibration_is_information_not_a_warning():
    """LinearSVC has no probabilities: the softmax of its margins is auditkit's construction,
    so an ECE far from zero describes the kind (hinge loss), not a fault of this model."""
    from sklearn.svm import LinearSVC

    x, y = _table()
    model = LinearSVC().fit(x.numpy(), y.numpy())
    calibration = _calibration(model, x, y)
    assert calibration.metrics["ece"] > 0.05  # the margins are not probabilities
    (scores,) = [f for f in calibration.findings if "decision scores" in f.title]
    assert scores.severity == "info" and "CalibratedClassifierCV" in scores.action
    assert calibration.status == "passed", [f.title for f in calibration.findings]
