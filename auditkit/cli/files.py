"""The files a command reads and writes: the --out folder (checked, locked), audits, reports.

Nothing here imports torch: an unwritable --out is one line before any model is loaded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from auditkit.cli._app import fail
from auditkit.errors import one_line


def prepare_out(out: Path) -> None:
    """Make sure the outputs can be written before spending minutes on an audit.

    Nothing is created here: a scan that stops on bad input leaves no empty folder behind.
    """
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file, not a folder; pass a folder (it is created if missing)")
    nearest = out.absolute()
    while not nearest.exists():  # the folder that would hold the new one
        nearest = nearest.parent
    if not nearest.is_dir():
        fail(f"--out {out}: cannot create it, {nearest} is a file; pass another folder")
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as exc:
        fail(f"--out {out}: cannot write in {nearest} ({exc.strerror or exc}); pass a writable folder")


LOCK_NAME = ".auditkit-checkpoint/lock"  # beside the checkpoints it protects
OUT_LOCKED = (
    "--out {out}: another auditkit run (PID {pid}) is writing there; wait for it to finish or "
    "pass another --out"
)


@contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """One run at a time per output folder: a second scan into the same --out exits 2 naming
    the first one's PID (it would overwrite the reports and share checkpoint names).

    The lock is ``flock`` on ``--out/.auditkit-checkpoint/lock``: the kernel drops it when the holder dies,
    even by SIGKILL, so ``--resume`` after a kill is never blocked. A folder this run created
    and left holding only the lock file is removed again.
    """
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not serialized
        yield
        return
    created = not out.exists()
    lock = out / LOCK_NAME
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        fail(f"--out {out}: cannot create it ({exc.strerror or exc}); pass a writable folder")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        fail(OUT_LOCKED.format(out=out, pid=holder))
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        if created and [p.name for p in out.iterdir()] == [lock.parent.name] and [
            p.name for p in lock.parent.iterdir()
        ] == [lock.name]:
            lock.unlink(missing_ok=True)
            with suppress(OSError):
                lock.parent.rmdir()
                out.rmdir()
        handle.close()


def save(result, out: Path) -> dict[str, Path]:
    try:
        from auditkit.outputs import write_outputs

        return write_outputs(result, out)
    except OSError as exc:
        fail(f"--out {out}: could not write the outputs ({exc.strerror or exc})")


def write_text(path: Path, content: str, flag: str) -> None:
    try:
        path.write_text(content, encoding="utf-8")
    except IsADirectoryError:
        fail(f"{flag} {path}: is a directory; pass a file name, e.g. {path / 'report.html'}")
    except FileNotFoundError:
        fail(f"{flag} {path}: folder {path.parent} does not exist; create it or pick another path")
    except OSError as exc:
        fail(f"{flag} {path}: cannot write it ({exc.strerror or exc})")


def load_audit(path: Path):
    """Read an audit.json or exit 2 with one line saying what is wrong."""
    from auditkit.bounds.auditfile import read_audit

    try:
        return read_audit(path)  # bounded JSON, and an audit or refused
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except IsADirectoryError:
        fail(f"{path}: is a directory; pass the audit.json inside it")
    except OSError as exc:
        fail(f"{path}: cannot read it ({exc.strerror or exc})")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        fail(f"{path}: not an auditkit audit.json ({type(exc).__name__}: {one_line(exc, 200)})")
