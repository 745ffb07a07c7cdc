"""AutoAttack: the settings in force match the reference implementation's, read back from the
constructed torchattacks objects; boxes other than [0, 1] and global RNG state are handled."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from auditkit.attacks import AUTOATTACK_REFERENCE, AutoAttack


class _Linear(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("classes", [10, 100])
def test_standard_settings_match_the_reference(classes):
    settings = AutoAttack(_Linear(classes), eps=8 / 255, num_classes=classes, seed=123).settings()
    parts = {c["attack"]: c for c in settings["components"]}
    assert list(parts) == ["APGD", "APGDT", "FAB", "Square"]  # apgd-ce, apgd-t, fab-t, square
    assert len(AUTOATTACK_REFERENCE["attacks"]) == 4
    assert parts["APGD"]["loss"] == "ce"
    for name in ("APGD", "APGDT", "FAB"):
        assert parts[name]["steps"] == AUTOATTACK_REFERENCE["iterations"] == 100
        assert parts[name]["n_restarts"] == AUTOATTACK_REFERENCE["restarts"] == 1
    for name in ("APGDT", "FAB"):
        assert parts[name]["n_target_classes"] == AUTOATTACK_REFERENCE["target_classes"] == 9
    assert parts["FAB"]["multi_targeted"] is True
    assert parts["Square"]["n_queries"] == AUTOATTACK_REFERENCE["square_queries"] == 5000
    assert {c["seed"] for c in settings["components"]} == {123}
    assert settings["version"] == "standard"


def test_random_models_get_the_rand_version():
    settings = AutoAttack(_Linear(10), eps=0.1, num_classes=10, seed=0,
                          stochastic=True).settings()
    parts = settings["components"]
    assert settings["version"] == "rand"
    assert [(p["attack"], p["loss"]) for p in parts] == [("APGD", "ce"), ("APGD", "dlr")]
    assert all(p["eot_iter"] == 20 and p["steps"] == 100 for p in parts)


def test_few_classes_drop_the_losses_that_need_more_logits():
    parts = AutoAttack(_Linear(3), eps=0.1, num_classes=3, seed=0).settings()["components"]
    assert [p["attack"] for p in parts] == ["APGD", "FAB", "Square"]


def test_other_boxes_are_mapped_and_global_rng_is_untouched(demo_adapter, digits_data):
    net = demo_adapter.as_module()

    class MinusOneToOne(nn.Module):  # the demo CNN seen from inputs in [-1, 1]
        def forward(self, v):
            return net((v + 1) / 2)

    x, y = digits_data.x[:24] * 2 - 1, digits_data.y[:24]
    state = torch.get_rng_state()
    # A wide eps: APGD-CE fools every example, so the slower components have nothing to do.
    attack = AutoAttack(MinusOneToOne(), eps=0.6, num_classes=10, seed=0, box=(-1.0, 1.0))
    adv = attack(x, y)
    assert torch.equal(torch.get_rng_state(), state)
    assert adv.min() >= -1 and adv.max() <= 1
    assert ((adv - x).abs().amax(dim=(1, 2, 3)) <= 0.6 + 1e-5).all()
    with torch.no_grad():
        assert (net((adv + 1) / 2).argmax(1) != y).float().mean() >= 0.95
