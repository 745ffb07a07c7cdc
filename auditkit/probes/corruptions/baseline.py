"""The reference model for mCE: another audit.json's corruptions result, read defensively.

Hendrycks & Dietterich normalise each corruption's error by AlexNet's; RobustBench and most
papers since by a baseline model of their own choosing. Here the baseline is whatever model an
earlier ``auditkit scan`` audited (``--set corruptions.baseline=audit.json``). The file is
bounded in size, must be JSON, and must hold a corruptions result with its accuracy table; any
other file ends the scan with one line saying what is wrong and what to pass instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError

#: Largest baseline audit.json read (an audit with galleries is a few MB).
MAX_BASELINE_BYTES = 64 * 1024 * 1024
_FIX = "pass an audit.json written by `auditkit scan` with the corruptions probe"


@dataclass(frozen=True)
class Baseline:
    """The baseline's clean accuracy and accuracy per corruption and severity."""

    source: str
    clean_accuracy: float
    accuracy: dict[str, dict[int, float]]


def _fail(path: str, why: str) -> AuditkitInputError:
    return AuditkitInputError(f"--set corruptions.baseline={path}: {why}; {_FIX}")


def _fraction(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def read_baseline(path: str | Path) -> Baseline:
    """The corruptions table of the audit.json at ``path`` (one-line errors, exit code 2)."""
    shown = str(path)
    target = Path(path).expanduser()
    try:
        size = target.stat().st_size
        if size > MAX_BASELINE_BYTES:
            raise _fail(shown, f"the file is {size / 2**20:.0f} MiB, more than an audit.json "
                        f"({MAX_BASELINE_BYTES // 2**20} MiB at most)")
        text = target.read_bytes()[: MAX_BASELINE_BYTES + 1].decode("utf-8")
        doc = json.loads(text)
    except AuditkitInputError:
        raise
    except OSError as exc:
        raise _fail(shown, f"cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise _fail(shown, "not a text file") from None
    except (ValueError, RecursionError) as exc:
        raise _fail(shown, f"not valid JSON ({str(exc).splitlines()[0][:80]})") from None
    probes = doc.get("probes") if isinstance(doc, dict) else None
    if not isinstance(probes, dict):
        raise _fail(shown, "not an audit.json (no probes)")
    entry = probes.get("corruptions")
    if not isinstance(entry, dict) or entry.get("status") in ("skipped", "error", None):
        raise _fail(shown, "its audit has no corruptions result")
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    clean, table = details.get("clean_accuracy"), details.get("accuracy_table")
    if not _fraction(clean) or not isinstance(table, dict):
        raise _fail(shown, "its corruptions result has no accuracy table")
    accuracy: dict[str, dict[int, float]] = {}
    for name, row in list(table.items())[:1000]:
        if not isinstance(row, dict):
            raise _fail(shown, f"the accuracy table's row {str(name)[:40]!r} is not a mapping")
        cells = {}
        for severity, value in row.items():
            if not str(severity).isdigit() or not _fraction(value) or not 1 <= int(severity) <= 5:
                raise _fail(shown, f"the accuracy table's row {str(name)[:40]!r} holds "
                            f"{str(severity)[:10]!r}: {str(value)[:20]}, not severity: accuracy")
            cells[int(severity)] = float(value)
        accuracy[str(name)] = cells
    return Baseline(source=target.name, clean_accuracy=float(clean), accuracy=accuracy)
