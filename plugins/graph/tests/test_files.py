"""Generated files scan with no other flags; tampered files and hostile graph files are refused
in one line (exit 2) without executing anything; the plugin is listed with its distribution."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from auditkit_graph.data import POINT_BOX, SHAPE_CLASSES, shapes
from auditkit_graph.generators import gcn_classifier, save_gcn
from auditkit_graph.models import DGCNN
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.loading.archfile import HEADER_KEY, save_arch_model


@pytest.fixture(scope="module")
def karate_file(tmp_path_factory, karate_model):
    graph, gnn, _ = karate_model
    path = tmp_path_factory.mktemp("karate") / "gcn-karate.safetensors"
    return save_gcn(graph, gnn, path, source="karate", seed=0, hidden=16)


def _invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_generated_gcn_file_scans_with_no_other_flags(karate_file, tmp_path):
    out = tmp_path / "out"
    result = _invoke(["scan", karate_file, "--probes", "performance,graph_structure",
                      "--budget", "fast", "--out", out])
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["model"]["format"] == "auditkit-arch" and audit["data"]["n"] == 30
    assert audit["model"]["adapter"]["graph"]["nodes"] == 34
    structure = audit["probes"]["graph_structure"]
    assert structure["status"] == "passed"
    assert structure["metrics"]["robust_accuracy"] <= structure["metrics"]["clean_accuracy"]
    assert 'data-partial="graph-structure"' in (out / "report.html").read_text()  # the plugin partial


def test_dgcnn_file_scans_with_no_other_flags(tmp_path):
    torch.manual_seed(0)
    model = DGCNN(len(SHAPE_CLASSES), k=6)
    path = save_arch_model(
        model, tmp_path / "dgcnn.safetensors", architecture="dgcnn",
        params={"num_classes": 5, "k": 6},
        metadata={"input_shape": [32, 3], "input_range": list(POINT_BOX),
                  "class_names": list(SHAPE_CLASSES), "modality": "point_cloud"},
        data={"name": "shapes", "params": {"points": 32, "n_per_class": 3, "train_per_class": 1}},
    )
    out = tmp_path / "out"
    result = _invoke(["scan", path, "--probes", "point_cloud", "--budget", "fast", "--out", out])
    assert result.exit_code in (0, 1), result.output  # an untrained net may fail a gate-free check
    audit = json.loads((out / "audit.json").read_text())
    assert audit["data"]["name"] == "shapes" and audit["data"]["n"] == len(shapes(n_per_class=3, train_per_class=1, points=32))
    check = audit["probes"]["point_cloud"]["checks"][0]
    assert check["name"] == "permutation_invariance" and check["status"] == "passed"
    assert 'data-partial="point-cloud"' in (out / "report.html").read_text()


def _tamper(path, mutate):
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    inner = json.loads(header["__metadata__"][HEADER_KEY])
    mutate(inner)
    header["__metadata__"][HEADER_KEY] = json.dumps(inner)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size :])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda h: h["architecture"]["params"].update(num_nodes=35), "do not fit"),
        (lambda h: h["architecture"].update(name="gcn_nodes_v2"), "is not registered"),
        (lambda h: h.update(adapter={"name": "nope"}), "adapter 'nope' is not registered"),
    ],
)
def test_tampered_gcn_file_is_refused_in_one_line(karate_file, tmp_path, mutate, expected):
    path = tmp_path / "tampered.safetensors"
    path.write_bytes(karate_file.read_bytes())
    _tamper(path, mutate)
    result = _invoke(["scan", path, "--probes", "performance", "--out", tmp_path / "out"])
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_graph_pt_executes_nothing(tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "graph.pt"
    torch.save({"x": torch.zeros(3, 2), "payload": _Payload(marker)}, hostile)
    result = _invoke(["generate", "gcn", "--data", hostile, "--out", tmp_path / "out"])
    assert result.exit_code == 2
    assert "refused" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_user_npz_graph_trains_and_audits(tmp_path, sbm_model):
    import numpy as np

    graph, _, _ = sbm_model
    path = tmp_path / "mine.npz"
    np.savez(path, x=graph.x.numpy(), edge_index=graph.edge_index.numpy(), y=graph.y.numpy(),
             train_mask=graph.train_mask.numpy(), test_mask=graph.test_mask.numpy(),
             groups=graph.attributes["group"])
    from auditkit_graph.data import graph_nodes

    data = graph_nodes(source=str(path))
    assert set(data.groups) == {"degree", "group"} and len(data) == int(graph.test_mask.sum())
    broken = tmp_path / "broken.npz"
    np.savez(broken, x=graph.x.numpy(), y=graph.y.numpy())
    result = _invoke(["generate", "gcn", "--data", broken, "--out", tmp_path / "out"])
    assert result.exit_code == 2 and "missing edge_index" in result.output


def test_a_model_trained_on_a_graph_file_never_reads_it_on_its_own_word(tmp_path, sbm_model):
    """The recipe keeps the graph file's name only: scanning without --data is refused in one
    line naming the file and the fix; with --data the plugin reads the user's file as a graph
    (test nodes as examples). A recipe naming an absolute path is not read either."""
    import numpy as np

    graph, gnn, _ = sbm_model
    data = tmp_path / "mine.npz"
    np.savez(data, x=graph.x.numpy(), edge_index=graph.edge_index.numpy(), y=graph.y.numpy(),
             train_mask=graph.train_mask.numpy(), test_mask=graph.test_mask.numpy())
    model = save_gcn(graph, gnn, tmp_path / "gcn-mine.safetensors", source=str(data), seed=0,
                     hidden=16)
    header = json.loads(_header(model)[HEADER_KEY])
    assert header["data"]["params"]["source"] == "mine.npz"  # no folder of the user's disk
    scan = ["scan", model, "--probes", "performance", "--budget", "fast", "--out", tmp_path / "o"]
    refused = _invoke(scan)
    assert refused.exit_code == 2, refused.output
    assert refused.output.count("\n") == 1 and "never reads" in refused.output
    assert "source='mine.npz'" in refused.output and "--data" in refused.output
    assert not (tmp_path / "o").exists()
    done = _invoke([*scan, "--data", data])
    assert done.exit_code in (0, 1), done.output
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["data"]["n"] == int(graph.test_mask.sum())  # the graph's test nodes, as a graph
    hostile = tmp_path / "hostile.safetensors"
    save_arch_model(gcn_classifier(graph, gnn), hostile, architecture="gcn_nodes",
                    params=header["architecture"]["params"],
                    metadata={"input_shape": [int(graph.x.shape[1])], "modality": "graph"},
                    adapter="graph_nodes",
                    data={"name": "graph_nodes", "params": {"source": str(data.resolve())}})
    refused = _invoke(["scan", hostile, *scan[2:-1], tmp_path / "o2"])
    assert refused.exit_code == 2 and "never reads" in refused.output, refused.output


def _header(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()


def test_probes_lists_the_plugin_with_its_distribution():
    result = _invoke(["probes"])
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    for name in ("graph_structure", "point_cloud", "gcn", "dgcnn"):
        assert "auditkit-graph" in rows[name]
