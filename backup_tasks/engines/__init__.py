"""One engine per database backend, picked from DATABASES[alias]["ENGINE"]."""

from django.db import connections

from backup_tasks.engines.base import Engine
from backup_tasks.engines.postgresql import PostgreSQLEngine
from backup_tasks.engines.sqlite import SQLiteEngine

ENGINES: dict[str, type[Engine]] = {
    "django.db.backends.sqlite3": SQLiteEngine,
    "django.db.backends.postgresql": PostgreSQLEngine,
}


def get_engine(alias: str = "default") -> Engine:
    settings_dict = connections[alias].settings_dict
    engine_class = ENGINES.get(settings_dict["ENGINE"], Engine)
    return engine_class(alias, settings_dict)


def engine_for_file(path) -> Engine:
    """The engine of a SQLite database file that is not one of DATABASES (the source of a move)."""
    return SQLiteEngine(
        "moving_from", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": {}}
    )
