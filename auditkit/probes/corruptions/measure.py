"""Measure: run the model on corrupted copies of a seeded subset of the audit examples.

Images are mapped from the adapter's input box to [0, 1], corrupted there (``catalog``), mapped
back and clamped to the box, so the model only ever sees inputs it could be handed. Tables are
corrupted column by column (``tabular``). Work is split in fixed batches of ``BATCH`` examples;
each batch draws from its own stream, seeded from the audit seed, the corruption and the batch's
start, and every severity of a batch reuses that stream (common random numbers: severity 3's
noise is severity 1's noise, scaled), so a difference between severities is the severity's, not
the draw's. Under torchrun the batches are shared out across ranks and gathered in order
(``auditkit.distributed.gather_batches``), giving the single process's numbers.

Decides nothing: the result is a ``CorruptionsMeasurement`` that ``judge.py`` reads.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditkit import distributed
from auditkit.functional.calibration import expected_calibration_error
from auditkit.probes.corruptions.baseline import Baseline
from auditkit.probes.corruptions.catalog import IMAGE, IMAGE_CORRUPTIONS, corrupt_image
from auditkit.probes.corruptions.options import CorruptionsOptions
from auditkit.probes.corruptions.tabular import (
    TABLE_CORRUPTIONS,
    TABLE_LEVELS,
    TABLE_MEANING,
    ColumnStats,
    column_stats,
    corrupt_table,
)

#: Examples per corrupted batch. Fixed (not the adapter's batch size), so which examples share
#: a random stream never depends on the device or the number of ranks.
BATCH = 256
#: Images with more values than this go into the gallery as PNG, smaller ones as numbers.
_INLINE_VALUES = 1024


@dataclass
class CorruptionsMeasurement:
    """Everything measured, as plain data; ``judge.judge`` reads nothing else.

    ``accuracy`` / ``confidence``: per corruption, one value per entry of ``severities``.
    ``ece`` / ``pooled_accuracy`` / ``pooled_confidence``: per severity, over every corruption.
    ``levels``: per corruption, what a severity means and its level at each severity.
    ``not_run``: corruptions that could not apply to this data, with why.
    """

    modality: str
    corruptions: list[str]
    severities: list[int]
    n_examples: int
    n_bins: int
    mild_tolerance: float
    clean_accuracy: float
    clean_confidence: float
    clean_ece: float
    accuracy: dict[str, list[float]]
    confidence: dict[str, list[float]]
    ece: list[float]
    pooled_accuracy: list[float]
    pooled_confidence: list[float]
    levels: dict[str, dict[str, Any]]
    not_run: dict[str, str] = field(default_factory=dict)
    baseline: Baseline | None = None
    gallery: list[dict[str, Any]] = field(default_factory=list)
    gallery_severity: int = 3
    seconds: dict[str, float] = field(default_factory=dict)


def image_shape_problem(data) -> str | None:
    """Why image data cannot be corrupted (flat vectors have no height and width), or None."""
    if data.x.dim() < 3:
        return (
            f"image inputs of shape {tuple(data.x.shape[1:])} have no height and width; the "
            "corruptions need (C, H, W) or (H, W) images"
        )
    return None


def _as_images(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(1) if x.dim() == 3 else x


def _box(context) -> tuple[float, float]:
    box = context.adapter.input_range or context.data.input_range
    if box is None:
        box = (float(context.data.x.min()), float(context.data.x.max()))
    low, high = float(box[0]), float(box[1])
    return low, high if high > low else low + 1.0


def chosen_examples(context, n_examples: int | None) -> np.ndarray:
    """A seeded subset of the audit examples, in order."""
    n = len(context.data)
    if n_examples is None or n_examples >= n:
        return np.arange(n)
    pick = context.rng("corruptions/examples").choice(n, size=int(n_examples), replace=False)
    return np.sort(pick)


def measure(
    context, opts: CorruptionsOptions, baseline: Baseline | None = None
) -> CorruptionsMeasurement:
    """Corrupt, predict and tally; leaves per-example probabilities in
    ``context.artifacts["corruptions"]`` (``probabilities[name]``: (N, severities, classes)).
    ``baseline``: the reference audit's table (``baseline.read_baseline``), for mCE."""
    data = context.data
    image = data.modality == "image"
    catalog = IMAGE_CORRUPTIONS if image else TABLE_CORRUPTIONS
    wanted = [c for c in (opts.corruptions or catalog) if c in catalog]
    severities = sorted(set(opts.severities))
    index = chosen_examples(context, opts.n_examples)
    y = data.y[torch.as_tensor(index)]
    x = data.x[torch.as_tensor(index)]
    clean_probs = torch.softmax(context.clean_logits[torch.as_tensor(index)].double(), -1)

    not_run: dict[str, str] = {}
    stats: ColumnStats | None = None
    if image:
        box = _box(context)
        side = int(min(_as_images(data.x).shape[-2:]))
        for name in [c for c in wanted if IMAGE[c].min_side > side]:
            wanted.remove(name)
            not_run[name] = (
                f"the images are {side} px; {name} needs at least {IMAGE[name].min_side} px "
                "to degrade them gradually"
            )
        channels = int(_as_images(data.x).shape[1])
        if "jpeg" in wanted and channels not in (1, 3):
            wanted.remove("jpeg")
            not_run["jpeg"] = f"JPEG encodes grey or RGB images, not {channels} channels"
    else:
        stats = column_stats(data.x, set(data.categories), data.feature_names)
        if "category_swap" in wanted and stats.n_categorical == 0:
            wanted.remove("category_swap")
            not_run["category_swap"] = (
                "the table has no categorical column (text codes, or at most 10 distinct "
                "whole numbers)"
            )

    def corrupt(batch: torch.Tensor, name: str, severity: int, stream: str) -> torch.Tensor:
        generator = context.generator(stream)  # the same stream for every severity
        if not image:
            return corrupt_table(batch, name, severity, stats, generator)
        low, high = box
        unit = ((_as_images(batch) - low) / (high - low)).clamp(0, 1)
        out = corrupt_image(unit, name, severity, generator) * (high - low) + low
        return context.adapter.clamp(out.reshape(batch.shape))

    probabilities: dict[str, torch.Tensor] = {}
    seconds: dict[str, float] = {}
    k = int(context.clean_logits.shape[-1])
    tracked = context.progress.track(wanted, total=len(wanted), description="corruptions")
    for name in tracked:
        started = time.perf_counter()

        def run_batch(start: int, stop: int, name: str = name) -> torch.Tensor:
            batch = x[start:stop].to(context.device)
            rows = []
            for severity in severities:
                corrupted = corrupt(batch, name, severity, f"corruptions/{name}@{start}")
                logits = context.adapter.predict_logits(corrupted)
                rows.append(torch.softmax(logits.double(), -1))
            return torch.stack(rows, dim=1).reshape(stop - start, -1)

        rows = distributed.gather_batches(len(index), BATCH, run_batch)
        probabilities[name] = rows.reshape(len(index), len(severities), k).double()
        seconds[name] = round(time.perf_counter() - started, 4)

    accuracy, confidence = {}, {}
    for name, probs in probabilities.items():
        hits = probs.argmax(-1) == y[:, None]
        accuracy[name] = hits.double().mean(0).tolist()
        confidence[name] = probs.max(-1).values.mean(0).tolist()
    ece, pooled_accuracy, pooled_confidence = [], [], []
    for s in range(len(severities)):
        conf, hits = pooled(probabilities, y, s)
        ece.append(expected_calibration_error(conf, hits, opts.n_bins) if len(conf) else None)
        pooled_accuracy.append(float(hits.mean()) if len(hits) else None)
        pooled_confidence.append(float(conf.mean()) if len(conf) else None)
    clean_conf = clean_probs.max(-1).values.numpy()
    clean_hits = (clean_probs.argmax(-1) == y).numpy()
    context.artifacts["corruptions"] = {
        "indices": index,
        "labels": y.numpy(),
        "severities": severities,
        "probabilities": {n: p.numpy() for n, p in probabilities.items()},
    }
    return CorruptionsMeasurement(
        modality="image" if image else "tabular",
        corruptions=list(probabilities),
        severities=severities,
        n_examples=len(index),
        n_bins=opts.n_bins,
        mild_tolerance=opts.mild_tolerance,
        clean_accuracy=float(clean_hits.mean()),
        clean_confidence=float(clean_conf.mean()),
        clean_ece=expected_calibration_error(clean_conf, clean_hits, opts.n_bins),
        accuracy=accuracy,
        confidence=confidence,
        ece=ece,
        pooled_accuracy=pooled_accuracy,
        pooled_confidence=pooled_confidence,
        levels=describe_levels(list(probabilities), severities, image, data),
        not_run=not_run,
        baseline=baseline,
        gallery=gallery(context, x, y, list(probabilities), opts.gallery_severity, corrupt)
        if image
        else [],
        gallery_severity=opts.gallery_severity,
        seconds=seconds,
    )


def pooled(
    probabilities: dict[str, torch.Tensor], y: torch.Tensor, s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Confidence and correctness of every corruption's predictions at severity position ``s``."""
    if not probabilities:
        return np.zeros(0), np.zeros(0, bool)
    probs = torch.cat([p[:, s] for p in probabilities.values()])
    labels = y.repeat(len(probabilities))
    return probs.max(-1).values.numpy(), (probs.argmax(-1) == labels).numpy()


def describe_levels(names: list[str], severities: list[int], image: bool, data) -> dict:
    side = min(_as_images(data.x).shape[-2:]) if image else 0
    out = {}
    for name in names:
        if image:
            levels = IMAGE[name].levels(side)
            out[name] = {
                "family": IMAGE[name].family,
                "meaning": IMAGE[name].meaning,
                "levels": [round(float(levels[s - 1]), 4) for s in severities],
            }
        else:
            out[name] = {
                "family": "table",
                "meaning": TABLE_MEANING[name],
                "levels": [TABLE_LEVELS[name][s - 1] for s in severities],
            }
    return out


def gallery(context, x, y, names, severity, corrupt) -> list[dict[str, Any]]:
    """One example (the first the model gets right, else the first) under each corruption at
    ``severity``, as [0, 1] pixels or a PNG, with the model's answer."""
    if not names or not len(x):
        return []
    right = np.flatnonzero((context.adapter.predict_logits(x[:64]).argmax(-1) == y[:64]).numpy())
    i = int(right[0]) if len(right) else 0
    one = x[i : i + 1].to(context.device)
    low, high = _box(context)
    shown = [("clean", one)] + [
        (name, corrupt(one, name, severity, f"corruptions/gallery/{name}")) for name in names
    ]
    out = []
    for name, image in shown:
        probs = torch.softmax(context.adapter.predict_logits(image).double(), -1)[0]
        unit = ((_as_images(image)[0].float().cpu() - low) / (high - low)).clamp(0, 1)
        out.append(
            {
                "corruption": name,
                "predicted": int(probs.argmax()),
                "probability": float(probs.max()),
                "true": int(y[i]),
                "image": image_payload(unit),
            }
        )
    return out


def image_payload(unit: torch.Tensor) -> dict[str, Any]:
    """``{"pixels": H×W or H×W×3 lists}`` for small images, ``{"png": data URL}`` beyond
    ``_INLINE_VALUES`` values (the two forms the report's image figures draw)."""
    if unit.shape[0] not in (1, 3):
        unit = unit[:1]
    if unit.numel() <= _INLINE_VALUES:
        pixels = unit[0] if unit.shape[0] == 1 else unit.permute(1, 2, 0)
        return {"pixels": np.round(pixels.numpy().astype(float), 4).tolist()}
    from torchvision.io import encode_png

    png = encode_png((unit * 255).round().to(torch.uint8))
    return {"png": "data:image/png;base64," + base64.b64encode(png.numpy().tobytes()).decode()}
