"""The performance judge on hand-written measurements: a confusion matrix and the adapter's
diagnostics, no model."""

from __future__ import annotations

import pytest

from auditkit.adapters.base import Diagnostics
from auditkit.probes.performance.judge import judge
from auditkit.probes.performance.measure import PerformanceMeasurement

# 3 classes, 100 examples each; class 2 is recognised half the time.
MATRIX = [[95, 3, 2], [2, 96, 2], [30, 20, 50]]


def _measurement(matrix=MATRIX, *, gradients=True, **diagnostics) -> PerformanceMeasurement:
    total = sum(map(sum, matrix))
    right = sum(matrix[i][i] for i in range(len(matrix)))
    return PerformanceMeasurement(
        accuracy=right / total,
        matrix=matrix,
        class_names=["cat", "dog", "bird"],
        diagnostics=Diagnostics(**diagnostics),
        supports_gradients=gradients,
    )


def _checks(judged) -> dict[str, str]:
    return {c.name: c.status for c in judged.checks}


def test_metrics_come_from_the_matrix_and_the_weak_class_is_named():
    judged = judge(_measurement())
    assert judged.metrics["accuracy"] == pytest.approx(241 / 300)
    assert judged.metrics["balanced_accuracy"] == pytest.approx((0.95 + 0.96 + 0.50) / 3)
    assert judged.metrics["worst_class_accuracy"] == pytest.approx(0.50)
    (finding,) = judged.findings
    assert finding.severity == "warning" and finding.title.startswith("class bird")
    assert judged.status == "passed"  # accuracy is judged by gates, not by the probe


def test_even_classes_give_no_finding():
    judged = judge(_measurement([[90, 10], [12, 88]]))
    assert judged.findings == [] and judged.status == "passed"


def test_softmax_inside_a_differentiable_model_fails_its_check_and_warns_the_probe():
    judged = judge(_measurement(output_kind="probabilities"))
    assert _checks(judged)["outputs_are_logits"] == "failed" and judged.status == "warned"
    # A black box declared to return probabilities is following its contract.
    black_box = judge(_measurement(output_kind="probabilities", gradients=False))
    assert _checks(black_box)["outputs_are_logits"] == "passed" and black_box.status == "passed"


def test_masked_gradients_fail_the_gradient_check():
    judged = judge(_measurement(gradient_finite=True, gradient_nonzero_fraction=0.4))
    assert _checks(judged)["input_gradients_usable"] == "failed" and judged.status == "warned"
    healthy = judge(_measurement(gradient_finite=True, gradient_nonzero_fraction=1.0))
    assert _checks(healthy)["input_gradients_usable"] == "passed"
    unmeasured = judge(_measurement())
    assert "input_gradients_usable" not in _checks(unmeasured)


def test_a_random_forward_pass_warns_its_check_only():
    judged = judge(_measurement(stochastic=True, stochastic_max_diff=0.3))
    assert _checks(judged)["deterministic_forward"] == "warned"
    assert "EOT" in next(c.detail for c in judged.checks if c.name == "deterministic_forward")
    assert judged.status == "passed"


def _at(correct: int, n: int, k: int) -> list[list[int]]:
    """A k-class confusion matrix with ``n`` examples spread evenly and ``correct`` right; the
    wrong answers spread over the other classes (as an untrained network's do: no other class
    order explains them)."""
    matrix = [[0] * k for _ in range(k)]
    per_class = n // k
    right = [correct // k + (1 if i < correct % k else 0) for i in range(k)]
    for i in range(k):
        matrix[i][i] = right[i]
        for w in range(per_class - right[i]):
            matrix[i][(i + 1 + w % (k - 1)) % k] += 1
    return matrix


def test_an_untrained_level_model_fails_with_a_finding_that_says_so():
    # 10 classes, 11.7% right (an untrained network's level): not clearly above chance.
    judged = judge(_measurement(_at(117, 1000, 10)))
    check = next(c for c in judged.checks if c.name == "above_chance")
    assert judged.status == "failed" and check.status == "failed"
    assert check.values["chance"] == pytest.approx(0.1) and check.values["high"] < 0.19
    assert "not clearly above chance" in check.detail
    (finding,) = [f for f in judged.findings if f.severity == "critical"]
    assert "not clearly above chance" in finding.title


def test_one_point_above_chance_on_a_small_set_is_not_failed():
    # Binary, 100 examples, 51 right: the interval (41%-61%) cannot tell, so it warns.
    judged = judge(_measurement([[26, 24], [25, 25]]))
    check = next(c for c in judged.checks if c.name == "above_chance")
    assert check.status == "warned" and judged.status == "warned"
    assert check.values["low"] < 0.5 < check.values["high"]
    # The same 1 point above chance on 100,000 examples is decided: at chance.
    assert judge(_measurement([[25_500, 24_500], [24_500, 25_500]])).status == "failed"
