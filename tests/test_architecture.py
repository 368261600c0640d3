"""The layers of backup_tasks, as pyproject.toml's import-linter contracts state them.

core <- storage <- engines <- models <- services <- queueing <- doors; readings
never imports backup_tasks; no cycles, function-level imports counted.
"""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("backup_tasks", "readings")
CONTRACTS = {
    "layers": "backup_tasks imports only downwards: doors > queueing > services > models > engines > storage > core > conf",
    "no-cycles": "No import cycles between the modules of any package",
    "doors": "Nothing imports a Celery task or a command: Celery and Django find them by name",
    "readings-standalone": "readings never imports backup_tasks: the backups attach themselves to it",
    "broker": "Only queueing and the doors talk to the task queue (Celery, Redis)",
    "engines": "Only engines/ knows which database it runs on",
}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the packages below root, with root's pyproject.toml; no cache left behind."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def flat(output: str) -> str:
    """The report with rich's line wrapping undone, so a long contract name reads as one line."""
    return " ".join(output.split())


def test_the_checkout_keeps_every_contract():
    result = lint_imports(PROJECT)

    assert result.returncode == 0, result.stdout + result.stderr
    report = flat(result.stdout)
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in report
    assert "Contracts: 6 kept, 0 broken." in report


@pytest.fixture
def copy_of_the_code(tmp_path) -> Path:
    """The packages and their contracts in a temporary folder, to break without touching the checkout."""
    for package in PACKAGES:
        shutil.copytree(PROJECT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_line(path: Path, line: str, *, after: str | None = None) -> None:
    """Append line to a module, or insert it (indented alike) after the line that contains `after`."""
    text = path.read_text()
    if after is None:
        path.write_text(text + line + "\n")
        return
    lines = text.splitlines(keepends=True)
    at = next(i for i, old in enumerate(lines) if after in old)
    indent = lines[at + 1][: len(lines[at + 1]) - len(lines[at + 1].lstrip())]
    lines.insert(at + 1, indent + line + "\n")
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    ("module", "line", "after", "contract", "shown"),
    [
        pytest.param(
            "backup_tasks/services/status.py",
            "from backup_tasks.queueing import flight",
            None,
            "layers",
            "backup_tasks.services.status -> backup_tasks.queueing.flight",
            id="services-import-queueing",
        ),
        pytest.param(
            "backup_tasks/models.py",
            "from backup_tasks.services.backup import now_stamp",
            "def size_text(self)",
            "layers",
            "backup_tasks.models -> backup_tasks.services.backup",
            id="function-level-import-upwards",
        ),
        pytest.param(
            "readings/models.py",
            "from backup_tasks import conf",
            None,
            "readings-standalone",
            "readings.models -> backup_tasks.conf",
            id="readings-imports-backups",
        ),
        pytest.param(
            "backup_tasks/web/jobs.py",
            "from backup_tasks import tasks",
            None,
            "doors",
            "backup_tasks.web.jobs -> backup_tasks.tasks",
            id="a-door-imports-the-tasks",
        ),
        pytest.param(
            "backup_tasks/services/verify.py",
            "import sqlite3",
            None,
            "engines",
            "backup_tasks.services.verify -> sqlite3",
            id="sqlite-outside-engines",
        ),
        pytest.param(
            "backup_tasks/services/backup.py",
            "import redis",
            None,
            "broker",
            "backup_tasks.services.backup -> redis",
            id="services-talk-to-redis",
        ),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy_of_the_code, module, line, after, contract, shown):
    add_line(copy_of_the_code / module, line, after=after)

    result = lint_imports(copy_of_the_code)

    assert result.returncode == 1, result.stdout
    report = flat(result.stdout)
    assert f"{CONTRACTS[contract]} BROKEN" in report
    assert shown in report


def test_a_cycle_inside_a_layer_breaks_the_contracts(copy_of_the_code):
    add_line(copy_of_the_code / "backup_tasks/core/units.py", "from backup_tasks.core import layout")
    add_line(copy_of_the_code / "backup_tasks/core/layout.py", "from backup_tasks.core import units")

    result = lint_imports(copy_of_the_code)

    assert result.returncode == 1
    report = flat(result.stdout)
    assert f"{CONTRACTS['no-cycles']} BROKEN" in report
    assert "No cycles are allowed in backup_tasks.core." in report
    assert ".units -> .layout" in report or ".layout -> .units" in report


def test_a_new_module_must_be_given_a_layer(copy_of_the_code):
    (copy_of_the_code / "backup_tasks" / "helpers.py").write_text('"""Somewhere to put things."""\n')

    result = lint_imports(copy_of_the_code)

    assert result.returncode == 1
    report = flat(result.stdout)
    assert f"{CONTRACTS['layers']} BROKEN" in report
    assert "backup_tasks.helpers" in report


def function_level_imports(root: Path):
    """(path, line number, the lines from the import up to the code before it) of each import in a function."""
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        at = inner.lineno - 1
                        start = at
                        # The comment may stand above a group of deferred imports.
                        while start > 0 and (
                            lines[start - 1].strip().startswith(("#", "from ", "import "))
                            or not lines[start - 1].strip()
                        ):
                            start -= 1
                        yield path.relative_to(root), inner.lineno, lines[start : inner.end_lineno]


def silent_imports(root: Path) -> list[str]:
    """Function-level imports with no comment saying what they defer."""
    return [
        f"{path}:{number}"
        for path, number, lines in function_level_imports(root)
        if not any("#" in line and "defer" in line.lower() for line in lines)
    ]


def test_every_function_level_import_says_what_it_defers():
    """Allowed only to defer a heavy library, with a comment saying so; never to hide a cycle."""
    assert silent_imports(PROJECT) == []


def test_a_silent_function_level_import_is_found(copy_of_the_code):
    add_line(
        copy_of_the_code / "backup_tasks/models.py",
        "from backup_tasks.core import layout",
        after="def size_text(self)",
    )

    [found] = silent_imports(copy_of_the_code)

    assert found.startswith("backup_tasks/models.py:")
