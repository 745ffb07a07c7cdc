"""summary.md: a compact table for pull-request comments, safe against hostile names."""

from __future__ import annotations

import re

from auditkit.render import render_markdown
from auditkit.render.markdown import code
from auditkit.results import AuditResult


def _cells(row: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    assert row.startswith("|") and row.endswith("|"), row
    return [c.strip() for c in re.split(r"(?<!\\)\|", row[1:-1])]


def _table(markdown: str, header: str) -> list[list[str]]:
    lines = markdown.splitlines()
    start = lines.index(header)
    assert re.fullmatch(r"\|(---\|)+", lines[start + 1])
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def test_one_row_per_probe_with_grade_headline_and_finding(rich_audit):
    md = render_markdown(rich_audit)
    assert md.startswith("## auditkit: ❌ FAILED")
    rows = _table(md, "| probe | grade | headline | why |")
    assert [r[0] for r in rows[:5]] == [
        "performance",
        "adversarial",
        "calibration",
        "bias",
        "memorization",
    ]
    grades = [r[1] for r in rows]
    assert grades == ["✅ pass", "⚠️ warn", "❌ fail", "✅ pass", "⏭️ skipped", "💥 error"]
    assert rows[0][2] == "accuracy **98.8%**"
    assert rows[1][2] == r"robust\_accuracy **9.0%**"
    assert rows[4][3].startswith("skipped: the model format cannot be trained")
    assert rows[5][3] == "the probe did not finish: RuntimeError: boom"


def test_gates_failed_checks_and_critical_findings_are_listed(rich_audit):
    md = render_markdown(rich_audit)
    gates = _table(md, "| gate | rule | value | result |")
    assert gates[1] == ["`adversarial.robust_accuracy`", "&gt;= 0.3", "0.09", "❌ fail"]
    assert gates[2][3] == "⚠️ warn"
    # A failed warn-only gate does not hold (it only does not fail the audit): one count.
    assert "**Gates**: 1 of 3 hold." in md and "1 of 3 gates hold" in md
    section = md.split("**Failed checks**", 1)[1]
    failed = [line for line in section.splitlines() if "unbounded_attack_reaches_zero" in line]
    assert len(failed) == 1 and r"accuracy\_at\_large\_eps=0.3125" in failed[0]
    assert "fit temperature T=2.31" in md


def test_summary_is_compact(rich_audit):
    md = render_markdown(rich_audit)
    assert len(md.splitlines()) < 40 and len(md.encode("utf-8")) < 4096
    assert "seed 7" in md and "`abababababab`" in md and "**synthetic**" in md


def test_hostile_names_cannot_inject_html_or_break_the_table(make_audit, hostile):
    md = render_markdown(make_audit(hostile.script + hostile.attribute + "|x|y`z"))
    assert "<script" not in md and "<img" not in md
    for header in ("| probe | grade | headline | why |", "| gate | rule | value | result |"):
        assert all(len(row) == 4 for row in _table(md, header))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_code_spans_survive_backticks_and_pipes():
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert code("p|q") == r"`p\|q`"


def test_markdown_is_a_pure_function_of_audit_json(rich_audit):
    assert render_markdown(rich_audit) == render_markdown(
        AuditResult.from_json(rich_audit.to_json())
    )


def test_demo_summary_lists_every_probe(demo_outputs):
    audit = AuditResult.load(demo_outputs / "audit.json")
    md = (demo_outputs / "summary.md").read_text(encoding="utf-8")
    rows = _table(md, "| probe | grade | headline | why |")
    assert [r[0].replace("\\_", "_") for r in rows] == list(audit.probes)
