"""Result dataclasses: what probes return and what ``audit.json`` holds.

Everything here is plain data. ``to_dict`` gives JSON-ready dictionaries (numbers stay numbers,
no pickle anywhere) and ``from_dict`` rebuilds the object, so every renderer and gate is a pure
function of ``audit.json``.

Figures travel as data too. A probe describes a picture with one of these dictionaries and the
renderers draw it (HTML as inline SVG); no probe draws anything itself:

- ``{"kind": "line", "title", "x_label", "y_label", "series": [{"name", "x": [..], "y": [..]}],
  "y_range": [lo, hi] (optional), "x_scale": "linear"|"log" (optional), "caption"}``
- ``{"kind": "bar", "title", "x_label", "y_label", "bars": [{"label", "value", "low", "high",
  "flag"}], "reference": number (optional), "caption"}`` (``low``/``high``: confidence interval)
- ``{"kind": "reliability", "title", "bins": [{"lower", "upper", "confidence", "accuracy",
  "count"}], "caption"}``
- ``{"kind": "matrix", "title", "labels": [..], "values": [[..]], "x_label", "y_label"}``
- ``{"kind": "images", "title", "columns": [..], "rows": [{"caption", "cells": [{"label",
  "pixels": [[..]] (H×W or H×W×3 floats in [0, 1])} or {"label", "png": "data:image/png;
  base64,…"}]}], "caption"}`` (``auditkit.images.image_cell`` picks: number lists for
  images of at most 1,024 values, an 8-bit PNG beyond)
- ``{"kind": "table", "title", "columns": [..], "rows": [[..]], "caption"}``
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = "1.0"

Status = Literal["passed", "warned", "failed", "error", "skipped"]
STATUSES: tuple[str, ...] = ("passed", "warned", "failed", "error", "skipped")
CheckStatus = Literal["passed", "failed", "warned", "skipped"]


def jsonable(value: Any) -> Any:
    """Convert numpy / torch scalars and arrays, tuples and NaN into strict-JSON values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value))
    tolist = getattr(value, "tolist", None)  # numpy arrays/scalars and torch tensors
    if callable(tolist):
        return jsonable(tolist())
    item = getattr(value, "item", None)
    if callable(item):
        return jsonable(item())
    raise TypeError(f"cannot store a {type(value).__name__} in audit.json")


@dataclass(frozen=True)
class Check:
    """One validity or policy check: a name, a status and the numbers behind it."""

    name: str
    status: CheckStatus
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "values": jsonable(self.values),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        return cls(
            name=d["name"],
            status=d["status"],
            detail=d.get("detail", ""),
            values=dict(d.get("values") or {}),
        )


@dataclass(frozen=True)
class Finding:
    """A plain-language finding for the report: what we saw, why it matters, what to do."""

    severity: Literal["info", "warning", "critical"]
    title: str
    why: str = ""
    action: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(
            severity=d["severity"],
            title=d["title"],
            why=d.get("why", ""),
            action=d.get("action", ""),
        )


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found.

    Args:
        name: registry name of the probe (``adversarial``).
        status: passed | warned | failed | error | skipped.
        metrics: flat ``{metric: number}``; policies address them as ``probe.metric``.
        checks: validity checks with their numbers.
        summary: one plain-language sentence for the scorecard tile.
        headline: the metric shown large on the scorecard tile.
        findings: what it means and what to do.
        figures: picture descriptions (see the module docstring).
        details: any further JSON-ready data (settings used, per-class tables, ...).
        seconds: wall time of the probe.
        error: the error message when ``status == "error"``.
        skip_reason: why the probe did not run when ``status == "skipped"``.
        metric_info: ``{metric: {"direction": "higher"|"lower"|None, "description"}}``, copied
            from the probe's declaration by the runner so the report can explain every metric
            (plugins' included) from audit.json alone.
        options: the resolved options the probe ran with (budget defaults filled in), recorded
            by the runner.
        report_template: the probe's report partial (``"package:path"``), recorded by the
            runner from the probe's declaration.
        title: the probe's human title, recorded by the runner from its declaration (a
            plugin's title reaches the report from audit.json alone; "" when none declared).
    """

    name: str
    status: Status
    metrics: dict[str, float | None] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    summary: str = ""
    headline: str | None = None
    findings: list[Finding] = field(default_factory=list)
    figures: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    skip_reason: str | None = None
    metric_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    report_template: str | None = None
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "metrics": jsonable(self.metrics),
            "checks": [c.to_dict() for c in self.checks],
            "summary": self.summary,
            "headline": self.headline,
            "findings": [f.to_dict() for f in self.findings],
            "figures": jsonable(self.figures),
            "details": jsonable(self.details),
            "seconds": round(float(self.seconds), 4),
            "error": self.error,
            "skip_reason": self.skip_reason,
            "metric_info": jsonable(self.metric_info),
            "options": jsonable(self.options),
            "report_template": self.report_template,
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProbeResult:
        return cls(
            name=d["name"],
            status=d["status"],
            metrics=dict(d.get("metrics") or {}),
            checks=[Check.from_dict(c) for c in d.get("checks") or []],
            summary=d.get("summary", ""),
            headline=d.get("headline"),
            findings=[Finding.from_dict(f) for f in d.get("findings") or []],
            figures=list(d.get("figures") or []),
            details=dict(d.get("details") or {}),
            seconds=float(d.get("seconds") or 0.0),
            error=d.get("error"),
            skip_reason=d.get("skip_reason"),
            metric_info=dict(d.get("metric_info") or {}),
            options=dict(d.get("options") or {}),
            report_template=d.get("report_template"),
            title=str(d.get("title") or ""),
        )


@dataclass(frozen=True)
class GateResult:
    """One policy rule evaluated against an audit."""

    metric: str
    rule: str
    value: float | str | None
    passed: bool
    severity: Literal["fail", "warn"] = "fail"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateResult:
        return cls(
            metric=d["metric"],
            rule=d["rule"],
            value=d.get("value"),
            passed=bool(d["passed"]),
            severity=d.get("severity", "fail"),
            detail=d.get("detail", ""),
        )


@dataclass(frozen=True)
class AuditResult:
    """A whole audit: identity of model and data, every probe's result, gates and verdict.

    Example:
        >>> result = auditkit.scan(model, (x, y))
        >>> result.metrics["adversarial.robust_accuracy"]
        >>> auditkit.write_outputs(result, "auditkit-out")
    """

    model: dict[str, Any]
    data: dict[str, Any]
    environment: dict[str, Any]
    probes: dict[str, ProbeResult]
    gates: list[GateResult] = field(default_factory=list)
    verdict: Literal["passed", "failed", "error"] = "passed"
    fail_on: str = "failed"
    settings: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    duration_seconds: float = 0.0
    schema_version: str = SCHEMA_VERSION
    auditkit_version: str = ""

    # --- questions, MetricFrame-style -------------------------------------------------
    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def verdict_reasons(self) -> list[Any]:
        """Every failed / warned / errored probe and gate, worst first (``verdict.Reason``)."""
        from auditkit.verdict import verdict_reasons

        return verdict_reasons(self.probes, self.gates, self.fail_on)

    @property
    def verdict_text(self) -> str:
        """``passed`` | ``passed with warnings`` | ``failed`` | ``error``: what people read."""
        from auditkit.verdict import verdict_text

        return verdict_text(self.verdict, self.verdict_reasons)

    @property
    def failures(self) -> list[GateResult]:
        """Gates that failed with severity ``fail``."""
        return [g for g in self.gates if not g.passed and g.severity == "fail"]

    @property
    def errors(self) -> dict[str, str]:
        return {n: p.error or "" for n, p in self.probes.items() if p.status == "error"}

    @property
    def metrics(self) -> dict[str, float | None]:
        """Every metric as ``{"probe.metric": value}``."""
        return {
            f"{name}.{metric}": value
            for name, probe in self.probes.items()
            for metric, value in probe.metrics.items()
        }

    # --- serialization ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        from auditkit.counts import audit_counts

        return {
            "schema_version": self.schema_version,
            "auditkit_version": self.auditkit_version,
            "started_at": self.started_at,
            "duration_seconds": round(float(self.duration_seconds), 3),
            "model": jsonable(self.model),
            "data": jsonable(self.data),
            "environment": jsonable(self.environment),
            "settings": jsonable(self.settings),
            "probes": {name: p.to_dict() for name, p in self.probes.items()},
            "gates": [g.to_dict() for g in self.gates],
            "verdict": self.verdict,
            "verdict_text": self.verdict_text,
            "fail_on": self.fail_on,
            "verdict_reasons": [r.to_dict() for r in self.verdict_reasons],
            "counts": audit_counts(self.probes, self.gates),  # auditkit.counts: one count
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditResult:
        return cls(
            schema_version=d.get("schema_version", SCHEMA_VERSION),
            auditkit_version=d.get("auditkit_version", ""),
            started_at=d.get("started_at", ""),
            duration_seconds=float(d.get("duration_seconds") or 0.0),
            model=dict(d.get("model") or {}),
            data=dict(d.get("data") or {}),
            environment=dict(d.get("environment") or {}),
            settings=dict(d.get("settings") or {}),
            probes={k: ProbeResult.from_dict(v) for k, v in (d.get("probes") or {}).items()},
            gates=[GateResult.from_dict(g) for g in d.get("gates") or []],
            verdict=d.get("verdict", "passed"),
            # Written before fail_on existed: only gates decided, which is fail_on = "never".
            fail_on=d.get("fail_on", "never"),
        )

    @classmethod
    def from_json(cls, text: str) -> AuditResult:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> AuditResult:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def with_gates(self, gates: list[GateResult], fail_on: str | None = None) -> AuditResult:
        """A copy with these gates (and ``fail_on``, when given) and the verdict they imply."""
        fail_on = fail_on or self.fail_on
        return dataclasses.replace(
            self, gates=gates, fail_on=fail_on,
            verdict=compute_verdict(self.probes, gates, fail_on),
        )

    def save_json(self, path: str | Path) -> Path:
        """Write audit.json alone (the renderers live in ``auditkit.outputs.write_outputs``)."""
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8", newline="\n")
        return path


def compute_verdict(
    probes: Mapping[str, ProbeResult], gates: list[GateResult], fail_on: str = "failed"
) -> str:
    """failed if a fail-severity gate failed or a probe's grade reaches ``fail_on`` (default: a
    probe failed), else error if a probe errored, else passed (see ``auditkit.verdict``)."""
    from auditkit.verdict import decide

    return decide(probes, gates, fail_on)
