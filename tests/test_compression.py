"""Compressed backups round-trip through verify, restore, drill and status."""

import gzip
import re
import sqlite3

import pytest
import zstandard

from tests.test_trust import readings, reseal

OPEN = {
    "gzip": gzip.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}
ENDING = {"gzip": ".gz", "zstd": ".zst"}


@pytest.mark.parametrize("method", ["gzip", "zstd"])
def test_compressed_backups_verify_restore_and_count(project, method):
    project.manage("simulate_readings", "--days", "1", check=True)
    plain = project.manage("backup_database", "--compress", "none", check=True)
    packed = project.manage("backup_database", "--compress", method, check=True)

    end = ENDING[method]
    assert re.fullmatch(
        rf"Database backed up to backups/database/db_backup_\d{{8}}_\d{{6}}\.sqlite3{re.escape(end)}\n"
        rf"Readings exported to CSV: backups/csv_exports/readings_\d{{8}}_\d{{6}}\.csv{re.escape(end)}\n"
        rf"Readings exported to JSON: backups/json_exports/readings_\d{{8}}_\d{{6}}\.json{re.escape(end)}\n"
        "Backup completed!\n",
        packed.stdout,
    )
    # The compressed exports hold exactly the bytes of the plain ones.
    for folder, suffix in (("csv_exports", ".csv"), ("json_exports", ".json")):
        (plain_file,) = (project.backups / folder).glob(f"*{suffix}")
        (packed_file,) = (project.backups / folder).glob(f"*{suffix}{end}")
        assert OPEN[method](packed_file.read_bytes()) == plain_file.read_bytes()
        assert packed_file.stat().st_size < plain_file.stat().st_size / 2
    assert plain.stdout.count("\n") == 4

    verify = project.manage("backup_database", "--verify", check=True).stdout
    assert verify.splitlines()[-1] == "Verified 6 files: 6 OK."
    assert f".sqlite3{end}: integrity ok, 43,200 readings" in verify

    status = project.manage("backup_database", "--status", check=True).stdout
    assert "Database Backups: 2\nCSV Exports: 2\nJSON Exports: 2\n" in status

    original = readings(project.db)
    with sqlite3.connect(project.db) as conn:
        conn.execute("DELETE FROM readings_reading WHERE id > 100")
    (snapshot,) = (project.backups / "database").glob(f"*.sqlite3{end}")
    project.manage("backup_database", "--restore", str(snapshot), "--yes", check=True)
    assert readings(project.db) == original

    drill = project.manage("backup_database", "--drill", check=True).stdout
    assert drill.startswith("Restore drill passed: backups/database/db_backup_")
    leftovers = [p.name for p in project.backups.rglob("*.tmp")]
    assert leftovers == []


@pytest.mark.parametrize("method", ["gzip", "zstd"])
def test_damaged_compressed_backups_are_caught(project, method):
    project.manage("simulate_readings", "--days", "0.5", check=True)
    project.manage("backup_database", "--compress", method, check=True)
    end = ENDING[method]
    (csv,) = (project.backups / "csv_exports").glob(f"*.csv{end}")
    (snapshot,) = (project.backups / "database").glob(f"*.sqlite3{end}")
    csv.write_bytes(csv.read_bytes()[: csv.stat().st_size // 2])  # a truncated copy...
    reseal(csv)  # ...even with a checksum that matches it
    snapshot.write_bytes(snapshot.read_bytes()[:-100])
    reseal(snapshot)

    result = project.manage("backup_database", "--verify")

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"FAILED   backups/database/{snapshot.name}: ")
    assert lines[1].startswith(f"FAILED   backups/csv_exports/{csv.name}: cannot be decompressed")
    before = readings(project.db)
    refused = project.manage("backup_database", "--restore", str(snapshot), "--yes")
    assert refused.returncode == 1
    assert "cannot be" in refused.stderr
    assert readings(project.db) == before


def test_unknown_compression_is_refused(project):
    result = project.manage("backup_database", "--compress", "rar")
    assert result.returncode == 2
    assert "argument --compress: invalid choice: 'rar'" in result.stderr
    check = project.manage("check", env={**project.env, "BACKUP_COMPRESSION": "rar"})
    assert "(backup_tasks.E003) BACKUP_COMPRESSION is 'rar'." in check.stderr
