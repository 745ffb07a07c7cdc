"""ONNX graphs: declared sizes and structure checked before onnxruntime sees the file.

onnxruntime allocates what a graph declares: an initializer's dims, and at session creation
(constant folding) or first run the output of ``ConstantOfShape``, ``Expand`` or ``Tile`` whose
shape comes from a constant — a 3 kB file can ask for tens of GB. A graph of a million nodes,
or subgraphs nested without end, cost memory and time before a single inference. ``check``
bounds all of these from the parsed protobuf, and ``has_control_flow`` says whether the graph
holds ``Loop``/``Scan``/``If``, whose trip counts only a run reveals: such a graph's first
inference is trial-run in the sandbox child (``auditkit.bounds.trial``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auditkit.bounds import jsontext
from auditkit.errors import AuditkitInputError

#: Nodes in all graphs together (a ResNet-152 export has ~500; a large transformer ~20,000).
MAX_NODES = 200_000
#: Graphs (the main graph and every subgraph of Loop/Scan/If bodies).
MAX_GRAPHS = 10_000
#: Subgraph nesting (a Loop inside an If inside a Loop ... is three).
MAX_NESTING = 16
#: One metadata_props value (auditkit.json is a few hundred bytes).
MAX_METADATA_BYTES = 1 << 20
CONTROL_FLOW = frozenset({"Loop", "Scan", "If", "SequenceMap"})
#: Operators whose output size is read from a constant input (input index of the shape).
_SHAPE_INPUT = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1}

REFUSED = "{path}: the ONNX graph {what}: refused before running it; {fix}"
FIX_EXPORT = "re-export the model, or raise --load-memory for a file you trust"


def _graphs(graph: Any, depth: int = 1) -> Iterator[tuple[Any, int]]:
    """Every graph with its nesting depth, iteratively (a crafted nesting must not recurse)."""
    stack = [(graph, depth)]
    while stack:
        g, d = stack.pop()
        yield g, d
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append((attr.g, d + 1))
                stack.extend((sub, d + 1) for sub in attr.graphs)


def _itemsize(data_type: int) -> int:
    from onnx import helper

    try:
        return max(helper.tensor_dtype_to_np_dtype(data_type).itemsize, 1)
    except Exception:  # strings, unknown types: count a pointer
        return 8


def tensor_bytes(tensor: Any) -> int:
    """What a TensorProto declares: product of dims x element size."""
    return math.prod(max(int(d), 0) for d in tensor.dims) * _itemsize(tensor.data_type)


def _constant_values(graph: Any) -> dict[str, list[int]]:
    """Integer tensors known from the file: initializers and Constant nodes."""
    from onnx import numpy_helper

    found: dict[str, list[int]] = {}

    def take(name: str, tensor: Any) -> None:
        if tensor.data_type in (6, 7) and len(tensor.dims) <= 1 and tensor_bytes(tensor) <= 1024:
            try:
                found[name] = [int(v) for v in numpy_helper.to_array(tensor).reshape(-1)]
            except Exception:  # external or malformed data: not a known constant
                pass

    for init in graph.initializer:
        take(init.name, init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    take(node.output[0], attr.t)
                elif attr.name == "value_ints":
                    found[node.output[0]] = [int(v) for v in attr.ints]
        elif node.op_type == "Identity" and node.input and node.input[0] in found:
            found[node.output[0]] = found[node.input[0]]
    return found


def _metadata(proto: Any, path: Path) -> None:
    for prop in proto.metadata_props:
        size = len(prop.value)
        if size > MAX_METADATA_BYTES:
            raise AuditkitInputError(
                f"{path}: ONNX metadata_props {prop.key[:40]!r} is {size} bytes (at most "
                f"{MAX_METADATA_BYTES}): refused; re-save the metadata with auditkit"
            )
        depth = jsontext.nesting_depth(prop.value)
        if depth > jsontext.MAX_DEPTH:
            raise AuditkitInputError(
                f"{path}: ONNX metadata_props {prop.key[:40]!r} is JSON nested {depth} levels "
                f"deep (at most {jsontext.MAX_DEPTH}): refused; re-save the metadata with auditkit"
            )


def check(proto: Any, path: Path, limits: Any) -> None:
    """Refuse (``AuditkitInputError``, one line) a graph beyond the bounds, before any run."""
    _metadata(proto, path)
    nodes = graphs = 0
    declared = 0
    budget = limits.memory_bytes
    for graph, depth in _graphs(proto.graph):
        graphs += 1
        nodes += len(graph.node)
        if depth > MAX_NESTING:
            raise AuditkitInputError(REFUSED.format(
                path=path, what=f"nests subgraphs {depth} deep (at most {MAX_NESTING})",
                fix="re-export the model"))
        if graphs > MAX_GRAPHS or nodes > MAX_NODES:
            raise AuditkitInputError(REFUSED.format(
                path=path, what=f"has more than {MAX_NODES} nodes or {MAX_GRAPHS} graphs",
                fix="re-export the model"))
        for init in graph.initializer:
            declared += tensor_bytes(init)
        constants = _constant_values(graph)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    declared += tensor_bytes(attr.t)
            index = _SHAPE_INPUT.get(node.op_type)
            if index is None or len(node.input) <= index:
                continue
            shape = constants.get(node.input[index])
            if shape is None:
                continue  # from the input's shape: bounded by what auditkit feeds
            elements = math.prod(max(v, 1) if node.op_type != "ConstantOfShape" else max(v, 0)
                                 for v in shape)
            if node.op_type != "ConstantOfShape" and node.input[0] in constants:
                elements *= max(len(constants[node.input[0]]), 1)
            need = elements * 4
            if need > budget:
                from auditkit.loading.safety import human_bytes

                raise AuditkitInputError(REFUSED.format(
                    path=path, what=(f"has a {node.op_type} node ({node.name or node.output[0]!r})"
                                     f" whose constant shape asks for {elements} elements "
                                     f"({human_bytes(need)}), more than --load-memory "
                                     f"({human_bytes(budget)})"),
                    fix=FIX_EXPORT))
        if declared > budget:
            from auditkit.loading.safety import human_bytes

            raise AuditkitInputError(REFUSED.format(
                path=path, what=(f"declares {human_bytes(declared)} of weights, more than "
                                 f"--load-memory ({human_bytes(budget)})"),
                fix=FIX_EXPORT))


def _varint(data: Any, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _skip(data: Any, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(data, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        length, pos = _varint(data, pos)
        return pos + length
    if wire == 5:
        return pos + 4
    raise ValueError(f"wire type {wire}")


def count_nodes_raw(path: Path) -> int:
    """Nodes of the main graph, counted from the protobuf wire format without parsing it.

    Parsing builds a Python object per node (~350 bytes each): a 10^6-node graph would cost
    hundreds of MB before ``check`` could count them. Damaged bytes count as 0 (the parser
    then words the refusal).
    """
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            pos, end = 0, len(data)
            while pos < end:
                tag, pos = _varint(data, pos)
                if tag == 0x3A:  # ModelProto.graph
                    length, pos = _varint(data, pos)
                    stop, nodes = min(pos + length, end), 0
                    while pos < stop:
                        inner, pos = _varint(data, pos)
                        nodes += inner == 0x0A  # GraphProto.node
                        pos = _skip(data, pos, inner & 7)
                    return nodes
                pos = _skip(data, pos, tag & 7)
        except ValueError:
            return 0
    return 0


def check_file(path: Path) -> None:
    """Before parsing: the main graph's node count from the raw bytes (large files only)."""
    if path.stat().st_size < (1 << 20):
        return  # a small file cannot hold enough nodes to matter; ``check`` counts them
    nodes = count_nodes_raw(path)
    if nodes > MAX_NODES:
        raise AuditkitInputError(REFUSED.format(
            path=path, what=f"has {nodes} nodes (at most {MAX_NODES})", fix="re-export the model"))


def has_control_flow(proto: Any) -> bool:
    """Whether any graph holds Loop/Scan/If: its first run is trial-run in the child."""
    return any(node.op_type in CONTROL_FLOW
               for graph, _ in _graphs(proto.graph) for node in graph.node)
