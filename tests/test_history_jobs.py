"""The scheduled jobs keep the history: restore points tagged with their slot, retention daily, check weekly."""

import json
import os
import subprocess
from datetime import UTC, datetime

import pytest

from backup_tasks import tasks
from backup_tasks.models import BackupRun
from readings.models import Reading

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history_on(settings, backup_dir, tmp_path):
    settings.BACKUP_REPOSITORY = ""
    settings.BACKUP_REPOSITORY_PASSWORD_FILE = tmp_path / "backup-repository.key"
    return backup_dir / "repository", settings.BACKUP_REPOSITORY_PASSWORD_FILE


def points(repository, key) -> list[dict]:
    env = dict(os.environ, RESTIC_REPOSITORY=str(repository), RESTIC_PASSWORD_FILE=str(key))
    out = subprocess.run(
        ["restic", "snapshots", "--json"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_scheduled_jobs_tag_their_slot_forget_daily_and_check_weekly(worker, history_on):
    repository, key = history_on
    Reading.objects.create(
        water_temperature=60, air_temperature=25, humidity=45, setpoint=60, pid_output=10,
        timestamp=datetime(2025, 1, 11, 14, 30, tzinfo=UTC),
    )  # fmt: skip
    slot = {tasks.SLOT_HEADER: "2026-06-01 02:00:00+00:00"}
    daily = tasks.daily_backup.apply_async(headers={"periodic_task_name": "Daily backup and cleanup", **slot})
    summary = daily.get(timeout=120)

    assert [f["kind"] for f in summary["files"]] == ["db", "csv", "json"]
    tagged = points(repository, key)
    assert len(tagged) == 3
    assert all("slot:2026-06-01 02:00:00+00:00" in p["tags"] for p in tagged)
    assert summary["history_retention"] == [{"where": "local", "forgot": 0, "kept": 3}]
    assert BackupRun.objects.filter(kind="retention", status="succeeded").count() == 1

    weekly = tasks.weekly_backup.delay().get(timeout=180)
    assert [c["where"] for c in weekly["history_check"]] == ["local"]
    assert weekly["history_check"][0]["ok"] is True
    assert weekly["history_check"][0]["subset"].endswith("/4")
    assert [d["rows"] for d in weekly["history_drill"]] == [1, 1]
    assert BackupRun.objects.filter(kind="repo_check", status="succeeded").count() == 1
