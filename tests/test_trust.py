"""Trust the backups: verification, guarded restore, drills, monitoring and alerts."""

import hashlib
import os
import pty
import re
import resource
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.test_command import corrupt_middle_page


def readings(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM readings_reading ORDER BY id").fetchall()


def runs(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT kind, status, trigger, rows, error FROM backup_tasks_backuprun ORDER BY id"
        ).fetchall()


def reseal(path: Path) -> None:
    """Write a checksum that matches the file as it is now (a 'trusted' bad file)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def backed_up(project):
    """A project with a day of readings and one complete backup."""
    project.manage("simulate_readings", "--days", "1", check=True)
    project.manage("backup_database", check=True)
    snapshot = next((project.backups / "database").glob("*.sqlite3"))
    csv = next((project.backups / "csv_exports").glob("*.csv"))
    json = next((project.backups / "json_exports").glob("*.json"))
    return project, snapshot, csv, json


def test_every_door_of_the_command_records_a_run(backed_up):
    project, *_ = backed_up
    project.manage("backup_database", "--type", "csv", check=True)
    project.manage("backup_database", "--cleanup", check=True)

    assert runs(project.db) == [
        ("snapshot", "succeeded", "command: backup_database", 43_200, ""),
        ("csv", "succeeded", "command: backup_database", 43_200, ""),
        ("json", "succeeded", "command: backup_database", 43_200, ""),
        ("csv", "succeeded", "command: backup_database --type csv", 43_200, ""),
        ("cleanup", "succeeded", "command: backup_database --cleanup", None, ""),
    ]


def test_checksums_work_with_sha256sum_on_a_copy(backed_up, tmp_path):
    project, snapshot, csv, json = backed_up
    usb = tmp_path / "usb"
    usb.mkdir()
    for path in (snapshot, csv, json):
        for item in (path, path.with_name(path.name + ".sha256")):
            (usb / item.name).write_bytes(item.read_bytes())

    result = subprocess.run(
        ["sha256sum", "-c", *sorted(p.name for p in usb.glob("*.sha256"))],
        cwd=usb,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0
    assert result.stdout.count(": OK") == 3


def test_verify_passes_intact_backups(backed_up):
    project, snapshot, csv, json = backed_up

    result = project.manage("backup_database", "--verify", check=True)

    assert result.stdout.splitlines() == [
        f"OK       backups/database/{snapshot.name}: integrity ok, 43,200 readings",
        f"OK       backups/csv_exports/{csv.name}: 43,200 readings",
        f"OK       backups/json_exports/{json.name}: 43,200 readings",
        "Verified 3 files: 3 OK.",
    ]
    assert runs(project.db)[-1][:2] == ("verify", "succeeded")


def test_verify_names_a_flipped_byte_a_truncated_copy_a_missing_file_and_an_unknown_one(backed_up):
    project, snapshot, csv, json = backed_up
    flip_byte(snapshot)
    csv.write_bytes(csv.read_bytes()[:-5000])
    json.unlink()
    stranger = project.backups / "csv_exports" / "readings_20200101_000000.csv"
    stranger.write_bytes(csv.read_bytes())

    result = project.manage("backup_database", "--verify")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"FAILED   backups/database/{snapshot.name}: checksum mismatch")
    assert lines[1] == (
        "UNKNOWN  backups/csv_exports/readings_20200101_000000.csv: no checksum recorded "
        "(no readings_20200101_000000.csv.sha256 beside it)"
    )
    assert lines[2].startswith(f"FAILED   backups/csv_exports/{csv.name}: checksum mismatch")
    assert (
        lines[3]
        == f"MISSING  backups/json_exports/{json.name}: the file is gone (its checksum is still recorded)"
    )
    assert lines[4] == "Verified 4 files: 2 FAILED, 1 MISSING, 1 UNKNOWN."
    assert result.stderr == "Error: 4 of 4 backups failed verification (see above).\n"
    kind, status, _, _, error = runs(project.db)[-1]
    assert (kind, status) == ("verify", "failed")
    assert json.name in error


def test_verify_checks_content_and_recorded_row_counts_of_given_files(backed_up):
    project, snapshot, csv, json = backed_up
    # A truncated export whose checksum was rewritten to match still fails its content check.
    json.write_text("".join(json.read_text().splitlines(keepends=True)[:100]))
    reseal(json)
    # An export with a row missing (checksum rewritten) no longer matches the recorded count.
    lines = csv.read_bytes().split(b"\r\n")
    csv.write_bytes(b"\r\n".join(lines[:5] + lines[6:]))
    reseal(csv)

    result = project.manage("backup_database", "--verify", str(json), str(csv))

    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert (
        out[0] == f"FAILED   backups/json_exports/{json.name}: the array is not closed: the file is truncated"
    )
    assert out[1] == (
        f"FAILED   backups/csv_exports/{csv.name}: 43,199 readings, but 43,200 were recorded when it was written"
    )


def at_most_1_gb():
    """Run in the child before exec: a reader without limits fails with MemoryError, not the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_verify_reads_a_checksum_file_only_when_regular_and_only_its_first_line(backed_up, tmp_path):
    project, snapshot, csv, json = backed_up
    good = json.with_name(json.name + ".sha256").read_text()
    (tmp_path / "elsewhere.sha256").write_text(good)
    snapshot.with_name(snapshot.name + ".sha256").unlink()
    snapshot.with_name(snapshot.name + ".sha256").symlink_to("/dev/zero")  # endless
    csv.with_name(csv.name + ".sha256").unlink()
    os.mkfifo(csv.with_name(csv.name + ".sha256"))  # nobody ever writes to it
    # Our line, then 4 GB more (sparse): only the first line is read.
    with json.with_name(json.name + ".sha256").open("a") as sidecar:
        sidecar.truncate(4 << 30)

    result = project.manage("backup_database", "--verify", timeout=60, preexec_fn=at_most_1_gb)

    assert result.stdout.splitlines() == [
        f"UNKNOWN  backups/database/{snapshot.name}: no checksum recorded "
        f"({snapshot.name}.sha256 is a symbolic link to /dev/zero, not a regular file)",
        f"UNKNOWN  backups/csv_exports/{csv.name}: no checksum recorded "
        f"({csv.name}.sha256 is a named pipe (FIFO), not a regular file)",
        f"OK       backups/json_exports/{json.name}: 43,200 readings",
        "Verified 3 files: 1 OK, 2 UNKNOWN.",
    ]
    assert result.stderr == "Error: 2 of 3 backups failed verification (see above).\n"
    assert result.returncode == 1

    # A link to a good checksum file is not followed either.
    json.with_name(json.name + ".sha256").unlink()
    json.with_name(json.name + ".sha256").symlink_to(tmp_path / "elsewhere.sha256")
    result = project.manage("backup_database", "--verify", str(json), timeout=60)
    assert result.stdout.splitlines()[0] == (
        f"UNKNOWN  backups/json_exports/{json.name}: no checksum recorded ({json.name}.sha256 is a "
        f"symbolic link to {tmp_path / 'elsewhere.sha256'}, not a regular file)"
    )


def test_restore_does_not_wait_on_a_checksum_file_that_is_a_pipe(backed_up):
    project, snapshot, *_ = backed_up
    snapshot.with_name(snapshot.name + ".sha256").unlink()
    os.mkfifo(snapshot.with_name(snapshot.name + ".sha256"))

    before = readings(project.db)
    result = project.manage("backup_database", "--restore", str(snapshot), "--yes", timeout=60)

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {snapshot} has no checksum to trust: {snapshot.name}.sha256 is a named pipe (FIFO), "
        "not a regular file. Nothing was restored.\n"
    )
    assert readings(project.db) == before


def test_verify_and_restore_say_what_is_there_instead_of_a_backup(backed_up):
    project, snapshot, csv, json = backed_up
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "folder.sqlite3").mkdir()
    os.mkfifo(elsewhere / "pipe.csv")
    (elsewhere / "link.sqlite3").symlink_to(snapshot)
    json.unlink()  # its checksum stays

    result = project.manage(
        "backup_database",
        "--verify",
        "elsewhere/folder.sqlite3",
        "elsewhere/pipe.csv",
        "elsewhere/link.sqlite3",
        "elsewhere/nowhere.json",
        str(json),
        timeout=60,
    )

    assert result.stdout.splitlines() == [
        "UNKNOWN  elsewhere/folder.sqlite3: is a directory, not a regular file",
        "UNKNOWN  elsewhere/pipe.csv: is a named pipe (FIFO), not a regular file",
        f"UNKNOWN  elsewhere/link.sqlite3: is a symbolic link to {snapshot}, not a regular file",
        "MISSING  elsewhere/nowhere.json: does not exist",
        f"MISSING  backups/json_exports/{json.name}: the file is gone (its checksum is still recorded)",
        "Verified 5 files: 2 MISSING, 3 UNKNOWN.",
    ]
    assert result.returncode == 1

    before = readings(project.db)
    for given, what in (
        ("elsewhere/folder.sqlite3", "is a directory, not a regular file"),
        ("elsewhere/pipe.csv", "is a named pipe (FIFO), not a regular file"),
        ("elsewhere/link.sqlite3", f"is a symbolic link to {snapshot}, not a regular file"),
        ("elsewhere/nowhere.sqlite3", "does not exist"),
    ):
        result = project.manage("backup_database", "--restore", given, "--yes", timeout=60)
        assert result.stderr == f"Error: Cannot restore {given}: it {what}. Nothing was restored.\n"
        assert result.returncode == 1
    assert readings(project.db) == before


def test_verify_checks_outside_files_without_touching_the_installations_health(backed_up):
    project, snapshot, csv, json = backed_up
    project.manage("backup_database", "--drill", check=True)
    healthy = check(project)
    assert healthy[0] == 0
    history = runs(project.db)
    usb = project.root / "usb"
    usb.mkdir()
    # Another application's database, named like a snapshot of ours, with a matching checksum.
    other = usb / "db_backup_20250111_080000.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE readings_reading (id INTEGER PRIMARY KEY)")
    reseal(other)
    # A copy of our CSV export that lost its last reading on the way, with the original checksum.
    data = csv.read_bytes()
    (usb / csv.name).write_bytes(data[: data.rstrip(b"\r\n").rfind(b"\r\n") + 2])
    (usb / f"{csv.name}.sha256").write_bytes(csv.with_name(csv.name + ".sha256").read_bytes())

    result = project.manage("backup_database", "--verify", f"usb/{other.name}", f"usb/{csv.name}")

    assert result.stdout.splitlines() == [
        f"FAILED   usb/{other.name}: not a smartAquarium database (it has no migration history)",
        f"FAILED   usb/{csv.name}: checksum mismatch: the file changed after it was written",
        "Verified 2 files: 2 FAILED.",
    ]
    assert result.stderr == "Error: 2 of 2 backups failed verification (see above).\n"
    assert result.returncode == 1
    assert runs(project.db) == history  # no verification of this installation was recorded
    assert check(project) == healthy
    assert "Verification failed" not in (project.backups / "scheduled_backup.log").read_text()

    # With one of our backups among them, the run records our backup alone.
    result = project.manage("backup_database", "--verify", f"usb/{other.name}", str(json))
    assert result.stdout.splitlines()[1] == f"OK       backups/json_exports/{json.name}: 43,200 readings"
    assert result.returncode == 1
    assert runs(project.db) == [
        *history,
        ("verify", "succeeded", f"command: backup_database --verify usb/{other.name} {json}", None, ""),
    ]
    with sqlite3.connect(project.db) as conn:
        [details] = conn.execute(
            "SELECT details FROM backup_tasks_backuprun ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert details == '{"files": 1, "problems": []}'
    assert check(project) == healthy


def refuse(project, path: Path, message: str):
    before = readings(project.db)
    result = project.manage("backup_database", "--restore", str(path), "--yes")
    assert result.returncode == 1
    assert message in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert readings(project.db) == before
    return result


def test_restore_refuses_a_file_whose_checksum_does_not_match(backed_up):
    project, snapshot, *_ = backed_up
    flip_byte(snapshot)
    refuse(project, snapshot, "does not match its checksum")


def test_restore_refuses_a_corrupt_file(backed_up):
    project, snapshot, *_ = backed_up
    corrupt_middle_page(snapshot)
    reseal(snapshot)
    result = refuse(project, snapshot, "cannot be restored: ")
    assert "integrity check failed" in result.stderr or "malformed" in result.stderr


def test_restore_refuses_a_truncated_file(backed_up):
    project, snapshot, *_ = backed_up
    snapshot.write_bytes(snapshot.read_bytes()[: snapshot.stat().st_size // 2])
    reseal(snapshot)
    refuse(project, snapshot, "cannot be restored")


def test_restore_refuses_something_that_is_not_sqlite(backed_up):
    project, _, csv, _ = backed_up
    refuse(project, csv, "cannot be restored: not a SQLite database")


def test_restore_refuses_a_database_of_another_application(backed_up, tmp_path):
    project, *_ = backed_up
    other = tmp_path / "firefox_places.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE readings_reading (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    reseal(other)
    refuse(project, other, "is not a smartAquarium database")


def test_restore_refuses_a_snapshot_from_a_newer_schema(backed_up):
    project, snapshot, *_ = backed_up
    with sqlite3.connect(snapshot) as conn:
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('readings', '0042_future', '2030-01-01')"
        )
        conn.execute("PRAGMA journal_mode=DELETE")
    reseal(snapshot)
    refuse(
        project,
        snapshot,
        "comes from a newer version of smartAquarium (unknown migrations: readings.0042_future)",
    )


def test_restore_without_a_terminal_and_without_yes_refuses(backed_up):
    project, snapshot, *_ = backed_up
    before = readings(project.db)
    result = project.manage("backup_database", "--restore", str(snapshot), stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert result.stderr == (
        "Error: Refusing to restore without confirmation: run it in a terminal, or add --yes. Nothing was restored.\n"
    )
    assert readings(project.db) == before


def test_restore_asks_on_a_terminal_and_no_means_no(backed_up):
    project, snapshot, *_ = backed_up
    with sqlite3.connect(project.db) as conn:
        conn.execute("DELETE FROM readings_reading WHERE id > 40000")
    before = readings(project.db)
    leader, follower = pty.openpty()
    os.write(leader, b"no\n")
    try:
        result = project.manage("backup_database", "--restore", str(snapshot), stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert result.returncode == 1
    assert "This replaces the live database (40,000 readings) with" in result.stdout
    assert "(43,200 readings). A safety snapshot is taken first." in result.stdout
    assert result.stderr == "Error: Restore cancelled: the live database was not changed.\n"
    assert readings(project.db) == before


def test_restore_brings_back_deleted_readings_after_a_safety_snapshot(backed_up):
    project, snapshot, *_ = backed_up
    original = readings(project.db)
    with sqlite3.connect(project.db) as conn:
        conn.execute("DELETE FROM readings_reading WHERE id % 3 = 0")
    damaged = readings(project.db)

    result = project.manage("backup_database", "--restore", str(snapshot), "--yes", check=True)

    assert readings(project.db) == original
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Stop the web server and the Celery worker before restoring")
    safety = re.fullmatch(
        r"Safety snapshot of the live database: (backups/database/db_backup_\d{8}_\d{6}\.sqlite3)", lines[1]
    )
    assert safety, lines[1]
    assert lines[2] == f"Restored backups/database/{snapshot.name}: 28,800 readings before, 43,200 after."
    assert readings(project.root / safety.group(1)) == damaged
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The run history of before the restore is kept, and the restore is recorded.
    kinds = [(kind, status) for kind, status, *_ in runs(project.db)]
    assert kinds == [
        ("snapshot", "succeeded"),
        ("csv", "succeeded"),
        ("json", "succeeded"),
        ("snapshot", "succeeded"),
        ("restore", "succeeded"),
    ]


def test_drill_passes_on_a_good_snapshot(backed_up):
    project, snapshot, *_ = backed_up
    result = project.manage("backup_database", "--drill", check=True)
    assert result.stdout.startswith(
        f"Restore drill passed: backups/database/{snapshot.name} restored to a scratch copy with 43,200 readings"
    )
    assert runs(project.db)[-1][:2] == ("drill", "succeeded")
    assert sorted(p.name for p in snapshot.parent.iterdir()) == [snapshot.name, f"{snapshot.name}.sha256"]


def test_drill_fails_on_a_corrupted_snapshot(backed_up):
    project, snapshot, *_ = backed_up
    flip_byte(snapshot, offset=snapshot.stat().st_size - 3000)

    result = project.manage("backup_database", "--drill")

    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: {snapshot} does not match its checksum")
    kind, status, _, _, error = runs(project.db)[-1]
    assert (kind, status) == ("drill", "failed")
    assert "does not match its checksum" in error


def check(project, *args):
    result = project.manage("backup_database", "--check", *args)
    assert len(result.stdout.splitlines()) == 1
    return result.returncode, result.stdout.strip()


def test_check_exit_codes_for_fresh_stale_and_failed_states(backed_up):
    project, snapshot, *_ = backed_up
    code, line = check(project)
    assert code == 1
    assert line.startswith(f"BACKUP WARNING - newest verified snapshot {snapshot.name} is 0.0 h old")

    project.manage("backup_database", "--drill", check=True)
    assert check(project) == (
        0,
        f"BACKUP OK - newest verified snapshot {snapshot.name} is 0.0 h old; last runs succeeded",
    )

    with sqlite3.connect(project.db) as conn:
        conn.execute("UPDATE backup_tasks_backuprun SET started_at = datetime(started_at, '-3 hours')")
    code, line = check(project)
    assert code == 2
    assert line == f"BACKUP CRITICAL - newest verified snapshot {snapshot.name} is 3.0 h old (limit 2 h)"
    assert check(project, "--max-age", "4")[0] == 0

    flip_byte(snapshot)
    project.manage("backup_database", "--verify")
    code, line = check(project, "--max-age", "4")
    assert code == 2
    assert line.startswith("BACKUP CRITICAL - last verification failed at ")


def test_check_is_critical_without_any_snapshot(project):
    assert check(project) == (
        2,
        "BACKUP CRITICAL - no verified database snapshot yet: run 'python manage.py backup_database'",
    )


def test_check_judges_only_snapshots_in_the_current_backup_folder(backed_up):
    project, snapshot, *_ = backed_up
    project.manage("backup_database", "--drill", check=True)
    with sqlite3.connect(project.db) as conn:
        conn.execute("UPDATE backup_tasks_backuprun SET started_at = datetime(started_at, '-3 hours')")
    # A forged record of a fresh snapshot: the file exists, but outside BACKUP_DIR.
    forged = project.root / "elsewhere" / "db_backup_20250111_080000.sqlite3"
    forged.parent.mkdir()
    forged.write_bytes(snapshot.read_bytes())
    with sqlite3.connect(project.db) as conn:
        conn.execute(
            "INSERT INTO backup_tasks_backuprun (kind, trigger, status, started_at, file, error, sha256, details)"
            " VALUES ('snapshot', 'forged', 'succeeded', datetime('now'), ?, '', '', '{}')",
            [str(forged)],
        )

    assert check(project) == (
        2,
        f"BACKUP CRITICAL - newest verified snapshot {snapshot.name} is 3.0 h old (limit 2 h)",
    )
    assert check(project, "--max-age", "4") == (
        1,
        f"BACKUP WARNING - newest verified snapshot {snapshot.name} is 3.0 h old, but a newer one is "
        f"recorded outside the backup folder {project.backups}, not judged: {forged}",
    )

    # BACKUP_DIR moved to a new, empty folder: nothing in it to judge.
    moved = project.root / "new-backups"
    env = {**project.env, "BACKUP_DIR": str(moved)}
    result = project.manage("backup_database", "--check", env=env)
    assert result.stdout == (
        f"BACKUP CRITICAL - no verified snapshot in the backup folder {moved}; the newest recorded, "
        f"{forged}, is outside it (BACKUP_DIR changed?): run 'python manage.py backup_database'\n"
    )
    assert result.returncode == 2


def test_check_warns_when_the_newest_snapshot_was_replaced_by_a_link(backed_up):
    project, snapshot, *_ = backed_up
    project.manage("backup_database", "--drill", check=True)
    moved = project.root / "moved.sqlite3"
    snapshot.rename(moved)
    snapshot.symlink_to(moved)

    assert check(project) == (
        1,
        f"BACKUP WARNING - newest verified snapshot {snapshot.name} has been replaced: "
        f"it is a symbolic link to {moved}, not a regular file",
    )


def test_runs_left_running_by_a_dead_process_are_marked_failed(backed_up):
    project, *_ = backed_up
    with sqlite3.connect(project.db) as conn:
        conn.execute(
            "INSERT INTO backup_tasks_backuprun (kind, trigger, status, started_at, file, error, sha256, details)"
            " VALUES ('snapshot', 'schedule: hourly', 'running', datetime('now', '-5 hours'), '', '', '', '{}')"
        )
    project.manage("backup_database", "--type", "csv", check=True)

    abandoned = [r for r in runs(project.db) if r[2] == "schedule: hourly"]
    assert abandoned[0][1] == "failed"
    assert abandoned[0][4].startswith("Abandoned: the process running it stopped before it finished")


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free local port, collecting what it is sent."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, received
    controller.stop()


def test_a_failed_run_is_mailed_to_admins_and_logged(backed_up, smtp_server):
    project, snapshot, *_ = backed_up
    port, received = smtp_server
    flip_byte(snapshot)
    env = {
        **project.env,
        "ADMINS": "Plant Operator <operator@plant.example>",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(port),
    }

    result = project.manage("backup_database", "--drill", env=env)

    assert result.returncode == 1
    assert len(received) == 1
    mail = received[0]
    assert mail["To"] == "operator@plant.example"
    assert mail["Subject"] == "[smartAquarium] Restore drill failed"
    assert "does not match its checksum" in mail.get_payload()
    log = (project.backups / "scheduled_backup.log").read_text()
    assert re.search(
        r"ERROR Restore drill failed \(command: backup_database --drill\): .* does not match", log
    )


def test_no_mail_without_admins(backed_up, smtp_server):
    project, snapshot, *_ = backed_up
    port, received = smtp_server
    flip_byte(snapshot)
    env = {**project.env, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(port)}

    result = project.manage("backup_database", "--drill", env=env)

    assert result.returncode == 1
    assert received == []
