"""Loading under guard: what torch does to a checked file happens in here.

A private temporary folder (removed afterwards, also on error, Ctrl-C or SIGTERM) and captured
output, so no torch warning or traceback reaches the terminal before auditkit's line.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Captured:
    """What torch printed, warned or logged while loading (shown with ``--debug``)."""

    text: str = ""


_GUARD_LOCK = threading.RLock()


@contextlib.contextmanager
def private_tempdir() -> Iterator[Path]:
    """A private (0700) temp folder that ``tempfile`` and child processes (``TMPDIR``) use, removed
    afterwards, also on error, Ctrl-C and SIGTERM."""
    folder = Path(tempfile.mkdtemp(prefix="auditkit-load-"))
    saved_env = os.environ.get("TMPDIR")
    saved_tempdir = tempfile.tempdir
    previous_term = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        def _terminate(signum: int, _frame: Any) -> None:
            raise SystemExit(128 + signum)  # unwinds through the finally below

        with contextlib.suppress(ValueError, OSError):
            previous_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        os.environ["TMPDIR"] = str(folder)
        tempfile.tempdir = str(folder)
        yield folder
    finally:
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        tempfile.tempdir = saved_tempdir
        shutil.rmtree(folder, ignore_errors=True)
        if in_main and previous_term is not None:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signal.SIGTERM, previous_term)


@contextlib.contextmanager
def captured_output() -> Iterator[Captured]:
    """Route warnings, torch's log records and anything written to fd 1/2 into a buffer."""
    import logging
    import sys

    captured = Captured()
    buffer = tempfile.TemporaryFile(mode="w+b")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    torch_logger = logging.getLogger("torch")
    saved_fds: list[tuple[int, int]] = []
    saved_propagate = torch_logger.propagate
    caught: list[warnings.WarningMessage] = []
    try:
        for fd, pystream in ((1, sys.stdout), (2, sys.stderr)):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                pystream.flush()
            with contextlib.suppress(OSError):
                saved = os.dup(fd)
                os.dup2(buffer.fileno(), fd)
                saved_fds.append((fd, saved))
        torch_logger.addHandler(handler)
        torch_logger.propagate = False
        with warnings.catch_warnings(record=True) as caught_now:
            warnings.simplefilter("always")
            try:
                yield captured
            finally:
                caught = list(caught_now or [])
    finally:
        torch_logger.removeHandler(handler)
        torch_logger.propagate = saved_propagate
        for pystream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                pystream.flush()
        for fd, saved in saved_fds:
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
                os.close(saved)
        buffer.seek(0)
        text = buffer.read().decode("utf-8", "replace")
        buffer.close()
        lines = "\n".join(f"{w.category.__name__}: {w.message}" for w in caught)
        parts = (text.strip(), stream.getvalue().strip(), lines, captured.text)
        captured.text = "\n".join(part for part in parts if part)


@contextlib.contextmanager
def guarded_load(debug: bool = False) -> Iterator[Captured]:
    """Private temp folder + captured output for everything torch does while loading.

    With ``debug`` the captured output is written to stderr afterwards (also on error).
    Loads are serialized: the temp folder and the file descriptors are process-wide.
    """
    captured: Captured | None = None
    try:
        with _GUARD_LOCK, private_tempdir(), captured_output() as captured:
            yield captured
    finally:
        if debug and captured is not None and captured.text:
            import sys

            sys.stderr.write(f"[auditkit --debug] torch output while loading:\n{captured.text}\n")
