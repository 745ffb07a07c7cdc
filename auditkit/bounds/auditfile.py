"""audit.json files given to ``report`` and ``diff``: bounded, and an audit or refused.

An audit.json is as untrusted as a model file: it may come from another machine's CI. It is
read with ``jsontext.loads`` (depth, size and count limits, no NaN/Infinity), then its shape is
checked against what ``AuditResult`` and the renderers rely on: a file that is not an audit
(``{}``, a list, a policy) is refused in one line instead of rendering a page titled "passed".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from auditkit.bounds import jsontext
from auditkit.errors import AuditkitInputError

#: Keys every audit.json auditkit has written carries.
REQUIRED_KEYS = ("schema_version", "model", "data", "probes", "verdict")
VERDICTS = ("passed", "failed", "error")
PROBE_STATUSES = ("passed", "warned", "failed", "error", "skipped")
CHECK_STATUSES = ("passed", "failed", "warned", "skipped", "error")
SEVERITIES = ("info", "warning", "critical")
#: Most probes, checks, findings or gates one audit may list.
MAX_ITEMS = 10_000
FIX = "pass an audit.json written by auditkit scan"


class _Shape(ValueError):
    pass


def _need(ok: bool, where: str, expected: str) -> None:
    if not ok:
        raise _Shape(f"{where} should be {expected}")


def _text(value: Any, where: str, optional: bool = True) -> None:
    _need(isinstance(value, str) or (optional and value is None), where, "text")


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or value is None:
        return
    _need(isinstance(value, (int, float)), where, "a number")
    _need(math.isfinite(float(value)), where, "a finite number")


def _items(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    _need(isinstance(value, list), where, "a list")
    _need(len(value) <= MAX_ITEMS, where, f"at most {MAX_ITEMS} items")
    return value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    _need(isinstance(value, dict), where, "an object")
    return value


def _check_probe(name: str, probe: Any) -> None:
    where = f"probes.{name}"
    _need(isinstance(probe, dict), where, "an object")
    _need(probe.get("name") == name, f"{where}.name", f"{name!r}")
    _need(probe.get("status") in PROBE_STATUSES, f"{where}.status", " | ".join(PROBE_STATUSES))
    for metric, value in _mapping(probe.get("metrics"), f"{where}.metrics").items():
        if not (value is None or isinstance(value, (int, float))):
            # Worded as ``auditkit diff`` words it, so both commands say the same.
            raise _Shape(f"metric {name}.{metric} = {value!r} is not a number")
    for i, check in enumerate(_items(probe.get("checks"), f"{where}.checks")):
        _need(isinstance(check, dict), f"{where}.checks[{i}]", "an object")
        _text(check.get("name"), f"{where}.checks[{i}].name", optional=False)
        _need(check.get("status") in CHECK_STATUSES, f"{where}.checks[{i}].status",
              " | ".join(CHECK_STATUSES))
        _text(check.get("detail", ""), f"{where}.checks[{i}].detail")
        _mapping(check.get("values"), f"{where}.checks[{i}].values")
    for i, finding in enumerate(_items(probe.get("findings"), f"{where}.findings")):
        _need(isinstance(finding, dict), f"{where}.findings[{i}]", "an object")
        _need(finding.get("severity") in SEVERITIES, f"{where}.findings[{i}].severity",
              " | ".join(SEVERITIES))
        for key in ("title", "why", "action"):
            _text(finding.get(key, ""), f"{where}.findings[{i}].{key}", optional=key != "title")
    for i, figure in enumerate(_items(probe.get("figures"), f"{where}.figures")):
        _need(isinstance(figure, dict), f"{where}.figures[{i}]", "an object")
    for key in ("details", "options"):
        _mapping(probe.get(key), f"{where}.{key}")
    for metric, info in _mapping(probe.get("metric_info"), f"{where}.metric_info").items():
        _need(isinstance(info, dict), f"{where}.metric_info.{metric}", "an object")
    for key in ("summary", "headline", "error", "skip_reason", "report_template"):
        _text(probe.get(key), f"{where}.{key}")
    _number(probe.get("seconds"), f"{where}.seconds")


def check_audit(raw: Any) -> None:
    """Raise ``ValueError`` naming the first place where ``raw`` is not an audit."""
    _need(isinstance(raw, dict), "the file", "a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise _Shape(f"no {', '.join(missing)}: it is not an audit")
    _need(raw["verdict"] in VERDICTS, "verdict", " | ".join(VERDICTS))
    for key in ("model", "data", "environment", "settings"):
        _mapping(raw.get(key), key)
    for key in ("schema_version", "auditkit_version", "started_at", "fail_on"):
        _text(raw.get(key), key)
    _number(raw.get("duration_seconds"), "duration_seconds")
    probes = _mapping(raw["probes"], "probes")
    _need(len(probes) <= MAX_ITEMS, "probes", f"at most {MAX_ITEMS} probes")
    for name, probe in probes.items():
        _check_probe(name, probe)
    for i, gate in enumerate(_items(raw.get("gates"), "gates")):
        where = f"gates[{i}]"
        _need(isinstance(gate, dict), where, "an object")
        _text(gate.get("metric"), f"{where}.metric", optional=False)
        _text(gate.get("rule"), f"{where}.rule", optional=False)
        _need(isinstance(gate.get("passed"), bool), f"{where}.passed", "true or false")
        _need(gate.get("severity", "fail") in ("fail", "warn"), f"{where}.severity", "fail | warn")
        _text(gate.get("detail", ""), f"{where}.detail")
        value = gate.get("value")
        if not isinstance(value, str):
            _number(value, f"{where}.value")


def read_audit(path: str | Path) -> Any:
    """The ``AuditResult`` in ``path``; anything else is one line (``AuditkitInputError``).

    ``OSError`` (missing file, a folder) passes through for the caller to word.
    """
    from auditkit.loading import safety
    from auditkit.results import AuditResult

    path = Path(path)
    if path.exists() and not path.is_dir():
        try:
            safety.check_regular_file(path)  # a FIFO or /dev/zero would block or never end
        except AuditkitInputError as exc:
            reason = "the file is empty" if path.stat().st_size == 0 else (
                str(exc).removeprefix(f"{path}: "))
            raise AuditkitInputError(f"{path}: {reason}; {FIX}") from None
        size = path.stat().st_size
        if size > jsontext.MAX_BYTES:
            raise AuditkitInputError(
                f"{path}: {size} bytes is more than an audit.json auditkit reads "
                f"({jsontext.MAX_BYTES}); {FIX}"
            )
    raw_bytes = path.read_bytes()
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise AuditkitInputError(f"{path}: not UTF-8 text; {FIX}") from None
    raw = jsontext.loads(text, what=str(path), fix=FIX)
    try:
        check_audit(raw)
        return AuditResult.from_dict(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AuditkitInputError(f"{path}: not an auditkit audit.json ({exc}); {FIX}") from None
