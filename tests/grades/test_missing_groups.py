"""A missing value in a sensitive column forms an explicit "missing" group, named in a finding,
and is never merged with a real value (it used to become a group called ``sex=nan``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from auditkit.api import scan
from auditkit.probes.bias.missing import with_missing_group


def _table(tmp_path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    sex = rng.choice(["female", "male"], size=n).astype(object)
    sex[rng.choice(n, size=80, replace=False)] = None  # an empty cell in the CSV
    path = tmp_path / "people.csv"
    pd.DataFrame({"f1": x[:, 0], "f2": x[:, 1], "sex": sex, "label": y}).to_csv(path, index=False)
    net = nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        net.bias.zero_()
    return net.eval(), path


def test_nan_in_a_sensitive_column_is_a_missing_group_with_a_finding(tmp_path):
    net, path = _table(tmp_path)
    result = scan(
        net, path, target="label", sensitive=["sex"], probes=["bias"], budget="fast", device="cpu"
    )
    bias = result.probes["bias"]
    (slicing,) = bias.details["slicings"]
    groups = {g["group"]: g["count"] for g in slicing["groups"]}
    assert groups["sex=missing"] == 80, groups
    assert not any("nan" in g.lower() or "none" in g.lower() for g in groups), groups
    assert sum(groups.values()) == 600  # no row merged into another group or dropped
    check = next(c for c in bias.checks if c.name == "missing_group_values")
    assert check.values["columns"] == {"sex": 80}
    finding = next(f for f in bias.findings if "no value in a sensitive column" in f.title)
    assert "'missing'" in finding.title and "sex: 80" in finding.title


def test_every_spelling_of_no_value_is_one_group_and_a_real_value_named_missing_is_kept():
    labels, n = with_missing_group(["a", None, float("nan"), "nan", "b"])
    assert n == 3 and list(labels) == ["a", "missing", "missing", "missing", "b"]
    labels, n = with_missing_group(["missing", None])
    assert n == 1 and list(labels) == ["missing", "missing (no value)"]
