"""Policies: rules on ``probe.metric`` and on checks, evaluated against an AuditResult.

A policy lives in ``auditkit.toml`` or under ``[tool.auditkit]`` in ``pyproject.toml``::

    fail_on = "failed"    # or "warned" / "never": how the probes' own grades count (verdict.py)

    [gates]
    "adversarial.robust_accuracy" = ">= 0.30"
    "calibration.ece" = { rule = "<= 0.05", severity = "warn" }

    [checks]
    "adversarial" = "pass"                 # every validity check of the probe must pass
    "performance.input_gradients_usable" = "pass"

    [checks.memorization]                  # how the probe checks: its options, as with --set
    max_epochs = 50
    require = "pass"                       # optional: also a check rule, as above

Without ``fail_on`` the probes' own judgement stands: a failed probe fails the audit, a warned one
passes it with warnings. A gate whose metric was not measured fails (fail closed) and says which
metric and why. A rule on a probe that is not selected is bad input, found before any work (``check_selection``).
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditkit.bounds.jsontext import toml_loads
from auditkit.errors import AuditkitInputError, one_line
from auditkit.results import AuditResult, GateResult, ProbeResult
from auditkit.verdict import DEFAULT_FAIL_ON, exit_code_for

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
    # {probe: {option: value}} from [checks.<probe>] tables; --set and the API override them.
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fail_on: str | None = None  # None: the default (a failed probe fails the audit)


# Keys of a [checks.<probe>] table that make a check rule; every other key is a probe option.
_RULE_KEYS = ("require", "severity")


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


def _section(doc: Mapping[str, Any], name: str, example: str, source: str) -> Mapping[str, Any]:
    # `gates = 5` or `gates = []` would otherwise read as "no gates" and pass the build.
    section = doc.get(name, {})
    if not isinstance(section, Mapping):
        raise AuditkitInputError(
            f"{source}: [{name}] must be a table of rules, but it is {name} = "
            f"{one_line(repr(section), 80)}; write e.g. [{name}] {example}"
        )
    return section


def _structure(doc: Any, source: str) -> tuple[str | None, Mapping[str, Any], Mapping[str, Any]]:
    """``(fail_on, gates, checks)`` of a policy document whose shape is right."""
    if not isinstance(doc, Mapping):
        raise AuditkitInputError(
            f"{source}: a policy is a table with [gates] and [checks], not a "
            f"{type(doc).__name__}"
        )
    unknown_sections = sorted(set(doc) - {"gates", "checks", "fail_on"})
    if unknown_sections:
        raise AuditkitInputError(
            f"{source}: unknown policy section [{unknown_sections[0]}]; use [gates], [checks] "
            "and fail_on = \"failed\"|\"warned\"|\"never\""
        )
    fail_on = doc.get("fail_on")
    if fail_on is not None:
        from auditkit.verdict import check_fail_on

        fail_on = check_fail_on(fail_on, f"{source}: fail_on =")
    gates = _section(doc, "gates", '"performance.accuracy" = ">= 0.9"', source)
    checks = _section(doc, "checks", '"adversarial" = "pass"', source)
    return fail_on, gates, checks


def _check_rules(
    checks: Mapping[str, Any], source: str
) -> tuple[list[Rule], dict[str, dict[str, Any]]]:
    """The ``[checks]`` rules and the per-probe options tables, their syntax checked."""
    rules: list[Rule] = []
    options: dict[str, dict[str, Any]] = {}
    for key, value in checks.items():
        probe, dot, _ = key.partition(".")
        severity = "fail"
        if isinstance(value, Mapping):
            settings = {k: v for k, v in value.items() if k not in _RULE_KEYS}
            if settings and dot:
                raise AuditkitInputError(
                    f"{source}: [checks] {key!r} sets {', '.join(settings)}; probe options go "
                    f"in a [checks.{probe}] table"
                )
            if settings:
                options[probe] = settings
                if "require" not in value and "severity" not in value:
                    continue  # only options: configure the probe, add no rule
            severity, value = str(value.get("severity", "fail")), value.get("require", "pass")
        if value != "pass" or severity not in SEVERITIES:
            raise AuditkitInputError(
                f"{source}: check rule {key!r} = {value!r}; write \"pass\" or "
                "{ require = \"pass\", severity = \"warn\" }"
            )
        rules.append(Rule(key, "pass", None, severity, "check"))
    return rules, options


def check_policy_syntax(policy: str | Path | Mapping[str, Any] | Policy) -> None:
    """Everything about a policy that needs no probe: the file, its TOML, its sections,
    ``fail_on`` and the syntax of every rule. The CLI runs it before torch is imported, so a
    typo in the policy is exit 2 at once; :func:`load_policy` then checks probe and metric
    names against the installed probes."""
    if isinstance(policy, Policy):
        return
    doc, source = _policy_doc(policy)
    _, gates, checks = _structure(doc, source)
    for key, value in gates.items():
        _parse_rule(key, value, source)
    _check_rules(checks, source)


def parse_policy(
    doc: Mapping[str, Any],
    source: str = "<inline>",
    *,
    extra_metrics: Mapping[str, Mapping[str, Any]] | None = None,
) -> Policy:
    """Validate a policy mapping against the installed probes' metric names.

    Args:
        extra_metrics: ``{probe: {metric: MetricSpec}}`` for probes handed to ``scan`` directly
            (not installed through an entry point), so policies may gate on them too.
    """
    fail_on, gates, checks = _structure(doc, source)
    metrics = {**known_metrics(), **{k: dict(v) for k, v in (extra_metrics or {}).items()}}
    rules: list[Rule] = []
    for key, value in gates.items():
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
    for key in checks:
        probe = key.partition(".")[0]
        if probe not in metrics:
            raise AuditkitInputError(
                f"{source}: check rule {key!r} names unknown probe {probe!r} "
                f"(valid probes: {', '.join(metrics)})"
            )
    check_rules, options = _check_rules(checks, source)
    return Policy(tuple(rules + check_rules), source, options, fail_on)


def merged_options(
    policy: Policy | None, options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """The policy's ``[checks.<probe>]`` options, overridden key by key by ``--set`` / the API."""
    merged = {p: dict(o) for p, o in (policy.options if policy else {}).items()}
    for probe, values in (options or {}).items():
        merged.setdefault(probe, {}).update(values)
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return toml_loads(path.read_text(encoding="utf-8"), what=f"policy file {path}",
                          fix="fix the file, or pass --policy FILE to use another one")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AuditkitInputError(
            f"policy file {path}: not valid TOML ({one_line(exc, 160)}); fix the file, or pass "
            "--policy FILE to use another one"
        ) from None
    except OSError as exc:
        raise AuditkitInputError(f"policy file {path}: cannot read it ({exc.strerror or exc})") from None


def find_policy_file(directory: str | Path = ".") -> Path | None:
    """``auditkit.toml`` in ``directory``, else a ``pyproject.toml`` with ``[tool.auditkit]``.

    Fails closed: a policy file that cannot be read or parsed is an error, never "no policy",
    because a CI gate must not disappear when someone breaks the TOML.
    """
    directory = Path(directory)
    candidate = directory / "auditkit.toml"
    if candidate.is_file():
        return candidate
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {})
        if isinstance(tool, Mapping) and "auditkit" in tool:
            return pyproject
    return None


def _policy_doc(policy: str | Path | Mapping[str, Any]) -> tuple[Any, str]:
    """The policy document and the name errors give it (a file path, or ``<inline>``)."""
    if isinstance(policy, Mapping):
        return policy, "<inline>"
    path = Path(policy)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise AuditkitInputError(f"--policy {path}: {what}; pass a TOML file with [gates]")
    doc: Any = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = doc.get("tool", {})
        doc = tool.get("auditkit") if isinstance(tool, Mapping) else None
        if doc is None:
            raise AuditkitInputError(f"--policy {path}: has no [tool.auditkit] section")
    return doc, str(path)


def load_policy(
    policy: str | Path | Mapping[str, Any] | Policy,
    *,
    extra_metrics: Mapping[str, Mapping[str, Any]] | None = None,
) -> Policy:
    """Read and validate a policy from a file or a mapping; bad policies raise exit-2 errors."""
    if isinstance(policy, Policy):
        return policy
    doc, source = _policy_doc(policy)
    return parse_policy(doc, source, extra_metrics=extra_metrics)


def check_selection(policy: Policy, selected: Sequence[str]) -> None:
    """Every rule must address a probe that will run; found before the audit, not after it."""
    for rule in policy.rules:
        probe = rule.target.partition(".")[0]
        if probe not in selected:
            kind = "gate" if rule.kind == "metric" else "check rule"
            raise AuditkitInputError(
                f"{policy.source}: {kind} {rule.target!r} names probe {probe!r}, which --probes "
                f"does not select (selected: {', '.join(selected) or 'none'}); add it to "
                f"--probes or remove the {kind}"
            )


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
            why = f"{rule.target} not measured: {unmeasured_reason(probe_name, item, probe)}"
            gates.append(GateResult(rule.target, rule.text, None, False, rule.severity, why))
            continue
        ok = bool(_OPS[rule.op](float(value), rule.threshold))
        detail = f"{rule.target} = {value:.4g}, required {rule.text}"
        gates.append(GateResult(rule.target, rule.text, float(value), ok, rule.severity, detail))
    return gates


def unmeasured_reason(probe_name: str, metric: str, probe: ProbeResult | None) -> str:
    """Why ``probe_name.metric`` has no value, in words a user can act on."""
    if probe is None:
        return f"the {probe_name} probe did not run in this audit"
    if probe.status == "skipped":
        return f"the {probe_name} probe was skipped ({probe.skip_reason or 'no reason given'})"
    if probe.status == "error":
        return f"the {probe_name} probe errored ({one_line(probe.error or 'no message', 200)})"
    if probe.details.get("slice_kind") == "proxy":
        # The bias probe's demographic metrics need sensitive columns; on data without them it
        # audits proxy slices and publishes those under proxy_* names.
        proxy = "proxy_" + metric.replace("group", "slice")
        alternative = (
            f", or gate {probe_name}.{proxy}" if probe.metrics.get(proxy) is not None else ""
        )
        return (
            "the data has no sensitive columns, so the bias probe audited proxy slices only "
            f"(pass --sensitive or group columns{alternative})"
        )
    told = probe.details.get("unmeasured") if isinstance(probe.details, Mapping) else None
    if isinstance(told, Mapping) and told.get(metric):
        # The probe's own words: e.g. memorization without a true-label run.
        return f"the {probe_name} probe ran ({probe.status}) but did not measure it: {told[metric]}"
    summary = f": {one_line(probe.summary, 200)}" if probe.summary else ""
    return f"the {probe_name} probe ran ({probe.status}) but did not report it{summary}"


def _evaluate_checks(rule: Rule, probe_name: str, check_name: str, probe: Any) -> GateResult:
    if probe is None or probe.status in ("skipped", "error"):
        why = f"{rule.target} checks not evaluated: {unmeasured_reason(probe_name, '', probe)}"
        return GateResult(rule.target, rule.text, None, False, rule.severity, why)
    checks = [c for c in probe.checks if not check_name or c.name == check_name]
    if check_name and not checks:
        names = ", ".join(c.name for c in probe.checks)
        return GateResult(
            rule.target, rule.text, None, False, rule.severity,
            f"{rule.target}: no check {check_name!r} in {probe_name} (its checks: {names})",
        )
    failed = [c.name for c in checks if c.status == "failed"]
    detail = f"{rule.target} checks: " + ("all passed" if not failed else "failed: " + ", ".join(failed))
    return GateResult(
        rule.target, rule.text, f"{len(checks) - len(failed)}/{len(checks)}", not failed,
        rule.severity, detail,
    )


def apply_policy(
    result: AuditResult,
    policy: Policy | Mapping[str, Any] | str | Path | None,
    fail_on: str | None = None,
) -> AuditResult:
    """The result with gates evaluated and the verdict they imply.

    ``fail_on`` (``--fail-on``) wins over the policy's own ``fail_on``, which wins over the
    default ``failed``; without a policy only ``fail_on`` applies.
    """
    loaded = load_policy(policy) if policy is not None else None
    gates = evaluate(result, loaded) if loaded is not None else []
    chosen = fail_on or (loaded.fail_on if loaded is not None else None) or DEFAULT_FAIL_ON
    result = result.with_gates(gates, fail_on=chosen)
    if loaded is not None:  # the renderers name the policy the verdict rests on
        result = dataclasses.replace(result, settings={**result.settings, "policy": loaded.source})
    return result


EXIT_PASSED, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_PROBE_ERROR = 0, 1, 2, 3


def exit_code(result: AuditResult) -> int:
    """0 passed (with or without warnings) · 1 failed: a gate, or a probe's grade at
    ``fail_on`` · 3 a probe errored and nothing failed (bad input, 2, is raised earlier)."""
    return exit_code_for(result.verdict)
