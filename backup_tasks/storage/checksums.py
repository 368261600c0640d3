"""Checksums that travel with the files: `<backup>.sha256` beside each backup.

The sidecar is in `sha256sum` format, so a copy on a USB drive or NAS can be
checked without this project or its database: `sha256sum -c *.sha256`.
"""

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from backup_tasks.storage.safefile import fsync_dir, fsync_file

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


def recorded_checksum(path: Path) -> str | None:
    """The checksum in path's sidecar, or None when there is none (or it is not ours)."""
    try:
        text = sidecar(path).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    parts = text.strip().split()
    if len(parts) != 2 or len(parts[0]) != 64 or parts[1].lstrip("*") != path.name:
        return None
    return parts[0].lower()


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
