"""ONNX files: sniffed from their protobuf bytes, validated before onnxruntime sees them.

An ONNX file is untrusted input, but not code: onnxruntime runs a fixed set of operators and
loads no custom-op library unless the caller registers one (auditkit never does). What can hurt
is size (protobuf is parsed in memory, so files above ``MAX_ONNX_BYTES`` are refused before
parsing) and external data, whose ``location`` may point anywhere on disk: every location must
be a relative path inside the model's folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auditkit._deps import require
from auditkit.errors import AuditkitInputError, one_line
from auditkit.loading.onnx_external import check_external_data, proto_has_external

FORMAT_ONNX = "onnx"
#: Protobuf cannot hold more than 2 GiB in one message; larger models use external data.
MAX_ONNX_BYTES = 2 * 1024**3
METADATA_KEY = "auditkit.json"
#: Single metadata_props keys read when ``auditkit.json`` is absent (JSON or comma-separated).
METADATA_FIELDS = ("input_shape", "input_range", "mean", "std", "class_names", "dataset",
                   "modality")

CORRUPT_ONNX = "{path}: not a valid ONNX model ({reason}); re-export it"
TOO_LARGE = (
    "{path}: {size} bytes is more than an ONNX protobuf can hold ({limit}); export the weights "
    "as external data next to the model"
)
MULTI_INPUT = (
    "{path}: the ONNX graph has {count} inputs ({names}); auditkit audits models with one input "
    "tensor: re-export with the features stacked into one (batch, ...) input"
)
NO_SCORES = (
    "{path}: no ONNX output gives class scores or labels (outputs: {outputs}); auditkit needs "
    "(batch, classes) scores, a ZipMap of probabilities or (batch,) labels"
)

# ModelProto field tags (field number << 3 | wire type) that may follow ir_version.
_MODEL_TAGS = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x4A, 0x52, 0x5A, 0x62, 0x72}


def looks_like_onnx(head: bytes) -> bool:
    """Whether the first bytes are a serialized ONNX ModelProto (ir_version first, as every
    exporter writes it). Cheap: the real validation happens in ``read_onnx``."""
    if len(head) < 3 or head[0] != 0x08:
        return False
    version = head[1]
    return 1 <= version <= 0x7F and head[2] in _MODEL_TAGS


def _reason(exc: BaseException) -> str:
    return one_line(str(exc) or type(exc).__name__, 200)


def read_onnx(path: Path, memory_bytes: int | None = None) -> Any:
    """The validated ``onnx.ModelProto`` of ``path`` (external data checked, not loaded).

    External data is checked (``onnx_external``: inside the model's folder, in range, within
    ``memory_bytes``) before the checker, which resolves it against the model's folder.
    """
    onnx = require("onnx", "auditing ONNX models")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise AuditkitInputError(TOO_LARGE.format(path=path, size=size, limit=MAX_ONNX_BYTES))
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: a damaged or foreign file
        raise AuditkitInputError(CORRUPT_ONNX.format(path=path, reason=_reason(exc))) from None
    if not len(proto.graph.node) or not len(proto.graph.output):
        raise AuditkitInputError(CORRUPT_ONNX.format(path=path, reason="the graph is empty"))
    check_external_data(proto, path, memory_bytes)
    try:
        # The path, not the proto: external data is then looked up next to the model, not in
        # the working directory.
        onnx.checker.check_model(str(path) if proto_has_external(proto) else proto)
    except Exception as exc:
        raise AuditkitInputError(CORRUPT_ONNX.format(path=path, reason=_reason(exc))) from None
    return proto


def metadata_from_props(proto: Any) -> str | None:
    """The model's metadata as auditkit's JSON text, from its ``metadata_props``.

    ``auditkit.json`` holds the whole metadata; otherwise single keys (``input_range``,
    ``mean``, ``std``, ``class_names``, ...) are read, each as JSON or comma-separated values.
    """
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY in props:
        return props[METADATA_KEY]
    found: dict[str, Any] = {}
    for key in METADATA_FIELDS:
        if key not in props:
            continue
        text = props[key]
        try:
            found[key] = json.loads(text)
        except ValueError:
            parts = [p.strip() for p in text.split(",")]
            try:
                found[key] = [float(p) for p in parts]
            except ValueError:
                found[key] = parts if key == "class_names" else text
    return json.dumps(found) if found else None


def embed_metadata(proto: Any, metadata: Any) -> Any:
    """Write auditkit's metadata into an ``onnx.ModelProto`` (``metadata_props``), in place.

    Example:
        >>> proto = onnx.load("model.onnx"); embed_metadata(proto, digits_metadata())
        >>> onnx.save(proto, "model.onnx")   # ``auditkit scan model.onnx`` needs no flags
    """
    onnx = require("onnx", "writing ONNX metadata")
    props = {p.key: p.value for p in proto.metadata_props}
    props[METADATA_KEY] = json.dumps(metadata.to_dict())
    onnx.helper.set_model_props(proto, props)
    return proto


# --- what the graph says about its input and outputs -------------------------------------

_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
                "tensor(float16)": np.float16}
_LABEL_TYPES = ("tensor(int64)", "tensor(int32)", "tensor(string)")


@dataclass
class GraphFacts:
    """Input and output facts read from the graph (no inference run)."""

    input_name: str
    input_dtype: Any
    input_dims: list[int | str | None]  # None or a name: dynamic
    scores_output: str | None = None
    scores_kind: str = "logits"  # logits | probabilities | log_probabilities | zipmap
    labels_output: str | None = None
    num_classes: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def static_batch(self) -> int | None:
        first = self.input_dims[0] if self.input_dims else None
        return first if isinstance(first, int) and first > 0 else None

    @property
    def example_shape(self) -> tuple[int, ...] | None:
        rest = self.input_dims[1:]
        if rest and all(isinstance(d, int) and d > 0 for d in rest):
            return tuple(int(d) for d in rest)
        return None


def _producers(proto: Any) -> dict[str, Any]:
    return {out: node for node in proto.graph.node for out in node.output}


def graph_facts(proto: Any, session: Any, path: Path) -> GraphFacts:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise AuditkitInputError(MULTI_INPUT.format(path=path, count=len(inputs), names=names))
    (inp,) = inputs
    dtype = _FLOAT_TYPES.get(inp.type)
    if dtype is None:
        raise AuditkitInputError(
            f"{path}: the ONNX input {inp.name!r} has type {inp.type}; auditkit feeds float "
            "tensors (float, double or float16)"
        )
    dims = [d if isinstance(d, int) else None for d in inp.shape] if inp.shape else []
    facts = GraphFacts(input_name=inp.name, input_dtype=dtype, input_dims=dims)
    producers = _producers(proto)
    for out in session.get_outputs():
        kind = out.type
        if facts.scores_output is None and kind in _FLOAT_TYPES and len(out.shape or []) == 2:
            facts.scores_output = out.name
            node = producers.get(out.name)
            op = node.op_type if node is not None else ""
            facts.scores_kind = {"Softmax": "probabilities",
                                 "LogSoftmax": "log_probabilities"}.get(op, "logits")
            last = out.shape[-1]
            facts.num_classes = last if isinstance(last, int) and last > 0 else None
        elif facts.scores_output is None and kind.startswith("seq(map("):
            # ZipMap (scikit-learn converters): one {class: probability} dict per example.
            facts.scores_output, facts.scores_kind = out.name, "zipmap"
            node = producers.get(out.name)
            if node is not None:
                for attr in node.attribute:
                    if attr.name in ("classlabels_int64s", "classlabels_strings"):
                        facts.num_classes = len(attr.ints) or len(attr.strings)
        elif facts.labels_output is None and kind in _LABEL_TYPES:
            rank = len(out.shape or [])
            if rank == 1 or (rank == 2 and out.shape[-1] == 1):
                facts.labels_output = out.name
    if facts.scores_output is None and facts.labels_output is None:
        outputs = ", ".join(f"{o.name}: {o.type}" for o in session.get_outputs())
        raise AuditkitInputError(NO_SCORES.format(path=path, outputs=outputs))
    return facts


def make_session(path: Path, device_type: str) -> Any:
    """An onnxruntime session: the CUDA execution provider when asked for and present."""
    ort = require("onnxruntime", "auditing ONNX models")
    providers = ["CPUExecutionProvider"]
    if device_type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings are not the user's business
    try:
        return ort.InferenceSession(str(path.absolute()), sess_options=options, providers=providers)
    except Exception as exc:  # unsupported operator, bad shapes, ...
        raise AuditkitInputError(
            CORRUPT_ONNX.format(path=path, reason=f"onnxruntime cannot run it: {_reason(exc)}")
        ) from None
