"""Write a file so that it exists under its final name only when complete.

Every writer goes through `atomic_output`: the file is built under a hidden
temporary name in the destination folder (same filesystem, so the rename is
atomic), fsynced, then published under its final name without ever replacing
an existing file. On any error the temporary file is removed and earlier
backups are untouched.
"""

import ctypes
import ctypes.util
import errno
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path

from backup_tasks.core import errors
from backup_tasks.core.units import human_size

# Names the run writing a temporary file (a Celery task id), so that what a
# killed run left behind can be found and removed: see services.cleanup.remove_unfinished_files.
run_tag: ContextVar[str] = ContextVar("run_tag", default="")


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(exc, path, "the backup folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise errors.NotWritable(
            f"Cannot write to the backup folder {path} (permission denied): "
            "make it writable for this user or set BACKUP_DIR to a writable folder."
        )
    return path


def _free_space(path: Path) -> str:
    usage = disk_usage(path)
    return "free space unknown" if usage is None else f"{human_size(usage[1])} free"


def from_os_error(exc: OSError, path: Path, what: str) -> errors.BackupError:
    """Translate a filesystem error while writing `what` at `path` into a clear BackupError."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return errors.DiskFull(
            f"Not enough space to write {what} in {path} ({exc.strerror}, {_free_space(path)}): "
            "free up space on the backup disk or run 'python manage.py backup_database --cleanup'."
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return errors.NotWritable(
            f"Cannot write {what} in {path} ({exc.strerror}): "
            "make the backup folder writable for this user or set BACKUP_DIR to a writable folder."
        )
    if code in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
        return errors.NotWritable(
            f"Cannot create the backup folder {path} ({exc.strerror}): "
            "set BACKUP_DIR to a folder that can be created."
        )
    return errors.BackupError(f"Could not write {what} in {path}: {exc.strerror or exc}.")


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


# sync_file_range(2) flags: start writing a range and wait until it is on disk.
_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4
WRITE_BACK_CHUNK = 32 << 20


def _sync_range_function() -> Callable[[int, int, int], None]:
    """Write one range of a file to disk: sync_file_range on Linux, fdatasync elsewhere."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        sync_file_range = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: os.fdatasync(fd)
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def sync_range(fd: int, offset: int, length: int) -> None:
        if sync_file_range(fd, offset, length, _WAIT_BEFORE | _WRITE | _WAIT_AFTER) != 0:
            os.fdatasync(fd)  # Not supported by this filesystem.

    return sync_range


def disk_usage(path: Path) -> tuple[int, int] | None:
    """(total, free) bytes of the disk path is on, or will be on once created; None if unknown."""
    for candidate in (path, *path.parents):
        try:
            usage = shutil.disk_usage(candidate)
        except OSError:
            continue
        return usage.total, usage.free
    return None


def open_regular(path: Path):
    """Open a regular file for reading, never through a symbolic link (a link swapped in
    since the path was checked) and never blocking on a pipe; OSError for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    handle = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise OSError("not a regular file")
    return handle


MISSING = "does not exist"


def not_regular(path: Path) -> str | None:
    """None when path is a regular file; else what is there instead, for a message:
    MISSING, "is a directory, not a regular file", "is a symbolic link to /dev/zero,
    not a regular file", ... Looks with lstat(): a link is named, never followed."""
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError as exc:
        return f"cannot be looked at ({exc.strerror})"
    if stat.S_ISREG(mode):
        return None
    what = "something else"
    if stat.S_ISLNK(mode):
        try:
            what = f"a symbolic link to {os.readlink(path)}"
        except OSError:
            what = "a symbolic link"
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            what = name
    return f"is {what}, not a regular file"


@contextmanager
def written_back(path: Path, chunk: int = WRITE_BACK_CHUNK) -> Iterator[None]:
    """Write path's data to disk in the background, chunk by chunk, while the block fills it.

    Only a help for the final fsync, never a replacement: a gigabyte left for one
    fsync floods the disk queue, and every other process's commit (the sensor
    loop's insert) waits behind it. Flushed as it grows, the file is nearly on
    disk by the time atomic_output fsyncs it, and no commit waits for more
    than one chunk.
    """
    done = threading.Event()
    sync_range = _sync_range_function()

    def flush() -> None:
        fd = None
        try:
            while fd is None:  # The block creates the file.
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    if done.wait(0.01):
                        return
            flushed = 0
            while True:
                size = os.fstat(fd).st_size
                if size - flushed >= chunk:
                    sync_range(fd, flushed, size - flushed)
                    flushed = size
                elif done.wait(0.02):
                    return
        except OSError:
            return  # The final fsync reports any real problem.
        finally:
            if fd is not None:
                os.close(fd)

    thread = threading.Thread(target=flush, name=f"write-back {path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


NameFor = Callable[[datetime, int], str]  # (stamp, part) -> file name


@contextmanager
def atomic_output(folder: Path, name_for: NameFor, when: datetime, what: str) -> Iterator["Output"]:
    """Yield an Output whose temporary file(s) the caller fills; publish them all on success."""
    ensure_dir(folder)
    output = Output(folder, name_for, when)
    try:
        yield output
        for tmp in output.tmps:
            fsync_file(tmp)
        output.publish()
        fsync_dir(folder)
    except OSError as exc:
        output.discard()
        raise from_os_error(exc, folder, what) from None
    except BaseException:
        output.discard()
        raise


class Output:
    """The temporary files of one backup (one, or several parts) and their final names."""

    def __init__(self, folder: Path, name_for: NameFor, when: datetime) -> None:
        self.folder, self.name_for, self.when = folder, name_for, when
        self.tmps: list[Path] = []
        self.finals: list[Path] = []
        self.add_part()

    @property
    def tmp(self) -> Path:
        return self.tmps[0]

    @property
    def final(self) -> Path | None:
        return self.finals[0] if self.finals else None

    def add_part(self) -> Path:
        name = self.name_for(self.when, len(self.tmps) + 1)
        tag = f"{run_tag.get()}." if run_tag.get() else ""
        tmp = self.folder / f".{name}.{tag}{secrets.token_hex(4)}.tmp"
        self.tmps.append(tmp)
        return tmp

    def publish(self) -> None:
        # Two runs in the same second must not overwrite each other: the later
        # one takes the next free second, waiting for the clock so that a name
        # never claims a time that has not happened yet. Later parts share the
        # first part's stamp.
        stamp = self.when
        while not _publish(self.tmps[0], self.folder / self.name_for(stamp, 1)):
            stamp += timedelta(seconds=1)
            delay = stamp.timestamp() - time.time()
            if delay > 0:
                time.sleep(delay)
        self.finals.append(self.folder / self.name_for(stamp, 1))
        for part, tmp in enumerate(self.tmps[1:], start=2):
            final = self.folder / self.name_for(stamp, part)
            if not _publish(tmp, final):
                for published in self.finals:
                    published.unlink(missing_ok=True)
                raise errors.BackupError(
                    f"{final} appeared while this export was being written: run it again."
                )
            self.finals.append(final)

    def discard(self) -> None:
        for tmp in self.tmps:
            discard(tmp)


def discard(tmp: Path) -> None:
    """Remove a temporary file and the journal files a database may have made beside it."""
    for path in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        path.unlink(missing_ok=True)
