"""Backup downloads from admin: our files byte for byte, and nothing else at all."""

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.http import FileResponse

from backup_tasks.services import backup as services
from backup_tasks.web import downloads
from readings.models import Reading
from tests.conftest import operator

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/admin/backups/download/"
WHEN = datetime(2025, 1, 11, 14, 30, 22, tzinfo=UTC)
DB_NAME = "database/db_backup_20250111_143022.sqlite3"
CSV_NAME = "csv_exports/readings_20250111_143022.csv"
JSON_NAME = "json_exports/readings_20250111_143022.json"
SECRET = b"not for download\n"


@pytest.fixture
def backups(backup_dir, tmp_path):
    """A complete backup of three readings, and a secret file beside the backup folder."""
    for second in (22, 24, 26):
        Reading.objects.create(
            water_temperature=24.5,
            air_temperature=26.2,
            humidity=60.5,
            setpoint=25.0,
            pid_output=120,
            timestamp=WHEN.replace(second=second),
        )
    for service in (services.snapshot_database, services.export_csv, services.export_json):
        service(when=WHEN)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return backup_dir


@pytest.fixture
def olga(client, backups):
    """An operator who may download backups."""
    client.force_login(operator("olga", "download_backup"))
    return client


@pytest.fixture
def backup_log(caplog):
    """Records of the backup_tasks logger, which does not propagate to the root logger."""
    logger = logging.getLogger("backup_tasks")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        (DB_NAME, "application/vnd.sqlite3"),
        (CSV_NAME, "text/csv; charset=utf-8"),
        (JSON_NAME, "application/json"),
        (DB_NAME + ".sha256", "text/plain; charset=utf-8"),
    ],
)
def test_a_backup_downloads_byte_for_byte_as_a_named_attachment(olga, backups, name, content_type):
    response = olga.get(URL + name)

    expected = (backups / name).read_bytes()
    assert response.status_code == 200
    assert isinstance(response, FileResponse)
    assert body(response) == expected
    assert response["Content-Length"] == str(len(expected))
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="{name.split("/")[1]}"'


def test_each_downloaded_backup_matches_the_checksum_in_its_sidecar(olga):
    for name in (DB_NAME, CSV_NAME, JSON_NAME):
        downloaded = body(olga.get(URL + name))
        sidecar = body(olga.get(URL + name + ".sha256")).decode()

        assert sidecar == f"{hashlib.sha256(downloaded).hexdigest()}  {name.split('/')[1]}\n"


def test_a_compressed_backup_downloads_as_gzip(olga, backups):
    result = services.export_csv(when=WHEN.replace(minute=31), compress="gzip")

    response = olga.get(URL + "csv_exports/readings_20250111_143122.csv.gz")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/gzip"
    assert body(response) == Path(result.path).read_bytes()


def test_head_answers_the_headers_without_the_file(olga, backups):
    response = olga.head(URL + DB_NAME)

    assert response.status_code == 200
    assert response["Content-Length"] == str((backups / DB_NAME).stat().st_size)
    assert body(response) == b""


def test_every_download_is_logged_with_the_user_the_file_and_its_size(olga, backups, backup_log):
    olga.get(URL + CSV_NAME)

    size = f"{(backups / CSV_NAME).stat().st_size:,}"
    [record] = [r for r in backup_log.records if r.name == "backup_tasks"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"Download by olga: {CSV_NAME} ({size} bytes)"
    assert f"Download by olga: {CSV_NAME} ({size} bytes)" in (backups / "scheduled_backup.log").read_text()


@pytest.fixture
def traps(backups, tmp_path):
    """Files and folders in and around the backup folder that must never be served."""
    db = backups / DB_NAME
    (backups / "database" / ".db_backup_20250111_143022.1234.tmp").write_bytes(SECRET)
    (backups / "database" / "notes.txt").write_bytes(SECRET)
    (backups / "csv_exports" / "db_backup_20250111_143022.sqlite3").write_bytes(SECRET)
    (backups / "database" / "db_backup_20240101_000000.sqlite3").mkdir()
    # `$` in a pattern also matches before a final newline.
    (backups / "database" / "db_backup_20240102_000000.sqlite3\n").write_bytes(SECRET)
    return db


REFUSED = [
    "../secret.txt",
    "database/../../secret.txt",
    "database/../" + DB_NAME,
    "%2e%2e/secret.txt",
    "%2e%2e%2fsecret.txt",
    "database%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "%252e%252e%252fsecret.txt",
    "database/%252e%252e/%252e%252e/secret.txt",
    "..%5csecret.txt",
    "database%5cdb_backup_20250111_143022.sqlite3",
    "database/..%5c..%5csecret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "./" + DB_NAME,
    "database//db_backup_20250111_143022.sqlite3",
    "database/./db_backup_20250111_143022.sqlite3",
    DB_NAME + "%00",
    DB_NAME + "%00.sha256",
    "scheduled_backup.log",
    "database/.db_backup_20250111_143022.1234.tmp",
    "database/notes.txt",
    "database/db_backup_20250111_999999.sqlite3",
    "database/db_backup_20990101_000000.sqlite3",
    "Database/db_backup_20250111_143022.sqlite3",
    "csv_exports/db_backup_20250111_143022.sqlite3",
    "database/readings_20250111_143022.csv",
    "database/notes.txt.sha256",
    "database",
    "database/",
    DB_NAME + "/",
    "database/db_backup_20240101_000000.sqlite3",
    "db_backup_20250111_143022.sqlite3",
]


@pytest.mark.parametrize("name", REFUSED)
def test_anything_but_our_backup_names_is_a_404_that_names_nothing(olga, traps, backups, name, backup_log):
    response = olga.get(URL + name)

    assert response.status_code == 404
    assert not response.streaming
    assert SECRET not in response.content
    assert b"sqlite" not in response.content
    assert str(backups).encode() not in response.content
    [record] = [r for r in backup_log.records if r.name == "backup_tasks"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("Download refused to olga: ")
    assert record.getMessage().endswith(" (not a backup file)")


def test_a_name_ending_in_a_newline_is_a_404(olga, traps):
    response = olga.get(URL + "database/db_backup_20240102_000000.sqlite3%0a")

    assert response.status_code == 404
    assert SECRET not in response.content


def test_a_refusal_logs_the_requested_name_escaped(olga, traps, backups, backup_log):
    # A carriage return reaches the view (a newline ends the URL pattern) and could forge a log line.
    olga.get(URL + "..%2fsecret.txt%0d2025-01-11 00:00:00 INFO forged")

    [record] = [r for r in backup_log.records if r.name == "backup_tasks"]
    assert record.getMessage() == (
        "Download refused to olga: '../secret.txt\\r2025-01-11 00:00:00 INFO forged' (not a backup file)"
    )
    assert b"\r2025-01-11 00:00:00 INFO forged" not in (backups / "scheduled_backup.log").read_bytes()


def test_a_link_under_our_name_pointing_out_of_the_folder_is_not_followed(olga, backups, tmp_path):
    (backups / "database" / "db_backup_20250112_000000.sqlite3").symlink_to(tmp_path / "secret.txt")

    response = olga.get(URL + "database/db_backup_20250112_000000.sqlite3")

    assert response.status_code == 404
    assert SECRET not in response.content


def test_a_link_to_another_of_our_backups_is_not_followed_either(olga, backups):
    (backups / "database" / "db_backup_20250112_000000.sqlite3").symlink_to(backups / DB_NAME)

    assert olga.get(URL + "database/db_backup_20250112_000000.sqlite3").status_code == 404
    assert olga.get(URL + DB_NAME).status_code == 200


def test_a_kind_folder_that_is_a_link_out_of_the_backup_folder_is_not_followed(olga, backups, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "readings_20250111_143022.json").write_bytes(SECRET)
    (backups / "json_exports").rename(tmp_path / "moved")
    (backups / "json_exports").symlink_to(elsewhere, target_is_directory=True)

    response = olga.get(URL + JSON_NAME)

    assert response.status_code == 404
    assert SECRET not in response.content


def test_dangling_and_looping_links_are_a_404(olga, backups, tmp_path):
    (backups / "database" / "db_backup_20250112_000000.sqlite3").symlink_to(tmp_path / "gone")
    loop = backups / "database" / "db_backup_20250113_000000.sqlite3"
    loop.symlink_to(loop)

    assert olga.get(URL + "database/db_backup_20250112_000000.sqlite3").status_code == 404
    assert olga.get(URL + "database/db_backup_20250113_000000.sqlite3").status_code == 404


def test_a_backup_folder_that_is_itself_a_link_is_served(olga, backups, settings, tmp_path):
    # BACKUP_DIR is the operator's choice (a mounted disk, say): only links below it are refused.
    (tmp_path / "mounted").symlink_to(backups, target_is_directory=True)
    settings.BACKUP_DIR = tmp_path / "mounted"

    response = olga.get(URL + DB_NAME)

    assert response.status_code == 200
    assert body(response) == (backups / DB_NAME).read_bytes()


def test_anonymous_users_are_sent_to_the_login_page(client, backups):
    response = client.get(URL + DB_NAME)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}{DB_NAME}"


def test_logged_in_users_who_are_not_staff_are_sent_to_the_login_page(client, backups):
    user = User.objects.create_user("visitor")
    user.user_permissions.add(Permission.objects.get(codename="download_backup"))
    client.force_login(user)

    response = client.get(URL + DB_NAME)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("name", [DB_NAME, "../secret.txt", "database/db_backup_20990101_000000.sqlite3"])
def test_staff_without_the_download_permission_are_refused_whatever_they_ask(
    client, backups, backup_log, name
):
    client.force_login(operator("bob", "view_backuprun", "view_dashboard"))

    response = client.get(URL + name)

    assert response.status_code == 403
    assert not response.streaming
    assert SECRET not in response.content
    [record] = [r for r in backup_log.records if r.name == "backup_tasks"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"Download refused to bob: {name!r} (no download permission)"


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_only_get_and_head_are_allowed(olga, backups, method):
    response = getattr(olga, method)(URL + DB_NAME)

    assert response.status_code == 405
    assert (backups / DB_NAME).exists()


def test_url_for_names_the_download_of_our_files_only(backups, settings):
    assert downloads.url_for(backups / DB_NAME) == URL + DB_NAME
    assert downloads.url_for(str(backups / CSV_NAME) + ".sha256") == URL + CSV_NAME + ".sha256"
    assert downloads.url_for(backups.resolve() / JSON_NAME) == URL + JSON_NAME
    assert downloads.url_for(backups / "scheduled_backup.log") is None
    assert downloads.url_for(backups / "database" / ".db_backup_20250111_143022.1.tmp") is None
    assert downloads.url_for(backups.parent / "secret.txt") is None
    assert downloads.url_for("/etc/passwd") is None


def test_url_for_gives_a_url_that_downloads_the_file(olga, backups):
    response = olga.get(downloads.url_for(backups / JSON_NAME))

    assert body(response) == (backups / JSON_NAME).read_bytes()


def test_servable_returns_the_file_or_raises_404(backups, traps):
    from django.http import Http404

    assert downloads.servable(DB_NAME) == backups.resolve() / DB_NAME
    for name in (
        "../secret.txt",
        "database/notes.txt",
        "database/db_backup_20240101_000000.sqlite3",
        # A name the URL pattern never passes on (`.` stops at a newline), refused here too.
        "database/db_backup_20240102_000000.sqlite3\n",
    ):
        with pytest.raises(Http404):
            downloads.servable(name)
