"""The backup history in restic repositories, with the real restic binary (Debian's package)."""

import json
import os
import sqlite3
import stat
import time
from datetime import timedelta

import pytest

from tests.conftest import Project


class HistoryProject(Project):
    """A project with the history on: its repository in backups/repository, its key beside the database."""

    extra: dict[str, str]

    def __init__(self, root, time_zone: str = "UTC", **extra: str) -> None:
        super().__init__(root, time_zone)
        self.extra = dict(extra)

    @property
    def key(self):
        return self.root / "backup-repository.key"

    @property
    def repository(self):
        return self.backups / "repository"

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(BACKUP_REPOSITORY="", BACKUP_REPOSITORY_PASSWORD_FILE=str(self.key), **self.extra)
        return env

    def restic(self, *args: str, location=None) -> str:
        import subprocess

        env = dict(os.environ)
        env.update(RESTIC_REPOSITORY=str(location or self.repository), RESTIC_PASSWORD_FILE=str(self.key))
        return subprocess.run(["restic", *args], env=env, capture_output=True, text=True, check=True).stdout

    def points(self, location=None) -> list[dict]:
        return json.loads(self.restic("snapshots", "--json", location=location))

    def readings(self) -> list[tuple]:
        with sqlite3.connect(self.db) as db:
            return db.execute(
                "SELECT timestamp, water_temperature, air_temperature FROM readings_reading ORDER BY timestamp"
            ).fetchall()


@pytest.fixture
def history_project(tmp_path, migrated_template) -> HistoryProject:
    import shutil

    shutil.copy(migrated_template, tmp_path / "db.sqlite3")
    return HistoryProject(tmp_path)


def add_readings(project: Project, day: str) -> None:
    project.manage("simulate_readings", "--days", "0.01", "--start", day, check=True)


def test_first_backup_makes_the_key_and_one_point_per_file(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    result = project.manage("backup_database", check=True)
    assert "Backup completed!" in result.stdout
    assert stat.S_IMODE(project.key.stat().st_mode) == 0o600
    assert len(project.key.read_text().strip()) >= 48
    points = project.points()
    kinds = sorted(next(t for t in p["tags"] if t.startswith("kind:")) for p in points)
    assert kinds == ["kind:csv", "kind:db", "kind:json"]
    db_point = next(p for p in points if "kind:db" in p["tags"])
    assert "rows:432" in db_point["tags"]
    files = [
        json.loads(line)["name"]
        for line in project.restic("ls", "--json", db_point["id"]).splitlines()
        if '"struct_type":"node"' in line
    ]
    snapshot = next(p.name for p in (project.backups / "database").iterdir() if p.suffix == ".sqlite3")
    assert sorted(files) == [snapshot, snapshot + ".sha256"]
    # The restore point's id is in the run's record.
    with sqlite3.connect(project.db) as db:
        details = [
            json.loads(row[0])
            for row in db.execute("SELECT details FROM backup_tasks_backuprun WHERE kind = 'snapshot'")
        ]
    assert db_point["id"].startswith(details[0]["history"]["snapshot_id"])
    # The key never shows in the log.
    assert project.key.read_text().strip() not in (project.backups / "scheduled_backup.log").read_text()


def test_restore_at_brings_back_exactly_the_second_backup(history_project):
    project = history_project
    seen = []
    for day in ("2025-01-01", "2025-01-02", "2025-01-03"):
        add_readings(project, day)
        project.manage("backup_database", "--type", "db", check=True)
        seen.append(project.readings())
        time.sleep(1.1)  # restore points a second apart: names and times are whole seconds
    points = sorted(p["time"] for p in project.points() if "kind:db" in p["tags"])
    assert len(points) == 3
    listing = project.manage("backup_database", "--history", check=True).stdout
    assert listing.count(" db ") == 3
    assert "3 restore points in the local history." in listing
    assert [line.split()[5] for line in listing.splitlines()[1:4]] == ["1,296", "864", "432"]
    header, first = listing.splitlines()[:2]
    assert header.index("Kind") == first.index(" db ") + 1  # the columns under their headings

    # The moment between the second and the third point, in plant time (UTC here).
    second, third = points[1], points[2]
    with sqlite3.connect(project.db) as db:
        between = db.execute("SELECT strftime('%Y-%m-%d %H:%M:%S', ?)", (second[:19],)).fetchone()[0]
    assert between < third[:19].replace("T", " ")
    result = project.manage("backup_database", "--restore", "--at", between, "--yes", check=True)
    assert "864 after" in result.stdout, result.stdout
    assert project.readings() == seen[1]


def test_restore_at_before_any_point_says_so(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)
    result = project.manage("backup_database", "--restore", "--at", "2000-01-01 00:00", "--yes")
    assert result.returncode == 1
    assert "No database restore point at or before 2000-01-01 00:00 in the local history" in result.stderr
    assert len(project.readings()) == 432


def test_plain_files_beyond_keep_plain_go_once_in_the_history(history_project):
    project = history_project
    project.extra["BACKUP_KEEP_PLAIN"] = "2"
    add_readings(project, "2025-01-01")
    for _ in range(4):
        project.manage("backup_database", "--type", "db", check=True)
        time.sleep(1.1)
    plain = sorted(p.name for p in (project.backups / "database").iterdir() if p.suffix == ".sqlite3")
    assert len(plain) == 2
    assert len([p for p in project.points() if "kind:db" in p["tags"]]) == 4


def test_without_restic_backups_work_as_before_and_say_what_is_lost(history_project, tmp_path):
    project = history_project
    # restic missing: a PATH without it (python is started by its full path).
    empty = tmp_path / "bin"
    empty.mkdir()
    project.extra["PATH"] = str(empty)
    add_readings(project, "2025-01-01")
    result = project.manage("backup_database", check=True)
    assert "Backup completed!" in result.stdout
    assert not project.repository.exists()
    assert not project.key.exists()
    check = project.manage("check")
    assert "restic is not installed, so backups are not kept in a history" in check.stderr
    status = project.manage("backup_database", "--status", check=True).stdout
    assert "Backup History:\n  restic is not installed, so backups are not kept in a history" in status
    history = project.manage("backup_database", "--history")
    assert history.returncode == 1
    assert history.stderr.strip().splitlines() == [
        "Error: restic is not installed, so backups are not kept in a history: install restic 0.14 "
        "or newer (Debian/Raspberry Pi OS: sudo apt-get install restic)"
    ]


def test_wrong_key_is_one_line_and_nothing_written(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)
    before = sorted(p.name for p in (project.repository / "snapshots").iterdir())
    project.key.write_text("not the key\n")
    result = project.manage("backup_database", "--type", "db")
    assert result.returncode == 1
    assert f"The key {project.key} does not open the backup repository" in result.stderr
    assert sorted(p.name for p in (project.repository / "snapshots").iterdir()) == before


def test_key_missing_while_the_repository_exists_is_refused(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)
    project.key.unlink()
    result = project.manage("backup_database", "--type", "db")
    assert result.returncode == 1
    assert "exists but its key" in result.stderr
    assert "none is made" in result.stderr
    assert not project.key.exists()


# -- offsite ------------------------------------------------------------------


def offsite_project(root, migrated_template, location: str, **env: str) -> HistoryProject:
    import shutil

    root.mkdir(exist_ok=True)
    shutil.copy(migrated_template, root / "db.sqlite3")
    return HistoryProject(root, BACKUP_OFFSITE_REPOSITORY=location, **env)


def offsite_points(project: HistoryProject, location: str, **env: str) -> list[dict]:
    import subprocess

    full = dict(os.environ, RESTIC_REPOSITORY=location, RESTIC_PASSWORD_FILE=str(project.key), **env)
    out = subprocess.run(
        ["restic", "snapshots", "--json"], env=full, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def point_keys(points: list[dict]) -> list[tuple]:
    return sorted((p["time"], tuple(sorted(p["tags"]))) for p in points)


def disaster_recovery(tmp_path, migrated_template, plant: HistoryProject, location: str, **env: str):
    """A new machine: an empty database, the key's copy and the offsite repository, nothing else."""
    import shutil

    fresh = offsite_project(tmp_path / "new-machine", migrated_template, location, **env)
    shutil.copy(plant.key, fresh.key)
    fresh.key.chmod(0o600)
    assert fresh.readings() == []
    return fresh


@pytest.mark.parametrize("target", ["s3", "folder"])
def test_offsite_copy_and_restore_on_a_new_machine(tmp_path, migrated_template, s3_server, target):
    import uuid

    if target == "s3":
        location, env = f"s3:{s3_server.url}/plant-{uuid.uuid4().hex[:8]}/history", dict(s3_server.ACCESS)
    else:
        location, env = str(tmp_path / "nas" / "plant-history"), {}
    plant = offsite_project(tmp_path / "plant", migrated_template, location, **env)
    add_readings(plant, "2025-01-01")
    plant.manage("backup_database", check=True)
    time.sleep(1.1)
    add_readings(plant, "2025-01-02")
    plant.manage("backup_database", check=True)
    readings = plant.readings()
    assert len(readings) == 864
    local = plant.points()
    assert len(local) == 6
    assert point_keys(offsite_points(plant, location, **env)) == point_keys(local)
    listing = plant.manage("backup_database", "--history", check=True).stdout
    assert listing.count(" both ") == 6
    offsite_listing = plant.manage("backup_database", "--history", "--offsite", check=True).stdout
    assert "6 restore points in the offsite history." in offsite_listing

    fresh = disaster_recovery(tmp_path, migrated_template, plant, location, **env)
    result = fresh.manage(
        "backup_database", "--restore", "--at", "2100-01-01 00:00", "--from", "offsite", "--yes", check=True
    )
    assert "0 readings before, 864 after" in result.stdout
    assert fresh.readings() == readings


def test_offsite_down_never_fails_the_local_backup_and_catches_up(tmp_path, migrated_template):
    import signal
    import uuid

    from tests.conftest import S3Server

    server = S3Server(tmp_path).start()
    try:
        location = f"s3:{server.url}/plant-{uuid.uuid4().hex[:8]}/history"
        plant = offsite_project(
            tmp_path / "plant", migrated_template, location, BACKUP_OFFSITE_TIMEOUT="5", **server.ACCESS
        )
        add_readings(plant, "2025-01-01")
        plant.manage("backup_database", "--type", "db", check=True)
        assert len(offsite_points(plant, location, **server.ACCESS)) == 1
        # The endpoint stops answering in the middle of the next runs' copies.
        server.process.send_signal(signal.SIGSTOP)
        for day in ("2025-01-02", "2025-01-03"):
            time.sleep(1.1)
            add_readings(plant, day)
            result = plant.manage("backup_database", "--type", "db")
            assert result.returncode == 0, result.stderr
            assert "Database backed up to" in result.stdout
        log = (plant.backups / "scheduled_backup.log").read_text()
        assert "the offsite copy to" in log
        assert "retried next run" in log
        server.process.send_signal(signal.SIGCONT)
        # Nothing half-made: the offsite repository shows only the point copied before.
        assert len(offsite_points(plant, location, **server.ACCESS)) == 1
        time.sleep(1.1)
        plant.manage("backup_database", "--type", "db", check=True)
        assert point_keys(offsite_points(plant, location, **server.ACCESS)) == point_keys(plant.points())
        assert len(plant.points()) == 4
    finally:
        server.stop()


# -- retention, checks and faults ---------------------------------------------------


def test_retention_across_a_berlin_dst_week_follows_the_planner_by_id(history_project):
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from zoneinfo import ZoneInfo

    from backup_tasks.core.retention import Candidate, Policy, plan, protect_newest_good

    project = history_project
    project.time_zone = "Europe/Berlin"
    project.extra.update(
        BACKUP_KEEP_DAYS="1",
        BACKUP_HISTORY_KEEP_DAILY="3",
        BACKUP_HISTORY_KEEP_WEEKLY="2",
        BACKUP_HISTORY_KEEP_MONTHLY="1",
    )
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)  # makes the key and the repository
    # A week of database restore points up to the night clocks went back (2025-10-26, 03:00 CEST
    # -> 02:00 CET): every 3 hours, and both 02:00 and 02:30 of the repeated hour.
    moments = [datetime(2025, 10, 19, 22, tzinfo=UTC) + timedelta(hours=3 * i) for i in range(52)]
    moments += [datetime(2025, 10, 26, h, m, tzinfo=UTC) for h, m in ((0, 30), (1, 0), (1, 30))]
    sample = project.root / "point"
    sample.mkdir()
    (sample / "db_backup.dump").write_text("x")
    for moment in sorted(set(moments)):
        project.restic(
            "backup", "--tag", "kind:db,run:0,rows:1,size:1", "--host", "plant",
            "--time", moment.strftime("%Y-%m-%d %H:%M:%S"), str(sample / "db_backup.dump"),
        )  # fmt: skip
    points = project.points()
    assert len(points) == len(set(moments)) + 1

    zone = ZoneInfo("Europe/Berlin")
    candidates = [
        Candidate(path=Path(p["id"]), stamp=datetime.fromisoformat(p["time"]).astimezone(zone),
                  mtime=datetime.fromisoformat(p["time"]).timestamp())
        for p in points
    ]  # fmt: skip
    ordered = plan(
        candidates, Policy(days=1, hourly=24, daily=3, weekly=2, monthly=1),
        now=datetime.now(UTC), zone=zone, gfs=True,
    )  # fmt: skip
    protect_newest_good(ordered)
    expected_keep = {str(c.path) for c in ordered if c.keep}
    expected_forget = {str(c.path) for c in ordered if not c.keep}
    assert 10 < len(expected_keep) < len(points)

    dry = project.manage("backup_database", "--cleanup", "--dry-run", check=True).stdout
    listed_keep = {
        line.split()[4] for line in dry.splitlines() if line.startswith("Keep local restore point")
    }
    listed_forget = {line.split()[5] for line in dry.splitlines() if line.startswith("Would forget local")}
    assert listed_keep == {i[:8] for i in expected_keep}
    assert listed_forget == {i[:8] for i in expected_forget}
    assert {p["id"] for p in project.points()} == expected_keep | expected_forget  # nothing forgotten yet

    result = project.manage("backup_database", "--cleanup", check=True)
    assert f"forgot {len(expected_forget)} restore points, kept {len(expected_keep)}" in result.stdout
    assert {p["id"] for p in project.points()} == expected_keep


def test_a_removed_pack_fails_the_check_and_is_critical(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)
    passed = project.manage("backup_database", "--check-history", check=True)
    assert "History check passed: no errors in the local history" in passed.stdout
    packs = sorted((project.repository / "data").rglob("*"))
    next(p for p in packs if p.is_file()).unlink()
    result = project.manage("backup_database", "--check-history")
    assert result.returncode == 1
    assert "failed its check" in result.stderr
    with sqlite3.connect(project.db) as db:
        assert db.execute(
            "SELECT status FROM backup_tasks_backuprun WHERE kind = 'repo_check' ORDER BY id"
        ).fetchall() == [("succeeded",), ("failed",)]
    check = project.manage("backup_database", "--check")
    assert check.returncode == 2
    assert check.stdout.startswith("BACKUP CRITICAL - last history check failed at")


def hold_lock(project: HistoryProject):
    """A restic backup reading stdin that never ends: it holds a lock on the repository."""
    import subprocess

    env = dict(os.environ, RESTIC_REPOSITORY=str(project.repository), RESTIC_PASSWORD_FILE=str(project.key))
    process = subprocess.Popen(
        ["restic", "backup", "--stdin", "--stdin-filename", "held"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not any((project.repository / "locks").iterdir()):
        assert time.monotonic() < deadline, "restic took no lock"
        time.sleep(0.1)
    return process


def test_a_stale_lock_after_sigkill_is_removed_but_a_live_one_is_not(history_project):
    import signal

    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)

    live = hold_lock(project)
    try:
        blocked = project.manage("backup_database", "--check-history")
        assert blocked.returncode == 1
        assert "is locked by another restic process that is still running" in blocked.stderr
        assert len(list((project.repository / "locks").iterdir())) == 1  # the live lock stays
    finally:
        live.kill()
        live.wait()
    # The killed process's lock is left behind: the next run removes it as stale and goes on.
    assert len(list((project.repository / "locks").iterdir())) == 1
    result = project.manage("backup_database", "--check-history")
    assert result.returncode == 0, result.stderr
    assert list((project.repository / "locks").iterdir()) == []
    del signal


def test_check_reports_offsite_lag(tmp_path, migrated_template):
    location = str(tmp_path / "nas")
    project = offsite_project(tmp_path / "plant", migrated_template, location)
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)

    def shift(hours: int) -> None:
        with sqlite3.connect(project.db) as db:
            db.execute(
                "UPDATE backup_tasks_backuprun SET details = json_set(details, '$.offsite.at', "
                "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now', ?)) WHERE json_extract(details, '$.offsite.ok')",
                (f"-{hours} hours",),
            )

    shift(30)
    check = project.manage("backup_database", "--check")
    assert check.returncode == 1
    assert check.stdout.startswith(
        f"BACKUP WARNING - offsite history {location} last caught up 30.0 h ago (limit 26 h)"
    )
    shift(80)
    check = project.manage("backup_database", "--check")
    assert check.returncode == 2
    assert check.stdout.startswith(f"BACKUP CRITICAL - offsite history {location} last caught up 80.0 h ago")


def test_status_shows_the_history_and_the_offsite_state(tmp_path, migrated_template):
    location = str(tmp_path / "nas")
    project = offsite_project(tmp_path / "plant", migrated_template, location)
    add_readings(project, "2025-01-01")
    project.manage("backup_database", check=True)
    status = project.manage("backup_database", "--status", check=True).stdout
    section = status.split("Backup History:\n", 1)[1].splitlines()
    assert section[0] == f"  Repository: {project.repository}"
    assert section[1].startswith("  Restore points: 3 (oldest ")
    assert section[2].startswith("  Size: ")
    assert " on disk" in section[2]
    assert section[3].startswith(f"  Key: {project.key} (keep a copy away from the plant")
    assert section[4] == f"  Offsite: {location}, last caught up 0.0 h ago"
    # One job is a starting size, not growth: no forecast before a day of points.
    assert section[5] == "  Disk forecast: no growth measured yet (after a day of restore points)"
    assert project.key.read_text().strip() not in status


def test_credentials_in_a_location_are_redacted():
    from backup_tasks.storage.repository import redact

    assert redact("rest:https://plant:s3cret@nas:8000/history") == "rest:https://***@nas:8000/history"
    assert redact("s3:https://host/bucket/plant") == "s3:https://host/bucket/plant"
    assert redact("sftp:backup:pw@nas:/srv/plant") == "sftp:backup:***@nas:/srv/plant"
    assert redact("/mnt/nas/plant-history") == "/mnt/nas/plant-history"


def test_drill_restores_the_newest_and_an_older_point_from_the_history(history_project):
    project = history_project
    add_readings(project, "2025-01-01")
    project.manage("backup_database", "--type", "db", check=True)
    time.sleep(1.1)
    add_readings(project, "2025-01-02")
    project.manage("backup_database", "--type", "db", check=True)
    result = project.manage("backup_database", "--drill", check=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("Restore drill passed")]
    assert len(lines) == 3
    newest, older = sorted((p for p in project.points() if "kind:db" in p["tags"]), key=lambda p: p["time"])[
        ::-1
    ]
    assert lines[1].startswith(f"Restore drill passed: local restore point {newest['short_id']} (db_backup_")
    assert "with 864 readings" in lines[1]
    assert lines[2].startswith(f"Restore drill passed: local restore point {older['short_id']} (db_backup_")
    assert "with 432 readings" in lines[2]


def test_too_old_a_restic_is_one_line_and_backups_go_on(history_project, tmp_path):
    project = history_project
    # Debian ships restic 0.14 only: an older one is stood in for by a script that
    # answers `restic version` as restic 0.12.1 does (it is never asked anything else).
    folder = tmp_path / "old-restic"
    folder.mkdir()
    fake = folder / "restic"
    fake.write_text("#!/bin/sh\necho 'restic 0.12.1 compiled with go1.15.9 on linux/amd64'\n")
    fake.chmod(0o755)
    project.extra["PATH"] = f"{folder}:{os.environ['PATH']}"
    add_readings(project, "2025-01-01")
    result = project.manage("backup_database", check=True)
    assert "Backup completed!" in result.stdout
    assert not project.repository.exists()
    history = project.manage("backup_database", "--history")
    assert history.returncode == 1
    assert history.stderr.strip().splitlines() == [
        f"Error: restic 0.12.1 at {fake} is too old for the backup history: install restic 0.14 or newer "
        "(Debian/Raspberry Pi OS: sudo apt-get install restic)"
    ]


def test_compressed_backups_with_the_history_on_are_warned_about(history_project):
    # A compressed snapshot shares no chunks with the last one: the history would keep each hour whole.
    project = history_project
    plain = project.manage("check", check=True)
    assert "backup_tasks.W011" not in plain.stdout + plain.stderr
    env = {**project.env, "BACKUP_COMPRESSION": "zstd"}
    warned = project.manage("check", env=env, check=True)
    assert (
        "(backup_tasks.W011) BACKUP_COMPRESSION=zstd with the backup history on: a compressed snapshot "
        "shares no chunks with the last one, so the history stores every hour whole."
    ) in warned.stderr
    off = project.manage("check", env={**env, "BACKUP_REPOSITORY": "off"}, check=True)
    assert "backup_tasks.W011" not in off.stdout + off.stderr
    bogus = project.manage("check", env={**env, "BACKUP_COMPRESSION": "bogus"})
    assert "backup_tasks.E003" in bogus.stderr
    assert "backup_tasks.W011" not in bogus.stderr  # one message for one mistake


@pytest.mark.django_db
def test_the_disk_forecast_counts_growth_after_the_first_job(backup_dir):
    from django.utils import timezone

    from backup_tasks.models import BackupRun
    from backup_tasks.services.history import days_until_full
    from backup_tasks.storage.safefile import disk_usage

    backup_dir.mkdir()
    now = timezone.now()

    def point(hours_ago: float, added: int) -> None:
        BackupRun.objects.create(
            kind="snapshot",
            status="succeeded",
            started_at=now - timedelta(hours=hours_ago),
            details={"history": {"snapshot_id": "x", "data_added": added}},
        )

    point(48, 10**9)  # the first point: the whole database
    point(47.99, 10**8)  # the same job's exports
    assert days_until_full(now=now - timedelta(hours=30)) is None  # under a day of points
    point(24, 5 * 10**6)
    point(0, 5 * 10**6)
    free = disk_usage(backup_dir)[1]
    assert days_until_full(now=now) == pytest.approx(free / (10**7 / 2), rel=0.01)
