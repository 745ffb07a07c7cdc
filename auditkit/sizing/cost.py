"""Cost: what the model costs per example on the audit device, measured once per scan.

Forward and forward+backward seconds per example (a few small batches, the fastest of three
timings, under the machine's current load), an optimizer step, and whether the model is small
enough never to be resized. Recorded in audit.json and the checkpoint, so a resumed or
``--cost-from`` scan plans from the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Timed batches per measurement (the fastest is used).
MEASURE_REPEATS = 3


#: A measured batch should take at least this long to be worth timing.
_MIN_BATCH_SECONDS = 0.2


_MAX_MEASURE_BATCH = 64


_ONE_TIMING_SECONDS = 0.5


@dataclass(frozen=True)
class Cost:
    """What one example costs the model on the audit device, as measured (seconds)."""

    device: str
    forward_s: float
    backward_s: float
    train_step_s: float
    batch_size: int
    parameters: int
    threads: int
    measured: str = "measured"
    #: One Adam step over the model's parameters (seconds), whatever the batch.
    optimizer_step_s: float = 0.0
    #: What a batched pass costs whatever its size (seconds): kernel launches, thread
    #: start-up and, on a CPU shared with other jobs, waiting for the scheduler. The
    #: per-example costs above are the slope beyond it (timed at 2 examples and at
    #: ``batch_size``), so a plan for busy cores is not charged that wait once per example.
    forward_latency_s: float = 0.0
    backward_latency_s: float = 0.0
    #: What probes measured of their own work before planning (``ProbeSizing.pilot``), by
    #: probe: e.g. the share of a sample one FGSM step fools. Recorded with the cost, so a
    #: resumed or ``--cost-from`` scan plans from the same values.
    pilots: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: The CPU memory layout the scan ran in, when it was measured (``choose_layout``):
    #: ``{"channels_last": bool, "seconds": {layout: seconds}}``. Recorded with the cost, so a
    #: resumed or ``--cost-from`` scan runs in the same layout.
    layout: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "forward_s_per_example": self.forward_s,
            "forward_backward_s_per_example": self.backward_s,
            "train_step_s_per_example": self.train_step_s,
            "batch_size": self.batch_size,
            "parameters": self.parameters,
            "threads": self.threads,
            "measured": self.measured,
            "optimizer_step_s": self.optimizer_step_s,
            "forward_latency_s": self.forward_latency_s,
            "forward_backward_latency_s": self.backward_latency_s,
            "pilots": {k: dict(v) for k, v in self.pilots.items()},
            "layout": _layout_record(self.layout),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cost:
        return cls(
            device=str(d["device"]),
            forward_s=float(d["forward_s_per_example"]),
            backward_s=float(d["forward_backward_s_per_example"]),
            train_step_s=float(d["train_step_s_per_example"]),
            batch_size=int(d["batch_size"]),
            parameters=int(d["parameters"]),
            threads=int(d.get("threads", 1)),
            measured=str(d.get("measured", "recorded")),
            optimizer_step_s=float(d.get("optimizer_step_s", 0.0)),
            forward_latency_s=float(d.get("forward_latency_s", 0.0)),
            backward_latency_s=float(d.get("forward_backward_latency_s", 0.0)),
            pilots={
                str(k): {str(m): float(x) for m, x in dict(v).items()}
                for k, v in dict(d.get("pilots") or {}).items()
            },
            layout=_layout_record(d.get("layout")),
        )

    def forward_seconds(self, examples: float, batches: float) -> float:
        return examples * self.forward_s + batches * self.forward_latency_s

    def gradient_seconds(self, examples: float, batches: float) -> float:
        return examples * self.backward_s + batches * self.backward_latency_s

    def train_seconds(self, examples: float, batches: float) -> float:
        """Weight gradients: the input gradient's latency (a training step has the same
        launches) plus the per-example training cost."""
        return examples * self.train_step_s + batches * self.backward_latency_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timings(fn, device: torch.device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return times


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timings: a load spike only ever slows a pass down, while a
    machine that stays busy slows every timing (and the plan adapts to that)."""
    return min(_timings(fn, device, repeats))


def measure_cost(adapter, x: torch.Tensor, *, repeats: int = MEASURE_REPEATS) -> Cost:
    """Forward, forward+backward (input gradient) and training-step seconds per example.

    Batches grow from 16 examples until one takes ``_MIN_BATCH_SECONDS`` or holds 64 examples
    (a ResNet-50 at 224×224 on a CPU is timed on 16 images, a small CNN on 64). Cheap passes are timed ``repeats`` times
    (fastest); a pass that takes longer than ``_ONE_TIMING_SECONDS`` is timed once, so measuring
    never costs more than a few passes. Measured under the machine's current load: a busy
    machine gets a smaller plan.
    """
    device = adapter.device
    module = adapter.as_module() if getattr(adapter, "supports_gradients", False) else None
    parameters = sum(p.numel() for p in module.parameters()) if module is not None else 0
    n = max(1, min(len(x), _MAX_MEASURE_BATCH))
    # At least 16 examples: per-example cost at tiny batches overstates what the probes'
    # batches (32 to 256) pay.
    size = min(16, n)

    def timed(fn) -> float:
        once = _best_seconds(fn, device, 1)
        if once > _ONE_TIMING_SECONDS or repeats <= 1:
            return once
        return _best_seconds(fn, device, repeats)

    with torch.inference_mode():
        adapter.logits(x[:2].to(device))  # warm-up: first-call allocation, kernel selection
        while True:
            sample = x[:size].to(device)
            took = _best_seconds(lambda batch=sample: adapter.logits(batch), device, 1)
            if took >= _MIN_BATCH_SECONDS or size >= n:
                break
            size = min(n, size * 4)
        forward = (took if took > _ONE_TIMING_SECONDS else timed(lambda: adapter.logits(sample)))
        two = sample[:2]
        forward, forward_latency = _split_latency(
            forward, timed(lambda: adapter.logits(two)), size
        )
    backward, backward_latency = forward * 2.0, forward_latency * 2.0
    train = forward * 3.0
    if module is not None:
        params = [p for p in module.parameters() if p.requires_grad]

        def training_step() -> None:
            # Gradients of every parameter, as one training step computes them (not stored:
            # the audited model is never modified).
            with torch.enable_grad():
                logits = module(sample.detach()).float()
                loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
                torch.autograd.grad(loss, params)

        try:
            # Warm-up: the first backward allocates autograd's buffers and picks kernels.
            _input_gradient(module, two)
            backward, backward_latency = _split_latency(
                timed(lambda: _input_gradient(module, sample)),
                timed(lambda: _input_gradient(module, two)),
                size,
            )
            # Weight gradients cost about as much again as input gradients; time them only
            # when a pass is cheap.
            train = backward * 1.5
            if params and backward * size < _ONE_TIMING_SECONDS:
                train = max(timed(training_step) - backward_latency, 0.0) / size
        except RuntimeError:
            pass  # no usable gradient: keep the forward-based estimate
    optimizer_step = _adam_step_seconds(module, device) if module is not None else 0.0
    return Cost(
        optimizer_step_s=float(optimizer_step),
        device=str(device),
        forward_s=float(forward),
        backward_s=float(backward),
        train_step_s=float(max(train, backward)),
        batch_size=int(size),
        parameters=int(parameters),
        threads=int(torch.get_num_threads()),
        forward_latency_s=float(forward_latency),
        backward_latency_s=float(backward_latency),
    )


def _input_gradient(module: nn.Module, batch: torch.Tensor) -> None:
    """One input-gradient pass, the attacks' unit of work: the cross-entropy against the
    model's own predictions, differentiated with respect to the input."""
    z = batch.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = module(z).float()
        loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
        torch.autograd.grad(loss, z)


def _split_latency(batch_seconds: float, two_seconds: float, size: int) -> tuple[float, float]:
    """Per-example seconds and per-pass latency from a pass of ``size`` examples and one of 2
    (a line through both). The slope is at least a tenth of the plain average, so timing
    noise never makes examples free."""
    if size <= 2:
        return batch_seconds / max(size, 1), 0.0
    slope = max((batch_seconds - two_seconds) / (size - 2), 0.1 * batch_seconds / size)
    return slope, max(0.0, batch_seconds - slope * size)


def _adam_step_seconds(module: nn.Module, device: torch.device) -> float:
    """One Adam step over copies of the model's parameters (memorization's optimizer): on a
    CPU it is a fixed cost per step that a large network pays even for a tiny batch."""
    try:
        params = [
            torch.zeros_like(p, device=device).requires_grad_(True)
            for p in module.parameters()
            if p.requires_grad
        ]
        if not params:
            return 0.0
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer = torch.optim.Adam(params, lr=1e-3)
        optimizer.step()  # warm-up: creates the moment buffers
        seconds = _best_seconds(optimizer.step, device, 2)
        del optimizer, params
        return seconds
    except RuntimeError:
        return 0.0


COST_FILE = "cost.json"


#: Models at most this large (parameters, and activation bytes per example) are small: their
#: budgets' work takes seconds to a few minutes, and it is never resized.
SMALL_MODEL_PARAMETERS = 1_000_000


SMALL_MODEL_ACTIVATION_BYTES = 1 << 20


def small_model_reason(adapter) -> str | None:
    """Why the model is small (deterministic: parameter count and activation bytes counted on
    the diagnostic pass, never a timing), or None."""
    count = getattr(adapter, "_activation_bytes", None)
    module = getattr(adapter, "model", None)
    if not callable(count) or not isinstance(module, nn.Module):
        return None
    try:
        parameters = sum(p.numel() for p in module.parameters())
        activations = int(count())
    except Exception:
        return None
    if 0 < activations <= SMALL_MODEL_ACTIVATION_BYTES and parameters <= SMALL_MODEL_PARAMETERS:
        return (
            f"a small model ({parameters:,} parameters, {activations / 1024:.0f} KiB of "
            "activations per example) is never resized"
        )
    return None


def _layout_record(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {
        "channels_last": bool(value["channels_last"]),
        "seconds": {str(k): float(v) for k, v in dict(value.get("seconds") or {}).items()},
    }
