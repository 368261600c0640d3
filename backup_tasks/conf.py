"""Backup settings, read at call time so tests and operators can override them.

Every module reads settings through here; this module imports nothing of ours.
"""

from pathlib import Path
from zoneinfo import ZoneInfo

from django.conf import settings

# Excel and LibreOffice open at most 1,048,576 lines: a longer CSV export goes
# on in _part2, _part3, ... each with the header, so every file opens.
EXCEL_MAX_LINES = 1_048_576


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
    return int(getattr(settings, "BACKUP_CSV_MAX_LINES", EXCEL_MAX_LINES))


def compression() -> str:
    """BACKUP_COMPRESSION: none (default), gzip or zstd."""
    return str(getattr(settings, "BACKUP_COMPRESSION", "none") or "none").lower()


def export_lag_seconds() -> int:
    """Readings reach the database a moment after their time stamp: an incremental
    export stops this long before now, so none arrives behind its window."""
    return int(getattr(settings, "BACKUP_EXPORT_LAG", 60))


def lock_ttl_seconds() -> int:
    """BACKUP_LOCK_TTL: how long a dead worker's single-flight lock outlives it."""
    return max(1, int(getattr(settings, "BACKUP_LOCK_TTL", 60)))


def retry_delay_seconds() -> int:
    """BACKUP_RETRY_DELAY: the first wait before a transient failure is retried (doubled each time)."""
    return int(getattr(settings, "BACKUP_RETRY_DELAY", 60))


def soft_time_limit_seconds() -> float | None:
    """When a task is asked to stop (Celery's soft limit, derived from BACKUP_TIME_LIMIT)."""
    return getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", None)


def hard_time_limit_seconds() -> float | None:
    """When the worker kills a task (Celery's hard limit, BACKUP_TIME_LIMIT)."""
    return getattr(settings, "CELERY_TASK_TIME_LIMIT", None)


def visibility_timeout_seconds() -> int:
    """When Redis hands a task that was taken but not acknowledged to another worker."""
    return int(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("visibility_timeout", 3600))


# -- the backup history (restic repositories) ----------------------------------

OFF = "off"


def repository_location() -> str | None:
    """BACKUP_REPOSITORY: the local history repository; None when set to 'off'."""
    value = str(getattr(settings, "BACKUP_REPOSITORY", "") or "").strip()
    if value.lower() == OFF:
        return None
    return value or str(backup_dir() / "repository")


def repository_key_file() -> Path:
    return Path(
        getattr(
            settings, "BACKUP_REPOSITORY_PASSWORD_FILE", Path(settings.BASE_DIR) / "backup-repository.key"
        )
    )


def offsite_location() -> str:
    return str(getattr(settings, "BACKUP_OFFSITE_REPOSITORY", "") or "").strip()


def offsite_max_age_hours() -> float:
    return float(getattr(settings, "BACKUP_OFFSITE_MAX_AGE_HOURS", 26))


def offsite_timeout_seconds() -> int:
    return int(getattr(settings, "BACKUP_OFFSITE_TIMEOUT", 1800))


def keep_plain() -> int:
    """BACKUP_KEEP_PLAIN: newest plain snapshot files kept in database/ once they are in the history."""
    return max(1, int(getattr(settings, "BACKUP_KEEP_PLAIN", 3)))


def history_keep(where: str, period: str) -> int:
    """BACKUP_HISTORY_KEEP_<PERIOD> (where='HISTORY') or BACKUP_OFFSITE_KEEP_<PERIOD>."""
    defaults = {"DAILY": 90, "WEEKLY": 52, "MONTHLY": 24}
    fallback = getattr(settings, f"BACKUP_HISTORY_KEEP_{period}", defaults[period])
    return int(getattr(settings, f"BACKUP_{where}_KEEP_{period}", fallback))
