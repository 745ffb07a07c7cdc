"""Vectorized bootstrap intervals against fairlearn's MetricFrame(n_boot) and a known truth."""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest

from auditkit.functional import bootstrap as fb
from auditkit.functional.fairness import (
    accuracy,
    calibration_error,
    false_positive_rate,
    mean_of,
    selection_rate,
    true_positive_rate,
)

QUANTILES = [0.025, 0.15865525393145707, 0.8413447460685429, 0.975]


def _data(seed: int, n: int = 400, groups: int = 4, classes: int = 3):
    rng = np.random.default_rng(seed)
    # Group 0 has only two members: it is missing from some resamples (NaN there in both).
    g = np.concatenate([[0, 0], rng.integers(1, groups, n - 2)])
    y = rng.integers(0, classes, n)
    hit = rng.random(n) < np.array([0.9, 0.8, 0.7, 0.6])[g % 4]
    pred = np.where(hit, y, (y + 1 + rng.integers(0, classes - 1, n)) % classes)
    return g, y, pred


def _frame(metrics, g, y, pred, **kwargs):
    from fairlearn.metrics import MetricFrame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return MetricFrame(
            metrics=metrics,
            y_true=y,
            y_pred=pred,
            sensitive_features=pd.Series(g, name="group"),
            **kwargs,
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_rows_scheme_reproduces_metricframe_intervals_and_points(seed):
    g, y, pred = _data(seed)
    metrics = {"accuracy": accuracy}
    for c in range(3):
        metrics[f"sr@{c}"] = partial(selection_rate, positive=c)
        metrics[f"tpr@{c}"] = partial(true_positive_rate, positive=c)
        metrics[f"fpr@{c}"] = partial(false_positive_rate, positive=c)
    mf = _frame(metrics, g, y, pred, n_boot=60, ci_quantiles=QUANTILES, random_state=seed + 11)

    boot = fb.group_confusion_bootstrap(
        g, y, pred, n_groups=4, n_classes=3, n_boot=60, random_state=seed + 11
    )
    point = fb.group_confusion(g, y, pred, n_groups=4, n_classes=3)
    ours = {"accuracy": (fb.accuracy_from_confusion(point), fb.accuracy_from_confusion(boot))}
    for c in range(3):
        for key, fn in (
            ("sr", fb.selection_rate_from_confusion),
            ("tpr", fb.true_positive_rate_from_confusion),
            ("fpr", fb.false_positive_rate_from_confusion),
        ):
            ours[f"{key}@{c}"] = (fn(point, c), fn(boot, c))
    for column, (values, samples) in ours.items():
        np.testing.assert_array_equal(values, mf.by_group[column].to_numpy(), err_msg=column)
        intervals = fb.group_quantiles(samples, QUANTILES)
        for q, frame in enumerate(mf.by_group_ci):
            np.testing.assert_allclose(
                intervals[q], frame[column].to_numpy(), rtol=0, atol=1e-12, err_msg=column
            )


def test_group_means_and_ece_reproduce_metricframe_with_sample_params():
    rng = np.random.default_rng(3)
    g, y, pred = _data(3, n=300)
    confidence = rng.uniform(0.3, 1.0, len(y))
    correct = (y == pred).astype(np.float64)
    robust = (rng.random(len(y)) < 0.4).astype(np.float64)
    settings = {"n_boot": 40, "ci_quantiles": QUANTILES, "random_state": 5}
    mf_mean = _frame(
        {"m": mean_of}, g, y, pred, sample_params={"m": {"values": robust}}, **settings
    )
    mf_ece = _frame(
        {"e": calibration_error},
        g,
        y,
        pred,
        sample_params={"e": {"confidence": confidence, "correct": correct}},
        **settings,
    )
    means = fb.group_means_bootstrap(g, robust, n_groups=4, n_boot=40, random_state=5)
    eces = fb.group_ece_bootstrap(g, confidence, correct, n_groups=4, n_boot=40, random_state=5)
    for q in range(4):
        np.testing.assert_allclose(
            fb.group_quantiles(means, QUANTILES)[q], mf_mean.by_group_ci[q]["m"], atol=1e-12
        )
        np.testing.assert_allclose(
            fb.group_quantiles(eces, QUANTILES)[q], mf_ece.by_group_ci[q]["e"], atol=1e-12
        )


def test_multinomial_scheme_matches_metricframe_in_distribution():
    """Counts drawn per cell give the row bootstrap's intervals within Monte-Carlo error."""
    g, y, pred = _data(4, n=1200)
    n_boot = 2000
    rows = fb.group_confusion_bootstrap(
        g, y, pred, n_groups=4, n_classes=3, n_boot=n_boot, random_state=1
    )
    multi = fb.group_confusion_bootstrap(
        g, y, pred, n_groups=4, n_classes=3, n_boot=n_boot, random_state=2, scheme="multinomial"
    )
    mf = _frame(
        {"accuracy": accuracy}, g, y, pred, n_boot=200, ci_quantiles=QUANTILES, random_state=9
    )
    for fn in (
        fb.accuracy_from_confusion,
        partial(fb.true_positive_rate_from_confusion, positive=1),
    ):
        a = fb.group_quantiles(fn(rows), QUANTILES)[:, 1:]
        b = fb.group_quantiles(fn(multi), QUANTILES)[:, 1:]
        # Groups of ~400: bootstrap sd ≈ 0.02; the quantiles' MC error at B=2000 is ≈ 0.002.
        np.testing.assert_allclose(a, b, atol=0.01)
    accuracy_multi = fb.group_quantiles(fb.accuracy_from_confusion(multi), QUANTILES)[:, 1:]
    reference = np.stack([f["accuracy"].to_numpy()[1:] for f in mf.by_group_ci])
    np.testing.assert_allclose(accuracy_multi, reference, atol=0.02)  # B=200 on fairlearn's side
    # The tiny group is missing from some resamples: NaN there, never a 0/0 number.
    assert np.isnan(fb.accuracy_from_confusion(multi)[:, 0]).any()


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
@pytest.mark.parametrize("scheme", fb.SCHEMES)
def test_percentile_intervals_cover_the_true_group_accuracy(scheme):
    """90% intervals on synthetic data whose per-group accuracy is known cover it ~90% of the
    time (binomial spread over 300 repetitions: 0.85–0.95)."""
    truth = np.array([0.9, 0.75])
    rng = np.random.default_rng(0)
    hits = np.zeros(2)
    trials = 300
    for t in range(trials):
        g = rng.integers(0, 2, 300)
        y = np.zeros(300, dtype=int)
        pred = (rng.random(300) >= truth[g]).astype(int)
        boot = fb.group_confusion_bootstrap(
            g, y, pred, n_groups=2, n_classes=2, n_boot=200, random_state=t, scheme=scheme
        )
        low, high = fb.group_quantiles(fb.accuracy_from_confusion(boot), [0.05, 0.95])
        hits += (low <= truth) & (truth <= high)
    coverage = hits / trials
    assert np.all((coverage > 0.85) & (coverage < 0.96)), coverage


def test_difference_and_worst_group_per_resample():
    samples = np.array([[0.5, 0.7, np.nan], [0.6, 0.6, 0.9], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(fb.difference_samples(samples), [0.2, 0.3, np.nan])
    np.testing.assert_allclose(fb.worst_group_samples(samples), [0.5, 0.6, np.nan])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="scheme"):
        fb.cell_sums_bootstrap(np.zeros(3, int), 1, n_boot=5, random_state=0, scheme="poisson")
    with pytest.raises(ValueError, match="rows"):
        fb.cell_sums_bootstrap(
            np.zeros(3, int),
            1,
            n_boot=5,
            random_state=0,
            values=[np.ones(3)],
            scheme="multinomial",
        )
