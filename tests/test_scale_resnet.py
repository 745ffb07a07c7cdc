"""The issue's scale checks: ResNet-18 at 32×32 and ResNet-50 at 224×224, 60 images, `fast`.

Slow (minutes on 2 CPU cores); the times are printed, not asserted (they depend on the
machine and its load; README "Scale and speed" states the measured ones). What is asserted:
every probe ran and came back conclusive, or its reduction is stated in the sizing plan.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow

SHAPES = {"resnet18": (3, 32, 32), "resnet50": (3, 224, 224)}


@pytest.mark.parametrize("name", list(SHAPES))
def test_fast_scan_of_a_resnet_is_conclusive_or_says_what_it_reduced(name, capsys):
    import time

    import torchvision

    import auditkit

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, *SHAPES[name], generator=g)
    model.eval()
    with torch.inference_mode():  # its own predictions: "accurate", so it is attacked
        y = torch.cat([model(x[i : i + 16]).argmax(-1) for i in range(0, 60, 16)])
    started = time.perf_counter()
    result = auditkit.scan(model, (x, y), budget="fast", device="cpu", seed=0)
    seconds = time.perf_counter() - started
    sizing = result.settings["sizing"]
    with capsys.disabled():
        print(json.dumps({"model": name, "scan_seconds": round(seconds, 1),
                          "probe_seconds": {k: p.seconds for k, p in result.probes.items()},
                          "sizing": sizing["summary"]}))
    assert all(p.status != "error" for p in result.probes.values()), {
        k: p.error for k, p in result.probes.items()
    }
    memorization = result.probes["memorization"]
    assert "inconclusive" not in memorization.summary or sizing["reasons"].get("memorization")
    # A ResNet on CPU costs far more than the budget's defaults: the plan says what it cut.
    assert sizing["reduced"] and sizing["reasons"]
