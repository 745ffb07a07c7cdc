"""The graph adapter: node classification presented to the core probes.

Examples are nodes; an input is a node's feature row, and ``NodeClassifier`` (see models.py)
maps a batch of rows to those nodes' logits on the fixed graph it holds. So performance,
calibration (node level), bias (degree tertiles and node attributes as sensitive columns) and
memorization (a re-initialized copy trained on random node labels; the graph stays) run
unchanged, and the core adversarial probe attacks one node's features at a time in the
adapter's box. ``graph_structure`` reaches the graph through ``adapter.node_classifier``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data import AuditData
from auditkit.errors import AuditkitInputError
from auditkit_graph.models import NodeClassifier, receptive_hops


class GraphNodeAdapter(TorchModelAdapter):
    """A ``TorchModelAdapter`` over a ``NodeClassifier`` that also describes its graph."""

    format_suffix = " (graph nodes)"

    @property
    def node_classifier(self) -> NodeClassifier:
        return self.model

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        graph = self.node_classifier
        out["graph"] = {
            "nodes": int(graph.node_features.shape[0]),
            "edges": int(graph.edge_index.shape[1]) // 2,
            "features": int(graph.node_features.shape[1]),
            "receptive_hops": receptive_hops(graph.gnn),
            "example": "one node: its feature row; the row is matched to the nearest stored "
            "node features and evaluated with only that node's features replaced",
        }
        return out


def graph_nodes_adapter(
    model: nn.Module, data: AuditData, *, metadata: Any, device: str, format: str
) -> GraphNodeAdapter:
    """Adapter factory (entry-point group ``auditkit.adapters``, name ``graph_nodes``)."""
    if not isinstance(model, NodeClassifier):
        raise AuditkitInputError(
            f"adapter graph_nodes: expected a NodeClassifier, got a {type(model).__name__}"
        )
    features = int(model.node_features.shape[1])
    if tuple(data.input_shape) != (features,):
        raise AuditkitInputError(
            f"data examples have shape {tuple(data.input_shape)} but the graph's nodes have "
            f"{features} features; pass the graph the model was trained on as --data"
        )
    input_range = metadata.input_range if metadata.input_range is not None else data.input_range
    return GraphNodeAdapter(
        model, input_shape=(features,), num_classes=metadata.num_classes or data.num_classes,
        input_range=input_range, device=device, format=format + GraphNodeAdapter.format_suffix,
    )
