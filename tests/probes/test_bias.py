"""The bias probe: fairlearn-exact per-group numbers, a planted bias found, no false alarm on a
fair model, small and single groups handled, proxy slices labelled, cross-probe reuse."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from fairlearn import metrics as flm
from sklearn.metrics import accuracy_score
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data.synthetic import credit
from auditkit.demo import train_classifier
from auditkit.errors import AuditkitInputError
from auditkit.functional import fairness
from auditkit.functional.calibration import expected_calibration_error
from auditkit.pipeline import build_context, run_audit, run_probe
from auditkit.probes.bias import PROXY_NOTE, BiasProbe
from auditkit.results import AuditResult

DEMOGRAPHIC_METRICS = (
    "worst_group_accuracy",
    "accuracy_difference",
    "accuracy_ratio",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "min_group_size",
    "small_groups",
)
N_BOOT = 30  # small for speed; intervals are checked against fairlearn with the same resamples


def _mlp(train, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2)
    )
    return train_classifier(model, train, epochs=10, batch_size=256, lr=1e-2, seed=seed)


def _context(model, data, seed: int = 0):
    adapter = TorchModelAdapter(model, input_shape=(8,), input_range=None, device="cpu")
    return build_context(adapter, data, seed=seed, budget="fast")


@pytest.fixture(scope="module")
def credit_data():
    return credit(seed=0)  # planted bias in the training labels; audit labels are the truth


@pytest.fixture(scope="module")
def biased_model(credit_data):
    return _mlp(credit_data.train)


@pytest.fixture(scope="module")
def fair_model():
    return _mlp(credit(seed=0, bias=0.0).train)


@pytest.fixture(scope="module")
def biased_context(biased_model, credit_data):
    return _context(biased_model, credit_data)


@pytest.fixture(scope="module")
def biased_result(biased_context):
    return BiasProbe(budget="fast", n_boot=N_BOOT).run(biased_context)


def _slicing(result, name):
    return next(s for s in result.details["slicings"] if s["name"] == name)


def _key(values: dict, columns: list[str]):
    key = tuple(values[c] for c in columns)
    return key if len(key) > 1 else key[0]


# --- numbers equal fairlearn's -----------------------------------------------------------------
def test_per_group_numbers_equal_fairlearn_metricframe(biased_result, biased_context):
    y = biased_context.data.y.numpy()
    pred = biased_context.clean_predictions.numpy()
    groups = biased_context.data.groups
    reference_metrics = {
        "count": flm.count,
        "accuracy": accuracy_score,
        "selection_rate": flm.selection_rate,
        "true_positive_rate": flm.true_positive_rate,
        "false_positive_rate": flm.false_positive_rate,
        "false_negative_rate": flm.false_negative_rate,
    }
    names = [s["name"] for s in biased_result.details["slicings"]]
    assert names == ["sex", "age_band", "sex × age_band"]  # columns and their intersection
    group_min, differences = [], []
    for report in biased_result.details["slicings"]:
        columns = report["columns"]
        features = pd.DataFrame({c: groups[c] for c in columns})
        mf = flm.MetricFrame(
            metrics=reference_metrics, y_true=y, y_pred=pred, sensitive_features=features
        )
        assert len(report["groups"]) == len(mf.by_group)
        for record in report["groups"]:
            expected = mf.by_group.loc[_key(record["values"], columns)]
            assert record["count"] == expected["count"]
            for name in (
                "accuracy",
                "selection_rate",
                "true_positive_rate",
                "false_positive_rate",
                "false_negative_rate",
            ):
                assert record[name] == pytest.approx(expected[name], abs=1e-12), name
            assert record["error_rate"] == pytest.approx(1 - expected["accuracy"], abs=1e-12)

        # Aggregates: fairlearn's own difference/ratio and fairness functions.
        d = report["disparities"]
        assert d["accuracy_difference"]["value"] == pytest.approx(mf.difference()["accuracy"])
        assert report["ratios"]["accuracy_ratio"] == pytest.approx(mf.ratio()["accuracy"])
        assert d["demographic_parity_difference"]["value"] == pytest.approx(
            flm.demographic_parity_difference(y, pred, sensitive_features=features)
        )
        assert report["ratios"]["demographic_parity_ratio"] == pytest.approx(
            flm.demographic_parity_ratio(y, pred, sensitive_features=features)
        )
        assert d["equalized_odds_difference"]["value"] == pytest.approx(
            flm.equalized_odds_difference(y, pred, sensitive_features=features)
        )
        group_min.append(mf.group_min()["accuracy"])
        differences.append(mf.difference()["accuracy"])

        # Error bars are MetricFrame's bootstrap quantiles: same resamples, same interval.
        boot = report["bootstrap"]
        ref = flm.MetricFrame(
            metrics={"accuracy": accuracy_score},
            y_true=y,
            y_pred=pred,
            sensitive_features=features,
            n_boot=boot["n_boot"],
            ci_quantiles=boot["ci_quantiles"],
            random_state=boot["random_state"],
        )
        low, high = ref.by_group_ci[0], ref.by_group_ci[-1]
        for record in report["groups"]:
            key = _key(record["values"], columns)
            assert record["accuracy_ci"][0] == pytest.approx(low.loc[key, "accuracy"])
            assert record["accuracy_ci"][1] == pytest.approx(high.loc[key, "accuracy"])
            assert record["accuracy_ci"][0] <= record["accuracy"] <= record["accuracy_ci"][1]

    m = biased_result.metrics
    assert m["overall_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["worst_group_accuracy"] == pytest.approx(min(group_min))
    assert m["accuracy_difference"] == pytest.approx(max(differences))
    assert m["min_group_size"] == min(
        g["count"] for s in biased_result.details["slicings"] for g in s["groups"]
    )


@pytest.mark.parametrize("labels", ["binary", "multiclass"])
def test_rate_functions_equal_fairlearn(labels):
    rng = np.random.default_rng(3)
    k = 2 if labels == "binary" else 5
    y, pred = rng.integers(0, k, 300), rng.integers(0, k, 300)
    for c in range(k):
        # fairlearn's TPR/FPR are binary-only: binarize for the one-vs-rest reference.
        yb, pb = (y == c).astype(int), (pred == c).astype(int)
        assert fairness.selection_rate(y, pred, positive=c) == pytest.approx(
            flm.selection_rate(y, pred, pos_label=c)
        )
        assert fairness.true_positive_rate(y, pred, positive=c) == pytest.approx(
            flm.true_positive_rate(yb, pb)
        )
        assert fairness.false_positive_rate(y, pred, positive=c) == pytest.approx(
            flm.false_positive_rate(yb, pb)
        )
    assert fairness.accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert np.isnan(fairness.true_positive_rate([0, 0], [1, 0], positive=1))


# --- planted bias found, fair model not flagged -----------------------------------------------
def test_biased_model_is_flagged_with_an_interval_excluding_zero(biased_result):
    assert biased_result.status == "failed"
    assert biased_result.metrics["accuracy_difference"] > 0.15
    sex = _slicing(biased_result, "sex")["disparities"]
    for key in ("accuracy_difference", "equalized_odds_difference"):
        d = sex[key]
        assert d["lower_group"] == "sex=F" and d["higher_group"] == "sex=M"
        assert d["significant"] and d["ci"][0] > 0 and d["exceeds"]
    assert sex["accuracy_difference"]["value"] > 0.15
    checks = {c.name: c for c in biased_result.checks}
    assert checks["accuracy_difference[sex]"].status == "failed"
    # age_band carries no planted bias: it must not be blamed.
    assert checks["accuracy_difference[age_band]"].status == "passed"
    critical = [f for f in biased_result.findings if f.severity == "critical"]
    assert critical and all("sex=F" in f.title for f in critical)
    assert "sex=F" in biased_result.summary and "significant" in biased_result.summary
    assert biased_result.headline == "worst_group_accuracy"


def test_fair_model_on_the_same_data_is_not_flagged(fair_model, credit_data, biased_context):
    context = _context(fair_model, credit_data)
    assert context.data.fingerprint() == biased_context.data.fingerprint()
    result = BiasProbe(budget="fast", n_boot=N_BOOT).run(context)
    assert result.status == "passed", [c.detail for c in result.checks if c.status != "passed"]
    assert not [f for f in result.findings if f.severity in ("warning", "critical")]
    for report in result.details["slicings"]:
        for d in report["disparities"].values():
            assert not (d["significant"] and d["exceeds"])
    assert _slicing(result, "sex")["disparities"]["accuracy_difference"]["value"] < 0.05
    assert result.metrics["accuracy_difference"] < 0.1


# --- small groups and single groups ------------------------------------------------------------
def test_groups_below_the_minimum_size_are_flagged_not_ranked(biased_context):
    data = biased_context.data
    wrong = np.flatnonzero(~biased_context.clean_correct.numpy())[:10]
    branch = np.where(np.arange(len(data)) % 2 == 0, "north", "south").astype(object)
    branch[wrong] = "tiny"  # ten examples the model gets wrong: accuracy 0
    context = build_context(
        biased_context.adapter, dataclasses.replace(data, groups={"branch": branch}), budget="fast"
    )
    result = BiasProbe(budget="fast", n_boot=20, min_group_size=30).run(context)
    report = result.details["slicings"][0]
    tiny = next(g for g in report["groups"] if g["group"] == "branch=tiny")
    assert tiny["small"] and tiny["count"] == 10 and tiny["accuracy"] == 0.0
    assert report["small_groups"] == ["branch=tiny"]
    assert report["worst_group"] != "branch=tiny"
    assert result.metrics["worst_group_accuracy"] > 0.5  # the 0% group is not ranked
    assert result.metrics["min_group_size"] == 10 and result.metrics["small_groups"] == 1
    check = next(c for c in result.checks if c.name == "min_group_size")
    assert check.status == "warned" and "branch=tiny (n=10)" in check.detail
    assert any(f.severity == "warning" and "branch=tiny" in f.title for f in result.findings)
    bars = next(f for f in result.figures if f["kind"] == "bar")["bars"]
    assert {b["label"]: b["flag"] for b in bars} == {
        "branch=north": False,
        "branch=south": False,
        "branch=tiny": True,
    }
    assert result.status == "warned"


def test_single_group_data_is_skipped_with_a_clear_message(biased_context):
    data = dataclasses.replace(
        biased_context.data, groups={"sex": np.full(len(biased_context.data), "F")}
    )
    context = build_context(biased_context.adapter, data, budget="fast")
    probe = BiasProbe(budget="fast", n_boot=20)
    direct = probe.run(context)
    assert direct.status == "skipped"
    assert "single group (sex: F)" in direct.skip_reason
    assert "at least two groups" in direct.summary
    through_runner = run_probe(probe, context)
    assert through_runner.status == "skipped" and through_runner.skip_reason == direct.skip_reason


def test_a_single_group_column_is_dropped_the_others_audited(biased_context):
    groups = {
        "sex": biased_context.data.groups["sex"],
        "country": np.full(len(biased_context.data), "NL"),
    }
    context = build_context(
        biased_context.adapter,
        dataclasses.replace(biased_context.data, groups=groups),
        budget="fast",
    )
    result = BiasProbe(budget="fast", n_boot=20).run(context)
    assert [s["name"] for s in result.details["slicings"]] == ["sex"]
    check = next(c for c in result.checks if c.name == "single_group_columns")
    assert check.status == "warned" and "country: NL" in check.detail


# --- cross-probe -------------------------------------------------------------------------------
def test_robust_accuracy_and_ece_per_group_reuse_other_probes_results(biased_context):
    context = build_context(biased_context.adapter, biased_context.data, budget="fast")
    sex = context.data.groups["sex"]
    clean_correct = context.clean_correct.numpy()
    attacked = np.arange(0, len(sex), 2)
    robust = clean_correct[attacked] & (sex[attacked] == "M")  # women: nothing survives
    confidence = context.clean_probabilities.max(dim=1).values.numpy()
    context.artifacts["adversarial"] = {"indices": attacked, "robust_correct": robust, "eps": 0.1}
    context.artifacts["calibration"] = {
        "indices": np.arange(len(sex)),
        "confidence": confidence,
        "correct": clean_correct,
    }

    def no_model_calls(*args, **kwargs):
        raise AssertionError("the bias probe must reuse results, not run the model")

    context.adapter.logits = no_model_calls  # instance attributes shadow the methods
    context.adapter.predict_logits = no_model_calls
    try:
        result = BiasProbe(budget="fast", n_boot=20, sensitive=["sex"]).run(context)
    finally:
        del context.adapter.logits, context.adapter.predict_logits

    records = {g["group"]: g for g in result.details["slicings"][0]["groups"]}
    for value in ("F", "M"):
        in_group = sex[attacked] == value
        record = records[f"sex={value}"]
        assert record["robust_accuracy"] == pytest.approx(robust[in_group].mean())
        assert record["robust_accuracy_count"] == in_group.sum()
        mask = sex == value
        assert record["ece"] == pytest.approx(
            expected_calibration_error(confidence[mask], clean_correct[mask], n_bins=15)
        )
    assert records["sex=F"]["robust_accuracy"] == 0.0
    d = result.details["slicings"][0]["disparities"]["robust_accuracy_difference"]
    assert d["lower_group"] == "sex=F" and d["significant"]
    assert result.metrics["worst_group_robust_accuracy"] == 0.0
    assert result.metrics["robust_accuracy_difference"] == pytest.approx(
        robust[sex[attacked] == "M"].mean()
    )
    assert "ece_difference" in result.metrics
    assert (
        next(c for c in result.checks if c.name == "robust_accuracy_difference[sex]").status
        == "warned"
    )
    figure = next(f for f in result.figures if f["id"] == "bias-robust-accuracy")
    assert "eps 0.1" in figure["title"] and len(figure["bars"]) == 2


def test_malformed_cross_probe_results_are_a_warning_not_a_crash(biased_context):
    context = build_context(biased_context.adapter, biased_context.data, budget="fast")
    context.artifacts["adversarial"] = {"indices": np.arange(5), "robust_correct": [True]}
    result = BiasProbe(budget="fast", n_boot=20, sensitive=["sex"]).run(context)
    check = next(c for c in result.checks if c.name == "robust_accuracy_per_group")
    assert check.status == "warned" and "1 values for 5 indices" in check.detail
    assert "robust_accuracy_difference" not in result.metrics


# --- proxy slices ------------------------------------------------------------------------------
def test_images_without_groups_get_proxy_slices_labelled_as_proxies(demo_context):
    result = BiasProbe(budget="fast", n_boot=20).run(demo_context)
    details = result.details
    assert details["slice_kind"] == "proxy" and "PROXY" in details["note"]
    names = [s["name"] for s in details["slicings"]]
    assert names == [
        "class (proxy)",
        "brightness (proxy)",
        "contrast (proxy)",
        "ink coverage (proxy)",
    ]
    assert all(s["kind"] == "proxy" and PROXY_NOTE in s["definition"] for s in details["slicings"])
    assert result.summary.startswith("PROXY slices, not demographics")
    assert all(PROXY_NOTE in f["title"] for f in result.figures)
    assert all("proxy" in c.detail.lower() for c in result.checks if c.name.endswith("(proxy)]"))
    assert next(c for c in result.checks if c.name == "demographic_groups").status == "skipped"
    assert not [f for f in result.findings if f.severity == "critical"]
    assert result.metrics["demographic_parity_difference"] is None  # confounded by class mix

    # The class slice is per-class recall; quartile slices are ordered and split the data evenly.
    y = demo_context.data.y.numpy()
    pred = demo_context.clean_predictions.numpy()
    by_class = {g["group"]: g for g in details["slicings"][0]["groups"]}
    for c in range(10):
        assert by_class[f"class {c}"]["accuracy"] == pytest.approx((pred[y == c] == c).mean())
    brightness = fairness.image_statistics(demo_context.data.x, (0.0, 1.0))["brightness"]
    quartiles = details["slicings"][1]["groups"]
    assert [g["count"] for g in quartiles] == pytest.approx([len(y) / 4] * 4, abs=2)
    means = [brightness[_members(quartiles, g, demo_context, brightness)].mean() for g in quartiles]
    assert means == sorted(means)


def test_proxy_numbers_are_never_published_under_demographic_metric_names(demo_model):
    """Digits has no sensitive columns: a gate on bias.accuracy_difference must say "not
    measured" (fail closed), not judge per-class recall; the proxy gap has its own name."""
    import auditkit
    from auditkit.demo import digits_metadata
    from auditkit.gates import apply_policy

    result = auditkit.scan(
        demo_model,
        "digits",
        metadata=digits_metadata(),
        probes=["performance", "bias"],
        budget="fast",
        device="cpu",
        options={"bias": {"n_boot": 20}},
    )
    bias = result.probes["bias"]
    assert bias.details["slice_kind"] == "proxy"
    for name in DEMOGRAPHIC_METRICS:
        assert bias.metrics[name] is None, name
    assert bias.metrics["overall_accuracy"] == pytest.approx(
        result.probes["performance"].metrics["accuracy"]
    )
    slicings = bias.details["slicings"]
    assert bias.metrics["proxy_accuracy_difference"] == pytest.approx(
        max(s["disparities"]["accuracy_difference"]["value"] for s in slicings)
    )
    assert bias.metrics["proxy_worst_slice_accuracy"] == pytest.approx(
        min(g["accuracy"] for s in slicings for g in s["groups"] if not g["small"])
    )
    assert bias.metrics["proxy_min_slice_size"] == min(
        g["count"] for s in slicings for g in s["groups"]
    )
    assert bias.headline == "proxy_worst_slice_accuracy"
    disparity_checks = [c.name for c in bias.checks if c.name.endswith("(proxy)]")]
    assert disparity_checks and all(n.startswith("proxy_") for n in disparity_checks)
    assert bias.summary.startswith("PROXY slices, not demographics")
    for name in (m for m in bias.metrics if m.startswith("proxy_")):
        assert PROXY_NOTE in BiasProbe.metrics[name].description, name

    gated = apply_policy(
        result,
        {
            "gates": {
                "bias.accuracy_difference": "<= 0.05",
                "bias.worst_group_accuracy": ">= 0.5",
                "bias.proxy_accuracy_difference": "<= 0.5",
            }
        },
    )
    gates = {g.metric: g for g in gated.gates}
    for name in ("bias.accuracy_difference", "bias.worst_group_accuracy"):
        assert not gates[name].passed and gates[name].value is None
        assert "not measured" in gates[name].detail
    assert gates["bias.proxy_accuracy_difference"].passed
    assert gated.verdict == "failed"


def test_cross_probe_numbers_on_proxy_slices_get_proxy_names(demo_context):
    context = build_context(demo_context.adapter, demo_context.data, budget="fast")
    y = context.data.y.numpy()
    clean_correct = context.clean_correct.numpy()
    context.artifacts["adversarial"] = {
        "indices": np.arange(len(y)),
        "robust_correct": clean_correct & (y != 0),  # every 0 falls: class 0 is the worst slice
    }
    context.artifacts["calibration"] = {
        "indices": np.arange(len(y)),
        "confidence": context.clean_probabilities.max(dim=1).values.numpy(),
        "correct": clean_correct,
    }
    result = BiasProbe(budget="fast", n_boot=20).run(context)
    m = result.metrics
    for name in (
        "worst_group_robust_accuracy",
        "robust_accuracy_difference",
        "worst_group_ece",
        "ece_difference",
    ):
        assert m[name] is None, name
    assert m["proxy_worst_slice_robust_accuracy"] == 0.0
    assert m["proxy_robust_accuracy_difference"] > 0.5
    assert m["proxy_worst_slice_ece"] is not None and m["proxy_ece_difference"] is not None


def test_sensitive_columns_with_proxy_slices_keep_the_two_families_apart(demo_context):
    site = np.where(np.arange(len(demo_context.data)) % 3 == 0, "A", "B")
    data = dataclasses.replace(demo_context.data, groups={"site": site})
    context = build_context(demo_context.adapter, data, budget="fast")
    result = BiasProbe(budget="fast", n_boot=20, proxy_slices="always").run(context)
    by_kind = {"sensitive": [], "proxy": []}
    for report in result.details["slicings"]:
        by_kind[report["kind"]].append(report["disparities"]["accuracy_difference"]["value"])
    assert len(by_kind["sensitive"]) == 1 and len(by_kind["proxy"]) == 4
    m = result.metrics
    assert m["accuracy_difference"] == pytest.approx(by_kind["sensitive"][0])
    assert m["proxy_accuracy_difference"] == pytest.approx(max(by_kind["proxy"]))
    assert m["min_group_size"] == min(int((site == v).sum()) for v in ("A", "B"))
    assert result.headline == "worst_group_accuracy"
    assert not result.summary.startswith("PROXY")


def _members(groups, record, context, brightness):
    lo, hi = (float(v) for v in record["group"].split("[")[1].rstrip("]").split(", "))
    return (brightness >= lo - 1e-3) & (brightness <= hi + 1e-3)


def test_multiclass_rates_are_one_vs_rest_for_the_positive_class(demo_context, digits_data):
    site = np.where(np.arange(len(digits_data)) % 3 == 0, "A", "B")
    data = dataclasses.replace(digits_data, groups={"site": site})
    context = build_context(demo_context.adapter, data, budget="fast")
    y, pred = data.y.numpy(), context.clean_predictions.numpy()
    for option in (3, "3"):
        result = BiasProbe(budget="fast", n_boot=20, positive_class=option).run(context)
        assert result.details["positive_class"] == "3"
        for record in result.details["slicings"][0]["groups"]:
            mask = site == record["values"]["site"]
            yb, pb = (y[mask] == 3).astype(int), (pred[mask] == 3).astype(int)
            assert record["selection_rate"] == pytest.approx(
                flm.selection_rate(y[mask], pred[mask], pos_label=3)
            )
            assert record["true_positive_rate"] == pytest.approx(flm.true_positive_rate(yb, pb))
            assert record["false_positive_rate"] == pytest.approx(flm.false_positive_rate(yb, pb))
    # Without a positive class: every class one-vs-rest, the worst class named.
    result = BiasProbe(budget="fast", n_boot=20).run(context)
    report = result.details["slicings"][0]
    assert set(report["groups"][0]["per_class"]) == {str(c) for c in range(10)}
    eo = report["disparities"]["equalized_odds_difference"]
    widest = max(
        abs(g1["per_class"][str(c)][r] - g2["per_class"][str(c)][r])
        for c in range(10)
        for r in ("true_positive_rate", "false_positive_rate")
        for g1 in report["groups"]
        for g2 in report["groups"]
    )
    assert eo["value"] == pytest.approx(widest) and eo["positive_class"] is not None
    with pytest.raises(AuditkitInputError, match="positive_class"):
        BiasProbe(positive_class=12).run(context)


# --- reproducibility, options, pipeline --------------------------------------------------------
def test_same_seed_same_numbers(biased_context):
    first = BiasProbe(budget="fast", n_boot=20, sensitive=["sex"]).run(biased_context)
    second = BiasProbe(budget="fast", n_boot=20, sensitive=["sex"]).run(biased_context)
    assert first.metrics == second.metrics
    assert first.details["slicings"] == second.details["slicings"]


@pytest.mark.parametrize(
    "options",
    [
        {"min_group_size": 0},
        {"n_boot": 5},
        {"confidence": 1.5},
        {"proxy_slices": "some"},
        {"proxy_quantiles": 1},
        {"max_accuracy_difference": -0.1},
        {"colour": "red"},
    ],
)
def test_bad_options_are_input_errors(options):
    with pytest.raises(AuditkitInputError, match="bias"):
        BiasProbe(**options)


def test_unknown_sensitive_column_is_an_input_error(biased_context):
    with pytest.raises(AuditkitInputError, match="no column race"):
        BiasProbe(sensitive="race").run(biased_context)


def test_example_script_runs_end_to_end(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "bias_credit.py"
    spec = importlib.util.spec_from_file_location("bias_credit_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--budget", "fast", "--epochs", "8", "--out", str(tmp_path)])
    assert result.probes["bias"].status == "failed"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "audit.json").is_file()
    saved = AuditResult.load(tmp_path / "audit.json")
    assert saved.probes["bias"].metrics["accuracy_difference"] > 0.15
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "bias probe: failed" in out and "sex=F" in out


def test_pipeline_writes_strict_json_and_a_gate_catches_the_bias(biased_context):
    from auditkit.gates import apply_policy, load_policy

    result = run_audit(
        biased_context.adapter,
        biased_context.data,
        probes=["performance", "bias"],
        budget="fast",
        options={"bias": {"n_boot": 20, "sensitive": ["sex"]}},
    )
    bias = result.probes["bias"]
    assert bias.status == "failed" and bias.seconds > 0
    again = AuditResult.from_json(json.dumps(result.to_dict(), allow_nan=False))
    assert again.probes["bias"].metrics == pytest.approx(bias.metrics)
    for name in DEMOGRAPHIC_METRICS:
        assert isinstance(bias.metrics[name], float), name
    assert not [m for m in bias.metrics if m.startswith("proxy_")]
    assert bias.headline == "worst_group_accuracy"
    gated = apply_policy(result, load_policy({"gates": {"bias.accuracy_difference": "<= 0.05"}}))
    assert gated.verdict == "failed"
    assert gated.gates[0].value == pytest.approx(bias.metrics["accuracy_difference"])
