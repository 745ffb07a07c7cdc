"""``--arch timm:NAME``: any timm model, rebuilt without downloading, for a weights file.

timm knows, per model, the input size and the mean/std its weights were trained with (its
"pretrained config"); a state_dict does not. So the network is built with
``pretrained=False`` (nothing is fetched), its class count and input channels are read from the
weights (classifier and first-conv shapes, as the pretrained config names them), and the
config's mean/std/input size become the audit's metadata where the file has none. The network
is wrapped in ``ResizeTo`` so that any image size is resized to the config's inside the model:
attacks and corruptions stay in the data's own pixel space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from auditkit.errors import AuditkitInputError, one_line

PREFIX = "timm:"
NO_TIMM = (
    "--arch {arch}: timm is not installed in this environment; from auditkit's clone run "
    "pip install -e '.[timm]'"
)
UNKNOWN = "--arch {arch!r}: timm has no model {name!r}; see timm.list_models()"


class ResizeTo(nn.Module):
    """Bilinear resize to the size the network was trained at, then the network.

    Resizing is linear per channel, so it commutes with the adapter's per-channel normalisation:
    the network sees exactly what its own preprocessing would give it, and gradients reach the
    pixels the audit perturbs.
    """

    def __init__(self, model: nn.Module, size: tuple[int, int] | None,
                 output: str | None = None) -> None:
        super().__init__()
        self.model, self.size, self.output = model, size, output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None and x.dim() == 4 and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        if self.output is None:
            return self.model(x)
        return getattr(self.model(pixel_values=x), self.output)


def is_timm(arch: Any) -> bool:
    return isinstance(arch, str) and arch.startswith(PREFIX)


def _timm(arch: str) -> Any:
    try:
        import timm
    except ImportError:
        raise AuditkitInputError(NO_TIMM.format(arch=arch)) from None
    return timm


def _shape(state_dict: Mapping[str, torch.Tensor] | None, key: str | None) -> tuple[int, ...]:
    if not state_dict or not key or f"{key}.weight" not in state_dict:
        return ()
    return tuple(state_dict[f"{key}.weight"].shape)


def build_timm(arch: str, state_dict: Mapping[str, torch.Tensor] | None = None,
               num_classes: int | None = None) -> nn.Module:
    """The untrained timm network ``arch`` names, shaped like ``state_dict`` when given."""
    timm = _timm(arch)
    name = arch[len(PREFIX):]
    if not timm.is_model(name):
        raise AuditkitInputError(UNKNOWN.format(arch=arch, name=name))
    cfg = getattr(timm.models.get_pretrained_cfg(name), "__dict__", None) or {}
    kwargs: dict[str, Any] = {"pretrained": False}
    classifier = _shape(state_dict, cfg.get("classifier"))
    first = cfg.get("first_conv")
    first = first[0] if isinstance(first, (list, tuple)) else first
    conv = _shape(state_dict, first)
    if classifier:
        kwargs["num_classes"] = classifier[0]
    elif num_classes:
        kwargs["num_classes"] = num_classes
    if len(conv) >= 2:
        kwargs["in_chans"] = conv[1]
    try:
        return timm.create_model(name, **kwargs)
    except Exception as exc:  # timm's own errors for impossible arguments
        raise AuditkitInputError(f"--arch {arch!r}: timm cannot build it ({one_line(exc, 200)})"
                                 ) from None


def _per_channel(values: Any, channels: int) -> tuple[float, ...] | None:
    """The config's statistics for ``channels`` inputs (a 1-channel network built from a
    3-channel config gets their average, as timm's own first-conv adaptation does)."""
    if not values:
        return None
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    return (sum(values) / len(values),) * channels


def with_pretrained_config(module: nn.Module, metadata: Any) -> tuple[nn.Module, Any]:
    """``module`` wrapped in ``ResizeTo`` and ``metadata`` completed from its timm config
    (fields the file set itself are kept; the command line overrides both)."""
    import dataclasses

    cfg = dict(getattr(module, "pretrained_cfg", None) or {})
    size = cfg.get("input_size")
    channels = int(getattr(module, "in_chans", 0) or (size[0] if size else 3))
    filled = {
        "mean": metadata.mean or _per_channel(cfg.get("mean"), channels),
        "std": metadata.std or _per_channel(cfg.get("std"), channels),
        "input_range": metadata.input_range or (0.0, 1.0),
        "modality": metadata.modality or "image",
    }
    extra = dict(metadata.extra)
    extra.setdefault("timm", {"input_size": list(size) if size else None,
                              "interpolation": cfg.get("interpolation"),
                              "mean": list(cfg.get("mean") or []) or None,
                              "std": list(cfg.get("std") or []) or None})
    metadata = dataclasses.replace(metadata, extra=extra, **filled)
    hw = (int(size[1]), int(size[2])) if size and len(size) == 3 else None
    return ResizeTo(module, hw), metadata
