"""graph_structure: accuracy of a node classifier when a few edges are inserted or deleted."""

from auditkit_graph.probes.graph_structure.measure import StructureMeasurement, measure
from auditkit_graph.probes.graph_structure.options import StructureOptions
from auditkit_graph.probes.graph_structure.probe import GraphStructureProbe

__all__ = ["GraphStructureProbe", "StructureMeasurement", "StructureOptions", "measure"]
