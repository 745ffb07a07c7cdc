"""One count everywhere: the verdict line, audit.json, summary.md, junit.xml and the report give
the same numbers of gates held and checks passed."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from auditkit.cli import verdict_line
from auditkit.counts import audit_counts
from auditkit.gates import apply_policy, load_policy
from auditkit.render import render_html
from auditkit.render.junit import render_junit
from auditkit.render.markdown import render_markdown
from auditkit.results import AuditResult

EXAMPLE_POLICY = Path(__file__).parents[2] / "examples" / "auditkit.toml"


def _numbers(pattern: str, text: str) -> set[tuple[int, int]]:
    return {tuple(map(int, m)) for m in re.findall(pattern, text)}


def test_gate_and_check_counts_agree_across_the_five_outputs(demo_run):
    _, out = demo_run
    result = AuditResult.from_json((out / "audit.json").read_text())
    policy = load_policy(EXAMPLE_POLICY)
    result = apply_policy(result, policy)
    counts = audit_counts(result.probes, result.gates)
    gates = (counts["gates_held"], counts["gates_total"])
    checks = (counts["checks_passed"], counts["checks_applicable"])
    # The example policy has a warn-only gate the demo misses on purpose or not: either way
    # every output must agree with the one count.
    assert gates[1] == len(policy.rules) and checks[1] > 0

    audit = json.loads(result.to_json())
    assert audit["counts"] == counts

    console = verdict_line(result, policy)
    markdown = render_markdown(result)
    html = render_html(result)
    junit = ET.fromstring(render_junit(result).split("\n", 1)[1])
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert (int(props["gates_held"]), int(props["gates_total"])) == gates
    assert (int(props["checks_passed"]), int(props["checks_applicable"])) == checks

    gate_pattern = r"(\d+) of (\d+) (?:gates )?hold"
    check_pattern = r"(\d+) of (\d+) applicable checks passed"
    for name, text in (
        ("console", console),
        ("summary.md", markdown),
        ("report", html),
        ("junit", props["counts"]),
    ):
        assert _numbers(gate_pattern, text) == {gates}, (name, _numbers(gate_pattern, text))
        assert _numbers(check_pattern, text) == {checks}, name
