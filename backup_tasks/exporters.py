"""Stream export lines into the guide's CSV and JSON files, block by block."""

from collections.abc import Iterable
from typing import BinaryIO

CSV_HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"
# A byte-order mark makes Excel read UTF-8, so °C is not shown as "Â°C".
BOM = "\ufeff"


def write_csv(handle: BinaryIO, chunks: Iterable[list[str]]) -> tuple[int, int]:
    """Write header and rows with CRLF line ends (RFC 4180); return (rows, bytes)."""
    rows = 0
    written = handle.write(f"{BOM}{CSV_HEADER}\r\n".encode())
    for lines in chunks:
        written += handle.write(("\r\n".join(lines) + "\r\n").encode())
        rows += len(lines)
    return rows, written


def write_json(handle: BinaryIO, chunks: Iterable[list[str]]) -> tuple[int, int]:
    """Write one JSON array, an object per line; `[]` when empty. Return (rows, bytes)."""
    rows = 0
    written = handle.write(b"[")
    for lines in chunks:
        separator = "\n" if rows == 0 else ",\n"
        written += handle.write((separator + ",\n".join(lines)).encode())
        rows += len(lines)
    written += handle.write(b"\n]\n" if rows else b"]\n")
    return rows, written


WRITERS = {"csv": write_csv, "json": write_json}
