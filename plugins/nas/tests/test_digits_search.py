"""On digits with a small budget the controller's reward rises and the search beats a fixed CNN."""

import json

import pytest
import torch
from auditkit_nas import search
from auditkit_nas.cli import main
from auditkit_nas.objectives import parse_objectives
from auditkit_nas.space import Standardize, count_parameters

from auditkit.demo import DigitsCNN


@pytest.mark.slow
def test_controller_search_on_digits_beats_a_fixed_cnn_of_similar_size(tmp_path):
    out = tmp_path / "nas"
    args = ["--data", "digits", "--strategy", "controller", "--trials", "12", "--epochs", "5",
            "--max-train", "600", "--objectives", "accuracy,adversarial.robust_accuracy",
            "--final-probes", "performance", "--quiet", "--out", str(out)]
    assert main(args) == 0
    doc = json.loads((out / "nas.json").read_text())
    complete = [t for t in doc["trials"] if t["state"] == "complete"]
    assert len(complete) >= 10

    # The same recipe and the same audit for the fixed baseline: the demo's CNN.
    settings = search.Settings(data="digits", out=str(out), trials=1, epochs=5, max_train=600)
    data = search.prepare_data(settings)
    torch.manual_seed(0)
    baseline = torch.nn.Sequential(Standardize(1, image=True).fit(data.train.x), DigitsCNN())
    search.train_child(baseline, data.train, settings, seed=0)
    objectives = parse_objectives(["accuracy", "adversarial.robust_accuracy"])
    base = search.audit_child(baseline, data.valid, objectives, seed=0)["adversarial.robust_accuracy"]
    size = count_parameters(baseline)
    similar = [t for t in complete if t["parameters"] <= 2 * size]
    best = max(t["metrics"]["adversarial.robust_accuracy"] for t in similar)
    print(f"baseline robust accuracy {base:.3f} ({size} parameters); best found {best:.3f}")
    assert best > base

    average = doc["reward"]["moving_average"]
    print("moving-average reward:", [round(v, 3) for v in average])
    assert average[-1] > average[0]
    assert sum(average[-4:]) / 4 > sum(average[:4]) / 4
