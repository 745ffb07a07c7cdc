"""torchrun: one audit across K processes (gloo on CPU, NCCL on GPU); rank 0 writes.

``torchrun --nproc_per_node=K -m auditkit scan model.pt …`` starts K copies of the command.
Each rank loads the model and the data, and the per-example work is split across ranks in whole
batches, round-robin by the batch's position in the audit data (batch b goes to rank
b mod K). A batch is computed exactly as the single process computes it (same members, same
seed derived from its start index), so gathering the per-example results in order gives the
single-process numbers, and every metric equals the single-process run on the same seed. Only
rank 0 writes files (outputs, checkpoints, the cost record) and shows progress; the measured
cost is rank 0's, broadcast, so every rank plans the same work.

Without torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op on one process.

Example:
    >>> state = setup("auto")                 # inside a torchrun-started process
    >>> logits = gather_batches(len(x), 512, lambda s, e: model(x[s:e]))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DistState:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_STATE = DistState()


def state() -> DistState:
    """This process's place in the job (a single process unless ``setup`` joined one)."""
    return _STATE


def is_main() -> bool:
    """True on rank 0 and in a single process: the one that writes and reports."""
    return _STATE.is_main


def launched() -> bool:
    """Whether torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> tuple[DistState, str]:
    """Join the process group torchrun describes in the environment; returns the state and
    the device this rank should use (``cuda:LOCAL_RANK`` for ``auto``/``cuda`` on GPUs)."""
    global _STATE
    if not launched():
        return _STATE, device
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = str(device).startswith("cuda") or (
        str(device) == "auto" and torch.cuda.is_available()
    )
    if wants_cuda and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
        backend = "nccl"
    else:
        device = "cpu" if str(device) == "auto" else device
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    _STATE = DistState(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        backend=backend,
    )
    return _STATE, device


def teardown() -> None:
    """Leave the process group (end of the command)."""
    global _STATE
    if _STATE.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    _STATE = DistState()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (small JSON-like objects: the measured cost)."""
    if not _STATE.active:
        return value
    import torch.distributed as dist

    box = [value if _STATE.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_from(src: int, value: Any) -> Any:
    """``value`` as rank ``src`` holds it, on every rank (small JSON-like objects)."""
    if not _STATE.active:
        return value
    import torch.distributed as dist

    box = [value if _STATE.rank == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def my_batches(n: int, batch_size: int) -> list[int]:
    """Start indices of the batches this rank computes (all of them on one process)."""
    starts = list(range(0, n, batch_size))
    if not _STATE.active:
        return starts
    return starts[_STATE.rank :: _STATE.world_size]


def _comm_device() -> torch.device:
    if _STATE.backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_batches(
    n: int, batch_size: int, compute: Callable[[int, int], torch.Tensor]
) -> torch.Tensor:
    """Run ``compute(start, stop)`` on this rank's batches and return every batch's rows, in
    order, on every rank (CPU tensor). On one process: ``cat(compute(s, s + b) for s …)``.

    Every batch must give rows of the same trailing shape and dtype.
    """
    mine = {s: compute(s, min(s + batch_size, n)).detach().cpu() for s in my_batches(n, batch_size)}
    if not _STATE.active:
        return torch.cat([mine[s] for s in sorted(mine)]) if mine else torch.empty(0)
    import torch.distributed as dist

    # Shapes first (a rank may own no batch), then one padded all_gather of the rows.
    sample = next(iter(mine.values()), None)
    meta = [None] * _STATE.world_size
    dist.all_gather_object(
        meta,
        {
            "rows": sum(len(t) for t in mine.values()),
            "trailing": tuple(sample.shape[1:]) if sample is not None else None,
            "dtype": str(sample.dtype).removeprefix("torch.") if sample is not None else None,
        },
    )
    known = next(m for m in meta if m["trailing"] is not None)
    trailing, dtype = known["trailing"], getattr(torch, known["dtype"])
    longest = max(m["rows"] for m in meta)
    local = (
        torch.cat([mine[s] for s in sorted(mine)])
        if mine
        else torch.empty((0, *trailing), dtype=dtype)
    )
    padded = torch.zeros((longest, *trailing), dtype=dtype)
    padded[: len(local)] = local
    device = _comm_device()
    pieces = [torch.empty_like(padded, device=device) for _ in range(_STATE.world_size)]
    dist.all_gather(pieces, padded.to(device))
    out = torch.empty((n, *trailing), dtype=dtype)
    for rank, piece in enumerate(pieces):
        piece = piece.cpu()
        row = 0
        for s in my_batches_of(rank, n, batch_size):
            stop = min(s + batch_size, n)
            out[s:stop] = piece[row : row + stop - s]
            row += stop - s
    return out


def my_batches_of(rank: int, n: int, batch_size: int) -> list[int]:
    """Start indices of the batches rank ``rank`` computes."""
    return list(range(0, n, batch_size))[rank :: _STATE.world_size]


def predict_logits(adapter, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """The shared clean pass, split across ranks in whole batches and gathered on every rank.

    The batch size must be the same on every rank (it decides which rows go together), so
    rank 0's automatic size is broadcast.
    """
    if not _STATE.active:
        return adapter.predict_logits(x, batch_size=batch_size)
    size = int(broadcast_object(batch_size or adapter.auto_batch_size("forward")))
    return gather_batches(
        len(x), size, lambda s, e: adapter.predict_logits(x[s:e], batch_size=size)
    )
