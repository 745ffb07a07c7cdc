"""The synthetic credit data: deterministic, documented, and biased exactly as described."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest
import torch

from auditkit.data.synthetic import CREDIT_FEATURES, credit
from auditkit.errors import AuditkitInputError


@pytest.fixture(scope="module")
def biased():
    return credit(seed=0)


@pytest.fixture(scope="module")
def fair():
    return credit(seed=0, bias=0.0)


def test_same_seed_same_data_other_seed_other_data(biased):
    again = credit(seed=0)
    assert torch.equal(again.x, biased.x) and torch.equal(again.y, biased.y)
    assert torch.equal(again.train.x, biased.train.x) and torch.equal(again.train.y, biased.train.y)
    assert all(np.array_equal(again.groups[c], biased.groups[c]) for c in biased.groups)
    assert again.fingerprint() == biased.fingerprint()
    assert credit(seed=1).fingerprint() != biased.fingerprint()


def test_audit_split_and_training_inputs_do_not_depend_on_bias(biased, fair):
    assert biased.fingerprint() == fair.fingerprint()
    assert torch.equal(biased.train.x, fair.train.x)


def test_planted_bias_flips_only_womens_positive_training_labels(biased, fair):
    sex = biased.train.groups["sex"]
    clean, dirty = fair.train.y.numpy(), biased.train.y.numpy()
    changed = clean != dirty
    assert changed.any()
    # Only women who repaid are ever recorded as defaults; nobody else changes.
    assert set(sex[changed]) == {"F"}
    assert (clean[changed] == 1).all() and (dirty[changed] == 0).all()
    women_repaid = (sex == "F") & (clean == 1)
    assert changed.sum() / women_repaid.sum() == pytest.approx(0.5, abs=0.05)
    everyone = credit(seed=0, bias=1.0).train
    assert (everyone.y.numpy()[women_repaid] == 0).all()


def test_groups_have_equal_base_rates_and_only_the_proxy_leaks_sex(biased):
    y = biased.y.numpy()
    sex = biased.groups["sex"]
    assert abs(y[sex == "F"].mean() - y[sex == "M"].mean()) < 0.05
    is_woman = (sex == "F").astype(float)
    x = biased.x.numpy()
    corr = [abs(np.corrcoef(x[:, j], is_woman)[0, 1]) for j in range(x.shape[1])]
    proxy = CREDIT_FEATURES.index("spending_profile")
    assert corr[proxy] > 0.6
    assert max(c for j, c in enumerate(corr) if j != proxy) < 0.1
    for band in np.unique(biased.groups["age_band"]):
        assert abs(y[biased.groups["age_band"] == band].mean() - y.mean()) < 0.06


def test_features_standardized_and_labels_learnable(biased):
    train = biased.train.x.numpy()
    assert np.allclose(train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(train.std(axis=0), 1, atol=1e-4)
    # The label follows one logistic rule for everyone: a linear score separates it well.
    from sklearn.linear_model import LogisticRegression

    fair_labels = credit(seed=0, bias=0.0).train.y.numpy()
    model = LogisticRegression(max_iter=500).fit(train, fair_labels)
    assert model.score(biased.x.numpy(), biased.y.numpy()) > 0.78


def test_documented_as_synthetic_with_the_planted_bias(biased, fair):
    assert biased.synthetic and biased.train.synthetic
    assert biased.modality == "tabular" and biased.input_range is None
    assert biased.class_names == ["default", "repaid"]
    assert biased.feature_names == list(CREDIT_FEATURES)
    assert sorted(biased.groups) == ["age_band", "sex"]
    assert len(biased) == 2000 and len(biased.train) == 4000
    text = biased.description
    assert "SYNTHETIC" in text and "50% of the women who repaid" in text
    assert "spending_profile leaks sex" in text and "credit(bias=0.0)" in text
    assert "no planted bias" in fair.description.lower()
    assert biased.describe()["synthetic"] is True


def test_registered_as_builtin_credit():
    entries = {ep.name: ep for ep in metadata.entry_points(group="auditkit.datasets")}
    assert entries["credit"].value == "auditkit.data.synthetic:credit"
    assert entries["credit"].load() is credit
    from auditkit.data import load_data

    data = load_data("credit")
    assert data.fingerprint() == credit().fingerprint()
    assert load_data("credit", sensitive=["sex"]).groups["sex"].shape == (2000,)


@pytest.mark.parametrize(
    "kwargs", [{"bias": 1.5}, {"bias": -0.1}, {"female_share": 0.0}, {"n_audit": 1}]
)
def test_bad_arguments_are_input_errors(kwargs):
    with pytest.raises(AuditkitInputError, match="credit:"):
        credit(**kwargs)
