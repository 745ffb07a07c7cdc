"""Accuracy against chance: the Wilson interval decides, not the point estimate."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import binomtest

from auditkit.functional.classification import compare_to_chance, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (30, 256), (51, 100), (999, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((reference.low, reference.high), abs=1e-9)


def _predictions(n: int, k: int, correct: int):
    y = torch.arange(n) % k
    pred = y.clone()
    pred[correct:] = (pred[correct:] + 1) % k
    return y, pred


def test_untrained_level_accuracy_is_at_chance_even_on_many_examples():
    # An untrained 10-class network's 11.7%: statistically above 10% on 10,000 examples, but
    # the whole interval is barely above guessing.
    y, pred = _predictions(10_000, 10, 1_170)
    result = compare_to_chance(y, pred, 10)
    assert result.low > 0.10 and result.verdict == "at"
    assert compare_to_chance(*_predictions(256, 10, 30), 10).verdict == "at"


def test_one_point_above_chance_on_a_small_set_is_undecided_not_at_chance():
    result = compare_to_chance(*_predictions(100, 2, 51), 2)
    assert result.verdict == "undecided" and result.low < 0.5 < result.high


def test_majority_class_rate_is_the_bar_for_imbalanced_labels():
    y = torch.tensor([0] * 9_000 + [1] * 1_000)
    always_majority = torch.zeros(10_000, dtype=torch.long)
    result = compare_to_chance(y, always_majority, 2)
    assert result.chance == pytest.approx(0.9) and result.accuracy == pytest.approx(0.9)
    assert result.verdict == "at"
    assert compare_to_chance(y, y.clone(), 2).verdict == "above"


def test_confusion_matrix_gives_the_same_answer():
    from auditkit.functional.classification import confusion_matrix, matrix_vs_chance

    y, pred = _predictions(256, 10, 30)
    assert matrix_vs_chance(confusion_matrix(y, pred, 10)) == compare_to_chance(y, pred, 10)
