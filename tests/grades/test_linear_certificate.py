"""A linear scikit-learn model's robust accuracy is exact: the closed form leads, Square checks it.

On a linear model the worst L∞ perturbation of each example is known, so the black-box attack's
checklist (converged? beats random noise?) cannot make the number overestimated, and a check that
failed only because Square and noise both found the optimum was noise from the model's kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import auditkit

pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression, SGDClassifier  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler  # noqa: E402

from auditkit.probes.adversarial.linear import linear_structure  # noqa: E402

EPS = 0.25  # feature standard deviations


def _overlapping_table(n=200, seed=1):
    """Two classes one standard deviation apart on two features: many examples sit near the
    boundary, so some flip within EPS and some do not."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 3))
    x[:, 0] += np.where(y == 1, 0.8, -0.8)
    x[:, 1] += np.where(y == 1, 0.5, -0.5)
    x[:, 2] *= 40.0  # a column on another scale: eps is per standard deviation
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y)


def _closed_form(model, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    """Robust accuracy from the coefficients alone: within eps standard deviations of each
    feature and the observed range, the decision w·x + b moves at most to the end of each
    feature's interval that works against the true class."""
    values = x.double().numpy()
    w, b = model.coef_[0], model.intercept_[0]
    std = x.std(dim=0).double().numpy()
    lo, hi = values.min(axis=0), values.max(axis=0)
    down = np.maximum(-eps * std, lo - values)  # most each feature may fall
    up = np.minimum(eps * std, hi - values)  # most it may rise
    score = values @ w + b
    lowest = score + np.where(w > 0, down, up) @ w
    highest = score + np.where(w > 0, up, down) @ w
    labels = y.numpy()
    correct = np.where(labels == 1, score >= 0, score <= 0)
    robust = correct & np.where(labels == 1, lowest >= 0, highest <= 0)
    return float(robust.mean())


@pytest.fixture(scope="module")
def linear_scan():
    x, y = _overlapping_table()
    model = LogisticRegression().fit(x.numpy(), y.numpy())
    return model, x, y, _adversarial(model, x, y, n_examples=100, queries=150)


def _adversarial(model, x, y, **options):
    """The adversarial probe alone at ``EPS``, fast budget."""
    result = auditkit.scan(model, (x, y), budget="fast", device="cpu", probes=["adversarial"],
                           options={"adversarial": {"eps": EPS, **options}})
    return result.probes["adversarial"]


def test_the_headline_is_the_exact_closed_form_and_square_cannot_beat_it(linear_scan):
    model, x, y, adversarial = linear_scan
    exact = _closed_form(model, x, y, EPS)
    metrics = adversarial.metrics
    assert 0.05 < metrics["clean_accuracy"] - exact  # the table really has examples that flip
    assert metrics["exact_robust_accuracy"] == pytest.approx(exact, abs=1 / len(x))
    assert metrics["robust_accuracy"] == pytest.approx(exact, abs=1 / len(x))
    # exact on every row; Square attacked 100 of them, in their own ranges and spreads
    assert metrics["n_examples"] == len(x)
    cross = adversarial.details["linear_certificate"]["cross_check"]["exact_accuracy"]
    assert metrics["square_accuracy"] >= cross[f"{EPS:g}"] - 1 / 100
    grade = adversarial.details["robustness_grade"]
    assert grade["bound"].startswith("exact") and grade["grade"] == "robust"
    assert "certificate" in adversarial.summary


def test_attack_strength_checks_are_not_applicable_and_the_cross_check_passes(linear_scan):
    _, _, _, adversarial = linear_scan
    checks = {c.name: c for c in adversarial.checks}
    noise = checks["attack_beats_random_noise"]
    assert noise.status == "skipped" and noise.detail.startswith("not applicable"), noise.detail
    assert "exact optimum" in noise.detail
    assert checks["converged_in_steps"].status == "skipped"
    assert checks["exact_optimum_for_linear_model"].status == "passed"
    assert not [c for c in adversarial.checks if c.status == "failed"]
    assert adversarial.status == "passed", [f.title for f in adversarial.findings]
    assert not any("upper bound" in f.title for f in adversarial.findings)


def test_a_tree_ensemble_gets_no_certificate():
    x, y = _overlapping_table(n=120)
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x.numpy(), y.numpy())
    adversarial = _adversarial(model, x, y, n_examples=40, queries=40)
    assert "exact_robust_accuracy" not in adversarial.metrics
    assert "exact_optimum_for_linear_model" not in {c.name for c in adversarial.checks}


def test_what_counts_as_linear():
    x, y = _overlapping_table(n=80)
    xs, ys = x.numpy(), y.numpy()
    assert linear_structure(make_pipeline(StandardScaler(), SGDClassifier()).fit(xs, ys)) == [
        "StandardScaler",
        "SGDClassifier",
    ]
    import pandas as pd

    frame = pd.DataFrame({"a": xs[:, 0], "b": xs[:, 1], "kind": np.where(xs[:, 2] > 0, "p", "q")})
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["kind"])]
    )
    assert linear_structure(make_pipeline(columns, LogisticRegression()).fit(frame, ys))
    assert (
        linear_structure(make_pipeline(PolynomialFeatures(2), LogisticRegression()).fit(xs, ys))
        is None
    )
    assert linear_structure(MLPClassifier(hidden_layer_sizes=(4,), max_iter=20).fit(xs, ys)) is None


@pytest.mark.slow
def test_a_skops_pipeline_with_a_categorical_column_scans_plain_passed_from_the_cli(tmp_path):
    """The user's path: a CSV with a text column and a scaler + one-hot + logistic regression
    pipeline in a skops file. The robustness headline is exact (the one-hot column held fixed),
    the generated OOD rows are not judged, and nothing warns because of the model's kind."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from auditkit.cli import app

    sio = pytest.importorskip("skops.io")
    rng = np.random.default_rng(5)
    n = 600
    home = rng.choice(["rent", "own"], n)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10.5, 0.4, n).round(0),
            "score": rng.normal(680, 50, n).round(0),
            "home": home,
        }
    )
    logit = 0.03 * (frame.score - 680) + (frame.income / 40000 - 1) + (home == "own") * 0.5
    frame["repaid"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    csv = tmp_path / "loans.csv"
    frame.to_csv(csv, index=False)
    columns = ColumnTransformer(
        [("num", StandardScaler(), ["income", "score"]), ("cat", OneHotEncoder(), ["home"])]
    )
    pipeline = make_pipeline(columns, LogisticRegression())
    pipeline.fit(frame[["income", "score", "home"]], frame.repaid)
    model = tmp_path / "loans.skops"
    sio.dump(pipeline, model)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "scan",
            str(model),
            "--data",
            str(csv),
            "--target",
            "repaid",
            "--probes",
            "adversarial,calibration",
            "--budget",
            "fast",
            "--device",
            "cpu",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    audit = json.loads((out / "audit.json").read_text())
    adversarial, calibration = audit["probes"]["adversarial"], audit["probes"]["calibration"]
    assert adversarial["details"]["robustness_grade"]["bound"].startswith("exact")
    assert "home" in adversarial["summary"] and adversarial["metrics"]["n_examples"] == n
    assert calibration["details"]["ood_judged"] is False
    assert (adversarial["status"], calibration["status"]) == ("passed", "passed"), (
        adversarial["findings"],
        calibration["findings"],
    )
    assert audit["verdict"] == "passed"
