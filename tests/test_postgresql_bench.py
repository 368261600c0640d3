"""bench/run.py --postgres: the PostgreSQL section runs and measures against pg_dump and psql."""

import json
import os
import subprocess
import sys

from tests.conftest import PROJECT


def test_quick_postgresql_section_measures_snapshot_csv_and_json(tmp_path, postgres_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env["BENCH_POSTGRES_URL"] = postgres_server  # in the environment: it carries a password
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "run.py"),
            *("--quick", "--no-peers", "--only", "postgresql"),
            *("--output", str(tmp_path / "latest.json")),
            *("--cache-dir", str(tmp_path / "cache")),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    password = postgres_server.split(":")[2].split("@")[0]
    assert password not in result.stdout + result.stderr
    report = json.loads((tmp_path / "latest.json").read_text())
    measured = {(r["operation"], r["reference_key"]): r for r in report["results"]}
    assert set(measured) == {("pg_snapshot", "pg_dump"), ("pg_csv", "psql"), ("pg_json", "psql")}
    for name, row in measured.items():
        assert row["rows"] == 43_200, name
        assert row["ratio"] > 0, name
        assert (
            row["target"]
            == {"pg_snapshot": "ratio <= 1.1", "pg_csv": "ratio <= 1.2", "pg_json": "ratio <= 1"}[name[0]]
        )
