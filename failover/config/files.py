"""Reading the small files a config names: the config itself and `file:` secrets.

Regular files only (a FIFO would hang the read, /dev/zero would fill memory, a directory or
a device is a mistake), at most a size limit, UTF-8 text. Every refusal is a
`SmallFileError` whose message is one line to show after the file's name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

CONFIG_LIMIT = 1024 * 1024
SECRET_LIMIT = 64 * 1024

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class SmallFileError(Exception):
    """A file that cannot be read as a small text file: why, in one line."""


def file_kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def size_text(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"


def expand_path(path: Path) -> Path:
    """`~` and `~user` expanded; SmallFileError when the user or home is unknown."""
    try:
        return path.expanduser()
    except RuntimeError:
        user = str(path).split("/", 1)[0]
        raise SmallFileError(f"cannot expand {user}: no such user or no home directory") from None


def read_small_file(path: Path, limit: int) -> str:
    """The text of a regular file of at most `limit` bytes."""
    if "\0" in str(path):
        raise SmallFileError("a path cannot contain a NUL character")
    try:
        before = os.stat(path)  # refuse a FIFO or a device before opening it at all
        if not stat.S_ISREG(before.st_mode):
            raise SmallFileError(f"not a regular file ({file_kind(before.st_mode)})")
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SmallFileError("no such file") from None
    except OSError as exc:
        raise SmallFileError(exc.strerror or exc.__class__.__name__) from None
    try:
        st = os.fstat(fd)  # what was opened, in case the path changed in between
        if not stat.S_ISREG(st.st_mode):
            raise SmallFileError(f"not a regular file ({file_kind(st.st_mode)})")
        if st.st_size > limit:
            raise SmallFileError(f"larger than {size_text(limit)}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # grew while we read it
            raise SmallFileError(f"larger than {size_text(limit)}")
    except OSError as exc:
        raise SmallFileError(exc.strerror or exc.__class__.__name__) from None
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise SmallFileError("not UTF-8 text") from None
