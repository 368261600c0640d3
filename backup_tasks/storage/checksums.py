"""Checksums that travel with the files: `<backup>.sha256` beside each backup.

The sidecar is in `sha256sum` format, so a copy on a USB drive or NAS can be
checked without this project or its database: `sha256sum -c *.sha256`.
"""

import hashlib
import os
import re
from pathlib import Path
from typing import BinaryIO

from backup_tasks.storage.safefile import MISSING, fsync_dir, fsync_file, not_regular, open_regular

SUFFIX = ".sha256"
BLOCK = 1 << 20


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: Path, sha256: str) -> Path:
    """Write path's sidecar atomically (temporary name, fsync, rename)."""
    target = sidecar(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(f"{sha256}  {path.name}\n", encoding="utf-8")
        fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return target


# One sha256sum line: 64 hex digits, a space, a space or '*' (binary mode), the file's name.
CHECKSUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
# The most a sidecar's first line can take: the checksum, two characters and a name
# (NAME_MAX is 255 bytes on every filesystem we write to), and the newline.
LINE_MAX = 64 + 2 + 255 + 2


def recorded_checksum(path: Path) -> str | None:
    """The checksum in path's sidecar, or None when there is none (or it is not ours).

    Every reader of a sidecar (verify, restore, the dashboard) comes here. Read
    the way downloads read backups: never through a link, never waiting on a
    pipe, and never more than one line, so a planted link to /dev/zero or a FIFO
    costs a few bytes and no time; why_no_checksum() then says what was found.
    """
    try:
        with open_regular(sidecar(path)) as handle:
            first = handle.read(LINE_MAX).split(b"\n", 1)[0]
    except OSError:
        return None
    try:
        match = CHECKSUM_LINE.fullmatch(first.decode("utf-8").removesuffix("\r"))
    except UnicodeDecodeError:
        return None
    if match is None or match.group(2) != path.name:
        return None
    return match.group(1).lower()


def why_no_checksum(path: Path) -> str:
    """Why recorded_checksum(path) found none, in words for a message."""
    name = sidecar(path).name
    what = not_regular(sidecar(path))
    if what == MISSING:
        return f"no {name} beside it"
    if what is not None:
        return f"{name} {what}"
    return f"{name} does not hold a checksum of {path.name}"


class HashingWriter:
    """Passes writes through to a binary file while hashing them."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()

    def hexdigest(self) -> str:
        return self.digest.hexdigest()
