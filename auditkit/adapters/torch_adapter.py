"""Adapters for torch models (nn.Module, exported programs, TorchScript); black boxes are in
``callable_adapter``.

The adapter holds what the audit asks of a torch model (diagnostics, batch sizes, memory layout,
dropout); the pixels-to-logits pipeline it wraps the model in is ``adapters.network`` and the
device questions are ``adapters.device``. Their public names are re-exported here, where callers
have always imported them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from auditkit.adapters.base import Diagnostics, ModelAdapter
from auditkit.adapters.device import _MEMORY_SHARE, free_memory_bytes, resolve_device
from auditkit.adapters.network import (
    _channel_tensor,
    _input_dtype,
    _Network,
    _normalization,
    logits_of_copy,
    output_kind,
    read_logits_before_softmax,
)
from auditkit.errors import AuditkitInputError, one_line

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _try_eval(model: nn.Module) -> bool:
    """Put ``model`` in eval mode; False for exported programs, whose mode is frozen at export."""
    try:
        model.eval()
    except NotImplementedError:
        return False
    return True


class TorchModelAdapter(ModelAdapter):
    """Adapter for any torch model: ``nn.Module``, exported program module, TorchScript.

    Args:
        model: the network. It is put in eval mode and never switched back.
        input_shape: shape of one example.
        num_classes: number of outputs (detected from a forward pass when omitted).
        input_range: the box inputs live in; ``None`` for unbounded inputs.
        mean, std: normalization applied inside the adapter (attacks work in pixel space).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        format: how the model arrived, for the report.

    Example:
        >>> adapter = TorchModelAdapter(net, input_shape=(1, 8, 8), input_range=(0, 1))
        >>> adapter.diagnose(x[:64])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        input_shape: Sequence[int],
        num_classes: int | None = None,
        input_range: tuple[float, float] | None = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        device: str | torch.device | None = "auto",
        format: str = "nn.Module",
    ) -> None:
        self.device = resolve_device(device)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_range = tuple(float(v) for v in input_range) if input_range else None
        self.format = format
        self.mean = _normalization(mean, "--mean", self.input_shape)
        self.std = _normalization(std, "--std", self.input_shape)
        if (self.mean is None) != (self.std is None):
            # Normalizing with only one of them would silently use 0 or 1 for the other.
            given, missing = ("--mean", "--std") if self.std is None else ("--std", "--mean")
            raise AuditkitInputError(f"{given} given without {missing}; pass both")
        self.model = model
        self._mode_switch = _try_eval(model)
        ndim = len(self.input_shape)
        self.network = _Network(
            model, _channel_tensor(self.mean, ndim), _channel_tensor(self.std, ndim), "logits",
            _input_dtype(model),
        ).to(self.device)
        self.channels_last = _use_channels_last(model, self.device, self.input_shape)
        if self.channels_last:
            # NHWC convolutions are the fast path of cuDNN on tensor cores; the numbers do not
            # change, only the memory layout.
            self.network = self.network.to(memory_format=torch.channels_last)
        self._example_bytes: int | None = None
        self.diagnostics = Diagnostics()
        self.supports_gradients = True
        if num_classes is None:
            try:
                with torch.no_grad():
                    probe = torch.zeros(2, *self.input_shape, device=self.device)
                    out = self.network(probe)
            except Exception as exc:  # any failure here means the shape does not fit the model
                raise AuditkitInputError(
                    f"the model fails on inputs of shape {self.input_shape} "
                    f"({type(exc).__name__}: {one_line(exc, 200)}); check --data or pass "
                    "--input-shape"
                ) from None
            if out.ndim != 2:
                raise AuditkitInputError(
                    f"the model returns outputs of shape {tuple(out.shape)} for a batch of "
                    f"shape {tuple(probe.shape)}; auditkit needs (batch, classes) scores"
                )
            num_classes = int(out.shape[-1])
        self.num_classes = int(num_classes)

    def use_channels_last(self, on: bool) -> None:
        """Run the network in channels_last (``on``) or the default layout. The weights keep
        their values (the user's module is converted in place, as on a GPU); outputs may
        differ in the last bits, as between thread counts."""
        if bool(on) == self.channels_last:
            return
        if on and not layout_can_change(self.model, self.input_shape):
            raise ValueError("channels_last needs a plain nn.Module with 2-d convolutions")
        layout = torch.channels_last if on else torch.contiguous_format
        self.network = self.network.to(memory_format=layout)
        self.channels_last = bool(on)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.network(x)

    def auto_batch_size(self, kind: str = "forward") -> int:
        """The largest batch (up to the usual sizes) whose activations fit a share of the
        device's free memory: a ResNet-50 at 224×224 gets a few images per attack batch on a
        laptop instead of hundreds. Per-example activation bytes are measured once with forward
        hooks; gradient passes keep every activation and its gradient (× 3)."""
        cap = super().auto_batch_size(kind)
        per_example = self._activation_bytes()
        if not per_example:
            return cap
        need = per_example * (3 if kind == "gradient" else 1)
        return int(max(1, min(cap, (free_memory_bytes(self.device) * _MEMORY_SHARE) // need)))

    def _activation_bytes(self) -> int:
        if self._example_bytes is None:
            # Normally counted during diagnose's first pass; otherwise one pass on zeros.
            with self._counting_activations(1):
                with torch.inference_mode():
                    self.network(torch.zeros(1, *self.input_shape, device=self.device))
        if not self._example_bytes and isinstance(self.model, torch.fx.GraphModule):
            # An exported program's graph calls its operators directly: no module hook fires.
            # Count the output of every operator of its graph instead, on one example.
            self._example_bytes = _graph_activation_bytes(
                self.model, torch.zeros(1, *self.input_shape, device=self.device)
            )
        return self._example_bytes or 0

    @contextmanager
    def _counting_activations(self, examples: int) -> Iterator[None]:
        """Count the bytes every leaf module outputs during the enclosed pass, per example."""
        total = 0
        hooks = []

        def count(_module, _inputs, output) -> None:
            nonlocal total
            for t in output if isinstance(output, (tuple, list)) else (output,):
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()

        try:
            for module in self.model.modules():
                if not any(True for _ in module.children()):
                    hooks.append(module.register_forward_hook(count))
        except Exception:  # exotic modules (scripted, exported) take no hooks
            pass
        try:
            yield
        except Exception:
            total = 0
            raise
        finally:
            for hook in hooks:
                hook.remove()
            self._example_bytes = int(total // max(examples, 1))

    @contextmanager
    def mixed_precision(self, enabled: bool = True) -> Iterator[bool]:
        """bf16 autocast for attacks on a GPU that supports it; yields whether it is on.

        Only attacks use it: the clean pass and every reported clean number stay in float32.
        ``compare_bf16_robust_accuracy`` checks that it moves robust accuracy by < 1 point.
        """
        if not (enabled and self.device.type == "cuda" and torch.cuda.is_bf16_supported()):
            yield False
            return
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield True

    def as_module(self) -> nn.Module:
        return self.network

    def wrap(self, module: nn.Module) -> nn.Module:
        """The adapter's pixels-to-logits pipeline (normalization, output conversion) around
        another network, e.g. a re-initialized copy the memorization probe trains."""
        net = self.network
        module, kind = logits_of_copy(net, module)  # softmax_head: the copy's logits too
        return _Network(module, net.mean, net.std, kind, _input_dtype(module))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mean": _listed(self.mean), "std": _listed(self.std)}

    @contextmanager
    def dropout_enabled(self) -> Iterator[bool]:
        layers = [m for m in self.model.modules() if isinstance(m, _DROPOUT_TYPES)]
        if not layers or not self._mode_switch:
            yield False
            return
        for layer in layers:
            layer.train()
        try:
            yield True
        finally:
            for layer in layers:
                layer.eval()

    def diagnose(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Diagnostics:
        """Detect probability outputs, stochastic forward passes and broken input gradients."""
        diag = Diagnostics()
        x = x.to(self.device)
        with torch.no_grad():
            self.network.output_kind = "logits"
            with self._counting_activations(len(x)):
                first = self.network(x).float()
            second = self.network(x).float()
        diag.output_kind = output_kind(first)
        if diag.output_kind != "logits" and read_logits_before_softmax(self.network, x, first,
                                                                        diag):
            pass  # the network now ends at the logits (auditkit.adapters.softmax_head)
        elif diag.output_kind == "probabilities":
            diag.notes.append(
                "the model outputs probabilities (softmax inside); auditkit uses their log as "
                "logits. Saturated softmax outputs can mask gradients"
            )
        elif diag.output_kind == "log_probabilities":
            diag.notes.append(
                "the model outputs log-probabilities (log_softmax inside); they serve as logits"
            )
        self.network.output_kind = diag.output_kind
        diff = (first - second).abs().max().item() if first.numel() else 0.0
        diag.stochastic_max_diff = float(diff)
        diag.stochastic = bool(diff > 1e-5)
        if diag.stochastic:
            diag.notes.append(
                f"two forward passes on the same inputs differ (max |Δlogit| = {diff:.3g}): "
                "the model is stochastic; gradient attacks must average over its randomness (EOT)"
            )
        grad = input_gradient(self, x, y)
        if grad is None:
            self.supports_gradients = False
            diag.gradient_finite = False
            diag.gradient_nonzero_fraction = 0.0
            diag.notes.append("the model gives no input gradients; gradient probes are skipped")
        else:
            diag.gradient_finite = bool(torch.isfinite(grad).all())
            per_example = grad.flatten(1).abs().amax(dim=1)
            diag.gradient_nonzero_fraction = float((per_example > 0).float().mean())
            if not diag.gradient_finite:
                diag.notes.append("input gradients contain NaN or inf")
            elif diag.gradient_nonzero_fraction < 1.0:
                share = 1 - diag.gradient_nonzero_fraction
                diag.notes.append(
                    f"input gradients are exactly zero for {share:.0%} of examples "
                    "(quantization, saturation or a non-differentiable step): gradient attacks "
                    "will overestimate robustness"
                )
        self.diagnostics = diag
        return diag


def _use_channels_last(model: nn.Module, device: torch.device, shape: tuple[int, ...]) -> bool:
    """channels_last for 2-d conv nets on a GPU (on a CPU the scan measures whether it pays:
    ``auditkit.sizing.choose_layout``)."""
    return device.type == "cuda" and layout_can_change(model, shape)


def layout_can_change(model: nn.Module, shape: tuple[int, ...]) -> bool:
    """Whether the network may run in channels_last: a plain module with 2-d convolutions on
    image inputs (scripted and exported graphs keep the layout they were traced with)."""
    if len(shape) != 3 or isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        return False
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _listed(values: tuple[float, ...] | None) -> list[float] | None:
    return list(values) if values is not None else None


def input_gradient(
    adapter: ModelAdapter, x: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Gradient of the cross-entropy loss with respect to the input (None if there is none)."""
    x = x.detach().to(adapter.device).clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = adapter.logits(x).float()
            target = logits.argmax(-1) if y is None else y.to(adapter.device)
            loss = nn.functional.cross_entropy(logits, target)
            if not loss.requires_grad:
                return None
            (grad,) = torch.autograd.grad(loss, x, allow_unused=True)
    except RuntimeError:
        return None
    return grad.detach() if grad is not None else None


def _graph_activation_bytes(graph_module: torch.fx.GraphModule, example: torch.Tensor) -> int:
    """Bytes every operator of an fx graph outputs for ``example`` (0 if it cannot be run
    operator by operator)."""
    total = 0

    class Counting(torch.fx.Interpreter):
        def run_node(self, node):
            nonlocal total
            out = super().run_node(node)
            if node.op in ("call_function", "call_method", "call_module"):
                for t in out if isinstance(out, (tuple, list)) else (out,):
                    if isinstance(t, torch.Tensor):
                        total += t.numel() * t.element_size()
            return out

    try:
        with torch.inference_mode():
            Counting(graph_module).run(example)
    except Exception:
        return 0
    return int(total // max(len(example), 1))


__all__ = [
    "TorchModelAdapter",
    "free_memory_bytes",
    "input_gradient",
    "layout_can_change",
    "logits_of_copy",
    "output_kind",
    "read_logits_before_softmax",
    "resolve_device",
]
