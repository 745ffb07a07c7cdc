"""auditkit-graph: GCN node classifiers and DGCNN point clouds for auditkit (see README.md).

Everything is reached through entry points (pyproject.toml); nothing here is imported by the core.
"""

__version__ = "0.1.0"
