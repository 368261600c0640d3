"""Write a file so that it exists under its final name only when complete.

Every writer goes through `atomic_output`: the file is built under a hidden
temporary name in the destination folder (same filesystem, so the rename is
atomic), fsynced, then published under its final name without ever replacing
an existing file. On any error the temporary file is removed and earlier
backups are untouched.
"""

import errno
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path

from backup_tasks import errors

# Names the run writing a temporary file (a Celery task id), so that what a
# killed run left behind can be found and removed: see services.remove_unfinished_files.
run_tag: ContextVar[str] = ContextVar("run_tag", default="")


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.from_os_error(exc, path, "the backup folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise errors.NotWritable(
            f"Cannot write to the backup folder {path} (permission denied): "
            "make it writable for this user or set BACKUP_DIR to a writable folder."
        )
    return path


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # Not supported on this platform (Windows): the rename is still atomic.
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> bool:
    """Give tmp the name final unless final exists. True when published."""
    try:
        os.link(tmp, final)  # Fails with EEXIST instead of replacing: never overwrite.
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Filesystems without hard links (FAT drives, some NAS shares).
        if final.exists():
            return False
        os.replace(tmp, final)
        return True
    tmp.unlink()
    return True


@contextmanager
def atomic_output(
    folder: Path, name_for: Callable[[datetime], str], when: datetime, what: str
) -> Iterator["Output"]:
    """Yield an Output whose .tmp path the caller fills; publish it on success."""
    ensure_dir(folder)
    output = Output(folder, name_for, when)
    try:
        yield output
        fsync_file(output.tmp)
        output.final = _publish_unique(output.tmp, folder, name_for, when)
        fsync_dir(folder)
    except OSError as exc:
        output.discard()
        raise errors.from_os_error(exc, folder, what) from None
    except BaseException:
        output.discard()
        raise


def _publish_unique(tmp: Path, folder: Path, name_for: Callable[[datetime], str], when: datetime) -> Path:
    # Two runs in the same second must not overwrite each other: the later
    # one takes the next free second, waiting for the clock so that a name
    # never claims a time that has not happened yet.
    stamp = when
    while True:
        final = folder / name_for(stamp)
        if _publish(tmp, final):
            return final
        stamp += timedelta(seconds=1)
        delay = stamp.timestamp() - time.time()
        if delay > 0:
            time.sleep(delay)


class Output:
    def __init__(self, folder: Path, name_for: Callable[[datetime], str], when: datetime) -> None:
        tag = f"{run_tag.get()}." if run_tag.get() else ""
        self.tmp = folder / f".{name_for(when)}.{tag}{secrets.token_hex(4)}.tmp"
        self.final: Path | None = None

    def discard(self) -> None:
        discard(self.tmp)


def discard(tmp: Path) -> None:
    """Remove a temporary file and the journal files SQLite may have made beside it."""
    for path in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        path.unlink(missing_ok=True)
