"""The ``.npz`` container shared by the instance and solution files.

A zip of ``.npy`` members (numpy, Julia's NPZ, MATLAB, Rust's ``ndarray-npy``):
member ``header`` is the JSON document as UTF-8 bytes (a ``uint8`` array) and the
other members are the arrays it refers to as ``"npz:<member>"``. No pickles.
Arrays are read straight from the file into their final buffer (no copy of the
file's bytes first), so reading costs one array's memory.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from .atomic import atomic_write

HEADER = "header"


def is_npz(path: Path, what: str) -> bool:
    """Whether ``path`` is a zip (``.npz``) file, by its first bytes, not its suffix."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"PK"
    except FileNotFoundError:
        raise InputError(what, "does not exist", str(path)) from None
    except OSError as exc:
        raise InputError(what, f"cannot be read ({exc.strerror})", str(path)) from None


def write_npz(path: str | os.PathLike, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``header`` and ``arrays`` atomically, members stored uncompressed.

    Uncompressed on purpose: gating weights are full-mantissa floats (zlib saves
    ~6%) and a selection is already one bit per (token, expert) pair, while
    deflating costs more than solving at 32 768 tokens. Readers accept compressed
    members too (files written before this choice).
    """
    members = {HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **members)
    return atomic_write(path, write)


def read_npz(path: Path, kind: str, members: tuple[str, ...]) -> tuple[bytes, dict]:
    """The header bytes and the named ``members`` (read-only arrays) of a ``.npz`` file.

    Raises
    ------
    InputError
        If the file is not a zip of ``.npy`` members holding ``header`` and ``members``
        (``kind`` names the expected file, e.g. ``wdmoe-instance``).
    """
    try:
        _check_members(path, (HEADER, *members))
        with np.load(path, allow_pickle=False) as z:
            header = z[HEADER].tobytes()
            arrays = {name: z[name] for name in members}
    except InputError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(str(path), f"is not a {kind} .npz file ({exc})") from None
    for a in arrays.values():
        _freeze(a)
    return header, arrays


def _check_members(path: Path, names: tuple[str, ...]) -> None:
    """Refuse, before anything is allocated, a member whose ``.npy`` header declares a
    non-real dtype (complex, object, strings) or more bytes than the file-size limit,
    or whose uncompressed size says so (a zip bomb)."""
    from .instance_io import MAX_FILE_BYTES
    with zipfile.ZipFile(path) as zf:
        for name in names:
            info = zf.getinfo(f"{name}.npy")
            if info.file_size > MAX_FILE_BYTES:
                raise InputError(f"{path}: {name}", f"unpacks to {info.file_size:,} bytes, "
                                 f"over the limit of {MAX_FILE_BYTES:,}")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
            if dtype.kind not in "fiub":
                raise InputError(f"{path}: {name}", "must hold real numbers or booleans",
                                 str(dtype))
            if int(np.prod(shape, dtype=object)) * dtype.itemsize > MAX_FILE_BYTES:
                raise InputError(f"{path}: {name}", f"declares shape {shape}, over the limit "
                                 f"of {MAX_FILE_BYTES:,} bytes")


def _freeze(a: np.ndarray) -> None:
    """Make ``a`` and the arrays it views read-only (it is then shared, not copied,
    by :class:`~wdmoe_opt.model.Instance`)."""
    while isinstance(a, np.ndarray):
        a.setflags(write=False)
        a = a.base


def map_member(path: Path, member: str) -> np.ndarray | None:
    """A read-only memory map of ``member`` when it is stored uncompressed, else None.

    Reads only the zip's local header and the ``.npy`` header: slicing the map then
    reads just the slice from disk, so a file larger than memory can be taken in
    batches. Compressed members (older files) cannot be mapped.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{member}.npy")
    except (zipfile.BadZipFile, KeyError, OSError):
        return None
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)                      # the zip local file header
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran_order else "C")
