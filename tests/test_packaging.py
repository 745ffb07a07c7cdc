"""The wheel carries what an installed auditkit needs at run time (templates included)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_and_every_probe(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("auditkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "reports" / "templates").glob("*.j2")}
    assert templates and {f"auditkit/templates/{t}" for t in templates} <= names
    for probe in ("performance", "adversarial", "calibration", "corruptions", "bias", "memorization"):
        assert {f"auditkit/probes/{probe}.py", f"auditkit/probes/{probe}/__init__.py"} & names
    # Every module of the source tree ships (a probe package missing from the package list
    # would import in an editable install and fail in a real one).
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "auditkit").rglob("*.py")}
    assert not modules - names, sorted(modules - names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[auditkit.probes]" in text and "memorization" in text
