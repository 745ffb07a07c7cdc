"""Hostile inputs beyond torch model files: ONNX, skops, data files and folders, graph files,
architecture headers, policies and audit.json files, all built here at test time.

Each case is a command line (``scan``, ``generate``, ``report``, ``diff``) that must end in
exit 2 with one line naming the problem. Sizes are chosen so that a file that were read as it
declares would cost gigabytes or run for ever; the tests run them under small limits.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

LIMIT_GB = "0.25"  # --load-memory the cases run under (the default is 8)
LIMIT_SECONDS = "3"  # --load-timeout


@dataclass
class Case:
    argv: list[str]  # the command line after ``auditkit``
    needle: str  # what the one-line refusal must name
    sandboxed: bool = False  # refused by the sandbox child (its own time/memory report)
    files: list[Path] = field(default_factory=list)


def peak_rss() -> int:
    """This process's peak resident memory (VmHWM), 0 without /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current size, so that a following peak is the case's own."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --- ONNX ------------------------------------------------------------------------------------


def _onnx_model(extra_nodes=(), extra_inits=(), *, metadata=None, opset=17, output=None):
    """A small valid classifier (x: (N, 64) -> scores: (N, 10)) plus the hostile parts."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((64, 10), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["mm"], name="mm")]
    nodes += list(extra_nodes)
    nodes.append(helper.make_node("Identity", [output or "mm"], ["scores"], name="out"))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        initializer=[weights, *extra_inits],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _ints(name, values):
    from onnx import helper

    return helper.make_tensor(name, 7, [len(values)], values)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _save(model, path: Path) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


def onnx_files(folder: Path) -> dict[str, tuple[Path, str, bool]]:
    """name -> (file, needle, refused in the child)."""
    from onnx import TensorProto, helper

    out: dict[str, tuple[Path, str, bool]] = {}
    meta = {"auditkit.json": json.dumps({"input_shape": [64], "input_range": [0, 16],
                                         "dataset": "digits"})}
    big = [1 << 20, 1 << 20]

    def add(name, model, needle, child=False):
        out[name] = (_save(model, folder / name), needle, child)

    add("onnx-constantofshape-bomb.onnx", _onnx_model(
        [helper.make_node("ConstantOfShape", ["shape"], ["bomb"], name="bomb")],
        [_ints("shape", big)], metadata=meta), "ConstantOfShape")
    add("onnx-expand-bomb.onnx", _onnx_model(
        [helper.make_node("Expand", ["one", "shape"], ["bomb"], name="bomb")],
        [_ints("shape", big), helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
        metadata=meta), "Expand")
    add("onnx-tile-bomb.onnx", _onnx_model(
        [helper.make_node("Tile", ["mm", "reps"], ["bomb"], name="bomb")],
        [_ints("reps", big)], metadata=meta), "Tile")
    constant = helper.make_node(
        "Constant", [], ["shape"], name="c", value=helper.make_tensor("v", 7, [3], [4096] * 3))
    add("onnx-constant-node-bomb.onnx", _onnx_model(
        [constant, helper.make_node("ConstantOfShape", ["shape"], ["bomb"], name="bomb")],
        metadata=meta), "ConstantOfShape")
    huge = TensorProto(name="H", data_type=TensorProto.FLOAT, dims=[1 << 40])
    add("onnx-huge-initializer.onnx", _onnx_model(extra_inits=[huge], metadata=meta),
        "of weights")
    # 200,001 extra nodes, appended as serialized bytes (building them in Python is slow).
    many = _onnx_model(metadata=meta)
    graph = many.graph.SerializeToString()
    node = helper.make_node("Identity", ["mm"], ["mm_copy"]).SerializeToString()
    graph += (b"\x0a" + _varint(len(node)) + node) * 200_001
    many.ClearField("graph")
    path = folder / "onnx-many-nodes.onnx"
    path.write_bytes(many.SerializeToString() + b"\x3a" + _varint(len(graph)) + graph)
    out[path.name] = (path, "nodes", False)
    # If nested 20 deep: each branch holds the next If.
    inner = helper.make_graph([helper.make_node("Identity", ["mm"], ["y0"])], "leaf", [],
                              [helper.make_tensor_value_info("y0", TensorProto.FLOAT, None)])
    leaf = inner
    for depth in range(20):
        node = helper.make_node("If", ["cond"], [f"y{depth + 1}"], then_branch=inner,
                                else_branch=leaf)
        inner = helper.make_graph([node], f"g{depth}", [],
                                  [helper.make_tensor_value_info(f"y{depth + 1}",
                                                                 TensorProto.FLOAT, None)])
    add("onnx-deep-nesting.onnx", _onnx_model(
        list(inner.node), [helper.make_tensor("cond", TensorProto.BOOL, [], [True])],
        metadata=meta), "nests subgraphs")
    deep = "[" * 50_000 + "]" * 50_000
    add("onnx-metadata-deep.onnx", _onnx_model(metadata={"auditkit.json": deep}), "nested")
    add("onnx-metadata-key-deep.onnx", _onnx_model(metadata={**meta, "mean": deep}), "nested")
    add("onnx-metadata-nan.onnx", _onnx_model(metadata={
        "auditkit.json": '{"input_shape": [64], "mean": [NaN], "std": [Infinity]}'}),
        "not a number")
    add("onnx-metadata-huge.onnx", _onnx_model(metadata={**meta, "notes": "x" * (2 << 20)}),
        "bytes")
    add("onnx-dataset-root.onnx", _onnx_model(metadata={"auditkit.json": json.dumps(
        {"input_shape": [64], "dataset": "/"})}), "is never read")
    # A Loop whose trip count is 2^63-1: runs at the first inference.
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    loop = helper.make_node("Loop", ["trips", "go", "mm"], ["looped"], body=body, name="loop")
    add("onnx-loop-forever.onnx", _onnx_model(
        [loop], [helper.make_tensor("trips", TensorProto.INT64, [], [2**63 - 1]),
                 helper.make_tensor("go", TensorProto.BOOL, [], [True])],
        metadata=meta, output="looped"), "longer than", child=True)
    return out


# --- skops -----------------------------------------------------------------------------------


def _fit_tree(kind="tree"):
    from sklearn.datasets import load_digits
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_digits(return_X_y=True)
    x, y = x[:300], y[:300]
    if kind == "forest":
        return RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0).fit(x, y)
    if kind == "hgb":
        return HistGradientBoostingClassifier(max_iter=2, max_depth=3, random_state=0).fit(x, y % 2)
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(x, y)


def _poison_tree(tree, field_name, index, value):
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field_name][index] = value
    state["nodes"] = nodes
    tree.__setstate__(state)


def _poison_neighbours(algorithm: str, change):
    """A fitted k-nearest-neighbours model whose KD or ball tree state ``change`` rewrote."""
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(algorithm=algorithm).fit(*_digits_sample())
    state = list(model._tree.__getstate__())
    state[1], state[2], state[3] = state[1].copy(), state[2].copy(), state[3].copy()
    change(state)
    tree = type(model._tree).__new__(type(model._tree))
    tree.__setstate__(tuple(state))
    model._tree = tree
    return model


def _rewrite_schema(src: Path, dst: Path, change, replace=("", "")) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "schema.json":
                text = json.dumps(change(json.loads(data)))
                data = (text.replace(*replace) if replace[0] else text).encode()
            zout.writestr(info, data)
    return dst


def skops_files(folder: Path) -> dict[str, tuple[Path, str, bool]]:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    out: dict[str, tuple[Path, str, bool]] = {}

    def dump(name, model, needle):
        path = folder / name
        sio.dump(model, path)
        out[name] = (path, needle, False)
        return path

    tree = _fit_tree()
    _poison_tree(tree.tree_, "left_child", 0, 0)  # the root is its own child: loops forever
    dump("skops-tree-self-loop.skops", tree, "node 0 has children")
    tree = _fit_tree()
    _poison_tree(tree.tree_, "right_child", 0, 2**40)  # reads far outside the node array
    dump("skops-tree-out-of-range.skops", tree, "node 0 has children")
    tree = _fit_tree()
    _poison_tree(tree.tree_, "feature", 0, 10**6)
    dump("skops-tree-bad-feature.skops", tree, "splits on feature")
    tree = _fit_tree()
    _poison_tree(tree.tree_, "threshold", 0, float("nan"))
    dump("skops-tree-nan-threshold.skops", tree, "NaN")
    forest = _fit_tree("forest")
    _poison_tree(forest.estimators_[2].tree_, "left_child", 1, 1)
    dump("skops-forest-one-bad-tree.skops", forest, "estimators_[2]")
    # KD and ball trees: children are implicit (2i+1, 2i+2), so "cyclic" cannot be written;
    # every index a query follows can lie instead (each reads out of bounds in C).

    def leaf_to_inner(state):  # the last node claims children beyond the node array
        state[2]["is_leaf"][-1] = 0

    def idx_beyond(state):  # a point index far outside the data
        state[1][0] = 2**40

    def range_beyond(state):  # a node holding points past the end of idx_array
        state[2]["idx_end"][1] = 10**9

    def bounds_short(state):  # bounds for fewer nodes than the tree has
        state[3] = state[3][:, :1].copy()

    for name, algorithm, change, needle in [
        ("skops-kdtree-children-beyond.skops", "kd_tree", leaf_to_inner, "inner node 6"),
        ("skops-kdtree-index-beyond.skops", "kd_tree", idx_beyond, "idx_array names point"),
        ("skops-balltree-range-beyond.skops", "ball_tree", range_beyond, "node 1 holds points"),
        ("skops-balltree-bounds-short.skops", "ball_tree", bounds_short, "node_bounds has shape"),
    ]:
        dump(name, _poison_neighbours(algorithm, change), needle)
    hgb = _fit_tree("hgb")
    predictor = hgb._predictors[0][0]
    predictor.nodes["left"][0] = 2**31 - 1
    dump("skops-hgb-bad-node.skops", hgb, "out of range")
    # One 1 MiB member referenced 400 times under distinct ids: 400 MiB once loaded.
    plain = LogisticRegression(max_iter=500).fit(*_digits_sample())
    plain.extra_ = np.zeros(1 << 17)
    base = dump("skops-base.skops", plain, "")
    del out["skops-base.skops"]

    def many_references(schema):
        node = schema["content"]["content"]["extra_"]
        schema["content"]["content"]["extra_"] = {
            "__class__": "list", "__module__": "builtins", "__loader__": "ListNode",
            "content": [dict(node, __id__=i) for i in range(400)], "__id__": 1}
        return schema

    path = _rewrite_schema(base, folder / "skops-references-bomb.skops", many_references)
    out[path.name] = (path, "references its arrays 404 times", False)

    def deep(schema):
        schema["content"]["content"]["deep_"] = "@DEEP@"
        return schema

    level = '{"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": ['
    nested = level * 500 + "]}" * 500
    path = _rewrite_schema(base, folder / "skops-deep-schema.skops", deep,
                           replace=('"@DEEP@"', nested))
    out[path.name] = (path, "nested", False)
    base.unlink()
    return out


def _digits_sample():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x[:200], y[:200]


# --- data files and folders --------------------------------------------------------------------


def _npy_header(shape, dtype="<f4") -> bytes:
    header = {"descr": dtype, "fortran_order": False, "shape": tuple(shape)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def _npz(path: Path, members: dict[str, bytes], deflate=False) -> Path:
    kind = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", kind) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height; its one IDAT is tiny (decoding would fail,
    but a refusal must come before any decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def data_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file or folder given to ``scan --data``, needle)."""
    out: dict[str, tuple[Path, str]] = {}
    y = _npy(np.zeros(10, np.int64))
    out["data-npz-declared-huge.npz"] = (_npz(folder / "data-npz-declared-huge.npz", {
        "x.npy": _npy_header((1 << 20, 1 << 20)) + b"\x00" * 64, "y.npy": y}),
        "--load-memory")
    out["data-npz-bomb.npz"] = (_npz(folder / "data-npz-bomb.npz", {
        "x.npy": _npy(np.zeros((4096, 8192), np.float32)), "y.npy": y}, deflate=True),
        "compression bomb")
    out["data-npz-object.npz"] = (_npz(folder / "data-npz-object.npz", {
        "x.npy": _npy(np.array([{"a": 1}] * 10, dtype=object)), "y.npy": y}),
        "Python objects")
    expanded = torch.zeros(1).expand(1 << 20, 1 << 12)
    torch.save({"x": expanded, "y": torch.zeros(10, dtype=torch.long)},
               folder / "data-pt-stride0.pt")
    out["data-pt-stride0.pt"] = (folder / "data-pt-stride0.pt", "would expand")
    overlap = torch.zeros((1 << 16) + 63).as_strided((1 << 16, 64), (1, 1))
    torch.save({"x": overlap, "y": torch.zeros(10, dtype=torch.long)},
               folder / "data-pt-overlap.pt")
    out["data-pt-overlap.pt"] = (folder / "data-pt-overlap.pt", "would expand")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 5_000_000  # 40 MB of float64 once read, a few kB of run-length-encoded parquet
    table = pa.table({"f": pa.array(np.zeros(rows)), "label": pa.array(np.zeros(rows, np.int8))})
    pq.write_table(table, folder / "data-rle-bomb.parquet", compression="zstd")
    del table
    out["data-rle-bomb.parquet"] = (folder / "data-rle-bomb.parquet", "rows x 2 columns")
    (folder / "data-empty.csv").write_bytes(b"")
    out["data-empty.csv"] = (folder / "data-empty.csv", "the file is empty; pass a data file")
    bomb = folder / "images-png-bomb"
    (bomb / "cat").mkdir(parents=True)
    (bomb / "cat" / "big.png").write_bytes(_png(40_000, 40_000))
    out["images-png-bomb"] = (bomb, "decompression-bomb limit")
    many = folder / "images-many-near-limit"
    (many / "cat").mkdir(parents=True)
    for i in range(6):  # each below Pillow's limit (89 M pixels); together 6 x 1.3 GB decoded
        (many / "cat" / f"{i}.png").write_bytes(_png(9000, 9000))
    out["images-many-near-limit"] = (many, "its images would need")
    return out


def graph_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (graph file given to ``generate gcn --data``, needle)."""
    out: dict[str, tuple[Path, str]] = {}
    n = 8
    mask = np.ones(n, bool)
    plain = {"edge_index.npy": _npy(np.zeros((2, 4), np.int64)), "y.npy": _npy(np.zeros(n, np.int64)),
             "train_mask.npy": _npy(mask), "test_mask.npy": _npy(mask)}
    out["graph-npz-bomb.npz"] = (_npz(folder / "graph-npz-bomb.npz", {
        **plain, "x.npy": _npy(np.zeros((4096, 8192), np.float32))}, deflate=True),
        "compression bomb")
    out["graph-npz-declared-huge.npz"] = (_npz(folder / "graph-npz-declared-huge.npz", {
        **plain, "x.npy": _npy_header((1 << 20, 1 << 20)) + b"\x00" * 64}), "--load-memory")
    torch.save({"x": torch.zeros(1).expand(1 << 20, 1 << 12),
                "edge_index": torch.zeros(2, 4, dtype=torch.long),
                "y": torch.zeros(n, dtype=torch.long), "train_mask": torch.ones(n, dtype=torch.bool),
                "test_mask": torch.ones(n, dtype=torch.bool)}, folder / "graph-stride0.pt")
    out["graph-stride0.pt"] = (folder / "graph-stride0.pt", "would expand")
    out["graph-edges-beyond.npz"] = (_npz(folder / "graph-edges-beyond.npz", {
        **plain, "edge_index.npy": _npy(np.array([[0, 2**40], [1, 2]], np.int64)),
        "x.npy": _npy(np.zeros((n, 4), np.float32))}), "outside")
    return out


# --- JSON and TOML -----------------------------------------------------------------------------


def text_files(folder: Path) -> dict[str, tuple[Path, str]]:
    out: dict[str, tuple[Path, str]] = {}

    def put(name, text, needle):
        path = folder / name
        path.write_text(text)
        out[name] = (path, needle)

    put("audit-empty.json", "{}", "it is not an audit")
    put("audit-list.json", "[1, 2, 3]", "a JSON object")
    put("audit-deep.json", "[" * 100_000 + "]" * 100_000, "nested 100000 levels")
    put("audit-nan.json", json.dumps({"schema_version": "1", "model": {}, "data": {},
                                      "probes": {}, "verdict": "passed"})[:-1]
        + ', "duration_seconds": NaN}', "NaN (not a number)")
    put("audit-bad-probe.json", json.dumps({
        "schema_version": "1", "model": {}, "data": {}, "verdict": "passed",
        "probes": {"performance": {"name": "performance", "status": "passed",
                                   "metrics": {"accuracy": "high"}}}}),
        "metric performance.accuracy = 'high' is not a number")
    put("policy-deep.toml", "x = " + "[" * 50_000 + "]" * 50_000 + "\n", "nested")
    put("policy-nan.toml", '[gates]\n"performance.accuracy" = nan\n', "not a number")
    return out


def arch_header_file(folder: Path, header_text: str, name: str) -> Path:
    """A safetensors file whose ``auditkit`` metadata (the architecture header) is given."""
    from safetensors.torch import save_file

    path = folder / name
    save_file({"w": torch.zeros(2)}, str(path), metadata={"auditkit": header_text})
    return path


# --- architecture recipes ----------------------------------------------------------------------


def recipe_files(folder: Path, graph_bomb: Path) -> dict[str, tuple[Path, str, bool]]:
    """Architecture files whose recipe asks for huge networks or names a bomb as its data.

    name -> (file, needle, refused by the sandbox child). Absurd arguments are refused before
    any build; arguments the stored weights could justify still build (and run one forward
    pass) only in the child, under --load-timeout/--load-memory.
    """
    import torch
    from auditkit_graph.data import SHAPE_POINTS, karate_graph
    from auditkit_graph.generators import gcn_classifier, train_gcn
    from auditkit_graph.models import dgcnn, gcn_nodes, point_mlp

    from auditkit.loading.archfile import save_arch_model

    out: dict[str, tuple[Path, str, bool]] = {}
    net = point_mlp(num_points=SHAPE_POINTS, num_classes=4, hidden=8)
    for name, params, needle in [
        ("arch-huge-width.safetensors",
         {"num_points": SHAPE_POINTS, "num_classes": 4, "hidden": 10**9}, "hidden=1000000000"),
        ("arch-huge-points.safetensors",
         {"num_points": 10**12, "num_classes": 4, "hidden": 8}, "num_points=1000000000000"),
    ]:
        path = folder / name
        save_arch_model(net, path, architecture="point_mlp", params=params,
                        metadata={"input_shape": [SHAPE_POINTS, 3], "modality": "point_cloud"},
                        data={"name": "shapes", "params": {"points": SHAPE_POINTS}})
        out[name] = (path, needle, False)
    # 10^6 layers, "justified" by a 1 MB padding tensor: the build itself never ends.
    small = {"in_channels": 4, "hidden": 4, "num_classes": 2, "num_nodes": 5, "num_edges": 4}
    padded = gcn_nodes(**small)
    padded.register_buffer("pad", torch.zeros(10**6, dtype=torch.uint8))
    path = folder / "arch-million-layers.safetensors"
    save_arch_model(padded, path, architecture="gcn_nodes", params={**small, "layers": 10**6},
                    metadata={"input_shape": [4], "modality": "graph"})
    out[path.name] = (path, "refused (raise the limit with --load-", True)
    # An honest DGCNN whose declared input is 60,000 points: its first forward pass computes
    # 60,000^2 pairwise distances (14 GB).
    path = folder / "arch-forward-bomb.safetensors"
    save_arch_model(dgcnn(num_classes=4, k=4), path, architecture="dgcnn",
                    params={"num_classes": 4, "k": 4},
                    metadata={"input_shape": [60_000, 3], "modality": "point_cloud"})
    out[path.name] = (path, "needed more than", True)
    # A recipe naming a file as its data (here a compression bomb): never read.
    graph = karate_graph()
    gnn = train_gcn(graph, epochs=1)
    path = folder / "arch-data-bomb.safetensors"
    params = {**small, "in_channels": int(graph.x.shape[1]), "hidden": 16,
              "num_classes": graph.num_classes, "num_nodes": graph.num_nodes,
              "num_edges": int(graph.edge_index.shape[1])}
    save_arch_model(gcn_classifier(graph, gnn), path, architecture="gcn_nodes", params=params,
                    metadata={"input_shape": [int(graph.x.shape[1])], "modality": "graph"},
                    adapter="graph_nodes",
                    data={"name": "graph_nodes", "params": {"source": str(graph_bomb)}})
    out[path.name] = (path, "never reads", False)
    return out
