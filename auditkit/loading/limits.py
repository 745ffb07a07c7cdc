"""Limits and refusal messages for untrusted model files: the lowest room of the checks.

``LoadLimits`` (time, memory, archive ratios, native code) and the one-line messages a refused
file gets (module constants, so tests match them exactly). ``safety``, ``pickles`` and the
``sandbox`` all read them; ``auditkit.loading.safety`` re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from auditkit.errors import AuditkitInputError

GiB = 1 << 30


MiB = 1 << 20


# --- messages (module constants so tests match them exactly) -----------------------------------
NOT_REGULAR = "{path}: not a regular file ({kind})"


DANGLING_LINK = "{path}: a symbolic link to {target}, which does not exist"


UNSAFE_ENTRY = "{path}: archive entry {entry!r} {why}: refused without extracting anything"


NATIVE_CODE = (
    "{path}: the archive carries native code ({what}); loading it would run that code, so "
    "auditkit refused it. Pass --allow-native-code to accept such archives (auditkit audits the "
    "exported program and still never loads the native part)"
)


TOO_BIG = (
    "{path}: {what}, more than the {limit} load limit: refused (raise it with --load-memory if "
    "you trust the file)"
)


BOMB = (
    "{path}: archive entry {entry!r} inflates {ratio:.0f}-fold ({packed} to {unpacked}), a "
    "compression bomb: refused"
)


LYING_SIZES = "{path}: {what}: the file lies about its tensor sizes, refused"


BAD_HEADER = "{path}: the safetensors header is invalid ({why}): refused"


LOAD_TIMEOUT = (
    "{path}: loading took longer than {seconds:g} s: refused (raise the limit with "
    "--load-timeout if you trust the file)"
)


LOAD_MEMORY = (
    "{path}: loading needed more than {limit}: refused (raise the limit with --load-memory if "
    "you trust the file)"
)


LOAD_CRASHED = "{path}: loading it crashed the loader ({how}): refused"


UNREADABLE_PICKLE = "{path}: {entry} is not a readable pickle ({why}); the file is damaged"


NATIVE_SUFFIXES = (".so", ".dll", ".dylib", ".pyd", ".o", ".a", ".lib", ".exe")


AOTI_MARKER = "data/aotinductor/"


# ELF, Mach-O (32/64, both byte orders) and universal binaries.
NATIVE_MAGICS = (
    b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf",
    b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe",
)


@dataclass(frozen=True)
class LoadLimits:
    """What loading an untrusted model file may cost. Raise them only for files you trust.

    Args:
        timeout_s: wall-clock seconds a sandboxed load may take (``--load-timeout``).
        memory_bytes: memory a load may use, and the most an archive may unpack to
            (``--load-memory``, in GB on the command line).
        allow_native_code: accept archives carrying shared objects / AOTInductor packages
            (``--allow-native-code``); auditkit still never loads them.
        max_entries: entries in one archive.
        max_ratio: compression ratio above which an entry is a bomb (entries that unpack to
            less than ``ratio_floor_bytes`` may compress any amount).
        max_metadata_bytes: pickles, JSON configs and safetensors headers are read whole into
            memory; this bounds each.
        max_pickle_objects: objects one pickle may build (a few bytes of pickle can build a
            dict each: 64 MB of them is gigabytes); a state_dict builds ~10 per tensor.
    """

    timeout_s: float = 60.0
    memory_bytes: int = 8 * GiB
    allow_native_code: bool = False
    max_entries: int = 200_000
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * MiB
    max_metadata_bytes: int = 64 * MiB
    max_pickle_objects: int = 2_000_000

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise AuditkitInputError(
                f"--load-timeout {self.timeout_s!r}: use a positive number of seconds, e.g. 60"
            )
        if not self.memory_bytes > 0:
            raise AuditkitInputError(
                f"--load-memory {self.memory_bytes / GiB:g}: use a positive number of GB, e.g. 8"
            )


DEFAULT_LIMITS = LoadLimits()


def human_bytes(n: float) -> str:
    for unit, size in (("GB", GiB), ("MB", MiB), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def with_limits(limits: LoadLimits | None, **changes: Any) -> LoadLimits:
    return replace(limits or DEFAULT_LIMITS, **changes)
