"""Pickles, read without unpickling: a stub unpickler that imports and calls nothing.

Which globals a pickle would import (``pickle_globals``), how many objects it builds, and
whether the storages a ``torch.save`` / TorchScript archive declares match what it stores
(``check_pickled_storages``). The static checks of ``safety`` for the pickled formats.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import IO, Any

from auditkit.errors import AuditkitInputError
from auditkit.loading.limits import DEFAULT_LIMITS, LYING_SIZES, TOO_BIG, LoadLimits, human_bytes

_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexDoubleStorage": 16, "ComplexFloatStorage": 8, "QInt8Storage": 1,
    "QUInt8Storage": 1, "QInt32Storage": 4, "QUInt4x2Storage": 1, "QUInt2x4Storage": 1,
    "UntypedStorage": 1, "ComplexHalfStorage": 4,
}


class _Stub:
    """Stands in for every global a pickle names: it can be called, built and filled, and does
    nothing. Decoding a pickle with it runs no code from the file."""

    qualname = "?"

    def __new__(cls, *_args: Any, **_kwargs: Any) -> _Stub:
        return object.__new__(cls)

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __call__(self, *_args: Any, **_kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, _state: Any) -> None:
        pass

    def __setitem__(self, _key: Any, _value: Any) -> None:
        pass

    def append(self, _value: Any) -> None:
        pass

    def extend(self, _values: Any) -> None:
        pass


class _StubUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.storages: list[tuple[str, str, int]] = []  # (type name, key, declared numel)
        self.globals: list[str] = []

    def find_class(self, module: str, name: str) -> type:
        qualname = f"{module}.{name}"
        self.globals.append(qualname)
        return type("Stub", (_Stub,), {"qualname": qualname})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            kind = getattr(pid[1], "qualname", str(pid[1])).rsplit(".", 1)[-1]
            self.storages.append((kind, str(pid[2]), pid[4]))
        return _Stub()


# Opcodes that build no new object (marks, memo traffic, container filling, singletons).
_NO_NEW_OBJECT = {
    "MARK", "PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET", "MEMOIZE", "POP",
    "POP_MARK", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "STOP", "PROTO",
    "FRAME", "NONE", "NEWTRUE", "NEWFALSE", "BUILD", "DUP", "BINPERSID", "PERSID",
}


def pickle_objects(data: bytes, cap: int) -> int:
    """How many objects the first pickle in ``data`` builds, counting stops past ``cap``.

    ``pickletools.genops`` only decodes opcodes, so counting costs no memory; unpickling a
    pickle that builds millions of objects (torch's own weights-only unpickler included) can
    cost gigabytes.
    """
    import pickletools

    built = 0
    for opcode, _arg, _pos in pickletools.genops(data):
        if opcode.name not in _NO_NEW_OBJECT:
            built += 1
            if built > cap:
                break
    return built


def decode_pickle(data: bytes, *, streams: int = 1) -> _StubUnpickler:
    """Decode a pickle without importing or calling anything; raises what pickle raises.

    ``streams > 1`` reads up to that many pickles one after another (a pre-1.6 torch.save file
    is a magic number, a protocol, system info and then the object, each its own pickle); the
    first stream must decode, later ones stop quietly where the data stops being a pickle.
    """
    unpickler = _StubUnpickler(data)
    unpickler.load()
    for _ in range(streams - 1):
        try:
            unpickler.load()
        except Exception:  # raw storage bytes follow the pickles: not an error
            break
    return unpickler


def check_pickled_storages(
    source: str | Path | IO[bytes], limits: LoadLimits = DEFAULT_LIMITS, *, label: Any = None
) -> None:
    """In a torch.save / TorchScript zip, every storage a pickle declares must match its record.

    torch allocates what the pickle declares; a pickle declaring 2 GiB over an empty record is a
    memory bomb. Pickles that cannot be decoded are left to the loader's own refusal.
    """
    label = label if label is not None else source
    if hasattr(source, "seek"):
        source.seek(0)
    with zipfile.ZipFile(source) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        for name, info in infos.items():
            folder, _, base = name.rpartition("/")
            if base not in ("data.pkl", "constants.pkl") or "/" in folder:
                continue
            if info.file_size > limits.max_metadata_bytes:
                raise AuditkitInputError(TOO_BIG.format(
                    path=label, what=f"pickle {name!r} is {human_bytes(info.file_size)}",
                    limit=human_bytes(limits.max_metadata_bytes),
                ))
            data = zf.read(info)
            try:
                built = pickle_objects(data, limits.max_pickle_objects)
            except Exception:  # not a well-formed pickle: the loader refuses it with the reason
                continue
            if built > limits.max_pickle_objects:
                raise AuditkitInputError(
                    f"{label}: pickle {name!r} builds more than {limits.max_pickle_objects:,} "
                    "objects (a memory bomb; a state_dict builds about 10 per tensor): refused"
                )
            try:
                decoded = decode_pickle(data)
            except Exception:  # damaged or hostile: the safe loader refuses it with the reason
                continue
            records = "data" if base == "data.pkl" else "constants"
            for kind, key, numel in decoded.storages:
                element = _ELEMENT_SIZES.get(kind)
                if element is None or isinstance(numel, bool) or not isinstance(numel, int):
                    raise AuditkitInputError(LYING_SIZES.format(
                        path=label, what=f"{name} declares a storage of unknown type {kind!r}"
                    ))
                record = f"{folder}/{records}/{key}" if folder else f"{records}/{key}"
                declared = numel * element
                stored = infos[record].file_size if record in infos else None
                if numel < 0 or stored is None or declared > stored:
                    held = "no record" if stored is None else f"a {human_bytes(stored)} record"
                    raise AuditkitInputError(LYING_SIZES.format(
                        path=label, what=(
                            f"{name} declares storage {key!r} of {human_bytes(max(declared, 0))} "
                            f"({numel} x {kind}) over {held}"
                        ),
                    ))


_GLOBAL_OPCODES = {"GLOBAL", "INST"}


_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def pickle_globals(data: bytes) -> list[str] | None:
    """The Python names the first pickle stream in ``data`` would import; None if not a pickle.

    ``pickletools.genops`` only decodes opcodes: nothing is imported or called, so this is safe
    on hostile bytes.
    """
    names: list[str] = []
    strings: list[str] = []
    calls = False
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in _GLOBAL_OPCODES:
                names.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
            elif isinstance(arg, str):
                strings.append(arg)
            calls = calls or opcode.name in _CODE_OPCODES
    except Exception:  # any decoding failure means "not a well-formed pickle"
        return None
    if calls and not names:
        names.append("an object constructor")
    return names
