"""System checks: a misconfigured backup fails loudly at start, not at 3 a.m."""

import os

from django.core.checks import Error, Warning, register
from django.db import connections

from backup_tasks import conf
from backup_tasks.engines import get_engine
from backup_tasks.storage.compression import SUFFIXES
from backup_tasks.storage.repository import unavailable


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
def check_database_sharing(app_configs=None, **kwargs):
    """Each database's engine says whether backups and the sensor loop can share it."""
    errors = []
    for alias in connections:
        problem = get_engine(alias).misconfiguration()
        if problem is not None:
            errors.append(Error(problem.message, hint=problem.hint, id="backup_tasks.E002"))
    return errors


@register()
def check_database_tools(app_configs=None, **kwargs):
    """The dump and restore programs a database's snapshots need (PostgreSQL: pg_dump, pg_restore)."""
    errors = []
    for alias in connections:
        engine = get_engine(alias)
        missing = engine.missing_tools()
        if missing:
            errors.append(
                Error(
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: database "
                    f"snapshots, restores and drills of '{alias}' cannot run.",
                    hint=engine.tools_hint,
                    id="backup_tasks.E004",
                )
            )
    return errors


@register()
def check_compression(app_configs=None, **kwargs):
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
    limit = conf.hard_time_limit_seconds()
    visibility = conf.visibility_timeout_seconds()
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


@register()
def check_history(app_configs=None, **kwargs):
    """Without restic (or too old a one) backups still work, but no history is kept."""
    if conf.repository_location() is None:
        return []
    problem = unavailable()
    if problem is None:
        if conf.compression() == "none" or conf.compression() not in SUFFIXES:  # E003 says what is wrong
            return []
        return [
            Warning(
                f"BACKUP_COMPRESSION={conf.compression()} with the backup history on: a compressed "
                "snapshot shares no chunks with the last one, so the history stores every hour whole.",
                hint="Set BACKUP_COMPRESSION=none: the history compresses what it stores itself.",
                id="backup_tasks.W011",
            )
        ]
    return [
        Warning(
            f"{problem}. Backups go on as plain files only: no deduplicated hourly history, "
            "no offsite copies.",
            hint="Install restic 0.14 or newer (Debian/Raspberry Pi OS: sudo apt-get install restic), "
            "or set BACKUP_REPOSITORY=off to silence this.",
            id="backup_tasks.W010",
        )
    ]
