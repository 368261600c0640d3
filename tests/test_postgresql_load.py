"""A snapshot of a PostgreSQL database of more than 200 MB while the sensor loop keeps writing."""

import pytest

from tests.conftest import PG_FILL_SQL, SensorWriter, wait_until

pytestmark = pytest.mark.slow

LARGE = 2_800_000  # readings: about two months of the plant


def test_snapshot_under_a_live_writer_loses_nothing_and_never_stalls_it(pg_project):
    project = pg_project
    project.sql(PG_FILL_SQL, [LARGE - 1])
    project.sql("VACUUM ANALYZE readings_reading")
    [(size,)] = project.sql("SELECT pg_database_size(current_database())")
    assert size > 200_000_000

    def newest_id() -> int:
        return project.sql("SELECT coalesce(max(id), 0) FROM readings_reading")[0][0]

    writer = SensorWriter(project)
    wait_until(lambda: newest_id() > LARGE + 10, what="the writer to write")
    committed_before = project.sql("SELECT count(*) FROM readings_reading")[0][0]

    result = project.manage("backup_database", "--type", "db", timeout=600, check=True)

    report = writer.stop()
    assert report["failed"] == 0, report
    assert report["longest_s"] <= 0.5, report
    # Nothing lost: every reading the writer wrote is in the live database.
    assert project.sql("SELECT count(*) FROM readings_reading")[0][0] == LARGE + report["written"]
    # The snapshot holds every reading committed before it began, as its record and its own content say.
    [(rows,)] = project.sql("SELECT rows FROM backup_tasks_backuprun WHERE kind = 'snapshot'")
    assert rows >= committed_before
    [dump] = sorted((project.backups / "database").glob("*.dump"))
    verified = project.manage("backup_database", "--verify", str(dump), check=True, timeout=600)
    assert f"integrity ok, {rows:,} readings" in verified.stdout
    assert result.returncode == 0
