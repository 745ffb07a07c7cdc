"""Throughput and memory: inference mode, automatic batch size, out-of-memory back-off."""

from __future__ import annotations

import torch
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.adapters import torch_adapter as ta


class SmallConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


class RefusesBigBatches(SmallConv):
    """Raises the CPU allocator's out-of-memory error for batches above ``limit``."""

    limit = 8

    def forward(self, x):
        if len(x) > self.limit:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate")
        return super().forward(x)


def _adapter(model: nn.Module) -> TorchModelAdapter:
    torch.manual_seed(0)
    return TorchModelAdapter(model, input_shape=(1, 8, 8), num_classes=3, device="cpu")


def test_clean_logits_leave_inference_mode_usable_by_autograd():
    adapter = _adapter(SmallConv())
    logits = adapter.predict_logits(torch.rand(20, 1, 8, 8))
    assert not logits.is_inference() and not logits.requires_grad
    temperature = torch.ones(1, requires_grad=True)
    nn.functional.cross_entropy(logits / temperature, torch.zeros(20, dtype=torch.long)).backward()
    assert temperature.grad is not None  # temperature scaling fits on these logits


def test_out_of_memory_halves_the_batch_and_gives_the_same_logits():
    torch.manual_seed(0)
    model = RefusesBigBatches()
    reference = SmallConv()
    reference.load_state_dict(model.state_dict())
    x = torch.rand(37, 1, 8, 8)
    got = _adapter(model).predict_logits(x, batch_size=32)
    with torch.no_grad():
        expected = reference.eval()(x)
    torch.testing.assert_close(got, expected)


def test_other_errors_are_not_mistaken_for_out_of_memory():
    class Broken(SmallConv):
        def forward(self, x):
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    adapter = TorchModelAdapter(Broken(), input_shape=(1, 8, 8), num_classes=3, device="cpu")
    try:
        adapter.predict_logits(torch.rand(4, 1, 8, 8))
    except RuntimeError as exc:
        assert "shapes" in str(exc)
    else:
        raise AssertionError("the error must surface")


def test_batch_size_follows_free_memory(monkeypatch):
    adapter = _adapter(SmallConv())
    assert adapter.auto_batch_size("forward") == 512  # plenty of memory: the usual sizes
    assert adapter.auto_batch_size("gradient") == 256
    per_example = adapter._activation_bytes()
    assert per_example == (4 * 8 * 8 + 3) * 4  # the outputs of conv and head (float32)
    # A machine with room for ~40 examples' activations gets batches that fit a quarter of it.
    monkeypatch.setattr(ta, "free_memory_bytes", lambda device: 40 * per_example)
    assert adapter.auto_batch_size("forward") == 10
    assert adapter.auto_batch_size("gradient") == 3


def test_activation_bytes_come_from_the_diagnostic_pass_without_an_extra_forward():
    adapter = _adapter(SmallConv())
    calls = []
    adapter.model.register_forward_hook(lambda *_: calls.append(1))
    adapter.diagnose(torch.rand(16, 1, 8, 8))
    before = len(calls)
    assert adapter._activation_bytes() > 0
    assert len(calls) == before


def test_bf16_check_on_cpu_reports_float32_twice():
    adapter = _adapter(SmallConv())
    x = torch.rand(16, 1, 8, 8)
    y = adapter.predict_logits(x).argmax(-1)
    from auditkit.probes.adversarial.bf16 import compare_bf16_robust_accuracy

    check = compare_bf16_robust_accuracy(adapter, x, y, eps=0.05, steps=3)
    assert check["bf16_used"] is False  # autocast to bf16 is for GPUs only
    assert check["fp32"] == check["bf16"] and check["within_one_point"]
    assert not adapter.channels_last  # channels_last is for conv nets on a GPU
