"""Every metric in the report is explained, plugins' included, from audit.json alone."""

from __future__ import annotations

from auditkit.pipeline import build_context, run_probe
from auditkit.probes.base import MetricSpec, Probe
from auditkit.render import render_html
from auditkit.results import AuditResult, ProbeResult


class _PluginProbe(Probe):
    name = "plugin_probe"
    metrics = {"widget_score": MetricSpec("lower", "share of widgets that wobble")}

    def run(self, context) -> ProbeResult:
        return ProbeResult(name=self.name, status="passed", metrics={"widget_score": 0.25})


def test_declared_metric_descriptions_reach_audit_json_and_the_report(demo_adapter, digits_data):
    context = build_context(demo_adapter, digits_data, budget="fast")
    result = run_probe(_PluginProbe(), context)
    assert result.metric_info["widget_score"] == {
        "direction": "lower", "description": "share of widgets that wobble"}
    audit = AuditResult(model={}, data={"name": "d", "n": 1}, environment={},
                        probes={result.name: result})
    reread = AuditResult.from_json(audit.to_json())
    assert reread.probes["plugin_probe"].metric_info == result.metric_info
    assert "share of widgets that wobble (lower is better)" in render_html(reread)


def test_an_audit_without_data_name_still_renders():
    audit = AuditResult(model={}, data={}, environment={}, probes={})
    assert "unnamed data" in render_html(AuditResult.from_json(audit.to_json()))
