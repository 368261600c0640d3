"""Sizes and moments as an operator reads them, each written one way everywhere."""

from datetime import datetime, tzinfo

# 1,024 bytes to the KB, in every message, table and chart.
KB = 1024
MB = KB * KB


def human_size(size: int) -> str:
    """'512 bytes', '3.4 KB', '1.2 MB', '1.4 GB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < KB or unit == "GB":
            return f"{size:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= KB
    raise AssertionError("unreachable")


def moment_text(moment: datetime | None, zone: tzinfo, *, with_zone: bool = False) -> str:
    """A moment in the plant's zone, to the second; 'never' for a run that did not or will not happen."""
    if moment is None:
        return "never"
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" + (" %Z" if with_zone else ""))
