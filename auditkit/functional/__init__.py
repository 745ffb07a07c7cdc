"""Pure tensor/array math shared by probes. No I/O, no model calls."""
