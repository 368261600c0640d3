"""Failures a plant operator can act on; each message says what is wrong and what to do."""


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
