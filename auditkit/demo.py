"""``auditkit demo``: train a small CNN on the bundled digits, save it, scan it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from auditkit.data import AuditData
from auditkit.data.builtin import digits
from auditkit.loading import ModelMetadata, save_model
from auditkit.progress import Progress
from auditkit.sizing.threads import one_thread

DIGITS_MEAN = (0.3,)
DIGITS_STD = (0.4,)


class DigitsCNN(nn.Module):
    """A small convolutional network for 1×8×8 digits (≈ 20k parameters)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Normalized(nn.Module):
    """Applies fixed mean/std before ``model`` (how the demo model is trained)."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)




def train_classifier(
    model: nn.Module,
    data: AuditData,
    *,
    epochs: int = 30,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    weight_decay: float = 1e-4,
    progress: Progress | None = None,
) -> nn.Module:
    """Train ``model`` with Adam and cross-entropy; deterministic for a given seed.

    Call it inside ``one_thread()`` for weights that do not depend on the thread count.
    ``progress`` hears of each finished epoch (training the demo takes a minute on a busy
    machine: it must not be silent).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    n = len(data)
    progress = progress or Progress(False)
    for _ in progress.track(range(epochs), total=epochs, description="epochs"):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def digits_metadata() -> ModelMetadata:
    return ModelMetadata(
        input_shape=(1, 8, 8),
        input_range=(0.0, 1.0),
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        class_names=tuple(str(i) for i in range(10)),
        dataset="digits",
        modality="image",
    )


def train_digits_model(
    *, seed: int = 0, epochs: int = 30, progress: Progress | None = None
) -> tuple[nn.Module, AuditData]:
    """The demo's CNN trained on the digits training split; returns (model, audit data).

    The returned model takes normalized inputs; the adapter applies ``DIGITS_MEAN/STD``.
    """
    data = digits()
    assert data.train is not None
    train = data.train
    normalized = AuditData(
        name=train.name, x=(train.x - DIGITS_MEAN[0]) / DIGITS_STD[0], y=train.y,
        modality="image", input_range=None,
    )
    torch.manual_seed(seed)  # the initial weights too: same seed, same model, same audit
    with one_thread():  # and the same model whatever the machine's thread count
        model = train_classifier(
            DigitsCNN(), normalized, epochs=epochs, seed=seed, progress=progress
        )
    return model, data


def build_demo_model(
    path: str | Path, *, seed: int = 0, epochs: int = 30, progress: Progress | None = None
) -> Path:
    """Train the demo CNN and save it as a self-describing torch.export archive.

    With ``progress``, training shows as one more bar (or a line every few seconds in a log).
    """
    progress = progress or Progress(False)
    with progress.session():
        progress.start_probe("training the demo CNN")
        model, data = train_digits_model(seed=seed, epochs=epochs, progress=progress)
        progress.end_probe("training the demo CNN", f"{epochs} epochs")
    return save_model(model, path, example_input=data.x[:2], metadata=digits_metadata())
