"""Progress bars (rich) for anything slow; silent in CI and when stderr is not a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    """A thin facade so probes can report progress without knowing about rich or TTYs."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = interactive() if enabled is None else enabled
        self._rich = None

    @contextmanager
    def session(self) -> Iterator[Progress]:
        if not self.enabled:
            yield self
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as RichProgress

        with RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
        ) as rich:
            self._rich = rich
            try:
                yield self
            finally:
                self._rich = None

    def track(self, items: Iterable[T], *, total: int | None = None, description: str = "") -> Iterator[T]:
        if self._rich is None:
            yield from items
            return
        yield from self._rich.track(items, total=total, description=description)

    def log(self, message: str) -> None:
        if self._rich is not None:
            self._rich.console.log(message)
