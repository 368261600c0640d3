"""Exports stream: peak memory does not grow with the number of readings."""

import pytest

from tests.conftest import PEAK_KB, measure

MEASURE = (
    """
import json, sys
import django
django.setup()
from backup_tasks.services import backup as services
result = getattr(services, sys.argv[1])()
"""
    + PEAK_KB
    + """
print(json.dumps({"rows": result.rows, "peak_kb": peak_kb}))
"""
)


def peak_rss_mb(project, service: str) -> tuple[int, float]:
    report = measure(project, MEASURE, service)
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
