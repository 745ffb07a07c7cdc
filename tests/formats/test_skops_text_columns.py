"""A scikit-learn pipeline scanned on its own raw table: text columns and a sensitive input.

The loans table has a text sensitive column (``sex``) that the pipeline reads and a text
non-sensitive column (``region``); the pipeline one-hot encodes both itself.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from auditkit.cli import app

sio = pytest.importorskip("skops.io")
flm = pytest.importorskip("fairlearn.metrics")

from sklearn.compose import make_column_transformer  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import accuracy_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from auditkit.api import build_adapter  # noqa: E402
from auditkit.attacks.gradient_free import SQUARE, GradientFreePlan, measure  # noqa: E402
from auditkit.data import load_data  # noqa: E402
from auditkit.gates import exit_code  # noqa: E402
from auditkit.loading import load_model  # noqa: E402
from auditkit.results import AuditResult  # noqa: E402

TARGET = "approved"


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    """The user's loans table and pipeline, exactly as they made them."""
    folder = tmp_path_factory.mktemp("loans")
    rng = np.random.default_rng(1)
    n = 1500
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(18, 70, n)
    inc = rng.normal(50, 15, n)
    y = ((0.05 * (inc - 50) + (sex == "M") * 1.0 + rng.normal(0, 1, n)) > 0.5).astype(int)
    df = pd.DataFrame({"income": inc, "age": age, "sex": sex,
                       "region": rng.choice(["N", "S"], n), TARGET: y})
    df.to_csv(folder / "loans.csv", index=False)
    pipe = make_pipeline(
        make_column_transformer((StandardScaler(), ["income", "age"]),
                                (OneHotEncoder(), ["sex", "region"])),
        HistGradientBoostingClassifier(max_iter=50),
    )
    pipe.fit(df.drop(columns=[TARGET]), df[TARGET])
    sio.dump(pipe, folder / "loans.skops")
    return folder, pd.read_csv(folder / "loans.csv"), pipe


@pytest.fixture(scope="module")
def scanned(loans):
    folder, _, _ = loans
    out = folder / "out"
    res = CliRunner().invoke(app, [
        "scan", str(folder / "loans.skops"), "--data", str(folder / "loans.csv"),
        "--target", TARGET, "--sensitive", "sex", "--out", str(out), "--budget", "fast",
        "--probes", "performance,bias,adversarial", "--device", "cpu",
        "--set", "adversarial.n_examples=100", "--set", "adversarial.queries=100",
    ])
    return res, json.loads((out / "audit.json").read_text()) if (out / "audit.json").exists() else None


def test_the_pipeline_scans_on_its_raw_table_with_the_exit_code_of_its_verdict(scanned):
    res, audit = scanned
    assert audit is not None, res.output
    assert "non-numeric" not in res.output
    assert res.exit_code == exit_code(AuditResult.from_dict(audit)), res.output
    assert audit["verdict"] != "error"
    assert all(p["status"] != "error" for p in audit["probes"].values())
    adapter = audit["model"]["adapter"]
    assert adapter["columns"] == ["income", "age", "sex", "region"]
    notes = " ".join(adapter["diagnostics"]["notes"])
    assert "text columns sex, region" in notes and "never perturbed" in notes
    assert "sensitive column sex" in notes and "--keep-sensitive-features" in notes
    assert audit["data"]["sensitive_features"] == ["sex"]


def test_performance_accuracy_is_the_pipelines_own_score(scanned, loans):
    _, audit = scanned
    _, table, pipe = loans
    expected = pipe.score(table.drop(columns=[TARGET]), table[TARGET])
    assert audit["probes"]["performance"]["metrics"]["accuracy"] == pytest.approx(expected)


def test_bias_finds_the_planted_sex_gap_with_fairlearns_numbers(scanned, loans):
    _, audit = scanned
    _, table, pipe = loans
    bias = audit["probes"]["bias"]
    assert bias["status"] == "failed"
    (report,) = [s for s in bias["details"]["slicings"] if s["columns"] == ["sex"]]
    y, pred = table[TARGET].to_numpy(), pipe.predict(table.drop(columns=[TARGET]))
    mf = flm.MetricFrame(metrics={"count": flm.count, "accuracy": accuracy_score,
                                  "selection_rate": flm.selection_rate},
                         y_true=y, y_pred=pred, sensitive_features=table["sex"])
    assert {r["values"]["sex"] for r in report["groups"]} == {"F", "M"}
    for record in report["groups"]:
        expected = mf.by_group.loc[record["values"]["sex"]]
        assert record["count"] == expected["count"]
        assert record["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-12)
        assert record["selection_rate"] == pytest.approx(expected["selection_rate"], abs=1e-12)
    gap = report["disparities"]["demographic_parity_difference"]["value"]
    assert gap == pytest.approx(flm.demographic_parity_difference(
        y, pred, sensitive_features=table["sex"]))
    assert gap > 0.2  # the planted gap: men are approved far more often


def test_the_gradient_free_attack_holds_sex_and_region_fixed(scanned, loans):
    _, audit = scanned
    adversarial = audit["probes"]["adversarial"]
    assert adversarial["details"]["gradient_free"]
    assert set(adversarial["details"]["frozen_features"]) == {"sex", "region"}
    assert adversarial["metrics"]["robust_accuracy"] < adversarial["metrics"]["clean_accuracy"]

    folder, table, pipe = loans
    data = load_data(folder / "loans.csv", target=TARGET, sensitive=["sex"], raw_table=True,
                     model_columns=list(pipe.feature_names_in_))
    assert data.categories == {"sex": ["F", "M"], "region": ["N", "S"]}
    assert list(data.groups["sex"]) == list(table["sex"])
    adapter = build_adapter(load_model(folder / "loans.skops").module, data, device="cpu")
    x, y = data.x[:150], data.y[:150]
    correct = (adapter.predict_logits(x).argmax(1) == y).numpy()
    m = measure(adapter, x, y, correct, GradientFreePlan(SQUARE, "Linf", 1.0, 100),
                lambda tag: torch.Generator().manual_seed(0), baselines=False)
    moved = (m.adversarial != x).any(0)
    codes = [data.feature_names.index(c) for c in ("sex", "region")]
    assert torch.equal(m.adversarial[:, codes], x[:, codes])  # the categories, bit for bit
    assert bool(moved[data.feature_names.index("income")])  # while the numbers did move
    assert m.attack_accuracy < m.clean_accuracy
    # The model saw the strings: its answers on the codes are the pipeline's on the table.
    expected = pipe.predict_proba(table.drop(columns=[TARGET]).iloc[:150])
    assert np.allclose(adapter.predict_logits(x).exp().numpy(), expected, atol=1e-5)


def test_a_torch_model_still_refuses_a_text_feature_column(loans, tmp_path):
    from auditkit.loading import save_model

    folder, _, _ = loans
    model = save_model(torch.nn.Linear(3, 2), tmp_path / "m.pt2", example_input=torch.zeros(2, 3))
    res = CliRunner().invoke(app, [
        "scan", str(model), "--data", str(folder / "loans.csv"), "--target", TARGET,
        "--sensitive", "sex", "--probes", "performance", "--device", "cpu",
        "--out", str(tmp_path / "o"),
    ])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    assert "non-numeric feature columns region; encode them" in lines[0]


def test_a_second_table_codes_the_same_text_the_same_way_empty_cells_included(tmp_path):
    """--train-data extends the audit table's categories: both tables reach the pipeline as
    their own values (a new category and an empty cell too)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression

    from auditkit.adapters.sklearn_adapter import SklearnAdapter

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(size=60), "region": rng.choice(["N", "S", "W"], 60)})
    train.loc[::7, "region"] = np.nan
    train["y"] = ((train["x"] > 0) | (train["region"] == "W")).astype(int)
    audit = train.iloc[:30].copy()
    audit = audit[audit["region"] != "W"]
    train.to_csv(tmp_path / "train.csv", index=False)
    audit.to_csv(tmp_path / "audit.csv", index=False)
    encoder = make_pipeline(SimpleImputer(strategy="constant", fill_value="?"), OneHotEncoder())
    pipe = make_pipeline(make_column_transformer((encoder, ["region"]), remainder="passthrough"),
                         LogisticRegression()).fit(train[["x", "region"]], train["y"])
    first = load_data(tmp_path / "audit.csv", target="y", raw_table=True)
    second = load_data(tmp_path / "train.csv", target="y", raw_table=True,
                       categories=first.categories)
    assert first.categories["region"][:2] == ["N", "S"] and pd.isna(first.categories["region"][2])
    assert second.categories["region"][:3] == first.categories["region"] and \
        second.categories["region"][3] == "W"
    adapter = SklearnAdapter(pipe, input_shape=(2,), feature_names=second.feature_names,
                             class_names=second.class_names, categories=second.categories)
    for data, name in ((first, "audit.csv"), (second, "train.csv")):
        expected = pipe.predict_proba(pd.read_csv(tmp_path / name)[["x", "region"]])
        assert np.allclose(adapter.predict_logits(data.x).exp().numpy(), expected, atol=1e-6)
    assert adapter.frozen_features == ("region",)
