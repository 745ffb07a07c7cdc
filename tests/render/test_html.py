"""report.html: content, escaping, self-containment, accessibility and determinism."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from auditkit.outputs import write_outputs
from auditkit.render import render_html, svg
from auditkit.render.figures import image_cell, png_bytes, render_figure
from auditkit.render.html import CONTENT_SECURITY_POLICY, PALETTES
from auditkit.results import AuditResult

LABELS = {
    "passed": "PASS",
    "warned": "WARN",
    "failed": "FAIL",
    "error": "ERROR",
    "skipped": "SKIPPED",
}
ICONS = {
    "passed": "i-pass",
    "warned": "i-warn",
    "failed": "i-fail",
    "error": "i-error",
    "skipped": "i-skip",
}


@pytest.fixture(scope="module")
def rich_html(rich_audit) -> str:
    return render_html(rich_audit)


@pytest.fixture(scope="module")
def rich_dom(rich_html, parse_html):
    return parse_html(rich_html)


def _section(dom, name: str):
    return dom.find("section", cls="probe", data_probe=name)


# --- the scorecard ---------------------------------------------------------------------------


def test_every_status_gets_a_tile_with_a_word_and_a_distinct_icon(rich_audit, rich_dom):
    tiles = {t.attrs["data-probe"]: t for t in rich_dom.find_all("li", cls="tile")}
    assert list(tiles) == list(rich_audit.probes)  # one tile per probe, audit order
    assert {p.status for p in rich_audit.probes.values()} == set(LABELS)
    for name, probe in rich_audit.probes.items():
        badge = tiles[name].find("span", cls="badge")
        # Status is readable without colour: a word, and an icon whose shape differs per status.
        assert badge.find("span", cls="word").text() == LABELS[probe.status]
        assert ICONS[probe.status] in badge.find("svg").attrs["class"].split()
        assert badge.find("svg").attrs["aria-hidden"] == "true"
    shapes = {svg.icon(k[2:]) for k in ICONS.values()}
    assert len(shapes) == len(ICONS)


def test_tiles_show_headline_number_and_one_line_finding(rich_audit, rich_dom):
    tiles = {t.attrs["data-probe"]: t for t in rich_dom.find_all("li", cls="tile")}
    assert tiles["performance"].find(cls="big").text() == "98.8%"
    assert tiles["calibration"].find(cls="big").text() == "0.123"  # ECE is not a percentage
    assert tiles["adversarial"].find(cls="metric").text() == "robust_accuracy"
    # A passed tile says what the probe found; a non-passed tile the check that set its grade.
    assert tiles["performance"].find(cls="line").text() == rich_audit.probes["performance"].summary
    assert tiles["adversarial"].find(cls="line").text() == (
        "unbounded_attack_reaches_zero: accuracy 0.31 at eps 1.0 (chance 0.25)"
    )
    errored = next(t for n, t in tiles.items() if n.startswith("graph"))
    assert "RuntimeError: boom" in errored.find(cls="line").text()
    assert tiles["memorization"].find(cls="line").text().startswith("Skipped: the model format")


def _definitions(section) -> dict[str, str]:
    return {
        dt.text(): dd.text()
        for dt, dd in zip(section.find_all("dt"), section.find_all("dd"), strict=True)
    }


def test_identity_shows_model_data_and_run(rich_audit, rich_dom):
    model = _definitions(rich_dom.find("section", aria_labelledby="id-model"))
    data = _definitions(rich_dom.find("section", aria_labelledby="id-data"))
    run = _definitions(rich_dom.find("section", aria_labelledby="id-run"))
    assert model["File"] == rich_audit.model["path"]
    assert model["SHA-256"] == rich_audit.model["sha256"]
    assert model["Format"] == "torch.export"
    assert data["Fingerprint"] == rich_audit.data["fingerprint"]
    assert data["Examples"].startswith("400") and "synthetic" in data["Name"]
    assert (run["Seed"], run["Device"], run["auditkit"], run["Duration"], run["Budget"]) == (
        "7",
        "cpu",
        "0.1.0",
        "17.2 s",
        "fast",
    )
    notice = rich_dom.find("p", cls="notice").text()
    assert "Synthetic data" in notice and "noisier" in notice


def test_gates_table_shows_each_rule_value_and_outcome(rich_dom):
    rows = rich_dom.find("table", cls="gates").find_all("tr")[1:]
    outcomes = [
        (r.find_all("td")[0].text(), r.find_all("td")[2].text(), r.find(cls="word").text())
        for r in rows
    ]
    assert outcomes == [
        ("performance.accuracy", "0.9875", "PASS"),
        ("adversarial.robust_accuracy", "0.09", "FAIL"),
        ("calibration.ece", "0.1234", "WARN"),
    ]


def test_look_first_lists_exactly_the_failed_and_warned_items_worst_first(rich_audit, rich_dom):
    scorecard = rich_dom.find("section", aria_labelledby="scorecard")
    items = scorecard.find("ul", cls="look-first").find_all("li")
    words = [i.find(cls="word").text() for i in items]
    assert words == sorted(words, key=lambda w: 1 if w == "WARN" else 0)
    assert set(words) <= {"FAIL", "ERROR", "WARN"}
    assert any("fit temperature T=2.31" in i.text() for i in items)
    # Every non-passed tile's reason is there; nothing from a passed tile is (the bias probe
    # passed, so its warned check and warning finding stay in its own section).
    tiles = {t.attrs["data-probe"]: t for t in rich_dom.find_all("li", cls="tile")}
    text = " ".join(" ".join(i.text().split()) for i in items)
    for name, probe in rich_audit.probes.items():
        if probe.status in ("failed", "warned", "error"):
            reason = " ".join(tiles[name].find(cls="line").text().split()).removeprefix("Error: ")
            assert reason.split(": ", 1)[-1] in text, name
    assert {i.attrs["data-probe"] for i in items} == {
        *(n for n, p in rich_audit.probes.items() if p.status in ("failed", "warned", "error")),
        "gates",
    }
    failed_gate = rich_audit.failures[0]
    assert failed_gate.detail in text


def test_header_verdict_and_reasons_match_audit_json(rich_audit, rich_dom):
    verdict = rich_dom.find(cls="verdict")
    assert verdict.attrs["data-verdict"] == rich_audit.verdict == "failed"
    assert "FAILED" in verdict.text()
    reasons = [" ".join(li.text().split()) for li in rich_dom.find("ul", cls="reasons").find_all("li")]
    assert reasons == [r.line for r in rich_audit.verdict_reasons]


# --- probe sections --------------------------------------------------------------------------


def test_every_figure_kind_is_drawn(rich_audit, rich_dom):
    kinds = {f["kind"] for p in rich_audit.probes.values() for f in p.figures}
    assert kinds == {"line", "bar", "reliability", "matrix", "images", "table"}
    figures = rich_dom.find_all("figure", cls="fig")
    assert len(figures) == sum(len(p.figures) for p in rich_audit.probes.values())
    for figure in figures:
        kind = next(c[4:] for c in figure.attrs["class"].split() if c.startswith("fig-"))
        if kind in ("line", "bar", "reliability", "matrix"):
            chart = figure.find("svg", cls="chart")
            assert chart.attrs["role"] == "img"
            assert chart.find_all("path") or chart.find_all("rect")
        elif kind == "images":
            images = figure.find_all("img")
            assert len(images) == 11  # 3 rows × 3 cells + one RGB row with 2 cells
            assert all(i.attrs["src"].startswith("data:image/png;base64,") for i in images)
        else:
            assert figure.find("table").find_all("td")


def test_line_chart_draws_each_series_with_its_own_dash_and_marker(rich_dom):
    chart = _section(rich_dom, "adversarial").find("figure", cls="fig-line").find("svg")
    series = [g for g in chart.find_all("g") if "series" in (g.attrs.get("class") or "").split()]
    plotted = [g for g in series if g.find_all("path", cls="ln")]
    assert len(plotted) == 4
    dashes = {g.find("path", cls="ln").attrs.get("stroke-dasharray", "") for g in plotted}
    assert len(dashes) == 4
    # The EOT series has a missing point: its line is broken in two pieces (two M commands).
    eot = plotted[2].find("path", cls="ln").attrs["d"]
    assert eot.count("M") == 2
    assert plotted[2].find_all("path", cls="band")  # its confidence band


def test_bar_chart_draws_intervals_flags_and_missing_values(rich_dom):
    chart = _section(rich_dom, "bias").find("figure", cls="fig-bar")
    bars = [g for g in chart.find_all("g") if "bar" in (g.attrs.get("class") or "").split()]
    assert len(bars) == 4
    assert len(chart.find_all("path", cls="ci")) == 3
    flagged = [g for g in bars if "flagged" in g.attrs["class"].split()]
    assert len(flagged) == 2
    # The flag is written out, not only coloured.
    assert "flagged" in flagged[0].find("text", cls="note").text()
    assert "n/a" in bars[3].find("text", cls="note").text()
    assert not bars[3].find_all("rect", cls="b")
    data = chart.find("details", cls="data").find_all("tr")
    assert [c.text() for c in data[0].find_all("th")] == [
        "sex",
        "accuracy",
        "low",
        "high",
        "n",
        "flag",
    ]


def test_reliability_diagram_draws_only_filled_bins_and_a_histogram(rich_audit, rich_dom):
    chart = _section(rich_dom, "calibration").find("figure", cls="fig-reliability").find("svg")
    legend = {id(n) for key in chart.find_all("g", cls="key") for n in key.iter()}

    def drawn(cls: str) -> int:  # the legend's sample swatches are not bins
        return sum(id(n) not in legend for n in chart.find_all("rect", cls=cls))

    bins = rich_audit.probes["calibration"].figures[0]["bins"]
    filled = [b for b in bins if b["count"]]
    assert drawn("acc") == drawn("hist") == drawn("gap") == len(filled)
    assert chart.find("line", cls="ref")  # the diagonal of perfect calibration


def test_matrix_writes_every_number_and_labels_rows(rich_dom):
    chart = _section(rich_dom, "performance").find("figure", cls="fig-matrix").find("svg")
    numbers = [t.text() for t in chart.find_all("text", cls="cv")]
    assert numbers[:4] == ["100", "0", "0", "0"] and len(numbers) == 16
    assert len(chart.find_all("rect", cls="cell")) == 16


def test_adversarial_checklist_table_has_pass_fail_and_numbers(rich_dom):
    section = _section(rich_dom, "adversarial")
    assert "Validity checklist" in [h.text() for h in section.find_all("h3")]
    rows = {
        r.find("code").text(): r for r in section.find("table", cls="checks").find_all("tr")[1:]
    }
    failed = rows["unbounded_attack_reaches_zero"]
    assert failed.find(cls="word").text() == "FAIL"
    assert "accuracy_at_large_eps 0.3125" in " ".join(failed.find(cls="kvs").text().split())
    assert rows["step_doubling_stable"].find(cls="word").text() == "WARN"
    assert rows["stochastic_model_uses_eot"].find(cls="word").text() == "SKIPPED"


def test_findings_say_why_and_what_to_do(rich_dom):
    findings = _section(rich_dom, "adversarial").find("ul", cls="findings").find_all("li")
    assert [f.find(cls="word").text() for f in findings] == ["CRITICAL", "WARNING", "INFO"]
    masking = findings[1].text()
    assert "Why it matters: robustness is likely overestimated" in " ".join(masking.split())
    assert "What to do: evaluate with EOT/BPDA" in " ".join(masking.split())


def test_errored_probe_shows_its_error_and_traceback(rich_dom):
    section = next(
        s
        for s in rich_dom.find_all("section", cls="probe")
        if s.attrs["data-probe"].startswith("graph")
    )
    box = section.find("div", cls="errorbox")
    assert "RuntimeError: boom" in box.text()
    assert "Traceback (most recent call last)" in box.find("pre").text()
    skipped = _section(rich_dom, "memorization").find("p", cls="skipbox").text()
    assert "cannot be trained" in skipped


def test_metric_table_explains_public_metrics(rich_dom):
    rows = _section(rich_dom, "calibration").find("table", cls="metrics").find_all("tr")[1:]
    meaning = {r.find("code").text(): r.find_all("td")[2].text() for r in rows}
    assert "risk-coverage" in meaning["calibration.aurc"]
    assert meaning["calibration.ece"].startswith("expected calibration error")


# --- safety: escaping and self-containment --------------------------------------------------


def test_hostile_strings_are_escaped_everywhere(hostile_audit, hostile, parse_html):
    html = render_html(hostile_audit)
    dom = parse_html(html)
    assert "<script" not in html.lower()
    assert "onerror=alert(2)>" not in html  # the attribute breaker never reaches raw HTML
    assert not [n for n in dom.iter() if n.tag == "script"]
    assert not [(n.tag, a) for n in dom.iter() for a in n.attrs if a.lower().startswith("on")]
    # Only our own images exist, and every one is a data: PNG.
    assert all(n.attrs["src"].startswith("data:image/png;base64,") for n in dom.find_all("img"))
    text = dom.text()
    for place in (
        "class 3",
        "women",
        "age>60",
        "sex",
        "credit",
        "/models/",
        "boom",
        "EOT",
        "adversarial",
        "true",
    ):
        assert f"{place}{hostile.script}{hostile.attribute}" in text, place
    # Inside SVG too: a class name in a bar label's <title>, a series name in the legend.
    svg_text = " ".join(n.text() for n in dom.find_all("svg", cls="chart"))
    assert f"class 3{hostile.script}" in svg_text and f"EOT{hostile.script}" in svg_text


def test_real_scan_escapes_class_and_group_names(tmp_path, hostile, parse_html):
    import torch

    from auditkit import scan
    from auditkit.loading import ModelMetadata

    torch.manual_seed(0)
    x = torch.rand(40, 6)
    y = (x[:, 0] > 0.5).long()
    net = torch.nn.Linear(6, 2)
    names = [f"bad{hostile.script}", f"good{hostile.attribute}"]
    groups = {f"region{hostile.script}": np.array([f"north{hostile.script}", "south"] * 20)}
    result = scan(
        net,
        (x, y, groups),
        probes=["performance"],
        budget="fast",
        device="cpu",
        metadata=ModelMetadata(class_names=tuple(names)),
    )
    paths = write_outputs(result, tmp_path)
    html = paths["report.html"].read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "onerror=alert(2)>" not in html
    dom = parse_html(html)
    chart_text = " ".join(n.text() for n in dom.find_all("svg", cls="chart"))
    assert f"bad{hostile.script}" in chart_text  # class names reached the figures, as text
    assert f"region{hostile.script}" in dom.find("div", cls="identity").text()


def test_report_is_self_contained(rich_html, rich_dom):
    csp = rich_dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in csp and "script-src" not in csp
    for node in rich_dom.iter():
        assert node.tag not in ("script", "link", "iframe", "object", "embed", "base", "form")
        for name, value in node.attrs.items():
            if name in ("src", "srcset", "poster", "data", "action", "formaction", "xlink:href"):
                assert (value or "").startswith("data:image/png;base64,"), (node.tag, name)
            if name == "href":
                assert (value or "").startswith("#"), value
    style = rich_dom.find("style").text()
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|file:)""", rich_html, re.I)


def test_every_svg_and_image_is_labelled_for_screen_readers(rich_dom):
    ids = [n.attrs["id"] for n in rich_dom.iter() if n.attrs.get("id")]
    assert len(ids) == len(set(ids))  # labelled-by references are unambiguous
    for chart in rich_dom.find_all("svg", cls="chart"):
        title_id, desc_id = chart.attrs["aria-labelledby"].split()
        assert chart.find("title", id=title_id).text().strip()
        assert len(chart.find("desc", id=desc_id).text()) > 40
    for image in rich_dom.find_all("img"):
        assert image.attrs["alt"].strip()


def _contrast(a: str, b: str) -> float:
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _blend(top: str, bottom: str, alpha: float) -> str:
    mixed = [
        alpha * int(top[i : i + 2], 16) + (1 - alpha) * int(bottom[i : i + 2], 16)
        for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{round(c):02x}" for c in mixed)


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_palette_has_sufficient_contrast(mode, rich_html):
    colours = PALETTES[mode]
    for background in ("bg", "panel"):
        for text in ("fg", "muted", "link", "pass", "warn", "fail", "error", "skip", "info"):
            assert _contrast(colours[text], colours[background]) >= 4.5, (mode, text, background)
    for mark in [f"c{i}" for i in range(svg.SERIES_STYLES)] + ["heat", "neg"]:
        assert _contrast(colours[mark], colours["bg"]) >= 3.0, (
            mode,
            mark,
        )  # WCAG non-text contrast
    # Numbers written on heat-map cells stay readable at every cell strength.
    for base in ("heat", "neg"):
        for strength in np.linspace(0, 1, 201):
            cell = _blend(colours[base], colours["bg"], svg.cell_opacity(float(strength)))
            ink = colours["on-heat"] if strength > svg.TEXT_FLIP else colours["fg"]
            assert _contrast(ink, cell) >= 4.5, (mode, base, strength)
    # The page really uses these colours, for screen and (light) for print.
    assert f"--fg: {colours['fg']};" in rich_html
    assert "@media (prefers-color-scheme: dark)" in rich_html and "@media print" in rich_html


# --- determinism ------------------------------------------------------------------------------


def test_rendering_is_a_pure_function_of_audit_json(rich_audit, rich_html, tmp_path):
    assert render_html(rich_audit) == rich_html
    reloaded = AuditResult.from_json(rich_audit.to_json())
    assert render_html(reloaded) == rich_html
    paths = write_outputs(rich_audit, tmp_path)
    assert paths["report.html"].read_bytes() == rich_html.encode("utf-8")


def test_cli_report_reproduces_the_demo_report(demo_outputs, tmp_path):
    from typer.testing import CliRunner

    from auditkit.cli import app

    target = tmp_path / "again.html"
    run = CliRunner().invoke(app, ["report", str(demo_outputs / "audit.json"), "-o", str(target)])
    assert run.exit_code == 0, run.output
    assert target.read_bytes() == (demo_outputs / "report.html").read_bytes()


# --- the real demo ----------------------------------------------------------------------------


def test_demo_report_shows_every_probe_and_stays_small(demo_outputs, parse_html):
    audit = json.loads((demo_outputs / "audit.json").read_text(encoding="utf-8"))
    html = (demo_outputs / "report.html").read_text(encoding="utf-8")
    assert len(html.encode("utf-8")) < 2 * 1024 * 1024
    dom = parse_html(html)
    sections = {s.attrs["data-probe"]: s for s in dom.find_all("section", cls="probe")}
    # Every probe that applies to a digits CNN has a section (the graph plugin's do not).
    applies = {n: p for n, p in audit["probes"].items()
               if not (p.get("details") or {}).get("not_applicable")}
    assert list(sections) == list(applies)
    for name, probe in applies.items():
        section = sections[name]
        assert section.find(cls="word").text() == LABELS[probe["status"]]
        if probe["status"] == "error":
            assert probe["error"] in section.find("div", cls="errorbox").text()
        else:
            assert len(section.find_all("figure", cls="fig")) == len(probe["figures"])
    performance = sections["performance"]
    assert performance.find("figure", cls="fig-bar") and performance.find(
        "figure", cls="fig-matrix"
    )
    assert audit["model"]["sha256"] in dom.find("div", cls="identity").text()


# --- drawing details ----------------------------------------------------------------------------


def test_png_encoder_round_trips_through_pillow():
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.random((5, 7))
    rgb = rng.random((4, 3, 3))
    channels_first = rng.random((1, 6, 6))
    for pixels, mode, expected in (
        (grey, "L", grey),
        (rgb, "RGB", rgb),
        (channels_first, "L", channels_first[0]),
        (grey[..., None], "L", grey),
    ):
        image = Image.open(io.BytesIO(png_bytes(pixels.tolist())))
        assert image.mode == mode
        np.testing.assert_array_equal(np.asarray(image), np.rint(expected * 255).astype(np.uint8))
    clipped = Image.open(io.BytesIO(png_bytes([[-1.0, None], [2.0, 0.5]])))
    assert np.asarray(clipped).tolist() == [[0, 0], [255, 128]]


def test_large_images_travel_as_png_so_audit_json_stays_small():
    """Six rows of 224×224 RGB gallery cells were 127 MB of number lists in audit.json (23 s
    to write); as PNG data URIs they are the bytes the report embeds, lossless at 8 bits."""
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.random((8, 8))
    assert image_cell("digit", small) == {"label": "digit", "pixels": np.round(small, 3).tolist()}
    large = rng.random((224, 224, 3))
    cell = image_cell("photo", large)
    assert set(cell) == {"label", "png"}
    decoded = Image.open(io.BytesIO(__import__("base64").b64decode(cell["png"].split(",", 1)[1])))
    np.testing.assert_array_equal(np.asarray(decoded), np.rint(large * 255).astype(np.uint8))
    figure = {"kind": "images", "columns": ["x"], "rows": [{"cells": [cell] * 18}]}
    assert len(json.dumps(figure)) < 18 * 224 * 224 * 3 * 1.4  # base64 of the raw bytes
    markup = str(render_figure(figure, "g"))
    assert markup.count('<img src="data:image/png;base64,') == 18
    assert 'width="128" height="128"' in markup  # shown at card size; the PNG keeps 224×224
    # Too large for the report: averaged down by a whole factor.
    huge = image_cell("scan", np.full((1030, 600), 0.5))
    height, width = Image.open(io.BytesIO(__import__("base64").b64decode(
        huge["png"].split(",", 1)[1]))).size[::-1]
    assert (height, width) == (343, 200)


def test_a_png_cell_from_an_untrusted_audit_never_reaches_the_report_unchecked():
    import base64

    bad = [
        "javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "data:image/png;base64,not base64!",
        "data:image/png;base64," + base64.b64encode(b"GIF89a" + bytes(30)).decode(),
        'data:image/png;base64,"onerror="alert(1)',
        12,
    ]
    for uri in bad:
        markup = str(render_figure({"kind": "images", "rows": [{"cells": [
            {"label": "x", "png": uri}]}]}, "g"))
        assert "image unreadable" in markup and "<img" not in markup, uri


def test_malformed_figures_degrade_to_a_note_not_a_crash():
    odd = [
        {"kind": "sankey", "title": "future kind"},
        {
            "kind": "images",
            "rows": [{"cells": [{"label": "ragged", "pixels": [[0.1], [0.2, 0.3]]}]}],
        },
        {"kind": "line", "series": [{"name": "no data"}, "junk"]},
        {"kind": "bar", "bars": []},
        {"kind": "matrix", "values": []},
        {"kind": "reliability", "bins": [{"lower": "a"}]},
        "not a figure",
    ]
    for i, figure in enumerate(odd):
        markup = str(render_figure(figure, f"t{i}"))
        assert markup.startswith(("<figure", '<p class="note"'))
    assert "cannot draw figures of kind" in str(render_figure(odd[0], "t"))
    assert "image unreadable" in str(render_figure(odd[1], "t"))


def test_a_reference_line_at_zero_keeps_its_label_clear_of_the_axis_label():
    """The adversarial probe's per-class bars of a model fooled everywhere: reference 0.
    Its label used to be centred on the line and printed over the "class" axis label."""
    figure = {"kind": "bar", "x_label": "class", "y_label": "robust accuracy",
              "bars": [{"label": str(i), "value": 0.0, "count": 10} for i in range(3)],
              "reference": 0.0}
    markup = str(render_figure(figure, "b"))
    axis = re.search(r'<text class="label" x="8" y="16">class</text>', markup)
    ref = re.search(r'<text class="tick" x="([\d.]+)" y="18.0" text-anchor="middle">'
                    r"reference 0</text>", markup)
    assert axis and ref
    half = svg._text_px("reference 0") / 2
    assert float(ref.group(1)) - half >= 8 + svg._text_px("class")


def test_nice_ticks_cover_the_range_with_round_steps():
    for lo, hi in ((0, 1), (0.013, 0.161), (-3, 17), (0, 1e-3), (5, 5)):
        ticks = svg.nice_ticks(lo, hi)
        assert 2 <= len(ticks) <= 12
        steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(steps) == 1
        mantissa = float(f"{steps.pop():e}".split("e")[0])
        assert mantissa in (1.0, 2.0, 2.5, 5.0)


def test_a_100_class_confusion_matrix_stays_small(parse_html):
    rng = np.random.default_rng(0)
    counts = (rng.random((100, 100)) < 0.2) * rng.integers(1, 9, (100, 100))
    np.fill_diagonal(counts, 80)
    figure = {
        "kind": "matrix",
        "title": "CIFAR-100",
        "labels": [f"c{i}" for i in range(100)],
        "values": counts.tolist(),
    }
    markup = str(render_figure(figure, "big"))
    assert len(markup) < 400_000
    cells = parse_html(markup).find_all("rect", cls="cell")
    assert len(cells) == 1 + int((counts > 0).sum())  # background + one rect per non-zero cell
