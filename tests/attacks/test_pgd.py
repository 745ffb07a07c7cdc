"""PGD, FGSM and the noise baseline against independent references: a plain PGD loop written
here, and torchattacks' own PGD / PGDL2 / FGSM."""

from __future__ import annotations

import pytest
import torch
import torchattacks
from torch.nn import functional as F

from auditkit.attacks import FGSM, PGD, RandomNoise, margin


@pytest.fixture(scope="module")
def batch(digits_data):
    return digits_data.x[:128], digits_data.y[:128]


@pytest.fixture()
def net(demo_adapter):
    return demo_adapter.as_module()


def reference_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    top2 = logits.topk(2, dim=1)
    true = logits[torch.arange(len(y)), y]
    best_other = torch.where(top2.indices[:, 0] == y, top2.values[:, 1], top2.values[:, 0])
    return best_other - true


def reference_pgd(model, x, y, *, eps, alpha, steps, norm, generator):
    """Madry et al.'s PGD, written out plainly; returns the last iterate and every margin."""
    if norm == "Linf":
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    else:
        delta = torch.empty_like(x).normal_(generator=generator)
        length = delta.flatten(1).norm(dim=1)
        radius = torch.empty_like(length).uniform_(0, 1, generator=generator)
        delta = delta * (radius / length * eps).view(-1, 1, 1, 1)
    adv = (x + delta).clamp(0, 1)
    margins = []
    for _ in range(steps):
        adv = adv.detach().requires_grad_(True)
        logits = model(adv)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), adv)
        margins.append(reference_margin(logits.detach(), y))
        with torch.no_grad():
            if norm == "Linf":
                adv = adv + alpha * grad.sign()
                adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
            else:
                adv = adv + alpha * grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
                d = adv - x
                shrink = torch.clamp(eps / d.flatten(1).norm(dim=1), max=1.0)
                adv = (x + d * shrink.view(-1, 1, 1, 1)).clamp(0, 1)
    with torch.no_grad():
        margins.append(reference_margin(model(adv), y))
    return adv.detach(), torch.stack(margins)


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 0.5)])
def test_matches_a_plain_reference_pgd_loop(net, batch, norm, eps):
    x, y = batch
    steps, alpha = 10, 2.5 * eps / 10
    ref_adv, ref_margins = reference_pgd(
        net, x, y, eps=eps, alpha=alpha, steps=steps, norm=norm,
        generator=torch.Generator().manual_seed(7),
    )
    last = PGD(net, eps=eps, norm=norm, steps=steps, track_best=False,
               generator=torch.Generator().manual_seed(7)).perturb(x, y)
    best = PGD(net, eps=eps, norm=norm, steps=steps, track_best=True,
               generator=torch.Generator().manual_seed(7)).perturb(x, y)

    # Same seed, same steps, no restarts: the same last iterate ...
    torch.testing.assert_close(last.adversarial, ref_adv, atol=1e-5, rtol=0)
    torch.testing.assert_close(last.margin, ref_margins[-1], atol=1e-4, rtol=1e-4)
    # ... and best-iterate tracking returns the best margin over the reference's iterates.
    torch.testing.assert_close(best.margin, ref_margins.max(dim=0).values, atol=1e-4, rtol=1e-4)
    ref_accuracy = float((ref_margins[-1] <= 0).float().mean())
    best_accuracy = float((best.margin <= 0).float().mean())
    assert best_accuracy <= ref_accuracy
    assert ref_accuracy - best_accuracy <= 0.05
    # The returned example really is that good.
    with torch.no_grad():
        torch.testing.assert_close(margin(net(best.adversarial), y), best.margin, atol=1e-4,
                                   rtol=1e-4)


def test_linf_pgd_and_fgsm_equal_torchattacks(net, batch):
    x, y = batch
    ours = PGD(net, eps=0.1, steps=10, alpha=0.02, random_start=False,
               track_best=False).perturb(x, y)
    theirs = torchattacks.PGD(net, eps=0.1, alpha=0.02, steps=10, random_start=False)(x, y)
    torch.testing.assert_close(ours.adversarial, theirs, atol=0, rtol=0)
    torch.testing.assert_close(FGSM(net, eps=0.1)(x, y), torchattacks.FGSM(net, eps=0.1)(x, y),
                               atol=0, rtol=0)


def test_l2_pgd_equals_torchattacks_pgdl2(net, batch):
    x, y = batch
    ours = PGD(net, eps=0.5, norm="L2", steps=10, alpha=0.1, random_start=False,
               track_best=False).perturb(x, y)
    # torchattacks adds 1e-10 to gradient norms, which swamps this batch's smallest gradients
    # (~1e-14); with a negligible guard the two are the same algorithm.
    theirs = torchattacks.PGDL2(net, eps=0.5, alpha=0.1, steps=10, random_start=False,
                                eps_for_division=1e-30)(x, y)
    torch.testing.assert_close(ours.adversarial, theirs, atol=1e-6, rtol=0)


def test_restarts_keep_the_worst_case_per_example(net, batch):
    x, y = batch
    one = PGD(net, eps=0.07, steps=5, restarts=1,
              generator=torch.Generator().manual_seed(3)).perturb(x, y)
    many = PGD(net, eps=0.07, steps=5, restarts=4,
               generator=torch.Generator().manual_seed(3)).perturb(x, y)
    assert many.restart_margins.shape == (4, len(x))
    torch.testing.assert_close(many.restart_margins[0], one.margin)  # same first start
    torch.testing.assert_close(many.margin, many.restart_margins.max(dim=0).values)
    assert (many.margin >= one.margin).all()
    assert (many.margin > 0).sum() >= (one.margin > 0).sum()


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_perturbations_stay_in_the_ball_and_the_box(net, batch, norm):
    x, y = batch
    eps = 0.2 if norm == "Linf" else 1.0
    out = PGD(net, eps=eps, norm=norm, steps=5, generator=torch.Generator().manual_seed(0))(x, y)
    delta = (out - x).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert out.min() >= 0 and out.max() <= 1


def test_an_unbounded_box_clamps_nothing(net, batch):
    x, y = batch
    out = PGD(net, eps=0.5, steps=5, box=None, generator=torch.Generator().manual_seed(0))(x, y)
    assert out.min() < -0.1 or out.max() > 1.1  # left [0, 1]: nothing was clamped
    assert ((out - x).abs().amax(dim=(1, 2, 3)) <= 0.5 + 1e-6).all()


def test_eps_zero_returns_the_input(net, batch):
    x, y = batch
    for attack in (PGD(net, eps=0.0, steps=3), FGSM(net, eps=0.0), RandomNoise(net, eps=0.0)):
        out = attack.perturb(x, y)
        assert torch.equal(out.adversarial, x)
        with torch.no_grad():
            torch.testing.assert_close(out.margin, margin(net(x), y))


def test_random_noise_lies_on_the_sphere_of_its_norm(net, batch):
    x, y = batch
    g = torch.Generator().manual_seed(0)
    linf = RandomNoise(net, eps=0.1, box=None, generator=g)(x, y) - x
    torch.testing.assert_close(linf.abs(), torch.full_like(x, 0.1))
    l2 = RandomNoise(net, eps=0.5, norm="L2", box=None, generator=g)(x, y) - x
    torch.testing.assert_close(l2.flatten(1).norm(dim=1), torch.full((len(x),), 0.5))


def test_random_noise_is_far_weaker_than_pgd(net, batch):
    x, y = batch
    g = torch.Generator().manual_seed(0)
    noise = RandomNoise(net, eps=0.1, draws=8, generator=g).perturb(x, y)
    pgd = PGD(net, eps=0.1, steps=10, generator=g).perturb(x, y)
    assert (noise.margin > 0).float().mean() + 0.2 < (pgd.margin > 0).float().mean()


def test_margin_is_positive_exactly_when_misclassified():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 1.0, 5.0]])
    y = torch.tensor([0, 0, 2])
    torch.testing.assert_close(margin(logits, y), reference_margin(logits, y))
    assert ((margin(logits, y) > 0) == (logits.argmax(1) != y)).all()


def test_a_nan_answer_is_never_the_right_one():
    logits = torch.tensor([[2.0, float("nan"), 0.0], [float("nan")] * 3, [5.0, 1.0, 0.0]])
    y = torch.tensor([0, 2, 0])
    assert margin(logits, y).tolist() == [float("inf"), float("inf"), -4.0]


class _NaNAwayFromClean(torch.nn.Module):
    """The demo CNN on the stored clean batch, NaN on every other input."""

    def __init__(self, net, clean):
        super().__init__()
        self.net, self.clean = net, clean

    def forward(self, x):
        logits = self.net(x)
        moved = (x - self.clean[: len(x)]).flatten(1).abs().amax(dim=1) > 0
        return torch.where(moved.view(-1, 1), torch.full_like(logits, float("nan")), logits)


@pytest.mark.parametrize("attack", ["pgd", "fgsm", "noise"])
def test_inputs_that_make_the_model_answer_nan_count_as_fooled(net, batch, attack):
    x, y = batch
    model = _NaNAwayFromClean(net, x)
    g = torch.Generator().manual_seed(0)
    make = {
        "pgd": lambda: PGD(model, eps=0.1, steps=3, generator=g),
        "fgsm": lambda: FGSM(model, eps=0.1),
        "noise": lambda: RandomNoise(model, eps=0.1, draws=2, generator=g),
    }[attack]
    out = make().perturb(x, y)
    assert (out.margin > 0).all()  # fooled everywhere, not "robust" because NaN > -inf fails
    assert out.nonfinite.all()
    assert torch.isfinite(out.adversarial).all()  # a real input, not a NaN image
    assert not torch.equal(out.adversarial, x)


def test_finite_models_report_no_nonfinite_values(net, batch):
    x, y = batch
    out = PGD(net, eps=0.1, steps=3, generator=torch.Generator().manual_seed(0)).perturb(x, y)
    assert not out.nonfinite.any()


def test_works_inside_torchattacks_multiattack(net, batch):
    x, y = batch
    combo = torchattacks.MultiAttack([FGSM(net, eps=0.1), PGD(net, eps=0.1, steps=5)])
    adv = combo(x, y)
    with torch.no_grad():
        fooled = (net(adv).argmax(1) != y).float().mean()
    assert fooled > 0.2


class _CountingNet(torch.nn.Module):
    """Counts the examples that pass through the wrapped network."""

    def __init__(self, net):
        super().__init__()
        self.net, self.examples = net, 0

    def forward(self, x):
        self.examples += len(x)
        return self.net(x)


@pytest.mark.parametrize(("norm", "eps", "restarts"), [("Linf", 0.1, 1), ("Linf", 0.05, 3),
                                                        ("L2", 0.5, 2)])
def test_stopping_at_the_first_fooling_iterate_changes_no_verdict_and_saves_passes(
    net, batch, norm, eps, restarts
):
    x, y = batch
    counted = _CountingNet(net)
    runs = {}
    for stop in (False, True):
        counted.examples = 0
        out = PGD(counted, eps=eps, norm=norm, steps=10, restarts=restarts,
                  generator=torch.Generator().manual_seed(3), stop_when_fooled=stop).perturb(x, y)
        runs[stop] = (out, counted.examples)
    (full, full_passes), (early, early_passes) = runs[False], runs[True]
    assert torch.equal(full.margin > 0, early.margin > 0)
    fooled = full.margin > 0
    assert 0 < int(fooled.sum()) < len(y)  # the comparison means something on this batch
    # Still standing: the full run's best margin (up to float round-off of smaller batches);
    # fooled: a real adversarial example.
    torch.testing.assert_close(early.margin[~fooled], full.margin[~fooled], atol=1e-4, rtol=1e-3)
    with torch.no_grad():
        assert bool((margin(net(early.adversarial), y)[fooled] > 0).all())
    assert (early.adversarial - x).flatten(1).norm(
        p=float("inf") if norm == "Linf" else 2, dim=1).max() <= eps + 1e-5
    assert early_passes < full_passes
