"""Backup settings, read at call time so tests and operators can override them."""

from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings


def backup_dir() -> Path:
    return Path(getattr(settings, "BACKUP_DIR", Path(settings.BASE_DIR) / "backups"))


def keep_days() -> int:
    return int(getattr(settings, "BACKUP_KEEP_DAYS", 30))


def keep_count(period: str) -> int:
    """BACKUP_KEEP_HOURLY, _DAILY, _WEEKLY, _MONTHLY: snapshots kept per period (0: off)."""
    return int(getattr(settings, f"BACKUP_KEEP_{period}", 0))


def plant_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def log_max_bytes() -> int:
    return int(getattr(settings, "BACKUP_LOG_MAX_BYTES", 5 * 1024 * 1024))


def log_backup_count() -> int:
    return int(getattr(settings, "BACKUP_LOG_BACKUP_COUNT", 5))


def run_timeout_seconds() -> int:
    """After this long a run still marked 'running' is taken as abandoned."""
    return int(getattr(settings, "BACKUP_RUN_TIMEOUT", 3 * 3600))


def csv_max_lines() -> int:
    """Lines per CSV file, header included (Excel's limit)."""
    from backup_tasks.storage.formats import EXCEL_MAX_LINES

    return int(getattr(settings, "BACKUP_CSV_MAX_LINES", EXCEL_MAX_LINES))


def compression() -> str:
    """BACKUP_COMPRESSION: none (default), gzip or zstd."""
    return str(getattr(settings, "BACKUP_COMPRESSION", "none") or "none").lower()


def export_lag_seconds() -> int:
    """Readings reach the database a moment after their time stamp: an incremental
    export stops this long before now, so none arrives behind its window."""
    return int(getattr(settings, "BACKUP_EXPORT_LAG", 60))
