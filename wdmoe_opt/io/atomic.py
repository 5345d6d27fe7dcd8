"""Atomic writes: write to a temporary file in the target folder, then rename.

A crash, an error or an interrupt mid-write never leaves a partial file (nor the
temporary one) behind. The target is what the user named, resolved: a symbolic
link is written through (the link stays, its target is replaced), a special file
(``/dev/null``, a pipe) is written to directly, never replaced by a regular file.
A new file gets the permissions the umask allows (``0o666 & ~umask``), a replaced
one keeps its own.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path`` (see the module)."""
    target = Path(os.path.realpath(path))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise InputError(str(path), "is a folder, not a file")
    if mode is not None and not stat.S_ISREG(mode):      # a device or a pipe: write through
        write(target)
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(str(path), f"cannot be written ({exc.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        os.chmod(tmp_path, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
