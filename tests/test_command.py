"""python manage.py backup_database as the guide's users run it, in a real process."""

import hashlib
import os
import re
import resource
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

STAMP = r"\d{8}_\d{6}"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_complete_backup_prints_the_guides_lines_under_one_stamp(project):
    project.manage("simulate_readings", "--days", "0.1", check=True)

    result = project.manage("backup_database", check=True)

    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout
    stamp = re.fullmatch(rf"Database backed up to backups/database/db_backup_({STAMP})\.sqlite3", lines[0])
    assert stamp, lines[0]
    s = stamp.group(1)
    assert lines[1:] == [
        f"Readings exported to CSV: backups/csv_exports/readings_{s}.csv",
        f"Readings exported to JSON: backups/json_exports/readings_{s}.json",
        "Backup completed!",
    ]
    assert project.files() == [
        f"csv_exports/readings_{s}.csv",
        f"csv_exports/readings_{s}.csv.sha256",
        f"database/db_backup_{s}.sqlite3",
        f"database/db_backup_{s}.sqlite3.sha256",
        f"json_exports/readings_{s}.json",
        f"json_exports/readings_{s}.json.sha256",
    ]
    log = (project.backups / "scheduled_backup.log").read_text()
    assert f"db_backup_{s}.sqlite3" in log
    assert "4,320 readings" in log
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("kind", "line", "folder", "suffix"),
    [
        ("db", "Database backed up to backups/database/db_backup_", "database/db_backup_", ".sqlite3"),
        ("csv", "Readings exported to CSV: backups/csv_exports/readings_", "csv_exports/readings_", ".csv"),
        (
            "json",
            "Readings exported to JSON: backups/json_exports/readings_",
            "json_exports/readings_",
            ".json",
        ),
    ],
)
def test_each_type_writes_only_its_kind(project, kind, line, folder, suffix):
    result = project.manage("backup_database", "--type", kind, check=True)

    assert re.fullmatch(rf"{re.escape(line)}{STAMP}{re.escape(suffix)}\n", result.stdout)
    files = project.files()
    assert len(files) == 2
    assert re.fullmatch(rf"{re.escape(folder)}{STAMP}{re.escape(suffix)}", files[0])
    assert files[1] == files[0] + ".sha256"


def test_unknown_type_is_one_line_and_exit_2(project):
    result = project.manage("backup_database", "--type", "xml")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "manage.py backup_database: error: argument --type: invalid choice: 'xml' "
        "(choose from 'all', 'db', 'csv', 'json') (see --help)"
    ]
    assert project.files() == []


def test_days_without_cleanup_is_refused(project):
    result = project.manage("backup_database", "--days", "7")
    assert result.returncode == 1
    assert result.stderr == "Error: --days goes with --cleanup, as in: backup_database --cleanup --days 7\n"


def test_missing_database_is_never_created_or_backed_up(project):
    project.db.unlink()

    result = project.manage("backup_database")

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: The database {project.db} does not exist: check DATABASE_URL, or run "
        "'python manage.py migrate' to create a new one. Nothing was backed up.\n"
    )
    assert result.stdout == ""
    assert not project.db.exists()
    assert project.files() == []


def test_backup_folder_that_cannot_be_created(project, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the backup folder should be")
    env = {**project.env, "BACKUP_DIR": str(blocker / "backups")}

    result = project.manage("backup_database", env=env)

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"Error: Cannot create the backup folder {blocker / 'backups'}")
    assert "set BACKUP_DIR" in result.stderr
    assert blocker.read_text() == "a file where the backup folder should be"


@contextmanager
def read_only(path: Path):
    """A file or folder this process cannot write to, even as root (which ignores mode bits)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)


def test_backup_folder_that_cannot_be_written(project):
    folder = project.backups / "database"
    folder.mkdir(parents=True)

    with read_only(folder):
        result = project.manage("backup_database", "--type", "db")
        assert list(folder.iterdir()) == []

    assert result.returncode == 1, result.stdout
    assert result.stderr == (
        f"Error: Cannot write to the backup folder {folder} (permission denied): "
        "make it writable for this user or set BACKUP_DIR to a writable folder.\n"
    )


def _limit_file_size(limit: int):
    def apply():
        # EFBIG instead of being killed by SIGXFSZ: what a full disk looks like to a writer.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("kind", ["db", "csv", "json"])
def test_full_disk_leaves_nothing_and_keeps_earlier_backups(project, kind):
    project.manage("simulate_readings", "--days", "1", check=True)
    project.manage("backup_database", check=True)
    earlier = {name: digest(project.backups / name) for name in project.files()}

    result = project.manage("backup_database", "--type", kind, preexec_fn=_limit_file_size(1_000_000))

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    assert "free up space on the backup disk or run 'python manage.py backup_database --cleanup'" in (
        result.stderr
    )
    assert {name: digest(project.backups / name) for name in project.files()} == earlier
    leftovers = [p.name for p in project.backups.rglob(".*.tmp")]
    assert leftovers == []


def corrupt_middle_page(db: Path) -> None:
    page = 4096
    with db.open("r+b") as handle:
        handle.seek(page * (db.stat().st_size // page // 2))
        handle.write(b"\xa5" * page)


def test_corrupt_database_fails_its_integrity_check_and_leaves_nothing(project):
    project.manage("simulate_readings", "--days", "1", check=True)
    project.manage("backup_database", "--type", "db", check=True)
    earlier = {name: digest(project.backups / name) for name in project.files()}
    corrupt_middle_page(project.db)

    result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"Error: The database {project.db} is corrupt")
    assert "restore it from the last good backup" in result.stderr
    assert {name: digest(project.backups / name) for name in project.files()} == earlier
    assert list(project.backups.rglob(".*.tmp")) == []


def test_a_file_that_is_not_a_database_is_refused(project):
    project.db.write_bytes(b"this is a spreadsheet, not a database\n" * 200)

    result = project.manage("backup_database")

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: The database {project.db} is not a SQLite database (damaged header): "
        "restore it from the last good backup. Earlier backups were not touched.\n"
    )
    assert project.files() == []


def test_a_failure_is_logged_once(project):
    result = project.manage("backup_database", "--drill")

    assert result.returncode == 1
    log = (project.backups / "scheduled_backup.log").read_text().splitlines()
    failures = [line.split(" ", 2)[2] for line in log if "failed" in line]
    assert failures == [
        "ERROR Restore drill failed (command: backup_database --drill): No database snapshot to drill: "
        "run 'python manage.py backup_database' first."
    ]


def test_a_database_whose_folder_is_read_only_is_explained(project):
    project.backups.mkdir()  # the backups stay writable: only the database's folder is not
    project.manage("check", check=True)  # the secret key is made at install, before the folder is locked

    with read_only(project.root):
        result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: The database {project.db} cannot be written by this user (unable to open database file): "
        f"make it and its folder {project.root} writable for the user that runs smartAquarium "
        "(SQLite keeps db.sqlite3-wal and db.sqlite3-shm beside it).\n"
    )
    assert project.files() == []


def test_a_read_only_database_is_backed_up_and_the_log_says_why_no_run_was_recorded(project):
    with read_only(project.db):
        result = project.manage("backup_database", "--type", "db")

    assert result.returncode == 0, result.stderr
    assert len(project.files()) == 2  # the snapshot and its checksum
    log = (project.backups / "scheduled_backup.log").read_text()
    assert (
        f"WARNING Could not record the snapshot run in the database: database {project.db} cannot be "
        "written by this user (attempt to write a readonly database): make it and its folder "
        f"{project.root} writable for the user that runs smartAquarium "
        "(SQLite keeps db.sqlite3-wal and db.sqlite3-shm beside it).\n"
    ) in log
