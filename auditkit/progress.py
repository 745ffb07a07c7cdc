"""Progress you can watch: one bar per probe on a terminal, plain lines in CI logs.

Three modes, chosen once per scan:

- ``rich``: stderr is a terminal (and ``CI`` is unset): one bar per probe with the step it is
  in, elapsed time and an estimate of the time left.
- ``lines``: stderr is not a terminal (CI logs, pipes, captured output): one plain line when a
  probe starts and ends, and at most one line every ``interval`` seconds while it works.
- ``off``: ``--quiet``, or the Python API's default (``scan(progress=False)``).

Probes report inner progress through ``context.progress``, without knowing the mode::

    for restart in context.progress.track(range(n), total=n, description="pgd restarts"):
        ...
    context.progress.advance("bootstrap rounds", completed=i, total=n_boot)

Both are cheap no-ops when progress is off. Log lines carry no timestamps or source links.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL = 5.0  # seconds between two progress lines of one probe in "lines" mode


def interactive() -> bool:
    """A person is watching: stderr is a terminal and this is not a CI job."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


class Progress:
    """A thin facade so probes can report progress without knowing about rich or TTYs.

    Args:
        enabled: ``True``/``False`` force progress on/off; ``None`` (default) shows it unless
            ``quiet``. Whether it is a rich display or plain lines depends on the terminal.
        quiet: ``--quiet``: show nothing.
        mode: force ``"rich"``, ``"lines"`` or ``"off"`` (tests, embedding).
        stream: where plain lines go (default: ``sys.stderr`` at the time of writing).
        interval: at most one inner-progress line per this many seconds, per probe.
    """

    def __init__(
        self,
        enabled: bool | None = None,
        *,
        quiet: bool = False,
        mode: str | None = None,
        stream: IO[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if mode is None:
            if quiet or enabled is False:
                mode = "off"
            else:
                mode = "rich" if interactive() else "lines"
        if mode not in ("rich", "lines", "off"):
            raise ValueError(f"progress mode {mode!r}: use rich, lines or off")
        self.mode = mode
        self.stream = stream
        self.interval = interval
        self._rich: Any = None
        self._task: Any = None
        self._probe: str | None = None
        self._position = ""
        self._probe_started = 0.0
        self._step: str | None = None
        self._step_started = 0.0
        self._last_line = 0.0

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    # --- the runner's side -------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Progress]:
        """Around the whole audit: starts (and finally stops) the rich display."""
        if self.mode != "rich":
            yield self
            return
        from rich.console import Console
        from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        with RichProgress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.fields[step]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[eta]}", markup=False),
            console=Console(stderr=True),
            transient=False,
        ) as rich:
            self._rich = rich
            try:
                yield self
            finally:
                self._rich = None
                self._task = None

    def start_probe(self, name: str, index: int = 0, total: int = 0) -> None:
        """A probe begins (``index`` of ``total``, counted from 1)."""
        self._probe, self._step = name, None
        self._position = f"[{index}/{total}] " if total else ""
        self._probe_started = self._step_started = self._last_line = time.perf_counter()
        if self.mode == "rich" and self._rich is not None:
            self._task = self._rich.add_task(
                f"{self._position}{name}", total=None, step="starting", eta=""
            )
        elif self.mode == "lines":
            self._write(f"{self._position}{name}: started")

    def end_probe(self, name: str, status: str, *, reused: bool = False) -> None:
        """A probe finished with ``status`` (``reused``: taken from a checkpoint)."""
        elapsed = time.perf_counter() - self._probe_started
        how = "reused from checkpoint" if reused else f"in {format_duration(elapsed)}"
        if self.mode == "rich" and self._rich is not None and self._task is not None:
            self._rich.update(
                self._task, total=1, completed=1, step=f"{status} {'(reused)' if reused else ''}",
                eta="",
            )
        elif self.mode == "lines":
            self._write(f"{self._position}{name}: {status} {how}")
        self._probe, self._task = None, None

    # --- the probes' side --------------------------------------------------------------
    def advance(self, description: str, completed: int, total: int | None = None) -> None:
        """Inner progress of the running probe: ``completed`` of ``total`` ``description``."""
        if self.mode == "off":
            return
        now = time.perf_counter()
        if description != self._step:
            self._step, self._step_started = description, now
        eta = ""
        if total and completed > 0 and completed < total:
            left = (now - self._step_started) / completed * (total - completed)
            eta = f"~{format_duration(left)} left"
        count = f"{completed}/{total}" if total else str(completed)
        if self.mode == "rich":
            if self._rich is not None and self._task is not None:
                self._rich.update(
                    self._task, total=total or None, completed=completed,
                    step=f"{description} {count}", eta=eta,
                )
            return
        # lines: throttled, so a CI log gets a heartbeat, not a flood.
        if now - self._last_line >= self.interval:
            name = f"{self._position}{self._probe}: " if self._probe else ""
            elapsed = format_duration(now - self._probe_started) if self._probe else ""
            extra = ", ".join(part for part in (f"{elapsed} elapsed" if elapsed else "", eta) if part)
            self._write(f"{name}{description} {count}" + (f" ({extra})" if extra else ""))

    def track(
        self, items: Iterable[T], *, total: int | None = None, description: str = ""
    ) -> Iterator[T]:
        """Iterate ``items`` reporting each finished one through ``advance``."""
        if self.mode == "off":
            yield from items
            return
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        description = description or "steps"
        self.advance(description, 0, total)
        for done, item in enumerate(items, 1):
            yield item
            self.advance(description, done, total)

    def log(self, message: str) -> None:
        """A plain message (no timestamp, no source link); nothing when progress is off."""
        if self.mode == "rich" and self._rich is not None:
            self._rich.console.print(message, highlight=False, markup=False)
        elif self.mode == "lines":
            self._write(message)

    def _write(self, line: str) -> None:
        self._last_line = time.perf_counter()
        stream = self.stream or sys.stderr
        try:
            stream.write(f"auditkit: {line}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not end the audit
            pass
