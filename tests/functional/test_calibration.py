"""Calibration math against independent references: torchmetrics, scikit-learn, scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torchmetrics.classification import BinaryCalibrationError, MulticlassCalibrationError

from auditkit.functional.calibration import (
    TEMPERATURE_BOUNDS,
    adaptive_calibration_bins,
    adaptive_calibration_error,
    binary_auroc,
    brier_score,
    calibration_bins,
    classwise_calibration_error,
    expected_calibration_error,
    fit_temperature,
    fpr_at_tpr,
    negative_log_likelihood,
    risk_coverage,
)


def _random_predictions(seed: int, n: int, k: int, scale: float):
    """Float32 softmax outputs of random logits, labels correlated with them (~60–90% right)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * scale
    labels = torch.multinomial(torch.softmax(logits * 1.5, -1), 1, generator=g).view(-1)
    return torch.softmax(logits, -1), labels


def _calibrated_logits(seed: int, n: int = 6000, k: int = 10):
    """Logits with labels drawn from their own softmax: calibrated at T = 1 by construction."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g) * 3.0
    labels = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).view(-1)
    return logits.double(), labels


CASES = [
    (0, 500, 10, 2.0),
    (1, 2000, 3, 1.0),
    (2, 1000, 100, 4.0),
    (3, 64, 5, 3.0),
    (4, 3000, 2, 0.5),
]


@pytest.mark.parametrize("norm", ["l1", "max"])
@pytest.mark.parametrize(("seed", "n", "k", "scale"), CASES)
def test_ece_and_mce_match_torchmetrics(seed, n, k, scale, norm):
    probs, labels = _random_predictions(seed, n, k, scale)
    conf, pred = probs.max(-1)
    assert (conf < 1).all()  # exact 1.0 is the documented torchmetrics difference, tested below
    reference = MulticlassCalibrationError(num_classes=k, n_bins=15, norm=norm)(probs, labels)
    ours = expected_calibration_error(conf, pred == labels, n_bins=15, norm=norm)
    assert ours == pytest.approx(float(reference), abs=1e-6)


@pytest.mark.parametrize("n_bins", [1, 5, 10, 20])
def test_ece_matches_torchmetrics_for_other_bin_counts(n_bins):
    probs, labels = _random_predictions(7, 800, 10, 2.5)
    conf, pred = probs.max(-1)
    reference = MulticlassCalibrationError(num_classes=10, n_bins=n_bins)(probs, labels)
    assert expected_calibration_error(conf, pred == labels, n_bins) == pytest.approx(
        float(reference), abs=1e-6
    )


def test_saturated_confidence_goes_in_the_last_bin_unlike_torchmetrics_extra_bin():
    """torchmetrics counts conf == 1.0 in a hidden 16th bin (Lightning-AI/torchmetrics#3510);
    we keep Guo et al.'s last bin (14/15, 1]. Moving those confidences a hair below 1.0 puts
    them in torchmetrics' last bin too, and then the two agree."""
    probs, labels = _random_predictions(5, 400, 10, 2.0)
    saturated = torch.arange(0, 400, 7)
    probs[saturated] = torch.nn.functional.one_hot(labels[saturated] * 0 + 3, 10).float()
    conf, pred = probs.max(-1)
    assert (conf == 1.0).sum() == len(saturated)
    last = calibration_bins(conf, pred == labels)[-1]
    assert last["count"] >= len(saturated) and last["upper"] == 1.0
    nudged = probs.clone()
    nudged[saturated, 3] = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    for norm in ("l1", "max"):
        reference = MulticlassCalibrationError(num_classes=10, norm=norm)(nudged, labels)
        ours = expected_calibration_error(conf, pred == labels, norm=norm)
        assert ours == pytest.approx(float(reference), abs=1e-6)


def test_bins_cover_zero_to_one_and_count_every_example():
    conf = np.array([0.0, 1 / 15, 0.5, 0.999, 1.0])
    bins = calibration_bins(conf, [1, 0, 1, 1, 1])
    assert len(bins) == 15 and sum(b["count"] for b in bins) == 5
    assert bins[0]["count"] == 2  # 0 and the right-closed edge 1/15
    assert bins[-1]["count"] == 2 and bins[-1]["accuracy"] == 1.0
    assert bins[3]["confidence"] is None  # empty bins stay in the list, marked empty


def test_unknown_norm_is_rejected():
    with pytest.raises(ValueError, match="norm"):
        expected_calibration_error([0.9], [1], norm="l3")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perfectly_calibrated_predictor_has_ece_near_zero(seed):
    """Correctness drawn with probability equal to the confidence: ECE is sampling noise only
    (about Σ_b w_b·√(2/π)·√(p(1−p)/n_b) ≈ 0.008 here); a 10-point over-confidence is not."""
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.1, 1.0, 20_000)
    correct = rng.random(conf.size) < conf
    assert expected_calibration_error(conf, correct) < 0.02
    assert adaptive_calibration_error(conf, correct) < 0.02
    overconfident = rng.random(conf.size) < np.clip(conf - 0.1, 0, 1)
    assert expected_calibration_error(conf, overconfident) > 0.08


def _naive_adaptive_ece(conf, correct, n_bins):
    order = np.argsort(conf, kind="stable")
    total, n = 0.0, len(conf)
    for chunk in np.array_split(order, n_bins):
        if len(chunk):
            total += len(chunk) / n * abs(correct[chunk].mean() - conf[chunk].mean())
    return total


@pytest.mark.parametrize(("n", "n_bins"), [(1000, 15), (37, 15), (10, 15), (500, 7)])
def test_adaptive_ece_uses_equal_mass_bins(n, n_bins):
    rng = np.random.default_rng(n)
    conf = rng.beta(5, 1, n)  # crowded near 1, where equal-width bins pile up
    correct = (rng.random(n) < conf).astype(float)
    bins = adaptive_calibration_bins(conf, correct, n_bins)
    counts = [b["count"] for b in bins]
    assert sum(counts) == n and max(counts) - min(counts) <= 1
    assert len(bins) == min(n, n_bins)
    assert all(b["lower"] <= b["confidence"] <= b["upper"] for b in bins)
    assert adaptive_calibration_error(conf, correct, n_bins) == pytest.approx(
        _naive_adaptive_ece(conf, correct, n_bins), abs=1e-12
    )


@pytest.mark.parametrize(("seed", "k"), [(0, 3), (1, 10)])
def test_classwise_ece_is_the_mean_of_torchmetrics_one_vs_rest_errors(seed, k):
    probs, labels = _random_predictions(seed, 1500, k, 2.0)
    reference = np.mean(
        [
            float(BinaryCalibrationError(n_bins=15)(probs[:, c], (labels == c).long()))
            for c in range(k)
        ]
    )
    assert classwise_calibration_error(probs, labels) == pytest.approx(reference, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_brier_and_nll_match_scikit_learn(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(300, 6, generator=g).double() * 2
    labels = torch.randint(6, (300,), generator=g)
    probs = torch.softmax(logits, -1).numpy()
    assert brier_score(probs, labels) == pytest.approx(
        brier_score_loss(labels.numpy(), probs, labels=list(range(6))), rel=1e-9
    )
    assert negative_log_likelihood(logits, labels) == pytest.approx(
        log_loss(labels.numpy(), probs, labels=list(range(6))), rel=1e-7
    )
    scaled = torch.nn.functional.cross_entropy(logits / 2.5, labels).item()
    assert negative_log_likelihood(logits, labels, temperature=2.5) == pytest.approx(
        scaled, rel=1e-9
    )


def test_temperature_fit_finds_the_nll_minimum_scipy_finds():
    from scipy.optimize import minimize_scalar

    logits, labels = _calibrated_logits(3, n=2000)
    logits = logits * 2.2
    fit = fit_temperature(logits, labels)

    def nll(log_t):
        return torch.nn.functional.cross_entropy(logits / np.exp(log_t), labels).item()

    reference = minimize_scalar(
        nll, bounds=np.log(TEMPERATURE_BOUNDS), method="bounded", options={"xatol": 1e-10}
    )
    assert fit.temperature == pytest.approx(np.exp(reference.x), rel=1e-4)
    assert fit.nll_after == pytest.approx(reference.fun, rel=1e-8)
    assert fit.nll_after <= fit.nll_before and not fit.at_bound and fit.n == 2000


@pytest.mark.parametrize(
    ("scale", "low", "high"), [(4.0, 3.6, 4.4), (0.25, 0.225, 0.275), (1.0, 0.9, 1.1)]
)
def test_temperature_undoes_a_known_logit_scaling(scale, low, high):
    """Labels drawn from softmax(z): the model z·c is miscalibrated by exactly c, so the fitted
    T must come out near c, the ECE must drop, and accuracy must not move."""
    logits, labels = _calibrated_logits(11)
    fit_half, test_half = slice(0, 3000), slice(3000, None)
    scaled = logits * scale
    fit = fit_temperature(scaled[fit_half], labels[fit_half])
    assert low < fit.temperature < high

    def ece(z):
        p = torch.softmax(z, -1)
        return expected_calibration_error(p.max(-1).values, p.argmax(-1) == labels[test_half])

    before, after = ece(scaled[test_half]), ece(scaled[test_half] / fit.temperature)
    assert after < 0.03
    if scale != 1.0:
        assert before > 0.1 and after < before / 4
    assert torch.equal(scaled.argmax(-1), (scaled / fit.temperature).argmax(-1))


def test_temperature_is_scale_equivariant():
    logits, labels = _calibrated_logits(5, n=1000)
    base = fit_temperature(logits * 1.3, labels).temperature
    assert fit_temperature(logits * 1.3 * 4, labels).temperature == pytest.approx(
        4 * base, rel=1e-5
    )


def test_temperature_without_errors_runs_to_the_bound_and_says_so():
    logits = torch.eye(4).repeat(10, 1) * 5.0
    labels = torch.arange(4).repeat(10)
    fit = fit_temperature(logits, labels)
    assert fit.at_bound and fit.temperature == pytest.approx(TEMPERATURE_BOUNDS[0], rel=1e-3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_scikit_learn_including_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(400) < 0.3
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounding makes many ties
    assert binary_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(binary_auroc(scores, np.ones(400, bool)))


def test_auroc_of_identical_sets_is_one_half():
    scores = np.random.default_rng(0).random(100)
    both = np.concatenate([scores, scores])
    assert binary_auroc(both, np.arange(200) < 100) == pytest.approx(0.5, abs=1e-12)


def test_fpr_at_95_tpr():
    inside = np.arange(100, dtype=float)  # threshold keeps 95 of them: scores ≥ 5
    assert fpr_at_tpr(inside, np.array([0.0, 4.0, 5.0, 50.0])) == pytest.approx(0.5)


def _naive_aurc(conf, correct):
    order = np.argsort(-conf, kind="stable")
    errors = np.cumsum(~correct[order])
    return float(np.mean(errors / np.arange(1, len(conf) + 1)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aurc_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    conf = rng.random(500)
    correct = rng.random(500) < conf
    rc = risk_coverage(conf, correct)
    assert rc.aurc == pytest.approx(_naive_aurc(conf, correct), abs=1e-12)
    assert rc.risk[-1] == pytest.approx(1 - correct.mean())  # full coverage: the error rate
    assert rc.coverage[0] == pytest.approx(1 / 500) and rc.coverage[-1] == 1.0
    assert rc.optimal_aurc <= rc.aurc and rc.excess_aurc >= 0


def test_aurc_of_a_perfect_ranking_is_optimal_and_ties_do_not_depend_on_order():
    conf = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    correct = np.array([True, True, True, False, False])
    rc = risk_coverage(conf, correct)
    assert rc.aurc == pytest.approx(rc.optimal_aurc) and rc.excess_aurc == pytest.approx(0)
    assert risk_coverage(conf, np.ones(5, bool)).aurc == 0.0
    tied = np.full(6, 0.5)
    a = risk_coverage(tied, np.array([True, True, False, True, False, True])).aurc
    b = risk_coverage(tied, np.array([False, False, True, True, True, True])).aurc
    # every order of tied examples is equally likely: risk is the group's error rate throughout
    assert a == pytest.approx(b) and a == pytest.approx(2 / 6)
