"""No shared secret key, HTTPS settings that pass `check --deploy`, and throttled admin logins."""

import os
import re
import shlex
import stat
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from django.test import Client

from .conftest import PROJECT, free_port

SHOW_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"


def clean_env(data: Path, **extra: str) -> dict[str, str]:
    """A process environment as on a fresh machine (no .env, no SECRET_KEY, DEBUG off), its
    database and backups in data."""
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(PROJECT),
        "DJANGO_SETTINGS_MODULE": "smartAquarium.settings",
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "BACKUP_DIR": str(data / "backups"),
        **extra,
    }


def manage(*args: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, str(PROJECT / "manage.py"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def key_used(env: dict[str, str]) -> str:
    result = manage("shell", "--no-imports", "-c", SHOW_KEY, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


# The tests run as root, whom file modes do not stop: drop root's power to
# ignore them, so that "cannot be read" is what an ordinary user meets.
AS_ORDINARY_USER = (
    ("setpriv", "--bounding-set", "-dac_override,-dac_read_search") if os.geteuid() == 0 else ()
)


# -- The secret key -----------------------------------------------------------


def test_without_debug_or_secret_key_a_key_is_made_once_in_a_file_only_its_owner_can_read(tmp_path):
    (tmp_path / "keys").mkdir()
    key_file = tmp_path / "keys" / "secret.key"
    env = clean_env(tmp_path, SECRET_KEY_FILE=str(key_file))

    first = key_used(env)
    made = key_file.stat()
    second = key_used(env)
    check = manage("check", env=env)

    assert stat.S_IMODE(made.st_mode) == 0o600
    assert key_file.read_text() == first + "\n"
    assert len(first) >= 50  # check --deploy's minimum
    assert second == first
    assert (key_file.stat().st_ino, key_file.stat().st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    assert sorted(p.name for p in key_file.parent.iterdir()) == ["secret.key"]  # no temporary file left
    assert check.stdout == "System check identified no issues (0 silenced).\n"
    assert first not in check.stdout + check.stderr
    # Random, not a fixed string: another place gets another key.
    assert key_used(clean_env(tmp_path, SECRET_KEY_FILE=str(tmp_path / "other.key"))) != first


RACE = """
import os, sys
import django.conf, smartAquarium.secret_key  # everything but the settings, before the start
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    pass
from django.conf import settings
print(settings.SECRET_KEY)
"""


def test_processes_starting_at_once_all_use_the_one_key_the_first_of_them_made(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    go = tmp_path / "go"
    env = clean_env(tmp_path, SECRET_KEY_FILE=str(keys / "secret.key"))
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(go)], cwd=PROJECT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    try:
        for process in processes:
            assert process.stdout.readline() == "ready\n"
        go.touch()  # all of them look for the key file at the same moment
        used = {process.communicate(timeout=60)[0].strip() for process in processes}
    finally:
        for process in processes:
            process.kill()

    assert [process.returncode for process in processes] == [0] * 8
    assert len(used) == 1
    assert sorted(p.name for p in keys.iterdir()) == ["secret.key"]
    assert (keys / "secret.key").read_text() == used.pop() + "\n"
    assert stat.S_IMODE((keys / "secret.key").stat().st_mode) == 0o600


def test_with_debug_on_the_development_key_is_used_and_no_file_is_made(tmp_path):
    key_file = tmp_path / "secret.key"

    key = key_used(clean_env(tmp_path, DEBUG="true", SECRET_KEY_FILE=str(key_file)))

    assert key == "dev-only-insecure-key-change-me-in-production"
    assert not key_file.exists()


def test_a_secret_key_from_the_environment_is_used_and_no_file_is_made(tmp_path):
    key_file = tmp_path / "secret.key"

    key = key_used(
        clean_env(
            tmp_path, SECRET_KEY="k" * 10 + "an-operator's-own-key-long-enough", SECRET_KEY_FILE=str(key_file)
        )
    )

    assert key == "kkkkkkkkkkan-operator's-own-key-long-enough"
    assert not key_file.exists()


def _empty(path: Path) -> None:
    path.touch(mode=0o600)


def _open_to_others(path: Path) -> None:
    path.write_text("a-key-anyone-on-this-machine-can-read\n")
    path.chmod(0o644)


def _unreadable(path: Path) -> None:
    path.write_text("a-key-of-another-user\n")
    path.chmod(0o000)


def _folder_missing(path: Path) -> None:
    pass


def _folder_read_only(path: Path) -> None:
    path.parent.chmod(0o555)


@pytest.mark.parametrize(
    ("spoil", "where", "line"),
    [
        (
            _empty,
            "secret.key",
            "The secret key file {path} is empty: remove it to have a new key made (everyone signed in "
            "logs in again), or write your key into it.",
        ),
        (
            _open_to_others,
            "secret.key",
            "The secret key file {path} is open to other users (mode 0644): run chmod 600 {path}",
        ),
        (
            _unreadable,
            "secret.key",
            "The secret key file {path} cannot be read (Permission denied): let the user running "
            "smartAquarium read it (chown; chmod 600), or set SECRET_KEY.",
        ),
        (
            _folder_missing,
            "missing/secret.key",
            "The folder {folder} for the secret key file does not exist: create it, set SECRET_KEY_FILE "
            "to a file in a folder that does, or set SECRET_KEY.",
        ),
        (
            _folder_read_only,
            "secret.key",
            "No secret key yet, and none can be made in {folder} (Permission denied): let the user "
            "running smartAquarium write there, set SECRET_KEY_FILE elsewhere, or set SECRET_KEY.",
        ),
    ],
    ids=["empty", "open-to-others", "unreadable", "folder-missing", "folder-read-only"],
)
def test_a_key_file_that_cannot_be_used_stops_every_command_with_one_line(tmp_path, spoil, where, line):
    path = tmp_path / "keys" / where
    (tmp_path / "keys").mkdir()
    spoil(path)
    before = sorted(p.name for p in (tmp_path / "keys").iterdir())
    try:
        result = manage("check", env=clean_env(tmp_path, SECRET_KEY_FILE=str(path)), prefix=AS_ORDINARY_USER)
    finally:
        (tmp_path / "keys").chmod(0o755)

    assert result.returncode == 1
    assert result.stderr == line.format(path=path, folder=path.parent) + "\n"
    assert result.stdout == ""
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == before  # nothing replaced or added


def test_the_example_key_published_with_the_project_is_refused(tmp_path):
    result = manage(
        "check",
        env=clean_env(
            tmp_path, SECRET_KEY="change-me-to-a-long-random-string", SECRET_KEY_FILE=str(tmp_path / "k")
        ),
    )

    assert result.returncode == 1
    assert result.stderr == (
        "SECRET_KEY is the example value published with smartAquarium: remove it to have a random key "
        f"made in {tmp_path / 'k'}, or set a long random value of your own.\n"
    )


def test_the_web_server_stops_with_the_line_instead_of_restarting_its_workers(tmp_path):
    key_file = tmp_path / "secret.key"
    key_file.touch(mode=0o600)
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "smartAquarium.wsgi",
            *("--bind", f"127.0.0.1:{free_port()}", "--workers", "2", "--no-control-socket"),
        ],
        cwd=PROJECT,
        env=clean_env(tmp_path, SECRET_KEY_FILE=str(key_file)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = web.communicate(timeout=90)
    finally:
        web.kill()

    assert web.returncode != 0
    assert f"The secret key file {key_file} is empty:" in output
    assert "Worker failed to boot." in output  # halted, not restarting workers for ever


def test_the_key_file_never_goes_into_the_repository_or_the_image():
    ignored = subprocess.run(
        ["git", "check-ignore", "secret.key", ".secret.key.x1y2z3.tmp"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == ["secret.key", ".secret.key.x1y2z3.tmp"]
    assert {"secret.key", ".secret.key.*"} <= set((PROJECT / ".dockerignore").read_text().splitlines())


# -- check --deploy -----------------------------------------------------------

# What is a path on the deployed machine is put in tmp_path; every other value is the file's own.
PATHS = ("DATABASE_URL", "BACKUP_DIR", "SECRET_KEY_FILE")
HSTS = {
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def interpolate(value: str) -> str:
    """A compose value as `docker compose` sees it with no .env file."""

    def variable(match: re.Match) -> str:
        name, operator, default = match.group(1), match.group(2), match.group(3) or ""
        assert operator != "?", f"compose cannot start without .env: {name} is required"
        return default if operator == "-" else ""

    return re.sub(r"\$\{([A-Z_]+)(?::([-?])([^}]*))?\}", variable, str(value))


def compose_web_environment() -> dict[str, str]:
    compose = yaml.safe_load((PROJECT / "docker-compose.yml").read_text(encoding="utf-8"))
    return {name: interpolate(value) for name, value in compose["services"]["web"]["environment"].items()}


def unit_environment() -> dict[str, str]:
    """The Environment= lines of the systemd unit (its .env is optional)."""
    env = {}
    for line in (PROJECT / "deploy" / "smartaquarium-worker.service").read_text().splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def check_deploy(env: dict[str, str], tmp_path: Path) -> tuple[int, list[str], str]:
    """`manage.py check --deploy --fail-level WARNING` on env: exit code, issue ids, output."""
    env = {
        **env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "BACKUP_DIR": str(tmp_path / "backups"),
        "SECRET_KEY_FILE": str(tmp_path / "secret.key"),
    }
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(tmp_path, **env))
    output = result.stdout + result.stderr
    return result.returncode, re.findall(r"^\?: \(([\w.]+)\)", output, re.MULTILINE), output


def test_check_deploy_reports_only_hsts_under_the_compose_settings(tmp_path):
    env = compose_web_environment()
    assert (env["DATABASE_URL"], env["BACKUP_DIR"], env["SECRET_KEY_FILE"]) == (
        "sqlite:////data/db.sqlite3",
        "/data/backups",
        "/data/secret.key",
    )
    assert env["SECRET_KEY"] == ""  # no key to set: made in the volume

    code, issues, output = check_deploy(env, tmp_path)

    assert (code, issues) == (1, ["security.W004"]), output
    assert "System check identified 1 issue (0 silenced)." in output


def test_check_deploy_is_clean_under_the_compose_settings_once_the_operator_sets_hsts(tmp_path):
    code, issues, output = check_deploy({**compose_web_environment(), **HSTS}, tmp_path)

    assert (code, issues) == (0, []), output
    assert output == "System check identified no issues (0 silenced).\n"


def test_check_deploy_reports_only_hsts_under_the_systemd_unit_settings(tmp_path):
    env = unit_environment()
    assert env["SECRET_KEY_FILE"] == "/opt/smartAquarium/secret.key"

    code, issues, output = check_deploy(env, tmp_path)

    assert (code, issues) == (1, ["security.W004"]), output


def test_check_deploy_on_the_defaults_no_longer_reports_the_secret_key(tmp_path):
    # Plain HTTP stays possible by default; the key no longer is a published one.
    code, issues, output = check_deploy({}, tmp_path)

    assert issues == ["security.W004", "security.W008", "security.W012", "security.W016"], output


# -- Throttled admin logins ---------------------------------------------------

PASSWORD = "tempering-furnace-7"
WRONG = "not-" + PASSWORD
BAD_LOGIN = "Please enter the correct username and password for a staff account."
LOCKED = "Too many failed logins for this user name or from this address."


@pytest.fixture
def staff(db):
    User.objects.create_user("shiftlead", password=PASSWORD, is_staff=True)
    User.objects.create_user("nightshift", password=PASSWORD, is_staff=True)


def log_in(username: str, password: str, address: str = "192.0.2.10", **headers: str):
    """One POST to the admin's login form, from a fresh browser at address."""
    return Client().post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        REMOTE_ADDR=address,
        **headers,
    )


def outcome(response) -> str:
    body = response.content.decode()
    if response.status_code == 302 and response["Location"] == "/admin/":
        return "logged in"
    if response.status_code == 200 and BAD_LOGIN in body:
        return "wrong password"
    if response.status_code == 429 and LOCKED in body:
        return "locked"
    return f"{response.status_code}: {body[:300]}"


def age_attempts(by: timedelta) -> None:
    """Move every recorded failure back in time, as if that much time had passed since."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - by)


def lock_out(username: str = "shiftlead", address: str = "192.0.2.10") -> list[str]:
    return [outcome(log_in(username, WRONG, address)) for _ in range(5)]


def test_after_five_wrong_passwords_the_right_one_is_refused_until_the_cool_off_has_passed(
    staff, backup_dir, settings
):
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME

    assert lock_out() == ["wrong password"] * 4 + ["locked"]
    assert outcome(log_in("shiftlead", PASSWORD)) == "locked"
    # Each attempt while locked starts the 15 minutes again.
    age_attempts(timedelta(minutes=14, seconds=50))
    assert outcome(log_in("shiftlead", PASSWORD)) == "locked"
    age_attempts(timedelta(minutes=15, seconds=1))
    assert outcome(log_in("shiftlead", PASSWORD)) == "logged in"


def test_with_the_cool_off_at_0_a_lockout_lasts_until_an_administrator_unlocks_it(
    staff, backup_dir, settings
):
    settings.AXES_COOLOFF_TIME = None  # what AXES_COOLOFF_MINUTES=0 gives
    lock_out()
    age_attempts(timedelta(days=365))

    response = log_in("shiftlead", PASSWORD)

    assert outcome(response) == "locked"
    assert "Logging in stays locked until an administrator unlocks it." in response.content.decode()
    log = (backup_dir / "scheduled_backup.log").read_text(encoding="utf-8")
    assert "user 'shiftlead' from 192.0.2.10, until an administrator unlocks it (unlock now:" in log


def test_the_lockout_page_is_the_admins_and_says_what_to_do(staff, backup_dir):
    lock_out()

    response = log_in("shiftlead", PASSWORD)

    assert response.status_code == 429
    page = response.content.decode()
    assert "Heat Treatment Plant Control" in page
    assert re.sub(
        r"\s+", " ", page.split('<p class="errornote" id="locked">')[1].split("</p>")[0]
    ).strip() == (
        "Too many failed logins for this user name or from this address. Logging in is locked until 15 "
        "minutes after the last attempt; each further attempt starts that time again. An administrator "
        "can unlock it now (README: Admin logins)."
    )


def test_a_lockout_holds_for_that_user_name_everywhere_and_that_address_for_everyone(staff, backup_dir):
    lock_out("shiftlead", "192.0.2.10")

    assert outcome(log_in("nightshift", PASSWORD, "192.0.2.20")) == "logged in"
    assert outcome(log_in("shiftlead", PASSWORD, "192.0.2.30")) == "locked"
    assert outcome(log_in("nightshift", PASSWORD, "192.0.2.10")) == "locked"


def test_guessing_one_user_from_many_addresses_locks_the_user(staff, backup_dir):
    tries = [outcome(log_in("shiftlead", WRONG, f"198.51.100.{n}")) for n in range(1, 6)]

    assert tries == ["wrong password"] * 4 + ["locked"]
    assert outcome(log_in("shiftlead", PASSWORD, "198.51.100.99")) == "locked"
    assert outcome(log_in("nightshift", PASSWORD, "198.51.100.1")) == "logged in"


def test_trying_many_user_names_from_one_address_locks_the_address(staff, backup_dir):
    tries = [outcome(log_in(f"guess{n}", WRONG, "203.0.113.5")) for n in range(1, 6)]

    assert tries == ["wrong password"] * 4 + ["locked"]
    assert outcome(log_in("shiftlead", PASSWORD, "203.0.113.5")) == "locked"
    assert outcome(log_in("shiftlead", PASSWORD, "203.0.113.6")) == "logged in"


def test_behind_the_proxy_the_client_address_comes_from_x_forwarded_for(staff, backup_dir, settings):
    settings.REVERSE_PROXY_COUNT = 1
    proxy = "127.0.0.1"
    for n in range(1, 6):
        log_in(f"guess{n}", WRONG, proxy, HTTP_X_FORWARDED_FOR="203.0.113.7")

    # Another client through the same proxy is not locked: the proxy's address was not.
    assert outcome(log_in("shiftlead", PASSWORD, proxy, HTTP_X_FORWARDED_FOR="203.0.113.8")) == "logged in"
    # What a client writes in front of the proxy's own entry changes nothing.
    spoofed = "203.0.113.8, 203.0.113.7"
    assert outcome(log_in("nightshift", PASSWORD, proxy, HTTP_X_FORWARDED_FOR=spoofed)) == "locked"
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


def test_without_a_proxy_configured_x_forwarded_for_cannot_dodge_the_lockout(staff, backup_dir, settings):
    assert settings.REVERSE_PROXY_COUNT == 0
    tries = [
        outcome(log_in(f"guess{n}", WRONG, "192.0.2.50", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"))
        for n in range(1, 6)
    ]

    assert tries == ["wrong password"] * 4 + ["locked"]
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.50"}


def test_a_lockout_is_written_to_the_backup_log(staff, backup_dir):
    lock_out("shiftlead", "192.0.2.10")

    lines = (backup_dir / "scheduled_backup.log").read_text(encoding="utf-8").splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING Admin login locked after 5 failed attempts: user 'shiftlead' from 192.0.2.10, until 15 "
        "minutes after the last attempt (unlock now: python manage.py axes_reset_username shiftlead, "
        "or axes_reset_ip 192.0.2.10)"
    ]
    assert PASSWORD not in "\n".join(lines)
    assert WRONG not in "\n".join(lines)
    # Nor does axes keep the passwords tried: snapshots carry its table.
    assert WRONG not in AccessAttempt.objects.get().post_data


def test_lockouts_are_listed_in_admin(staff, backup_dir, client):
    lock_out("shiftlead", "192.0.2.10")
    client.force_login(User.objects.create_superuser("plantadmin"))

    page = client.get("/admin/axes/accessattempt/")

    assert page.status_code == 200
    rows = re.findall(r"<tr>.*?</tr>", page.content.decode(), re.DOTALL)
    assert any("shiftlead" in row and "192.0.2.10" in row and ">5<" in row for row in rows), rows


def test_axes_reset_username_unlocks_at_once(staff, backup_dir):
    lock_out("shiftlead", "192.0.2.10")

    call_command("axes_reset_username", "shiftlead")

    assert outcome(log_in("shiftlead", PASSWORD, "192.0.2.10")) == "logged in"


def test_a_correct_login_after_one_wrong_password_works(staff, backup_dir):
    assert outcome(log_in("shiftlead", WRONG)) == "wrong password"
    assert outcome(log_in("shiftlead", PASSWORD)) == "logged in"
    # The failure stays counted until the cool-off: a login does not reset it.
    assert AccessAttempt.objects.get().failures_since_start == 1
