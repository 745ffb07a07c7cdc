"""Every architecture the space can sample builds, runs, and is rebuilt from its description."""

import json

import torch
from auditkit_nas.space import (
    IMAGE_DECISIONS,
    TABLE_DECISIONS,
    architecture,
    build,
    nas_network,
    search_space,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def decisions(space: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries({name: st.sampled_from(choices) for name, choices in space.items()})


IMAGE_SHAPES = st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12))
TABLE_SHAPES = st.tuples(st.integers(1, 20))


def check_builds(params: dict, shape: tuple, num_classes: int) -> None:
    arch = architecture(params, shape, num_classes)
    model = build(arch).eval()
    x = torch.rand(3, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, num_classes)
    assert torch.isfinite(out).all()
    # Rebuilt from the JSON description alone (what a saved model carries), same function.
    again = nas_network(**json.loads(json.dumps(arch)))
    again.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(x), out)
    # Gradients reach the input (the adversarial probe needs them), and one training step runs.
    model.train()
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(params=decisions(IMAGE_DECISIONS), shape=IMAGE_SHAPES, num_classes=st.integers(2, 12))
def test_every_sampled_cnn_builds_and_runs(params, shape, num_classes):
    check_builds(params, shape, num_classes)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(params=decisions(TABLE_DECISIONS), shape=TABLE_SHAPES, num_classes=st.integers(2, 5))
def test_every_sampled_mlp_builds_and_runs(params, shape, num_classes):
    check_builds(params, shape, num_classes)


def test_the_samplers_see_exactly_these_decisions():
    assert search_space("image").decisions == IMAGE_DECISIONS
    assert search_space("tabular").decisions == TABLE_DECISIONS
    assert list(search_space("image").distributions()) == list(IMAGE_DECISIONS)


def test_architecture_keeps_only_what_matters():
    params = {**search_space("image").default(), "blocks": 1, "pool_1": "max", "width_2": 64}
    arch = architecture(params, (1, 8, 8), 10)
    assert len(arch["blocks"]) == 1 and "width_2" not in json.dumps(arch)
    # A 1-pixel map cannot be pooled: the description says so instead of failing at run time.
    tiny = architecture({**params, "blocks": 3, "pool_2": "max", "pool_3": "avg"}, (1, 2, 2), 3)
    assert [b["pool"] for b in tiny["blocks"]] == ["max", "none", "none"]
