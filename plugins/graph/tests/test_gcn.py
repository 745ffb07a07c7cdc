"""GCNs on KarateClub and the SBM graph: sensible accuracy, and structure attacks that behave
like attacks (lower accuracy, monotone in budget, PRBCD at least as strong as random flips)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from auditkit_graph.data import node_audit_data
from auditkit_graph.probes.graph_structure import GraphStructureProbe, StructureMeasurement
from auditkit_graph.probes.graph_structure.judge import checks, tolerance

import auditkit
from auditkit.adapters import TorchModelAdapter


@pytest.mark.parametrize(("fixture", "least"), [("karate_model", 0.65), ("sbm_model", 0.8)])
def test_gcn_reaches_sensible_accuracy(request, fixture, least):
    graph, gnn, _ = request.getfixturevalue(fixture)
    with torch.no_grad():
        pred = gnn(graph.x, graph.edge_index).argmax(-1)
    accuracy = float((pred == graph.y)[graph.test_mask].float().mean())
    chance = 1 / graph.num_classes
    assert accuracy >= least > chance


def _structure(graph, classifier):
    result = auditkit.scan(classifier, node_audit_data(graph), probes=[GraphStructureProbe],
                           budget="fast")
    return result.probes["graph_structure"]


@pytest.mark.parametrize("fixture", ["karate_model", "sbm_model"])
def test_structure_attacks_lower_accuracy_monotonically(request, fixture):
    graph, _, classifier = request.getfixturevalue(fixture)
    result = _structure(graph, classifier)
    measured, found = result.details, {c.name: c for c in result.checks}
    clean = measured["clean_accuracy"]
    prbcd = [row["prbcd"] for row in measured["curve"]]
    tol = tolerance(measured["targets"])
    assert prbcd[-1] < clean - 0.1  # 10% of the edges flipped by PRBCD costs real accuracy
    assert all(b <= a + tol for a, b in zip([clean, *prbcd[:-1]], prbcd, strict=True))
    for row in measured["curve"]:  # the strong attack is at least as strong as random flips
        assert row["prbcd"] <= row["random"] + tol
    assert found["monotone_in_budget"].status == "passed"
    assert found["strong_attack_beats_random"].status == "passed"
    assert result.metrics["robust_accuracy"] <= result.metrics["clean_accuracy"]
    assert "headline budget" in GraphStructureProbe.metrics["robust_accuracy"].description
    line = next(f for f in result.figures if f["kind"] == "line")
    assert {s["name"] for s in line["series"]} == {"random flips", "DICE", "PRBCD"}


def _measured(clean, random, prbcd, targets=400):
    curve = tuple({"fraction": f, "edges": 10, "random": r, "prbcd": p}
                  for f, r, p in zip((0.02, 0.05, 0.1), random, prbcd, strict=True))
    return StructureMeasurement(clean_accuracy=clean, curve=curve, attacks=("random", "prbcd"),
                                headline_budget=0.05, targets=targets)


def _statuses(measurement):
    return {c.name: c.status for c in checks(measurement)}


def test_judge_flags_a_rising_curve_and_a_weak_attack():
    good = _statuses(_measured(0.9, [0.88, 0.86, 0.84], [0.8, 0.7, 0.6]))
    assert good == {"strong_attack_beats_random": "passed", "monotone_in_budget": "passed"}
    rising = _statuses(_measured(0.9, [0.88, 0.86, 0.84], [0.6, 0.7, 0.8]))
    assert rising["monotone_in_budget"] == "failed"
    weak = _statuses(_measured(0.9, [0.7, 0.6, 0.5], [0.85, 0.8, 0.75]))
    assert weak["strong_attack_beats_random"] == "failed"
    # one node's worth of noise on 400 nodes is not a rise
    assert _statuses(_measured(0.9, [0.88, 0.86, 0.84], [0.8, 0.8025, 0.6]))["monotone_in_budget"] == "passed"


def test_bias_finds_the_planted_low_degree_gap_with_intervals(sbm_model):
    graph, _, classifier = sbm_model
    data = node_audit_data(graph)
    adapter = TorchModelAdapter(classifier, input_shape=data.input_shape, num_classes=3, input_range=None)
    result = auditkit.scan(adapter, data, probes=["bias"], budget="fast").probes["bias"]
    slicings = {s["name"]: s for s in result.details["slicings"]}
    for column, low_word, high_word in (("degree", "low", "high"), ("group", "sparse", "dense")):
        groups = {g["values"][column]: g for g in slicings[column]["groups"]}
        worst = min(groups.values(), key=lambda g: g["accuracy"])
        assert worst["values"][column].startswith(low_word)
        best = next(g for label, g in groups.items() if label.startswith(high_word))
        for g in (worst, best):
            low, high = g["accuracy_ci"]
            assert low <= g["accuracy"] <= high
        # the planted gap is beyond sampling noise: the intervals do not overlap
        assert worst["accuracy_ci"][1] < best["accuracy_ci"][0]
    assert result.metrics["worst_group_accuracy"] < result.metrics["overall_accuracy"]
    low_degree = np.char.startswith(data.groups["degree"].astype(str), "low")
    assert low_degree.sum() >= 30  # enough nodes for the interval to mean something


def test_same_seed_same_structure_numbers(karate_model):
    graph, _, classifier = karate_model
    first = _structure(graph, classifier)
    second = _structure(graph, classifier)
    assert first.metrics == second.metrics and first.details["curve"] == second.details["curve"]
