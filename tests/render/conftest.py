"""Fixtures for the renderer tests: a rich synthetic audit, the real demo's outputs, a tiny DOM.

The suite runs with ``--import-mode=importlib``, so test modules reach these helpers through
fixtures (``make_audit``, ``parse_html``, ``hostile``, ``artifacts``) rather than imports.

The synthetic audit exercises every figure kind, every probe status, every check status, every
finding severity and all three gate outcomes, and can carry a hostile string in every place a
user or plugin controls (paths, class and group names, figure labels, series names, table cells,
check values, error messages, even a probe name).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from auditkit.outputs import write_outputs
from auditkit.pipeline import declared_metric_info
from auditkit.registry import discover_probes
from auditkit.results import AuditResult, Check, Finding, GateResult, ProbeResult, compute_verdict

HOSTILE = "<script>alert(1)</script>"
ATTRIBUTE_BREAKER = "\"'><img src=x onerror=alert(2)>"
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _digit_like(seed: int, size: int = 8) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size))
    image[1:-1, size // 2 - 1 : size // 2 + 1] = 1.0
    return np.clip(image + 0.1 * rng.standard_normal((size, size)), 0, 1).round(4).tolist()


def build_rich_audit(hostile: str = "") -> AuditResult:
    """A synthetic AuditResult with every figure kind and status; ``hostile`` is planted widely."""
    h = hostile
    classes = [f"class {i}{h if i == 3 else ''}" for i in range(4)]
    groups = [f"women{h}", "men", f"age>60{h}", "tiny group"]
    eps = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    rgb = np.stack([np.linspace(0, 1, 16).reshape(4, 4)] * 3, axis=-1)
    rgb[..., 1] = 0.5
    performance = ProbeResult(
        name="performance",
        status="passed",
        metrics={"accuracy": 0.9875, "balanced_accuracy": 0.9811, "worst_class_accuracy": 0.95},
        checks=[
            Check("outputs_are_logits", "passed", "model outputs logits", {"output_kind": "logits"})
        ],
        summary=f"98.8% accuracy on 400 audit examples{h}",
        headline="accuracy",
        figures=[
            {
                "kind": "bar",
                "title": f"Accuracy per class{h}",
                "x_label": "class",
                "y_label": "accuracy",
                "bars": [
                    {"label": c, "value": v, "count": 100}
                    for c, v in zip(classes, (1.0, 0.99, 0.95, 0.98), strict=True)
                ],
                "reference": 0.9875,
                "y_range": [0, 1],
            },
            {
                "kind": "matrix",
                "title": "Confusion matrix",
                "labels": classes,
                "values": [[100, 0, 0, 0], [1, 99, 0, 0], [2, 2, 95, 1], [0, 1, 1, 98]],
                "x_label": "predicted",
                "y_label": f"true{h}",
            },
        ],
        seconds=0.01,
    )
    gallery_rows = []
    for i in range(3):
        original = np.asarray(_digit_like(i))
        delta = np.clip(0.5 + 2.0 * (np.asarray(_digit_like(10 + i)) - 0.5) * 0.3, 0, 1)
        gallery_rows.append(
            {
                "caption": f"example {i}: true {classes[i]}",
                "cells": [
                    {"label": f"{classes[i]} (97%)", "pixels": original.tolist()},
                    {"label": "perturbation ×10", "pixels": delta.round(4).tolist()},
                    {
                        "label": f"{classes[(i + 1) % 4]} (88%)",
                        "pixels": np.clip(original + 0.2 * (delta - 0.5), 0, 1).round(4).tolist(),
                    },
                ],
            }
        )
    gallery_rows.append(
        {
            "caption": "an RGB example",
            "cells": [
                {"label": "rgb", "pixels": rgb.tolist()},
                {"label": "with a NaN", "pixels": [[0.0, None], [1.0, 0.5]]},
            ],
        }
    )
    adversarial = ProbeResult(
        name="adversarial",
        status="warned",
        metrics={
            "clean_accuracy": 0.98,
            "fgsm_accuracy": 0.41,
            "pgd_accuracy": 0.12,
            "eot_accuracy": 0.10,
            "robust_accuracy": 0.09,
            "eps": 0.1,
            f"odd metric{h}": 1.5,
        },
        checks=[
            Check(
                "iterative_beats_single_step",
                "passed",
                "PGD 0.12 ≤ FGSM 0.41",
                {"pgd_accuracy": 0.12, "fgsm_accuracy": 0.41},
            ),
            Check(
                "monotone_in_eps", "passed", "accuracy never rises with eps", {"max_increase": 0.0}
            ),
            Check(
                "unbounded_attack_reaches_zero",
                "failed",
                f"accuracy 0.31 at eps 1.0 (chance 0.25){h}",
                {"accuracy_at_large_eps": 0.3125, "chance": 0.25, "eps": 1.0},
            ),
            Check(
                "step_doubling_stable",
                "warned",
                "doubling steps moved robust accuracy by 0.04",
                {"delta": 0.04, "tolerance": 0.02},
            ),
            Check(
                "noise_weaker_than_attack",
                "passed",
                "noise 0.97 > attack 0.12",
                {"noise_accuracy": 0.97, "attack_accuracy": 0.12},
            ),
            Check(
                "gradients_finite_nonzero",
                "passed",
                "all finite",
                {"nonzero_fraction": 1.0, "finite": True},
            ),
            Check("stochastic_model_uses_eot", "skipped", "model is deterministic", {}),
        ],
        summary="9.0% of examples survive every attack at eps 0.1 (clean 98.0%)",
        headline="robust_accuracy",
        findings=[
            Finding(
                "warning",
                "gradient masking suspected: an unbounded attack does not reach chance",
                why="robustness is likely overestimated when gradients are masked",
                action="evaluate with EOT/BPDA and check for a saturated softmax",
            ),
            Finding(
                "critical",
                "the model is not robust: 9% robust accuracy at eps 0.1",
                why="a perturbation invisible to a person flips most predictions",
                action="train adversarially (Madry et al. 2018) and re-audit",
            ),
            Finding("info", f"per-class robust accuracy ranges from 2% to 20%{h}"),
        ],
        figures=[
            {
                "kind": "line",
                "title": "Accuracy vs eps",
                "x_label": "eps (Linf)",
                "y_label": "accuracy",
                "series": [
                    {"name": "FGSM", "x": eps, "y": [0.98, 0.7, 0.41, 0.2, 0.1, 0.05]},
                    {"name": "PGD", "x": eps, "y": [0.98, 0.5, 0.12, 0.01, 0.0, 0.0]},
                    {
                        "name": f"EOT{h}",
                        "x": eps,
                        "y": [0.98, 0.45, None, 0.01, 0.0, 0.0],
                        "low": [0.96, 0.4, None, 0.0, 0.0, 0.0],
                        "high": [0.99, 0.5, None, 0.03, 0.01, 0.01],
                    },
                    {"name": "noise", "x": eps, "y": [0.98, 0.98, 0.97, 0.95, 0.9, 0.8]},
                ],
                "y_range": [0, 1],
                "caption": f"Worst case over restarts; best iterate.{h}",
            },
            {
                "kind": "images",
                "title": "Adversarial examples",
                "columns": ["original", "perturbation", f"adversarial{h}"],
                "rows": gallery_rows,
                "caption": "Perturbations amplified ×10 for visibility.",
            },
            {
                "kind": "table",
                "title": "Robust accuracy per class",
                "columns": ["class", "clean", "robust", "check"],
                "rows": [
                    [c, 0.98, 0.02 + 0.05 * i, "passed" if i else "failed"]
                    for i, c in enumerate(classes)
                ],
            },
        ],
        seconds=12.5,
    )
    bins = []
    for i in range(15):
        lower, upper = i / 15, (i + 1) / 15
        count = 0 if i < 4 else int(5 + 3 * i)
        confidence = (lower + upper) / 2
        bins.append(
            {
                "lower": lower,
                "upper": upper,
                "confidence": confidence if count else None,
                "accuracy": max(0.0, confidence - 0.12) if count else None,
                "count": count,
            }
        )
    coverage = [i / 10 for i in range(1, 11)]
    calibration = ProbeResult(
        name="calibration",
        status="failed",
        metrics={
            "accuracy": 0.9,
            "ece": 0.1234,
            "mce": 0.31,
            "brier": 0.15,
            "nll": 0.42,
            "temperature": 2.31,
            "ece_after_temperature": 0.021,
            "ood_auroc": 0.93,
            "aurc": 0.032,
        },
        summary="over-confident: ECE 0.123, 0.021 after temperature scaling (T = 2.31)",
        headline="ece",
        findings=[
            Finding(
                "critical",
                "the model is over-confident (ECE 0.123)",
                why="its confidence cannot be read as a probability",
                action="fit temperature T=2.31 on held-out data: divide the logits by 2.31 before softmax",
            )
        ],
        figures=[
            {
                "kind": "reliability",
                "title": "Reliability diagram",
                "bins": bins,
                "caption": "15 equal-width bins.",
            },
            {
                "kind": "line",
                "title": "Risk-coverage curve",
                "x_label": "coverage",
                "y_label": "risk",
                "series": [
                    {
                        "name": "max softmax",
                        "x": coverage,
                        "y": [0.0, 0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1],
                    }
                ],
            },
            {
                "kind": "line",
                "title": "ECE vs number of bins",
                "x_label": "bins",
                "y_label": "ECE",
                "x_scale": "log",
                "series": [
                    {"x": [0, 5, 10, 15, 30, 100], "y": [None, 0.11, 0.12, 0.123, 0.13, 0.16]}
                ],
            },
        ],
        seconds=3.2,
    )
    bias = ProbeResult(
        name="bias",
        status="passed",
        metrics={
            "overall_accuracy": 0.9,
            "worst_group_accuracy": 0.71,
            "accuracy_difference": 0.21,
            "demographic_parity_difference": 0.05,
            "equalized_odds_difference": 0.08,
            "min_group_size": 12,
        },
        checks=[
            Check(
                "groups_large_enough",
                "warned",
                f"group 'tiny group' has 12 < 30 examples{h}",
                {"min_group_size": 12, "groups": groups},
            )
        ],
        summary="worst group (age>60) at 71% vs 90% overall; difference 0.21 [0.12, 0.30]",
        headline="worst_group_accuracy",
        findings=[
            Finding(
                "warning",
                f"group {groups[2]} is served worse",
                why="the average hides who the model fails",
                action=f"collect more data for group {groups[2]}",
            )
        ],
        figures=[
            {
                "kind": "bar",
                "title": "Accuracy per group (95% bootstrap CI)",
                "x_label": f"sex{h}",
                "y_label": "accuracy",
                "bars": [
                    {"label": groups[0], "value": 0.92, "low": 0.89, "high": 0.95, "count": 200},
                    {"label": groups[1], "value": 0.93, "low": 0.9, "high": 0.96, "count": 180},
                    {
                        "label": groups[2],
                        "value": 0.71,
                        "low": 0.6,
                        "high": 0.8,
                        "count": 40,
                        "flag": True,
                    },
                    {
                        "label": groups[3],
                        "value": None,
                        "count": 12,
                        "flag": f"too small to rank{h}",
                    },
                ],
                "reference": 0.9,
            },
            {
                "kind": "matrix",
                "title": "Accuracy difference between groups",
                "labels": groups,
                "values": [
                    [0.0, -0.01, 0.21, None],
                    [0.01, 0.0, 0.22, None],
                    [-0.21, -0.22, 0.0, None],
                    [None] * 4,
                ],
                "x_label": "group",
                "y_label": "group",
            },
        ],
        seconds=1.1,
    )
    memorization = ProbeResult(
        name="memorization",
        status="skipped",
        skip_reason=f"the model format cannot be trained (TorchScript without gradients){h}",
        summary="not run",
    )
    traceback = f'Traceback (most recent call last):\n  File "plugin.py", line 3, in run\nRuntimeError: boom{h}\n'
    broken = ProbeResult(
        name=f"graph{h}",
        status="error",
        error=f"RuntimeError: boom{h}",
        summary=f"the probe crashed: RuntimeError: boom{h}",
        details={"traceback": traceback},
        seconds=0.2,
    )
    probes = {
        p.name: p for p in (performance, adversarial, calibration, bias, memorization, broken)
    }
    gates = [
        GateResult(
            "performance.accuracy",
            ">= 0.9",
            0.9875,
            True,
            "fail",
            "performance.accuracy = 0.9875 (>= 0.9)",
        ),
        GateResult(
            "adversarial.robust_accuracy",
            ">= 0.3",
            0.09,
            False,
            "fail",
            "adversarial.robust_accuracy = 0.09, required >= 0.3",
        ),
        GateResult(
            "calibration.ece",
            "<= 0.05",
            0.1234,
            False,
            "warn",
            f"calibration.ece = 0.1234, wanted <= 0.05{h}",
        ),
    ]
    # As the runner does: each probe's declared metric descriptions travel in audit.json.
    installed = discover_probes()
    probes = {
        name: dataclasses.replace(
            p, metric_info=declared_metric_info(installed[name].obj, p.metrics)
        )
        if name in installed and installed[name].loaded
        else p
        for name, p in probes.items()
    }
    return AuditResult(
        model={
            "path": f"/models/{h or 'plain'}/net.pt2",
            "sha256": "ab" * 32,
            "format": "torch.export",
            "num_classes": 4,
        },
        data={
            "name": f"credit{h}",
            "n": 400,
            "fingerprint": "cd" * 32,
            "synthetic": True,
            "description": f"a credit-like task where one group's labels are noisier{h}",
            "sensitive_features": [f"sex{h}", "age"],
            "class_names": classes,
            "splits": {"calibration": {"n": 120}, "evaluation": {"n": 280}},
        },
        environment={"torch": "2.14.1", "python": "3.11.7", "device": "cpu", "seed": 7},
        probes=probes,
        gates=gates,
        verdict=compute_verdict(probes, gates),
        settings={"budget": "fast", "seed": 7, "options": {"adversarial": {"eps": 0.1}}},
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=17.25,
        auditkit_version="0.1.0",
    )


# --- a tiny DOM for asserting on the HTML without a browser ------------------------------------

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


class Node:
    """An element: tag, attributes, children (nodes and text)."""

    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def iter(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for node in self.iter():
            if tag and node.tag != tag:
                continue
            if cls and cls not in (node.attrs.get("class") or "").split():
                continue
            if any(node.attrs.get(k.rstrip("_").replace("_", "-")) != v for k, v in attrs.items()):
                continue
            found.append(node)
        return found

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}>"
        return found[0]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)


def _parse_html(markup: str) -> Node:
    from html.parser import HTMLParser

    root = Node("#document", {}, None)

    class _Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.current = root

        def handle_starttag(self, tag, attrs):
            node = Node(tag, dict(attrs), self.current)
            self.current.children.append(node)
            if tag not in _VOID:
                self.current = node

        def handle_startendtag(self, tag, attrs):
            self.current.children.append(Node(tag, dict(attrs), self.current))

        def handle_endtag(self, tag):
            node = self.current
            while node is not root and node.tag != tag:
                node = node.parent
            if node is not root:
                self.current = node.parent

        def handle_data(self, data):
            self.current.children.append(data)

    parser = _Parser()
    parser.feed(markup)
    parser.close()
    return root


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rich_audit() -> AuditResult:
    return build_rich_audit()


@pytest.fixture(scope="session")
def hostile_audit() -> AuditResult:
    return build_rich_audit(HOSTILE + ATTRIBUTE_BREAKER)


@pytest.fixture(scope="session")
def demo_outputs(tmp_path_factory, demo_model_file) -> Path:
    """What ``auditkit demo`` writes (the session's demo model scanned at the fast budget)."""
    from auditkit.api import scan

    out = tmp_path_factory.mktemp("demo-out")
    result = scan(demo_model_file, budget="fast", seed=0, device="cpu")
    write_outputs(result, out)
    assert math.isfinite(result.duration_seconds)
    return out


@pytest.fixture(scope="session")
def make_audit():
    """``make_audit(hostile="")``: the synthetic audit with ``hostile`` planted everywhere."""
    return build_rich_audit


@pytest.fixture(scope="session")
def parse_html():
    """``parse_html(markup)``: a queryable tree (``find``, ``find_all``, ``text``)."""
    return _parse_html


@pytest.fixture(scope="session")
def hostile() -> SimpleNamespace:
    return SimpleNamespace(
        script=HOSTILE, attribute=ATTRIBUTE_BREAKER, both=HOSTILE + ATTRIBUTE_BREAKER
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """test-artifacts/ in the repository root (gitignored): screenshots for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter) -> None:
    """Say at the end of the run, not only as an "s", when the browser tests were skipped and
    why (no Chromium, or no Playwright): a green run must not hide that they never ran."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "test_browser.py" in getattr(report, "nodeid", "")
    ]
    if not skipped:
        return
    longrepr = skipped[0].longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    terminalreporter.write_line(
        f"NOTE: {len(skipped)} browser test(s) skipped: {reason.removeprefix('Skipped: ')}",
        yellow=True,
        bold=True,
    )


# --- the five reports the layout tests open (each built once per session, as cheaply as the
# report stays representative: small data, the fast budget, a synthetic NAS study) -----------


def _sklearn_table_report(out: Path) -> Path:
    """A scikit-learn model on a credit-like table with two sensitive columns (sex × age)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from auditkit.api import scan

    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"income": rng.normal(size=n), "debt": rng.normal(size=n),
                          "sex": rng.choice(["female", "male"], n),
                          "age": rng.integers(20, 70, n)})
    frame["outcome"] = ((frame.income - frame.debt + 0.3 * rng.normal(size=n)) > 0).astype(int)
    frame.to_csv(out / "credit.csv", index=False)
    features = frame[["income", "debt"]].to_numpy(np.float32)
    model = LogisticRegression().fit(features, frame.outcome)
    result = scan(model, out / "credit.csv", target="outcome", sensitive=["sex", "age"],
                  budget="fast", seed=0, device="cpu")
    write_outputs(result, out)
    return out / "report.html"


def _onnx_report(out: Path, demo_model, digits_data, onnx_export) -> Path:
    """The demo CNN exported to ONNX (its metadata embedded), scanned at the fast budget."""
    from auditkit.api import scan

    path = onnx_export(demo_model.eval(), out / "digits-cnn.onnx", digits_data.x[:2])
    write_outputs(scan(path, budget="fast", seed=0, device="cpu"), out)
    return out / "report.html"


def _gcn_report(out: Path) -> Path:
    """A GCN on KarateClub (auditkit-graph): graph_structure's tables and charts."""
    pytest.importorskip("auditkit_graph", reason="the auditkit-graph plugin is not installed")
    from auditkit_graph._threads import one_thread
    from auditkit_graph.data import load_graph, node_audit_data
    from auditkit_graph.generators import gcn_classifier, train_gcn

    from auditkit.api import scan

    with one_thread():
        graph = load_graph("karate")
        gnn = train_gcn(graph, epochs=100)
        result = scan(gcn_classifier(graph, gnn), node_audit_data(graph), budget="fast", seed=0,
                      device="cpu",
                      probes=["performance", "calibration", "bias", "graph_structure"])
    write_outputs(result, out)
    return out / "report.html"


def _nas_report(out: Path) -> Path:
    """nas_report.html of a synthetic study (the report is a pure function of nas.json): CNN
    children with long architecture strings, a failed trial, a chosen model that passed with
    warnings."""
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("auditkit_nas", reason="the auditkit-nas plugin is not installed")
    from auditkit_nas.objectives import Objective
    from auditkit_nas.report import render_report
    from auditkit_nas.summary import summarize
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    objectives = [Objective("calibration", "accuracy", "higher"),
                  Objective("calibration", "ece", "lower")]
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number in range(12):
        arch = {"kind": "cnn", "input_shape": [1, 8, 8], "num_classes": 10,
                "blocks": [{"width": 16 * (1 + (number + b) % 3), "kernel": 3,
                            "pool": ("max", "none", "avg")[(number + b) % 3]}
                           for b in range(1 + number % 3)],
                "classifier": 64, "activation": "relu", "batch_norm": bool(number % 2),
                "dropout": 0.25}
        study.add_trial(create_trial(
            values=[float(0.7 + 0.25 * rng.random()), float(0.01 + 0.1 * rng.random())],
            params={"blocks": 1 + number % 3},
            distributions={"blocks": CategoricalDistribution([1, 2, 3])},
            user_attrs={"architecture": arch, "seconds": float(1 + 3 * rng.random()),
                        "parameters": int(20_000 + 1000 * number)}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={
        "error": "RuntimeError: CUDA out of memory while allocating a tensor of shape "
                 "[512, 1024, 1024] for the third convolution block"}))
    settings = {"data": "digits", "strategy": "controller", "trials": 13, "seed": 0,
                "epochs": 1, "lr": 0.003, "batch_size": 64, "storage": "sqlite:///nas.db",
                "minutes": None, "workers": 1}
    document = summarize(study, objectives, settings)
    document |= {"search_seconds": 42.0, "models": {
        str(n): f"pareto/trial-{n:04d}.pt2" for n in document["pareto_front"]},
        "scorecard": {"trial": document["chosen"], "report": "chosen/report.html",
                      "audit": "chosen/audit.json", "verdict": "passed",
                      "verdict_text": "passed with warnings", "budget": "fast", "probes": None}}
    (out / "nas.json").write_text(json.dumps(document), encoding="utf-8")
    (out / "nas_report.html").write_text(render_report(document), encoding="utf-8")
    return out / "nas_report.html"


@pytest.fixture(scope="session")
def five_reports(tmp_path_factory, demo_outputs, demo_model, digits_data, onnx_export):
    """``{name: lazy path}`` of the five reports the layout tests open; each is built on first
    use (``five_reports["gcn"]()``), so one test can run without building all five."""
    import functools

    root = tmp_path_factory.mktemp("five-reports")

    def folder(name: str) -> Path:
        path = root / name
        path.mkdir(exist_ok=True)
        return path

    return {
        "demo": lambda: demo_outputs / "report.html",
        "table": functools.cache(lambda: _sklearn_table_report(folder("table"))),
        "onnx": functools.cache(lambda: _onnx_report(folder("onnx"), demo_model, digits_data, onnx_export)),
        "gcn": functools.cache(lambda: _gcn_report(folder("gcn"))),
        "nas": functools.cache(lambda: _nas_report(folder("nas"))),
    }
