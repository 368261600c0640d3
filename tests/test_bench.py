"""bench/run.py --quick: the benchmark runs, reports every operation, measures our real exports.

Nothing here judges speed: the quick sizes are too small and CI machines too
noisy. The figures that count are the full run's, in README's Performance section.
"""

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PROJECT, Project

pytestmark = pytest.mark.slow

# (operation, reference) pairs the issue asks for.
MEASURED = {
    ("snapshot", "sqlite3+check"),
    ("snapshot", "sqlite3"),
    ("snapshot", "cp"),
    ("snapshot", "django-dbbackup+check"),
    ("csv", "sqlite3"),
    ("csv", "django-import-export"),
    ("json", "sqlite3"),
    ("status", "sqlite3"),
    ("cleanup", "find"),
    ("snapshot+writer", "sqlite3"),
    *(
        (f"{door}{kind} {window}", reference)
        for door in ("", "admin ")
        for kind in ("csv", "json")
        for window in ("since", "until")
        for reference in ("full", "sqlite3")
    ),
}
# A day from 00:00 plant time; --until an hour before its last reading leaves out 1,800.
DAY_ROWS = {"cleanup": 1_000, "until": 43_200 - 1_800}
RESULT_KEYS = {
    "operation",
    "size",
    "rows",
    "ours_s",
    "reference",
    "reference_s",
    "ratio",
    "rows_per_s",
    "peak_rss_mb",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick benchmark run for the whole module; its JSON, cache and kept outputs."""
    root = tmp_path_factory.mktemp("bench")
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "run.py"),
            "--quick",
            *("--output", str(root / "latest.json")),
            *("--cache-dir", str(root / "cache")),
            *("--keep-outputs", str(root / "kept")),
            *("--plot", str(root / "latest.svg")),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root, json.loads((root / "latest.json").read_text()), result.stdout


def test_quick_run_writes_the_machine_and_one_result_per_measurement(quick_run):
    _, report, _ = quick_run
    assert {"cpu", "cores", "memory_gb", "python", "sqlite_library", "sqlite3_cli", "django", "peers"} <= set(
        report["machine"]
    )
    assert all(set(result) >= RESULT_KEYS for result in report["results"])
    assert {(r["operation"], r["reference_key"]) for r in report["results"]} == MEASURED
    assert {r["size"] for r in report["results"]} == {"day"}


def test_every_operation_has_a_numeric_ratio_and_figures(quick_run):
    _, report, _ = quick_run
    for result in report["results"]:
        name = f"{result['operation']} vs {result['reference_key']}"
        for key in ("ratio", "ours_s", "reference_s", "rows_per_s", "peak_rss_mb"):
            assert isinstance(result[key], int | float), f"{name}: {key} is {result[key]!r}"
            assert result[key] > 0, f"{name}: {key} is {result[key]!r}"
        assert result["rows"] == DAY_ROWS.get(result["operation"].split()[-1], 43_200), name


def test_quick_run_prints_the_table(quick_run):
    _, _, stdout = quick_run
    assert "operation size ours s in-proc s reference ref s ratio rows/s RSS MB" in stdout
    assert stdout.count("\nsnapshot ") == 4


def test_snapshots_are_compared_with_checked_copies(quick_run):
    _, report, _ = quick_run
    snapshot = {r["reference_key"]: r for r in report["results"] if r["operation"] == "snapshot"}
    checked, unchecked = snapshot["sqlite3+check"], snapshot["sqlite3"]
    assert checked["reference"] == 'sqlite3 DB ".backup OUT" + sqlite3 OUT "PRAGMA integrity_check"'
    assert checked["target"] == "ratio <= 1.1"
    assert "target" not in unchecked  # the unchecked copy is shown, not a target any more
    assert snapshot["django-dbbackup+check"]["target"] == "ratio <= 1"
    # The same runs of ours against both: the checked reference is the slower one.
    assert checked["ours_runs_s"] == unchecked["ours_runs_s"]
    assert checked["reference_s"] > unchecked["reference_s"]
    status = next(r for r in report["results"] if r["operation"] == "status")
    assert "target" not in status  # status targets are on a month and a year, not a day


def test_the_picture_has_one_bar_per_result_with_its_ratio_and_target(quick_run, tmp_path):
    root, report, stdout = quick_run
    svg = (root / "latest.svg").read_text()
    drawn = re.findall(r'<rect class="(meets|misses|info)" data-ratio="([\d.e+-]+)"', svg)
    results = [r for r in report["results"] if r["ratio"]]
    # The quick run's day has no in-process targets: every bar is the whole process's ratio.
    assert [float(ratio) for _, ratio in drawn] == [r["ratio"] for r in results]
    assert [kind for kind, _ in drawn] == [
        {None: "info", True: "meets", False: "misses"}[r.get("meets_target")] for r in results
    ]
    assert svg.count('<line class="target"') == sum(r.get("target", "").startswith("ratio") for r in results)
    assert f"Drawn in {root / 'latest.svg'}" in stdout
    # An earlier run's JSON draws the same picture without measuring again.
    again = tmp_path / "again.svg"
    subprocess.run(
        [
            sys.executable,
            str(PROJECT / "bench" / "run.py"),
            "--plot",
            str(again),
            "--from",
            str(root / "latest.json"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert again.read_text() == svg


def test_benchmarked_exports_are_what_backup_database_writes(quick_run, tmp_path):
    root, _, _ = quick_run
    cached = root / "cache" / "day-1d-2025-03-30.sqlite3"
    project = Project(tmp_path, time_zone="Europe/Berlin")
    shutil.copy(cached, project.db)

    project.manage("backup_database", "--type", "csv", check=True)
    project.manage("backup_database", "--type", "json", check=True)

    (csv_file,) = (project.backups / "csv_exports").glob("*.csv")
    (json_file,) = (project.backups / "json_exports").glob("*.json")
    assert csv_file.read_bytes() == (root / "kept" / "day.csv").read_bytes()
    assert json_file.read_bytes() == (root / "kept" / "day.json").read_bytes()
    assert csv_file.read_bytes().count(b"\r\n") == 43_201


def test_in_process_services_and_the_sqlite3_reference_write_the_same_bytes(quick_run):
    _, report, _ = quick_run
    exports = {(r["operation"], r["reference_key"]): r for r in report["results"]}
    assert exports[("csv", "sqlite3")]["inprocess_output_identical"] is True
    assert exports[("json", "sqlite3")]["inprocess_output_identical"] is True
    # Like for like: sqlite3's CLI prints exactly our CSV, BOM, CRLF and plant-zone times included.
    assert exports[("csv", "sqlite3")]["reference_output_identical"] is True


def test_windowed_exports_write_what_the_full_export_and_sqlite3_write(quick_run):
    _, report, _ = quick_run
    windowed = [r for r in report["results"] if r["operation"].endswith(("since", "until"))]
    assert len(windowed) == 16
    for result in windowed:
        name = f"{result['operation']} vs {result['reference_key']}"
        assert result["full_rows"] == 43_200, name
        if result["reference_key"] == "full":
            assert result["target"] == "ratio <= 1.1", name
            assert isinstance(result["meets_target"], bool), name
        if result["operation"].startswith("admin"):
            # The admin's download is byte for byte the command's export of the same readings.
            assert result["output_identical_to_command"] is True, name
        if result["operation"] in ("csv since", "json since"):
            assert result["output_identical_to_full"] is True, name
        if result["operation"] in ("csv since", "csv until"):
            assert result["reference_output_identical"] is True, name
    assert {r["window"] for r in windowed} == {"--since 2025-03-30 00:00:00", "--until 2025-03-31 00:00:00"}


def test_cleanup_and_writer_measurements_check_what_happened(quick_run):
    _, report, _ = quick_run
    results = {(r["operation"], r["reference_key"]): r for r in report["results"]}
    assert results[("cleanup", "find")]["same_files_removed"] is True
    writer = results[("snapshot+writer", "sqlite3")]
    assert writer["inserts"] > 0
    assert writer["failed_inserts"] == 0, writer["last_error"]
    assert isinstance(writer["longest_stall_s"], float)


def test_quick_run_leaves_no_scratch_files(quick_run):
    root, _, _ = quick_run
    assert not (root / "cache" / "scratch").exists()
    assert sorted(p.name for p in (root / "cache").glob("*.sqlite3")) == ["day-1d-2025-03-30.sqlite3"]
