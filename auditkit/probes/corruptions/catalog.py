"""Image corruptions at five severities, in the spirit of ImageNet-C (Hendrycks & Dietterich 2019).

Every corruption works on a batch in ``[0, 1]`` (the probe maps the adapter's input box there
and back) and draws its randomness from a CPU ``torch.Generator`` it is handed, so the same
seed gives the same corrupted inputs on any device; the arithmetic runs on the batch's device.
``torchvision.transforms.v2.functional`` does the work where it has the transform (Gaussian
blur, contrast, JPEG, resizing for pixelate, elastic warping); motion and defocus blur are
convolutions with kernels built here, fog is low-frequency noise summed over octaves.

Severities are calibrated for the input's size. Value-space corruptions (noise, brightness,
contrast, JPEG quality) do not depend on it and use ImageNet-C's levels (contrast and fog:
CIFAR-10-C's milder ones, since ImageNet-C's mildest contrast already keeps only 40%).
Spatial corruptions (blurs, elastic) are given as a fraction of the image side,
ImageNet-C's values at 224 px, with a floor in pixels from CIFAR-10-C's 32 px values, so a
blur stays visible on small images: ``pixels = max(fraction × side, floor)``. Pixelate
uses CIFAR-10-C's factors up to 32 px and ImageNet-C's from 224 px (interpolated in log side
between): on small images, ImageNet-C's factors leave too few pixels to read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as tF
import torchvision.transforms.v2.functional as TF

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class ImageCorruption:
    """One corruption: its name, family, what a severity means, and the function that applies it.

    ``apply(x, level, generator)`` takes ``x`` of shape (N, C, H, W) in [0, 1] and the level
    ``levels(side)[severity - 1]``; it returns the corrupted batch in [0, 1].
    """

    name: str
    family: str
    meaning: str
    levels: Callable[[int], tuple[float, ...]]
    apply: Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]
    #: Smaller images are not corrupted by this (the probe says why in the report).
    min_side: int = 1


def _sized(fractions: tuple[float, ...], floors: tuple[float, ...]) -> Callable[[int], tuple]:
    return lambda side: tuple(max(f * side, lo) for f, lo in zip(fractions, floors, strict=True))


def _by_size(small: tuple[float, ...], large: tuple[float, ...]) -> Callable[[int], tuple]:
    """CIFAR-10-C's ``small`` levels up to 32 px, ImageNet-C's ``large`` from 224 px, and in
    between interpolated in log side."""

    def levels(side: int) -> tuple[float, ...]:
        t = min(1.0, max(0.0, math.log(max(side, 1) / 32) / math.log(224 / 32)))
        return tuple(a + t * (b - a) for a, b in zip(small, large, strict=True))

    return levels


def _fixed(values: tuple[float, ...]) -> Callable[[int], tuple]:
    return lambda side: values


def _randn(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator).to(x.device, x.dtype)


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (x + sigma * _randn(x, generator)).clamp(0, 1)


def shot_noise(x: torch.Tensor, photons: float, generator: torch.Generator) -> torch.Tensor:
    counts = torch.poisson((x.detach().cpu().float() * photons).clamp_min(0), generator=generator)
    return (counts.to(x.device, x.dtype) / photons).clamp(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    return TF.gaussian_blur(x, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma]).clamp(0, 1)


def _per_example_conv(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Convolve example i (every channel) with ``kernels[i]`` (k × k), replicate-padded."""
    n, c, h, w = x.shape
    k = kernels.shape[-1]
    pad = k // 2
    flat = tF.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="replicate")
    weight = kernels.to(x.device, x.dtype).repeat_interleave(c, dim=0)[:, None]
    return tF.conv2d(flat, weight, groups=n * c).reshape(n, c, h, w)


def motion_blur(x: torch.Tensor, length: float, generator: torch.Generator) -> torch.Tensor:
    """A straight streak ``length`` px long at a random angle per example (anti-aliased line)."""
    n = len(x)
    angles = torch.rand(n, generator=generator) * math.pi
    radius = max(1, math.ceil(length / 2))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    dx, dy = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    along = (xx * dx + yy * dy).clamp(-length / 2, length / 2)
    distance = torch.hypot(xx - along * dx, yy - along * dy)
    kernels = (1 - distance).clamp_min(0)
    kernels = kernels / kernels.sum(dim=(1, 2), keepdim=True)
    return _per_example_conv(x, kernels).clamp(0, 1)


def defocus_blur(x: torch.Tensor, radius: float, generator: torch.Generator) -> torch.Tensor:
    """An anti-aliased disk of ``radius`` px: the lens-out-of-focus blur."""
    size = max(1, math.ceil(radius + 0.5))
    grid = torch.arange(-size, size + 1, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = (radius + 0.5 - torch.hypot(xx, yy)).clamp(0, 1)
    disk = disk / disk.sum()
    return _per_example_conv(x, disk.expand(len(x), -1, -1)).clamp(0, 1)


def brightness(x: torch.Tensor, shift: float, generator: torch.Generator) -> torch.Tensor:
    """ImageNet-C adds to the value channel in HSV; on [0, 1] pixels that is an added shift."""
    return (x + shift).clamp(0, 1)


def contrast(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    if x.shape[1] in (1, 3):
        return TF.adjust_contrast(x, factor)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * factor + mean).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: float, generator: torch.Generator) -> torch.Tensor:
    """JPEG compression at ``quality`` (encoded on the CPU: the encoder needs 8-bit images;
    grey or RGB only, the probe does not run it on other channel counts)."""
    pixels = (x.detach().cpu().float() * 255).round().clamp(0, 255).to(torch.uint8)
    out = TF.jpeg(pixels, quality=int(quality))
    return (out.float() / 255).to(x.device, x.dtype)


def pixelate(x: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Down-sample to ``factor`` of the side (area average), then back up (nearest)."""
    h, w = x.shape[-2:]
    small = [max(1, round(h * factor)), max(1, round(w * factor))]
    down = TF.resize(x, small, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.resize(down, [h, w], interpolation=TF.InterpolationMode.NEAREST).clamp(0, 1)


def elastic(x: torch.Tensor, shift: float, generator: torch.Generator) -> torch.Tensor:
    """A smooth random warp moving pixels by ``shift`` px (root mean square).

    The warp is ``torchvision``'s elastic transform (a smoothed uniform displacement field,
    bilinear resampling, zeros outside), with one field per example; ``v2.functional.elastic``
    takes one field per call, so the batch is resampled here in a single ``grid_sample``.
    """
    n, _, h, w = x.shape
    # A uniform field blurred with σ = a tenth of the side has no detail finer than that, so it
    # is drawn on a grid of about ten cells a side, blurred there and up-sampled: the same kind
    # of field as blurring at full size, at a fraction of the cost on large images.
    cells = max(2, min(h, w, 10))
    field = torch.rand(n, 2, cells, cells, generator=generator) * 2 - 1
    field = TF.gaussian_blur(field, kernel_size=[3, 3], sigma=[1.0, 1.0])
    field = tF.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
    field = field / field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
    # normalised coordinates: 2 / side per pixel, (N, H, W, 2) as grid_sample reads them
    scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1)
    displacement = (field * shift * scale).permute(0, 2, 3, 1)
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    grid = (base + displacement).to(x.device, x.dtype)
    out = tF.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp(0, 1)


def fog(x: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """Low-frequency noise (octaves of up-sampled random grids, amplitude decaying by
    ``FOG_DECAY``) added with strength ``level``, then the image rescaled to keep its peak."""
    n, _, h, w = x.shape
    field = torch.zeros(n, 1, h, w)
    amplitude, cells = 1.0, 2
    while cells <= max(h, w):
        coarse = torch.rand(n, 1, cells, cells, generator=generator)
        field += amplitude * tF.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
        amplitude /= FOG_DECAY
        cells *= 2
    low, high = field.amin(dim=(2, 3), keepdim=True), field.amax(dim=(2, 3), keepdim=True)
    field = ((field - low) / (high - low).clamp_min(1e-12)).to(x.device, x.dtype)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return ((x + level * field) * peak / (peak + level)).clamp(0, 1)


FOG_DECAY = 2.0
#: Below 16 px, dropping a row or two of pixels is not a gradual loss of detail: an 8 px digit
#: read at 7 px aliases, and accuracy jumps up and down with the severity.
PIXELATE_MIN_SIDE = 16

_CATALOG = (
    ImageCorruption(
        "gaussian_noise", "noise", "σ of added Gaussian noise (fraction of the pixel range)",
        _fixed((0.08, 0.12, 0.18, 0.26, 0.38)), gaussian_noise,
    ),
    ImageCorruption(
        "shot_noise", "noise", "photons per unit intensity (Poisson noise; fewer is noisier)",
        _fixed((60.0, 25.0, 12.0, 5.0, 3.0)), shot_noise,
    ),
    ImageCorruption(
        "gaussian_blur", "blur", "σ of the Gaussian blur (px)",
        _sized((1 / 224, 2 / 224, 3 / 224, 4 / 224, 6 / 224), (0.4, 0.6, 0.7, 0.8, 1.0)),
        gaussian_blur,
    ),
    ImageCorruption(
        "defocus_blur", "blur", "radius of the disk blur (px)",
        _sized((3 / 224, 4 / 224, 6 / 224, 8 / 224, 10 / 224), (0.6, 0.8, 1.0, 1.5, 2.0)),
        defocus_blur,
    ),
    ImageCorruption(
        "motion_blur", "blur", "length of the streak (px), random direction per image",
        _sized((10 / 224, 15 / 224, 20 / 224, 25 / 224, 30 / 224), (1.5, 2.0, 2.5, 3.0, 4.0)),
        motion_blur,
    ),
    ImageCorruption(
        "brightness", "weather", "shift added to every pixel (fraction of the range)",
        _fixed((0.1, 0.2, 0.3, 0.4, 0.5)), brightness,
    ),
    ImageCorruption(
        "fog", "weather", "strength of the low-frequency haze (CIFAR-10-C levels)",
        _fixed((0.2, 0.5, 0.75, 1.0, 1.5)), fog,
    ),
    ImageCorruption(
        "contrast", "digital", "contrast factor (fraction kept, CIFAR-10-C levels)",
        _fixed((0.75, 0.5, 0.4, 0.3, 0.15)), contrast,
    ),
    ImageCorruption(
        "elastic", "digital", "RMS displacement of the smooth random warp (px)",
        _sized((1 / 224, 2 / 224, 3 / 224, 4 / 224, 6 / 224), (0.2, 0.35, 0.5, 0.7, 0.9)),
        elastic,
    ),
    ImageCorruption(
        "pixelate", "digital", "side kept before scaling back up (fraction; CIFAR-10-C's up to 32 px, "
        "ImageNet-C's from 224 px)",
        _by_size((0.95, 0.9, 0.85, 0.75, 0.65), (0.6, 0.5, 0.4, 0.3, 0.25)), pixelate,
        min_side=PIXELATE_MIN_SIDE,
    ),
    ImageCorruption(
        "jpeg", "digital", "JPEG quality (lower is worse)", _fixed((25, 18, 15, 10, 7)), jpeg,
    ),
)

IMAGE = {c.name: c for c in _CATALOG}
IMAGE_CORRUPTIONS = tuple(IMAGE)


def corrupt_image(
    x: torch.Tensor, name: str, severity: int, generator: torch.Generator
) -> torch.Tensor:
    """``x`` (N, C, H, W) in [0, 1] under corruption ``name`` at ``severity`` (1–5)."""
    corruption = IMAGE[name]
    level = corruption.levels(min(x.shape[-2:]))[severity - 1]
    return corruption.apply(x, level, generator)
