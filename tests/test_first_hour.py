"""The scripts of README's "First hour": demo.sh leaves an admin that is styled."""

import re
import sqlite3
import subprocess
import sys
import urllib.request
from contextlib import closing

import pytest

from .conftest import FILL_SQL, PROJECT, backup_files, free_port, wait_until

pytestmark = pytest.mark.slow

DEMO = PROJECT / "scripts" / "demo.sh"


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


# -- demo.sh ----------------------------------------------------------------------


def test_after_demo_runserver_serves_the_admin_styled_with_debug_off(project, tmp_path):
    with closing(sqlite3.connect(project.db)) as db, db:
        db.execute(FILL_SQL, [99])  # some readings: demo.sh adds its week only to an empty database
    env = {**project.env, "STATIC_ROOT": str(tmp_path / "static"), "DEBUG": "false"}

    demo = subprocess.run([str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)

    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    collect = lines.index("$ python manage.py collectstatic --noinput")
    assert re.fullmatch(rf"\d+ static files copied to '{tmp_path}/static'\.", lines[collect + 2])
    assert "Total Readings: 100" in demo.stdout
    assert (
        lines[-1]
        == "Next: .venv/bin/python manage.py createsuperuser, then ./scripts/serve.sh (README: First hour)"
    )
    assert len(backup_files(project.backups)) == 3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(PROJECT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            try:
                return get(f"http://127.0.0.1:{port}/admin/login/")[0] == 200
            except OSError:
                return False

        wait_until(answers, timeout=60, what="runserver")
        status, content_type, css = get(f"http://127.0.0.1:{port}/static/admin/css/base.css")
    finally:
        server.terminate()
        server.wait(10)
    assert (status, content_type) == (200, 'text/css; charset="utf-8"')
    assert css == (tmp_path / "static" / "admin" / "css" / "base.css").read_bytes()
