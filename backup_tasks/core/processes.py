"""Which process runs a backup, and whether it is known to have died.

A run record and a single-flight lock name their process as host:pid:start,
where start is when the process began (clock ticks since boot), so a pid the
system has since given to another process is not taken for the same one.
Only a process on this host can be known dead; elsewhere nobody can say.
"""

import os
import socket
from functools import cache


def _started(pid: int) -> str | None:
    """When process pid began (field 22 of /proc/PID/stat); None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 else None


@cache
def _can_tell() -> bool:
    """Whether this system shows its processes in /proc (Linux)."""
    return _started(os.getpid()) is not None


def this_process() -> str:
    """host:pid:start of the calling process (not cached: a forked pool child is another process)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_started(pid) or '?'}"


def describe(owner: str) -> str:
    """'pid 1234 on plant-pi' for a host:pid:start."""
    host, pid, _ = _split(owner)
    return f"pid {pid} on {host}" if host else owner


def is_dead(owner: str) -> bool:
    """True only when owner's process is known to have ended: on this host, and no longer running."""
    host, pid, started = _split(owner)
    if not host or host != socket.gethostname() or not _can_tell() or started == "?":
        return False
    return _started(int(pid)) != started


def _split(owner: str) -> tuple[str, str, str]:
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return "", "", ""
    return parts[0], parts[1], parts[2]
