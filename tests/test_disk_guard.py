"""The disk guard: clean up first when space is short, else fail before writing anything.

A small tmpfs mounted in a private mount namespace (`unshare -rm`) is the
backup disk, so the test needs no privileges beyond what unshare allows.
"""

import hashlib
import subprocess
import sys

from tests.conftest import PROJECT

MB = 1024 * 1024  # sizes in messages count 1,024 bytes to the KB, as everywhere


def run_on_small_disk(project, size: str, script: str) -> subprocess.CompletedProcess:
    disk = project.root / "small-disk"
    disk.mkdir()
    env = {**project.env, "BACKUP_DIR": str(disk / "backups")}
    manage = f"{sys.executable} {PROJECT / 'manage.py'}"
    body = f"set -e\nmount -t tmpfs -o size={size} tmpfs {disk}\ncd {project.root}\n" + script.format(
        manage=manage, disk=disk, out=project.root
    )
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", body], env=env, capture_output=True, text=True, timeout=300
    )


ZEROS_SHA256 = hashlib.sha256(b"\0" * 4_200_000).hexdigest()
FAKE_OLD = (
    "mkdir -p {disk}/backups/database\n"
    "head -c 4200000 /dev/zero > {disk}/backups/database/db_backup_20200101_000000.sqlite3\n"
    f"echo '{ZEROS_SHA256}  db_backup_20200101_000000.sqlite3'"
    " > {disk}/backups/database/db_backup_20200101_000000.sqlite3.sha256\n"
)


def test_short_space_is_made_by_cleaning_up_old_backups_first(project):
    project.manage("simulate_readings", "--days", "1", check=True)  # a snapshot of about 4 MB
    result = run_on_small_disk(
        project,
        "11m",
        "{manage} backup_database --type db > {out}/first.txt\n"
        + FAKE_OLD
        + "{manage} backup_database --type db > {out}/second.txt\n"
        "ls {disk}/backups/database > {out}/listing.txt\n"
        "cat {disk}/backups/scheduled_backup.log > {out}/log.txt\n",
    )

    assert result.returncode == 0, result.stderr
    listing = (project.root / "listing.txt").read_text().split()
    assert "db_backup_20200101_000000.sqlite3" not in listing
    assert len([name for name in listing if name.endswith(".sqlite3")]) == 2
    assert "Disk guard: Database backup needs about" in (project.root / "log.txt").read_text()
    assert (project.root / "second.txt").read_text().startswith("Database backed up to ")


def test_still_short_after_cleanup_fails_before_writing_anything(project):
    project.manage("simulate_readings", "--days", "1", check=True)
    result = run_on_small_disk(
        project,
        "7m",
        "{manage} backup_database --type db > {out}/first.txt\n"
        "sha256sum {disk}/backups/database/*.sqlite3 > {out}/before.txt\n"
        "{manage} backup_database --type db 2> {out}/error.txt || echo $? > {out}/code.txt\n"
        "sha256sum {disk}/backups/database/*.sqlite3 > {out}/after.txt\n"
        "ls -a {disk}/backups/database > {out}/listing.txt\n",
    )

    assert result.returncode == 0, result.stderr
    assert (project.root / "code.txt").read_text() == "1\n"
    error = (project.root / "error.txt").read_text()
    assert error.startswith("Error: Not enough space on the backup disk: need about ")
    assert "Nothing was written; free up space or move BACKUP_DIR to a larger disk.\n" in error
    assert len(error.splitlines()) == 1
    # The earlier snapshot is untouched and nothing temporary is left.
    assert (project.root / "before.txt").read_text() == (project.root / "after.txt").read_text()
    assert not [n for n in (project.root / "listing.txt").read_text().split() if n.endswith(".tmp")]


def test_the_guard_sizes_the_next_snapshot_by_the_database_as_it_is_now(project):
    project.manage("simulate_readings", "--days", "1", check=True)  # a snapshot of about 4 MB
    result = run_on_small_disk(
        project,
        "14m",
        "{manage} backup_database --type db > {out}/first.txt\n"
        "{manage} simulate_readings --days 2 > /dev/null\n"  # the database grows to about 12 MB
        "stat -f -c '%a %S' {disk} > {out}/free.txt\n"
        "{manage} backup_database --type db 2> {out}/error.txt || echo $? > {out}/code.txt\n"
        "ls -a {disk}/backups/database > {out}/listing.txt\n",
    )

    assert result.returncode == 0, result.stderr
    blocks, block_size = map(int, (project.root / "free.txt").read_text().split())
    need = int(project.db.stat().st_size * 1.1) + 1_000_000  # the database now, not the last 4 MB
    disk = project.root / "small-disk"
    assert (project.root / "error.txt").read_text() == (
        f"Error: Not enough space on the backup disk: need about {need / MB:,.1f} MB, "
        f"{blocks * block_size / MB:,.1f} MB free in {disk}/backups/database. "
        "Nothing was written; free up space or move BACKUP_DIR to a larger disk.\n"
    )
    assert (project.root / "code.txt").read_text() == "1\n"
    listing = (project.root / "listing.txt").read_text().split()
    assert len([name for name in listing if name.endswith(".sqlite3")]) == 1
    assert not [name for name in listing if name.endswith(".tmp")]
