"""Options of the bias probe (interim: the old dict and its checks until auditkit.options lands)."""

from __future__ import annotations

from typing import Any

from auditkit.errors import AuditkitInputError

DEFAULT_N_BOOT = {"fast": 50, "standard": 100, "thorough": 500}

OPTIONS: dict[str, Any] = {
    "sensitive": None,
    "intersections": True,
    "positive_class": None,
    "min_group_size": 30,
    "n_boot": None,
    "confidence": 0.95,
    "max_accuracy_difference": 0.05,
    "max_equalized_odds_difference": 0.10,
    "max_demographic_parity_difference": None,
    "max_robust_accuracy_difference": 0.10,
    "max_ece_difference": 0.05,
    "proxy_slices": "auto",
    "proxy_quantiles": 4,
}


def validate(c: dict[str, Any]) -> None:
    """Reject bad values in ``c`` (in place: splits a comma-separated ``sensitive``)."""
    if not isinstance(c["min_group_size"], int) or c["min_group_size"] < 1:
        raise AuditkitInputError(
            f"--set bias.min_group_size={c['min_group_size']}: must be a positive integer"
        )
    if c["n_boot"] is not None and (not isinstance(c["n_boot"], int) or c["n_boot"] < 10):
        # Fewer resamples cannot estimate a standard error; intervals would be fiction.
        raise AuditkitInputError(
            f"--set bias.n_boot={c['n_boot']}: must be an integer ≥ 10 (bootstrap resamples)"
        )
    if not 0.0 < float(c["confidence"]) < 1.0:
        raise AuditkitInputError(f"--set bias.confidence={c['confidence']}: must be in (0, 1)")
    if c["proxy_slices"] not in ("auto", "always", "never"):
        raise AuditkitInputError(
            f"--set bias.proxy_slices={c['proxy_slices']}: use auto, always or never"
        )
    if not isinstance(c["proxy_quantiles"], int) or c["proxy_quantiles"] < 2:
        raise AuditkitInputError(
            f"--set bias.proxy_quantiles={c['proxy_quantiles']}: must be an integer ≥ 2"
        )
    for key in (k for k in c if k.startswith("max_")):
        if c[key] is not None and float(c[key]) < 0:
            raise AuditkitInputError(f"--set bias.{key}={c[key]}: must be ≥ 0 (or None)")
    if isinstance(c["sensitive"], str):
        c["sensitive"] = [s for s in c["sensitive"].split(",") if s]
