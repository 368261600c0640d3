"""Stream export lines into the guide's CSV and JSON files, block by block."""

from collections.abc import Callable, Iterable
from typing import BinaryIO

CSV_HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"
# A byte-order mark makes Excel read UTF-8, so °C is not shown as "Â°C".
BOM = "\ufeff"


# Excel and LibreOffice open at most 1,048,576 lines: a longer CSV export goes
# on in _part2, _part3, ... each with the header, so every file opens.
EXCEL_MAX_LINES = 1_048_576

OpenPart = Callable[[], BinaryIO]


def write_csv(
    open_part: OpenPart, chunks: Iterable[list[str]], max_lines: int = EXCEL_MAX_LINES
) -> list[list[int]]:
    """Write header and rows with CRLF line ends (RFC 4180), a new part every max_lines lines.

    Returns [rows, bytes] per part.
    """
    header = f"{BOM}{CSV_HEADER}\r\n".encode()
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
            parts[-1][1] += handle.write(("\r\n".join(block) + "\r\n").encode())
            parts[-1][0] += len(block)
    return parts


def write_json(open_part: OpenPart, chunks: Iterable[list[str]], max_lines: int = 0) -> list[list[int]]:
    """Write one JSON array, an object per line; `[]` when empty. Returns [[rows, bytes]]."""
    handle = open_part()
    rows = 0
    written = handle.write(b"[")
    for lines in chunks:
        separator = "\n" if rows == 0 else ",\n"
        written += handle.write((separator + ",\n".join(lines)).encode())
        rows += len(lines)
    written += handle.write(b"\n]\n" if rows else b"]\n")
    return [[rows, written]]


WRITERS = {"csv": write_csv, "json": write_json}
