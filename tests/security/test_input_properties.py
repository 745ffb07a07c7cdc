"""Property-based: the new parsers (ONNX metadata, architecture headers, audit.json for
``report``/``diff``) end in exit 0, 1 or 2, never a traceback (exit 3).

For model files the library-level promise is checked (``AuditkitInputError`` with one line,
or success), which is what the CLI turns into exit 2; audit files go through the CLI itself.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from auditkit.api import resolve_data
from auditkit.cli import app
from auditkit.errors import AuditkitInputError
from auditkit.loading import load_model
from auditkit.loading.safety import LoadLimits

from .input_corpus import _onnx_model, _save, arch_header_file

FAST = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
LIMITS = LoadLimits(timeout_s=10.0, memory_bytes=64 << 20)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)
METADATA_KEYS = ["auditkit.json", "input_shape", "input_range", "mean", "std", "class_names",
                 "dataset", "modality", "other"]
texts = st.one_of(
    json_values.map(json.dumps),
    st.text(max_size=40),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.sampled_from(["NaN", "[Infinity]", '{"mean": [NaN]}', "1,2,3", "/", "../x", "digits",
                     '{"dataset": "/etc"}', '{"input_shape": [-1, 1e300]}']),
)
metadata_fields = st.fixed_dictionaries({
    "input_shape": json_values, "input_range": json_values, "mean": json_values,
    "std": json_values, "class_names": json_values, "dataset": json_values,
})


def _refused_or_loaded(call):
    try:
        return call()
    except AuditkitInputError as exc:
        assert "\n" not in str(exc), str(exc)
        return None


@FAST
@given(props=st.dictionaries(st.sampled_from(METADATA_KEYS), texts, max_size=4),
       whole=st.none() | metadata_fields.map(json.dumps))
@example(props={"mean": "[" * 5000 + "]" * 5000}, whole=None)
@example(props={}, whole='{"dataset": "/", "input_shape": [64]}')
def test_onnx_metadata_loads_or_refuses_in_one_line(tmp_path, props, whole):
    pytest.importorskip("onnxruntime")
    if whole is not None:
        props = {**props, "auditkit.json": whole}
    path = _save(_onnx_model(metadata=props), tmp_path / "m.onnx")
    loaded = _refused_or_loaded(lambda: load_model(path, limits=LIMITS))
    if loaded is not None and loaded.metadata.dataset:
        # The file may name a built-in data set; anything else is refused, never read.
        _refused_or_loaded(lambda: resolve_data(None, loaded.metadata))


headers = st.one_of(
    st.fixed_dictionaries(
        {"auditkit_arch": st.sampled_from([1, 2, "1", None]),
         "architecture": json_values | st.fixed_dictionaries(
             {"name": st.sampled_from(["mlp", "gcn_nodes", "nope", ""]) | st.text(max_size=6),
              "params": json_values})},
        optional={"metadata": json_values, "adapter": json_values, "data": json_values},
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=30),
    st.integers(1, 3000).map(lambda n: '{"auditkit_arch": 1, "architecture": ' + "[" * n
                             + "]" * n + "}"),
)


@FAST
@given(header=headers)
@example(header='{"auditkit_arch": 1, "architecture": {"name": "x"}, "metadata": [NaN]}')
def test_architecture_headers_load_or_refuse_in_one_line(tmp_path, header):
    path = arch_header_file(tmp_path, header, "arch.safetensors")
    _refused_or_loaded(lambda: load_model(path, limits=LIMITS))


@pytest.fixture(scope="module")
def real_audit(tmp_path_factory, demo_model_file):
    out = tmp_path_factory.mktemp("real-audit")
    res = CliRunner().invoke(app, ["scan", str(demo_model_file), "--out", str(out), "--probes",
                                   "performance,calibration", "--budget", "fast", "--device",
                                   "cpu"])
    assert res.exit_code in (0, 1), res.output
    return json.loads((out / "audit.json").read_text())


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            yield from _paths(item, (*prefix, i))


def _mutated(audit, choose, replacement, drop):
    audit = copy.deepcopy(audit)
    paths = [p for p in _paths(audit) if p]
    path = paths[choose % len(paths)]
    parent = audit
    for key in path[:-1]:
        parent = parent[key]
    if drop and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return audit


def _no_internal_error(res):
    assert res.exit_code in (0, 1, 2), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    if res.exit_code == 2:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


raw_texts = st.one_of(
    json_values.map(json.dumps),
    st.integers(1, 5000).map(lambda n: '{"probes": ' + "[" * n + "]" * n + "}"),
    st.sampled_from(["{}", "[]", "NaN", '{"verdict": Infinity}', "", "\x00", "{" * 3]),
)


@FAST
@given(choose=st.integers(0, 10_000), replacement=json_values | st.floats(), drop=st.booleans(),
       whole=st.none() | raw_texts)
@example(choose=3, replacement=float("nan"), drop=False, whole=None)
@example(choose=0, replacement=None, drop=False, whole='{"probes": ' + "[" * 3000 + "]" * 3000 + "}")
def test_report_and_diff_of_any_audit_json_end_in_0_1_or_2(tmp_path, real_audit, choose,
                                                           replacement, drop, whole):
    path = tmp_path / "audit.json"
    if whole is not None:
        path.write_text(whole)
    else:
        path.write_text(json.dumps(_mutated(real_audit, choose, replacement, drop)))
    _no_internal_error(CliRunner().invoke(app, ["report", str(path), "-o",
                                                str(tmp_path / "r.html")]))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(real_audit))
    _no_internal_error(CliRunner().invoke(app, ["diff", str(base), str(path)]))
