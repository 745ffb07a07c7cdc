"""EOT: the transformations against exact tensor references, and EOT-PGD against PGD."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from auditkit.attacks import EOTPGD, PGD, Transformations


def params(n: int, *, angle=0.0, scale=1.0, shift=(0.0, 0.0), brightness=0.0, noise=None):
    return {
        "angle": torch.full((n,), float(angle)),
        "scale": torch.full((n,), float(scale)),
        "shift": torch.tensor([shift] * n, dtype=torch.float32),
        "brightness": torch.full((n,), float(brightness)),
        "noise": torch.zeros(()) if noise is None else noise,
    }


@pytest.fixture()
def images():
    return torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0))


def test_zero_parameters_leave_the_input_unchanged(images):
    out = Transformations().apply(images, params(3), box=(0.0, 1.0))
    torch.testing.assert_close(out, images)


def test_identity_distribution_samples_no_change(images):
    t = Transformations.identity()
    assert t.is_identity
    drawn = t.sample(images.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(t.apply(images, drawn, box=(0.0, 1.0)), images)


def test_translation_by_one_pixel_equals_shifting_the_array(images):
    right = Transformations().apply(images, params(3, shift=(1 / 6, 0.0)), box=None)
    torch.testing.assert_close(right[..., :, 1:], images[..., :, :-1], atol=1e-5, rtol=0)
    down = Transformations().apply(images, params(3, shift=(0.0, 1 / 6)), box=None)
    torch.testing.assert_close(down[..., 1:, :], images[..., :-1, :], atol=1e-5, rtol=0)


def test_quarter_turn_equals_rot90_clockwise(images):
    out = Transformations().apply(images, params(3, angle=math.pi / 2), box=None)
    torch.testing.assert_close(out, torch.rot90(images, -1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_brightness_and_noise_scale_with_the_box_and_are_clamped(images):
    t = Transformations()
    box = (-1.0, 1.0)
    x = images * 1.6 - 0.8  # inside the box with room to brighten
    brighter = t.apply(x, params(3, brightness=0.05), box=box)
    # 5% of the box width (2), not 0.05: the same setting means the same on any scale.
    torch.testing.assert_close(brighter - x, torch.full_like(x, 0.1), atol=1e-6, rtol=0)
    noise = torch.full_like(x, 0.5)
    clamped = t.apply(x, params(3, noise=noise), box=box)
    torch.testing.assert_close(clamped, (x + 1.0).clamp(*box))


def test_sampling_is_seeded_and_within_its_ranges():
    t = Transformations(rotation=10, scale=0.1, translation=0.2, brightness=0.3, noise=0.0)
    a = t.sample((500, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    b = t.sample((500, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert a["angle"].abs().max() <= math.radians(10)
    assert ((a["scale"] - 1).abs() <= 0.1).all()
    assert a["shift"].abs().max() <= 0.2 and a["brightness"].abs().max() <= 0.3
    assert a["angle"].std() > math.radians(10) / 3  # spread over the range, not constant


def test_transformations_are_differentiable(images):
    t = Transformations()
    x = images.clone().requires_grad_(True)
    drawn = t.sample(x.shape, generator=torch.Generator().manual_seed(0))
    (t.apply(x, drawn, box=(0.0, 1.0)) * torch.arange(36.0).view(1, 1, 6, 6)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_with_a_per_pixel_scale_the_transformations_act_on_the_pixels(images):
    # An attack on z = pixels / std (unbounded images) with a std that varies per pixel:
    # shifting z itself would move the picture divided by std, not the picture.
    std = 0.2 + torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(1))
    pixels = images * 3
    z = pixels / std
    t = Transformations()
    shifted = t.apply(z, params(3, shift=(1 / 6, 0.0)), box=None, scale=std) * std
    torch.testing.assert_close(shifted[..., :, 1:], pixels[..., :, :-1], atol=1e-5, rtol=0)
    turned = t.apply(z, params(3, angle=math.pi / 2), box=None, scale=std) * std
    torch.testing.assert_close(turned, torch.rot90(pixels, -1, dims=(2, 3)), atol=1e-5, rtol=0)
    # Brightness stays one uniform shift of the pixels, in units of the typical std.
    brighter = t.apply(z, params(3, brightness=0.05), box=None, scale=std) * std
    torch.testing.assert_close(brighter - pixels, torch.full_like(pixels, 0.05 * std.mean()),
                               atol=1e-5, rtol=0)


class _PixelRecorder(nn.Module):
    """Logits from two pixels; remembers every batch of pixels (z · std) it is shown."""

    def __init__(self, std: torch.Tensor) -> None:
        super().__init__()
        self.std, self.seen = std, []

    def forward(self, z):
        pixels = z * self.std
        self.seen.append(pixels.detach().clone())
        return pixels.flatten(1)[:, :2]


def test_eot_on_scaled_inputs_shows_the_model_transformed_pixels(images):
    std = 0.2 + torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(1))
    recorder = _PixelRecorder(std)
    t = Transformations(rotation=20, scale=0.1, translation=0.2, brightness=0.0, noise=0.0)
    eot = EOTPGD(recorder, eps=0.1, box=None, transform=t, samples=4, input_scale=std,
                 generator=torch.Generator().manual_seed(5))
    eot.expected_logits(images / std)
    copies = images.repeat(4, 1, 1, 1)
    drawn = t.sample(copies.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(recorder.seen[-1], t.apply(copies, drawn, box=None),
                               atol=1e-5, rtol=0)


def test_tables_only_get_noise():
    t = Transformations(noise=0.1)
    x = torch.zeros(4, 5)
    drawn = t.sample(x.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(t.apply(x, drawn, box=None), drawn["noise"])


def test_eot_without_transformations_on_a_deterministic_model_is_pgd(demo_adapter, digits_data):
    net = demo_adapter.as_module()
    x, y = digits_data.x[:64], digits_data.y[:64]
    pgd = PGD(net, eps=0.1, steps=5, generator=torch.Generator().manual_seed(0)).perturb(x, y)
    eot = EOTPGD(net, eps=0.1, steps=5, samples=3, transform=None,
                 generator=torch.Generator().manual_seed(0)).perturb(x, y)
    torch.testing.assert_close(eot.adversarial, pgd.adversarial, atol=1e-6, rtol=0)
    torch.testing.assert_close(eot.margin, pgd.margin, atol=1e-5, rtol=1e-5)


class _NoisyInput(nn.Module):
    """A randomized 'defense': Gaussian noise on the input of every forward pass."""

    def __init__(self, net: nn.Module, sigma: float) -> None:
        super().__init__()
        self.net, self.sigma = net, sigma

    def forward(self, x):
        return self.net(x + self.sigma * torch.randn_like(x))


def test_eot_gradient_averages_over_the_models_randomness(demo_adapter, digits_data):
    net = demo_adapter.as_module()
    noisy = _NoisyInput(net, 0.4)
    x = digits_data.x[:32].clone().requires_grad_(True)
    y = digits_data.y[:32]
    torch.manual_seed(0)
    true = torch.autograd.grad(
        nn.functional.cross_entropy(noisy(x.repeat(256, 1, 1, 1)), y.repeat(256)), x
    )[0]
    eot = EOTPGD(noisy, eps=0.1, samples=16, transform=None)
    one = PGD(noisy, eps=0.1)
    g_eot, _, _ = eot._gradient(x, y)
    g_one, _, _ = one._gradient(x, y)

    def agreement(g):
        return float((g.sign() == true.sign()).float().mean())

    assert agreement(g_eot) > agreement(g_one) + 0.1
