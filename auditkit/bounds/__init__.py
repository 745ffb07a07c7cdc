"""Bounds for every input auditkit reads that is not a torch model file.

``auditkit.loading.safety`` and ``auditkit.loading.sandbox`` keep the untrusted-file promise for torch formats.
This package extends it to the rest: ONNX graphs (``bounds.onnx``), skops estimators
(``bounds.skops``), data files (``bounds.data``), JSON and TOML text (``bounds.jsontext``:
metadata, architecture headers, policies, audit.json) and the first call of a model whose
code a file can steer (``bounds.trial``, run in the sandbox child). Each check reads declared
sizes and structure only, before anything is allocated, and refuses in one line
(``AuditkitInputError``, exit 2). The loaders call them from one hook line each.
"""

from __future__ import annotations
