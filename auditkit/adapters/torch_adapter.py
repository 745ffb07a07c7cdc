"""Adapters for torch models (nn.Module, exported programs, TorchScript); black boxes are in
``callable_adapter``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.adapters.base import Diagnostics, ModelAdapter
from auditkit.errors import AuditkitInputError, one_line

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is bad input."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise AuditkitInputError(
            f"--device {device}: unknown device; use auto, cpu, cuda or cuda:N"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise AuditkitInputError(
                f"--device {device}: no CUDA device is available; use --device cpu"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise AuditkitInputError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) "
                "(cuda:0 …); pick one of them"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise AuditkitInputError(f"--device {device}: MPS is not available; use --device cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise AuditkitInputError(f"--device {device}: unsupported device; use auto, cpu or cuda")
    return resolved


def output_kind(outputs: torch.Tensor) -> str:
    """``probabilities`` (rows in [0, 1] summing to 1), ``log_probabilities`` or ``logits``."""
    if outputs.ndim != 2 or not outputs.numel() or not torch.isfinite(outputs).all():
        return "logits"
    row_sums = outputs.sum(dim=-1)
    ones = torch.ones_like(row_sums)
    if (outputs >= 0).all() and (outputs <= 1).all() and torch.allclose(row_sums, ones, atol=1e-3):
        return "probabilities"
    if (outputs <= 0).all() and torch.allclose(outputs.exp().sum(-1), ones, atol=1e-3):
        return "log_probabilities"
    return "logits"


def _try_eval(model: nn.Module) -> bool:
    """Put ``model`` in eval mode; False for exported programs, whose mode is frozen at export."""
    try:
        model.eval()
    except NotImplementedError:
        return False
    return True


def read_logits_before_softmax(network: _Network, x: torch.Tensor, outputs: torch.Tensor,
                               diag: Diagnostics) -> bool:
    """Hook: point ``network`` at the logits before its model's final softmax when that
    reproduces the outputs (``softmax_head``); notes it in ``diag``."""
    from auditkit.adapters.softmax_head import logits_before_softmax

    inputs = (x - network.mean) / network.std if network.mean is not None else x
    stripped = logits_before_softmax(network.model, inputs, outputs, diag.output_kind)
    if stripped is None:
        return False
    diag.notes.append(
        f"the model ends in a {'log-' if diag.output_kind == 'log_probabilities' else ''}softmax; "
        "auditkit reads the logits before it, so attacks keep their gradients"
    )
    network.softmax_stripped_from = diag.output_kind
    network.model, network.output_kind, diag.output_kind = stripped, "logits", "logits"
    return True


def logits_of_copy(network: _Network, module: nn.Module) -> tuple[nn.Module, str]:
    """Hook for ``wrap``: a copy of a network whose softmax was stripped gets the same
    treatment (else its outputs are read as they are, probabilities)."""
    original = getattr(network, "softmax_stripped_from", None)
    if original is None:
        return module, network.output_kind
    from auditkit.adapters.softmax_head import strip_softmax

    stripped = strip_softmax(module)
    return (stripped, "logits") if stripped is not None else (module, original)


class _Network(nn.Module):
    """Pixels in, logits out: normalization and output conversion around the user's model."""

    def __init__(
        self,
        model: nn.Module,
        mean: torch.Tensor | None,
        std: torch.Tensor | None,
        output_kind: str,
        input_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.output_kind = output_kind
        self.input_dtype = input_dtype

    def train(self, mode: bool = True) -> _Network:
        # Never propagate: the wrapped model stays in eval mode whatever a library asks.
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if self.input_dtype is not None:
            # A half-precision model gets its own dtype; attacks and metrics stay in float32
            # (the cast is differentiable, so input gradients still reach the pixels).
            x = x.to(self.input_dtype)
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if self.input_dtype is not None:
            out = out.float()
        if self.output_kind == "probabilities":
            return torch.log(out.clamp_min(1e-12))
        return out


def _channel_tensor(values: Sequence[float] | None, ndim: int) -> torch.Tensor | None:
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32)
    # Per-channel statistics broadcast over (C, H, W); per-feature over (D,).
    return t.view(-1, *([1] * (ndim - 1))) if ndim > 1 else t


def _normalization(
    values: Sequence[float] | float | None, flag: str, input_shape: tuple[int, ...]
) -> tuple[float, ...] | None:
    """Validated ``--mean`` / ``--std``: one value for all channels, or one per channel.

    A wrong length would otherwise surface as a broadcasting error or, in an exported program,
    an opaque "Guard failed" assertion in the middle of the audit.
    """
    if values is None:
        return None
    if isinstance(values, (int, float)):
        values = (values,)
    try:
        numbers = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise AuditkitInputError(f"{flag} {values!r}: expected numbers, e.g. 0.5 or 0.5,0.5,0.5") from None
    channels = input_shape[0] if input_shape else 1
    unit = "channel" if len(input_shape) > 1 else "feature"
    if len(numbers) not in (1, channels):
        raise AuditkitInputError(
            f"{flag} has {len(numbers)} values but the model's inputs {input_shape} have "
            f"{channels} {unit}{'s' if channels != 1 else ''}; give one value, or one per {unit}"
        )
    if not all(np.isfinite(numbers)):
        raise AuditkitInputError(f"{flag} {','.join(map(str, numbers))}: values must be finite")
    if flag == "--std" and min(numbers) <= 0:
        raise AuditkitInputError(
            f"--std {','.join(map(str, numbers))}: every std must be positive (inputs are divided "
            "by it)"
        )
    return numbers


def _input_dtype(model: nn.Module) -> torch.dtype | None:
    """The floating dtype the model computes in, when it is not float32 (e.g. bfloat16)."""
    try:
        tensors = [*model.parameters(), *model.buffers()]
    except Exception:  # exotic modules (some scripted ones) may not list their tensors
        return None
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    if not floating or floating[0] == torch.float32:
        return None
    return floating[0]


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


#: Share of the device's free memory one batch may use.
_MEMORY_SHARE = 0.25


def free_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's free bytes, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30


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
