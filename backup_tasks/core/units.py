"""Sizes as an operator reads them, counted one way everywhere: 1,024 bytes to the KB."""

KB = 1024
MB = KB * KB


def human_size(size: int) -> str:
    """'512 bytes', '3.4 KB', '1.2 MB', '1.4 GB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < KB or unit == "GB":
            return f"{size:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= KB
    raise AssertionError("unreachable")
