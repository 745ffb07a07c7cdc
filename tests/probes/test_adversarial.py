"""The adversarial probe: numbers a user can trust, and a checklist that catches the evaluation
mistakes (gradient masking, random models) instead of reporting them as robustness."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.adapters import CallableAdapter, TorchModelAdapter
from auditkit.data import AuditData
from auditkit.demo import DIGITS_MEAN, DIGITS_STD
from auditkit.errors import AuditkitInputError
from auditkit.pipeline import build_context
from auditkit.probes.adversarial import CHECK_NAMES, AdversarialProbe, _runner, measure
from auditkit.probes.adversarial.options import BUDGET_SWEEPS
from auditkit.results import ProbeResult

REQUIRED_METRICS = {"clean_accuracy", "fgsm_accuracy", "pgd_accuracy", "eot_accuracy",
                    "robust_accuracy", "eps"}


def digits_adapter(model: nn.Module, **kwargs) -> TorchModelAdapter:
    return TorchModelAdapter(model, input_shape=(1, 8, 8), input_range=(0.0, 1.0),
                             mean=DIGITS_MEAN, std=DIGITS_STD, device="cpu", **kwargs)


def run(adapter, data, *, seed=0, budget="fast", **options):
    context = build_context(adapter, data, seed=seed, budget=budget)
    return AdversarialProbe(budget=budget, **options).run(context), context


@pytest.fixture(scope="module")
def demo_run(demo_model, digits_data):
    """The fast budget on the demo CNN, as `auditkit demo` runs it."""
    return run(digits_adapter(demo_model), digits_data)


class _Scaled(nn.Module):
    """Logits × 1e4: the softmax saturates in float32 and cross-entropy gradients vanish."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) * 1e4


class _Quantized(nn.Module):
    """Rounds its (normalized) input to a coarse grid: zero gradient almost everywhere."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 4) / 4)


class _NoisyInput(nn.Module):
    """A randomized 'defense': fresh Gaussian noise on the input of every forward pass."""

    def __init__(self, net, sigma):
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x):
        return self.net(x + self.sigma * torch.randn_like(x))


def _off_grid(x):
    """How far each image lies from the digits' 17 grey levels (0 for every clean digit)."""
    return (x * 16 - torch.round(x * 16)).abs().flatten(1).amax(dim=1)


class _BrokenOffTheGrid(nn.Module):
    """The demo CNN on raw pixels, but it answers the next class for any input off the grey-level
    grid: right on every clean digit, wrong under every EOT transformation (noise, rotation and
    brightness all leave the grid), whether or not an attacker adds anything."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net((x - DIGITS_MEAN[0]) / DIGITS_STD[0])
        off = (_off_grid(x) > 1e-3).view(-1, 1)
        return torch.where(off, logits.roll(1, dims=1), logits)


class _NaNOffTheGrid(nn.Module):
    """The demo CNN on raw pixels plus log(1e-3 − distance to the grey-level grid): exact on
    every clean digit (with finite gradients there), NaN for any perturbed input — like a model
    whose preprocessing takes the log of a quantity that turns negative off the data."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net((x - DIGITS_MEAN[0]) / DIGITS_STD[0])
        return logits + torch.log(1e-3 - _off_grid(x)).view(-1, 1) - math.log(1e-3)


def raw_pixel_adapter(model: nn.Module) -> TorchModelAdapter:
    return TorchModelAdapter(model, input_shape=(1, 8, 8), input_range=(0.0, 1.0), device="cpu")


# --- the demo CNN ---------------------------------------------------------------------
def test_demo_cnn_falls_to_zero_at_large_eps_and_every_check_passes(demo_run):
    result, _ = demo_run
    assert [c.name for c in result.checks] == list(CHECK_NAMES)
    applicable = [c for c in result.checks if c.name != "stochastic_model_attacked_with_eot"]
    assert all(c.status == "passed" for c in applicable), [
        (c.name, c.detail) for c in applicable if c.status != "passed"
    ]
    # The demo CNN is deterministic: the random-model check does not apply, and says so
    # instead of counting as a pass.
    eot_check = result.checks[-1]
    assert eot_check.status == "skipped"
    assert eot_check.detail.startswith("not applicable: the model's forward pass is deterministic")
    assert "all 6 applicable validity checks passed (1 not applicable)" in result.summary
    assert result.status == "passed"
    largest = result.details["curve"][-1]
    assert largest["eps"] == pytest.approx(0.5)
    assert largest["pgd"] <= 0.02
    unbounded = next(c for c in result.checks if c.name == "unbounded_attack_succeeds")
    assert unbounded.values["accuracy"] <= 0.01
    # The headline is meaningful, neither untouched nor wiped out.
    assert 0.2 < result.metrics["robust_accuracy"] < 0.9 * result.metrics["clean_accuracy"]


def test_robust_accuracy_is_the_worst_case_and_never_above_clean(demo_run):
    result, context = demo_run
    m = result.metrics
    assert REQUIRED_METRICS <= set(m)
    assert m["robust_accuracy"] <= min(m["fgsm_accuracy"], m["pgd_accuracy"], m["noise_accuracy"])
    assert max(m["fgsm_accuracy"], m["pgd_accuracy"], m["eot_accuracy"]) <= m["clean_accuracy"]
    assert m["pgd_accuracy"] <= m["fgsm_accuracy"]
    assert m["pgd_l2_accuracy"] <= m["fgsm_l2_accuracy"] <= m["clean_accuracy"]
    # EOT-robust needs the transformed clean input right too; the conditional number is the
    # attack's own effect on the examples the transformations leave correct.
    assert m["eot_accuracy"] <= m["transform_accuracy"] <= m["clean_accuracy"]
    assert m["eot_accuracy_given_transform_correct"] == pytest.approx(
        m["eot_accuracy"] / m["transform_accuracy"]
    )
    assert m["eps"] == pytest.approx(0.1) and m["l2_eps"] == pytest.approx(0.5)
    # Clean accuracy comes from the shared clean pass on the attacked examples.
    indices = context.artifacts["adversarial"]["indices"]
    assert m["clean_accuracy"] == pytest.approx(
        float(context.clean_correct[torch.as_tensor(indices)].float().mean())
    )


def test_accuracy_falls_monotonically_along_the_sweep(demo_run):
    result, _ = demo_run
    curve = result.details["curve"]
    assert [p["eps"] for p in curve] == pytest.approx([0, 0.05, 0.1, 0.2, 0.5])
    for key in ("pgd", "worst"):
        values = [p[key] for p in curve]
        assert all(b <= a for a, b in zip(values, values[1:], strict=False)), (key, values)
    assert curve[0]["pgd"] == result.metrics["clean_accuracy"]


def test_eps_zero_reproduces_clean_accuracy_exactly(demo_model, digits_data):
    result, context = run(digits_adapter(demo_model), digits_data, eps=0, l2_eps=0,
                          sweep=[0], n_examples=120)
    m = result.metrics
    for key in ("fgsm_accuracy", "pgd_accuracy", "noise_accuracy", "fgsm_l2_accuracy",
                "pgd_l2_accuracy"):
        assert m[key] == m["clean_accuracy"], key
    # EOT at eps 0 is the transformations alone: its own threat model, not robust_accuracy's.
    assert m["eot_accuracy"] == m["transform_accuracy"]
    assert m["eot_accuracy_given_transform_correct"] == 1.0
    assert m["robust_accuracy"] == m["clean_accuracy"]
    artifact = context.artifacts["adversarial"]
    robust, clean = artifact["robust_correct"], artifact["clean_correct"]
    assert not np.any(robust & ~clean)
    assert robust.mean() == m["clean_accuracy"]


def test_exported_program_gives_the_numbers_of_the_in_memory_module(demo_run, demo_model_file,
                                                                     digits_data):
    from auditkit.loading import load_model

    loaded = load_model(demo_model_file)
    exported, _ = run(digits_adapter(loaded.module, format=loaded.format), digits_data)
    in_memory, _ = demo_run
    assert exported.status == "passed"
    for key in REQUIRED_METRICS | {"pgd_l2_accuracy", "noise_accuracy"}:
        assert exported.metrics[key] == pytest.approx(in_memory.metrics[key], abs=1 / 200), key


# --- the checklist catches bad evaluations ---------------------------------------------
@pytest.mark.parametrize("wrapper", [_Scaled, _Quantized], ids=["saturated-softmax", "rounding"])
def test_gradient_masking_is_flagged_not_reported_as_robust(demo_run, demo_model, digits_data,
                                                            wrapper):
    honest, _ = demo_run
    masked, _ = run(digits_adapter(wrapper(demo_model)), digits_data, n_examples=100,
                    sweep=[0, 0.1, 0.5])
    # (Nearly) the same decisions, so about the same true robustness, yet PGD reports far
    # more of it ...
    assert masked.metrics["clean_accuracy"] == pytest.approx(honest.metrics["clean_accuracy"],
                                                             abs=0.05)
    assert masked.metrics["pgd_accuracy"] > honest.metrics["pgd_accuracy"] + 0.2
    # ... and the checklist says the number cannot be trusted.
    assert masked.status == "warned"
    failed = {c.name for c in masked.checks if c.status == "failed"}
    assert {"gradients_nonzero_and_finite", "attack_beats_random_noise",
            "unbounded_attack_succeeds"} <= failed
    titles = " ".join(f.title for f in masked.findings)
    assert "robustness is likely overestimated" in titles
    assert "likely overestimated" in masked.summary
    gradients = next(c for c in masked.checks if c.name == "gradients_nonzero_and_finite")
    assert gradients.values["nonzero_fraction"] < 0.5
    if wrapper is _Scaled:
        assert "saturated" in gradients.detail


def test_random_model_is_detected_and_eot_beats_plain_pgd(demo_model, digits_data):
    model = _NoisyInput(demo_model, sigma=1.0)
    result, _ = run(digits_adapter(model), digits_data)
    check = next(c for c in result.checks if c.name == "stochastic_model_attacked_with_eot")
    assert check.status == "passed" and check.values["stochastic"] is True
    assert result.details["stochastic"]["detected"] is True
    m = result.metrics
    assert m["eot_accuracy"] <= m["pgd_accuracy"] - 0.02  # clearly, not by a coin flip
    assert check.values["pgd_minus_eot"] == pytest.approx(m["pgd_accuracy"] - m["eot_accuracy"])
    assert any("plain PGD overstates" in f.title for f in result.findings)
    # The win comes from averaging the model's own randomness: no transformations are drawn.
    assert result.details["settings"]["eot_transformations"] is None
    assert result.details["settings"]["eot_samples"] >= 2


def test_eot_counts_examples_the_transformations_break_as_not_robust(demo_model, digits_data):
    result, _ = run(raw_pixel_adapter(_BrokenOffTheGrid(demo_model)), digits_data,
                    n_examples=60, sweep=[0, 0.1])
    m = result.metrics
    assert m["clean_accuracy"] >= 0.95
    # Every transformed copy is answered wrongly, so no example can be robust under EOT.
    assert m["transform_accuracy"] <= 0.05
    assert m["eot_accuracy"] <= m["transform_accuracy"]
    # robust_accuracy does not count the transformations; the L∞ attacks leave the grid too.
    assert m["robust_accuracy"] <= m["noise_accuracy"] <= 0.05


def test_nan_outputs_under_attack_count_as_fooled_and_fail_the_gradient_check(demo_model,
                                                                               digits_data):
    result, _ = run(raw_pixel_adapter(_NaNOffTheGrid(demo_model)), digits_data, n_examples=60,
                    sweep=[0, 0.1])
    m = result.metrics
    assert m["clean_accuracy"] >= 0.95  # finite and right on every clean digit
    for key in ("fgsm_accuracy", "pgd_accuracy", "eot_accuracy", "noise_accuracy",
                "robust_accuracy"):
        assert m[key] <= 0.02, key  # a NaN answer is not a right one
    gradients = next(c for c in result.checks if c.name == "gradients_nonzero_and_finite")
    assert gradients.status == "failed" and "NaN" in gradients.detail
    assert gradients.values["nonfinite_examples_under_attack"] >= 0.95 * 60
    assert result.details["nonfinite_under_attack"]  # which attacks met NaN, and how often
    assert result.status == "warned"


def test_every_gallery_example_fools_the_model(demo_model, digits_data, monkeypatch):
    # Show every fooled example: with restarts, each must be shown with the input of the run
    # that fooled it, never another run's input that the model still gets right.
    monkeypatch.setattr(measure, "GALLERY_SIZE", 10_000)
    # Two steps: short runs from different random starts disagree on many examples.
    result, _ = run(digits_adapter(demo_model), digits_data, restarts=2, steps=2,
                    n_examples=200, sweep=[0, 0.1])
    m = result.metrics
    rows = next(f for f in result.figures if f["kind"] == "images")["rows"]
    assert len(rows) == round((m["clean_accuracy"] - m["pgd_accuracy"]) * 200) > 10
    for row in rows:
        true = row["caption"].removeprefix("true class ")
        predicted = row["cells"][2]["label"].removeprefix("adversarial: ").split(" (")[0]
        assert predicted != true, row["cells"][2]["label"]


# --- reproducibility and the contract with other probes ----------------------------------
def test_same_seed_same_metrics_and_global_rng_untouched(demo_model, digits_data):
    adapter = digits_adapter(demo_model)
    options = {"n_examples": 80, "sweep": [0, 0.1]}
    state = torch.get_rng_state()
    first, first_context = run(adapter, digits_data, seed=3, **options)
    assert torch.equal(torch.get_rng_state(), state)
    second, _ = run(adapter, digits_data, seed=3, **options)
    assert first.metrics == second.metrics
    assert [c.to_dict() for c in first.checks] == [c.to_dict() for c in second.checks]
    _, other_context = run(adapter, digits_data, seed=4, **options)
    assert not np.array_equal(other_context.artifacts["adversarial"]["indices"],
                              first_context.artifacts["adversarial"]["indices"])


def test_artifacts_for_the_bias_probe(demo_run, digits_data):
    result, context = demo_run
    artifact = context.artifacts["adversarial"]
    indices, robust = artifact["indices"], artifact["robust_correct"]
    assert indices.dtype == np.int64 and robust.dtype == np.bool_
    assert len(indices) == len(robust) == result.metrics["n_examples"] == 200
    assert np.all(np.diff(indices) > 0) and indices.max() < len(digits_data)
    assert robust.mean() == pytest.approx(result.metrics["robust_accuracy"])
    assert artifact["eps"] == result.metrics["eps"]


def test_report_figures_are_small_and_follow_the_schema(demo_run):
    result, _ = demo_run
    kinds = {f["id"]: f["kind"] for f in result.figures}
    assert kinds == {"accuracy-vs-eps": "line", "robust-accuracy-per-class": "bar",
                     "adversarial-gallery": "images"}
    curve = next(f for f in result.figures if f["kind"] == "line")
    assert {s["name"] for s in curve["series"]} >= {"FGSM", "PGD", "random noise (same L∞ norm)"}
    gallery = next(f for f in result.figures if f["kind"] == "images")
    assert 1 <= len(gallery["rows"]) <= 6
    for row in gallery["rows"]:
        original, perturbation, adversarial = row["cells"]
        assert "%" in original["label"] and "%" in adversarial["label"]
        for cell in row["cells"]:
            pixels = np.asarray(cell["pixels"])
            assert pixels.shape == (8, 8) and pixels.min() >= 0 and pixels.max() <= 1
            assert np.array_equal(pixels, np.round(pixels, 3))
    bars = next(f for f in result.figures if f["kind"] == "bar")["bars"]
    assert {b["label"] for b in bars} == {str(i) for i in range(10)}
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert len(text) < 40_000
    assert ProbeResult.from_dict(json.loads(text)).metrics == result.metrics


def test_a_gallery_of_large_images_is_stored_as_png():
    """224×224 RGB inputs: the gallery's cells are PNG data URIs, so the probe's record stays
    a few MB instead of a hundred (number lists of every pixel)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 16, stride=16), nn.Flatten(), nn.Linear(2 * 14 * 14, 3))
    x = torch.rand(12, 3, 224, 224)
    with torch.no_grad():
        y = model(x).argmax(1)
    adapter = TorchModelAdapter(model.eval(), input_shape=(3, 224, 224), input_range=(0.0, 1.0),
                                device="cpu")
    result, _ = run(adapter, AuditData(x=x, y=y, name="photos"), n_examples=12, steps=3,
                    eot_samples=1, eval_samples=1, noise_draws=1, sweep=[1.0], l2_sweep=[1.0])
    gallery = next(f for f in result.figures if f["kind"] == "images")
    cells = [c for row in gallery["rows"] for c in row["cells"]]
    assert cells and all(set(c) == {"label", "png"} for c in cells)
    assert len(json.dumps(result.to_dict())) < 3 * len(cells) * 224 * 224 * 1.4


def test_autoattack_runs_at_the_reference_settings(demo_model, digits_data):
    # A wide eps: APGD-CE fools everything, so FAB and Square have nothing left to attack.
    result, _ = run(digits_adapter(demo_model), digits_data, autoattack=True, eps=0.3,
                    n_examples=40, sweep=[0, 0.3])
    assert result.metrics["autoattack_accuracy"] <= 0.05
    assert result.metrics["robust_accuracy"] <= result.metrics["autoattack_accuracy"]
    parts = result.details["autoattack"]["components"]
    assert [p["attack"] for p in parts] == ["APGD", "APGDT", "FAB", "Square"]
    assert all(p["steps"] == 100 for p in parts if p["attack"] != "Square")
    assert "AutoAttack" in result.details["worst_case_over"]


# --- other data -------------------------------------------------------------------------
def _tabular(scale: torch.Tensor):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02, weight_decay=1e-3)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    data = AuditData(name="table", x=x * scale, y=y, modality="tabular", input_range=None)

    class Rescaled(nn.Module):  # the same function, fed features in their original units
        def forward(self, v):
            return net(v / scale)

    adapter = TorchModelAdapter(Rescaled(), input_shape=(4,), input_range=None, device="cpu")
    return adapter, data


def test_unbounded_tables_measure_eps_in_feature_stds():
    plain = run(*_tabular(torch.ones(4)), n_examples=150)[0]
    scaled = run(*_tabular(torch.tensor([1.0, 1000.0, 0.01, 50.0])), n_examples=150)[0]
    assert plain.metrics["eps"] == 0.1
    assert plain.details["settings"]["eps_units"] == "feature standard deviations"
    assert "adversarial-gallery" not in {f["id"] for f in plain.figures}
    assert plain.metrics["robust_accuracy"] < plain.metrics["clean_accuracy"]
    # Rescaling features changes nothing when eps is measured in standard deviations.
    for key in ("clean_accuracy", "pgd_accuracy", "robust_accuracy"):
        assert scaled.metrics[key] == pytest.approx(plain.metrics[key], abs=2 / 150), key
    unbounded = next(c for c in plain.checks if c.name == "unbounded_attack_succeeds")
    assert unbounded.status == "passed" and unbounded.values["eps"] == 100


def _fit_mlp(x, y, *, hidden, steps, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 2))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return net


def _table_run(x, y, net, **options):
    data = AuditData(name="table", x=x, y=y, modality="tabular", input_range=None)
    adapter = TorchModelAdapter(net, input_shape=(x.shape[1],), input_range=None, device="cpu")
    result, _ = run(adapter, data, **options)
    return result, {c.name: c for c in result.checks}


def test_a_robust_model_does_not_fail_the_noise_check():
    # Two Gaussian blobs 20 stds apart: no perturbation within the sweep flips anything, so
    # PGD and noise both leave 100% — that is robustness, not gradient masking.
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.randn(200, 2, generator=g) + torch.tensor([[10.0, 0.0]]) * (2 * y[:, None] - 1)
    result, checks = _table_run(x, y, _fit_mlp(x, y, hidden=16, steps=200, seed=0))
    curve = result.details["curve"]
    assert all(p["pgd"] == p["noise"] == 1.0 for p in curve)
    assert checks["unbounded_attack_succeeds"].status == "passed"
    assert checks["attack_beats_random_noise"].status == "passed"
    assert "robust at these radii" in checks["attack_beats_random_noise"].detail
    assert result.status == "passed"


def test_unbounded_attack_does_not_overshoot_on_a_small_table():
    # 20 examples, 4 features, an MLP that fits random labels: its boundaries lie within a
    # fraction of a std of the data, which 25-std steps jump straight over.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=g) * torch.rand(4, generator=g) * 3
    y = torch.randint(0, 2, (20,), generator=g)
    result, checks = _table_run(x, y, _fit_mlp(x, y, hidden=32, steps=400, seed=0))
    assert result.metrics["clean_accuracy"] == 1.0
    unbounded = checks["unbounded_attack_succeeds"]
    assert unbounded.status == "passed", unbounded.detail
    assert unbounded.values["accuracy"] == 0.0 and unbounded.values["eps"] == 100
    assert max(unbounded.values["step_sizes"]) <= 1.0  # at most one std per step
    assert checks["gradients_nonzero_and_finite"].status == "passed"


def test_unbounded_images_get_eot_transformations_in_pixel_space(demo_model, digits_data):
    # No input range: the attack runs on z = x / std with a std that differs per pixel. A
    # shift must move the picture, not the picture divided by its per-pixel spread.
    from auditkit.attacks import Transformations

    spread = 0.5 + torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)) * 4
    data = AuditData(name="ink", x=digits_data.x[:100] * spread, y=digits_data.y[:100],
                     modality="image", input_range=None)
    adapter = TorchModelAdapter(demo_model, input_shape=(1, 8, 8), input_range=None,
                                device="cpu")
    space = _runner.attack_space(adapter, data)
    assert space.scale.std() > 0.1  # the scale really varies per pixel
    n = 5
    shift_one_pixel = {
        "angle": torch.zeros(n), "scale": torch.ones(n),
        "shift": torch.tensor([[1 / 8, 0.0]] * n), "brightness": torch.zeros(n),
        "noise": torch.zeros(()),
    }
    moved = space.from_space(space.transform(space.to_space(data.x[:n]), Transformations(),
                                             shift_one_pixel))
    torch.testing.assert_close(moved[..., 1:], data.x[:n, ..., :-1], atol=1e-4, rtol=1e-5)


def test_l2_headline(demo_model, digits_data):
    result, _ = run(digits_adapter(demo_model), digits_data, norm="l2", n_examples=60,
                    sweep=[0, 0.5, 2.0])
    assert result.details["settings"]["norm"] == "L2"
    assert result.metrics["eps"] == pytest.approx(0.5)
    assert "pgd_l2_accuracy" not in result.metrics
    assert result.metrics["robust_accuracy"] <= result.metrics["pgd_accuracy"]


# --- the probe contract -------------------------------------------------------------------
def test_probe_declares_its_contract():
    from auditkit.registry import discover_probes

    assert AdversarialProbe.name == "adversarial" and AdversarialProbe.order == 20
    # Models without gradients are attacked without them (gradient_free=never skips them).
    assert AdversarialProbe.needs_gradients is False
    assert REQUIRED_METRICS <= set(AdversarialProbe.metrics)
    assert set(AdversarialProbe.budget_levels) == {"fast", "standard", "thorough"}
    assert "AutoAttack" in AdversarialProbe.budget_levels["thorough"]
    entry = discover_probes()["adversarial"]
    assert entry.loaded and entry.obj is AdversarialProbe


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"norm": "L3"}, "accepted: one of Linf, L2"),
        ({"eps": -0.1}, "below the minimum; accepted: a number ≥ 0"),
        ({"eps": "big"}, "not a number"),
        ({"steps": 0}, "whole number ≥ 1"),
        ({"autoattack": "maybe"}, "accepted: true or false"),
        ({"epsilon": 0.1}, "unknown option"),
    ],
)
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(AuditkitInputError, match=message):
        AdversarialProbe(budget="fast", **options)


def test_default_sweep_holds_the_headline_eps_once():
    # 1 × 8/255 rounded for display must not sit beside 8/255 itself as a second, repeated point.
    from types import SimpleNamespace

    adapter = SimpleNamespace(input_range=(0.0, 1.0), input_shape=(3, 32, 32),
                              device=torch.device("cpu"))
    context = SimpleNamespace(adapter=adapter, data=SimpleNamespace(name="cifar"))
    probe = AdversarialProbe(budget="standard")
    plan = measure.make_plan(probe.opts, probe.budget, context, stochastic=False)
    assert plan.eps == 8 / 255
    assert len(plan.sweep) == len(BUDGET_SWEEPS["standard"]["sweep"])
    assert plan.sweep.count(plan.eps) == 1
    assert min(b - a for a, b in zip(plan.sweep, plan.sweep[1:], strict=False)) > 1e-3


def test_options_from_the_command_line_are_parsed():
    probe = AdversarialProbe(budget="fast", sweep="0, 0.05,0.2", steps="20", autoattack="yes")
    assert probe.opts.sweep == (0.0, 0.05, 0.2)
    assert probe.opts.steps == 20 and probe.opts.autoattack is True


def test_black_box_models_get_gradient_free_attacks_unless_told_never(digits_data):
    # A nearest-centroid black box: well above chance, so the attack is meaningful.
    x, y = digits_data.x.reshape(len(digits_data), -1).numpy(), digits_data.y.numpy()
    centroids = np.stack([x[y == k].mean(axis=0) for k in range(10)])

    def predict(a):
        flat = np.asarray(a).reshape(len(a), -1)
        return -((flat[:, None, :] - centroids[None]) ** 2).sum(-1)

    adapter = CallableAdapter(predict, input_shape=(1, 8, 8), num_classes=10,
                              input_range=(0.0, 1.0))
    context = build_context(adapter, digits_data)
    assert AdversarialProbe(budget="fast").skip_reason(context) is None
    reason = AdversarialProbe(budget="fast", gradient_free="never").skip_reason(context)
    assert reason and "gradients" in reason and "gradient_free=never" in reason


@pytest.mark.slow
def test_thorough_budget_on_the_demo_cnn(demo_model, digits_data):
    result, _ = run(digits_adapter(demo_model), digits_data, budget="thorough")
    m = result.metrics
    assert result.status == "passed"
    assert m["robust_accuracy"] <= m["autoattack_accuracy"] <= m["clean_accuracy"]
    # AutoAttack at the reference settings is at least about as strong as PGD-50 × 5.
    assert m["autoattack_accuracy"] <= m["pgd_accuracy"] + 0.02


# --- one threat model per headline ------------------------------------------------------------
def test_robust_accuracy_does_not_depend_on_eot_transformations_for_a_deterministic_model(
    demo_model, digits_data
):
    with_t, _ = run(digits_adapter(demo_model), digits_data, n_examples=80, sweep=[0, 0.1],
                    eot_transforms=True)
    without, _ = run(digits_adapter(demo_model), digits_data, n_examples=80, sweep=[0, 0.1],
                     eot_transforms=False)
    assert with_t.metrics["robust_accuracy"] == without.metrics["robust_accuracy"]
    # The transformations still have their own numbers, and the headline names its threat model.
    assert with_t.metrics["transform_accuracy"] is not None
    assert "EOT" not in " ".join(with_t.details["worst_case_over"])
    assert with_t.details["threat_model"].startswith("L∞ ‖δ‖ ≤ 0.1")


def test_a_random_model_counts_eot_over_its_own_randomness_in_robust_accuracy(
    demo_model, digits_data
):
    model = _NoisyInput(demo_model, sigma=1.0)
    result, context = run(digits_adapter(model), digits_data, n_examples=80, sweep=[0, 0.1],
                          eot_transforms=True)  # even with transformations asked for EOT
    assert "EOT-PGD over the model's own randomness" in result.details["worst_case_over"]
    assert "own randomness" in result.details["threat_model"]
    m = result.metrics
    assert m["robust_accuracy"] <= min(m["fgsm_accuracy"], m["pgd_accuracy"])
    # Without transformations EOT is the own-randomness attack itself: robust counts it.
    plain, _ = run(digits_adapter(model), digits_data, n_examples=80, sweep=[0, 0.1])
    assert plain.metrics["robust_accuracy"] <= plain.metrics["eot_accuracy"]
    # The own-randomness EOT run has its own timing entry, apart from the transformed one.
    timings = result.details["seconds_per_attack"]
    assert any(t.endswith("/own") for t in timings) and any(
        t.startswith("eot/") and not t.endswith("/own") for t in timings
    )


def test_an_untrained_network_fails_performance_and_its_attacks_are_not_meaningful(digits_data):
    from auditkit.demo import DigitsCNN
    from auditkit.pipeline import run_audit

    torch.manual_seed(0)
    result = run_audit(digits_adapter(DigitsCNN()), digits_data,
                       probes=["performance", "adversarial"], budget="fast")
    performance, adversarial = result.probes["performance"], result.probes["adversarial"]
    assert performance.status == "failed", performance.summary
    assert "not clearly above chance" in performance.findings[0].title
    # Not a PASS at 0%: the attacks are skipped as not meaningful, and say why.
    assert adversarial.status == "skipped"
    assert adversarial.skip_reason.startswith("not meaningful: the model is not clearly above")
    assert result.verdict == "failed"
