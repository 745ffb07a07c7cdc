"""auditkit-mlflow: audits where teams already track their models.

- ``mlflow.evaluate(model, data, targets=..., evaluators=["auditkit"])`` runs an auditkit scan
  (``auditkit_mlflow.evaluator``, registered under MLflow's ``mlflow.model_evaluator`` entry point);
- ``log_audit(result_or_out_dir, tracking_uri, run_id=None)`` logs metrics
  (``auditkit.<probe>.<metric>``), verdict tags and the four output files to a run; the CLI's
  ``auditkit scan --mlflow`` calls it;
- ``load_model_uri`` (``models:/``, ``runs:/``) and ``fetch_audit`` (``auditkit diff runs:/A
  runs:/B``) serve auditkit's core through the ``auditkit.trackers`` entry point.

mlflow is imported only when one of these runs: ``import auditkit_mlflow`` stays cheap.
"""

from auditkit_mlflow.models import fetch_audit, load_model_uri
from auditkit_mlflow.runlog import (
    audit_metrics,
    audit_tags,
    check_target,
    log_audit,
    metric_name,
    set_tracking_uri,
)

__all__ = ["audit_metrics", "audit_tags", "check_target", "fetch_audit", "load_model_uri", "log_audit",
           "metric_name", "set_tracking_uri"]
