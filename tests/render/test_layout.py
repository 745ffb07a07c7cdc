"""The report's shape, without a browser: what is shown as a tile or a line, what is open, the
contents bar, titles, formatted numbers, thinned long series, the sizing sentence, NAS verdict."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from auditkit.context import AuditContext
from auditkit.pipeline import ran_only, run_probe
from auditkit.probes.base import Probe
from auditkit.render import render_html, svg
from auditkit.render.fmt import format_value
from auditkit.render.html import build_view
from auditkit.results import AuditResult, ProbeResult, compute_verdict


class _NodeOnly(Probe):
    name = "node_only"
    title = "Node-only probe"

    def not_applicable(self, context):
        return "node classifiers"

    def run(self, context):  # never reached: the runner skips it
        raise AssertionError("a probe that does not apply must not run")


class _Untitled(Probe):
    name = "noise_check"

    def run(self, context):
        return ProbeResult(name=self.name, status="passed", summary="fine")


def _context() -> AuditContext:
    return AuditContext.__new__(AuditContext)  # the two probes above never look at it


def test_the_runner_records_a_probe_that_does_not_apply_as_skipped_with_what_it_applies_to():
    result = run_probe(_NodeOnly(budget="fast"), _context())
    assert result.status == "skipped"
    assert result.details["not_applicable"] == "node classifiers"
    assert result.skip_reason == "not applicable to this model: applies to node classifiers"
    assert result.title == "Node-only probe"
    assert Probe.not_applicable(_Untitled(budget="fast"), _context()) is None  # the default


def _with(rich_audit: AuditResult, *extra: ProbeResult) -> AuditResult:
    probes = {**rich_audit.probes, **{p.name: p for p in extra}}
    return dataclasses.replace(rich_audit, probes=probes, verdict=compute_verdict(probes, rich_audit.gates))


def _not_applicable(name: str, applies_to: str) -> ProbeResult:
    reason = f"not applicable to this model: applies to {applies_to}"
    return ProbeResult(name=name, status="skipped", skip_reason=reason, summary=reason,
                       details={"not_applicable": applies_to})


def test_probes_that_do_not_apply_are_one_line_not_tiles(rich_audit, parse_html):
    audit = _with(rich_audit, _not_applicable("graph_structure", "node classifiers"),
                  _not_applicable("point_cloud", "point clouds"))
    dom = parse_html(render_html(audit))
    tiles = [t.attrs["data-probe"] for t in dom.find_all("li", cls="tile")]
    sections = [s.attrs["data-probe"] for s in dom.find_all("section", cls="probe")]
    assert "graph_structure" not in tiles + sections and "point_cloud" not in tiles + sections
    # A skipped probe that could apply (memorization: untrainable format) keeps its tile.
    assert "memorization" in tiles and "memorization" in sections
    line = " ".join(dom.find("p", cls="not-applicable").text().split())
    assert line == ("Not applicable to this model: graph_structure — node classifiers; "
                    "point_cloud — point clouds.")
    assert "point_cloud" not in " ".join(a.text() for a in dom.find_all("nav")[0].find_all("a"))


def test_an_image_models_report_has_no_graph_or_point_cloud_tile(demo_outputs, parse_html):
    """The demo CNN with auditkit-graph installed: its two probes are one line, not tiles."""
    pytest.importorskip("auditkit_graph", reason="the auditkit-graph plugin is not installed")
    audit = json.loads((demo_outputs / "audit.json").read_text(encoding="utf-8"))
    for name, applies_to in (("graph_structure", "node classifiers"), ("point_cloud", "point clouds")):
        assert audit["probes"][name]["status"] == "skipped"
        assert audit["probes"][name]["details"]["not_applicable"] == applies_to
    dom = parse_html((demo_outputs / "report.html").read_text(encoding="utf-8"))
    tiles = [t.attrs["data-probe"] for t in dom.find_all("li", cls="tile")]
    assert tiles and not {"graph_structure", "point_cloud"} & set(tiles)
    assert not dom.find_all("section", data_probe="graph_structure")
    line = " ".join(dom.find("p", cls="not-applicable").text().split())
    assert "graph_structure — node classifiers" in line and "point_cloud — point clouds" in line
    assert "install the plugin" not in dom.text()


def test_every_probe_has_a_title_plugins_included(rich_audit, parse_html):
    declared = ProbeResult(name="noise_robustness", status="passed", summary="ok",
                           title="Robustness to random noise")
    undeclared = ProbeResult(name="edge_dropout_check", status="passed", summary="ok")
    dom = parse_html(render_html(_with(rich_audit, declared, undeclared)))
    titles = {t.attrs["data-probe"]: " ".join(t.find("h3").text().split())
              for t in dom.find_all("li", cls="tile")}
    assert titles["noise_robustness"] == "Robustness to random noise"
    assert titles["edge_dropout_check"] == "Edge Dropout Check"
    assert titles["performance"] == "Clean performance"
    # and the runner records a plugin's declared title in audit.json
    assert run_probe(_Untitled(budget="fast"), _context()).title == ""


def test_failed_and_warned_sections_start_open_passed_ones_collapsed(rich_audit, parse_html):
    dom = parse_html(render_html(rich_audit))
    for name, probe in rich_audit.probes.items():
        section = next(s for s in dom.find_all("section", cls="probe")
                       if s.attrs["data-probe"] == name)
        details = section.find("details", cls="probe-d")
        expected = probe.status in ("failed", "warned", "error")
        assert ("open" in details.attrs) is expected, (name, probe.status)
        # the heading and the grade stay visible when collapsed: they are the summary
        summary = details.find("summary")
        assert summary.find("h2") and summary.find("span", cls="badge")


def test_contents_bar_links_every_probe_and_every_link_resolves(rich_audit, parse_html):
    dom = parse_html(render_html(rich_audit))
    ids = {n.attrs["id"] for n in dom.iter() if n.attrs.get("id")}
    for nav in (dom.find("nav", cls="toc"), dom.find("details", cls="toc-m")):
        targets = [a.attrs["href"] for a in nav.find_all("a")]
        assert all(t.startswith("#") and t[1:] in ids for t in targets), targets
        sections = [s.attrs["id"] for s in dom.find_all("section", cls="probe")]
        assert [t[1:] for t in targets if t[1:] in sections] == sections
    assert not dom.find_all("script")  # the contents bar needs no script


def test_check_values_are_formatted_never_raw_json():
    value = {"per_budget": {"0.02": 0.8123456789, "0.05": 0.61234567}, "edges": 78,
             "names": ["a", "b"], "ok": True}
    text = format_value(value)
    assert text == "{per_budget {0.02 0.8123, 0.05 0.6123}, edges 78, names [a, b], ok yes}"
    assert '"' not in text and "0.8123456789" not in text
    long = format_value({f"k{i}": i / 3 for i in range(20)})
    assert long.endswith("… 12 more}") and "0.3333" in long


def _line(n: int) -> dict:
    xs = list(range(n))
    return {"kind": "line", "title": "long", "x_label": "step", "y_label": "loss",
            "series": [{"name": "loss", "x": xs, "y": [((i * 7919) % 1000) / 1000 for i in xs]}]}


def _line_path(chart) -> str:
    return re.search(r'class="ln" d="([^"]+)"', str(chart)).group(1)


def test_long_line_series_are_thinned_so_drawing_stays_linear():
    """A 100,000-point series draws at most a few points per pixel column: the SVG is as big
    for 100k points as for 10k, and its extremes survive the thinning."""
    small, large = svg.line_chart(_line(10_000), "a"), svg.line_chart(_line(100_000), "b")
    points = [len(re.findall(r"[ML]\d", _line_path(chart))) for chart in (small, large)]
    assert points[1] <= 4 * svg.WIDTH and abs(points[1] - points[0]) <= 0.1 * points[0]
    path = _line_path(large)
    ys = [float(v) for v in re.findall(r",([\d.]+)", path)]
    top, bottom = min(ys), max(ys)  # SVG y grows downwards: 0.999 and 0.0 are both drawn
    assert top < 14 and bottom > 230
    short = svg.line_chart(_line(50), "c")
    assert len(re.findall(r"[ML]\d", _line_path(short))) == 50  # short ones are drawn as they are


def test_a_one_point_line_chart_has_no_negative_axis():
    chart = svg.line_chart({"kind": "line", "x_label": "eps", "y_label": "accuracy",
                            "series": [{"x": [0.1], "y": [0.5]}]}, "one")
    ticks = re.findall(r'<text class="tick"[^>]*text-anchor="middle">([^<]+)</text>', str(chart))
    assert ticks and not any(t.startswith("-") or t.startswith("−") for t in ticks), ticks


def test_the_sizing_sentence_names_only_probes_that_ran():
    from auditkit.sizing import Cost, WorkPlan

    cost = Cost(device="cpu", forward_s=1e-4, backward_s=3e-4, train_step_s=5e-4, batch_size=64,
                parameters=1000, threads=1)
    plan = WorkPlan(budget="fast", limit_seconds=60.0, cost=cost,
                    estimates={"adversarial": 50.0, "memorization": 40.0},
                    reasons={"adversarial": ["PGD 10 steps instead of 20"],
                             "memorization": ["2 fits instead of 3"]})
    assert "memorization" in plan.summary()
    results = {"adversarial": ProbeResult(name="adversarial", status="passed"),
               "memorization": ProbeResult(name="memorization", status="skipped",
                                           skip_reason="no parameters")}
    shown = ran_only(plan, results).summary()
    assert "memorization" not in shown and "adversarial: PGD 10 steps" in shown


def test_the_nas_report_gives_the_chosen_models_own_verdict(rich_audit):
    pytest.importorskip("auditkit_nas", reason="the auditkit-nas plugin is not installed")
    from auditkit_nas.report import chosen_verdict

    warned = ProbeResult(name="calibration", status="warned", summary="a little over-confident")
    probes = {"calibration": warned}
    audit = dataclasses.replace(rich_audit, probes=probes, gates=[],
                                verdict=compute_verdict(probes, []))
    assert audit.verdict == "passed"
    assert chosen_verdict(audit) == "passed with warnings" == build_view(
        json.loads(audit.to_json()))["verdict_text"]
