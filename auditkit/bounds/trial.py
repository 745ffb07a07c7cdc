"""Which model files get a trial run in the sandbox child, and what that run does.

``auditkit.loading.sandbox`` trial-loads TorchScript and pre-1.6 pickles in a child process with the
``--load-timeout``/``--load-memory`` limits. ONNX, skops and architecture files load no code, but
a file can steer what runs when it is first used: an ONNX ``Loop`` with a trip count of 2^63 runs
at the first inference, onnxruntime constant-folds shapes at session creation, a skops tree's
predict walks node arrays in C, and an architecture file's recipe chooses the arguments of a
registered factory (``layers``, widths) and the input shape its first forward pass sees (a
point-cloud network's pairwise distances grow with the square of the points).
``precheck`` runs the static checks (``bounds.onnx``, ``bounds.skops``, ``bounds.recipe``) in the
parent and says whether the file needs the child; in the child, ``first_call`` makes the first
inference (ONNX), predict (skops) or forward pass (architecture files) on zeros, so a hang or a
bomb is killed there and refused in one line. Graphs without control flow, and estimators
whose trees are validated, are fully checked statically and skip the child; an architecture file
always costs one child (a process start, measured in ``benchmarks/bench_input_checks.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError, one_line


def precheck(path: Path, fmt: str, limits: Any) -> bool:
    """Static checks of an ONNX or skops file; True when its first use runs in the child."""
    if fmt == "onnx":
        from auditkit._deps import require
        from auditkit.bounds import onnx as onnx_bounds

        onnx = require("onnx", "auditing ONNX models")
        from auditkit.loading.onnx import MAX_ONNX_BYTES

        if path.stat().st_size > MAX_ONNX_BYTES:
            return False  # read_onnx says so, in its own words
        onnx_bounds.check_file(path)  # node count from the raw bytes, before parsing
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception:  # read_onnx words the refusal of a damaged file
            return False
        onnx_bounds.check(proto, path, limits)
        return onnx_bounds.has_control_flow(proto)
    if fmt == "skops":
        from auditkit.bounds import skops as skops_bounds

        return skops_bounds.needs_trial(skops_bounds.check_file(path, limits))
    if fmt == "safetensors":
        from auditkit.bounds.recipe import check_factory_args
        from auditkit.loading import archfile

        header = archfile.read_header(path)  # a malformed header: one line, no child needed
        if header is None:
            return False  # plain weights: nothing in the file chooses what runs
        arch = header["architecture"]
        check_factory_args(path, arch["name"], arch["params"])  # absurd arguments: no child
        return True
    return False


def first_call(loaded: Any) -> None:
    """In the sandbox child: the model's first inference on zeros (``loaded``: a LoadedModel).

    A model that rejects zeros (a pipeline expecting text columns, a fixed input type) is not
    refused here: the audit itself reports that. Only what the child cannot survive (a hang, a
    bomb, a crash) matters, and the parent sees that from outside.
    """
    import numpy as np

    module = loaded.module
    try:
        if loaded.format == ARCH_FORMAT:
            _first_forward(module, loaded.metadata.input_shape)
        elif hasattr(module, "session") and hasattr(module, "facts"):  # OnnxModel
            facts = module.facts
            dims = [d if isinstance(d, int) and d > 0 else 1 for d in facts.input_dims] or [1]
            feed = np.zeros(dims, dtype=facts.input_dtype)
            module.session.run(None, {facts.input_name: feed})
        elif hasattr(module, "estimator"):  # SklearnModel
            estimator = module.estimator
            n = int(getattr(estimator, "n_features_in_", 0) or 0)
            if n > 0:
                estimator.predict(np.zeros((1, n)))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001  (see the docstring)
        message = one_line(exc, 200)
        if any(w in message for w in MEMORY_WORDS):
            raise AuditkitInputError(f"first inference ran out of memory ({message})") from None


#: ``LoadedModel.format`` of an architecture file (``auditkit.loading.archfile.FORMAT_NAME``).
ARCH_FORMAT = "auditkit-arch"
#: How allocators word a refused allocation (onnxruntime, libstdc++, torch's CPU allocator).
MEMORY_WORDS = ("bad_alloc", "out of memory", "Failed to allocate", "can't allocate memory")


def _first_forward(module: Any, input_shape: Any) -> None:
    """One forward pass of a rebuilt architecture on a zero example of the declared shape."""
    import torch

    if not input_shape:
        return  # nothing says what one example is: the audit's own data will
    with torch.no_grad():
        module(torch.zeros(1, *(int(d) for d in input_shape)))


def warm_imports(fmt: str, path: str | None = None) -> None:
    """In the child, before the address-space cap: the runtime the format needs (imports are
    not the file's cost, as torch's are not). For an architecture file that includes the plugin
    providing its factory (PyTorch Geometric for a graph network)."""
    try:
        if fmt == "safetensors" and path is not None:
            _warm_architecture(path)
        elif fmt == "onnx":
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        elif fmt == "skops":
            import sklearn.ensemble  # noqa: F401
            import skops.io  # noqa: F401
    except ImportError:  # the loader says what to install
        pass


def _warm_architecture(path: str) -> None:
    from auditkit.loading import archfile
    from auditkit.registry import ARCHITECTURE_GROUP, iter_entry_points

    try:
        header = archfile.read_header(path)
    except AuditkitInputError:
        return  # the load itself refuses it, in its own words
    if header is None:
        return
    name = header["architecture"]["name"]
    for entry in iter_entry_points(ARCHITECTURE_GROUP):
        if entry.name == name:
            try:
                entry.load()
            except Exception:  # noqa: BLE001  (a broken plugin: the load says so)
                pass
            return
