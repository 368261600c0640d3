"""Failures a plant operator can act on; each message says what is wrong and what to do."""

import errno
from pathlib import Path


class BackupError(Exception):
    """A backup, export or cleanup that could not be done; nothing was half-written."""

    # Permanent errors fail at once; a retry would only repeat them.
    permanent = True


class DatabaseMissing(BackupError):
    pass


class CorruptDatabase(BackupError):
    pass


class CopyFailed(BackupError):
    """A copy or a read of the database failed its check, while the database itself passed its own."""

    permanent = False  # torn by something passing: another try reads it again


class NotWritable(BackupError):
    pass


class DiskFull(BackupError):
    pass


class DatabaseBusy(BackupError):
    permanent = False


def _free_mb(path: Path) -> str:
    from backup_tasks.safefile import disk_usage  # safefile imports this module

    usage = disk_usage(path)
    return "free space unknown" if usage is None else f"{usage[1] / 1_000_000:,.0f} MB free"


def from_os_error(exc: OSError, path: Path, what: str) -> BackupError:
    """Translate a filesystem error while writing `what` at `path` into a clear BackupError."""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return DiskFull(
            f"Not enough space to write {what} in {path} ({exc.strerror}, {_free_mb(path)}): "
            "free up space on the backup disk or run 'python manage.py backup_database --cleanup'."
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return NotWritable(
            f"Cannot write {what} in {path} ({exc.strerror}): "
            "make the backup folder writable for this user or set BACKUP_DIR to a writable folder."
        )
    if code in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
        return NotWritable(
            f"Cannot create the backup folder {path} ({exc.strerror}): "
            "set BACKUP_DIR to a folder that can be created."
        )
    return BackupError(f"Could not write {what} in {path}: {exc.strerror or exc}.")
