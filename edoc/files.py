"""Files edoc writes outside the object store: one way to put a finished file in place.

``get -o``, ``export``, ``evidence`` and ``init`` write a temporary sibling first and move it
into place only when it is complete, so a reader never sees half a file and a failure leaves
nothing behind. Two publishing modes:

- ``replace=False`` (the default): link(2) the finished file to its name, which fails if the
  name exists — no window in which another file could be clobbered; on a file system
  without hard links, a checked rename.
- ``replace=True``: rename(2) over the old file (``get --force``).

The directory is fsynced afterwards so the new name survives a crash.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from edoc.errors import InputError


def temp_sibling(out: Path) -> Path:
    """A hidden, unique name beside ``out`` for the file (or directory) being written."""
    return out.with_name(f".{out.name}.{secrets.token_hex(6)}.part")


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable (best effort where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(tmp: Path, out: Path, *, replace: bool = False) -> None:
    """Move the finished ``tmp`` to ``out`` (see the module docstring for the two modes)."""
    if replace:
        tmp.replace(out)
    elif tmp.is_dir():
        if out.exists():
            raise InputError(f"{out} already exists; not overwritten", code="OUTPUT_EXISTS",
                             hint="choose a new name")
        tmp.rename(out)
    else:
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise InputError(f"{out} appeared while it was written; not overwritten",
                             code="OUTPUT_EXISTS", hint="choose a new file name") from None
        except OSError:
            if out.exists():
                raise InputError(f"{out} already exists; not overwritten",
                                 code="OUTPUT_EXISTS") from None
            tmp.replace(out)
        else:
            tmp.unlink()
    fsync_dir(out.parent)


def discard(tmp: Path) -> None:
    """Remove what a failed write left (a file or a directory tree)."""
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_output(out: Path, *, replace: bool = False, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write ``out`` all or nothing: yields a binary file; on a clean exit it is flushed,
    fsynced and published, on any exception it is removed and ``out`` is untouched."""
    tmp = temp_sibling(out)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, out, replace=replace)
    except BaseException:
        discard(tmp)
        raise
