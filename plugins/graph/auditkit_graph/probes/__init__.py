"""Probes of auditkit-graph: graph_structure and point_cloud (one package each, same rooms)."""
