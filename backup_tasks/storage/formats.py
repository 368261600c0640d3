"""Stream export lines into the guide's CSV and JSON files, block by block.

The framing (header, line ends, JSON brackets) is written once here, for the
backup files (write_csv, write_json) and the admin's downloads (STREAMS) alike.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from backup_tasks.conf import EXCEL_MAX_LINES  # a CSV export past it goes on in parts

CSV_HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"
# A byte-order mark makes Excel read UTF-8, so °C is not shown as "Â°C".
BOM = "\ufeff"


OpenPart = Callable[[], BinaryIO]


def csv_header() -> bytes:
    return f"{BOM}{CSV_HEADER}\r\n".encode()


def csv_block(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def write_csv(
    open_part: OpenPart, chunks: Iterable[list[str]], max_lines: int = EXCEL_MAX_LINES
) -> list[list[int]]:
    """Write header and rows with CRLF line ends (RFC 4180), a new part every max_lines lines.

    Returns [rows, bytes] per part.
    """
    header = csv_header()
    room_per_part = max_lines - 1
    handle = open_part()
    parts = [[0, handle.write(header)]]
    for lines in chunks:
        while lines:
            room = room_per_part - parts[-1][0]
            if room == 0:
                handle = open_part()
                parts.append([0, handle.write(header)])
                room = room_per_part
            block, lines = lines[:room], lines[room:]
            parts[-1][1] += handle.write(csv_block(block))
            parts[-1][0] += len(block)
    return parts


def write_json(open_part: OpenPart, chunks: Iterable[list[str]], max_lines: int = 0) -> list[list[int]]:
    """Write one JSON array, an object per line; `[]` when empty. Returns [[rows, bytes]]."""
    handle = open_part()
    rows = written = 0

    def counted() -> Iterator[list[str]]:
        nonlocal rows
        for lines in chunks:
            yield lines
            rows += len(lines)

    for block in stream_json(counted()):
        written += handle.write(block)
    return [[rows, written]]


def stream_csv(chunks: Iterable[list[str]]) -> Iterator[bytes]:
    """The CSV of write_csv as blocks of bytes, in one file: a download is never split into parts."""
    yield csv_header()
    for lines in chunks:
        if lines:
            yield csv_block(lines)


def stream_json(chunks: Iterable[list[str]]) -> Iterator[bytes]:
    """The JSON array of write_json as blocks of bytes."""
    yield b"["
    rows = 0
    for lines in chunks:
        separator = "\n" if rows == 0 else ",\n"
        yield (separator + ",\n".join(lines)).encode()
        rows += len(lines)
    yield b"\n]\n" if rows else b"]\n"


WRITERS = {"csv": write_csv, "json": write_json}
STREAMS = {"csv": stream_csv, "json": stream_json}
