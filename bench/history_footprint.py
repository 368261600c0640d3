"""The backup history's footprint: a simulated day of hourly restore points on a big database.

    .venv/bin/python bench/history_footprint.py --days 30 --work /path/outside/the/clone

Builds (once, cached in --work) a database of --days days of readings, then 24
times appends an hour of readings (one every 2 s) and runs
`backup_database --type db` with the history on, in real processes with the
real restic binary. Prints JSON: the first restore point's bytes, the median
bytes each hourly point adds (restic's data_added, before compression, and
the repository's growth on disk), the repository's size after the day against
the same number of plain snapshots, and the seconds restic adds to each run.

Targets (issue: the backup history): 720 hourly points cost about 1 GB at
month size instead of about 100 GB; at year scale 30 days of hourly points plus
the plain files need at most 5x the database's size on the backup disk.
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
HOUR_READINGS = 1800


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT / "manage.py"), *args],
        env=env,
        cwd=env["WORK"],
        capture_output=True,
        text=True,
        check=True,
    )


def append_hour(db: Path, start: datetime) -> datetime:
    rng = random.Random(start.timestamp())
    rows = []
    for i in range(HOUR_READINGS):
        moment = start + timedelta(seconds=2 * i)
        rows.append(
            (
                round(60 + rng.gauss(0, 0.5), 2),
                round(25 + rng.gauss(0, 0.3), 2),
                round(45 + rng.gauss(0, 1), 2),
                60.0,
                round(rng.uniform(0, 100), 1),
                moment.strftime("%Y-%m-%d %H:%M:%S"),
            )
        )
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO readings_reading (water_temperature, air_temperature, humidity, setpoint, "
            "pid_output, timestamp) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    return start + timedelta(seconds=2 * HOUR_READINGS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--keep-plain", type=int, default=2, help="plain files left on disk meanwhile")
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    db, backups = work / "db.sqlite3", work / "backups"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BACKUP_"))}
    env.update(
        WORK=str(work),
        DATABASE_URL=f"sqlite:///{db}",
        BACKUP_DIR=str(backups),
        SECRET_KEY_FILE=str(work / "secret.key"),
        BACKUP_REPOSITORY_PASSWORD_FILE=str(work / "backup-repository.key"),
        BACKUP_KEEP_PLAIN=str(args.keep_plain),  # the plain sizes are taken from the run records
        TIME_ZONE="Europe/Berlin",
        DJANGO_SETTINGS_MODULE="smartAquarium.settings",
    )
    if not db.exists():
        manage(env, "migrate", "--noinput")
        manage(env, "simulate_readings", "--days", str(args.days), "--start", "2025-03-01")
    if backups.exists():
        subprocess.run(["rm", "-rf", str(backups)], check=True)
    with sqlite3.connect(db) as conn:
        newest = conn.execute("SELECT max(timestamp) FROM readings_reading").fetchone()[0]
    moment = datetime.fromisoformat(newest[:19]).replace(tzinfo=UTC) + timedelta(seconds=2)
    repo = backups / "repository"
    runs = []
    for hour in range(args.hours + 1):
        if hour:
            moment = append_hour(db, moment)
        before = folder_bytes(repo) if repo.exists() else 0
        began = time.monotonic()
        manage(env, "backup_database", "--type", "db")
        wall = time.monotonic() - began
        with sqlite3.connect(db) as conn:
            text, size = conn.execute(
                "SELECT details, size_bytes FROM backup_tasks_backuprun WHERE kind = 'snapshot' "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            details = json.loads(text)
        runs.append(
            {
                "db_bytes": db.stat().st_size,
                "plain_bytes": size,
                "data_added": details["history"]["data_added"],
                "repo_growth": folder_bytes(repo) - before,
                "restic_s": details["history"]["seconds"],
                "run_s": round(wall, 2),
            }
        )
        time.sleep(1.1)  # one file name per second
    hourly = runs[1:]
    plain = sum(r["plain_bytes"] for r in runs[1:])  # the day's hourly plain snapshots
    result = {
        "days": args.days,
        "db_bytes": runs[-1]["db_bytes"],
        "first_point_data_added": runs[0]["data_added"],
        "first_point_repo_bytes": runs[0]["repo_growth"],
        "first_restic_s": runs[0]["restic_s"],
        "hourly_median_data_added": statistics.median(r["data_added"] for r in hourly),
        "hourly_median_repo_growth": statistics.median(r["repo_growth"] for r in hourly),
        "hourly_median_restic_s": statistics.median(r["restic_s"] for r in hourly),
        "hourly_median_run_s": statistics.median(r["run_s"] for r in hourly),
        "repo_bytes_after_day": folder_bytes(repo),
        "plain_bytes_of_hourly_snapshots": plain,
        "hourly_points": len(hourly),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
