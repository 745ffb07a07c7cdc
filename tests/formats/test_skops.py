"""scikit-learn pipelines in skops files, audited on the raw credit table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.data.synthetic import CREDIT_FEATURES, credit

sio = pytest.importorskip("skops.io")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from auditkit.adapters.sklearn_adapter import SklearnAdapter  # noqa: E402
from auditkit.attacks import Limits, QueryModel, RandomNoise, Square  # noqa: E402

TARGET = "repaid"
SENSITIVE = ["sex", "age_band"]


def _frame(data) -> pd.DataFrame:
    frame = pd.DataFrame(data.x.numpy(), columns=CREDIT_FEATURES)
    for column in SENSITIVE:
        frame[column] = data.groups[column]
    frame[TARGET] = data.y.numpy()
    return frame


@pytest.fixture(scope="module")
def credit_files(tmp_path_factory):
    """The credit audit table as CSV, and a scaler + gradient boosting pipeline fitted on the
    (biased) training split, saved with skops."""
    folder = tmp_path_factory.mktemp("credit")
    data = credit(seed=0, n_audit=1200, n_train=3000)
    csv = folder / "credit.csv"
    _frame(data).to_csv(csv, index=False)
    train = _frame(data.train)
    pipeline = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=60,
                                                                          random_state=0))
    pipeline.fit(train[list(CREDIT_FEATURES)], train[TARGET])
    model = folder / "credit.skops"
    sio.dump(pipeline, model)
    return model, csv, pipeline


def test_skops_pipeline_on_the_csv_finds_the_planted_bias(credit_files):
    model, csv, pipeline = credit_files
    result = auditkit.scan(model, csv, target=TARGET, sensitive=SENSITIVE,
                           probes=["performance", "calibration", "bias"], budget="fast",
                           device="cpu")
    assert result.model["format"] == "skops"
    adapter = result.model["adapter"]
    assert adapter["estimator"] == "Pipeline" and not adapter["supports_gradients"]
    table = pd.read_csv(csv)
    expected = (pipeline.predict(table[list(CREDIT_FEATURES)]) == table[TARGET]).mean()
    assert result.probes["performance"].metrics["accuracy"] == pytest.approx(expected)
    bias = result.probes["bias"]
    assert bias.status == "failed"
    assert bias.metrics["accuracy_difference"] > 0.1
    sex = next(s for s in bias.details["slicings"] if s.get("column") == "sex" or
               "sex" in str(s.get("name", "")))
    gap = sex["disparities"]["accuracy_difference"]
    assert gap["lower_group"] == "sex=F" and gap["significant"]
    assert result.probes["calibration"].status in ("passed", "warned", "failed")


def test_square_moves_only_numeric_columns_within_their_range_and_beats_noise(credit_files):
    model, csv, _ = credit_files
    loaded = auditkit.loading.load_model(model)
    data = auditkit.api.resolve_data(csv, target=TARGET, sensitive=SENSITIVE)
    adapter = auditkit.api.build_adapter(loaded.module, data, device="cpu")
    x, y = data.x[:200], data.y[:200]
    correct = adapter.predict_logits(x).argmax(1) == y
    x, y = x[correct], y[correct]
    limits = Limits(data.x.amin(0), data.x.amax(0), adapter.feature_mask)
    # eps in the table's units: these columns are standardized, so 0.5 is half a std.
    square = Square(QueryModel(adapter.predict_logits), eps=0.5, queries=200, limits=limits,
                    generator=torch.Generator().manual_seed(0)).perturb(x, y)
    noise = RandomNoise(QueryModel(adapter.predict_logits), eps=0.5, draws=8, box=None,
                        generator=torch.Generator().manual_seed(0)).perturb(x, y)
    robust = float((square.margin <= 0).float().mean())
    assert robust < float((noise.margin <= 0).float().mean()) - 0.05
    assert robust < 0.9
    assert bool((square.adversarial >= limits.lo).all() and (square.adversarial <= limits.hi).all())


def test_categorical_columns_of_a_pipeline_are_frozen(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(size=300), "region": rng.integers(0, 4, 300),
                          "debt": rng.normal(size=300)})
    labels = (frame["income"] - frame["debt"] + (frame["region"] == 2) > 0).astype(int)
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["income", "debt"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
        LogisticRegression(),
    ).fit(frame, labels)
    path = tmp_path / "mixed.skops"
    sio.dump(pipeline, path)
    frame["label"] = labels
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    result = auditkit.scan(path, tmp_path / "mixed.csv", target="label",
                           probes=["performance"], budget="fast", device="cpu")
    assert result.model["adapter"]["frozen_features"] == ["region"]
    assert any("region" in note and "fixed" in note
               for note in result.model["adapter"]["diagnostics"]["notes"])
    data = auditkit.api.resolve_data(tmp_path / "mixed.csv", target="label")
    adapter = auditkit.api.build_adapter(auditkit.loading.load_model(path).module, data)
    out = Square(QueryModel(adapter.predict_logits), eps=1.0, queries=50, box=None,
                 limits=Limits(mask=adapter.feature_mask),
                 generator=torch.Generator().manual_seed(0)).perturb(data.x, data.y)
    region = data.feature_names.index("region")
    assert torch.equal(out.adversarial[:, region], data.x[:, region])


def test_refit_clone_fits_random_labels_and_leaves_the_audited_estimator_alone(credit_files):
    _, csv, pipeline = credit_files
    data = auditkit.api.resolve_data(csv, target=TARGET, sensitive=SENSITIVE)
    adapter = SklearnAdapter(pipeline, input_shape=data.input_shape,
                             feature_names=data.feature_names, class_names=data.class_names)
    before = adapter.predict_logits(data.x)
    random_labels = torch.from_numpy(np.random.default_rng(0).integers(0, 2, len(data)))
    clone = adapter.refit_clone(data.x[:300], random_labels[:300])
    assert clone.estimator is not pipeline
    fitted = (clone.predict_logits(data.x[:300]).argmax(1) == random_labels[:300]).float().mean()
    assert float(fitted) > 0.6  # boosting memorizes part of the noise
    assert torch.equal(adapter.predict_logits(data.x), before)


def test_an_in_memory_estimator_is_audited_like_the_file(credit_files):
    _, csv, pipeline = credit_files
    result = auditkit.scan(pipeline, csv, target=TARGET, sensitive=SENSITIVE,
                           probes=["performance"], budget="fast", device="cpu")
    assert result.model["format"] == "scikit-learn"
    assert result.probes["performance"].status != "error"


class Tripwire:
    """A type skops does not trust; building it writes a marker file."""

    marker = None

    def __setstate__(self, state):
        if self.marker:
            open(self.marker, "w").write("executed")  # noqa: SIM115

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x


def test_a_skops_file_with_an_untrusted_type_is_refused_executing_nothing(
    tmp_path, credit_files, monkeypatch
):
    _, csv, _ = credit_files
    marker = tmp_path / "executed"
    Tripwire.marker = str(marker)
    table = pd.read_csv(csv)
    pipeline = make_pipeline(Tripwire(), LogisticRegression())
    pipeline.fit(table[list(CREDIT_FEATURES)].to_numpy(), table[TARGET])
    path = tmp_path / "tripwire.skops"
    sio.dump(pipeline, path)

    def forbidden(*args, **kwargs):
        raise AssertionError("skops.io.load ran on an untrusted file")

    monkeypatch.setattr(sio, "load", forbidden)
    res = CliRunner().invoke(app, ["scan", str(path), "--data", str(csv), "--target", TARGET,
                                   "--out", str(tmp_path / "out"), "--probes", "performance",
                                   "--budget", "fast", "--device", "cpu"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Tripwire" in lines[0] and "--unsafe-pickle" in lines[0]
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_a_joblib_file_is_refused_unless_unsafe_pickle(tmp_path, credit_files):
    import joblib

    _, csv, pipeline = credit_files
    path = tmp_path / "credit.joblib"
    joblib.dump(pipeline, path)
    with pytest.raises(auditkit.errors.AuditkitInputError, match="--unsafe-pickle"):
        auditkit.loading.load_model(path)
    result = auditkit.scan(path, csv, target=TARGET, sensitive=SENSITIVE, unsafe_pickle=True,
                           probes=["performance"], budget="fast", device="cpu")
    assert "scikit-learn" in result.model["format"]
    assert result.probes["performance"].status != "error"


def test_adversarial_attacks_the_numeric_columns_and_memorization_refits_a_clone(credit_files):
    model, csv, _ = credit_files
    result = auditkit.scan(model, csv, target=TARGET, sensitive=SENSITIVE,
                           probes=["adversarial", "memorization"], budget="fast", device="cpu",
                           options={"adversarial": {"n_examples": 150}})
    adversarial = result.probes["adversarial"]
    assert adversarial.status in ("passed", "warned"), adversarial.summary
    metrics = adversarial.metrics
    assert metrics["square_accuracy"] < metrics["clean_accuracy"]
    assert adversarial.details["settings"]["eps_units"] == "feature standard deviations"
    assert "observed in the audit data" in adversarial.details["threat_model"]
    memorization = result.probes["memorization"]
    assert memorization.status != "skipped", memorization.skip_reason
    assert memorization.metrics["random_label_train_accuracy"] > 0.6
    assert "clone" in memorization.summary
    # The audited pipeline itself was never re-fitted (its answers are compared before/after).
    checks = {c.name: c for c in memorization.checks}
    assert checks["audited_model_untouched"].status == "passed"
