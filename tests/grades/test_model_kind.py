"""Applicability by model kind: a scikit-learn logistic regression is judged in its own terms.
No warning may arise only from the model being of a kind (it has no epochs, no gradients, no
training run to memorize with), and a check that cannot tell attack from noise, because nothing
in the ball flips a prediction, is not applicable rather than failed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import auditkit

pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression  # noqa: E402


def _separated_table(n=400, seed=0):
    """Two classes 8 standard deviations apart on the first feature: no perturbation of a small
    fraction of a standard deviation can flip any prediction (the closed-form optimum of an
    attack on a linear model is to move straight along its weights, and even that falls short)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3))
    x[:, 0] += np.where(y == 1, 4.0, -4.0)
    model = LogisticRegression().fit(x, y)
    return model, torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)


@pytest.fixture(scope="module")
def logistic_scan():
    model, x, y = _separated_table()
    return model, auditkit.scan(
        model, (x, y), budget="fast", device="cpu", options={"adversarial": {"n_examples": 60}}
    )


def test_no_flip_within_eps_makes_the_noise_check_not_applicable_and_the_probe_pass(
    logistic_scan,
):
    model, result = logistic_scan
    adversarial = result.probes["adversarial"]
    # The closed form: the smallest L∞ flip moves |w·x + b| / ‖w‖₁ (input units); every
    # correctly classified example is further away than eps (in the same units).
    checks = {c.name: c for c in adversarial.checks}
    noise = checks["attack_beats_random_noise"]
    assert adversarial.metrics["robust_accuracy"] == adversarial.metrics["clean_accuracy"]
    assert noise.status == "skipped" and noise.detail.startswith("not applicable"), noise.detail
    assert adversarial.status == "passed", [
        (c.name, c.status, c.detail) for c in adversarial.checks
    ]
    assert adversarial.details["robustness_grade"]["grade"] == "robust"


def test_a_logistic_regression_scan_raises_no_warning_that_names_epochs_or_training(
    logistic_scan,
):
    _, result = logistic_scan
    words = re.compile(r"epoch|train", re.IGNORECASE)
    warnings = [
        (name, item)
        for name, probe in result.probes.items()
        for item in (
            [f"{c.name}: {c.detail}" for c in probe.checks if c.status in ("warned", "failed")]
            + [f.title + " " + f.why for f in probe.findings if f.severity != "info"]
        )
    ]
    assert not [w for w in warnings if words.search(w[1])], warnings
    memorization = result.probes["memorization"]
    assert memorization.status == "skipped"
    assert memorization.skip_reason.startswith("not applicable to this model: applies to")
