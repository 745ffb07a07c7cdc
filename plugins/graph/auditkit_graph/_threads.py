"""One intra-op thread for small graph and point-cloud work (auditkit.sizing.threads.one_thread).

A GCN on a few hundred nodes or a DGCNN on 128-point clouds runs many tiny kernels; handing each
to several threads costs more than it saves, and on a shared, busy machine the spinning threads
slow everything down by an order of magnitude (PRBCD on the 600-node SBM graph: 13.5 s with two
threads under load, 0.4 s with one).
"""

from __future__ import annotations

from auditkit.sizing.threads import one_thread

__all__ = ["one_thread"]
