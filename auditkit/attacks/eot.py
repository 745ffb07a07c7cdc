"""Expectation over Transformation (Athalye et al. 2018): attack the average over a distribution.

``Transformations`` is a distribution of differentiable tensor transformations — rotation,
scale and translation through ``affine_grid``/``grid_sample``, brightness, Gaussian noise — and
``EOTPGD`` ascends the loss averaged over ``samples`` draws of it per step. Each draw is a fresh
forward pass, so a model whose own forward pass is random is averaged over its randomness too
(torchattacks' ``EOTPGD`` does only that part and samples no transformations).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from auditkit.attacks._base import (
    Box,
    _view,
    clamp_box,
    finite_or_zero,
    margin,
    nonfinite_rows,
)
from auditkit.attacks.pgd import PGD


@dataclass(frozen=True)
class Transformations:
    """A distribution of input transformations, each parameter drawn uniformly per example.

    Spatial transformations and brightness apply to image batches ``(N, C, H, W)`` only; noise
    applies to every input. Sizes are relative, so one default fits every image size and box.

    Args:
        rotation: maximum rotation in degrees (drawn from ``±rotation``).
        scale: maximum relative zoom (factor drawn from ``1 ± scale``).
        translation: maximum shift as a fraction of the image side (``±translation``).
        brightness: maximum additive shift as a fraction of the box width.
        noise: standard deviation of Gaussian noise as a fraction of the box width.

    Example:
        >>> t = Transformations()
        >>> params = t.sample(x.shape, generator=g, device=x.device)
        >>> t.apply(x, params, box=(0.0, 1.0))
    """

    rotation: float = 8.0
    scale: float = 0.05
    translation: float = 0.05
    brightness: float = 0.05
    noise: float = 0.02

    @classmethod
    def identity(cls) -> Transformations:
        return cls(rotation=0.0, scale=0.0, translation=0.0, brightness=0.0, noise=0.0)

    @property
    def is_identity(self) -> bool:
        return not any(asdict(self).values())

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def sample(
        self,
        shape: torch.Size | tuple[int, ...],
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """Draw one transformation per example of a batch of ``shape``."""
        n = shape[0]

        def uniform(limit: float) -> torch.Tensor:
            u = torch.rand(n, generator=generator, device=device)
            return (2 * u - 1) * limit

        params = {
            "angle": uniform(math.radians(self.rotation)),
            "scale": 1 + uniform(self.scale),
            "shift": torch.stack([uniform(self.translation), uniform(self.translation)], dim=1),
            "brightness": uniform(self.brightness),
        }
        params["noise"] = (
            torch.randn(tuple(shape), generator=generator, device=device) * self.noise
            if self.noise
            else torch.zeros((), device=device)
        )
        return params

    def apply(
        self,
        x: torch.Tensor,
        params: dict[str, torch.Tensor],
        *,
        box: Box,
        scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Transform ``x`` with drawn ``params`` (differentiable in ``x``); clamped into ``box``.

        ``scale``: ``x`` is measured in units of a per-feature scale (pixels = ``x · scale``, as
        when an attack runs on ``x / std`` for an unbounded box). Images are then transformed as
        pixels — a shift moves the picture, not the picture divided by a per-pixel spread —
        with brightness and noise in units of the mean scale, so brightness stays one uniform
        shift; other inputs get their noise in ``x``'s own units (one std per feature).

        Example:
            >>> t.apply(pixels / std, params, box=None, scale=std)  # transformed pixels / std
        """
        width = (box[1] - box[0]) if box is not None else 1.0
        if x.dim() != 4:
            return clamp_box(x + params["noise"] * width, box)
        pixels = x if scale is None else x * scale
        unit = width if scale is None else width * scale.mean()
        pixels = _affine(pixels, params["angle"], params["scale"], params["shift"])
        pixels = pixels + _view(params["brightness"], pixels) * unit + params["noise"] * unit
        return clamp_box(pixels if scale is None else pixels / scale, box)


def _affine(
    x: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Rotate by ``angle`` (radians, clockwise on screen), zoom by ``scale`` and move the content
    by ``shift`` (fractions of the side; +x right, +y down), about the image centre."""
    if not (angle.any() or (scale != 1).any() or shift.any()):
        return x
    # affine_grid maps output coordinates to input coordinates, so build the inverse map:
    # p_in = R(-angle) (p_out - t) / scale, with t in normalized units (the side spans 2).
    cos, sin = torch.cos(angle), torch.sin(angle)
    inv = torch.stack(
        [torch.stack([cos, sin], dim=1), torch.stack([-sin, cos], dim=1)], dim=1
    ) / scale.view(-1, 1, 1)
    t = 2 * shift
    theta = torch.cat([inv, -(inv @ t.unsqueeze(-1))], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class EOTPGD(PGD):
    r"""PGD on the expected loss over transformations (Athalye et al. 2018,
    https://arxiv.org/abs/1707.07397).

    Each step averages the gradient over ``samples`` forward passes, each of
    ``transform(x + δ)`` with freshly drawn transformation parameters; the margin used for
    best-iterate tracking is the average margin over the same draws. Without transformations it
    still averages over the model's own randomness.

    Args:
        model, eps, norm, steps, alpha, restarts, random_start, track_best, box, generator:
            as for ``PGD``.
        transform: the distribution (``None``: the model's randomness only).
        samples: draws per step.
        input_scale: per-feature scale of the inputs (pixels = input · scale), for an attack
            run in std units; the transformations then act on the pixels
            (``Transformations.apply``).

    Example:
        >>> EOTPGD(model, eps=0.1, transform=Transformations(), samples=8, generator=g)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        norm: str = "Linf",
        steps: int = 10,
        alpha: float | None = None,
        restarts: int = 1,
        random_start: bool = True,
        track_best: bool = True,
        box: Box = (0.0, 1.0),
        generator: torch.Generator | None = None,
        transform: Transformations | None = None,
        samples: int = 8,
        input_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__(
            model, eps=eps, norm=norm, steps=steps, alpha=alpha, restarts=restarts,
            random_start=random_start, track_best=track_best, box=box, generator=generator,
            name="EOTPGD",
        )
        if samples < 1:
            raise ValueError("samples must be ≥ 1")
        self.transform = transform if transform is not None and not transform.is_identity else None
        self.samples = int(samples)
        self.input_scale = input_scale

    def expected_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``samples`` transformed copies, shape ``(samples, N, classes)``."""
        copies = x.unsqueeze(0).expand(self.samples, *x.shape).reshape(-1, *x.shape[1:])
        if self.transform is not None:
            params = self.transform.sample(copies.shape, generator=self.generator, device=x.device)
            copies = self.transform.apply(copies, params, box=self.box, scale=self.input_scale)
        return self.get_logits(copies).float().view(self.samples, len(x), -1)

    def _gradient(
        self, adv: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        adv = adv.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.expected_logits(adv)
            loss = F.cross_entropy(logits.flatten(0, 1), labels.repeat(self.samples))
            (grad,) = torch.autograd.grad(loss, adv)
        bad = _nonfinite_draws(logits.detach()) | nonfinite_rows(grad)
        return finite_or_zero(grad), self._mean_margin(logits.detach(), labels), bad

    def _final_margin(
        self, adv: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            logits = self.expected_logits(adv)
        return self._mean_margin(logits, labels), _nonfinite_draws(logits)

    def _mean_margin(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mean = margin(logits.flatten(0, 1), labels.repeat(self.samples)).view(
            self.samples, -1
        ).mean(dim=0)
        # +inf and -inf draws average to NaN: a non-finite answer counts as the attack's success.
        return torch.where(torch.isnan(mean), torch.full_like(mean, float("inf")), mean)


def _nonfinite_draws(logits: torch.Tensor) -> torch.Tensor:
    """Per input: whether any draw's logits (``(samples, N, classes)``) are non-finite."""
    return ~torch.isfinite(logits).flatten(2).all(dim=2).all(dim=0)
