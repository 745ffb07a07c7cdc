"""One intra-op thread for small graph and point-cloud work.

A GCN on a few hundred nodes or a DGCNN on 128-point clouds runs many tiny kernels; handing each
to several threads costs more than it saves, and on a shared, busy machine the spinning threads
slow everything down by an order of magnitude (PRBCD on the 600-node SBM graph: 13.5 s with two
threads under load, 0.4 s with one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``; restore the caller's setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
