"""Names MLflow accepts, and the CLI's optional --mlflow value (no MLflow store needed)."""

import re

from auditkit_mlflow.runlog import audit_metrics, metric_name, unmeasured_metrics

from auditkit.tracking import fill_optional_value, uri_tracker

LEGAL = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}$")


def test_metric_names_are_mlflow_legal_and_keep_probe_and_metric():
    assert metric_name("adversarial", "robust_accuracy") == "auditkit.adversarial.robust_accuracy"
    odd = metric_name("my plugin", "acc@eps=0.1 (L∞)")
    assert LEGAL.match(odd), odd
    assert odd.startswith("auditkit.my plugin.acc_eps_0.1 ")


def test_null_and_non_finite_metrics_are_listed_not_logged():
    audit = {"probes": {"bias": {"metrics": {"worst_group_accuracy": None, "n": 3, "x": float("nan"),
                                             "flag": True}}}}
    assert audit_metrics(audit) == {"auditkit.bias.n": 3.0, "auditkit.bias.flag": 1.0}
    assert unmeasured_metrics(audit) == ["bias.worst_group_accuracy", "bias.x"]


def test_mlflow_flag_value_is_optional():
    assert fill_optional_value(["scan", "m.pt2", "--mlflow"]) == ["scan", "m.pt2", "--mlflow", "default"]
    assert fill_optional_value(["scan", "m.pt2", "--mlflow", "-q"])[3] == "default"
    assert fill_optional_value(["scan", "m.pt2", "--mlflow", "sqlite:///a.db"])[3] == "sqlite:///a.db"


def test_registry_uris_belong_to_the_mlflow_tracker():
    assert uri_tracker("models:/demo/1") == "mlflow"
    assert uri_tracker("runs:/abc/model") == "mlflow"
    assert uri_tracker("model.pt2") is None
