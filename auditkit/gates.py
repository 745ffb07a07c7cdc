"""Policies: rules on ``probe.metric`` and on checks, evaluated against an AuditResult.

A policy lives in ``auditkit.toml`` or under ``[tool.auditkit]`` in ``pyproject.toml``::

    [gates]
    "adversarial.robust_accuracy" = ">= 0.30"
    "calibration.ece" = { rule = "<= 0.05", severity = "warn" }

    [checks]
    "adversarial" = "pass"                 # every validity check of the probe must pass
    "performance.input_gradients_usable" = "pass"

A gate whose metric was not measured fails (fail closed) and says so.
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError
from auditkit.results import AuditResult, GateResult

_RULE = re.compile(r"^\s*(>=|<=|>|<|==)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")
_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
SEVERITIES = ("fail", "warn")
POLICY_FILES = ("auditkit.toml", "pyproject.toml")


@dataclass(frozen=True)
class Rule:
    target: str  # "probe.metric", or "probe" / "probe.check" for check rules
    op: str
    threshold: float | None
    severity: str
    kind: str  # "metric" | "check"

    @property
    def text(self) -> str:
        return "checks pass" if self.kind == "check" else f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    source: str = "<inline>"


def known_metrics() -> dict[str, dict[str, Any]]:
    """``{probe: {metric: MetricSpec}}`` for every installed probe that loads."""
    from auditkit.registry import discover_probes

    return {
        name: dict(getattr(entry.obj, "metrics", {}))
        for name, entry in discover_probes().items()
        if entry.loaded
    }


def _parse_rule(key: str, value: Any, source: str) -> Rule:
    severity = "fail"
    if isinstance(value, Mapping):
        severity = str(value.get("severity", "fail"))
        value = value.get("rule")
    if severity not in SEVERITIES:
        raise AuditkitInputError(
            f"{source}: gate {key!r} has severity {severity!r}; use 'fail' or 'warn'"
        )
    match = _RULE.match(str(value)) if value is not None else None
    if not match:
        raise AuditkitInputError(
            f"{source}: gate {key!r} = {value!r} is not a rule; write e.g. \">= 0.30\" "
            "(operators: >=, <=, >, <, ==)"
        )
    return Rule(key, match.group(1), float(match.group(2)), severity, "metric")


def parse_policy(doc: Mapping[str, Any], source: str = "<inline>") -> Policy:
    """Validate a policy mapping against the installed probes' metric names."""
    unknown_sections = sorted(set(doc) - {"gates", "checks"})
    if unknown_sections:
        raise AuditkitInputError(
            f"{source}: unknown policy section [{unknown_sections[0]}]; use [gates] and [checks]"
        )
    metrics = known_metrics()
    rules: list[Rule] = []
    for key, value in (doc.get("gates") or {}).items():
        probe, _, metric = key.partition(".")
        if probe not in metrics:
            raise AuditkitInputError(
                f"{source}: gate {key!r} names unknown probe {probe!r} "
                f"(valid probes: {', '.join(metrics)})"
            )
        if metric not in metrics[probe]:
            valid = ", ".join(f"{probe}.{m}" for m in metrics[probe])
            raise AuditkitInputError(
                f"{source}: gate {key!r} names unknown metric {metric!r} (valid: {valid})"
            )
        rules.append(_parse_rule(key, value, source))
    for key, value in (doc.get("checks") or {}).items():
        probe = key.partition(".")[0]
        if probe not in metrics:
            raise AuditkitInputError(
                f"{source}: check rule {key!r} names unknown probe {probe!r} "
                f"(valid probes: {', '.join(metrics)})"
            )
        severity = "fail"
        if isinstance(value, Mapping):
            severity, value = str(value.get("severity", "fail")), value.get("require", "pass")
        if value != "pass" or severity not in SEVERITIES:
            raise AuditkitInputError(
                f"{source}: check rule {key!r} = {value!r}; write \"pass\" or "
                "{ require = \"pass\", severity = \"warn\" }"
            )
        rules.append(Rule(key, "pass", None, severity, "check"))
    return Policy(tuple(rules), source)


def find_policy_file(directory: str | Path = ".") -> Path | None:
    """``auditkit.toml`` in ``directory``, else a ``pyproject.toml`` with ``[tool.auditkit]``."""
    directory = Path(directory)
    candidate = directory / "auditkit.toml"
    if candidate.is_file():
        return candidate
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            return None
        if "auditkit" in doc.get("tool", {}):
            return pyproject
    return None


def load_policy(policy: str | Path | Mapping[str, Any] | Policy) -> Policy:
    """Read and validate a policy from a file or a mapping; bad policies raise exit-2 errors."""
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, Mapping):
        return parse_policy(policy)
    path = Path(policy)
    if not path.is_file():
        raise AuditkitInputError(f"--policy {path}: no such file")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditkitInputError(f"--policy {path}: not valid TOML ({exc})") from None
    if path.name == "pyproject.toml":
        doc = doc.get("tool", {}).get("auditkit")
        if doc is None:
            raise AuditkitInputError(f"--policy {path}: has no [tool.auditkit] section")
    return parse_policy(doc, str(path))


def evaluate(result: AuditResult, policy: Policy) -> list[GateResult]:
    """Evaluate every rule; nothing is skipped silently."""
    gates: list[GateResult] = []
    for rule in policy.rules:
        probe_name, _, item = rule.target.partition(".")
        probe = result.probes.get(probe_name)
        if rule.kind == "check":
            gates.append(_evaluate_checks(rule, probe_name, item, probe))
            continue
        value = probe.metrics.get(item) if probe is not None else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            why = (
                "probe not run" if probe is None
                else f"not measured (probe {probe.status}"
                + (f": {probe.skip_reason or probe.error}" if (probe.skip_reason or probe.error) else "")
                + ")"
            )
            gates.append(GateResult(rule.target, rule.text, None, False, rule.severity, why))
            continue
        ok = bool(_OPS[rule.op](float(value), rule.threshold))
        detail = f"{rule.target} = {value:.4g}, required {rule.text}"
        gates.append(GateResult(rule.target, rule.text, float(value), ok, rule.severity, detail))
    return gates


def _evaluate_checks(rule: Rule, probe_name: str, check_name: str, probe: Any) -> GateResult:
    if probe is None or probe.status in ("skipped", "error"):
        status = "not run" if probe is None else probe.status
        return GateResult(rule.target, rule.text, None, False, rule.severity, f"probe {status}")
    checks = [c for c in probe.checks if not check_name or c.name == check_name]
    if check_name and not checks:
        names = ", ".join(c.name for c in probe.checks)
        return GateResult(
            rule.target, rule.text, None, False, rule.severity,
            f"no check {check_name!r} in {probe_name} (its checks: {names})",
        )
    failed = [c.name for c in checks if c.status == "failed"]
    detail = "all passed" if not failed else "failed: " + ", ".join(failed)
    return GateResult(
        rule.target, rule.text, f"{len(checks) - len(failed)}/{len(checks)}", not failed,
        rule.severity, detail,
    )


def apply_policy(result: AuditResult, policy: Policy | Mapping[str, Any] | str | Path) -> AuditResult:
    """The result with gates evaluated and the verdict they imply."""
    return result.with_gates(evaluate(result, load_policy(policy)))


EXIT_PASSED, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_PROBE_ERROR = 0, 1, 2, 3


def exit_code(result: AuditResult) -> int:
    """0 passed · 1 a gate failed · 3 a probe errored (bad input, 2, is raised earlier)."""
    if result.failures:
        return EXIT_GATE_FAILED
    if result.errors:
        return EXIT_PROBE_ERROR
    return EXIT_PASSED
