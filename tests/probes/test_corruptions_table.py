"""Table corruptions column by column, the baseline audit.json for mCE, and the judge's checks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data.core import AuditData
from auditkit.errors import AuditkitInputError
from auditkit.pipeline import build_context
from auditkit.probes.corruptions import CorruptionsProbe
from auditkit.probes.corruptions import baseline as baseline_module
from auditkit.probes.corruptions.judge import judge
from auditkit.probes.corruptions.tabular import TABLE_LEVELS, column_stats, corrupt_table


def _table(n: int = 400, seed: int = 0) -> AuditData:
    """Columns on very different scales, a 3-code category and a 0/1 flag."""
    g = np.random.default_rng(seed)
    small = g.normal(0, 1, n)
    large = g.uniform(-200, 300, n)
    code = g.integers(0, 3, n).astype(float)
    flag = g.integers(0, 2, n).astype(float)
    x = np.stack([small, large, code, flag], axis=1).astype(np.float32)
    y = ((small + large / 100 + (code == 2)) > 0.5).astype(np.int64)
    return AuditData(name="table", x=torch.from_numpy(x), y=torch.from_numpy(y),
                     modality="tabular", input_range=None,
                     feature_names=["small", "large", "code", "flag"])


def test_table_noise_is_per_column_and_stays_in_each_columns_range():
    data = _table()
    stats = column_stats(data.x, set(), data.feature_names)
    assert stats.categorical.tolist() == [False, False, True, True]
    x = data.x.double()
    out = corrupt_table(data.x, "feature_noise", 5, stats, torch.Generator().manual_seed(0)).double()
    low, high = x.min(0).values, x.max(0).values
    assert torch.all(out >= low) and torch.all(out <= high)
    assert torch.equal(out[:, 2:], x[:, 2:])  # categories are not noised
    level = TABLE_LEVELS["feature_noise"][4]
    for j in (0, 1):  # noise in the column's own std (a little less where the range clips it)
        ratio = float((out[:, j] - x[:, j]).std() / (x[:, j].std() * level))
        assert 0.6 < ratio < 1.1, (j, ratio)
    again = corrupt_table(data.x, "feature_noise", 5, stats, torch.Generator().manual_seed(0))
    assert torch.equal(again.double(), out)


def test_missing_values_become_the_columns_typical_value():
    data = _table()
    stats = column_stats(data.x, set(), data.feature_names)
    x = data.x.double()
    out = corrupt_table(data.x, "missing_values", 3, stats, torch.Generator().manual_seed(1))
    changed = out.double() != x
    assert abs(float(changed.double().mean()) - TABLE_LEVELS["missing_values"][2]) < 0.05
    for j in range(4):
        typical = float(np.median(x[:, j].numpy())) if j < 2 else float(
            torch.mode(x[:, j]).values)
        assert torch.allclose(out[changed[:, j], j].double(),
                              torch.tensor(typical, dtype=torch.float64), atol=1e-4)


def test_category_swaps_touch_only_categories_at_low_rates():
    data = _table(2000)
    stats = column_stats(data.x, set(), data.feature_names)
    x = data.x.double()
    out = corrupt_table(data.x, "category_swap", 2, stats, torch.Generator().manual_seed(2))
    out = out.double()
    assert torch.equal(out[:, :2], x[:, :2])
    changed = out[:, 2:] != x[:, 2:]
    rate = float(changed.double().mean())
    assert 0.5 * TABLE_LEVELS["category_swap"][1] < rate < 2 * TABLE_LEVELS["category_swap"][1]
    assert set(out[:, 2].tolist()) <= {0.0, 1.0, 2.0}


def _table_model(data: AuditData) -> TorchModelAdapter:
    torch.manual_seed(0)
    scale = data.x.std(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(data.x / scale), data.y).backward()
        optimizer.step()

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("scale", scale)

        def forward(self, x):
            return self.model(x / self.scale)

    return TorchModelAdapter(Scaled().eval(), input_shape=(4,), input_range=None, device="cpu")


def test_probe_on_a_table_names_each_corruption():
    data = _table()
    context = build_context(_table_model(data), data, seed=0, budget="fast")
    result = CorruptionsProbe(budget="fast").run(context)
    assert result.status in ("passed", "warned")
    assert set(result.details["accuracy_table"]) == {"feature_noise", "missing_values",
                                                      "category_swap"}
    assert result.metrics["clean_accuracy"] > 0.85
    assert result.metrics["feature_noise_s5_accuracy"] < result.metrics["clean_accuracy"]
    levels = {row[0]: row[2] for row in
              next(f for f in result.figures if f["id"] == "corruption-levels")["rows"]}
    assert "own std" in levels["feature_noise"]

    numeric_only = AuditData(name="t", x=data.x[:, :2], y=data.y, modality="tabular",
                             input_range=None)
    adapter = TorchModelAdapter(nn.Linear(2, 2), input_shape=(2,), input_range=None, device="cpu")
    result = CorruptionsProbe(budget="fast").run(build_context(adapter, numeric_only, budget="fast"))
    assert "category_swap" not in result.details["accuracy_table"]
    assert "categorical" in result.details["not_run"]["category_swap"]


# --- baseline ------------------------------------------------------------------------------
@pytest.fixture()
def fast_run(demo_context):
    def run(**options):
        probe = CorruptionsProbe(budget="fast", corruptions=("gaussian_noise", "contrast"),
                                 n_examples=100, **options)
        return probe.run(demo_context)

    return run


def test_baseline_audit_gives_mce_and_relative_mce(fast_run, tmp_path):
    first = fast_run()
    assert first.metrics["mce"] is None
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"probes": {"corruptions": first.to_dict()}}))
    same = fast_run(baseline=str(path))
    assert same.metrics["mce"] == pytest.approx(1.0)
    assert same.metrics["relative_mce"] == pytest.approx(1.0)
    # a baseline that made twice the corruption errors: this model's mCE is about a half
    doubled = first.to_dict()
    table = doubled["details"]["accuracy_table"]
    for row in table.values():
        for s in row:
            row[s] = 1 - 2 * (1 - row[s])
    path.write_text(json.dumps({"probes": {"corruptions": doubled}}))
    better = fast_run(baseline=str(path))
    assert better.metrics["mce"] == pytest.approx(0.5)
    assert any("mCE 0.50 against the baseline" in f.title for f in better.findings)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json{", "not valid JSON"),
        (json.dumps({"probes": {"calibration": {"status": "passed"}}}), "no corruptions result"),
        (json.dumps([1, 2]), "not an audit.json"),
        (json.dumps({"probes": {"corruptions": {"status": "passed", "details": {
            "clean_accuracy": 0.9, "accuracy_table": {"gaussian_noise": {"1": "high"}}}}}}),
         "not severity: accuracy"),
    ],
)
def test_bad_baseline_is_one_line_error(tmp_path, content, message):
    path = tmp_path / "audit.json"
    path.write_text(content)
    with pytest.raises(AuditkitInputError) as error:
        CorruptionsProbe(budget="fast", baseline=str(path))
    text = str(error.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"--set corruptions.baseline={path}:")
    assert "pass an audit.json written by `auditkit scan`" in text


def test_oversized_baseline_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"probes": {}}) + " " * 2000)
    monkeypatch.setattr(baseline_module, "MAX_BASELINE_BYTES", 1000)
    with pytest.raises(AuditkitInputError, match="more than an audit.json"):
        CorruptionsProbe(budget="fast", baseline=str(path))


def test_bad_baseline_exits_2_from_the_cli(tmp_path, demo_model_file):
    from typer.testing import CliRunner

    from auditkit.cli import app

    bad = tmp_path / "audit.json"
    bad.write_text("{}")
    res = CliRunner().invoke(app, [
        "scan", str(demo_model_file), "--data", "digits", "--probes", "corruptions",
        "--budget", "fast", "--out", str(tmp_path / "out"), "--device", "cpu",
        "--set", f"corruptions.baseline={bad}",
    ])
    assert res.exit_code == 2, res.output
    assert "not an audit.json" in res.output and "Traceback" not in res.output


# --- judge ---------------------------------------------------------------------------------
def test_judge_flags_a_rise_with_severity_and_confidence_that_does_not_fall(fast_run, demo_context):
    from auditkit.probes.corruptions.measure import measure
    from auditkit.probes.corruptions.options import CorruptionsOptions

    m = measure(demo_context, CorruptionsOptions(corruptions=("gaussian_noise",),
                                                 severities=(1, 3, 5), n_examples=100))
    assert {c.name: c.status for c in judge(m).checks}["monotone_in_severity"] == "passed"
    risen = replace(m, accuracy={"gaussian_noise": [0.9, 0.6, 0.9]},
                    pooled_accuracy=[0.9, 0.6, 0.5], pooled_confidence=[0.99, 0.99, 0.99],
                    clean_accuracy=0.95, clean_confidence=0.99)
    checks = {c.name: c for c in judge(risen).checks}
    assert checks["monotone_in_severity"].status == "warned"
    assert "3→5" in checks["monotone_in_severity"].detail
    assert checks["confidence_tracks_accuracy"].status == "warned"
    assert judge(risen).status == "warned"


def test_an_under_confident_model_moving_towards_calibration_is_not_warned(fast_run,
                                                                            demo_context):
    """A random forest's averaged votes are under-confident on clean rows (confidence 80 %,
    accuracy 89 %); under corruption accuracy falls 11 points and confidence 4, ECE improves
    (9 % → 4 %). Its confidence ends barely above its accuracy: no stays-confident warning. The
    same drop from a calibrated start (confidence = accuracy) is over-confidence and warns."""
    from auditkit.probes.corruptions.measure import measure
    from auditkit.probes.corruptions.options import CorruptionsOptions

    m = measure(demo_context, CorruptionsOptions(corruptions=("gaussian_noise",),
                                                 severities=(1, 3, 5), n_examples=100))
    under = replace(m, clean_accuracy=0.89, clean_confidence=0.80,
                    pooled_accuracy=[0.85, 0.82, 0.78], pooled_confidence=[0.79, 0.78, 0.764])
    check = {c.name: c for c in judge(under).checks}["confidence_tracks_accuracy"]
    assert check.status == "passed", check.detail
    assert "under-confident" in check.detail
    calibrated = replace(under, clean_confidence=0.89, pooled_confidence=[0.88, 0.87, 0.854])
    check = {c.name: c for c in judge(calibrated).checks}["confidence_tracks_accuracy"]
    assert check.status == "warned" and "over-confidence grew by 7.4%" in check.detail


# --- sizing --------------------------------------------------------------------------------
def test_sizing_gives_up_severities_then_corruptions_then_examples():
    from auditkit.probes.corruptions.sizing import CorruptionsSizing
    from auditkit.sizing import Cost

    sizing = CorruptionsSizing()
    cost = Cost(device="cpu", forward_s=1e-3, backward_s=3e-3, train_step_s=4e-3, batch_size=64,
                parameters=1000, threads=1)
    opts = CorruptionsProbe(budget="standard").opts
    s = sizing.settings(opts, budget="standard", clean_accuracy=0.9)
    full = sizing.seconds(s, 1000, cost)
    assert full == pytest.approx(11 * 5 * 300 * 1e-3, rel=0.01)
    reasons = sizing.shrink(s, full * 0.7, 1000, cost, fixed=())
    assert s["severities"] == (1, 3, 5) and s["n_examples"] == 300
    assert reasons == ["severities 5 → 3 (1, 3, 5)"]
    reasons = sizing.shrink(s, full / 20, 1000, cost, fixed=("severities",))
    assert s["severities"] == (1, 3, 5)  # what the user set stays
    assert len(s["corruptions"]) == 4 + 3 and s["n_examples"] < 300
    assert sizing.seconds(s, 1000, cost) < full / 5
