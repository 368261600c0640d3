"""Exports stream: peak memory does not grow with the number of readings."""

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT

MEASURE = """
import json, sys
import django
django.setup()
from backup_tasks import services
result = getattr(services, sys.argv[1])()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rows": result.rows, "peak_kb": peak_kb}))
"""


def peak_rss_mb(project, service: str) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, service],
        env=project.env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = json.loads(out)
    return report["rows"], report["peak_kb"] / 1024


@pytest.mark.slow
@pytest.mark.parametrize("service", ["export_csv", "export_json", "snapshot_database"])
def test_peak_memory_is_flat_from_30_000_to_300_000_readings(project, service):
    interval = 2
    project.manage("simulate_readings", "--days", str(30_000 * interval / 86_400), check=True)
    small_rows, small_mb = peak_rss_mb(project, service)
    project.manage("simulate_readings", "--days", str(270_000 * interval / 86_400), check=True)
    large_rows, large_mb = peak_rss_mb(project, service)

    assert (small_rows, large_rows) == (30_000, 300_000)
    # Ten times the readings may cost a few MB of SQLite page cache, not ten times the memory.
    assert large_mb < small_mb + 10, (small_mb, large_mb)
    assert large_mb < 100
