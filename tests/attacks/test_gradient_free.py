"""Gradient-free attacks: Square (scores) and HopSkipJump (labels) on black boxes.

On a linear model the exact robust accuracy is known in closed form (an example is robust iff
its logit margin exceeds eps times the dual norm of the weight difference), so the attacks are
checked against the truth, not against themselves.
"""

from __future__ import annotations

import pytest
import torch

from auditkit.attacks import HopSkipJump, Limits, QueryModel, RandomNoise, Square, per_example_norm

D = 8


@pytest.fixture(scope="module")
def linear():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(2, D, generator=g)
    x = torch.randn(200, D, generator=g)

    def scores(z: torch.Tensor) -> torch.Tensor:
        return z @ weights.T

    y = scores(x).argmax(1)  # every example correct: the attacks start from clean accuracy 1
    return weights, x, y, scores


def exact_robust_accuracy(weights, x, scores, norm: str, eps: float) -> float:
    out = scores(x)
    margins = (out[:, 1] - out[:, 0]).abs()
    diff = weights[1] - weights[0]
    dual = diff.abs().sum() if norm == "Linf" else diff.norm()
    return float((margins > eps * dual).float().mean())


def robust(out) -> float:
    return float((out.margin <= 0).float().mean())


def labels_only(scores):
    return lambda z: torch.nn.functional.one_hot(scores(z).argmax(1), 2).float()


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.3), ("L2", 0.8)])
def test_square_reaches_the_exact_robust_accuracy_of_a_linear_model(linear, norm, eps):
    weights, x, y, scores = linear
    exact = exact_robust_accuracy(weights, x, scores, norm, eps)
    out = Square(QueryModel(scores), eps=eps, norm=norm, queries=1000, box=None,
                 generator=torch.Generator().manual_seed(1)).perturb(x, y)
    # No attack can beat the truth; a working one gets close to it.
    assert exact <= robust(out) <= exact + 0.02
    assert bool((per_example_norm(out.adversarial - x, norm) <= eps + 1e-5).all())


def test_square_counts_every_query_and_stays_within_budget(linear):
    _, x, y, scores = linear
    model = QueryModel(scores)
    out = Square(model, eps=0.3, queries=50, box=None,
                 generator=torch.Generator().manual_seed(0)).perturb(x, y)
    assert int(out.queries.sum()) == model.queries
    assert float(out.queries.max()) <= 50
    # Fooled examples stop costing queries: they used fewer than the robust ones.
    fooled = out.margin > 0
    assert float(out.queries[fooled].mean()) < float(out.queries[~fooled].mean())


@pytest.mark.parametrize("attack", ["square", "hopskipjump"])
def test_more_queries_are_never_weaker(linear, attack):
    _, x, y, scores = linear
    x, y = x[:80], y[:80]

    def run(queries):
        if attack == "square":
            cls, model, eps, norm = Square, QueryModel(scores), 0.2, "Linf"
        else:
            cls, model, eps, norm = HopSkipJump, QueryModel(labels_only(scores)), 0.6, "L2"
        return cls(model, eps=eps, norm=norm, queries=queries, box=None,
                   generator=torch.Generator().manual_seed(3)).perturb(x, y)

    few, many = run(8 if attack == "square" else 60), run(400)
    # Each example's longer search repeats the shorter one first: what was fooled stays fooled.
    assert bool(((few.margin > 0) <= (many.margin > 0)).all())
    assert robust(many) < robust(few)


@pytest.mark.parametrize(("norm", "eps"), [("L2", 0.8), ("Linf", 0.3)])
def test_hopskipjump_with_labels_only_approaches_the_exact_robust_accuracy(linear, norm, eps):
    weights, x, y, scores = linear
    x, y = x[:100], y[:100]
    exact = exact_robust_accuracy(weights, x, scores, norm, eps)
    model = QueryModel(labels_only(scores))
    out = HopSkipJump(model, eps=eps, norm=norm, queries=1000, box=None,
                      generator=torch.Generator().manual_seed(1)).perturb(x, y)
    assert exact <= robust(out) <= exact + 0.06
    assert int(out.queries.sum()) == model.queries
    # Every example it calls fooled really is misclassified within eps.
    fooled = out.margin > 0
    assert bool((scores(out.adversarial[fooled]).argmax(1) != y[fooled]).all())
    assert bool((per_example_norm(out.adversarial[fooled] - x[fooled], norm) <= eps).all())


def test_limits_keep_features_in_bounds_and_frozen_ones_fixed(linear):
    _, x, y, scores = linear
    lo, hi = x.amin(0), x.amax(0)
    mask = torch.ones(D)
    mask[[2, 5]] = 0  # two "categorical" columns
    limits = Limits(lo, hi, mask)
    for attack in (Square(QueryModel(scores), eps=0.5, queries=100, limits=limits,
                          generator=torch.Generator().manual_seed(0)),
                   HopSkipJump(QueryModel(labels_only(scores)), eps=0.5, norm="Linf",
                               queries=200, limits=limits,
                               generator=torch.Generator().manual_seed(0))):
        adv = attack.perturb(x[:40], y[:40]).adversarial
        assert bool((adv >= lo - 1e-6).all() and (adv <= hi + 1e-6).all())
        assert torch.equal(adv[:, [2, 5]], x[:40, [2, 5]])


def test_eps_zero_changes_nothing(linear):
    _, x, y, scores = linear
    out = Square(QueryModel(scores), eps=0.0, queries=100, box=None).perturb(x, y)
    assert torch.equal(out.adversarial, x)
    assert robust(out) == 1.0


def test_square_breaks_the_demo_cnn_through_its_scores_alone(demo_adapter, digits_data):
    x, y = digits_data.x[:150], digits_data.y[:150]
    correct = demo_adapter.predict_logits(x).argmax(1) == y
    x, y = x[correct], y[correct]
    black_box = QueryModel(demo_adapter.predict_logits)
    square = Square(black_box, eps=0.1, queries=300, generator=torch.Generator().manual_seed(0))
    out = square.perturb(x, y)
    noise = RandomNoise(QueryModel(demo_adapter.predict_logits), eps=0.1, draws=8,
                        generator=torch.Generator().manual_seed(0)).perturb(x, y)
    assert robust(out) < robust(noise) - 0.2  # beats random noise of the same size by far
    assert robust(out) < 0.8  # well below clean accuracy (1 on these examples)
    assert bool((out.adversarial >= 0).all() and (out.adversarial <= 1).all())


def test_square_is_at_least_as_strong_as_torchattacks_square_at_the_same_budget(
    demo_adapter, digits_data
):
    """The reference: torchattacks' Square (images in [0, 1] only) runs on the same black box."""
    import contextlib
    import io

    import torchattacks

    x, y = digits_data.x[:120], digits_data.y[:120]
    correct = demo_adapter.predict_logits(x).argmax(1) == y
    x, y = x[correct], y[correct]
    ours = Square(QueryModel(demo_adapter.predict_logits), eps=0.1, queries=300,
                  generator=torch.Generator().manual_seed(0)).perturb(x, y)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints about the device
        reference = torchattacks.Square(QueryModel(demo_adapter.predict_logits), norm="Linf",
                                        eps=0.1, n_queries=300, seed=0)
        adversarial = reference(x, y)
    assert float((adversarial - x).abs().max()) <= 0.1 + 1e-6
    theirs = float((demo_adapter.predict_logits(adversarial).argmax(1) == y).float().mean())
    assert robust(ours) <= theirs + 0.05
