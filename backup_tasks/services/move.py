"""Moving a SQLite plant to PostgreSQL without losing a reading.

The readings stream from the SQLite file into COPY ... FROM STDIN, a block at
a time (dumpdata/loaddata would take hours at 15.8 million rows and hold them
all in memory); the few rows of every other table (users, schedules, run
history) go through Django's serializers. All of it in one transaction of the
target: a move that fails leaves the target as it was.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.apps import apps
from django.core import serializers
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder

from backup_tasks.core.errors import BackupError
from backup_tasks.engines import engine_for_file, get_engine
from readings.models import Reading

SOURCE_ALIAS = "moving_from"
# Made by migrate in the target already, and referred to by natural keys.
LEFT_AS_MIGRATED = {"contenttypes.contenttype", "auth.permission", "sessions.session"}


@dataclass
class MoveResult:
    source: str
    readings: int
    rows: dict[str, int]  # other tables: model label -> rows copied
    duration_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def _models() -> list:
    """Every concrete, managed model but the readings, parents before the models that refer to them."""
    chosen = [
        model
        for model in apps.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and model is not Reading
        and model._meta.label_lower not in LEFT_AS_MIGRATED
    ]
    by_app: dict = {}
    for model in chosen:
        by_app.setdefault(apps.get_app_config(model._meta.app_label), []).append(model)
    return serializers.sort_dependencies(list(by_app.items()))


def move_plant(source: Path, *, alias: str = DEFAULT_DB_ALIAS) -> MoveResult:
    """Copy a SQLite plant's database into the migrated, empty database of alias (PostgreSQL)."""
    began = time.monotonic()
    target = get_engine(alias)
    reader = engine_for_file(source)
    reader.check_available()
    target.check_available()
    connections.databases[SOURCE_ALIAS] = {**connections.databases[DEFAULT_DB_ALIAS], **reader.settings_dict}
    connections.databases[SOURCE_ALIAS]["ENGINE"] = "django.db.backends.sqlite3"
    try:
        _check_versions(source, alias)
        models = _models()
        rows = {}
        with transaction.atomic(using=alias):
            readings = target.load_readings(reader.readings_rows())
            # What migrate put there (the default schedules) goes: emptied without
            # signals, the many-to-many tables with their models.
            tables = [model._meta.db_table for model in models]
            tables += [
                field.remote_field.through._meta.db_table
                for model in models
                for field in model._meta.local_many_to_many
                if field.remote_field.through._meta.auto_created
            ]
            with connections[alias].cursor() as cursor:
                for statement in connections[alias].ops.sql_flush(no_style(), tables, allow_cascade=True):
                    cursor.execute(statement)
            for model in models:
                objects = model._base_manager.using(SOURCE_ALIAS).order_by("pk")
                data = serializers.serialize(
                    "python",
                    objects.iterator(),
                    use_natural_foreign_keys=True,
                    use_natural_primary_keys=False,
                )
                for item in serializers.deserialize("python", data, using=alias):
                    item.save(using=alias)
                rows[model._meta.label] = len(data)
            with connections[alias].cursor() as cursor:
                for statement in connections[alias].ops.sequence_reset_sql(no_style(), models):
                    cursor.execute(statement)
    finally:
        connections[SOURCE_ALIAS].close()
        del connections.databases[SOURCE_ALIAS]
    return MoveResult(str(source), readings, rows, round(time.monotonic() - began, 3))


def _check_versions(source: Path, alias: str) -> None:
    """The source must not be of a newer version than this code, and the target must be migrated as far."""
    moved = set(MigrationRecorder(connections[SOURCE_ALIAS]).applied_migrations())
    present = set(MigrationRecorder(connections[alias]).applied_migrations())
    if missing := sorted(f"{app}.{name}" for app, name in moved - present):
        raise BackupError(
            f"{source} has migrations the target lacks ({', '.join(missing[:3])}): upgrade this installation "
            "and run 'python manage.py migrate' on the target first. Nothing was moved."
        )
