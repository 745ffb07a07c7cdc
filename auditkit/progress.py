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

Every progress line fits 80 columns (a long step is shortened, never the numbers; messages
such as the sizing plan stay whole); elapsed time is
always shown whole ("12 s", "1 min 05 s"); the estimate of the time left belongs to the step
it is shown beside and is rounded up, so it never says "~0 s" while that step has work left.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL = 5.0  # seconds between two progress lines of one probe in "lines" mode
WIDTH = 80  # columns every progress line fits in ("lines" mode, and rich on an 80-column tty)


def interactive() -> bool:
    """A person is watching: stderr is a terminal and this is not a CI job."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def format_duration(seconds: float) -> str:
    """Whole seconds, or minutes and seconds from one minute on: "0 s", "42 s", "3 min 07 s"."""
    seconds = max(0.0, seconds)
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


def format_eta(seconds: float) -> str:
    """The time a step has left, rounded *up*: work that remains never reads as "~0 s"."""
    return f"~{format_duration(max(1, math.ceil(seconds)))} left"


def fit(line: str, width: int = WIDTH, *, keep: str = "") -> str:
    """``line`` shortened to ``width`` columns by cutting its end with "…", but never ``keep``
    (a tail such as the counts and times, which must stay readable)."""
    if len(line) + len(keep) <= width:
        return line + keep
    room = max(1, width - len(keep) - 1)
    return line[:room].rstrip() + "…" + keep


class Progress:
    """A thin facade so probes can report progress without knowing about rich or TTYs.

    Args:
        enabled: ``True``/``False`` force progress on/off; ``None`` (default) shows it unless
            ``quiet``. Whether it is a rich display or plain lines depends on the terminal.
        quiet: ``--quiet``: show nothing.
        mode: force ``"rich"``, ``"lines"`` or ``"off"`` (tests, embedding).
        stream: where plain lines go (default: ``sys.stderr`` at the time of writing).
        interval: at most one inner-progress line per this many seconds, per probe.
        clock: seconds as a float (tests pass a fake clock; default ``time.perf_counter``).
        width: columns of the rich display when it writes to ``stream`` (default: the
            terminal's).
    """

    def __init__(
        self,
        enabled: bool | None = None,
        *,
        quiet: bool = False,
        mode: str | None = None,
        stream: IO[str] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] | None = None,
        width: int | None = None,
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
        self.width = width
        self._clock = clock
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

    def now(self) -> float:
        return (self._clock or time.perf_counter)()

    # --- the runner's side -------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Progress]:
        """Around the whole audit: starts (and finally stops) the rich display."""
        if self.mode != "rich":
            yield self
            return
        from rich.console import Console
        from rich.progress import Progress as RichProgress

        if self.stream is None:
            console = Console(stderr=True, width=self.width)
        else:
            console = Console(file=self.stream, force_terminal=True, width=self.width)
        with RichProgress(
            *_rich_columns(), console=console, transient=False, get_time=self.now,
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
        self._probe_started = self._step_started = self._last_line = self.now()
        if self.mode == "rich" and self._rich is not None:
            self._task = self._rich.add_task(
                f"{self._position}{name}", total=None, step="starting", count="", eta=""
            )
        elif self.mode == "lines":
            self._write(f"{self._position}{name}", keep=": started")

    def end_probe(self, name: str, status: str, *, reused: bool = False) -> None:
        """A probe finished with ``status`` (``reused``: taken from a checkpoint)."""
        elapsed = self.now() - self._probe_started
        how = "reused from checkpoint" if reused else f"in {format_duration(elapsed)}"
        if self.mode == "rich" and self._rich is not None and self._task is not None:
            self._rich.update(
                self._task, total=1, completed=1, step=f"{status} {'(reused)' if reused else ''}",
                count="", eta="",
            )
        elif self.mode == "lines":
            self._write(f"{self._position}{name}", keep=f": {status} {how}")
        self._probe, self._task = None, None

    # --- the probes' side --------------------------------------------------------------
    def advance(self, description: str, completed: int, total: int | None = None) -> None:
        """Inner progress of the running probe: ``completed`` of ``total`` ``description``."""
        if self.mode == "off":
            return
        now = self.now()
        if description != self._step:
            self._step, self._step_started = description, now
        eta = ""
        if total and 0 < completed < total and now > self._step_started:
            left = (now - self._step_started) / completed * (total - completed)
            eta = format_eta(left)
        count = f"{completed}/{total}" if total else str(completed)
        if self.mode == "rich":
            if self._rich is not None and self._task is not None:
                self._rich.update(
                    self._task, total=total or None, completed=completed,
                    step=description, count=count, eta=eta,
                )
            return
        # lines: throttled, so a CI log gets a heartbeat, not a flood.
        if now - self._last_line >= self.interval:
            # A long probe name gives way to the step, which says what is happening.
            name = fit(f"{self._position}{self._probe}", 34) + ": " if self._probe else ""
            elapsed = format_duration(now - self._probe_started) if self._probe else ""
            extra = ", ".join(part for part in (f"{elapsed} elapsed" if elapsed else "", eta) if part)
            tail = f" {count}" + (f" ({extra})" if extra else "")
            self._write(f"{name}{description}", keep=tail)

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
        """A plain message (no timestamp, no source link); nothing when progress is off.

        A terminal wraps it to its width; in a log it stays one line, whole (a sentence such as
        the sizing plan must be findable with grep, not cut at 80 columns).
        """
        if self.mode == "rich" and self._rich is not None:
            self._rich.console.print(message, highlight=False, markup=False)
        elif self.mode == "lines":
            self._write_whole(message)

    def _write(self, line: str, keep: str = "") -> None:
        """One progress line, ``line`` shortened so that it and ``keep`` fit ``WIDTH``."""
        self._write_whole(fit(f"auditkit: {line}", keep=keep)[len("auditkit: "):])

    def _write_whole(self, line: str) -> None:
        self._last_line = self.now()
        stream = self.stream or sys.stderr
        try:
            stream.write(f"auditkit: {line}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed pipe must not end the audit
            pass


def _rich_columns() -> tuple:
    """The live display's columns, sized for 80: the probe's name and step shrink (with "…"),
    the bar is short, and elapsed and the estimate always show whole."""
    from rich.progress import BarColumn, ProgressColumn, TextColumn
    from rich.table import Column
    from rich.text import Text

    class Times(ProgressColumn):
        """ "12 s" elapsed, then the running step's estimate ("~5 s left") when there is one."""

        def render(self, task) -> Text:
            elapsed = format_duration(task.finished_time if task.finished else task.elapsed or 0)
            eta = task.fields.get("eta") or ""
            return Text(f"{elapsed} {eta}".rstrip(), no_wrap=True)

    def shrinking(field: str, max_width: int) -> TextColumn:
        column = Column(no_wrap=True, overflow="ellipsis", max_width=max_width, ratio=1)
        return TextColumn(field, markup=False, table_column=column)

    def fixed(width: int) -> Column:
        return Column(no_wrap=True, width=width)

    # At most 20 + 6 + 20 + 9 + 27 columns, and a space between two: the name and the step
    # give way first, so the counts and times stay whole at 80 columns.
    return (
        shrinking("{task.description}", 20),
        BarColumn(bar_width=6, table_column=fixed(6)),
        shrinking("{task.fields[step]}", 20),
        TextColumn("{task.fields[count]}", markup=False, justify="right", table_column=fixed(9)),
        Times(table_column=Column(no_wrap=True)),
    )
