"""One engine per database backend, picked from DATABASES[alias]["ENGINE"]."""

from importlib import import_module

from django.db import connections

from backup_tasks.engines.base import Engine

# Imported when picked: a SQLite plant never loads psycopg, a PostgreSQL one never sqlite3's code.
ENGINES: dict[str, str] = {
    "django.db.backends.sqlite3": "backup_tasks.engines.sqlite.SQLiteEngine",
    "django.db.backends.postgresql": "backup_tasks.engines.postgresql.PostgreSQLEngine",
}


def engine_class(backend: str) -> type[Engine]:
    path = ENGINES.get(backend)
    if path is None:
        return Engine
    module, name = path.rsplit(".", 1)
    return getattr(import_module(module), name)


def get_engine(alias: str = "default") -> Engine:
    settings_dict = connections[alias].settings_dict
    return engine_class(settings_dict["ENGINE"])(alias, settings_dict)


def engine_for_file(path) -> Engine:
    """The engine of a SQLite database file that is not one of DATABASES (the source of a move)."""
    return engine_class("django.db.backends.sqlite3")(
        "moving_from", {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path), "OPTIONS": {}}
    )
