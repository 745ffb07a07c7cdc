"""The adapter contract: pixels in a box, normalization inside, logits out, eval mode forced,
and the model's quirks (softmax outputs, randomness, broken gradients) detected and reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.adapters import CallableAdapter, TorchModelAdapter, resolve_device
from auditkit.data import AuditData
from auditkit.errors import AuditkitInputError
from auditkit.pipeline import build_context, run_audit
from auditkit.probes.base import Probe
from auditkit.probes.performance import PerformanceProbe
from auditkit.results import ProbeResult

G = torch.Generator().manual_seed(0)
X8 = torch.rand(32, 1, 8, 8, generator=G)
Y8 = torch.randint(0, 10, (32,), generator=G)


def linear_net(seed: int = 0, *layers: nn.Module) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), *layers, nn.Linear(64, 10))


def data8(x: torch.Tensor = X8, y: torch.Tensor = Y8) -> AuditData:
    return AuditData(name="random-8x8", x=x, y=y)


def adapter_for(model: nn.Module, **kwargs) -> TorchModelAdapter:
    kwargs.setdefault("input_shape", (1, 8, 8))
    kwargs.setdefault("device", "cpu")
    return TorchModelAdapter(model, **kwargs)


# --- normalization and the input box ----------------------------------------------------------


def test_normalization_happens_inside_the_adapter():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(16, 5)).eval()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    adapter = TorchModelAdapter(net, input_shape=(3, 4, 4), mean=mean, std=std, device="cpu")
    x = torch.rand(6, 3, 4, 4)
    by_hand = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(adapter.logits(x), by_hand)
    torch.testing.assert_close(adapter.predict_logits(x, batch_size=4), by_hand.detach())
    # Gradients are taken in pixel space, through the normalization.
    x.requires_grad_(True)
    adapter.logits(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_per_feature_normalization_for_tables_and_unbounded_box():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    mean, std = (1.0, -2.0, 0.5), (2.0, 4.0, 0.5)
    adapter = TorchModelAdapter(net, input_shape=(3,), input_range=None, mean=mean, std=std,
                                device="cpu")
    x = torch.randn(5, 3) * 10
    torch.testing.assert_close(
        adapter.logits(x), net((x - torch.tensor(mean)) / torch.tensor(std))
    )
    assert adapter.input_range is None
    assert torch.equal(adapter.clamp(x), x)  # no box: nothing to project onto


def test_input_box_is_declared_and_enforced_by_clamp():
    adapter = adapter_for(linear_net(), input_range=(0.0, 1.0))
    assert adapter.input_range == (0.0, 1.0)
    x = torch.linspace(-1, 2, 64).view(1, 1, 8, 8)
    clamped = adapter.clamp(x)
    assert clamped.min() == 0.0 and clamped.max() == 1.0
    assert torch.equal(clamped[(x >= 0) & (x <= 1)], x[(x >= 0) & (x <= 1)])
    assert adapter.describe()["input_range"] == [0.0, 1.0]


# --- modes ------------------------------------------------------------------------------------


def test_eval_mode_is_forced_and_mc_dropout_is_explicit():
    net = linear_net(0, nn.Dropout(0.5)).train()  # the user forgot model.eval()
    adapter = adapter_for(net)
    assert not net.training
    first, second = adapter.logits(X8), adapter.logits(X8)
    assert torch.equal(first, second), "dropout must be off through the adapter"
    assert not build_context(adapter, data8()).adapter.diagnostics.stochastic

    with adapter.dropout_enabled() as has_dropout:
        assert has_dropout
        assert not torch.equal(adapter.logits(X8), adapter.logits(X8))
    assert torch.equal(adapter.logits(X8), first), "MC dropout must be switched off again"


def test_attack_library_mode_switches_never_reach_the_model():
    torchattacks = pytest.importorskip("torchattacks")
    net = linear_net(0, nn.Dropout(0.5))
    adapter = adapter_for(net)
    module = adapter.as_module()
    module.train()  # what torchattacks does after an attack when the model "was" training
    assert not net.training and not net[1].training
    assert torch.equal(module(X8), module(X8))
    module.eval()

    attack = torchattacks.FGSM(module, eps=0.1)
    adversarial = attack(X8, Y8)
    assert not net.training
    assert (adversarial - X8).abs().max() <= 0.1 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_exported_program_survives_eval_and_train_calls(tmp_path):
    torchattacks = pytest.importorskip("torchattacks")
    from auditkit.loading import load_model, save_model

    net = linear_net(0).eval()
    loaded = load_model(save_model(net, tmp_path / "m.pt2", example_input=X8[:2]))
    with pytest.raises(NotImplementedError):
        loaded.module.eval()  # the raw exported program refuses mode changes
    adapter = adapter_for(loaded.module, format="torch.export")
    module = adapter.as_module()
    module.eval()
    module.train()
    torch.testing.assert_close(module(X8), net(X8))
    adversarial = torchattacks.PGD(module, eps=0.1, alpha=0.05, steps=2)(X8, Y8)
    assert (adversarial - X8).abs().max() <= 0.1 + 1e-6
    with adapter.dropout_enabled() as has_dropout:
        assert not has_dropout  # nothing to switch in a frozen program, and no exception


# --- what the adapter detects -----------------------------------------------------------------


def test_softmax_outputs_are_detected_and_turned_into_logits():
    base = linear_net(1)
    adapter = adapter_for(nn.Sequential(base, nn.Softmax(dim=-1)))
    context = build_context(adapter, data8())
    # The softmax head is found and auditkit reads the logits before it (issue 23: attacks on
    # log-probabilities lose their gradient where the softmax saturates).
    assert adapter.diagnostics.output_kind == "logits"
    assert any("ends in a softmax" in note for note in adapter.diagnostics.notes)
    with torch.no_grad():
        logits = base(X8)
        expected = torch.softmax(logits, -1)
    torch.testing.assert_close(torch.softmax(context.clean_logits, -1), expected)
    torch.testing.assert_close(context.clean_logits, logits)
    check = {c.name: c for c in PerformanceProbe().run(context).checks}["outputs_are_logits"]
    assert check.status == "passed"


def test_log_softmax_outputs_are_detected_and_used_as_logits():
    base = linear_net(2)
    adapter = adapter_for(nn.Sequential(base, nn.LogSoftmax(dim=-1)))
    context = build_context(adapter, data8())
    assert adapter.diagnostics.output_kind == "logits"  # the log-softmax head is read around
    assert any("ends in a log-softmax" in note for note in adapter.diagnostics.notes)
    with torch.no_grad():
        torch.testing.assert_close(
            torch.softmax(context.clean_logits, -1), torch.softmax(base(X8), -1)
        )


def test_plain_logits_are_left_alone():
    base = linear_net(3)
    adapter = adapter_for(base)
    context = build_context(adapter, data8())
    assert adapter.diagnostics.output_kind == "logits"
    with torch.no_grad():
        torch.testing.assert_close(context.clean_logits, base(X8))


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = linear_net(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + 0.5 * torch.randn(len(x), 10)


def test_stochastic_forward_pass_is_detected():
    adapter = adapter_for(Noisy())
    build_context(adapter, data8())
    assert adapter.diagnostics.stochastic
    assert adapter.diagnostics.stochastic_max_diff > 0.1
    assert any("EOT" in note for note in adapter.diagnostics.notes)
    deterministic = adapter_for(linear_net(4))
    build_context(deterministic, data8())
    assert not deterministic.diagnostics.stochastic


class Quantized(nn.Module):
    """Rounds its input to 4 grey levels first: the gradient is exactly zero everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.net = linear_net(5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 3) / 3)


class SquareRoot(nn.Module):
    """sqrt at 0 has an infinite derivative: the input gradient is not finite."""

    def __init__(self) -> None:
        super().__init__()
        self.net = linear_net(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.sqrt(x))


def test_zero_input_gradients_are_detected():
    adapter = adapter_for(Quantized())
    context = build_context(adapter, data8())
    assert adapter.diagnostics.gradient_finite is True
    assert adapter.diagnostics.gradient_nonzero_fraction == 0.0
    assert any("exactly zero" in note for note in adapter.diagnostics.notes)
    check = {c.name: c for c in PerformanceProbe().run(context).checks}["input_gradients_usable"]
    assert check.status == "failed"

    healthy = adapter_for(linear_net(5))
    build_context(healthy, data8())
    assert healthy.diagnostics.gradient_nonzero_fraction == 1.0


def test_non_finite_input_gradients_are_detected():
    x = X8.clone()
    x[:, :, 0, 0] = 0.0  # a black corner pixel, as in most digits
    adapter = adapter_for(SquareRoot())
    build_context(adapter, data8(x))
    assert adapter.diagnostics.gradient_finite is False
    assert any("NaN or inf" in note for note in adapter.diagnostics.notes)


# --- shapes and devices -----------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
    adapter = adapter_for(linear_net())
    wrong = AuditData(name="big", x=torch.rand(4, 1, 16, 16), y=torch.zeros(4, dtype=torch.long))
    with pytest.raises(AuditkitInputError) as excinfo:
        build_context(adapter, wrong)
    message = str(excinfo.value)
    assert "(1, 16, 16)" in message and "(1, 8, 8)" in message and "\n" not in message


def test_saved_model_and_mismatching_data_file_name_both_shapes(tmp_path):
    import auditkit
    from auditkit.loading import save_model

    model_file = save_model(linear_net().eval(), tmp_path / "m.pt2", example_input=X8[:2])
    np.savez(tmp_path / "rgb.npz", x=np.random.rand(6, 3, 8, 8).astype(np.float32),
             y=np.zeros(6, dtype=np.int64))
    with pytest.raises(AuditkitInputError) as excinfo:
        auditkit.scan(model_file, tmp_path / "rgb.npz", probes=["performance"], device="cpu")
    assert "(3, 8, 8)" in str(excinfo.value) and "(1, 8, 8)" in str(excinfo.value)


def test_a_model_that_cannot_take_the_declared_shape_is_bad_input():
    with pytest.raises(AuditkitInputError) as excinfo:
        adapter_for(linear_net(), input_shape=(3, 32, 32))
    assert "(3, 32, 32)" in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_labels_beyond_the_model_outputs_are_bad_input():
    data = AuditData(name="d", x=X8[:4], y=torch.tensor([0, 1, 2, 12]))
    with pytest.raises(AuditkitInputError, match="label 12"):
        build_context(adapter_for(linear_net()), data)
    negative = AuditData(name="d", x=X8[:4], y=torch.tensor([0, 1, -1, 2]))
    with pytest.raises(AuditkitInputError, match="label -1"):
        build_context(adapter_for(linear_net()), negative)


def test_device_auto_picks_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected
    assert adapter_for(linear_net(), device="auto").device.type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(AuditkitInputError, match="no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(AuditkitInputError, match="no CUDA device"):
        adapter_for(linear_net(), device="cuda")


def test_unknown_devices_are_bad_input():
    for name in ("tpu", "gpu0", "cuda:99" if torch.cuda.is_available() else "banana"):
        with pytest.raises(AuditkitInputError, match="--device"):
            resolve_device(name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_adapter_matches_cpu():
    net = linear_net(7)
    cpu = adapter_for(net, device="cpu").predict_logits(X8)
    gpu = adapter_for(linear_net(7), device="cuda")
    assert gpu.device.type == "cuda"
    out = gpu.predict_logits(X8)
    assert out.device.type == "cpu"  # predict_logits always returns CPU tensors
    torch.testing.assert_close(out, cpu, rtol=1e-4, atol=1e-4)


# --- black boxes ------------------------------------------------------------------------------


class NeedsGradients(Probe):
    name = "needs_gradients_test"
    needs_gradients = True
    ran = 0

    def run(self, context) -> ProbeResult:
        type(self).ran += 1
        return ProbeResult(name=self.name, status="passed")


def _centroid_classifier(train: AuditData):
    """A black box: numpy in, probabilities out (softmax over negative centroid distances)."""
    flat = train.x.reshape(len(train), -1).numpy()
    centroids = np.stack([flat[train.y.numpy() == k].mean(0) for k in range(10)])

    def predict_proba(batch: np.ndarray) -> np.ndarray:
        assert isinstance(batch, np.ndarray)
        d = ((batch.reshape(len(batch), 1, -1) - centroids[None]) ** 2).sum(-1)
        e = np.exp(-(d - d.min(1, keepdims=True)))
        return e / e.sum(1, keepdims=True)

    return predict_proba


def test_callable_adapter_runs_performance_and_skips_gradient_probes(digits_data):
    predict_proba = _centroid_classifier(digits_data.train)
    adapter = CallableAdapter(predict_proba, input_shape=(1, 8, 8), num_classes=10,
                              input_range=(0.0, 1.0))
    NeedsGradients.ran = 0
    result = run_audit(adapter, digits_data, probes=["performance", NeedsGradients])
    expected = float(
        (predict_proba(digits_data.x.numpy()).argmax(1) == digits_data.y.numpy()).mean()
    )
    # (performance may warn that the outputs are probabilities; that is the black box's contract)
    assert result.probes["performance"].status in ("passed", "warned")
    assert result.metrics["performance.accuracy"] == pytest.approx(expected, abs=1e-6)
    assert expected > 0.8  # a sane black box, so the comparison means something
    skipped = result.probes["needs_gradients_test"]
    assert skipped.status == "skipped" and "gradient" in skipped.skip_reason
    assert NeedsGradients.ran == 0
    assert result.verdict == "passed"
    assert result.model["format"] == "callable"
    assert adapter.diagnostics.output_kind == "probabilities"


def test_callable_returning_logits_is_detected_and_not_logged_twice(digits_data):
    predict_proba = _centroid_classifier(digits_data.train)

    def scores(batch):  # log-probabilities plus an offset: logits, not probabilities
        return np.log(predict_proba(batch)) + 3.0

    adapter = CallableAdapter(scores, input_shape=(1, 8, 8), num_classes=10)
    context = build_context(adapter, digits_data)
    assert adapter.diagnostics.output_kind == "logits"
    assert any("declared to return probabilities" in n for n in adapter.diagnostics.notes)
    torch.testing.assert_close(
        torch.softmax(context.clean_logits, -1),
        torch.as_tensor(predict_proba(digits_data.x.numpy()), dtype=torch.float32),
        rtol=1e-4, atol=1e-5,
    )


def test_callable_with_the_wrong_output_shape_is_bad_input(digits_data):
    adapter = CallableAdapter(lambda b: np.ones((len(b), 3)) / 3, input_shape=(1, 8, 8),
                              num_classes=10)
    with pytest.raises(AuditkitInputError, match=r"expected \(64, 10\)"):
        build_context(adapter, digits_data)


# --- bad normalization, non-finite outputs, half precision ------------------------------------


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_normalization_of_the_wrong_length_is_bad_input():
    with pytest.raises(AuditkitInputError) as excinfo:
        adapter_for(linear_net(), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))
    message = _one_line(excinfo)
    assert "--mean has 3 values" in message and "have 1 channel;" in message
    with pytest.raises(AuditkitInputError, match="--std has 2 values"):
        TorchModelAdapter(nn.Linear(3, 2), input_shape=(3,), input_range=None, mean=(0.0,),
                          std=(1.0, 2.0), device="cpu")
    # One value for all channels, or one per channel, is fine.
    adapter_for(linear_net(), mean=(0.5,), std=(0.2,))
    TorchModelAdapter(nn.Linear(3, 2), input_shape=(3,), input_range=None, mean=(0.0, 1.0, 2.0),
                      std=(1.0, 2.0, 3.0), device="cpu")


def test_a_wrong_length_normalization_on_an_exported_program_is_one_line(tmp_path):
    """Today's failure mode: the exported program's shape guard fires mid-audit."""
    import auditkit
    from auditkit.loading import ModelMetadata, save_model

    model_file = save_model(linear_net().eval(), tmp_path / "m.pt2", example_input=X8[:2])
    override = ModelMetadata(mean=(0.3, 0.3, 0.3), std=(0.4, 0.4, 0.4))
    with pytest.raises(AuditkitInputError) as excinfo:
        auditkit.scan(model_file, data8(), metadata=override, probes=["performance"],
                      device="cpu")
    assert "--mean has 3 values" in _one_line(excinfo)


@pytest.mark.parametrize("std", [(0.0,), (-0.5,), (float("nan"),)])
def test_a_std_that_is_not_positive_is_bad_input(std):
    with pytest.raises(AuditkitInputError) as excinfo:
        adapter_for(linear_net(), mean=(0.5,), std=std)
    assert "--std" in _one_line(excinfo)


def test_mean_without_std_is_bad_input():
    with pytest.raises(AuditkitInputError, match="--mean given without --std"):
        adapter_for(linear_net(), mean=(0.5,))


class NaNForBrightImages(nn.Module):
    """A model that breaks on some inputs (an overflow, a log of zero ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = linear_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        bright = x.flatten(1).mean(1) > 0.5
        return torch.where(bright[:, None], torch.full_like(out, float("nan")), out)


def test_non_finite_clean_logits_are_bad_input_not_nan_metrics():
    data = data8()
    expected = int((X8.flatten(1).mean(1) > 0.5).sum())
    assert 0 < expected < len(X8)
    with pytest.raises(AuditkitInputError) as excinfo:
        run_audit(adapter_for(NaNForBrightImages()), data, probes=["performance"])
    message = _one_line(excinfo)
    assert f"NaN/inf logits for {expected} of {len(X8)} audit examples" in message
    assert "--mean/--std" in message


def test_bfloat16_model_is_audited_through_scan():
    import auditkit
    from auditkit.loading import weights_sha256

    net = linear_net(2).to(torch.bfloat16).eval()
    before = weights_sha256(net)
    x, y = torch.rand(120, 1, 8, 8, generator=G), torch.randint(0, 10, (120,), generator=G)
    result = auditkit.scan(net, (x, y), probes=["performance", "memorization"], budget="fast",
                           device="cpu")
    with torch.no_grad():
        expected = float((net(x.to(torch.bfloat16)).float().argmax(-1) == y).float().mean())
    assert result.probes["performance"].status != "error"
    assert result.metrics["performance.accuracy"] == pytest.approx(expected)
    # The memorization probe retrains a bfloat16 copy and proves, by hash, the original is intact.
    memorization = result.probes["memorization"]
    assert memorization.status != "error", memorization.error
    assert {c.name: c.status for c in memorization.checks}["audited_model_untouched"] == "passed"
    assert result.model["sha256"] == before == weights_sha256(net)
    # The hash sees every bit of a bfloat16 weight (numpy has no bfloat16 to go through).
    with torch.no_grad():
        net[-1].weight[0, 0] += 0.0078125
    assert weights_sha256(net) != before
    # Gradients reach the float32 pixels through the bfloat16 model.
    adapter = adapter_for(net)
    x = X8.clone().requires_grad_(True)
    adapter.logits(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and x.grad.abs().sum() > 0
