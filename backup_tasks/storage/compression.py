"""Optional compression of backups: gzip (everywhere) or zstd (faster, smaller).

A compressed backup keeps its name with `.gz` or `.zst` added; its checksum
covers the compressed bytes, so `sha256sum -c` works on the copy as it is.
"""

import gzip
import io
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from backup_tasks.core.errors import BackupError

SUFFIXES = {"none": "", "gzip": ".gz", "zstd": ".zst"}
# Fast levels: a year's CSV is 1.5 GB; gzip's default level 9 would take minutes.
GZIP_LEVEL = 3
ZSTD_LEVEL = 3


def suffix(method: str) -> str:
    try:
        return SUFFIXES[method]
    except KeyError:
        raise BackupError(f"Unknown compression {method!r}: use none, gzip or zstd.") from None


def method_of(path: Path) -> str:
    for method, ending in SUFFIXES.items():
        if ending and path.name.endswith(ending):
            return method
    return "none"


def plain_name(path: Path) -> str:
    """The file's name without .gz or .zst."""
    ending = SUFFIXES[method_of(path)]
    return path.name[: -len(ending)] if ending else path.name


def compressing_writer(method: str, raw: BinaryIO) -> BinaryIO:
    """A writer that compresses into raw; closing it finishes the stream but not raw."""
    if method == "gzip":
        return gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0)
    if method == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(raw, closefd=False)
    return raw


def open_reading(path: Path) -> BinaryIO:
    """Open a backup for reading its plain bytes, compressed or not."""
    method = method_of(path)
    if method == "gzip":
        return gzip.open(path, "rb")
    if method == "zstd":
        return io.BufferedReader(_ZstdReader(path.open("rb")), 1 << 20)
    return path.open("rb")


class _ZstdReader(io.RawIOBase):
    """Reads a zstd file, raising EOFError when it ends before its frame does.

    zstandard's own stream reader returns a truncated file's partial content
    without complaint; a backup check must notice.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.decompressor = zstandard.ZstdDecompressor().decompressobj()
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            if self.decompressor.eof:
                return 0
            block = self.raw.read(1 << 20)
            if not block:
                raise EOFError("the compressed file ends before its end-of-stream marker: it is truncated")
            self.pending = self.decompressor.decompress(block)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def close(self) -> None:
        self.raw.close()
        super().close()


def compress_file(source: Path, target: Path, method: str) -> None:
    with source.open("rb") as plain, target.open("xb") as raw, compressing_writer(method, raw) as packed:
        shutil.copyfileobj(plain, packed, 1 << 20)


@contextmanager
def plain_copy(path: Path):
    """The path itself, or a decompressed scratch copy beside it, removed afterwards."""
    if method_of(path) == "none":
        yield path
        return
    scratch = path.with_name(f".{plain_name(path)}.unpacked.tmp")
    try:
        with open_reading(path) as packed, scratch.open("wb") as plain:
            shutil.copyfileobj(packed, plain, 1 << 20)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        scratch.unlink(missing_ok=True)
        raise BackupError(f"{path} cannot be decompressed: {exc}") from None
    try:
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)
