"""Out-of-distribution sets for OOD-detection checks: the user's own, or generated ones.

Generated sets are synthetic and say so in their name and description. For images:
uniform noise over the input box, Gaussian noise with the audit images' mean and spread, and
in-distribution images with their pixel positions shuffled (same intensities, no shape). For
tables: each feature drawn uniformly over its observed range, each feature drawn from a Gaussian
with its observed mean and spread (correlations gone), and columns shuffled independently
across rows (every marginal exact, the joint structure destroyed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from auditkit.data.core import AuditData
from auditkit.errors import AuditkitInputError


@dataclass(frozen=True)
class OODSet:
    """Inputs that do not come from the audit data's distribution.

    Attributes:
        name: short label for tables and figures (``uniform noise``).
        x: inputs shaped like the audit data, inside its input box.
        description: how the set was made, for the report.
        generated: True when auditkit synthesised it.
    """

    name: str
    x: torch.Tensor
    description: str
    generated: bool = True


def _box(data: AuditData) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    if data.input_range is not None:
        return data.input_range
    return data.x.min(), data.x.max()


def _uniform(data: AuditData, n: int, generator: torch.Generator) -> OODSet:
    shape = (n, *data.input_shape)
    if data.modality == "image":
        lo, hi = _box(data)
        x = torch.rand(shape, generator=generator) * (hi - lo) + lo
        how = f"every pixel uniform over the input range [{float(lo):g}, {float(hi):g}]"
        return OODSet("uniform noise", x, f"synthetic: {how}")
    lo, hi = data.x.min(dim=0).values, data.x.max(dim=0).values
    x = torch.rand(shape, generator=generator) * (hi - lo) + lo
    return OODSet(
        "feature-wise uniform noise",
        x,
        "synthetic: each feature drawn independently and uniformly over its observed range",
    )


def _gaussian(data: AuditData, n: int, generator: torch.Generator) -> OODSet:
    shape = (n, *data.input_shape)
    if data.modality == "image":
        # per-channel statistics so a colour set keeps its colour balance
        per_channel = (
            data.x.transpose(0, 1).reshape(data.x.shape[1], -1) if data.x.ndim > 3 else None
        )
        if per_channel is not None:
            view = (1, -1, *([1] * (data.x.ndim - 2)))
            mean = per_channel.mean(dim=1).view(view)
            std = per_channel.std(dim=1).view(view)
        else:
            mean, std = data.x.mean(), data.x.std()
        x = torch.randn(shape, generator=generator) * std + mean
        lo, hi = _box(data)
        x = x.clamp(float(lo), float(hi))
        return OODSet(
            "Gaussian noise",
            x,
            "synthetic: every pixel Gaussian with the audit images' per-channel mean and "
            "standard deviation, clipped to the input range",
        )
    mean, std = data.x.mean(dim=0), data.x.std(dim=0)
    x = torch.randn(shape, generator=generator) * std + mean
    return OODSet(
        "feature-wise Gaussian noise",
        x,
        "synthetic: each feature drawn independently from a Gaussian with its observed mean "
        "and standard deviation",
    )


def _shuffled(data: AuditData, n: int, generator: torch.Generator) -> OODSet:
    source = torch.randint(len(data), (n,), generator=generator)
    if data.modality == "image":
        x = data.x[source]
        channels = x.shape[1] if x.ndim > 3 else 1
        flat = x.reshape(n, channels, -1)
        # one permutation per image, shared by its channels: pixels keep their colour
        order = torch.argsort(torch.rand(n, flat.shape[-1], generator=generator), dim=1)
        flat = torch.gather(flat, 2, order[:, None, :].expand_as(flat))
        return OODSet(
            "pixel-shuffled images",
            flat.reshape(x.shape),
            "synthetic: audit images with their pixel positions randomly permuted (the same "
            "intensities, no structure)",
        )
    x = data.x[source].reshape(n, -1).clone()
    for j in range(x.shape[1]):
        x[:, j] = x[torch.randperm(n, generator=generator), j]
    return OODSet(
        "shuffled columns",
        x.reshape(n, *data.input_shape),
        "synthetic: audit rows with every column permuted independently (each feature's "
        "distribution kept, their joint structure destroyed)",
    )


def generated_ood_sets(data: AuditData, *, n: int, generator: torch.Generator) -> list[OODSet]:
    """Three generated OOD sets shaped like ``data`` (see the module docstring).

    Args:
        data: the in-distribution audit data (its modality picks image or tabular sets).
        n: examples per set.
        generator: seeded torch generator (same seed, same sets).

    Example:
        >>> sets = generated_ood_sets(data, n=256, generator=context.generator("calibration.ood"))
    """
    if len(data) == 0:
        raise AuditkitInputError("OOD sets: the audit data is empty")
    return [maker(data, n, generator) for maker in (_uniform, _gaussian, _shuffled)]


def as_ood_set(source: str | Path | AuditData | torch.Tensor, data: AuditData) -> OODSet:
    """The user's OOD set (a data spec, ``AuditData`` or an input tensor), checked against the
    audit data's input shape."""
    if isinstance(source, torch.Tensor):
        name, x, description = "user OOD set", source.float(), "user-supplied tensor"
    elif isinstance(source, AuditData):
        name, x = source.name or "user OOD set", source.x
        description = source.description or f"user-supplied ({source.source or source.name})"
    elif isinstance(source, (str, Path)):
        from auditkit.data.loaders import load_data

        loaded = load_data(source)
        name, x, description = loaded.name, loaded.x, f"user-supplied: {source}"
    else:
        raise AuditkitInputError(
            f"--set calibration.ood: expected a data path or data set, got {type(source).__name__}"
        )
    if tuple(x.shape[1:]) != tuple(data.input_shape):
        raise AuditkitInputError(
            f"--set calibration.ood: OOD examples have shape {tuple(x.shape[1:])} but the audit "
            f"data has {tuple(data.input_shape)}; give inputs shaped like the audit data"
        )
    if len(x) == 0:
        raise AuditkitInputError("--set calibration.ood: the OOD set is empty")
    return OODSet(name, x, description, generated=False)
