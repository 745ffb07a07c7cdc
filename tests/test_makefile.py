"""The example plugin is the probe author's template: the test suite installs it, users do not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _dry_run(target: str, tmp_path: Path) -> str:
    """The commands ``make TARGET`` would run for a fresh virtualenv (nothing is executed)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
        text=True, check=True,
    ).stdout


@pytest.mark.parametrize("target", ["install", "demo"])
def test_a_user_install_leaves_the_example_plugin_out(target, tmp_path):
    commands = _dry_run(target, tmp_path)
    assert "-e plugins/nas" in commands  # the real plugins are installed
    assert "plugins/example" not in commands


def test_the_test_suite_installs_the_example_plugin(tmp_path):
    assert "-e plugins/example" in _dry_run("test", tmp_path)
