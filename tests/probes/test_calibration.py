"""The calibration probe on the demo CNN, on a Bayes-optimal synthetic model and on an MLP
with dropout: temperature scaling undoes a known miscalibration, MC dropout gives mutual
information, max-softmax flags noise but not in-distribution data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data.core import AuditData, make_splits
from auditkit.demo import DIGITS_MEAN, DIGITS_STD
from auditkit.errors import AuditkitInputError
from auditkit.functional.calibration import expected_calibration_error
from auditkit.functional.uncertainty import decompose_uncertainty
from auditkit.pipeline import build_context
from auditkit.probes.calibration import CalibrationProbe

DESIGN_METRICS = {
    "accuracy",
    "ece",
    "mce",
    "brier",
    "nll",
    "temperature",
    "ece_after_temperature",
    "ood_auroc",
    "aurc",
}


class Scaled(nn.Module):
    """Multiplies a model's logits: × 4 makes it over-confident, × 0.25 under-confident."""

    def __init__(self, model: nn.Module, factor: float) -> None:
        super().__init__()
        self.model, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) * self.factor


def _demo_context(model: nn.Module, data: AuditData, factor: float = 1.0, seed: int = 0):
    adapter = TorchModelAdapter(
        Scaled(model, factor),
        input_shape=(1, 8, 8),
        input_range=(0.0, 1.0),
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        device="cpu",
    )
    return build_context(adapter, data, seed=seed, budget="fast")


def _seed_with_calibration_errors(context, least: int = 2) -> int:
    """The demo CNN is ~99% accurate, so its 162-example calibration split may hold no error at
    all, and then no temperature is identifiable (NLL falls forever as T → 0). Pick the first
    split seed whose calibration split holds a few errors; the demo weights vary from run to run."""
    wrong = (~context.clean_correct).numpy()
    for seed in range(100):
        if wrong[make_splits(len(wrong), seed)["calibration"]].sum() >= least:
            return seed
    raise AssertionError("the demo model makes almost no errors")


@pytest.fixture(scope="module")
def demo_runs(demo_model, digits_data):
    seed = _seed_with_calibration_errors(_demo_context(demo_model, digits_data))
    runs = {}
    for factor in (1.0, 4.0, 0.25):
        context = _demo_context(demo_model, digits_data, factor, seed=seed)
        runs[factor] = (context, CalibrationProbe(budget="fast").run(context))
    return runs


def gaussian_task(n: int = 3000, seed: int = 0, spread: float = 1.0) -> tuple[AuditData, nn.Module]:
    """Three unit-variance Gaussian classes and the exact Bayes posterior as a linear model:
    softmax(W x + b) is the true P(y | x), so the model is perfectly calibrated by construction
    (and about 66% accurate, leaving room to be miscalibrated)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[0.0, 0.0], [1.6, 0.0], [0.8, 1.4]]) * spread
    y = torch.randint(3, (n,), generator=g)
    x = means[y] + torch.randn(n, 2, generator=g)
    bayes = nn.Linear(2, 3)
    with torch.no_grad():
        bayes.weight.copy_(means)
        bayes.bias.copy_(-0.5 * (means**2).sum(1))
    data = AuditData(
        name="gaussians",
        x=x,
        y=y,
        modality="tabular",
        input_range=None,
        synthetic=True,
        description="three Gaussian classes; the model is their exact posterior",
    )
    return data, bayes


@pytest.fixture(scope="module")
def bayes_runs():
    data, bayes = gaussian_task()
    runs = {}
    for factor in (1.0, 4.0, 0.25):
        adapter = TorchModelAdapter(
            Scaled(bayes, factor), input_shape=(2,), input_range=None, device="cpu"
        )
        runs[factor] = CalibrationProbe(budget="fast").run(
            build_context(adapter, data, seed=0, budget="fast")
        )
    return runs


@pytest.fixture(scope="module")
def dropout_mlp(digits_data):
    """A small MLP with dropout, trained briefly (full batch) on the digits training split."""
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10)
    )
    optimizer = torch.optim.Adam(mlp.parameters(), lr=2e-2)
    train = digits_data.train
    for _ in range(40):
        optimizer.zero_grad()
        nn.functional.cross_entropy(mlp(train.x), train.y).backward()
        optimizer.step()
    return mlp.eval()


# --- contract -----------------------------------------------------------------------------
def test_reports_every_declared_metric_with_figures_and_json(demo_runs):
    _, result = demo_runs[1.0]
    assert result.status in ("passed", "warned")
    assert set(result.metrics) == set(CalibrationProbe.metrics)
    assert DESIGN_METRICS <= set(result.metrics)
    assert all(result.metrics[m] is not None for m in DESIGN_METRICS)
    assert result.headline == "ece"
    kinds = [f["kind"] for f in result.figures]
    assert kinds.count("reliability") == 2 and "line" in kinds and kinds.count("bar") >= 2
    assert "T = " in result.summary and "test-time augmentation" in result.summary
    risk = next(f for f in result.figures if f["id"] == "risk-coverage")
    assert "increasing confidence" in risk["caption"] and "lower is better" in risk["caption"]
    json.dumps(result.to_dict(), allow_nan=False)


def test_headline_numbers_are_on_the_evaluation_split(demo_runs):
    context, result = demo_runs[1.0]
    ev = torch.as_tensor(context.splits["evaluation"])
    probs = torch.softmax(context.clean_logits[ev].double(), -1)
    correct = probs.argmax(-1) == context.data.y[ev]
    assert result.metrics["accuracy"] == pytest.approx(correct.double().mean().item())
    assert result.metrics["ece"] == pytest.approx(
        expected_calibration_error(probs.max(-1).values, correct), abs=1e-12
    )
    assert result.details["splits"] == {"calibration": 162, "evaluation": 378}


def test_shares_confidences_with_the_bias_probe(demo_runs):
    context, _ = demo_runs[1.0]
    shared = context.artifacts["calibration"]
    n = len(context.data)
    np.testing.assert_array_equal(shared["indices"], np.arange(n))
    assert shared["confidence"].dtype == np.float64 and shared["correct"].dtype == bool
    np.testing.assert_allclose(
        shared["confidence"], context.clean_probabilities.max(-1).values, atol=1e-6
    )
    np.testing.assert_array_equal(shared["correct"], context.clean_correct.numpy())


def test_never_recomputes_the_clean_pass(demo_model, digits_data):
    context = _demo_context(demo_model, digits_data)
    seen = []
    original = context.adapter.predict_logits

    def recording(x, **kwargs):
        seen.append(x.clone())
        return original(x, **kwargs)

    context.adapter.predict_logits = recording
    CalibrationProbe(budget="fast").run(context)
    assert seen  # uncertainty samples and OOD sets do call the model
    for x in seen:
        same_rows = len(x) in (len(digits_data), len(context.splits["evaluation"]))
        assert not (
            same_rows
            and any(
                torch.equal(x, digits_data.x[torch.as_tensor(idx)])
                for idx in (np.arange(len(digits_data)), context.splits["evaluation"])
            )
        )


# --- temperature scaling ------------------------------------------------------------------
def test_demo_scaled_by_four_and_a_quarter_gets_temperature_four_and_a_quarter_times(demo_runs):
    """The demo CNN has its own fitted T (it varies with training), so × 4 gives 4 × that T.
    Its 99% accuracy caps the ECE of the × 4 model near its 1% error rate; the Bayes-optimal
    model below shows the high ECE and T ≈ 4."""
    base = demo_runs[1.0][1].metrics
    over = demo_runs[4.0][1].metrics
    under = demo_runs[0.25][1].metrics
    assert over["temperature"] == pytest.approx(4 * base["temperature"], rel=1e-3)
    assert under["temperature"] == pytest.approx(0.25 * base["temperature"], rel=1e-3)
    assert not demo_runs[1.0][1].details["temperature_fit"]["at_bound"]
    # × 4 pushes confidence toward 1 whatever the demo's own calibration: over-confident
    assert over["mean_confidence"] > max(base["mean_confidence"], over["accuracy"])
    assert under["ece"] > 0.1 and under["ece_after_temperature"] < under["ece"] / 4
    for m in (base, over, under):
        # scaling the logits never changes the arg-max, and temperature undoes the factor
        assert m["accuracy"] == base["accuracy"]
        assert m["ece_after_temperature"] == pytest.approx(base["ece_after_temperature"], abs=1e-6)


def test_tells_the_user_the_temperature_and_how_to_apply_it(demo_runs):
    result = demo_runs[0.25][1]
    t = result.metrics["temperature"]
    finding = next(f for f in result.findings if "temperature scaling" in f.title)
    assert f"{t:.3g}" in finding.title
    assert f"softmax(logits / {t:.4g})" in finding.action
    assert (
        result.details["temperature_fit"]["apply"] == f"probabilities = softmax(logits / {t:.4g})"
    )
    check = next(c for c in result.checks if c.name == "temperature_lowers_held_out_nll")
    assert check.status == "passed"
    assert check.values["nll_before"] == result.metrics["nll"]
    assert check.values["nll_after"] == result.metrics["nll_after_temperature"]
    assert result.metrics["nll_after_temperature"] < result.metrics["nll"]


def test_temperature_scaling_leaves_accuracy_unchanged(demo_runs):
    """Dividing logits by T > 0 keeps every arg-max, so this is a property of the method, not
    something a check could ever catch failing; asserted here against a direct computation and
    against the after-scaling reliability bins the report shows."""
    for context, result in demo_runs.values():
        ev = torch.as_tensor(context.splits["evaluation"])
        logits, y = context.clean_logits[ev].double(), context.data.y[ev]
        before = (logits.argmax(-1) == y).double().mean().item()
        after = ((logits / result.metrics["temperature"]).argmax(-1) == y).double().mean().item()
        assert before == after == result.metrics["accuracy"]
        bins = result.details["reliability_after_temperature"]
        hits = sum(b["count"] * b["accuracy"] for b in bins if b["count"])
        assert hits / sum(b["count"] for b in bins) == pytest.approx(result.metrics["accuracy"])


class SplitConfidence(nn.Module):
    """The Bayes posterior made over-confident (× 4) where the last feature is 1 and
    under-confident (× 0.25) where it is 0."""

    def __init__(self, bayes: nn.Module) -> None:
        super().__init__()
        self.bayes = bayes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = torch.where(x[:, 2:] > 0.5, 4.0, 0.25)
        return self.bayes(x[:, :2]) * factor


def test_a_temperature_that_does_not_carry_over_to_held_out_data_warns(bayes_runs):
    """Over-confident on the calibration split, under-confident on the evaluation split: the
    T ≈ 4 fitted on the first makes the second worse, so the probe must warn and must not
    advise applying it."""
    n, seed = 3000, 0
    data, bayes = gaussian_task(n=n)
    flag = torch.zeros(n, 1)
    flag[torch.as_tensor(make_splits(n, seed)["calibration"])] = 1.0
    shifted = AuditData(
        name="gaussians, split-dependent confidence",
        x=torch.cat([data.x, flag], 1),
        y=data.y,
        modality="tabular",
        input_range=None,
        synthetic=True,
    )
    adapter = TorchModelAdapter(
        SplitConfidence(bayes), input_shape=(3,), input_range=None, device="cpu"
    )
    result = CalibrationProbe(budget="fast").run(
        build_context(adapter, shifted, seed=seed, budget="fast")
    )
    m = result.metrics
    assert 3.6 < m["temperature"] < 4.4  # what the calibration split asks for
    assert m["nll_after_temperature"] > m["nll"] * 1.01
    check = next(c for c in result.checks if c.name == "temperature_lowers_held_out_nll")
    assert check.status == "warned" and "does not carry over" in check.detail
    assert result.status == "warned"
    assert any(
        f.severity == "warning" and "does not carry over" in f.title for f in result.findings
    )
    assert not any("divide the logits" in f.title for f in result.findings)
    # the same check passes where the temperature does transfer
    transfers = next(
        c for c in bayes_runs[4.0].checks if c.name == "temperature_lowers_held_out_nll"
    )
    assert transfers.status == "passed"


def test_bayes_optimal_model_is_calibrated_and_scaling_is_undone(bayes_runs):
    calibrated, over, under = (
        bayes_runs[1.0].metrics,
        bayes_runs[4.0].metrics,
        bayes_runs[0.25].metrics,
    )
    # ECE of a perfectly calibrated model is sampling noise (2,100 evaluation examples)
    assert calibrated["ece"] < 0.04 and 0.9 < calibrated["temperature"] < 1.1
    assert over["ece"] > 0.15 and 3.6 < over["temperature"] < 4.4
    assert over["ece_after_temperature"] < 0.04 and over["ece_after_temperature"] < over["ece"] / 4
    assert under["ece"] > 0.15 and 0.225 < under["temperature"] < 0.275
    assert under["ece_after_temperature"] < 0.04
    assert (
        over["nll_after_temperature"] < over["nll"]
        and under["nll_after_temperature"] < under["nll"]
    )
    assert bayes_runs[4.0].status == "warned"


def test_summary_names_a_confidence_gap_only_beyond_sampling_noise(bayes_runs, demo_runs):
    assert "over-confident:" in bayes_runs[4.0].summary
    assert "under-confident:" in bayes_runs[0.25].summary
    # The demo's mean confidence and accuracy differ by about 0.1 point on 378 examples.
    assert "within sampling noise" in demo_runs[1.0][1].summary


def test_no_identifiable_temperature_is_reported_as_missing_not_as_advice():
    data, bayes = gaussian_task(n=300, spread=10.0)  # classes far apart: no errors at all
    adapter = TorchModelAdapter(bayes, input_shape=(2,), input_range=None, device="cpu")
    result = CalibrationProbe(budget="fast").run(build_context(adapter, data, budget="fast"))
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["temperature"] is None and result.metrics["ece_after_temperature"] is None
    fit = next(c for c in result.checks if c.name == "temperature_fit")
    assert fit.status == "warned" and "T → 0" in fit.detail and fit.values["errors"] == 0
    assert any(f.title == "temperature scaling could not be fitted" for f in result.findings)
    assert not any("divide the logits" in f.title for f in result.findings)
    assert [f["kind"] for f in result.figures].count("reliability") == 1


# --- uncertainty --------------------------------------------------------------------------
def test_tabular_model_without_dropout_reports_epistemic_as_not_estimated(bayes_runs):
    result = bayes_runs[1.0]
    assert result.details["uncertainty"]["method"] == "none"
    assert result.details["uncertainty"]["epistemic"] == "not estimated"
    assert result.metrics["mean_epistemic"] is None and result.metrics["mean_aleatoric"] is None
    assert result.metrics["epistemic_auroc"] is None
    table = next(f for f in result.figures if f["id"] == "uncertainty")
    assert table["rows"][2][1:] == [None, None]  # an empty cell, not a measured zero
    assert result.metrics["mean_predictive_entropy"] > 0
    assert "not estimated" in result.summary
    assert any("not estimated" in f.title for f in result.findings)
    names = [s["name"] for s in result.details["ood"]["sets"]]
    assert names == [
        "feature-wise uniform noise",
        "feature-wise Gaussian noise",
        "shuffled columns",
    ]


def _mlp_context(mlp, digits_data, p: float):
    mlp[3].p = p
    adapter = TorchModelAdapter(mlp, input_shape=(1, 8, 8), input_range=(0.0, 1.0), device="cpu")
    return build_context(adapter, digits_data, seed=0, budget="fast")


def test_mutual_information_is_zero_without_randomness_and_positive_with_mc_dropout(
    dropout_mlp, digits_data, bayes_runs
):
    """MI is ~0 for a deterministic model: (1) dropout layers with p = 0 sample the same network
    every time, so MC dropout measures MI = 0; (2) a deterministic tabular model with no dropout
    and nothing to augment is not sampled at all and its MI is reported as not estimated (sampled
    anyway, its repeated passes agree exactly: MI = 0). With dropout on, MI > 0. Images without
    dropout are the exception: there the samples come from test-time augmentation, and their MI
    is augmentation sensitivity, labelled as such (see the next test)."""
    tabular = bayes_runs[1.0]
    assert tabular.details["uncertainty"]["method"] == "none"
    assert tabular.metrics["mean_epistemic"] is None
    data, bayes = gaussian_task(n=200)
    passes = torch.stack([torch.softmax(bayes(data.x).double(), -1) for _ in range(5)])
    assert np.abs(decompose_uncertainty(passes.detach()).epistemic).max() < 1e-12

    deterministic = CalibrationProbe(budget="fast").run(_mlp_context(dropout_mlp, digits_data, 0.0))
    context = _mlp_context(dropout_mlp, digits_data, 0.3)
    rng_before = torch.random.get_rng_state()
    dropout = CalibrationProbe(budget="fast").run(context)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # seeded on a forked RNG
    for result in (deterministic, dropout):
        assert result.details["uncertainty"]["method"] == "MC dropout"
        assert result.details["uncertainty"]["samples"] == 8
        assert "MC dropout" in result.summary
    assert deterministic.metrics["mean_epistemic"] < 1e-9
    assert deterministic.metrics["mean_aleatoric"] == pytest.approx(
        deterministic.metrics["mean_predictive_entropy"], abs=1e-9
    )
    assert dropout.metrics["mean_epistemic"] > 0.01
    assert dropout.metrics["mean_predictive_entropy"] == pytest.approx(
        dropout.metrics["mean_aleatoric"] + dropout.metrics["mean_epistemic"], abs=1e-9
    )
    # dropout is switched off again afterwards: the model is deterministic and unchanged
    x = digits_data.x[:64]
    first, second = context.adapter.predict_logits(x), context.adapter.predict_logits(x)
    assert torch.equal(first, second) and torch.allclose(first, context.clean_logits[:64])


def test_mc_dropout_samples_follow_the_seed(dropout_mlp, digits_data):
    runs = [
        CalibrationProbe(budget="fast").run(_mlp_context(dropout_mlp, digits_data, 0.3))
        for _ in range(2)
    ]
    assert runs[0].metrics == runs[1].metrics


def test_uncertainty_flags_errors_on_the_demo(demo_runs):
    metrics = demo_runs[1.0][1].metrics
    assert metrics["uncertainty_auroc"] > 0.8 and metrics["confidence_auroc"] > 0.8
    # the reported means add up, and augmentation does move the demo's predictions: a strictly
    # positive epistemic part that is a fraction of the total, not a clamped zero
    assert metrics["mean_predictive_entropy"] == pytest.approx(
        metrics["mean_aleatoric"] + metrics["mean_epistemic"], abs=1e-9
    )
    assert 1e-4 < metrics["mean_epistemic"] < metrics["mean_predictive_entropy"]
    # wrong predictions move more under augmentation than right ones (0.95 on the demo)
    assert metrics["epistemic_auroc"] > 0.7


def test_image_model_without_dropout_gets_tta_and_its_mutual_information_is_labelled(demo_runs):
    """For images without dropout the samples come from test-time augmentation. The demo CNN is
    deterministic, yet its MI is > 0: that MI measures how much the augmentation moves the
    prediction (augmentation sensitivity), not model uncertainty, and the report labels it so."""
    context, result = demo_runs[1.0]
    x = context.data.x[:64]
    assert torch.equal(context.adapter.predict_logits(x), context.adapter.predict_logits(x))
    assert result.metrics["mean_epistemic"] > 0
    uncertainty = result.details["uncertainty"]
    assert uncertainty["method"] == "test-time augmentation"
    assert uncertainty["epistemic"].startswith("augmentation sensitivity")
    assert "epistemic part is augmentation sensitivity" in result.summary
    assert any("augmentation sensitivity" in f.title for f in result.findings)
    table = next(f for f in result.figures if f["id"] == "uncertainty")
    assert table["rows"][2][0] == "mutual information (epistemic: augmentation sensitivity)"


# --- out-of-distribution ------------------------------------------------------------------
def test_noise_is_flagged_on_the_demo_and_every_set_is_labelled(demo_runs):
    result = demo_runs[1.0][1]
    sets = result.details["ood"]["sets"]
    assert [s["name"] for s in sets] == ["uniform noise", "Gaussian noise", "pixel-shuffled images"]
    assert all(s["generated"] and s["description"].startswith("synthetic") for s in sets)
    assert all(s["auroc"] > 0.85 for s in sets)  # 0.92–0.97 over 14 demo trainings
    assert result.metrics["ood_auroc"] == min(s["auroc"] for s in sets)
    bars = next(f for f in result.figures if f["id"] == "ood-auroc")["bars"]
    assert [b["value"] for b in bars] == [s["auroc"] for s in sets]


def test_in_distribution_data_as_ood_set_gives_auroc_one_half(demo_model, digits_data):
    context = _demo_context(demo_model, digits_data)
    same = CalibrationProbe(budget="fast", ood=digits_data, ood_size=len(digits_data)).run(context)
    assert same.metrics["ood_auroc"] == pytest.approx(0.5, abs=1e-3)  # ties up to float noise
    half = digits_data.subset(np.arange(0, len(digits_data), 2))
    sampled = CalibrationProbe(budget="fast", ood=half).run(context)
    assert abs(sampled.metrics["ood_auroc"] - 0.5) < 0.05
    assert sampled.details["ood"]["sets"][0]["generated"] is False
    assert any("barely separates" in f.title for f in sampled.findings)


def test_user_ood_file_is_read_and_checked(tmp_path, demo_model, digits_data):
    noise = np.random.default_rng(0).random((100, 1, 8, 8)).astype(np.float32)
    path = tmp_path / "noise.npz"
    np.savez(path, x=noise, y=np.zeros(100, dtype=np.int64))
    context = _demo_context(demo_model, digits_data)
    result = CalibrationProbe(budget="fast", ood=str(path)).run(context)
    (row,) = result.details["ood"]["sets"]
    assert row["name"] == "noise.npz" and row["n"] == 100 and row["auroc"] > 0.85
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((5, 3, 4, 4), np.float32), y=np.zeros(5, np.int64))
    with pytest.raises(AuditkitInputError, match="shape"):
        CalibrationProbe(budget="fast", ood=str(wrong)).run(context)


# --- reproducibility, options, degenerate data --------------------------------------------
def test_same_seed_same_metrics(demo_model, digits_data):
    a = CalibrationProbe(budget="fast").run(_demo_context(demo_model, digits_data, seed=7))
    b = CalibrationProbe(budget="fast").run(_demo_context(demo_model, digits_data, seed=7))
    assert a.metrics == b.metrics
    assert a.details["ood"] == b.details["ood"]


def test_options_are_validated_and_used(demo_model, digits_data):
    for bad in ({"n_bins": 0}, {"n_bins": "many"}, {"num_samples": 1}, {"ood": 3}, {"bins": 10}):
        with pytest.raises(AuditkitInputError, match="calibration"):
            CalibrationProbe(budget="fast", **bad)
    result = CalibrationProbe(budget="fast", n_bins=10, num_samples=3, max_examples=50).run(
        _demo_context(demo_model, digits_data)
    )
    reliability = [f for f in result.figures if f["kind"] == "reliability"]
    assert all(len(f["bins"]) == 10 for f in reliability)
    assert result.details["uncertainty"]["samples"] == 3
    assert result.details["uncertainty"]["examples"] == 50


def test_registered_under_its_entry_point():
    from auditkit.registry import discover_probes

    entry = discover_probes()["calibration"]
    assert entry.loaded and entry.obj is CalibrationProbe and CalibrationProbe.order == 30


def test_tiny_data_skips_the_temperature_instead_of_crashing(demo_model, digits_data):
    tiny = digits_data.subset(np.arange(6))
    result = CalibrationProbe(budget="fast").run(_demo_context(demo_model, tiny))
    assert result.metrics["temperature"] is None and result.metrics["ece"] is not None
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["temperature_fit"] == "skipped" and statuses["evaluation_size"] == "warned"
    json.dumps(result.to_dict(), allow_nan=False)
