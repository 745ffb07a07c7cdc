"""The bias probe's vectorized bootstrap gives MetricFrame(n_boot)'s intervals, cross-probe too."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn.metrics import MetricFrame
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data.synthetic import credit
from auditkit.functional.fairness import calibration_error, mean_of
from auditkit.pipeline import build_context
from auditkit.probes.bias import BiasProbe


@pytest.fixture(scope="module")
def context_with_artifacts():
    data = credit(seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 2))
    adapter = TorchModelAdapter(model, input_shape=(8,), input_range=None, device="cpu")
    context = build_context(adapter, data, seed=0, budget="fast")
    rng = np.random.default_rng(0)
    n = len(data)
    attacked = np.sort(rng.choice(n, size=n // 2, replace=False))
    context.artifacts["adversarial"] = {
        "indices": attacked,
        "robust_correct": rng.random(len(attacked)) < 0.4,
        "eps": 0.1,
    }
    evaluated = np.arange(n)
    context.artifacts["calibration"] = {
        "indices": evaluated,
        "confidence": rng.uniform(0.5, 1.0, n),
        "correct": rng.random(n) < 0.7,
    }
    return context


def test_cross_probe_intervals_equal_metricframe_with_the_same_resamples(context_with_artifacts):
    context = context_with_artifacts
    result = BiasProbe(budget="fast", n_boot=25).run(context)
    y = context.data.y.numpy()
    pred = context.clean_predictions.numpy()
    checked = 0
    for report in result.details["slicings"]:
        columns = report["columns"]
        if report["kind"] != "sensitive":
            continue
        for measure, probe, fn, keys in (
            ("robust_accuracy", "adversarial", mean_of, {"values": "robust_correct"}),
            ("ece", "calibration", calibration_error,
             {"confidence": "confidence", "correct": "correct"}),
        ):
            summary = report["cross_probe"][measure]
            art = context.artifacts[probe]
            idx = art["indices"]
            params = {k: np.asarray(art[v], dtype=np.float64) for k, v in keys.items()}
            features = pd.DataFrame({c: context.data.groups[c][idx] for c in columns})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                reference = MetricFrame(
                    metrics={measure: fn}, y_true=y[idx], y_pred=pred[idx],
                    sensitive_features=features, sample_params={measure: params},
                    n_boot=summary["bootstrap"]["n_boot"],
                    ci_quantiles=summary["bootstrap"]["ci_quantiles"],
                    random_state=summary["bootstrap"]["random_state"],
                )
            low, high = reference.by_group_ci[0], reference.by_group_ci[-1]
            for record in report["groups"]:
                key = tuple(record["values"][c] for c in columns)
                key = key if len(key) > 1 else key[0]
                if f"{measure}_ci" not in record:
                    continue
                assert record[measure] == pytest.approx(reference.by_group.loc[key, measure])
                got = record[f"{measure}_ci"]
                assert got[0] == pytest.approx(low.loc[key, measure], abs=1e-12)
                assert got[1] == pytest.approx(high.loc[key, measure], abs=1e-12)
                checked += 1
    assert checked >= 8  # sex, age band and their intersections, both measures
