"""Database snapshots: consistent under a live writer, complete, and restorable."""

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import PROJECT


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
