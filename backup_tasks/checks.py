"""System checks: a misconfigured backup fails loudly at start, not at 3 a.m."""

import os
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import connections

from backup_tasks import conf


@register()
def check_backup_dir(app_configs=None, **kwargs):
    folder = conf.backup_dir()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return [
            Error(
                f"The backup folder {folder} cannot be created or written.",
                hint="Set BACKUP_DIR to a folder this user can write.",
                id="backup_tasks.E001",
            )
        ]
    return []


@register()
def check_sqlite_wal(app_configs=None, **kwargs):
    """The sensor loop and backups share the database only in WAL mode."""
    errors = []
    for alias in connections:
        settings_dict = connections[alias].settings_dict
        if settings_dict["ENGINE"] != "django.db.backends.sqlite3":
            continue
        name = str(settings_dict["NAME"])
        # A missing database is reported by the command that needs it; a
        # check must never create an empty one.
        if name == ":memory:" or "mode=memory" in name or not Path(name).is_file():
            continue
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
        except Exception:
            continue  # Unreadable or corrupt: the backup command says so in its own words.
        if str(mode).lower() != "wal":
            errors.append(
                Error(
                    f"The SQLite database {name} is in {mode!r} journal mode, not WAL: the sensor "
                    "loop would fail with 'database is locked' while a backup reads.",
                    hint="Keep init_command 'PRAGMA journal_mode=WAL' in DATABASES OPTIONS, and keep "
                    "the database on a local disk (WAL does not work on network shares).",
                    id="backup_tasks.E002",
                )
            )
    return errors


@register()
def check_compression(app_configs=None, **kwargs):
    from backup_tasks.storage.compression import SUFFIXES

    method = conf.compression()
    if method not in SUFFIXES:
        return [
            Error(
                f"BACKUP_COMPRESSION is {method!r}.",
                hint="Use none, gzip or zstd.",
                id="backup_tasks.E003",
            )
        ]
    return []


@register()
def check_visibility_timeout(app_configs=None, **kwargs):
    """Redis must not hand a task that is still running to a second worker."""
    limit = getattr(settings, "CELERY_TASK_TIME_LIMIT", None)
    visibility = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}).get("visibility_timeout", 3600)
    if limit and visibility <= limit:
        return [
            Warning(
                f"CELERY_VISIBILITY_TIMEOUT ({visibility} s) is not longer than "
                f"BACKUP_TIME_LIMIT ({limit:g} s): Redis gives a backup that is still running "
                "to another worker, which then waits for it.",
                hint="Set CELERY_VISIBILITY_TIMEOUT above BACKUP_TIME_LIMIT (the default is twice it).",
                id="backup_tasks.W003",
            )
        ]
    return []
