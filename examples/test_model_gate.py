"""Example: gate a model in your own pytest suite.

Run with ``pytest examples/test_model_gate.py``. Point AUDITKIT_MODEL at your model file; by
default the example trains auditkit's demo CNN on the bundled digits so it runs anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import auditkit
from auditkit.testing import assert_audit

POLICY = {
    "gates": {
        "performance.accuracy": ">= 0.95",
        "performance.worst_class_accuracy": ">= 0.85",
    }
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    if os.environ.get("AUDITKIT_MODEL"):
        return Path(os.environ["AUDITKIT_MODEL"])
    from auditkit.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("model") / "digits-cnn.pt2")


def test_model_meets_the_policy(model_path):
    result = auditkit.scan(model_path, probes=["performance"], budget="fast", policy=POLICY)
    assert_audit(result)  # on failure: every failed gate with its value and rule


def test_a_stricter_policy_fails_with_the_numbers(model_path):
    result = auditkit.scan(
        model_path, probes=["performance"], budget="fast",
        policy={"gates": {"performance.accuracy": ">= 0.9999"}},
    )
    with pytest.raises(AssertionError, match=r"performance\.accuracy"):
        assert_audit(result)
