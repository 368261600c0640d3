"""SQLite's locks survive everything we do to the live database.

POSIX advisory locks belong to a process and a file: closing any descriptor
of the file drops every lock the process holds on it, those of SQLite's own
connections included. A web server or worker that read the live database's
header with open() would leave SQLite believing it holds locks it has lost,
and another process could checkpoint and reset the WAL under it.
"""

import io
import os
import sqlite3
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.urls import reverse

from backup_tasks.models import BackupRun
from backup_tasks.services.runs import recorded

from .conftest import operator

pytestmark = pytest.mark.django_db(transaction=True)


def locks_held(path: Path, pid: int) -> list[str]:
    """The POSIX locks process pid holds on path, as /proc/locks lists them."""
    info = os.stat(path)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    held = []
    with open("/proc/locks") as table:
        for line in table:
            fields = line.split()
            if fields[1] == "->":  # a lock waiting for this one: not held
                continue
            if fields[1] == "POSIX" and fields[4] == str(pid) and fields[5] == device:
                held.append(f"{fields[3]} {fields[6]}-{fields[7]}")
    return held


def run_check() -> None:
    with pytest.raises(SystemExit):  # no snapshot yet: CRITICAL
        call_command("backup_database", "--check", stdout=io.StringIO())


def run_status() -> None:
    call_command("backup_database", "--status", stdout=io.StringIO())


def run_snapshot() -> None:
    call_command("backup_database", "--type", "db", stdout=io.StringIO())


def run_export() -> None:
    call_command("backup_database", "--type", "csv", stdout=io.StringIO(), stderr=io.StringIO())


def run_recorder() -> None:
    with recorded(BackupRun.Kind.VERIFY, trigger="test") as run:
        run.details = {"files": 0}


def open_dashboard(client) -> None:
    client.force_login(operator("vera", "view_dashboard"))
    assert client.get(reverse("backup_tasks:dashboard")).status_code == 200
    assert client.get(reverse("backup_tasks:status")).status_code == 200


ENTRY_POINTS = {
    "--check": run_check,
    "--status": run_status,
    "snapshot": run_snapshot,
    "CSV export": run_export,
    "run recorder": run_recorder,
    "dashboard": open_dashboard,
}


@pytest.fixture
def live_reader():
    """The live database with a connection of this process reading it, and the locks that holds."""
    live = Path(connection.settings_dict["NAME"])
    # Start from no connection at all, so the lock below is this reader's own.
    connections.close_all()
    reader = sqlite3.connect(live)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        reader.execute("SELECT COUNT(*) FROM readings_reading").fetchone()
        # In WAL mode a connection keeps a read lock on the database file as
        # long as it is open: that is how the last one to close knows it is last.
        held = locks_held(live, os.getpid())
        assert held, "the reader holds no lock: the test proves nothing"
        yield live, held
    finally:
        reader.close()
        connections.close_all()


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_an_entry_point_keeps_the_locks_of_the_processes_own_connections(
    entry_point, live_reader, backup_dir, client
):
    live, held = live_reader

    step = ENTRY_POINTS[entry_point]
    step(client) if entry_point == "dashboard" else step()

    assert locks_held(live, os.getpid()) == held, f"{entry_point} dropped SQLite's locks"


def test_verifying_the_live_database_refuses_it_without_reading_it(live_reader, backup_dir):
    live, held = live_reader
    out = io.StringIO()

    with pytest.raises(CommandError):
        call_command("backup_database", "--verify", str(live), stdout=out)

    assert locks_held(live, os.getpid()) == held
    assert out.getvalue().splitlines()[0] == (
        f"UNKNOWN  {live}: the live database itself, not a backup: 'backup_database --type db' snapshots it"
    )


def test_restoring_the_live_database_onto_itself_is_refused_without_reading_it(live_reader, backup_dir):
    live, held = live_reader
    # A checksum beside it, as `sha256sum db.sqlite3 > db.sqlite3.sha256` would leave.
    Path(f"{live}.sha256").write_text(f"{'0' * 64}  {live.name}\n")
    try:
        with pytest.raises(CommandError) as refused:
            call_command("backup_database", "--restore", str(live), "--yes", stdout=io.StringIO())
    finally:
        Path(f"{live}.sha256").unlink()

    assert locks_held(live, os.getpid()) == held
    assert str(refused.value) == (
        f"{live} is the live database itself: restore a snapshot from {backup_dir / 'database'}. "
        "Nothing was restored."
    )
