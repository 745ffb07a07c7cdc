"""An audit logged to an MLflow run: metrics, verdict tags and the four output files.

Everything logged is read back from audit.json (as ``auditkit report`` does), so a run logged by
``mlflow.evaluate``, by ``auditkit scan --mlflow`` or later from a folder carries the same names
and values. Metrics are ``auditkit.<probe>.<metric>``; a metric the audit left unmeasured (null)
cannot be an MLflow metric and is listed in the ``auditkit.unmeasured_metrics`` tag instead.
"""

from __future__ import annotations

import json
import math
import numbers
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError, one_line

PREFIX = "auditkit"
ARTIFACT_DIR = "auditkit"  # where the four files go inside the run's artifacts
OUTPUT_FILES = ("audit.json", "report.html", "junit.xml", "summary.md")
# MLflow accepts letters, digits, "_", "-", ".", " ", "/" (and ":") in metric and tag names, up
# to 250 characters; anything else becomes "_".
_ILLEGAL = re.compile(r"[^A-Za-z0-9_\-. /]")
MAX_NAME = 250
MAX_TAG_VALUE = 5000  # the smallest limit among MLflow's stores (8000 on SQL, 5000 on some)
BATCH = 100  # MLflow's log_batch takes at most 100 tags (and 1000 metrics) per call


def metric_name(probe: str, metric: str) -> str:
    """``auditkit.<probe>.<metric>`` with characters MLflow refuses replaced by ``_``."""
    return _ILLEGAL.sub("_", f"{PREFIX}.{probe}.{metric}")[:MAX_NAME]


def _number(value: Any) -> float | None:
    """A metric value MLflow can store (finite number; a bool as 0/1), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, numbers.Real) and math.isfinite(float(value)):
        return float(value)
    return None


def _probe_metrics(audit: Mapping[str, Any]):
    for probe, body in sorted((audit.get("probes") or {}).items()):
        for metric, value in sorted(((body or {}).get("metrics") or {}).items()):
            yield probe, metric, value


def audit_metrics(audit: Mapping[str, Any]) -> dict[str, float]:
    """Every measured metric of an audit.json as ``{auditkit.<probe>.<metric>: value}``."""
    return {
        metric_name(probe, metric): number
        for probe, metric, value in _probe_metrics(audit)
        if (number := _number(value)) is not None
    }


def unmeasured_metrics(audit: Mapping[str, Any]) -> list[str]:
    """``probe.metric`` names whose value is null or not a finite number (not logged)."""
    return [f"{p}.{m}" for p, m, v in _probe_metrics(audit) if _number(v) is None]


def audit_tags(audit: Mapping[str, Any]) -> dict[str, str]:
    """The verdict, its reasons (the console's lines, in order) and what was audited, as tags."""
    from auditkit.results import AuditResult

    result = AuditResult.from_dict(audit)
    tags = {
        f"{PREFIX}.verdict": str(audit.get("verdict", result.verdict)),
        f"{PREFIX}.verdict_text": result.verdict_text,
        f"{PREFIX}.verdict_reasons": "\n".join(r.line for r in result.verdict_reasons) or "(none)",
        f"{PREFIX}.version": str(audit.get("auditkit_version", "")),
        f"{PREFIX}.model.path": str((audit.get("model") or {}).get("path") or ""),
        f"{PREFIX}.model.format": str((audit.get("model") or {}).get("format") or ""),
        f"{PREFIX}.model.sha256": str((audit.get("model") or {}).get("sha256") or ""),
        f"{PREFIX}.data.name": str((audit.get("data") or {}).get("name") or ""),
    }
    for probe, body in sorted((audit.get("probes") or {}).items()):
        tags[_ILLEGAL.sub("_", f"{PREFIX}.{probe}.status")[:MAX_NAME]] = str(body.get("status"))
    unmeasured = unmeasured_metrics(audit)
    if unmeasured:
        tags[f"{PREFIX}.unmeasured_metrics"] = ", ".join(unmeasured)
    return {k: _clip(v) for k, v in tags.items() if v != ""}


def _clip(value: str) -> str:
    return value if len(value) <= MAX_TAG_VALUE else value[: MAX_TAG_VALUE - 2] + " …"


def experiment_name(audit: Mapping[str, Any]) -> str:
    """The experiment named after the model: a registered model's name, else the file's stem."""
    path = str((audit.get("model") or {}).get("path") or "")
    if path.startswith("models:/"):
        name = path[len("models:/"):].split("/")[0].split("@")[0]
        return name or PREFIX
    if path.startswith("runs:/"):
        return f"run {path[len('runs:/'):].strip('/').split('/')[0]}"
    return Path(path).stem if path else PREFIX


def _outputs_folder(source: Any, scratch: Path) -> Path:
    """The folder holding the four outputs: given, the folder of a given audit.json, or
    written into ``scratch`` from an ``AuditResult``."""
    from auditkit.results import AuditResult

    if isinstance(source, AuditResult):
        from auditkit.outputs import write_outputs

        write_outputs(source, scratch)
        return scratch
    folder = Path(source)
    if folder.is_file():
        folder = folder.parent
    missing = [n for n in OUTPUT_FILES if not (folder / n).is_file()]
    if missing:
        raise AuditkitInputError(
            f"{source}: not an auditkit output folder (missing {', '.join(missing)}); pass the "
            "--out folder of auditkit scan"
        )
    return folder


def log_audit(
    source: Any,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    experiment: str | None = None,
) -> str:
    """Log an audit to MLflow and return the run's id.

    Args:
        source: an ``AuditResult``, an output folder (``--out``) or its audit.json.
        tracking_uri: where runs are stored (``sqlite:///mlflow.db``, a folder, a server);
            default: MLflow's own (``MLFLOW_TRACKING_URI``, else its local default).
        run_id: log into this existing run (``--mlflow-run``); default: a new run.
        experiment: the new run's experiment; default: named after the model.

    Example:
        >>> run_id = log_audit("auditkit-out", "sqlite:///mlflow.db")
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="auditkit-mlflow-") as scratch:
        folder = _outputs_folder(source, Path(scratch))
        try:
            audit = json.loads((folder / "audit.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AuditkitInputError(f"{folder / 'audit.json'}: cannot read it ({one_line(exc, 200)})") from None
        client = MlflowClient(tracking_uri=tracking_uri)
        created = False
        try:
            if run_id is not None:
                run_id = client.get_run(run_id).info.run_id
            else:
                name = experiment or experiment_name(audit)
                found = client.get_experiment_by_name(name)
                experiment_id = found.experiment_id if found else client.create_experiment(name)
                run_id = client.create_run(experiment_id, run_name=f"auditkit {audit.get('verdict', '')}").info.run_id
                created = True
        except MlflowException as exc:
            where = f"--mlflow-run {run_id}" if run_id is not None else f"--mlflow {tracking_uri or ''}".rstrip()
            raise AuditkitInputError(f"{where}: {one_line(exc.message, 300)}") from None
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in audit_metrics(audit).items()]
        tags = [RunTag(k, v) for k, v in audit_tags(audit).items()]
        for start in range(0, max(len(metrics), len(tags)), BATCH):
            client.log_batch(run_id, metrics=metrics[start:start + BATCH], tags=tags[start:start + BATCH])
        for name in OUTPUT_FILES:
            client.log_artifact(run_id, str(folder / name), artifact_path=ARTIFACT_DIR)
        if created:
            failed = audit.get("verdict") == "error"
            client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")
    return run_id


def check_target(tracking_uri: str | None, run_id: str | None) -> None:
    """Before an audit: use ``tracking_uri`` (models:/ look-ups too) and check ``run_id``
    exists, so a typo is exit 2 in a second rather than after the scan."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    set_tracking_uri(tracking_uri)
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # stores raise their own types (sqlalchemy, requests, OSError)
        raise AuditkitInputError(
            f"--mlflow {tracking_uri or '(default)'}: cannot open the tracking store "
            f"({one_line(exc, 200)}); pass sqlite:///PATH.db, a folder or a server URI"
        ) from None
    if run_id is None:
        return
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        raise AuditkitInputError(
            f"--mlflow-run {run_id}: {one_line(exc.message, 200)}; pass a run id of the tracking "
            "store given by --mlflow (or MLFLOW_TRACKING_URI)"
        ) from None


def set_tracking_uri(uri: str | None) -> None:
    """Use ``uri`` for models:/ and runs:/ look-ups in this process (``--mlflow URI``)."""
    if uri:
        import mlflow

        mlflow.set_tracking_uri(uri)
