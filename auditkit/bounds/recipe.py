"""Architecture recipes: factory arguments bounded before anything is built.

An architecture file (``auditkit.loading.archfile``) names a registered factory and its arguments;
auditkit builds the network on the meta device first and compares its shapes with the stored
weights. A tampered recipe can still make that first build cost without bound: ``layers:
10**6`` loops a million times in the factory, and a factory that allocates outside the meta
device would allocate what ``width: 10**9`` asks for. No honest argument that sizes a network
exceeds the number of weights the file stores (a width, a depth, a class count each give at
least that many weights), so every whole number among the arguments is bounded by it (seeds
excepted). This runs in the parent, before any child: what passes it (a file padded with
weights to justify ``layers: 10**6``) is then built, and run once, only in the sandbox child
(``auditkit.bounds.trial``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError

#: Arguments may always be this large (kernel sizes, point counts of tiny test models).
FLOOR = 1 << 16
#: Most values inspected in one argument tree.
MAX_VALUES = 100_000


def stored_elements(path: Path) -> int:
    """Total elements of the weights a safetensors file stores (from its header only)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118


def check_factory_args(path: Path, name: str, params: Mapping[str, Any]) -> None:
    """Refuse (one line) an argument larger than the file's weights could describe."""
    try:
        bound = max(stored_elements(path), FLOOR)
    except Exception:  # an unreadable file: the loader words that refusal
        return
    stack: list[tuple[str, Any]] = [(k, v) for k, v in params.items()]
    seen = 0
    while stack:
        key, value = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise AuditkitInputError(
                f"{path}: architecture {name!r} has more than {MAX_VALUES} argument values: "
                "refused before building it; re-save the model"
            )
        if isinstance(value, Mapping):
            stack.extend((f"{key}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            if "seed" in key.lower():
                continue
            if abs(value) > bound:
                raise AuditkitInputError(
                    f"{path}: the weights do not fit architecture {name!r} (argument "
                    f"{key}={value} is more than the {bound} weights the file stores could "
                    "describe): refused before building it; the file was altered or is damaged"
                )
