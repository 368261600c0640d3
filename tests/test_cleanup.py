"""Cleanup removes our old backups by the time in their names, and nothing else."""

import os
import re
import time
from datetime import UTC, datetime

import pytest

from backup_tasks.core.errors import BackupError
from backup_tasks.services import cleanup as services

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def make(backup_dir, relative: str, content: bytes = b"x") -> None:
    path = backup_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture
def tree(backup_dir):
    for name in (
        "database/db_backup_20250101_080000.sqlite3",  # 59 days old
        "database/db_backup_20250130_115959.sqlite3",  # 30 days and 1 s old
        "database/db_backup_20250130_120000.sqlite3",  # exactly 30 days old: kept
        "database/db_backup_20250228_120000.sqlite3",
        "csv_exports/readings_20250101_080000.csv",
        "csv_exports/readings_20250228_120000.csv",
        "json_exports/readings_20250101_080000.json",
        "json_exports/readings_20250301_115900.json",
    ):
        make(backup_dir, name, b"0123456789")
    # Not ours: never touched, however old.
    for name in (
        "database/my_copy_20200101.sqlite3",
        "database/db_backup_20200101_080000.sqlite3.bak",
        "csv_exports/readings_2020.csv",
        "csv_exports/notes.txt",
        "old_stuff.csv",
    ):
        make(backup_dir, name)
    return backup_dir


def listing(backup_dir) -> list[str]:
    return sorted(
        str(p.relative_to(backup_dir))
        for p in backup_dir.rglob("*")
        if p.is_file() and p.name != "scheduled_backup.log"
    )


def test_cleanup_removes_only_our_backups_older_than_the_limit(tree):
    result = services.cleanup_old_backups(days_to_keep=30, now=NOW)

    assert sorted(result.removed) == sorted(
        str(tree / name)
        for name in (
            "database/db_backup_20250101_080000.sqlite3",
            "database/db_backup_20250130_115959.sqlite3",
            "csv_exports/readings_20250101_080000.csv",
            "json_exports/readings_20250101_080000.json",
        )
    )
    assert result.freed_bytes == 40
    assert result.kept == 4
    assert listing(tree) == [
        "csv_exports/notes.txt",
        "csv_exports/readings_2020.csv",
        "csv_exports/readings_20250228_120000.csv",
        "database/db_backup_20200101_080000.sqlite3.bak",
        "database/db_backup_20250130_120000.sqlite3",
        "database/db_backup_20250228_120000.sqlite3",
        "database/my_copy_20200101.sqlite3",
        "json_exports/readings_20250301_115900.json",
        "old_stuff.csv",
    ]


def test_cleanup_defaults_to_backup_keep_days(settings, tree):
    settings.BACKUP_KEEP_DAYS = 1
    result = services.cleanup_old_backups(now=NOW)
    assert result.days_to_keep == 1
    # Kept: 2025-02-28 12:00 (exactly one day) twice, and 2025-03-01 11:59.
    assert result.kept == 3


def test_cleanup_judges_by_the_plant_time_in_the_name(settings, backup_dir):
    settings.TIME_ZONE = "America/New_York"  # UTC-5 in winter
    make(backup_dir, "database/db_backup_20250130_065959.sqlite3")  # 11:59:59 UTC: older than 30 days
    make(backup_dir, "database/db_backup_20250130_070000.sqlite3")  # 12:00:00 UTC: exactly 30 days

    result = services.cleanup_old_backups(days_to_keep=30, now=NOW)

    assert [os.path.basename(p) for p in result.removed] == ["db_backup_20250130_065959.sqlite3"]


def test_cleanup_removes_temporary_files_of_crashed_runs_but_not_of_running_ones(backup_dir):
    make(backup_dir, "database/.db_backup_20250301_100000.sqlite3.ab12cd34.tmp")
    make(backup_dir, "csv_exports/.readings_20250301_115955.csv.00ff00ff.tmp")
    old = time.time() - 2 * 3600
    os.utime(backup_dir / "database/.db_backup_20250301_100000.sqlite3.ab12cd34.tmp", (old, old))

    result = services.cleanup_old_backups(days_to_keep=30)

    assert result.removed_temporary == [
        str(backup_dir / "database/.db_backup_20250301_100000.sqlite3.ab12cd34.tmp")
    ]
    assert listing(backup_dir) == ["csv_exports/.readings_20250301_115955.csv.00ff00ff.tmp"]


def test_cleanup_refuses_to_keep_zero_days(tree):
    before = listing(tree)
    with pytest.raises(BackupError, match="Days to keep must be at least 1"):
        services.cleanup_old_backups(days_to_keep=0, now=NOW)
    assert listing(tree) == before


def test_cleanup_command_reports_what_it_removed(project):
    for name in ("database/db_backup_20000101_000000.sqlite3", "csv_exports/readings_20000101_000000.csv"):
        make(project.backups, name, b"x" * 2048)
    make(project.backups, "csv_exports/readings_29990101_000000.csv")

    result = project.manage("backup_database", "--cleanup", "--days", "7", check=True)

    assert result.stdout.splitlines() == [
        "Removed backups/database/db_backup_20000101_000000.sqlite3",
        "Removed backups/csv_exports/readings_20000101_000000.csv",
        "Cleanup complete (keep 7 days): removed 2 backups (4.0 KB freed), kept 1.",
    ]
    assert project.files() == ["csv_exports/readings_29990101_000000.csv"]


def test_the_log_rotates_by_size(settings, backup_dir):
    settings.BACKUP_LOG_MAX_BYTES = 400
    settings.BACKUP_LOG_BACKUP_COUNT = 2
    for _ in range(20):
        services.cleanup_old_backups(days_to_keep=30)

    logs = sorted(p.name for p in backup_dir.iterdir() if p.name.startswith("scheduled_backup.log"))
    assert logs == ["scheduled_backup.log", "scheduled_backup.log.1", "scheduled_backup.log.2"]
    assert all((backup_dir / name).stat().st_size <= 400 for name in logs)
    assert "Cleanup finished: 0 removed" in (backup_dir / "scheduled_backup.log").read_text()


def snapshot_files(project, first_utc: datetime, hours: int, zone: str) -> list[str]:
    """Hourly snapshot files with checksums, named in the plant's zone, mtime at their real hour."""
    import hashlib
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    folder = project.backups / "database"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(hours):
        moment = first_utc + timedelta(hours=i)
        name = f"db_backup_{moment.astimezone(ZoneInfo(zone)):%Y%m%d_%H%M%S}.sqlite3"
        while name in names:
            name = name.replace("00.sqlite3", "01.sqlite3")
        path = folder / name
        path.write_bytes(f"snapshot {i}".encode())
        (folder / f"{name}.sha256").write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}\n")
        os.utime(path, (moment.timestamp() + 2, moment.timestamp() + 2))
        names.append(name)
    return names


def test_dry_run_lists_exactly_what_the_real_run_removes(project):
    project.time_zone = "Europe/Berlin"
    snapshot_files(project, datetime(2026, 10, 21, 22, 0, tzinfo=UTC), 7 * 24 + 1, "Europe/Berlin")
    (project.backups / "database" / "my_own_copy.sqlite3").write_bytes(b"mine")
    policy = ["--keep-hourly", "6", "--keep-daily", "3", "--keep-weekly", "2"]

    dry = project.manage("backup_database", "--cleanup", "--dry-run", *policy, check=True).stdout.splitlines()
    would = [line.removeprefix("Would remove ") for line in dry if line.startswith("Would remove ")]
    keep = [line.removeprefix("Keep ").split(":")[0] for line in dry if line.startswith("Keep ")]
    real = project.manage("backup_database", "--cleanup", *policy, check=True).stdout.splitlines()
    removed = [line.removeprefix("Removed ") for line in real if line.startswith("Removed ")]

    assert dry[-1] == (
        "Dry run (keep 6 hourly, 3 daily, 2 weekly, 0 monthly): would remove 160 backups (1.8 KB), keep 9. "
        "Nothing was removed."
    )
    assert removed == would
    assert len(keep) == 9
    left = sorted(p.name for p in (project.backups / "database").glob("db_backup_*.sqlite3"))
    assert left == sorted(k.removeprefix("backups/database/") for k in keep)
    # Week 43 ends on the 25-hour Sunday of the clock change; its last snapshot is the weekly one.
    assert "Keep backups/database/db_backup_20261025_230000.sqlite3: weekly 2/2" in dry
    assert "Keep backups/database/db_backup_20261028_230000.sqlite3: hourly 1/6, daily 1/3, weekly 1/2" in dry
    assert (project.backups / "database" / "my_own_copy.sqlite3").read_bytes() == b"mine"
    checksums = sorted(
        p.name.removesuffix(".sha256") for p in (project.backups / "database").glob("*.sha256")
    )
    assert checksums == left


def test_a_damaged_snapshot_is_not_counted_and_the_newest_verified_one_stays(project):
    for _ in range(3):
        project.manage("backup_database", "--type", "db", check=True)
    names = sorted(p.name for p in (project.backups / "database").glob("*.sqlite3"))
    newest = project.backups / "database" / names[-1]
    newest.write_bytes(newest.read_bytes()[:-4096])  # truncated on disk
    project.manage("backup_database", "--verify")  # records the damage

    out = project.manage("backup_database", "--cleanup", "--dry-run", "--keep-daily", "1", check=True).stdout

    lines = out.splitlines()
    assert lines[:3] == [
        f"Would remove backups/database/{names[0]}",
        f"Keep backups/database/{names[1]}: daily 1/1",
        f"Keep backups/database/{names[2]}: damaged, kept 30 days for inspection",
    ]
    assert re.fullmatch(
        r"Dry run \(keep 0 hourly, 1 daily, 0 weekly, 0 monthly\): would remove 1 backups \([\d.]+ KB\), keep 2\. "
        r"Nothing was removed\.",
        lines[3],
    )
