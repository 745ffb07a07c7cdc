"""The search space: small CNNs for images, MLPs for tables, valid by construction.

Every decision is categorical and every decision is always drawn (a flat space), so random
search, NSGA-II and the REINFORCE controller all see the same fixed list of decisions. A
sampled ``params`` dict becomes a canonical *architecture* (only the decisions that matter,
pooling dropped where the feature map is already 1 pixel wide), and the architecture alone
rebuilds the network: saved models need no pickled code.

Example:
    >>> space = search_space("image")
    >>> arch = architecture(space.default(), (1, 8, 8), num_classes=10)
    >>> net = build(arch)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from auditkit.errors import AuditkitInputError

MAX_BLOCKS = 3
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}
COMMON: dict[str, tuple[Any, ...]] = {
    "batch_norm": (False, True),
    "activation": tuple(ACTIVATIONS),
    "dropout": (0.0, 0.1, 0.25, 0.5),
}
IMAGE_DECISIONS: dict[str, tuple[Any, ...]] = {
    "blocks": (1, 2, 3),
    **{f"width_{i}": (8, 16, 32, 64) for i in range(1, MAX_BLOCKS + 1)},
    **{f"kernel_{i}": (3, 5) for i in range(1, MAX_BLOCKS + 1)},
    **{f"pool_{i}": ("none", "max", "avg") for i in range(1, MAX_BLOCKS + 1)},
    **COMMON,
    "classifier": (0, 32, 64, 128),
}
TABLE_DECISIONS: dict[str, tuple[Any, ...]] = {
    "layers": (1, 2, 3),
    **{f"width_{i}": (16, 32, 64, 128, 256) for i in range(1, MAX_BLOCKS + 1)},
    **COMMON,
}


@dataclass(frozen=True)
class SearchSpace:
    """An ordered list of categorical decisions (name → choices) for one kind of network."""

    kind: str  # "cnn" | "mlp"
    decisions: dict[str, tuple[Any, ...]]

    def default(self) -> dict[str, Any]:
        """The first choice of every decision (a valid, small network)."""
        return {name: choices[0] for name, choices in self.decisions.items()}

    def distributions(self) -> dict[str, Any]:
        """The decisions as Optuna distributions (what samplers see)."""
        from optuna.distributions import CategoricalDistribution

        return {name: CategoricalDistribution(list(c)) for name, c in self.decisions.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Draw every decision through an Optuna trial, in the space's order."""
        return {name: trial.suggest_categorical(name, list(c)) for name, c in self.decisions.items()}


def search_space(modality: str) -> SearchSpace:
    """CNNs for ``image`` data, MLPs for everything else (tables, feature vectors)."""
    if modality == "image":
        return SearchSpace("cnn", dict(IMAGE_DECISIONS))
    return SearchSpace("mlp", dict(TABLE_DECISIONS))


def architecture(
    params: Mapping[str, Any], input_shape: Sequence[int], num_classes: int
) -> dict[str, Any]:
    """The canonical, JSON-ready description of the network ``params`` stand for."""
    shape = [int(s) for s in input_shape]
    common = {
        "input_shape": shape,
        "num_classes": int(num_classes),
        "batch_norm": bool(params["batch_norm"]),
        "activation": str(params["activation"]),
        "dropout": float(params["dropout"]),
    }
    if "blocks" in params:
        if len(shape) != 3:
            raise AuditkitInputError(
                f"nas: a CNN needs image inputs of shape (channels, height, width), got {tuple(shape)}"
            )
        height, width = shape[1], shape[2]
        blocks = []
        for i in range(1, int(params["blocks"]) + 1):
            pool = str(params[f"pool_{i}"])
            if pool != "none" and min(height, width) >= 2:
                height, width = height // 2, width // 2
            else:
                pool = "none"  # nothing left to pool: the block keeps its map
            blocks.append(
                {"width": int(params[f"width_{i}"]), "kernel": int(params[f"kernel_{i}"]), "pool": pool}
            )
        return {"kind": "cnn", **common, "blocks": blocks, "classifier": int(params["classifier"])}
    widths = [int(params[f"width_{i}"]) for i in range(1, int(params["layers"]) + 1)]
    return {"kind": "mlp", **common, "widths": widths}


class Standardize(nn.Module):
    """Fixed per-channel (images) or per-feature (tables) standardization, stored as buffers."""

    def __init__(self, features: int, image: bool) -> None:
        super().__init__()
        shape = (features, 1, 1) if image else (features,)
        self.register_buffer("mean", torch.zeros(shape))
        self.register_buffer("std", torch.ones(shape))

    def fit(self, x: torch.Tensor) -> Standardize:
        dims = [0, 2, 3] if x.dim() == 4 else [0]
        self.mean.copy_(x.mean(dim=dims).view_as(self.mean))
        self.std.copy_(x.std(dim=dims).clamp_min(1e-6).view_as(self.std))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class NasNetwork(nn.Module):
    """A child network: standardize → feature blocks → classifier."""

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)
        shape = list(arch["input_shape"])
        act = ACTIVATIONS[arch["activation"]]
        bn, dropout = bool(arch["batch_norm"]), float(arch["dropout"])
        layers: list[nn.Module] = []
        if arch["kind"] == "cnn":
            self.standardize = Standardize(shape[0], image=True)
            channels, height, width = shape
            for block in arch["blocks"]:
                layers.append(nn.Conv2d(channels, block["width"], block["kernel"], padding=block["kernel"] // 2))
                if bn:
                    layers.append(nn.BatchNorm2d(block["width"]))
                layers.append(act())
                if block["pool"] != "none":
                    pool = nn.MaxPool2d if block["pool"] == "max" else nn.AvgPool2d
                    layers.append(pool(2))
                    height, width = height // 2, width // 2
                channels = block["width"]
            features = channels * height * width
            head: list[nn.Module] = [nn.Flatten()]
            if dropout:
                head.append(nn.Dropout(dropout))
            if arch["classifier"]:
                head += [nn.Linear(features, arch["classifier"]), act()]
                features = arch["classifier"]
            head.append(nn.Linear(features, arch["num_classes"]))
        else:
            self.standardize = Standardize(int(torch.tensor(shape).prod()), image=False)
            features = int(torch.tensor(shape).prod())
            layers.append(nn.Flatten())
            for width in arch["widths"]:
                layers.append(nn.Linear(features, width))
                if bn:
                    layers.append(nn.BatchNorm1d(width))
                layers.append(act())
                if dropout:
                    layers.append(nn.Dropout(dropout))
                features = width
            head = [nn.Linear(features, arch["num_classes"])]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.standardize(x)))


def build(arch: Mapping[str, Any]) -> NasNetwork:
    """The network an architecture describes (fresh weights; load a state_dict for trained ones)."""
    return NasNetwork(arch)


def nas_network(**arch: Any) -> NasNetwork:
    """Factory for the ``auditkit.architectures`` entry point: ``nas_network(**architecture)``."""
    return NasNetwork(arch)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
