"""Tests never leave files in the checkout: the run fails and names what was left."""

import os
import shutil
import subprocess
import sys

from tests.conftest import PROJECT

LEAVES_A_FILE = """
from pathlib import Path


def test_writes_a_download_where_it_runs():
    Path("out.bin").write_bytes(b"x" * 3000)  # a relative path: the current folder
"""

KEEPS_TO_TMP_PATH = """
def test_writes_into_tmp_path(tmp_path):
    (tmp_path / "out.bin").write_bytes(b"x" * 3000)
"""


def run_pytest_in_a_checkout(tmp_path, test_source: str) -> subprocess.CompletedProcess:
    """A git checkout of its own with one test module, run by pytest with the guard loaded."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    shutil.copy(PROJECT / ".gitignore", checkout / ".gitignore")
    (checkout / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (checkout / "test_one.py").write_text(test_source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["PYTHONPATH"] = str(PROJECT)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.checkout_guard",
            "-p",
            "no:django",
            "-q",
            "test_one.py",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_test_that_leaves_a_file_in_the_checkout_fails_the_run(tmp_path):
    result = run_pytest_in_a_checkout(tmp_path, LEAVES_A_FILE)

    assert result.returncode == 1, result.stdout
    assert "Tests left files in the checkout (write them under tmp_path instead): out.bin" in result.stdout, (
        result.stdout
    )
    assert "1 passed, 1 error" in result.stdout


def test_a_test_that_writes_into_tmp_path_passes(tmp_path):
    result = run_pytest_in_a_checkout(tmp_path, KEEPS_TO_TMP_PATH)

    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout
