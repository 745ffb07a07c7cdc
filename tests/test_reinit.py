"""A re-initialized copy is the architecture built from scratch, and the original is untouched."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from auditkit.demo import DigitsCNN, digits_metadata
from auditkit.loading import load_model, save_model
from auditkit.reinit import (
    KIND_EXPORT,
    KIND_MODULE,
    KIND_TORCHSCRIPT,
    fresh_copy,
    model_kind,
    training_problem,
)


def digest(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def trained_cnn() -> nn.Module:
    """A DigitsCNN whose weights are far from any default initialization."""
    torch.manual_seed(123)
    model = DigitsCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.eval()


def reference(seed: int, factory=DigitsCNN) -> dict[str, torch.Tensor]:
    """The same architecture constructed from scratch: PyTorch's own default initialization."""
    torch.manual_seed(seed)
    return digest(factory())


class NormNet(nn.Module):
    """Conv + batch norm + layer norm + linear: every default scheme the shape rules cover."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.flat = nn.Flatten()
        self.ln = nn.LayerNorm(4 * 8 * 8)
        self.head = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.ln(self.flat(torch.relu(self.bn(self.conv(x))))))


def scrambled_normnet() -> nn.Module:
    torch.manual_seed(7)
    model = NormNet()
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for _ in range(3):  # move the batch-norm running statistics away from 0/1
            model(torch.rand(8, 1, 8, 8) * 3)
    return model.eval()


@pytest.fixture(scope="module")
def exported_cnn(tmp_path_factory):
    model = trained_cnn()
    path = tmp_path_factory.mktemp("reinit") / "cnn.pt2"
    save_model(model, path, example_input=torch.rand(2, 1, 8, 8), metadata=digits_metadata())
    return load_model(path).module


@pytest.fixture(scope="module")
def torchscript_cnn(tmp_path_factory):
    path = tmp_path_factory.mktemp("reinit") / "cnn.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(trained_cnn()), str(path))
    return load_model(path).module


def test_module_copy_equals_architecture_built_from_scratch():
    model = trained_cnn()
    before = digest(model)
    fresh = fresh_copy(model, seed=11)
    assert fresh.kind == KIND_MODULE and fresh.can_switch_mode
    assert_same_state(digest(fresh.module), reference(11))
    assert_same_state(digest(model), before)
    assert set(fresh.reset_modules) == {"features.0", "features.2", "classifier.1", "classifier.3"}
    assert fresh.by_shape == {} and fresh.kept == []
    assert "reset_parameters" in fresh.describe()["method"]


def test_exported_program_reinitialized_by_shape_matches_defaults(exported_cnn):
    assert model_kind(exported_cnn) == KIND_EXPORT
    before = digest(exported_cnn)
    fresh = fresh_copy(exported_cnn, seed=11)
    assert fresh.kind == KIND_EXPORT and not fresh.can_switch_mode
    # Default schemes by shape reproduce what Conv2d/Linear.reset_parameters draw.
    assert_same_state(digest(fresh.module), reference(11))
    assert fresh.by_shape["features.0.weight"] == "kaiming_uniform(a=√5)"
    assert fresh.by_shape["classifier.3.bias"] == "uniform(±1/√fan_in)"
    fresh.set_training(True)  # must not reach the frozen train() of an exported program
    out = fresh.module(torch.rand(4, 1, 8, 8))
    out.sum().backward()
    assert all(p.grad is not None for p in fresh.module.parameters())
    assert all(p.grad is None for p in exported_cnn.parameters())
    assert_same_state(digest(exported_cnn), before)
    with pytest.raises(NotImplementedError):
        exported_cnn.train()  # the original keeps its frozen mode


def test_torchscript_copy_shares_nothing_with_the_original(torchscript_cnn):
    assert model_kind(torchscript_cnn) == KIND_TORCHSCRIPT
    before = digest(torchscript_cnn)
    fresh = fresh_copy(torchscript_cnn, seed=11)
    assert fresh.kind == KIND_TORCHSCRIPT
    assert_same_state(digest(fresh.module), reference(11))
    fresh.set_training(True)
    assert not torchscript_cnn.training
    fresh.module(torch.rand(4, 1, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in fresh.module.parameters())
    assert all(p.grad is None for p in torchscript_cnn.parameters())
    assert_same_state(digest(torchscript_cnn), before)


def test_exported_norm_layers_reset_to_ones_zeros_and_fresh_statistics(tmp_path):
    model = scrambled_normnet()
    path = save_model(model, tmp_path / "norm.pt2", example_input=torch.rand(2, 1, 8, 8))
    exported = load_model(path).module
    fresh = fresh_copy(exported, seed=5)
    state = digest(fresh.module)
    expected = reference(5, NormNet)
    for key in (
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "ln.weight",
        "ln.bias",
        "conv.weight",
        "conv.bias",
        "head.weight",
        "head.bias",
    ):
        assert torch.equal(state[key], expected[key]), key
    assert fresh.by_shape["bn.weight"].startswith("ones")
    assert fresh.by_shape["ln.bias"].startswith("zeros")


def test_parameters_without_reset_are_reinitialized_or_listed():
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Parameter(torch.full((6, 4), 9.0))
            self.scale = nn.Parameter(torch.tensor(3.0))
            self.head = nn.Linear(6, 2)

        def forward(self, x):
            return self.head(x @ self.proj.T * self.scale)

    model = Custom()
    fresh = fresh_copy(model, seed=0)
    assert fresh.by_shape == {"proj": "kaiming_uniform(a=√5)"}
    bound = 1 / 4**0.5  # kaiming_uniform(a=√5) bound is 1/√fan_in
    assert fresh.module.proj.abs().max() <= bound
    assert fresh.kept == ["scale"]  # no default scheme for a scalar: kept, and said so
    assert fresh.reset_modules == ["head"]
    assert torch.equal(model.proj, torch.full((6, 4), 9.0))


def test_frozen_parameters_become_trainable_in_the_copy_only():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    fresh = fresh_copy(model, seed=0)
    assert all(p.requires_grad for p in fresh.module.parameters())
    assert fresh.unfrozen == ["0.bias", "0.weight"]
    assert not model[0].weight.requires_grad


def test_seeded_and_leaves_global_rng_alone():
    model = trained_cnn()
    state = torch.get_rng_state()
    a, b = fresh_copy(model, seed=3), fresh_copy(model, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert_same_state(digest(a.module), digest(b.module))
    c = fresh_copy(model, seed=4)
    assert not torch.equal(a.module.classifier[3].weight, c.module.classifier[3].weight)


def test_untrainable_models_are_named():
    class NoParams(nn.Module):
        def forward(self, x):
            return x[:, :2]

    assert "no parameters" in training_problem(NoParams())
    assert "not a torch module" in training_problem(lambda x: x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantized tensors are deprecated upstream
        quantized = torch.ao.nn.quantized.Linear(4, 2)
    assert training_problem(quantized) is not None
    assert training_problem(DigitsCNN()) is None
    with pytest.raises(ValueError, match="no parameters"):
        fresh_copy(NoParams(), seed=0)


def test_the_memory_layout_does_not_change_the_fresh_weights():
    """A CPU scan may run a conv net in channels_last: memorization's fresh copy must get the
    same weights as in the default layout, custom 4-d parameters included."""

    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.kernel = nn.Parameter(torch.zeros(8, 3, 3, 3))  # no reset_parameters

        def forward(self, x):
            return self.conv(x) + nn.functional.conv2d(x, self.kernel)

    model = Custom()
    default = fresh_copy(model, seed=0)
    nhwc = fresh_copy(model.to(memory_format=torch.channels_last), seed=0)
    assert model.kernel.is_contiguous(memory_format=torch.channels_last)
    assert default.by_shape == nhwc.by_shape == {"kernel": "kaiming_uniform(a=√5)"}
    assert_same_state(digest(default.module), digest(nhwc.module))
