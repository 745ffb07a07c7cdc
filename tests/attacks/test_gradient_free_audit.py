"""Gradient-free robustness measurement and its checklist (``auditkit.attacks.gradient_free``)."""

from __future__ import annotations

import numpy as np
import torch

from auditkit.adapters import CallableAdapter
from auditkit.attacks.gradient_free import (
    DECISION,
    SQUARE,
    GradientFreeMeasurement,
    GradientFreePlan,
    choose_attack,
    judge,
    measure,
)


def _generators(tag: str) -> torch.Generator:
    return torch.Generator().manual_seed(sum(map(ord, tag)))


def _linear_black_box(labels_only: bool = False):
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(6, 3, generator=g)
    x = torch.randn(120, 6, generator=g) * torch.tensor([1.0, 5.0, 0.2, 1.0, 3.0, 1.0])

    def predict(batch: np.ndarray) -> np.ndarray:
        scores = torch.from_numpy(batch).float() @ weights
        if labels_only:
            return scores.argmax(1).numpy()
        return torch.softmax(scores, 1).numpy()

    adapter = CallableAdapter(predict, input_shape=(6,), num_classes=3, input_range=None)
    adapter.diagnose(x[:32])
    y = (x @ weights).argmax(1)
    return adapter, x, y


def _checks(m):
    return {c.name: c for c in judge(m)}


def test_square_on_a_table_measures_in_stds_counts_queries_and_passes_its_checks():
    adapter, x, y = _linear_black_box()
    assert choose_attack(adapter) == SQUARE
    clean = np.ones(len(x), dtype=bool)
    plan = GradientFreePlan(SQUARE, "Linf", eps=0.3, queries=300, sweep=(0.1, 0.6))
    m = measure(adapter, x, y, clean, plan, _generators)
    metrics = m.metrics()
    assert m.units == "feature standard deviations"
    assert metrics["square_accuracy"] <= metrics["noise_accuracy"] <= metrics["clean_accuracy"]
    assert metrics["robust_accuracy"] <= metrics["square_accuracy"]
    assert 1 <= metrics["square_queries_mean"] <= 300
    checks = _checks(m)
    for name in ("accuracy_decreases_with_eps", "unbounded_attack_succeeds", "converged_in_steps",
                 "attack_beats_random_noise"):
        assert checks[name].status == "passed", checks[name].detail
    for name in ("iterative_beats_single_step", "gradients_nonzero_and_finite"):
        assert checks[name].status == "skipped" and "not applicable" in checks[name].detail
    # Perturbations stay inside each feature's observed range.
    assert bool((m.adversarial >= x.amin(0) - 1e-4).all() and (m.adversarial <= x.amax(0) + 1e-4).all())


def test_a_labels_only_black_box_gets_the_decision_based_attack():
    adapter, x, y = _linear_black_box(labels_only=True)
    assert choose_attack(adapter) == DECISION
    plan = GradientFreePlan(DECISION, "L2", eps=1.0, queries=200)
    m = measure(adapter, x[:40], y[:40], np.ones(40, dtype=bool), plan, _generators)
    metrics = m.metrics()
    assert metrics["decision_accuracy"] < 1.0
    assert metrics["decision_queries_budget"] == 200


def test_more_queries_check_fails_when_half_the_budget_left_many_more_correct():
    plan = GradientFreePlan(SQUARE, "Linf", eps=0.1, queries=100)
    correct = np.array([True] * 5 + [False] * 5)
    m = GradientFreeMeasurement(
        plan=plan, n_examples=10, clean_correct=np.ones(10, dtype=bool),
        attack_correct=correct, half_budget_correct=np.ones(10, dtype=bool),
        noise_correct=np.ones(10, dtype=bool), queries=np.full(10, 100.0),
        sweep=[{"eps": 0.1, "accuracy": 0.5}], unbounded_accuracy=0.0, unbounded_eps=1.0,
    )
    checks = _checks(m)
    assert checks["converged_in_steps"].status == "failed"
    assert "more queries" in checks["converged_in_steps"].detail
    assert checks["attack_beats_random_noise"].status == "passed"


def _counting_black_box(labels_only: bool = False):
    """A linear black box that records how many rows each call asks about."""
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(6, 3, generator=g)
    x = torch.randn(96, 6, generator=g)
    sizes: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        scores = torch.from_numpy(batch).float() @ weights
        return scores.argmax(1).numpy() if labels_only else torch.softmax(scores, 1).numpy()

    adapter = CallableAdapter(predict, input_shape=(6,), num_classes=3, input_range=None)
    adapter.diagnose(x[:32])
    sizes.clear()
    return adapter, x, (x @ weights).argmax(1), sizes


def test_square_on_a_black_box_asks_once_per_iteration_for_all_examples():
    # A black box costs a fixed overhead per call (a DataFrame for a scikit-learn pipeline):
    # every unbroken example of the attacked set goes into the same call, whatever the batch.
    adapter, x, y, sizes = _counting_black_box()
    queries = 40
    plan = GradientFreePlan(SQUARE, "Linf", eps=0.05, queries=queries, batch_size=8)
    m = measure(adapter, x, y, np.ones(len(x), dtype=bool), plan, _generators, baselines=False)
    assert 1 < len(sizes) <= queries  # one call per iteration, not one per batch of 8
    assert sizes[0] == len(x)  # the random start of all 96 examples in one call
    assert sum(sizes) == m.queries.sum()  # each example's queries still counted on its own
    assert m.attack_accuracy > 0  # some examples stay unbroken and cost every query
    # The sweep's radii and the unbounded run share those calls; the noise draws take one.
    sizes.clear()
    plan = GradientFreePlan(SQUARE, "Linf", eps=0.05, queries=queries, sweep=(0.02, 0.1),
                            batch_size=8)
    swept = measure(adapter, x, y, np.ones(len(x), dtype=bool), plan, _generators)
    assert len(sizes) <= queries + 1
    assert swept.attack_accuracy == m.attack_accuracy  # the headline run is the same run


def test_hopskipjump_asks_about_all_examples_together():
    adapter, x, y, sizes = _counting_black_box(labels_only=True)
    plan = GradientFreePlan(DECISION, "L2", eps=0.05, queries=100, batch_size=8)
    m = measure(adapter, x, y, np.ones(len(x), dtype=bool), plan, _generators, baselines=False)
    assert sum(sizes) == m.queries.sum()
    # Per example a binary search asks one point at a time; together the 96 examples ask
    # many points per call.
    assert len(sizes) < m.queries.sum() / 20
