"""Fail the test run when tests leave files in the checkout: they belong in tmp_path.

A pytest plugin, loaded by tests/conftest.py (and by tests/test_checkout_guard.py
on a repository of its own). It compares `git status` before and after the
session; an untracked file that appeared in between, and that .gitignore does
not cover, fails the run, naming it. (Changes to tracked files are left alone:
someone may be editing while the tests run.)
"""

import subprocess
from pathlib import Path

import pytest


def untracked(root: Path) -> set[str] | None:
    """Untracked files of the checkout at root that .gitignore does not cover; None outside git."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain=v1", "--untracked-files=all"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except FileNotFoundError:
        return None  # No git here (an unpacked release): nothing to compare.
    if result.returncode != 0:
        return None  # Not a git checkout.
    return {line[3:] for line in result.stdout.splitlines() if line.startswith("?? ")}


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean(request):
    root = request.config.rootpath
    before = untracked(root)
    yield
    after = untracked(root)
    if before is None or after is None:
        return
    left = sorted(after - before)
    if left:
        pytest.fail(
            "Tests left files in the checkout (write them under tmp_path instead): " + ", ".join(left),
            pytrace=False,
        )
