"""Database snapshots: consistent under a live writer, complete, and restorable."""

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from backup_tasks.engines import sqlite as sqlite_engine
from backup_tasks.engines.sqlite import DamagedCopy, check_copy
from backup_tasks.models import BackupRun
from backup_tasks.storage import safefile
from tests.conftest import PROJECT, wait_until

INDEX = "readings_reading_timestamp_e3ac056c"


def rows(db: Path, where: str = "") -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT id, water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
            f" FROM readings_reading {where} ORDER BY id"
        ).fetchall()


def only_snapshot(project) -> Path:
    (snapshot,) = (project.backups / "database").glob("*.sqlite3")
    return snapshot


def test_snapshot_holds_exactly_the_databases_rows_in_one_plain_file(project):
    project.manage("simulate_readings", "--days", "0.5", check=True)

    project.manage("backup_database", "--type", "db", check=True)

    snapshot = only_snapshot(project)
    assert rows(snapshot) == rows(project.db)
    assert len(rows(snapshot)) == 21_600
    with sqlite3.connect(snapshot) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Users, sessions and migrations come along: the whole database, not just readings.
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"auth_user", "django_migrations", "readings_reading"} <= tables
    # One plain file and its checksum: no -wal or -shm beside it.
    assert sorted(p.name for p in snapshot.parent.iterdir()) == [snapshot.name, f"{snapshot.name}.sha256"]


@pytest.mark.slow
def test_snapshot_of_a_200_mb_database_under_a_writer_every_20_ms(project, tmp_path):
    project.manage("simulate_readings", "--days", "7", check=True)
    # Ballast brings the file past 200 MB so the snapshot takes long enough
    # for many of the writer's inserts to land while it runs.
    with sqlite3.connect(project.db) as conn:
        conn.execute("CREATE TABLE ballast (data BLOB)")
        conn.executemany("INSERT INTO ballast VALUES (randomblob(1048576))", [()] * 180)
    assert project.db.stat().st_size > 200 * 1024 * 1024

    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, str(PROJECT / "tests" / "sensor_writer.py"), str(stop)],
        # A one-second busy timeout: were the snapshot to block writers (as it
        # does outside WAL mode), inserts would fail instead of waiting.
        env={**project.env, "SQLITE_BUSY_TIMEOUT": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(rows(project.db, "WHERE id > 302400")) < 20:  # the writer is running
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.05)
        committed_before = rows(project.db)

        project.manage("backup_database", "--type", "db", check=True)

        time.sleep(0.3)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=30)
    report = json.loads(out)

    assert report["failed"] == 0, report["errors"]
    assert report["written"] > 40
    snapshot = only_snapshot(project)
    with sqlite3.connect(snapshot) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    in_snapshot = rows(snapshot)
    assert in_snapshot[: len(committed_before)] == committed_before
    # Inserts made during the snapshot all landed in the live database.
    assert len(rows(project.db)) == 302_400 + report["written"]


def add_readings(db: Path, count: int) -> None:
    """Readings two seconds apart, written straight into the database."""
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint,"
            " pid_output, timestamp) VALUES (25.0, 24.0, 60.0, 25.0, 90.0,"
            " datetime('2025-01-01', '+' || (? * 2) || ' seconds'))",
            [(n,) for n in range(count)],
        )


def damage_a_leaf_page(db: Path, btree: str) -> None:
    """Overwrite one leaf page of a table or index B-tree with garbage, as a bad disk would."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = [
            n
            for (n,) in conn.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", [btree]
            )
        ]
    with db.open("r+b") as handle:
        handle.seek(4096 * (pages[len(pages) // 2] - 1))
        handle.write(b"\xa5" * 4096)


@pytest.mark.parametrize("btree", ["readings_reading", INDEX])
def test_a_damaged_page_of_any_btree_fails_the_snapshot_and_leaves_nothing(project, btree):
    # The backup API copies pages without reading them: without the check of the
    # copy, this snapshot would be written and named like a good one.
    add_readings(project.db, 20_000)
    damage_a_leaf_page(project.db, btree)

    result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(
        f"Error: The database {project.db} is corrupt (database disk image is malformed)"
    )
    assert project.files() == []
    assert list(project.backups.rglob(".*.tmp")) == []


def test_an_index_that_lost_entries_fails_the_snapshot(project):
    add_readings(project.db, 5_000)
    with sqlite3.connect(project.db) as conn:
        (sql,) = conn.execute("SELECT sql FROM sqlite_schema WHERE name = ?", [INDEX]).fetchone()
        # An index holding only some rows, while the schema says it holds them all.
        conn.execute(f"DROP INDEX {INDEX}")
        conn.execute(f"{sql} WHERE id > 1000")
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_schema SET sql = ? WHERE name = ?", [sql, INDEX])

    result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: The database {project.db} is corrupt (integrity check: row 1 missing from index {INDEX}): "
        "restore it from the last good backup. Earlier backups were not touched.\n"
    )
    assert project.files() == []


def test_an_index_whose_entries_disagree_with_its_rows_fails_the_snapshot(project):
    # As many entries as rows, each readable: only a cell-by-cell check sees
    # that the index holds timestamps where the schema says humidity.
    add_readings(project.db, 5_000)
    with sqlite3.connect(project.db) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_schema SET sql = ? WHERE name = ?",
            [f'CREATE INDEX "{INDEX}" ON "readings_reading" ("humidity")', INDEX],
        )

    result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 1
    assert result.stderr.startswith(
        f"Error: The database {project.db} is corrupt (integrity check: row 1 missing from index {INDEX})"
    )
    assert project.files() == []


def test_the_check_of_a_copy_counts_its_readings_and_refuses_a_short_or_foreign_file(project, tmp_path):
    add_readings(project.db, 1_000)
    copy = tmp_path / "copy.sqlite3"
    with sqlite3.connect(project.db) as source, sqlite3.connect(copy) as target:
        source.backup(target)

    assert check_copy(copy) == (1_000, "2025-01-01 00:33:18")

    size = copy.stat().st_size
    with copy.open("r+b") as handle:
        handle.truncate(size - 4096)
    with pytest.raises(DamagedCopy, match=f"its copy has {size - 4096:,} bytes where its header says"):
        check_copy(copy)
    copy.write_bytes(b"id,temperature\n" * 500)
    with pytest.raises(DamagedCopy, match="not a SQLite database"):
        check_copy(copy)


def test_a_growing_file_goes_to_disk_chunk_by_chunk_while_it_is_written(tmp_path, monkeypatch):
    flushed: list[tuple[int, int]] = []
    monkeypatch.setattr(
        safefile, "_sync_range_function", lambda: lambda fd, start, length: flushed.append((start, length))
    )
    path = tmp_path / "big.tmp"
    megabyte = 1 << 20

    with safefile.written_back(path, chunk=megabyte), path.open("wb") as handle:
        for written in range(megabyte, 5 * megabyte, megabyte):
            handle.write(bytes(megabyte))
            handle.flush()
            # Each new megabyte is written back while the file is still growing.
            wait_until(
                lambda end=written: flushed and sum(flushed[-1]) == end, what="the new part written back"
            )

    ends = [0] + [start + length for start, length in flushed]
    assert [start for start, _ in flushed] == ends[:-1]  # one range after the other, none twice
    assert ends[-1] == 4 * megabyte


def test_a_snapshot_is_written_back_with_the_kernels_own_call_on_linux(tmp_path):
    sync_range = safefile._sync_range_function()
    path = tmp_path / "file"
    path.write_bytes(os.urandom(1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_range(fd, 0, 1 << 20)  # raises if neither sync_file_range nor the fallback works
    finally:
        os.close(fd)
    assert sync_range.__name__ == "sync_range"  # sync_file_range was found, not the fdatasync fallback


@pytest.mark.django_db(transaction=True)
def test_a_copy_that_fails_its_check_does_not_call_a_sound_database_corrupt(backup_dir, monkeypatch):
    live = Path(connection.settings_dict["NAME"])
    add_readings(live, 5_000)
    checked = sqlite_engine.check_copy

    def check_on_a_bad_disk(path: Path) -> tuple[int, str | None]:
        # Stands in for a backup disk that garbles what is written to it, which
        # cannot be had here: the copy is damaged between writing and checking.
        damage_a_leaf_page(path, INDEX)
        return checked(path)

    monkeypatch.setattr(sqlite_engine, "check_copy", check_on_a_bad_disk)

    with pytest.raises(CommandError) as failed:
        call_command("backup_database", "--type", "db", stdout=io.StringIO())

    message = str(failed.value)
    assert message == (
        f"The snapshot of the database {live} failed its check (database disk image is malformed), "
        "but the live database was checked again and is sound: nothing needs restoring, "
        "run the snapshot again."
    )
    [run] = BackupRun.objects.all()
    assert (run.kind, run.status, run.error) == ("snapshot", "failed", message)
    assert list((backup_dir / "database").iterdir()) == []


# Run in a process of its own on the project's database, as a backup task runs in the worker.
CHECK_THEN_WRITE = """
import subprocess
import sys

import django

django.setup()
from backup_tasks.engines import get_engine
from backup_tasks.models import BackupRun

run = BackupRun.objects.create(kind="snapshot")  # this process holds a connection now
get_engine("default").check_available()  # as every backup does before it starts
# Meanwhile another process opens the database and closes it (a web request, a status query).
subprocess.run([sys.executable, "-c", sys.argv[1]], check=True)
run.status = "succeeded"
run.save()
# What the others see while this process goes on, as a worker does after its task.
subprocess.run([sys.executable, "-c", sys.argv[1]], check=True)
"""
ANOTHER_PROCESS = """
import os
import sqlite3

db = sqlite3.connect(os.environ["DATABASE_URL"].removeprefix("sqlite:///"))
print(db.execute("SELECT kind, status FROM backup_tasks_backuprun").fetchall())
db.close()
"""


def test_checking_the_database_keeps_the_writes_that_follow_it(project):
    # Closing a descriptor of its own on the database file would drop every POSIX lock
    # the process holds on it, SQLite's too: the other process would then take itself
    # for the last connection, check the WAL in and delete it, and the run's outcome,
    # written afterwards into the deleted WAL, would be seen by nobody (and lost when
    # a worker's pool process ends without closing its connection).
    seen = subprocess.run(
        [sys.executable, "-c", CHECK_THEN_WRITE, ANOTHER_PROCESS],
        env=project.env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()

    assert seen == ["[('snapshot', 'running')]", "[('snapshot', 'succeeded')]"]
