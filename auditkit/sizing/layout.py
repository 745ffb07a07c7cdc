"""Memory layout: whether channels_last pays for this model on the CPU (measured, never
assumed), applied and restored around the scan; any failure or changed answer keeps the
model's own layout.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from auditkit.sizing.cost import _input_gradient, _timings

#: channels_last is kept on a CPU only when a pass in it is at least this much faster.
_LAYOUT_GAIN = 0.9


_LAYOUT_EXAMPLES = 4


_LAYOUT_REPEATS = 3


def layout_switchable(adapter, *, small: bool) -> bool:
    """Whether a CPU scan may run the adapter's network in another memory layout: a plain conv
    net on image inputs (``layout_can_change``), not a small model (its numbers stay
    bit-identical), whose convolution weights are in the default layout (a model the user put in
    channels_last keeps it)."""
    from auditkit.adapters.torch_adapter import layout_can_change

    model = getattr(adapter, "model", None)
    if (adapter.device.type != "cpu" or small
            or not callable(getattr(adapter, "use_channels_last", None))
            or getattr(adapter, "channels_last", True)
            or not isinstance(model, nn.Module)
            or not layout_can_change(model, tuple(adapter.input_shape))):
        return False
    return all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, nn.Conv2d))


def choose_layout(adapter, x: torch.Tensor, *, small: bool) -> dict[str, Any] | None:
    """On a CPU, run a conv net in channels_last when a pass is faster in it.

    oneDNN's NHWC convolutions pay on some shapes and not on others: on this project's 2-core
    VM a ResNet-50 at 224×224 ran its forward pass 1.6–2.3× and its gradient pass 1.1–1.3×
    faster, a ResNet-18 at 32×32 at 0.93–1.01×, a ResNet-50 at 64–128 px at 0.87–0.96×. So it
    is measured, not ruled: a forward and an input-gradient pass on a few examples, in both
    layouts, interleaved, the median of 3 each; channels_last is kept when it takes at most
    ``_LAYOUT_GAIN`` of the default's time, and only when both layouts give the same answers
    (the same predicted classes, logits equal up to float round-off: a model whose code reads
    memory directly could differ without raising). A model that fails in channels_last, however
    it fails, keeps its layout. The layout changes no weight, only the last bits of some
    outputs (as a different thread count may), so small models are never touched
    (``layout_switchable``) and the choice is recorded with the cost: a resumed or
    ``--cost-from`` scan applies it instead of measuring (``apply_layout``). A GPU already runs
    conv nets in channels_last. Returns the record (``{"channels_last", "seconds"}``), or None
    when nothing was measured.
    """
    if not layout_switchable(adapter, small=small):
        return None
    switch = adapter.use_channels_last
    sample = x[: min(len(x), _LAYOUT_EXAMPLES)].to(adapter.device)
    gradients = bool(getattr(adapter, "supports_gradients", False))

    def passes() -> torch.Tensor:
        with torch.inference_mode():
            out = adapter.logits(sample).float()
        if gradients:
            _input_gradient(adapter.as_module(), sample)
        return out

    chosen = False
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        # Warm-up (each layout picks its kernels on first use), and the answers compared.
        outputs = {}
        for on in (False, True):
            switch(on)
            outputs[on] = passes()
        scale = max(1.0, float(outputs[False].abs().max()))
        if not (
            torch.equal(outputs[False].argmax(-1), outputs[True].argmax(-1))
            and torch.allclose(outputs[False], outputs[True], rtol=1e-3, atol=1e-3 * scale)
        ):
            return None
        for _ in range(_LAYOUT_REPEATS):  # interleaved: a change of load meets both layouts
            for on in (False, True):
                switch(on)
                times[on] += _timings(passes, adapter.device, 1)
        seconds = {on: statistics.median(v) for on, v in times.items()}
        chosen = seconds[True] <= _LAYOUT_GAIN * seconds[False]
    except Exception:  # a model that breaks in channels_last keeps its own layout
        return None
    finally:
        switch(chosen)
    return {
        "channels_last": chosen,
        "seconds": {
            "default": round(seconds[False], 6),
            "channels_last": round(seconds[True], 6),
        },
    }


def apply_layout(adapter, layout: Mapping[str, Any] | None, *, small: bool) -> bool:
    """A recorded layout choice, applied as it was made where it can be (a recorded cost may
    come from another model: ``--cost-from``). Returns whether the scan runs in channels_last."""
    current = bool(getattr(adapter, "channels_last", False))
    wanted = bool(layout and layout["channels_last"])
    if adapter.device.type != "cpu" or wanted == current:
        return current
    if wanted and not layout_switchable(adapter, small=small):
        return current
    adapter.use_channels_last(wanted)
    return wanted


def restore_layout(adapter, before: bool | None) -> None:
    """The layout the adapter had before the scan (the user's module is converted in place)."""
    switch = getattr(adapter, "use_channels_last", None)
    if before is not None and callable(switch) and adapter.channels_last != before:
        switch(before)
