"""Entropy decomposition: predictive = aleatoric (expected entropy) + epistemic (MI)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from auditkit.functional.uncertainty import decompose_uncertainty, entropy


def _samples(seed: int, s: int = 12, n: int = 50, k: int = 7, spread: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(1, n, k, generator=g) * 2
    probs = torch.softmax((base + spread * torch.randn(s, n, k, generator=g)).double(), -1)
    return probs / probs.sum(-1, keepdim=True)  # scipy renormalises; make that a no-op


def test_entropy_matches_scipy_and_handles_zeros():
    p = torch.softmax(torch.randn(20, 5, generator=torch.Generator().manual_seed(0)).double(), -1)
    assert entropy(p).numpy() == pytest.approx(scipy_entropy(p.numpy(), axis=-1), abs=1e-12)
    assert float(entropy(torch.tensor([1.0, 0.0, 0.0]))) == 0.0  # 0·log 0 = 0, not NaN


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_predictive_entropy_splits_into_aleatoric_plus_mutual_information(seed):
    samples = _samples(seed)
    u = decompose_uncertainty(samples)
    mean = samples.double().mean(0).numpy()
    assert u.predictive == pytest.approx(scipy_entropy(mean, axis=-1), abs=1e-10)
    expected_entropy = np.mean(
        [scipy_entropy(s, axis=-1) for s in samples.double().numpy()], axis=0
    )
    assert u.aleatoric == pytest.approx(expected_entropy, abs=1e-10)
    assert u.predictive == pytest.approx(u.aleatoric + u.epistemic, abs=1e-10)
    assert (u.epistemic > 0).all()  # the samples disagree, so mutual information is positive
    assert u.n_samples == 12 and u.mean_probabilities.shape == (50, 7)


def test_identical_samples_have_zero_mutual_information():
    """A deterministic model gives the same distribution every time: no epistemic part."""
    one = _samples(3, s=1)
    u = decompose_uncertainty(one.repeat(20, 1, 1))
    assert np.abs(u.epistemic).max() < 1e-12
    assert u.predictive == pytest.approx(u.aleatoric, abs=1e-12)


def test_confident_disagreement_is_epistemic_and_honest_doubt_is_aleatoric():
    confident_disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # two sure, opposite votes
    u = decompose_uncertainty(confident_disagree)
    assert u.aleatoric[0] == pytest.approx(0.0) and u.epistemic[0] == pytest.approx(math.log(2))
    agree_unsure = torch.full((5, 1, 4), 0.25)  # P = 0.25 each, every time: noise in the data
    u = decompose_uncertainty(agree_unsure)
    assert u.aleatoric[0] == pytest.approx(math.log(4)) and u.epistemic[0] == pytest.approx(0.0)


def test_more_disagreement_means_more_mutual_information():
    low = decompose_uncertainty(_samples(4, spread=0.2)).epistemic.mean()
    high = decompose_uncertainty(_samples(4, spread=2.0)).epistemic.mean()
    assert high > 5 * low


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="samples, examples, classes"):
        decompose_uncertainty(torch.rand(4, 3))


def test_streaming_accumulator_rejects_mismatched_or_missing_samples():
    from auditkit.functional.uncertainty import UncertaintyAccumulator

    acc = UncertaintyAccumulator()
    with pytest.raises(ValueError, match="no samples"):
        acc.result()
    acc.update(torch.full((3, 4), 0.25))
    with pytest.raises(ValueError, match="same shape"):
        acc.update(torch.full((2, 4), 0.25))
