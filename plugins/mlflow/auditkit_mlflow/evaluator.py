"""``mlflow.evaluate(model, data, targets=..., evaluators=["auditkit"])``: an auditkit scan.

MLflow hands the evaluator a loaded pyfunc and the evaluation data; the evaluator audits the
model underneath the pyfunc where it can: the PyTorch flavour as the ``nn.Module`` itself (white
box, gradients, every attack), the scikit-learn flavour as the estimator or pipeline (the raw
table, text columns and sensitive columns included), any other pyfunc as a black box through
``predict``. The audit is logged to the evaluation's run exactly as ``auditkit scan --mlflow``
logs it (``auditkit_mlflow.runlog``).

``evaluator_config`` keys (all optional) mirror ``auditkit.scan``'s arguments: ``probes``,
``budget`` (default ``fast``), ``seed``, ``policy``, ``fail_on``, ``options``, ``sensitive``,
``keep_sensitive_features``, ``input_shape``, ``input_range``, ``max_minutes``, ``device`` and
``out`` (a folder to keep the four files in as well).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.models.evaluation.base import EvaluationArtifact, EvaluationResult, ModelEvaluator

from auditkit.errors import AuditkitInputError

CONFIG_KEYS = (
    "probes", "budget", "seed", "policy", "fail_on", "options", "sensitive",
    "keep_sensitive_features", "input_shape", "input_range", "max_minutes", "device", "out",
)
DEFAULT_BUDGET = "fast"  # an evaluation sits inside a training script: minutes, not hours


def check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The evaluator_config, with an unknown key refused by name (a typo must not be ignored)."""
    config = dict(config or {})
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise AuditkitInputError(
            f"evaluator_config: unknown key(s) {', '.join(map(repr, unknown))}; the auditkit "
            f"evaluator takes {', '.join(CONFIG_KEYS)}"
        )
    return config


def native_model(model: Any) -> tuple[Any, str]:
    """What to audit beneath MLflow's pyfunc: ``(model, kind)`` with kind ``torch``,
    ``sklearn`` or ``pyfunc`` (black box)."""
    flavors = getattr(getattr(model, "metadata", None), "flavors", None) or {}
    if "pytorch" in flavors:
        return model.get_raw_model(), "torch"
    if "sklearn" in flavors:
        return model.get_raw_model(), "sklearn"
    from auditkit_mlflow.models import PyfuncPredict

    return PyfuncPredict(model.predict), "pyfunc"


def _frame(features: Any, names: list[str] | None) -> Any:
    import pandas as pd

    if isinstance(features, pd.DataFrame):
        return features
    return pd.DataFrame(np.asarray(features), columns=names)


def audit_data(dataset: Any, kind: str, config: Mapping[str, Any], scratch: Path) -> dict[str, Any]:
    """``auditkit.scan`` keyword arguments for MLflow's evaluation data.

    A scikit-learn model reads the raw table, so the table is handed over as a parquet file with
    its label column (text and sensitive columns keep their meaning); a tensor model gets
    ``(x, y, groups)``, the sensitive columns taken out of its features unless
    ``keep_sensitive_features``.
    """
    if dataset.labels_data is None:
        raise AuditkitInputError("mlflow.evaluate: pass targets=... (auditkit audits a classifier "
                                 "against its labels)")
    sensitive = list(config.get("sensitive") or [])
    frame = _frame(dataset.features_data, list(dataset.feature_names or []) or None)
    frame.columns = [str(c) for c in frame.columns]
    labels = np.asarray(dataset.labels_data).reshape(-1)
    missing = [c for c in sensitive if c not in frame.columns]
    if missing:
        raise AuditkitInputError(
            f"evaluator_config sensitive: no column {', '.join(missing)} in the data "
            f"(columns: {', '.join(frame.columns[:20])})"
        )
    if kind == "sklearn":
        target = str(dataset.targets_name or "label")
        table = frame.copy()
        table[target] = labels
        path = scratch / "evaluation.parquet"
        table.to_parquet(path, index=False)
        return {"data": str(path), "target": target, "sensitive": sensitive or None,
                "keep_sensitive_features": bool(config.get("keep_sensitive_features"))}
    keep = bool(config.get("keep_sensitive_features"))
    features = frame if keep else frame.drop(columns=sensitive)
    x = np.asarray(features, dtype=np.float32)
    if config.get("input_shape"):
        x = x.reshape(len(x), *[int(s) for s in config["input_shape"]])
    groups = {c: np.asarray(frame[c]) for c in sensitive} or None
    if kind == "pyfunc":
        return {"data": (x, labels.astype(np.int64), groups), "feature_names": list(features.columns)}
    return {"data": (x, labels.astype(np.int64), groups)}


def run_scan(model: Any, dataset: Any, config: Mapping[str, Any], scratch: Path) -> Any:
    """The auditkit scan behind one evaluation (an ``AuditResult``, gates applied)."""
    import auditkit
    from auditkit.loading import ModelMetadata

    config = check_config(config)
    native, kind = native_model(model)
    scan_data = audit_data(dataset, kind, config, scratch)
    names = scan_data.pop("feature_names", None)
    if names is not None:
        native.feature_names = names
    metadata = None
    if config.get("input_range") is not None:
        metadata = ModelMetadata(input_range=tuple(float(v) for v in config["input_range"]))
    data = scan_data.pop("data")
    return auditkit.scan(
        native, data, probes=config.get("probes"), budget=config.get("budget", DEFAULT_BUDGET),
        seed=int(config.get("seed", 0)), device=config.get("device", "auto"),
        policy=config.get("policy"), options=config.get("options"), fail_on=config.get("fail_on"),
        max_minutes=config.get("max_minutes"), metadata=metadata, **scan_data,
    )


class AuditkitEvaluator(ModelEvaluator):
    """MLflow's ``auditkit`` evaluator (entry point ``mlflow.model_evaluator``)."""

    name = "auditkit"

    @classmethod
    def can_evaluate(cls, *, model_type: Any, evaluator_config: Any, **kwargs: Any) -> bool:
        return model_type in (None, "classifier")

    def evaluate(self, *, model_type: Any, dataset: Any, run_id: str, evaluator_config: Any,
                 model: Any = None, **kwargs: Any) -> EvaluationResult:
        import json

        from mlflow.models.evaluation.artifacts import JsonEvaluationArtifact
        from mlflow.tracking.artifact_utils import get_artifact_uri

        from auditkit.outputs import write_outputs
        from auditkit_mlflow.runlog import ARTIFACT_DIR, OUTPUT_FILES, audit_metrics, log_audit

        if model is None:
            raise AuditkitInputError("mlflow.evaluate: the auditkit evaluator needs the model "
                                     "itself (it attacks and retrains it), not predictions")
        with tempfile.TemporaryDirectory(prefix="auditkit-mlflow-") as scratch:
            result = run_scan(model, dataset, evaluator_config, Path(scratch))
            out = Path((evaluator_config or {}).get("out") or Path(scratch) / "out")
            write_outputs(result, out)
            log_audit(out, run_id=run_id)
            audit = json.loads((out / "audit.json").read_text(encoding="utf-8"))
        artifacts = {}
        for name in OUTPUT_FILES:
            uri = get_artifact_uri(run_id, f"{ARTIFACT_DIR}/{name}")
            kind = JsonEvaluationArtifact if name == "audit.json" else TextArtifact
            artifacts[f"auditkit_{name.replace('.', '_')}"] = kind(uri=uri)
        return EvaluationResult(metrics=audit_metrics(audit), artifacts=artifacts, run_id=run_id)


class TextArtifact(EvaluationArtifact):
    """report.html, junit.xml, summary.md as evaluation artifacts (their text)."""

    def _load_content_from_file(self, local_artifact_path: str) -> str:
        self._content = Path(local_artifact_path).read_text(encoding="utf-8")
        return self._content

    def _save(self, output_artifact_path: str) -> None:
        Path(output_artifact_path).write_text(self._content, encoding="utf-8")
