"""Backup names and how paths are shown: what cleanup reads and prints for every file."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from backup_tasks.core import layout


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    return ZoneInfo("Europe/Berlin")


def test_stamp_of_reads_the_plant_time_in_our_names(berlin):
    assert layout.stamp_of(layout.DB, "db_backup_20250111_143022.sqlite3") == datetime(
        2025, 1, 11, 14, 30, 22, tzinfo=berlin
    )
    assert layout.stamp_of(layout.CSV, "readings_20251231_235959.csv") == datetime(
        2025, 12, 31, 23, 59, 59, tzinfo=berlin
    )


@pytest.mark.parametrize(
    "name",
    [
        "db_backup_20251311_000000.sqlite3",  # month 13
        "db_backup_20250230_000000.sqlite3",  # 30 February
        "db_backup_20250111_246000.sqlite3",  # 24:60
        "db_backup_20250111_143060.sqlite3",  # second 60
        "db_backup_2025011_1430220.sqlite3",
        "db_backup_20250111_143022.sqlite3.bak",
        "readings_20250111_143022.sqlite3",
        ".db_backup_20250111_143022.sqlite3.1a2b3c4d.tmp",
        "db_backup_20250111_143022.sqlite3\n",  # $ would match before a final newline
    ],
)
def test_stamp_of_ignores_foreign_names_and_impossible_times(berlin, name):
    assert layout.stamp_of(layout.DB, name) is None


def test_display_strs_shows_paths_as_display_str_does(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "backups" / "database").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    kept = real / "backups" / "database" / "db_backup_20250111_143022.sqlite3"
    kept.touch()
    paths = [
        kept,
        tmp_path / "link" / "backups" / "database" / "db_backup_20250111_143022.sqlite3",
        str(real / "backups" / "database" / "db_backup_20240101_000000.sqlite3"),  # already removed
        tmp_path / "elsewhere" / "readings_20250111_143022.csv",  # outside the working directory
    ]
    monkeypatch.chdir(real)

    assert list(layout.display_strs(paths)) == [layout.display_str(path) for path in paths]
    assert list(layout.display_strs(paths))[:3] == [
        "backups/database/db_backup_20250111_143022.sqlite3",
        "backups/database/db_backup_20250111_143022.sqlite3",
        "backups/database/db_backup_20240101_000000.sqlite3",
    ]


def test_cleanup_prints_each_removed_backup_relative_to_the_working_directory(project):
    database = project.backups / "database"
    database.mkdir(parents=True)
    for name in ("db_backup_20200101_000000.sqlite3", "db_backup_20200102_000000.sqlite3", "notes.txt"):
        (database / name).write_bytes(b"x")

    result = project.manage("backup_database", "--cleanup", check=True)

    assert result.stdout.splitlines() == [
        "Removed backups/database/db_backup_20200101_000000.sqlite3",
        "Removed backups/database/db_backup_20200102_000000.sqlite3",
        "Cleanup complete (keep 30 days): removed 2 backups (2 bytes freed), kept 0.",
    ]
    assert [p.name for p in database.iterdir()] == ["notes.txt"]
