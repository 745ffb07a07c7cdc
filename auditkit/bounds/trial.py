"""Which foreign model files get a trial run in the sandbox child, and what that run does.

``auditkit.loading.sandbox`` trial-loads TorchScript and pre-1.6 pickles in a child process with the
``--load-timeout``/``--load-memory`` limits. ONNX and skops files load no code, but a file can
steer what runs when it is first used: an ONNX ``Loop`` with a trip count of 2^63 runs at the
first inference, onnxruntime constant-folds shapes at session creation, and a skops tree's
predict walks node arrays in C. ``precheck`` runs the static checks (``bounds.onnx``,
``bounds.skops``) in the parent and says whether the file needs the child; in the child,
``first_call`` makes the first inference (ONNX) or predict (skops) on zeros, so a hang or a
bomb is killed there and refused in one line. Graphs without control flow, and estimators
without native tree walkers, are fully checked statically and skip the child.
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
    return False


def first_call(module: Any) -> None:
    """In the sandbox child: the model's first inference on zeros.

    A model that rejects zeros (a pipeline expecting text columns, a fixed input type) is not
    refused here: the audit itself reports that. Only what the child cannot survive (a hang, a
    bomb, a crash) matters, and the parent sees that from outside.
    """
    import numpy as np

    try:
        if hasattr(module, "session") and hasattr(module, "facts"):  # OnnxModel
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
        if any(w in message for w in ("bad_alloc", "out of memory", "Failed to allocate")):
            raise AuditkitInputError(f"first inference ran out of memory ({message})") from None


def warm_imports(fmt: str) -> None:
    """In the child, before the address-space cap: the runtime the format needs (imports are
    not the file's cost, as torch's are not)."""
    try:
        if fmt == "onnx":
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        elif fmt == "skops":
            import sklearn.ensemble  # noqa: F401
            import skops.io  # noqa: F401
    except ImportError:  # the loader says what to install
        pass
