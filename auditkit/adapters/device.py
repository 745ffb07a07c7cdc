"""Which device the audit runs on, and how much room it has for a batch.

Kept apart from the adapters because the ONNX adapter and the sizing code ask the same two
questions of the machine, whatever kind of model they hold.
"""

from __future__ import annotations

import torch

from auditkit.errors import AuditkitInputError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable device is bad input."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise AuditkitInputError(
            f"--device {device}: unknown device; use auto, cpu, cuda or cuda:N"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise AuditkitInputError(
                f"--device {device}: no CUDA device is available; use --device cpu"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise AuditkitInputError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) "
                "(cuda:0 …); pick one of them"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise AuditkitInputError(f"--device {device}: MPS is not available; use --device cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise AuditkitInputError(f"--device {device}: unsupported device; use auto, cpu or cuda")
    return resolved


#: Share of the device's free memory one batch may use.
_MEMORY_SHARE = 0.25


def free_memory_bytes(device: torch.device) -> int:
    """Free memory of ``device``: CUDA's free bytes, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30
