"""Settings come from the environment; system checks catch what would break backups."""

import os
import sqlite3
import subprocess
import sys

from tests.conftest import PROJECT

SHOW = (
    "import json; from django.conf import settings as s; "
    "d = s.DATABASES['default']; "
    "print(json.dumps([d['ENGINE'], str(d['NAME']), d.get('HOST'), d.get('PORT'), d.get('USER'),"
    " d.get('OPTIONS'), str(s.BACKUP_DIR), s.BACKUP_KEEP_DAYS, s.TIME_ZONE, s.DEBUG, s.ALLOWED_HOSTS,"
    " s.CELERY_BROKER_URL]))"
)


def settings_with(env: dict[str, str]) -> list:
    import json

    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT),
        "DJANGO_SETTINGS_MODULE": "smartAquarium.settings",
        # This test run's key file (tests/settings.py), never one in the checkout.
        "SECRET_KEY_FILE": os.environ["SECRET_KEY_FILE"],
    }
    out = subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), "shell", "--no-imports", "-c", SHOW],
        env={**base, **env},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def test_defaults_need_no_environment():
    engine, name, _, _, _, options, backup_dir, keep, zone, debug, hosts, broker = settings_with({})
    assert engine == "django.db.backends.sqlite3"
    assert name == str(PROJECT / "db.sqlite3")
    assert options == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    assert (backup_dir, keep, zone, debug) == (str(PROJECT / "backups"), 30, "UTC", False)
    assert broker == "redis://127.0.0.1:6379/0"
    assert "localhost" in hosts


def test_every_documented_variable_is_read():
    engine, name, host, port, user, _, backup_dir, keep, zone, debug, hosts, broker = settings_with(
        {
            "DATABASE_URL": "postgres://plant:secret@db.example:5433/readings",
            "BACKUP_DIR": "/srv/backups",
            "BACKUP_KEEP_DAYS": "90",
            "TIME_ZONE": "Europe/Berlin",
            "DEBUG": "true",
            "ALLOWED_HOSTS": "plant.local, 10.0.0.5",
            "CELERY_BROKER_URL": "redis://broker:6379/3",
        }
    )
    assert (engine, name, host, port, user) == (
        "django.db.backends.postgresql",
        "readings",
        "db.example",
        5433,
        "plant",
    )
    assert (backup_dir, keep, zone, debug) == ("/srv/backups", 90, "Europe/Berlin", True)
    assert hosts == ["plant.local", "10.0.0.5"]
    assert broker == "redis://broker:6379/3"


def test_env_example_lists_every_variable_settings_read():
    import re

    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', (PROJECT / "smartAquarium" / "settings.py").read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", (PROJECT / ".env.example").read_text(), re.M))
    # The PostgreSQL server's own password, read by docker-compose.postgres.yml, not by settings.
    assert read == listed - {"POSTGRES_PASSWORD"}


def test_database_runs_in_wal_mode_after_migrate(project):
    with sqlite3.connect(project.db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_system_check_fails_loudly_when_sqlite_is_not_in_wal_mode(project):
    # Without the WAL init_command (as an edited settings file would have it),
    # a database in rollback-journal mode must not pass the checks.
    with sqlite3.connect(project.db) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    code = (
        "from django.conf import settings; settings.DATABASES['default']['OPTIONS'].pop('init_command'); "
        "from django.core.management import call_command; call_command('check')"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env=project.env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "(backup_tasks.E002)" in result.stderr
    assert "is in 'delete' journal mode, not WAL" in result.stderr


def test_system_check_fails_when_the_backup_folder_cannot_be_created(project, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = project.manage("check", env={**project.env, "BACKUP_DIR": str(blocker / "backups")})
    assert result.returncode == 1
    assert f"(backup_tasks.E001) The backup folder {blocker / 'backups'} cannot be created or written." in (
        result.stderr
    )


def test_checks_pass_on_the_default_set_up(project):
    result = project.manage("check", check=True)
    assert result.stdout == "System check identified no issues (0 silenced).\n"
