"""Options of the corruptions probe, declared once (type, default, bounds, meaning, budget
defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option
from auditkit.probes.corruptions.catalog import IMAGE_CORRUPTIONS, SEVERITIES
from auditkit.probes.corruptions.tabular import TABLE_CORRUPTIONS

#: The image corruptions a ``fast`` scan keeps: one noise, one blur, one digital, one weather-like.
FAST_CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "contrast", "jpeg")


@dataclass(frozen=True)
class CorruptionsOptions:
    corruptions: tuple[str, ...] | None = option(
        None,
        "corruptions to apply (none: every one for the data's kind, fewer at fast); images: "
        + ", ".join(IMAGE_CORRUPTIONS)
        + "; tables: "
        + ", ".join(TABLE_CORRUPTIONS),
        choices=IMAGE_CORRUPTIONS + TABLE_CORRUPTIONS,
        budgets={"fast": FAST_CORRUPTIONS + TABLE_CORRUPTIONS, "standard": None, "thorough": None},
    )
    severities: tuple[int, ...] = option(
        SEVERITIES,
        "severities to run, 1 (mildest) to 5 (ImageNet-C's scale)",
        minimum=1,
        maximum=5,
        budgets={"fast": (1, 3, 5), "standard": SEVERITIES, "thorough": SEVERITIES},
    )
    n_examples: int | None = option(
        300,
        "audit examples corrupted (a seeded subset; none: all of them)",
        minimum=20,
        budgets={"fast": 200, "standard": 300, "thorough": None},
    )
    baseline: str | None = option(
        None,
        "a baseline model's audit.json with a corruptions result: mCE and relative mCE are "
        "reported against it (RobustBench's reference-model normalisation)",
        path=True,
    )
    mild_tolerance: float = option(
        0.05,
        "largest accepted accuracy drop from clean at the mildest severity run",
        minimum=0.0,
        maximum=1.0,
    )
    n_bins: int = option(15, "equal-width confidence bins for ECE per severity", minimum=1)
    gallery_severity: int = option(
        3, "severity of the one-example-per-corruption gallery", minimum=1, maximum=5
    )
