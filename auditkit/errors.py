"""Errors users see. Messages are module constants so tests can match them exactly.

Every ``AuditkitInputError`` becomes one line on stderr and exit code 2 in the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence


class AuditkitError(Exception):
    """Base class for auditkit's own errors."""


class AuditkitInputError(AuditkitError):
    """Bad input from the user: unreadable or unsafe model, bad data, bad flags or policy.

    The message names the problem and the fix in one line.
    """


class MissingDependencyError(AuditkitInputError):
    """An optional dependency is needed; the message gives the exact pip command."""


def one_line(text: object, limit: int = 300) -> str:
    """Collapse a (possibly multi-line, third-party) message into one short line for stderr."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


EMPTY_FILE = "{path}: the file is empty; re-export the model (auditkit.save_model or torch.export.save)"
NOT_FOUND = "{path}: no such file"
NOT_A_FILE = "{path}: is a directory, not a model file"
UNKNOWN_FORMAT = (
    "{path}: not a model file auditkit can read (expected a torch.export archive, TorchScript, "
    "a state_dict/safetensors with --arch, ONNX, a scikit-learn skops file, or a pickled "
    "module with --unsafe-pickle)"
)
CORRUPT_ARCHIVE = "{path}: the model archive is truncated or corrupt ({reason}); re-export it"
PICKLE_REFUSED = (
    "{path}: this file is a pickled Python object ({what}); loading it could run arbitrary code, "
    "so auditkit refused it without executing anything. Re-save it with auditkit.save_model / "
    "torch.export.save, or pass --unsafe-pickle if you trust its author"
)
NEEDS_ARCH = (
    "{path}: this file holds only weights ({kind}); pass --arch (e.g. torchvision:resnet18 or "
    "package.module:factory) so auditkit can build the network"
)
SHAPE_MISMATCH = (
    "data examples have shape {data_shape} but the model expects {model_shape}; "
    "pass matching --data, or --input-shape to override the embedded metadata"
)
SENSITIVE_INPUTS_HINT = (
    "; pass --keep-sensitive-features if the model takes the sensitive columns ({columns}) as "
    "inputs"
)
SENSITIVE_NOT_INPUTS_HINT = (
    "; the model does not take the sensitive columns ({columns}) as inputs: drop "
    "--keep-sensitive-features"
)


def shape_mismatch(
    data_shape: tuple[int, ...],
    model_shape: tuple[int, ...],
    *,
    sensitive: Sequence[str] = (),
    sensitive_kept: bool = False,
) -> str:
    """SHAPE_MISMATCH, pointing at --keep-sensitive-features when the widths say it is the fix.

    A table loaded without its sensitive columns is exactly ``len(sensitive)`` features narrower
    than a model trained with them (and wider when they were kept for a model without them);
    ``--input-shape`` would be the wrong advice there.
    """
    message = SHAPE_MISMATCH.format(data_shape=tuple(data_shape), model_shape=tuple(model_shape))
    if sensitive and len(data_shape) == 1 and len(model_shape) == 1:
        gap = int(model_shape[0]) - int(data_shape[0])
        columns = ", ".join(sensitive)
        if gap == len(sensitive) and not sensitive_kept:
            return message + SENSITIVE_INPUTS_HINT.format(columns=columns)
        if -gap == len(sensitive) and sensitive_kept:
            return message + SENSITIVE_NOT_INPUTS_HINT.format(columns=columns)
    return message


EXPORT_PAYLOAD_REFUSED = (
    "{path}: this torch.export archive embeds pickled Python objects ({what}); loading them could "
    "run arbitrary code, so auditkit refused it without executing anything. Re-export it with "
    "plain tensors, or pass --unsafe-pickle if you trust its author"
)
BAD_ARCH = "--arch {arch!r}: {reason}"
BAD_METADATA = (
    "{path}: the embedded auditkit metadata is malformed ({reason}); re-save the model with "
    "auditkit.save_model{override}"
)
STATE_DICT_MISMATCH = "--arch {arch}: the weights do not fit this architecture ({reason})"
