"""Every input bounded: hostile ONNX, skops, data, graph, architecture, policy and audit files.

Each case runs the command a user would (``scan``, ``generate gcn``, ``report``, ``diff``)
in-process and must end in exit 2 with one line naming the problem, with nothing run, nothing
left in TMPDIR, peak memory measured (far below what the file declares) and within the time
limit. The files are built by ``input_corpus`` at test time.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auditkit import sandbox
from auditkit.cli import app

from .input_corpus import (
    LIMIT_GB,
    LIMIT_SECONDS,
    arch_header_file,
    data_files,
    graph_files,
    onnx_files,
    peak_rss,
    recipe_files,
    reset_peak,
    skops_files,
    text_files,
)

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skops")
pytest.importorskip("pyarrow")

# What one refusal may add to the test process's peak memory: the file's structure and the
# command's own imports, never its declared sizes (the bombs declare 80 MB to 4 TB).
IN_PROCESS_PEAK_BYTES = 64 << 20
SANDBOX_PEAK_BYTES = int(1.6e9) + int(float(LIMIT_GB) * (1 << 30)) + sandbox.HEADROOM_BYTES
SCAN = ["--probes", "performance", "--budget", "fast", "--device", "cpu",
        "--load-memory", LIMIT_GB, "--load-timeout", LIMIT_SECONDS]


def _cases(root: Path, model_file: Path) -> dict[str, tuple[list[str], str, bool]]:
    """name -> (argv after ``auditkit``, needle, refused by the sandbox child)."""
    files = root / "files"
    files.mkdir()
    out = str(root / "out")
    cases: dict[str, tuple[list[str], str, bool]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        foreign = {**onnx_files(files), **skops_files(files)}
        data = data_files(files)
        graphs = graph_files(files)
        texts = text_files(files)
        recipes = recipe_files(files, graphs["graph-npz-bomb.npz"][0])
    for name, (path, needle, child) in foreign.items():
        cases[name] = (["scan", str(path), "--out", out, *SCAN], needle, child)
    for name, (path, needle) in data.items():
        extra = ["--target", "label", "--load-memory", "0.02"] if name.endswith(".parquet") else []
        cases[name] = (["scan", str(model_file), "--data", str(path), "--out", out, *SCAN, *extra],
                       needle, False)
    good = files / "good.npz"
    np.savez(good, x=np.zeros((4, 1, 8, 8), np.float32), y=np.zeros(4, np.int64))
    sidecar = files / "groups.csv"
    sidecar.write_text("path,group\nx,a\n")
    cases["groups-file-with-npz.csv"] = (
        ["scan", str(model_file), "--data", str(good), "--groups-file", str(sidecar), "--out", out,
         *SCAN], "applies to image folders only", False)
    for name, (path, needle) in graphs.items():
        cases[name] = (["generate", "gcn", "--data", str(path), "--epochs", "1", "--out", out],
                       needle, False)
    for name, (path, needle) in texts.items():
        if name.startswith("policy"):
            argv = ["scan", str(model_file), "--policy", str(path), "--out", out, *SCAN]
        elif name == "audit-deep.json":
            argv = ["diff", str(path), str(path)]
        else:
            argv = ["report", str(path), "-o", str(root / "report.html")]
        cases[name] = (argv, needle, False)
    for name, (path, needle, child) in recipes.items():
        cases[name] = (["scan", str(path), "--out", out, *SCAN], needle, child)
    deep = '{"auditkit_arch": 1, "architecture": ' + "[" * 20_000 + "]" * 20_000 + "}"
    for name, text, needle in [
        ("arch-header-deep.safetensors", deep, "nested 20001 levels"),
        ("arch-header-nan.safetensors",
         '{"auditkit_arch": 1, "architecture": {"name": "x"}, "metadata": {"mean": [NaN]}}',
         "not a number"),
    ]:
        path = arch_header_file(files, text, name)
        cases[name] = (["scan", str(path), "--out", out, *SCAN], needle, False)
    return cases


@pytest.fixture(scope="module")
def input_cases(tmp_path_factory, demo_model_file):
    root = tmp_path_factory.mktemp("inputs")
    return root, _cases(root, demo_model_file)


NAMES = [
    "onnx-constantofshape-bomb.onnx", "onnx-expand-bomb.onnx", "onnx-tile-bomb.onnx",
    "onnx-constant-node-bomb.onnx", "onnx-huge-initializer.onnx", "onnx-many-nodes.onnx",
    "onnx-deep-nesting.onnx", "onnx-metadata-deep.onnx", "onnx-metadata-key-deep.onnx",
    "onnx-metadata-nan.onnx", "onnx-metadata-huge.onnx", "onnx-dataset-root.onnx",
    "onnx-loop-forever.onnx",
    "skops-tree-self-loop.skops", "skops-tree-out-of-range.skops", "skops-tree-bad-feature.skops",
    "skops-tree-nan-threshold.skops", "skops-forest-one-bad-tree.skops",
    "skops-hgb-bad-node.skops", "skops-references-bomb.skops", "skops-deep-schema.skops",
    "data-npz-declared-huge.npz", "data-npz-bomb.npz", "data-npz-object.npz",
    "data-pt-stride0.pt", "data-pt-overlap.pt", "data-rle-bomb.parquet", "data-empty.csv",
    "images-png-bomb", "images-many-near-limit", "groups-file-with-npz.csv",
    "graph-npz-bomb.npz", "graph-npz-declared-huge.npz", "graph-stride0.pt",
    "graph-edges-beyond.npz",
    "audit-empty.json", "audit-list.json", "audit-deep.json", "audit-nan.json",
    "audit-bad-probe.json", "policy-deep.toml", "policy-nan.toml",
    "arch-header-deep.safetensors", "arch-header-nan.safetensors",
    "arch-huge-width.safetensors", "arch-huge-points.safetensors", "arch-data-bomb.safetensors",
    "arch-million-layers.safetensors", "arch-forward-bomb.safetensors",
    "skops-kdtree-children-beyond.skops", "skops-kdtree-index-beyond.skops",
    "skops-balltree-range-beyond.skops", "skops-balltree-bounds-short.skops",
]


def test_the_input_corpus_covers_every_surface(input_cases):
    _, cases = input_cases
    assert sorted(cases) == sorted(NAMES)
    assert len(NAMES) >= 30


@pytest.fixture(scope="module")
def warm(input_cases):
    """Import what the commands import once, so that peak memory measures the file alone."""
    root, cases = input_cases
    runner = CliRunner()
    for name in ("data-empty.csv", "audit-empty.json", "graph-edges-beyond.npz",
                 "onnx-metadata-nan.onnx", "skops-tree-bad-feature.skops", "data-pt-overlap.pt",
                 "data-rle-bomb.parquet", "images-png-bomb", "policy-nan.toml",
                 "arch-header-nan.safetensors"):
        runner.invoke(app, cases[name][0])
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_hostile_input_is_refused_in_one_line_within_the_limits(name, input_cases, warm,
                                                                private_tmp):
    root, cases = input_cases
    argv, needle, child = cases[name]
    measured = reset_peak()
    base = peak_rss()
    sandbox.LAST_REPORT.clear()
    res = CliRunner().invoke(app, argv)
    grew = peak_rss() - base
    assert res.exit_code == 2, (name, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith("auditkit: error: "), lines
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.output
    assert not list(private_tmp.iterdir()), f"{name} left files in TMPDIR"
    if child:
        # The child was stopped by a limit: the --load-timeout kill or an allocation refused
        # under --load-memory, by its own account (no stopwatch: a loaded machine skews one).
        report = sandbox.LAST_REPORT[-1]
        assert report.reason in ("timeout", "memory"), report
        assert report.peak_rss_bytes < SANDBOX_PEAK_BYTES, report
        assert "longer than" in lines[0] or "needed more than" in lines[0], lines[0]
    else:
        # Refused before any child, or after a trial that went well (an architecture file's
        # model loads in the child; what its recipe names is refused in-process).
        assert all(r.ok for r in sandbox.LAST_REPORT), f"{name} was refused by the child"
        if measured:
            assert grew < IN_PROCESS_PEAK_BYTES, f"{name}: peak memory grew {grew >> 20} MiB"


def test_generator_flags_are_checked_before_any_work(tmp_path, monkeypatch):
    import auditkit_graph.generators as generators

    def forbidden(*args, **kwargs):
        raise AssertionError("training started before the bad flag was reported")

    monkeypatch.setattr(generators, "load_graph", forbidden)
    monkeypatch.setattr(generators, "shapes", forbidden)
    for argv, needle in [
        (["generate", "gcn", "--epochs", "-5"], "--epochs: -5 is outside 1..100000"),
        (["generate", "gcn", "--hidden", "0"], "--hidden: 0 is outside"),
        (["generate", "gcn", "--seed", "-1"], "--seed: -1 is outside"),
        (["generate", "dgcnn", "--points", "4", "--k", "8"], "--k: 8 must be below --points"),
        (["generate", "dgcnn", "--epochs", "many"], "'many' is not a whole number"),
    ]:
        res = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, res.output
        assert res.stderr.strip().count("\n") == 0 and needle in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()


def test_a_real_audit_still_renders_and_diffs(tmp_path, demo_model_file):
    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["scan", str(demo_model_file), "--out", str(out),
                                   "--probes", "performance", "--budget", "fast",
                                   "--device", "cpu"])
    assert res.exit_code in (0, 1), res.output
    audit = out / "audit.json"
    res = CliRunner().invoke(app, ["report", str(audit), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.html").stat().st_size > 1000
    res = CliRunner().invoke(app, ["diff", str(audit), str(audit)])
    assert res.exit_code == 0, res.output
    assert json.loads(audit.read_text())["verdict"] in ("passed", "failed")
