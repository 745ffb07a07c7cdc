"""Help text: every option explained, types as users write them, defaults stated."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from auditkit.cli import app


def _help(*command: str) -> str:
    res = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "240"})
    assert res.exit_code == 0, res.output
    return res.output


def _options(text: str) -> dict[str, str]:
    """``{"--flag": "its help text"}`` from click's plain option list."""
    options: dict[str, str] = {}
    current = None
    for line in text.split("Options:", 1)[1].splitlines():
        match = re.match(r"^  (?:-\w, )?(--[\w-]+)(.*)$", line)
        if match:
            current = match.group(1)
            options[current] = match.group(2)
        elif current and line.strip():
            options[current] += " " + line.strip()
    # click wraps at hyphens too ("auditkit-" / "out"): join those back
    return {k: " ".join(v.split()).replace("- ", "-") for k, v in options.items()}


def test_scan_help_keeps_square_brackets_and_states_types_and_defaults():
    text = _help("scan")
    assert "[tool.auditkit]" in " ".join(text.split())  # rich markup would eat it
    options = _options(text)
    assert options["--budget"].startswith("fast|standard|thorough")
    assert "[default: standard]" in options["--budget"]
    assert options["--seed"].startswith("INTEGER") and "[default: 0" in options["--seed"]
    assert options["--out"].startswith("PATH") and "[default: auditkit-out]" in options["--out"]
    assert options["--fail-on"].startswith("failed|warned|never")
    assert options["--device"].startswith("auto|cpu|cuda") and "[default: auto]" in options["--device"]
    for flag, line in options.items():
        assert "<" not in line, (flag, line)  # no <bool>/<str> placeholders
        assert len(line.split()) >= 3, (flag, line)  # every option says what it does


@pytest.mark.parametrize("command", ["demo", "report", "diff", "probes"])
def test_other_commands_explain_every_option(command):
    for flag, line in _options(_help(command)).items():
        assert "<" not in line and len(line.split()) >= 3, (command, flag, line)
