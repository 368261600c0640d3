"""PostgreSQL as the plant's database: snapshots, verification, restore and drills on a real server."""

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PG_FILL_SQL, PgProject

DUMP_RE = re.compile(r"^db_backup_\d{8}_\d{6}\.dump$")


def fill(project: PgProject, readings: int) -> None:
    project.sql(PG_FILL_SQL, [readings - 1])


def snapshot(project: PgProject) -> Path:
    result = project.manage("backup_database", "--type", "db", check=True)
    [dump] = sorted((project.backups / "database").glob("*.dump"))
    assert result.returncode == 0
    return dump


def test_snapshot_is_a_checked_custom_dump_with_its_readings(pg_project):
    fill(pg_project, 1_000)
    dump = snapshot(pg_project)
    assert DUMP_RE.match(dump.name)
    assert pg_project.files() == [f"database/{dump.name}", f"database/{dump.name}.sha256"]
    assert dump.read_bytes()[:5] == b"PGDMP"
    sidecar = (dump.parent / f"{dump.name}.sha256").read_text()
    assert sidecar.split()[0] == hashlib.sha256(dump.read_bytes()).hexdigest()
    [(rows, newest, sha)] = pg_project.sql(
        "SELECT rows, newest_reading, sha256 FROM backup_tasks_backuprun WHERE kind = 'snapshot'"
    )
    assert rows == 1_000
    assert newest.isoformat() == "2025-01-01T00:33:18+00:00"
    assert sha == sidecar.split()[0]
    listed = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public readings_reading" in listed.stdout


def test_password_never_in_argv(pg_project):
    """pg_dump gets the password from PGPASSWORD: nothing in its command line or the log shows it."""
    assert pg_project.url.count(":") == 3  # user:password@host:port
    password = pg_project.url.split(":")[2].split("@")[0]
    fill(pg_project, 10)
    snapshot(pg_project)
    log = (pg_project.backups / "scheduled_backup.log").read_text()
    assert password not in log


def fingerprint(project: PgProject) -> list[tuple]:
    """Every reading, as stored: what a restore must bring back, or leave alone."""
    return project.sql(
        "SELECT id, water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
        " FROM readings_reading ORDER BY id"
    )


def write_sidecar(path: Path) -> None:
    path.with_name(path.name + ".sha256").write_text(
        f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
    )


def restore(project: PgProject, path: Path, **kwargs):
    return project.manage("backup_database", "--restore", str(path), "--yes", timeout=120, **kwargs)


@pytest.fixture
def pg_backed_up(pg_project) -> tuple[PgProject, Path]:
    fill(pg_project, 1_000)
    return pg_project, snapshot(pg_project)


def test_restore_brings_back_deleted_readings(pg_backed_up):
    project, dump = pg_backed_up
    original = fingerprint(project)
    project.sql("DELETE FROM readings_reading WHERE id % 3 = 0")
    assert len(fingerprint(project)) == 667

    result = restore(project, dump)

    assert result.returncode == 0, result.stderr
    assert fingerprint(project) == original
    # The run history stays the live one, with the restore in it; a safety dump came first.
    kinds = [kind for (kind,) in project.sql("SELECT kind FROM backup_tasks_backuprun ORDER BY id")]
    assert kinds == ["snapshot", "snapshot", "restore"]
    assert len(list((project.backups / "database").glob("*.dump"))) == 2
    # New readings still get ids of their own after the restore.
    project.sql(
        "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, pid_output,"
        " timestamp) VALUES (1, 2, 3, 4, 5, now())"
    )
    assert len(fingerprint(project)) == 1_001


def test_damaged_foreign_and_newer_dumps_are_refused_with_the_live_readings_unchanged(pg_backed_up, tmp_path):
    project, dump = pg_backed_up
    project.sql("DELETE FROM readings_reading WHERE id > 900")
    live = fingerprint(project)
    data = dump.read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    truncated = elsewhere / "truncated.dump"
    truncated.write_bytes(data[:-1])
    write_sidecar(truncated)  # a checksum that matches: the dump's own check must find it

    flipped = elsewhere / "flipped.dump"
    flipped.write_bytes(data)
    write_sidecar(flipped)
    middle = len(data) // 2
    flipped.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])

    sqlite_file = elsewhere / "db_backup_20250101_000000.sqlite3"
    import sqlite3

    with sqlite3.connect(sqlite_file) as db:
        db.execute("CREATE TABLE readings_reading (id INTEGER PRIMARY KEY)")
    write_sidecar(sqlite_file)

    other_db = f"{project.name}_other"
    with __import__("psycopg").connect(f"{project.server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{other_db}"')
    other_url = f"{project.server}/{other_db}"
    with __import__("psycopg").connect(other_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id int PRIMARY KEY, total numeric)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.5)")
    other = elsewhere / "other.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={other}", other_url], check=True)
    write_sidecar(other)

    newer_db = f"{project.name}_newer"
    with __import__("psycopg").connect(f"{project.server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{newer_db}" TEMPLATE "{project.name}"')
    newer_url = f"{project.server}/{newer_db}"
    with __import__("psycopg").connect(newer_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('readings', '9999_future', now())"
        )
    newer = elsewhere / "newer.dump"
    subprocess.run(["pg_dump", "--format=custom", f"--file={newer}", newer_url], check=True)
    write_sidecar(newer)
    with __import__("psycopg").connect(f"{project.server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{other_db}"')
        admin.execute(f'DROP DATABASE "{newer_db}"')

    expected = {
        truncated: f"{truncated} cannot be restored: its data does not read back: ",
        flipped: f"{flipped} does not match its checksum: the file was damaged or changed after it was "
        "written. Pick another backup; nothing was restored.",
        sqlite_file: f"{sqlite_file} cannot be restored: a SQLite database file, not a PostgreSQL dump: this "
        "installation runs on PostgreSQL (see README, 'Moving a SQLite plant to PostgreSQL'). Nothing was restored.",
        other: f"{other} cannot be restored: not a smartAquarium database: its table of contents has no "
        "readings_reading. Nothing was restored.",
        newer: f"{newer} comes from a newer version of smartAquarium (unknown migrations: readings.9999_future): "
        "upgrade this installation first. Nothing was restored.",
    }
    for path, message in expected.items():
        result = restore(project, path)
        assert result.returncode == 1, path
        [line] = result.stderr.splitlines()
        assert line.startswith(f"Error: {message}"), line
        assert fingerprint(project) == live
    # Nothing was even begun: no safety dump was taken.
    assert len(list((project.backups / "database").glob("*.dump"))) == 1


def test_restore_failing_half_way_leaves_the_live_database_exactly_as_it_was(pg_backed_up):
    project, dump = pg_backed_up
    project.sql("DELETE FROM readings_reading WHERE id > 500")
    # Something of the live database's own that depends on the readings table:
    # pg_restore --clean drops other tables first, then fails on this one.
    project.sql("CREATE VIEW warm_readings AS SELECT * FROM readings_reading WHERE water_temperature > 25")
    tables = project.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    indexes = project.sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    live = fingerprint(project)
    warm = project.sql("SELECT count(*) FROM warm_readings")

    result = restore(project, dump)

    assert result.returncode == 1
    assert "The restore failed (pg_restore: " in result.stderr
    assert "warm_readings" in result.stderr or "depend" in result.stderr, result.stderr
    assert fingerprint(project) == live
    assert project.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1") == tables
    assert project.sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1") == indexes
    assert project.sql("SELECT count(*) FROM warm_readings") == warm == [(245,)]


def test_restore_refuses_while_another_session_holds_a_lock(pg_backed_up):
    import psycopg

    project, dump = pg_backed_up
    live = fingerprint(project)
    with psycopg.connect(project.url) as holder:
        holder.execute("SET application_name = 'line-2-reader'")
        holder.execute("SELECT count(*) FROM readings_reading")  # idle in transaction, lock held
        pid = holder.info.backend_pid
        result = restore(project, dump)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: Other sessions hold locks a restore would wait for, still after 10 s: ")
    assert f"pid {pid} (smartaquarium, line-2-reader from 127.0.0.1, idle in transaction) holding " in line
    assert "readings_reading" in line
    assert fingerprint(project) == live


def test_verify_status_and_check_on_postgresql(pg_backed_up):
    project, dump = pg_backed_up
    verified = project.manage("backup_database", "--verify", check=True)
    assert verified.stdout.splitlines() == [
        f"OK       backups/database/{dump.name}: integrity ok, 1,000 readings",
        "Verified 1 files: 1 OK.",
    ]
    status = project.manage("backup_database", "--status", check=True).stdout
    assert "  Total Readings: 1,000" in status
    assert "  Water Temp Range: 24.50°C - 25.49°C" in status
    assert "  Time: 2025-01-01 00:33:18" in status
    project.manage("backup_database", "--drill", check=True)
    checked = project.manage("backup_database", "--check")
    assert checked.stdout.startswith(f"BACKUP OK - newest verified snapshot {dump.name} is 0.0 h old"), (
        checked.stdout
    )
    assert checked.returncode == 0


def test_restore_that_meets_a_lock_after_it_began_gives_up_and_changes_nothing(pg_backed_up, monkeypatch):
    """A session that takes its lock after the check: pg_restore is cancelled, not left waiting forever."""
    import psycopg

    from backup_tasks.engines.base import RestoreFailed
    from backup_tasks.engines.postgresql import PostgreSQLEngine

    project, dump = pg_backed_up
    project.sql("DELETE FROM readings_reading WHERE id > 10")
    live = fingerprint(project)
    host, port = project.server.rsplit("@", 1)[1].split(":")
    user, password = project.server.split("//", 1)[1].split("@")[0].split(":")
    engine = PostgreSQLEngine(
        "default",
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": project.name,
            "USER": user,
            "PASSWORD": password,
            "HOST": host,
            "PORT": port,
        },
    )
    monkeypatch.setattr("backup_tasks.engines.postgresql.LOCK_WAIT_S", 1.0)
    with psycopg.connect(project.url) as holder:
        holder.execute("SELECT count(*) FROM readings_reading")
        pid = holder.info.backend_pid
        with pytest.raises(RestoreFailed) as failed:
            engine.restore_into(dump)
    assert str(failed.value) == (
        f"it waited more than 1 s for locks held by pid {pid} and was cancelled; nothing was changed"
    )
    assert fingerprint(project) == live


def scratch_databases(project: PgProject) -> list[tuple]:
    return project.sql("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{project.name}_drill_%"])


def test_drill_passes_on_a_good_dump_fails_on_a_damaged_one_and_leaves_no_scratch_database(pg_backed_up):
    project, dump = pg_backed_up
    result = project.manage("backup_database", "--drill", check=True)
    assert f"{dump.name}" in result.stdout
    assert "1,000" in result.stdout
    assert scratch_databases(project) == []
    [(status, rows)] = project.sql("SELECT status, rows FROM backup_tasks_backuprun WHERE kind = 'drill'")
    assert (status, rows) == ("succeeded", 1_000)

    dump.write_bytes(dump.read_bytes()[:-1])
    write_sidecar(dump)  # damaged, yet its checksum matches: the drill itself must see it
    failed = project.manage("backup_database", "--drill")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"Error: {dump} cannot be restored: its data does not read back: ")
    assert scratch_databases(project) == []


def test_drill_says_which_grant_is_missing(pg_backed_up):
    project, dump = pg_backed_up
    project.sql("CREATE ROLE plant_operator LOGIN PASSWORD 'op-pw' NOCREATEDB")
    project.sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO plant_operator")
    project.sql("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO plant_operator")
    try:
        operator_url = project.url.replace(
            project.server.split("//")[1].split("@")[0], "plant_operator:op-pw"
        )
        env = {**project.env, "DATABASE_URL": operator_url}
        result = project.manage("backup_database", "--drill", env=env)
        assert result.returncode == 1
        assert result.stderr.startswith(
            f"Error: The drill could not restore {dump.name}: the role plant_operator may not create the "
            f"scratch database {project.name}_drill_"
        )
        assert "grant it with 'ALTER ROLE plant_operator CREATEDB' (as a superuser)" in result.stderr
        assert scratch_databases(project) == []
    finally:
        project.sql("REASSIGN OWNED BY plant_operator TO CURRENT_USER")
        project.sql("DROP OWNED BY plant_operator")
        project.sql("DROP ROLE plant_operator")


PAGES = """
import json
from django.contrib.auth.models import User
from django.test import Client
client = Client()
client.force_login(User.objects.create_superuser("root", password=None))
out = {}
for url in ("/admin/backups/", "/admin/backups/status/", "/admin/backups/live/", "/admin/readings/reading/",
            "/admin/readings/reading/?timestamp__year=2025&timestamp__month=1"):
    response = client.get(url, HTTP_HOST="localhost")
    out[url] = [response.status_code, response.content.decode()]
print(json.dumps(out))
"""


def test_dashboard_status_and_readings_pages_on_postgresql(pg_backed_up):
    import json

    project, dump = pg_backed_up
    shown = json.loads(project.manage("shell", "-c", PAGES, check=True).stdout.splitlines()[-1])
    for url, (status, _) in shown.items():
        assert status == 200, url
    status_page = shown["/admin/backups/status/"][1]
    assert "1,000" in status_page
    assert dump.name in shown["/admin/backups/"][1] or "Database backup" in shown["/admin/backups/"][1]
    assert (
        "1000 readings" in shown["/admin/readings/reading/"][1]
        or "1,000" in shown["/admin/readings/reading/"][1]
    )


def test_system_check_fails_when_pg_dump_and_pg_restore_are_missing(monkeypatch, tmp_path):
    from backup_tasks.engines.postgresql import PostgreSQLEngine

    # No PostgreSQL client here: an empty folder for Debian's versioned one, and nothing on PATH.
    monkeypatch.setattr("backup_tasks.engines.postgresql.VERSIONED_BIN", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    engine = PostgreSQLEngine("default", {"ENGINE": "django.db.backends.postgresql", "NAME": "plant"})
    assert engine.missing_tools() == ["pg_dump", "pg_restore"]
    with pytest.raises(Exception, match=r"^pg_dump is missing: install the PostgreSQL client tools"):
        engine.tool("pg_dump")


def test_a_postgresql_dump_given_to_a_sqlite_installation_is_refused(pg_backed_up, project):
    _, dump = pg_backed_up
    given = project.root / dump.name
    given.write_bytes(dump.read_bytes())
    write_sidecar(given)
    result = project.manage("backup_database", "--restore", str(given), "--yes")
    assert result.returncode == 1
    assert result.stderr == (
        f"Error: {given} cannot be restored: a PostgreSQL dump, not a SQLite database: this installation runs "
        "on SQLite (restore it with DATABASE_URL set to a PostgreSQL database). Nothing was restored.\n"
    )


def pg_engine(project: PgProject):
    from backup_tasks.engines.postgresql import PostgreSQLEngine

    user, password = project.server.split("//", 1)[1].split("@")[0].split(":")
    host, port = project.server.rsplit("@", 1)[1].split(":")
    return PostgreSQLEngine(
        "default",
        {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": project.name,
            "USER": user,
            "PASSWORD": password,
            "HOST": host,
            "PORT": port,
        },
    )


def test_a_pg_dump_older_than_the_server_is_named_in_one_line(pg_project, monkeypatch, tmp_path):
    from backup_tasks.core.errors import BackupError

    # Stand-in: an old client cannot be installed beside the new one here. It
    # answers --version as PostgreSQL 9.6's pg_dump does.
    folder = tmp_path / "9" / "bin"
    folder.mkdir(parents=True)
    (folder / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")
    (folder / "pg_dump").chmod(0o755)
    monkeypatch.setattr("backup_tasks.engines.postgresql.VERSIONED_BIN", tmp_path)
    engine = pg_engine(pg_project)
    server = engine.connect().info.server_version // 10000
    with pytest.raises(BackupError) as refused:
        engine.snapshot(tmp_path / "out.dump")
    assert str(refused.value) == (
        f"pg_dump 9 is older than the PostgreSQL {server} server: install postgresql-client-{server} "
        "(pg_dump must be at least the server's version)."
    )
    assert not (tmp_path / "out.dump").exists()


def test_a_compressed_dump_is_verified_and_restored(pg_project):
    fill(pg_project, 300)
    pg_project.manage("backup_database", "--type", "db", "--compress", "zstd", check=True)
    [dump] = sorted((pg_project.backups / "database").glob("*.dump.zst"))
    assert DUMP_RE.match(dump.name.removesuffix(".zst"))
    verified = pg_project.manage("backup_database", "--verify", str(dump), check=True)
    assert (
        verified.stdout.splitlines()[0]
        == f"OK       backups/database/{dump.name}: integrity ok, 300 readings"
    )
    original = fingerprint(pg_project)
    pg_project.sql("DELETE FROM readings_reading")
    restored = restore(pg_project, dump)
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(pg_project) == original


def test_with_the_history_on_the_dump_is_uncompressed_and_restored_from_the_history(pg_project):
    # Compressed, each hour's dump would share no chunks with the last one (restic compresses).
    project = pg_project
    history = {
        **project.env,
        "BACKUP_REPOSITORY": "",
        "BACKUP_REPOSITORY_PASSWORD_FILE": str(project.root / "key"),
    }
    fill(project, 1_000)
    project.manage("backup_database", "--type", "db", env=history, check=True)
    [dump] = sorted((project.backups / "database").glob("*.dump"))
    header = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True)
    assert ";     Compression: 0\n" in header.stdout
    plain = project.manage("backup_database", "--type", "db", check=True)  # history off: compressed
    assert plain.returncode == 0
    newest = sorted((project.backups / "database").glob("*.dump"))[-1]
    listed = subprocess.run(["pg_restore", "--list", str(newest)], capture_output=True, text=True, check=True)
    assert ";     Compression: 0\n" not in listed.stdout

    before = fingerprint(project)
    project.sql("DELETE FROM readings_reading WHERE id > 500")
    result = project.manage("backup_database", "--restore", "--at", "2100-01-01 00:00", "--yes", env=history)
    assert result.returncode == 0, result.stdout + result.stderr
    assert fingerprint(project) == before

    # The weekly job's drill of restore points: into scratch databases, none left behind.
    drill = project.manage("backup_database", "--drill", env=history)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert "Restore drill passed: local restore point " in drill.stdout
    assert scratch_databases(project) == []
