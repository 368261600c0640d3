"""Shared fixtures: real SQLite files in tmp_path and real manage.py processes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """In-process tests use a real SQLite file, not Django's in-memory default."""
    from django.conf import settings

    test_db = tmp_path_factory.mktemp("testdb") / "test.sqlite3"
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = str(test_db)


@pytest.fixture
def backup_dir(settings, tmp_path) -> Path:
    folder = tmp_path / "backups"
    settings.BACKUP_DIR = folder
    return folder


class Project:
    """Runs manage.py in a subprocess against its own database and backup folder."""

    def __init__(self, root: Path, time_zone: str = "UTC") -> None:
        self.root = root
        self.db = root / "db.sqlite3"
        self.backups = root / "backups"
        self.time_zone = time_zone

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        env.update(
            DATABASE_URL=f"sqlite:///{self.db}",
            BACKUP_DIR=str(self.backups),
            TIME_ZONE=self.time_zone,
            DJANGO_SETTINGS_MODULE="smartAquarium.settings",
            PYTHONPATH=str(PROJECT),
        )
        return env

    def manage(self, *args: str, check: bool = False, timeout: float = 300, **kwargs):
        result = subprocess.run(
            [sys.executable, str(PROJECT / "manage.py"), *args],
            cwd=kwargs.pop("cwd", self.root),
            env=kwargs.pop("env", self.env),
            capture_output=kwargs.pop("capture_output", True),
            text=True,
            timeout=timeout,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def files(self) -> list[str]:
        """Every file below backups/ except the log, as relative paths."""
        if not self.backups.exists():
            return []
        return sorted(
            str(p.relative_to(self.backups))
            for p in self.backups.rglob("*")
            if p.is_file() and not p.name.startswith("scheduled_backup.log")
        )


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One migrated, empty database, copied for each test that needs a project."""
    root = tmp_path_factory.mktemp("template")
    Project(root).manage("migrate", "--noinput", check=True)
    return root / "db.sqlite3"


@pytest.fixture
def project(tmp_path, migrated_template) -> Project:
    shutil.copy(migrated_template, tmp_path / "db.sqlite3")
    return Project(tmp_path)
