"""Attack the logits before a final softmax, not the log of its probabilities.

A network whose graph ends in ``softmax`` hands auditkit probabilities; the adapter used to turn
them back into scores as ``log(p.clamp_min(1e-12))``. Where the softmax saturates (the winning
probability rounds to exactly 1.0 in float32), that expression has no gradient, PGD stands still
and the headline reads 35 % robust accuracy where plain PGD on the same network's logits gets
0 %: a masked gradient of our own making. The logits are in the graph, one node before the
output, so the adapter reads them there:

- ``strip_softmax(module)`` returns the same network with its final softmax / log-softmax
  removed (an ``nn.Sequential`` ending in one, or any module ``torch.fx`` can trace, including
  exported programs' ``.module()`` and onnx2torch twins of ONNX graphs), else None;
- ``logits_before_softmax(module, x)`` keeps it only when ``softmax(stripped(x))`` reproduces
  the model's own outputs on real inputs.

Pure black boxes have no graph; ``auditkit.attacks`` attack them on a margin of
log-probabilities (``attacks._base.margin``), which needs no gradient at all.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_FUNCTIONS = {
    torch.softmax, F.softmax, torch.log_softmax, F.log_softmax, torch.Tensor.softmax,
    torch.Tensor.log_softmax,
}
_ATEN = ("_softmax", "softmax", "_log_softmax", "log_softmax")
#: How closely ``softmax(logits)`` must reproduce the model's probabilities.
AGREEMENT = 1e-4


def _is_softmax(node: torch.fx.Node, root: nn.Module) -> bool:
    if node.op == "call_function":
        if node.target in _FUNCTIONS:
            return True
        packet = getattr(node.target, "_overloadpacket", None)
        name = getattr(packet, "__name__", "")
        return name in _ATEN and "aten" in str(getattr(packet, "_qualified_op_name", "aten"))
    if node.op == "call_method":
        return node.target in ("softmax", "log_softmax")
    if node.op == "call_module":
        try:
            sub = root.get_submodule(str(node.target))
        except AttributeError:
            return False
        return isinstance(sub, (nn.Softmax, nn.LogSoftmax)) or type(sub).__name__.startswith(
            ("OnnxSoftmax", "OnnxLogSoftmax")
        )
    return False


def _strip_graph(gm: torch.fx.GraphModule) -> torch.fx.GraphModule | None:
    graph = copy.deepcopy(gm.graph)
    output = next(n for n in graph.nodes if n.op == "output")
    result: Any = output.args[0]
    single = isinstance(result, (tuple, list)) and len(result) == 1
    node = result[0] if single else result
    if not isinstance(node, torch.fx.Node) or not _is_softmax(node, gm):
        return None
    logits = node.args[0] if node.args else node.kwargs.get("input")
    if not isinstance(logits, torch.fx.Node):
        return None
    output.args = (type(result)([logits]) if single else logits,)
    stripped = torch.fx.GraphModule(gm, graph)
    stripped.graph.eliminate_dead_code()  # the softmax node, now unused
    stripped.recompile()
    return stripped


def strip_softmax(module: nn.Module) -> nn.Module | None:
    """``module`` without its final softmax / log-softmax, or None when it has none we can
    find (the original module is not changed)."""
    if isinstance(module, nn.Sequential) and len(module) and isinstance(
        module[-1], (nn.Softmax, nn.LogSoftmax)
    ):
        return module[:-1]
    # A wrapper around a graph (an ONNX twin's output picker, its fixed-batch chunker) strips
    # the graph it holds: tracing through it could fail where the graph alone is readable
    # (onnx2torch's shape arithmetic on a freed batch).
    hook = getattr(module, "without_softmax", None)
    if callable(hook):
        return hook()
    gm = module if isinstance(module, torch.fx.GraphModule) else None
    if gm is None:
        try:
            gm = torch.fx.symbolic_trace(module)
        except Exception:  # data-dependent control flow and the like: no graph to read
            return None
    try:
        return _strip_graph(gm)
    except Exception:
        return None


def logits_before_softmax(
    module: nn.Module, x: torch.Tensor, outputs: torch.Tensor, kind: str
) -> nn.Module | None:
    """The stripped module when ``softmax`` (or ``log_softmax``, for ``kind`` =
    ``log_probabilities``) of its outputs on ``x`` reproduces ``outputs``; else None."""
    stripped = strip_softmax(module)
    if stripped is None:
        return None
    try:
        with torch.no_grad():
            logits = stripped(x)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            logits = logits.float()
            again = (torch.log_softmax if kind == "log_probabilities" else torch.softmax)(
                logits, dim=-1
            )
    except Exception:
        return None
    if again.shape != outputs.shape:
        return None
    if not torch.allclose(again, outputs.float(), atol=AGREEMENT, rtol=AGREEMENT):
        return None
    return stripped
