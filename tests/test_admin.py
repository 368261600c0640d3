"""Admin: the backup schedules page and the actions that queue a job now."""

import json
import re
import socket
import time

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backup_tasks.queueing.broker import client as broker_client
from backup_tasks.queueing.schedules import install_default_schedules

from .conftest import free_port, operator, use_broker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = "/admin/backup_tasks/backupschedule/"


@pytest.fixture
def schedules():
    PeriodicTask.objects.all().delete()
    install_default_schedules(PeriodicTask, CrontabSchedule, "UTC")


@pytest.fixture
def alice(client, schedules):
    """A shift lead who may run backups, and nothing else."""
    client.force_login(operator("alice", "run_backup"))
    return client


def post_action(client, action: str, url: str = PAGE, **data):
    response = client.post(url, {"action": action, "index": 0, **data}, follow=True)
    return response, [str(m) for m in get_messages(response.wsgi_request)]


def queued(redis_client) -> list[dict]:
    return [json.loads(raw)["headers"] for raw in reversed(redis_client.lrange("celery", 0, -1))]


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_the_schedules_page_lists_the_three_jobs_and_offers_the_run_actions(alice):
    page = alice.get(PAGE).content.decode()

    for name in ("Hourly backup", "Daily backup and cleanup", "Weekly backup and statistics"):
        assert name in page
    for action in (
        "Run complete backup now",
        "Export CSV now",
        "Export JSON now",
        "Clean up old backups now",
    ):
        assert f">{action}</option>" in page


@pytest.mark.parametrize(
    ("action", "task", "answer"),
    [
        ("run_complete_backup", "backup_tasks.tasks.complete_backup", "Complete backup"),
        ("export_csv_now", "backup_tasks.tasks.export_csv", "CSV export"),
        ("export_json_now", "backup_tasks.tasks.export_json", "JSON export"),
        ("cleanup_now", "backup_tasks.tasks.cleanup_old_backups", "Cleanup"),
    ],
)
def test_each_action_queues_its_task_without_selecting_a_row(alice, celery_app, action, task, answer):
    response, messages = post_action(alice, action)

    assert response.status_code == 200
    assert len(messages) == 1
    assert re.fullmatch(rf"{answer} queued \(task id ({UUID})\)\.", messages[0])
    [message] = queued(broker_client())
    assert message["task"] == task
    assert message["id"] == re.search(UUID, messages[0]).group()
    assert message["backup_requested_by"] == "alice"


def test_an_admin_click_makes_the_worker_write_a_backup(alice, worker, backup_dir):
    _, messages = post_action(alice, "run_complete_backup")
    task_id = re.search(UUID, messages[0]).group()

    log = backup_dir / "scheduled_backup.log"
    wait_until(lambda: log.exists() and "Complete backup finished" in log.read_text(), what="the backup")

    assert sorted(p.parent.name for p in backup_dir.glob("*/*") if p.suffix != ".sha256") == [
        "csv_exports",
        "database",
        "json_exports",
    ]
    assert f"Complete backup started (requested in admin by alice, task {task_id})" in log.read_text()


def test_staff_without_our_permission_cannot_run_backups(client, schedules, celery_app):
    client.force_login(operator("bob", "view_backupschedule"))

    page = client.get(PAGE).content.decode()
    _, messages = post_action(client, "run_complete_backup")

    assert "Hourly backup" in page
    assert "Run complete backup now" not in page
    assert messages == [
        "Items must be selected in order to perform actions on them. No items have been changed."
    ]
    assert queued(broker_client()) == []


def test_run_selected_schedules_runs_their_jobs(alice, celery_app):
    hourly = PeriodicTask.objects.get(name="Hourly backup")

    _, messages = post_action(alice, "run_tasks", _selected_action=[hourly.pk])

    assert messages == ["1 task was successfully run"]
    [message] = queued(broker_client())
    assert (message["task"], message["periodic_task_name"]) == (
        "backup_tasks.tasks.complete_backup",
        "Hourly backup",
    )


@pytest.fixture
def broker_down(celery_app):
    """The broker URL points at a port where nothing listens."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    use_broker(celery_app, url)
    return url


@pytest.mark.parametrize(
    "action", ["run_complete_backup", "export_csv_now", "export_json_now", "cleanup_now"]
)
def test_with_redis_down_each_action_answers_at_once_with_a_clear_message(alice, broker_down, action):
    began = time.monotonic()
    response, messages = post_action(alice, action)
    elapsed = time.monotonic() - began

    assert response.status_code == 200
    assert elapsed < 2
    what = {"run_complete_backup": "the backup", "export_csv_now": "the CSV export"}.get(
        action, {"export_json_now": "the JSON export", "cleanup_now": "the cleanup"}.get(action)
    )
    port = broker_down.split(":")[2].split("/")[0]
    assert messages == [
        f"Could not queue {what}: the task queue at {broker_down} is unreachable (Error 111 connecting to "
        f"127.0.0.1:{port}. Connection refused.). Start Redis, or check CELERY_BROKER_URL."
    ]


def test_with_redis_down_django_celery_beats_own_run_action_answers_with_a_message(
    client, schedules, broker_down
):
    client.force_login(User.objects.create_superuser("root", password=None))
    hourly = PeriodicTask.objects.get(name="Hourly backup")

    began = time.monotonic()
    response, messages = post_action(
        client, "run_tasks", url="/admin/django_celery_beat/periodictask/", _selected_action=[hourly.pk]
    )

    assert response.status_code == 200
    assert time.monotonic() - began < 2
    assert len(messages) == 1
    assert messages[0].startswith(
        f"Could not queue the selected tasks: the task queue at {broker_down} is unreachable"
    )


def test_a_redis_that_accepts_but_never_answers_does_not_hang_the_request(alice, celery_app):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        use_broker(celery_app, url)

        began = time.monotonic()
        response, messages = post_action(alice, "run_complete_backup")
        elapsed = time.monotonic() - began

    assert response.status_code == 200
    assert elapsed < 3.5
    assert messages == [
        f"Could not queue the backup: the task queue at {url} is unreachable (Timeout reading from socket). "
        "Start Redis, or check CELERY_BROKER_URL."
    ]


def test_an_admin_click_is_recorded_as_a_run_by_that_user(alice, worker, backup_dir):
    from backup_tasks.models import BackupRun

    post_action(alice, "run_complete_backup")
    wait_until(lambda: BackupRun.objects.filter(kind="json", status="succeeded").exists(), what="the runs")

    assert list(BackupRun.objects.order_by("id").values_list("kind", "status", "trigger")) == [
        ("snapshot", "succeeded", "admin: alice"),
        ("csv", "succeeded", "admin: alice"),
        ("json", "succeeded", "admin: alice"),
    ]


def test_the_restore_drill_action_queues_a_drill_that_the_worker_records(alice, worker, backup_dir):
    from backup_tasks.models import BackupRun
    from backup_tasks.services import backup as services

    services.snapshot_database()
    _, messages = post_action(alice, "restore_drill_now")

    assert re.fullmatch(rf"Restore drill queued \(task id {UUID}\)\.", messages[0])
    wait_until(
        lambda: BackupRun.objects.filter(kind="drill").exclude(status="running").exists(), what="the drill"
    )
    drill = BackupRun.objects.get(kind="drill")
    assert (drill.status, drill.trigger, drill.rows) == ("succeeded", "admin: alice", 0)


def test_the_run_history_is_read_only_newest_first_with_failures_marked(alice, admin_client):
    from backup_tasks.models import BackupRun

    BackupRun.objects.create(kind="csv", status="succeeded", trigger="task: CSV export")
    BackupRun.objects.create(
        kind="snapshot", status="failed", trigger="schedule: Hourly backup", error="disk full"
    )

    response = admin_client.get("/admin/backup_tasks/backuprun/")
    page = response.content.decode()

    assert response.status_code == 200
    assert page.index("FAILED") < page.index("Succeeded")  # newest first
    assert '<strong style="color:#ba2121">FAILED</strong>: disk full' in page
    assert admin_client.get("/admin/backup_tasks/backuprun/add/").status_code == 403
    run = BackupRun.objects.first()
    assert (
        admin_client.post(f"/admin/backup_tasks/backuprun/{run.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert BackupRun.objects.count() == 2
