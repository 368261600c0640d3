"""Measure smartAquarium's backups against sqlite3, cp and the peers, in one run.

    .venv/bin/python bench/run.py                 # a month and a year of readings
    .venv/bin/python bench/run.py --quick         # one small day: shows the benchmark works
    .venv/bin/python bench/run.py --sizes month   # only some sizes
    .venv/bin/python bench/run.py --plot bench/results/full.svg --from bench/results/full.json  # draw it

"Ours" is timed as users run it, a whole `manage.py backup_database` process
(Python and Django start-up included), and again inside one process through
the service (start-up excluded). Every figure is the median of several runs,
ours and the reference taking turns, so a noisy machine slows both alike.
Ratios are ours / reference: below 1 we are faster. The databases are built
once with simulate_readings and cached (--cache-dir); the peers are installed
from bench/requirements.txt into bench/.peers, outside the project's venv.
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
sys.path.insert(0, str(PROJECT))  # run as a script: bench/ alone is on the path

from backup_tasks.storage.checksums import file_sha256  # noqa: E402  (needs no Django set-up)

ZONE = "Europe/Berlin"  # Two DST changes a year: exports shift by two offsets.
TABLE = "readings_reading"
CLEANUP_FILES = 10_000
CSV_HEADER = "Water Temp (°C),Air Temp (°C),Humidity (%),Setpoint (°C),PID Output,Timestamp"
CSV_LINE = (
    "printf('%.2f,%.2f,%.2f,%.2f,%.15g,%s', water_temperature, air_temperature, humidity, setpoint,"
    " pid_output, strftime('%Y-%m-%d %H:%M:%S', substr(timestamp, 1, 19), '{shift}'))"
)


@dataclass(frozen=True)
class Size:
    name: str
    days: float
    start: str  # First day in the plant's zone.
    runs: int

    @property
    def file_name(self) -> str:
        return f"{self.name}-{self.days:g}d-{self.start}.sqlite3"


SIZES = {
    # Across the spring DST change, so the quick run checks both offsets too.
    "day": Size("day", 1, "2025-03-30", 1),
    "month": Size("month", 30, "2025-03-01", 5),
    "year": Size("year", 365, "2025-01-01", 3),
}
# What the issue asks, as the largest ratio that meets it.
TARGETS = {
    # Issue 15: a checked copy against a checked copy.
    ("snapshot", "sqlite3+check"): 1.1,
    ("snapshot", "django-dbbackup+check"): 1.0,
    ("csv", "sqlite3"): 1.2,
    ("json", "sqlite3"): 1.0,
    ("csv", "django-import-export"): 1.0,
    # PostgreSQL (--postgres): the server's own tools.
    ("pg_snapshot", "pg_dump"): 1.1,
    ("pg_csv", "psql"): 1.2,
    ("pg_json", "psql"): 1.0,
}
# Targets on one size only, and on which ratio: Django's start-up is longer than the status
# query at a month, so there the service is compared in-process (issue 15).
SIZED_TARGETS = {
    ("status", "sqlite3", "month"): ("ratio_inprocess", 1.1),
    ("status", "sqlite3", "year"): ("ratio", 1.2),
}


def target_for(operation: str, reference_key: str, size: str) -> tuple[str, float] | None:
    """(which ratio, the largest that meets the target), or None when nothing is asked."""
    if (operation, reference_key) in TARGETS:
        return "ratio", TARGETS[(operation, reference_key)]
    return SIZED_TARGETS.get((operation, reference_key, size))


RSS_TARGET_MB = 100
WRITER_REFERENCE_TIMEOUT = 60.0
STALL_TARGET_S = 0.5
OPERATIONS = ("snapshot", "csv", "json", "windows", "status", "cleanup", "writer", "postgresql")
# A window must cost no more than the export of every reading (issue 17).
WINDOW_TARGET = 1.1


@dataclass
class Run:
    seconds: float
    rss_mb: float
    returncode: int
    stderr: str
    timed_out: bool = False

    def __add__(self, then: "Run") -> "Run":
        """One step made of two processes, one after the other."""
        return Run(
            self.seconds + then.seconds,
            max(self.rss_mb, then.rss_mb),
            self.returncode or then.returncode,
            self.stderr + then.stderr,
            self.timed_out or then.timed_out,
        )

    def check(self, what: str) -> "Run":
        if self.returncode != 0 and not self.timed_out:
            raise SystemExit(f"{what} failed with status {self.returncode}:\n{self.stderr}")
        return self


def timed(
    argv: list[str],
    *,
    env: dict | None = None,
    cwd: Path | None = None,
    stdin: Path | None = None,
    stdout: Path | None = None,
    timeout: float | None = None,
) -> Run:
    """Run one whole process; return its wall time and its own peak RSS."""
    with (
        open(stdin or os.devnull, "rb") as fin,
        open(stdout or os.devnull, "wb") as fout,
        tempfile.TemporaryFile() as ferr,
    ):
        began = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=fin, stdout=fout, stderr=ferr)
        killer = threading.Timer(timeout, proc.kill) if timeout else None
        if killer:
            killer.start()
        # wait4 gives this child's own rusage: ru_maxrss is its peak, not ours.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        timed_out = killer is not None and not killer.is_alive() and proc.returncode < 0
        if killer:
            killer.cancel()
        ferr.seek(0)
        stderr = ferr.read().decode(errors="replace")[-4000:]
    return Run(seconds, usage.ru_maxrss / 1024, proc.returncode, stderr, timed_out)


def median(values: list[float]) -> float:
    return statistics.median(values)


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def export_sha256(first: Path) -> str:
    """SHA-256 of an export read as one file: a CSV's _part2, _part3, ... follow without their header.

    A month of readings passes Excel's limit, so its CSV export comes in parts;
    joined like this it is the one file sqlite3 prints and the admin downloads.
    """
    digest = hashlib.sha256()
    with open(first, "rb") as handle:
        header = handle.readline()
        digest.update(header)
        while block := handle.read(1 << 20):
            digest.update(block)
    part = 2
    while (path := first.with_name(f"{first.stem}_part{part}{first.suffix}")).exists():
        with open(path, "rb") as handle:
            if handle.readline() != header:
                raise SystemExit(f"{path.name} does not start with the header of {first.name}")
            while block := handle.read(1 << 20):
                digest.update(block)
        part += 1
    return digest.hexdigest()


def only_file(folder: Path) -> Path:
    # The backup itself, not its .sha256 checksum nor a CSV's later parts.
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix != ".sha256" and "_part" not in p.name
    ]
    if len(files) != 1:
        raise SystemExit(f"expected one file in {folder}, found {[p.name for p in files]}")
    return files[0]


# --- the databases --------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.python = sys.executable
        self.cache = Path(args.cache_dir).resolve()
        self.scratch = self.cache / "scratch"
        self.peers_dir = Path(args.peers_dir).resolve()
        self.keep = Path(args.keep_outputs).resolve() if args.keep_outputs else None
        self.results: list[dict] = []
        self.peers: dict[str, str] | None = None
        self.peer_problem: str | None = None
        self.runs_override: int | None = args.runs
        self.peer_timeout: float = args.peer_timeout
        self.inprocess_sha256: dict[str, str | None] = {}

    def env(self, db: Path, backup_dir: Path, *, peers: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
        env.update(
            DATABASE_URL=f"sqlite:///{db}",
            BACKUP_DIR=str(backup_dir),
            TIME_ZONE=ZONE,
            # Each operation alone, as its reference does it: the history (restic) is measured on its own.
            BACKUP_REPOSITORY="off",
            PYTHONPATH=str(PROJECT),
            PYTHONDONTWRITEBYTECODE="1",
        )
        if peers:
            env.update(
                PYTHONPATH=f"{self.peers_dir}{os.pathsep}{PROJECT}",
                DJANGO_SETTINGS_MODULE="bench.peer_settings",
                BENCH_DBBACKUP_DIR=str(self.scratch / "dbbackup"),
            )
        return env

    def manage(self, db: Path, backup_dir: Path, *args: str, peers: bool = False, **kwargs) -> Run:
        return timed(
            [self.python, str(PROJECT / "manage.py"), *args],
            env=self.env(db, backup_dir, peers=peers),
            cwd=self.scratch,
            **kwargs,
        )

    def database(self, size: Size) -> tuple[Path, int]:
        """The cached database of this size, built with simulate_readings when missing."""
        path = self.cache / size.file_name
        if not path.exists():
            building = path.with_name(f".building-{path.name}")
            for leftover in building.parent.glob(f"{building.name}*"):
                leftover.unlink()
            print(f"Building {path.name} ({size.days:g} days of readings)...", flush=True)
            began = time.perf_counter()
            self.manage(building, self.scratch / "unused", "migrate", "--noinput").check("migrate")
            self.manage(
                building,
                self.scratch / "unused",
                "simulate_readings",
                "--days",
                f"{size.days:g}",
                "--start",
                size.start,
            ).check("simulate_readings")
            checkpoint(building)
            building.rename(path)
            print(f"  built in {time.perf_counter() - began:.0f} s", flush=True)
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            rows = db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]
        return path, rows

    # --- peers ------------------------------------------------------------

    def ensure_peers(self) -> None:
        """Install bench/requirements.txt into bench/.peers unless it is there already."""
        requirements = BENCH / "requirements.txt"
        wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
        stamp = self.peers_dir / ".installed"
        if not (stamp.exists() and stamp.read_text() == wanted):
            print(f"Installing the peers into {self.peers_dir}...", flush=True)
            fresh = self.peers_dir.with_name(f"{self.peers_dir.name}.new")
            shutil.rmtree(fresh, ignore_errors=True)
            result = subprocess.run(
                [
                    *(self.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
                    *("--no-deps", "--target", str(fresh), "-r", str(requirements)),
                ],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                self.peer_problem = (
                    "not installed: " + (result.stderr.strip().splitlines() or ["pip failed"])[-1]
                )
                print(f"  {self.peer_problem}", flush=True)
                return
            shutil.rmtree(self.peers_dir, ignore_errors=True)
            fresh.rename(self.peers_dir)
            stamp.write_text(wanted)
        self.peers = {}
        for line in requirements.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==")
                self.peers[name.strip()] = version.strip()

    # --- recording --------------------------------------------------------

    def record(
        self,
        operation: str,
        size: Size,
        rows: int,
        ours: list[Run],
        reference: str,
        reference_key: str,
        refs: list[Run],
        inprocess: list[float] | None = None,
        **extra,
    ) -> dict:
        ours_s = median([r.seconds for r in ours])
        ref_s = median([r.seconds for r in refs]) if refs else None
        result = {
            "operation": operation,
            "size": size.name,
            "rows": rows,
            "ours_s": round(ours_s, 3),
            "ours_inprocess_s": round(median(inprocess), 3) if inprocess else None,
            "reference": reference,
            "reference_key": reference_key,
            "reference_s": round(ref_s, 3) if ref_s is not None else None,
            "ratio": round(ours_s / ref_s, 3) if ref_s else None,
            "ratio_inprocess": round(median(inprocess) / ref_s, 3) if inprocess and ref_s else None,
            "rows_per_s": round(rows / ours_s) if ours_s else None,
            "peak_rss_mb": round(max(r.rss_mb for r in ours), 1),
            "reference_peak_rss_mb": round(max(r.rss_mb for r in refs), 1) if refs else None,
            "runs": len(ours),
            "ours_runs_s": [round(r.seconds, 3) for r in ours],
            "reference_runs_s": [round(r.seconds, 3) for r in refs],
        }
        if any(r.timed_out for r in refs):
            result["reference_timed_out"] = True
            result["note"] = "the reference was stopped after its time-out: the ratio is an upper bound"
        result.update(extra)
        target = target_for(operation, reference_key, size.name)
        if target is not None and result[target[0]] is not None:
            field, limit = target
            result["target"] = f"{field} <= {limit:g}"
            result["meets_target"] = result[field] <= limit
        self.results.append(result)
        print(format_row(result), flush=True)
        return result

    def runs(self, size: Size) -> int:
        return self.runs_override or size.runs

    def inprocess(
        self, operation: str, db: Path, files: int = CLEANUP_FILES, *options: str, key: str | None = None
    ) -> Callable[[], Run]:
        """A step timing one service call inside its own process; start-up not counted.

        The SHA-256 of what it wrote is kept under key (default: the operation).
        """
        backups = self.scratch / "inprocess"

        def step() -> Run:
            clear(backups)
            result = subprocess.run(
                [self.python, "-m", "bench.inprocess", operation, "1", "--files", str(files), *options],
                env=self.env(db, backups),
                cwd=PROJECT,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                raise SystemExit(f"in-process {operation} failed:\n{result.stderr}")
            shutil.rmtree(backups, ignore_errors=True)
            measured = json.loads(result.stdout.splitlines()[-1])
            self.inprocess_sha256[key or operation] = measured["sha256"]
            return Run(measured["times"][0], measured["peak_rss_mb"], 0, "")

        return step

    def alternate(self, n: int, *steps: Callable[[], Run]) -> list[list[Run]]:
        """Run each step n times, taking turns, so load on the machine hits all alike."""
        runs: list[list[Run]] = [[] for _ in steps]
        for _ in range(n):
            for i, step in enumerate(steps):
                runs[i].append(step())
        return runs

    # --- operations -------------------------------------------------------

    def snapshot(self, size: Size, db: Path, rows: int) -> None:
        backups, out = self.scratch / "backups", self.scratch / "reference.sqlite3"

        def ours() -> Run:
            clear(backups)
            run = self.manage(db, backups, "backup_database", "--type", "db").check(
                "backup_database --type db"
            )
            shutil.rmtree(backups)
            return run

        def reference(argv: list[str], *, checked: bool = False) -> Callable[[], Run]:
            def step() -> Run:
                out.unlink(missing_ok=True)
                run = timed(argv, cwd=self.scratch).check(" ".join(argv[:2]))
                if checked:
                    run = run + self.integrity_check(out)
                out.unlink()
                return run

            return step

        backup = ["sqlite3", str(db), f".backup '{out}'"]
        checked_ref = reference(backup, checked=True)
        backup_ref = reference(backup)
        cp_ref = reference(["cp", str(db), str(out)])
        ours_runs, checked_runs, backup_runs, cp_runs, inproc_runs = self.alternate(
            self.runs(size), ours, checked_ref, backup_ref, cp_ref, self.inprocess("snapshot", db)
        )
        inproc = [r.seconds for r in inproc_runs]
        # Like for like: ours checks every copy with PRAGMA integrity_check before naming it.
        self.record(
            "snapshot",
            size,
            rows,
            ours_runs,
            'sqlite3 DB ".backup OUT" + sqlite3 OUT "PRAGMA integrity_check"',
            "sqlite3+check",
            checked_runs,
            inproc,
        )
        self.record(
            "snapshot",
            size,
            rows,
            ours_runs,
            'sqlite3 DB ".backup OUT" (unchecked)',
            "sqlite3",
            backup_runs,
            inproc,
        )
        self.record("snapshot", size, rows, ours_runs, "cp DB OUT (the floor)", "cp", cp_runs, inproc)
        if self.peers is not None:
            dumps = self.scratch / "dbbackup"

            def peer() -> Run:
                clear(dumps)
                run = self.manage(
                    db, backups, "dbbackup", "--noinput", "-q", peers=True, timeout=self.peer_timeout
                )
                run.check("dbbackup")
                if (
                    not run.timed_out
                ):  # its copy is an SQLite file (SqliteBackupConnector), beside a .metadata
                    [copy] = dumps.glob("*.sqlite3")
                    run = run + self.integrity_check(copy)
                shutil.rmtree(dumps)
                return run

            peer_runs = self.alternate(self.runs(size), peer)[0]
            self.record(
                "snapshot",
                size,
                rows,
                ours_runs,
                f"django-dbbackup {self.peers['django-dbbackup']}: dbbackup"
                ' + sqlite3 OUT "PRAGMA integrity_check"',
                "django-dbbackup+check",
                peer_runs,
                inproc,
            )
        else:
            self.skipped_peer("snapshot", size, rows, "django-dbbackup+check")

    def integrity_check(self, copy: Path) -> Run:
        """sqlite3's own full check of a copy, as ours runs on every snapshot; it must say ok."""
        verdict = self.scratch / "integrity_check.txt"
        run = timed(["sqlite3", str(copy), "PRAGMA integrity_check;"], stdout=verdict).check(
            "integrity_check"
        )
        if verdict.read_text().strip() != "ok":
            raise SystemExit(f"PRAGMA integrity_check of {copy.name} said: {verdict.read_text()[:200]}")
        verdict.unlink()
        return run

    def export(self, kind: str, size: Size, db: Path, rows: int) -> None:
        backups, out = self.scratch / "backups", self.scratch / f"reference.{kind}"
        folder = backups / f"{kind}_exports"
        digests: dict[str, str] = {}

        def ours() -> Run:
            clear(backups)
            run = self.manage(db, backups, "backup_database", "--type", kind).check(
                f"backup_database --type {kind}"
            )
            produced = only_file(folder)
            if "ours" not in digests:
                digests["ours"] = export_sha256(produced)
                if self.keep:
                    self.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copy(produced, self.keep / f"{size.name}.{kind}")
            shutil.rmtree(backups)
            return run

        if kind == "csv":
            script = self.scratch / "reference-csv.sql"
            script.write_text(csv_script(db), encoding="utf-8")
            argv, stdin = ["sqlite3", "-batch", str(db)], script
            label = "sqlite3 CLI, printf per row (same text)"
        else:
            argv, stdin = ["sqlite3", "-json", str(db), json_query(db)], None
            label = "sqlite3 -json"

        def reference() -> Run:
            run = timed(argv, stdin=stdin, stdout=out, cwd=self.scratch).check(f"sqlite3 {kind}")
            if "reference" not in digests:
                digests["reference"] = file_sha256(out)
            out.unlink()
            return run

        ours_runs, ref_runs, inproc_runs = self.alternate(
            self.runs(size), ours, reference, self.inprocess(kind, db)
        )
        measured = {"times": [r.seconds for r in inproc_runs]}
        extra = {
            "inprocess_output_identical": self.inprocess_sha256[kind] == digests["ours"],
            "ours_sha256": digests["ours"],
        }
        if kind == "csv":
            extra["reference_output_identical"] = digests["reference"] == digests["ours"]
        self.record(kind, size, rows, ours_runs, label, "sqlite3", ref_runs, measured["times"], **extra)
        if kind == "csv":
            if self.peers is None:
                self.skipped_peer("csv", size, rows, "django-import-export")
                return
            peer_out = self.scratch / "import-export.csv"

            def peer() -> Run:
                run = self.manage(
                    db,
                    backups,
                    "export",
                    "CSV",
                    "readings.Reading",
                    peers=True,
                    stdout=peer_out,
                    timeout=self.peer_timeout,
                ).check("export CSV")
                peer_out.unlink()
                return run

            # The peer builds the whole export in memory and takes minutes: fewer runs.
            peer_runs = self.alternate(1 if size.name == "year" else min(3, self.runs(size)), peer)[0]
            self.record(
                "csv",
                size,
                rows,
                ours_runs,
                f"django-import-export {self.peers['django-import-export']}: export CSV",
                "django-import-export",
                peer_runs,
                measured["times"],
                note_peer="its own columns (id, UTC timestamps), not the guide's text",
            )

    def windows(self, kind: str, size: Size, db: Path, rows: int) -> None:
        """Exports of a window against the full export of the same readings and sqlite3's same WHERE.

        Issue 17's two windows of nearly every reading: --since the first day
        (every reading) and --until an hour before the last one. The admin's range
        download of each is timed in one process, as the web server streams it,
        against the full export in one process.
        """
        backups = self.scratch / "backups"
        folder = backups / f"{kind}_exports"
        zone = ZoneInfo(ZONE)
        _, last = edges(db)
        data_end = datetime.fromisoformat(last[:19]).replace(tzinfo=UTC) + timedelta(seconds=2)
        hour_before = (data_end - timedelta(hours=1)).astimezone(zone)
        first_day = datetime.fromisoformat(size.start).replace(tzinfo=zone)
        day_after = (data_end + timedelta(days=1)).astimezone(zone).replace(hour=0, minute=0, second=0)
        # name: (--since, --until) in plant time; the admin's form always takes both ends.
        windows = {
            "since": ((first_day, None), (first_day, day_after)),
            "until": ((None, hour_before), (first_day, hour_before)),
        }
        digests: dict[str, str] = {}

        def plant(moment: datetime | None) -> str | None:
            return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")

        def utc(moment: datetime | None) -> str | None:
            return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")

        def command(name: str, since: datetime | None, until: datetime | None) -> Callable[[], Run]:
            args = [
                *(("--since", plant(since)) if since else ()),
                *(("--until", plant(until)) if until else ()),
            ]

            def step() -> Run:
                clear(backups)
                run = self.manage(db, backups, "backup_database", "--type", kind, *args).check(
                    f"backup_database --type {kind} {' '.join(args)}"
                )
                digests.setdefault(name, export_sha256(only_file(folder)))
                shutil.rmtree(backups)
                return run

            return step

        def reference(name: str, since: datetime | None, until: datetime | None) -> Callable[[], Run]:
            out = self.scratch / f"reference-{name}.{kind}"
            if kind == "csv":
                script = self.scratch / f"reference-{name}.sql"
                script.write_text(csv_script(db, utc(since), utc(until)), encoding="utf-8")
                argv, stdin = ["sqlite3", "-batch", str(db)], script
            else:
                argv, stdin = ["sqlite3", "-json", str(db), json_query(db, utc(since), utc(until))], None

            def step() -> Run:
                run = timed(argv, stdin=stdin, stdout=out, cwd=self.scratch).check(f"sqlite3 {kind} {name}")
                digests.setdefault(f"sqlite3 {name}", file_sha256(out))
                out.unlink()
                return run

            return step

        def admin(name: str, since: datetime, until: datetime) -> Callable[[], Run]:
            options = (
                "--since",
                since.strftime("%Y-%m-%dT%H:%M:%S"),
                "--until",
                until.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            return self.inprocess(f"admin-{kind}", db, CLEANUP_FILES, *options, key=f"admin {name}")

        steps = {"full": command("full", None, None), "full in-process": self.inprocess(kind, db)}
        for name, (bounds, admin_bounds) in windows.items():
            steps[name] = command(name, *bounds)
            steps[f"sqlite3 {name}"] = reference(name, *bounds)
            steps[f"admin {name}"] = admin(name, *admin_bounds)
        runs = dict(zip(steps, self.alternate(self.runs(size), *steps.values()), strict=True))
        digests.update(
            {key: value for key, value in self.inprocess_sha256.items() if key.startswith("admin ")}
        )

        reference_label = (
            "sqlite3 CLI, printf per row, same WHERE" if kind == "csv" else "sqlite3 -json, same WHERE"
        )
        for name, (bounds, admin_bounds) in windows.items():
            window_rows = count_rows(db, utc(bounds[0]), utc(bounds[1]))
            shown = " ".join(
                f"--{flag} {plant(moment)}"
                for flag, moment in zip(("since", "until"), bounds, strict=True)
                if moment
            )
            same_bytes = (
                {"output_identical_to_full": digests[name] == digests["full"]} if name == "since" else {}
            )
            if kind == "csv":
                same_bytes["reference_output_identical"] = digests[name] == digests[f"sqlite3 {name}"]
            common = {"window": shown, "full_rows": rows}
            for operation, ours, full, note in (
                (f"{kind} {name}", runs[name], runs["full"], "whole processes"),
                (
                    f"admin {kind} {name}",
                    runs[f"admin {name}"],
                    runs["full in-process"],
                    f"the admin's download from {plant(admin_bounds[0])} to {plant(admin_bounds[1])},"
                    " streamed in one process; the full export in one process",
                ),
            ):
                extra = {**common, "note": note}
                if operation.startswith("admin"):
                    extra["output_identical_to_command"] = digests[f"admin {name}"] == digests[name]
                else:
                    extra.update(same_bytes)
                result = self.record(
                    operation,
                    size,
                    window_rows,
                    ours,
                    f"the full export ({rows:,} readings)",
                    "full",
                    full,
                    **extra,
                )
                result["target"] = f"ratio <= {WINDOW_TARGET:g}"
                result["meets_target"] = result["ratio"] <= WINDOW_TARGET
                self.record(
                    operation,
                    size,
                    window_rows,
                    ours,
                    reference_label,
                    "sqlite3",
                    runs[f"sqlite3 {name}"],
                    **extra,
                )

    def status(self, size: Size, db: Path, rows: int) -> None:
        backups = self.scratch / "backups"
        clear(backups)

        def ours() -> Run:
            return self.manage(db, backups, "backup_database", "--status").check("backup_database --status")

        def reference() -> Run:
            return timed(["sqlite3", str(db), status_query()]).check("sqlite3 status")

        ours_runs, ref_runs, inproc_runs = self.alternate(
            self.runs(size), ours, reference, self.inprocess("status", db)
        )
        inproc = [r.seconds for r in inproc_runs]
        self.record(
            "status",
            size,
            rows,
            ours_runs,
            "sqlite3, the same aggregates in SQL",
            "sqlite3",
            ref_runs,
            inproc,
        )

    def cleanup(self, size: Size, db: Path, files: int) -> None:
        backups = self.scratch / "cleanup"
        kept: list[int] = []

        def ours() -> Run:
            clear(backups)
            old = make_cleanup_files(backups, files)
            run = self.manage(db, backups, "backup_database", "--cleanup").check("backup_database --cleanup")
            kept.append(count_files(backups) - (files - old))
            return run

        def reference() -> Run:
            clear(backups)
            old = make_cleanup_files(backups, files)
            run = timed(["find", str(backups), "-type", "f", "-mtime", "+30", "-delete"]).check("find")
            kept.append(count_files(backups) - (files - old))
            return run

        ours_runs, ref_runs, inproc_runs = self.alternate(
            self.runs(size), ours, reference, self.inprocess("cleanup", db, files)
        )
        shutil.rmtree(backups)
        inproc = [r.seconds for r in inproc_runs]
        self.record(
            "cleanup",
            size,
            files,
            ours_runs,
            "find -mtime +30 -delete",
            "find",
            ref_runs,
            inproc,
            note=f"rows are backup files ({files:,}, half older than 30 days)",
            same_files_removed=set(kept) == {0},
        )

    def writer_during_snapshot(self, size: Size, db: Path, rows: int) -> None:
        """Snapshot a copy of the database while a sensor loop inserts every 20 ms.

        sqlite3 .backup gets the same writer in turn: a stall both show comes
        from copying that much data on this disk, not from our code.
        """
        copy, backups = self.scratch / "writer.sqlite3", self.scratch / "backups"
        out = self.scratch / "reference.sqlite3"

        def ours() -> Run:
            return self.manage(copy, backups, "backup_database", "--type", "db").check("snapshot")

        def reference() -> Run:
            # The CLI copies 100 pages a step and starts over whenever the
            # writer commits in between: on a large database it may never end.
            argv = ["sqlite3", str(copy), f".backup '{out}'"]
            return timed(argv, cwd=self.scratch, timeout=WRITER_REFERENCE_TIMEOUT).check("sqlite3 .backup")

        runs: dict[str, list[Run]] = {"ours": [], "reference": []}
        reports: dict[str, list[dict]] = {"ours": [], "reference": []}
        for _ in range(self.runs(size)):
            for name, snapshot in (("ours", ours), ("reference", reference)):
                for leftover in [*self.scratch.glob("writer.sqlite3*"), out]:
                    leftover.unlink(missing_ok=True)
                shutil.copy(db, copy)
                # A live database is on disk: left dirty, this copy (1.45 GB at a year) would be
                # flushed by the writer's first checkpoint fsync, stalling it for that
                # flush in both our snapshot and the reference's.
                fsync_path(copy)
                clear(backups)
                writer = subprocess.Popen(
                    [self.python, "-m", "bench.writer"],
                    env=self.env(copy, backups),
                    cwd=PROJECT,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                try:
                    if writer.stdout.readline().strip() != "ready":
                        raise SystemExit("the writer did not start")
                    time.sleep(0.5)
                    runs[name].append(snapshot())
                    time.sleep(0.5)
                finally:
                    writer.send_signal(signal.SIGTERM)
                    printed, _ = writer.communicate(timeout=60)
                reports[name].append(json.loads(printed.strip().splitlines()[-1]))
                shutil.rmtree(backups)
        for leftover in [*self.scratch.glob("writer.sqlite3*"), out]:
            leftover.unlink(missing_ok=True)
        ours_reports, ref_reports = reports["ours"], reports["reference"]
        failed = sum(r["failed"] for r in ours_reports)
        stall = max(r["longest_stall_s"] for r in ours_reports)
        result = self.record(
            "snapshot+writer",
            size,
            rows,
            runs["ours"],
            'sqlite3 DB ".backup OUT" with the same writer',
            "sqlite3",
            runs["reference"],
            inserts=sum(r["inserts"] for r in ours_reports),
            failed_inserts=failed,
            longest_stall_s=stall,
            stalls_over_100ms=[r["stalls_over_100ms"] for r in ours_reports],
            last_error=next((r["last_error"] for r in ours_reports if r["last_error"]), None),
            reference_failed_inserts=sum(r["failed"] for r in ref_reports),
            reference_longest_stall_s=max(r["longest_stall_s"] for r in ref_reports),
            reference_stalls_over_100ms=[r["stalls_over_100ms"] for r in ref_reports],
        )
        result["target"] = f"0 failed inserts, longest stall < {STALL_TARGET_S:g} s"
        result["meets_target"] = failed == 0 and stall < STALL_TARGET_S

    def postgresql(self, size: Size, db: Path, rows: int, server: str) -> None:
        """The same readings in a PostgreSQL database of their own, against pg_dump and psql.

        server is postgres://user:password@host:port of a role that may create
        databases; the password reaches psql and pg_dump in PGPASSWORD only.
        """
        import psycopg

        name = f"smartaquarium_bench_{size.name}"
        url = f"{server.rstrip('/')}/{name}"
        with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        backups = self.scratch / "backups"
        env = {**self.env(db, backups), "DATABASE_URL": url}
        tools = {**env, **libpq_env(url)}
        manage = [self.python, str(PROJECT / "manage.py")]
        print(f"Moving {rows:,} readings into PostgreSQL {name}...", flush=True)
        timed([*manage, "migrate", "--noinput"], env=env, cwd=self.scratch).check("migrate")
        timed([*manage, "move_to_postgresql", str(db)], env=env, cwd=self.scratch).check("move_to_postgresql")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"VACUUM ANALYZE {TABLE}")
        shown = subprocess.run(
            [*manage, "shell", "-c", PG_LINE_SQL_SCRIPT],
            env=env,
            cwd=self.scratch,
            capture_output=True,
            text=True,
        )
        line_sql = json.loads(shown.stdout.splitlines()[-1])

        def ours(kind: str) -> Callable[[], Run]:
            def step() -> Run:
                clear(backups)
                run = timed([*manage, "backup_database", "--type", kind], env=env, cwd=self.scratch)
                shutil.rmtree(backups, ignore_errors=True)
                return run.check(f"backup_database --type {kind} on PostgreSQL")

            return step

        dump = self.scratch / "reference.dump"

        def dump_and_read() -> Run:
            dumped = timed(
                [pg_tool("pg_dump"), "--format=custom", f"--file={dump}"], env=tools, cwd=self.scratch
            ).check("pg_dump")
            read = timed([pg_tool("pg_restore"), "--file=/dev/null", str(dump)], env=tools).check(
                "pg_restore"
            )
            dump.unlink()
            return Run(dumped.seconds + read.seconds, max(dumped.rss_mb, read.rss_mb), 0, "")

        out = self.scratch / "reference.txt"

        def psql_copy(select: str) -> Callable[[], Run]:
            argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "SET extra_float_digits = 0"]
            argv += ["-c", f"\\copy ({select}) TO STDOUT"]

            def step() -> Run:
                run = timed(argv, env=tools, stdout=out, cwd=self.scratch).check("psql \\copy")
                out.unlink()
                return run

            return step

        zone = f"'{ZONE}'"
        order = f" FROM {TABLE} ORDER BY timestamp, id"
        csv_select = line_sql["csv"].replace("%(zone)s", zone) + order
        json_select = (
            "json_build_object('water_temperature', round(water_temperature::numeric, 2), 'air_temperature',"
            " round(air_temperature::numeric, 2), 'humidity', round(humidity::numeric, 2), 'setpoint',"
            " round(setpoint::numeric, 2), 'pid_output', pid_output, 'timestamp',"
            f" to_char(timestamp AT TIME ZONE {zone}, 'YYYY-MM-DD HH24:MI:SS')){order}"
        )
        n = self.runs(size)
        for operation, reference, key, label, step in (
            ("pg_snapshot", dump_and_read, "pg_dump", "pg_dump -Fc + pg_restore -f /dev/null", ours("db")),
            (
                "pg_csv",
                psql_copy(f"SELECT {csv_select}"),
                "psql",
                "psql \\copy, the same formatting",
                ours("csv"),
            ),
            (
                "pg_json",
                psql_copy(f"SELECT {json_select}"),
                "psql",
                "psql \\copy of json_build_object",
                ours("json"),
            ),
        ):
            ours_runs, ref_runs = self.alternate(n, step, reference)
            self.record(operation, size, rows, ours_runs, label, key, ref_runs)
        with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def skipped_peer(self, operation: str, size: Size, rows: int, key: str) -> None:
        self.results.append(
            {
                "operation": operation,
                "size": size.name,
                "rows": rows,
                "reference": key,
                "reference_key": key,
                "ratio": None,
                "ours_s": None,
                "reference_s": None,
                "rows_per_s": None,
                "peak_rss_mb": None,
                "note": self.peer_problem,
            }
        )


# --- the references' SQL --------------------------------------------------


PG_LINE_SQL_SCRIPT = (
    "import json; from backup_tasks.engines.postgresql import LINE_SQL; print(json.dumps(LINE_SQL))"
)


def libpq_env(url: str) -> dict[str, str]:
    """PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE of a postgres:// URL: never in argv."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    env = {"PGHOST": parts.hostname or "", "PGDATABASE": parts.path.lstrip("/")}
    if parts.port:
        env["PGPORT"] = str(parts.port)
    if parts.username:
        env["PGUSER"] = unquote(parts.username)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    return env


def pg_tool(name: str) -> str:
    """The newest installed major version's tool (Debian keeps them off PATH), else PATH's."""
    found = sorted(
        (int(path.parent.parent.name), str(path))
        for path in Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
        if path.parent.parent.name.isdigit()
    )
    return found[-1][1] if found else name


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint(db: Path) -> None:
    """Fold the WAL into the file, so cp and .backup copy the same whole database."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def edges(db: Path) -> tuple[str | None, str | None]:
    """The first and last reading's UTC text: two lone aggregates, each one step into the index."""
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        first = conn.execute(f"SELECT MIN(timestamp) FROM {TABLE}").fetchone()[0]
        last = conn.execute(f"SELECT MAX(timestamp) FROM {TABLE}").fetchone()[0]
    return first, last


def offsets(db: Path) -> list[tuple[str | None, str | None, int]]:
    """(first UTC text, end UTC text, offset s): runs of one UTC offset of ZONE over the data."""
    first, last = edges(db)
    zone = ZoneInfo(ZONE)
    if first is None:
        return [(None, None, 0)]

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds())

    runs: list[tuple[str | None, str | None, int]] = []
    start: str | None = None
    moment = datetime.fromisoformat(first[:19]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(last[:19]).replace(tzinfo=UTC)
    current = offset(moment)
    while moment <= end:
        step = moment + timedelta(minutes=15)  # Zones change on the quarter hour at most.
        if offset(step) != current:
            boundary = step
            while offset(boundary - timedelta(seconds=1)) != current:
                boundary -= timedelta(seconds=1)
            text = boundary.strftime("%Y-%m-%d %H:%M:%S")
            runs.append((start, text, current))
            start, current = text, offset(boundary)
        moment = step
    runs.append((start, None, current))
    return runs


def _where(start: str | None, end: str | None) -> str:
    clauses = ([f"timestamp >= '{start}'"] if start else []) + ([f"timestamp < '{end}'"] if end else [])
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _clamped(db: Path, start: str | None, end: str | None) -> list[tuple[str | None, str | None, int]]:
    """The offset runs cut to the window [start, end) (UTC text); runs outside it left out."""
    runs = []
    for low, high, offset in offsets(db):
        low = max(filter(None, (low, start)), default=None)
        high = min(filter(None, (high, end)), default=None)
        if low is None or high is None or low < high:
            runs.append((low, high, offset))
    return runs


def csv_script(db: Path, start: str | None = None, end: str | None = None) -> str:
    """A sqlite3 script printing the guide's CSV of readings in [start, end): BOM, header, CRLF, plant-zone times."""
    lines = [".mode list", '.separator , "\\r\\n"', f"SELECT char(65279) || '{CSV_HEADER}';"]
    for low, high, offset in _clamped(db, start, end):
        line = CSV_LINE.format(shift=f"{offset:+d} seconds")
        lines.append(f"SELECT {line} FROM {TABLE}{_where(low, high)} ORDER BY timestamp, id;")
    return "\n".join(lines) + "\n"


def json_query(db: Path, start: str | None = None, end: str | None = None) -> str:
    """The readings in [start, end) for sqlite3 -json, with plant-zone times in one statement."""
    segments = offsets(db)
    if len(segments) == 1:
        shift = f"'{segments[0][2]:+d} seconds'"
    else:
        cases = " ".join(
            f"WHEN timestamp < '{boundary}' THEN '{offset:+d} seconds'"
            for _, boundary, offset in segments[:-1]
        )
        shift = f"CASE {cases} ELSE '{segments[-1][2]:+d} seconds' END"
    return (
        "SELECT water_temperature, air_temperature, humidity, setpoint, pid_output,"
        f" strftime('%Y-%m-%d %H:%M:%S', substr(timestamp, 1, 19), {shift}) AS timestamp"
        f" FROM {TABLE}{_where(start, end)} ORDER BY timestamp, id;"
    )


def count_rows(db: Path, start: str | None, end: str | None) -> int:
    with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {TABLE}{_where(start, end)}").fetchone()[0]


def status_query() -> str:
    return (
        "SELECT COUNT(id), MIN(water_temperature), MAX(water_temperature), AVG(water_temperature),"
        " MIN(air_temperature), MAX(air_temperature), AVG(air_temperature), AVG(humidity)"
        f" FROM {TABLE};"
        " SELECT water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
        f" FROM {TABLE} ORDER BY timestamp DESC, id DESC LIMIT 1;"
    )


# --- cleanup's 10,000 files -----------------------------------------------

KIND_NAMES = (
    ("database", "db_backup_", ".sqlite3"),
    ("csv_exports", "readings_", ".csv"),
    ("json_exports", "readings_", ".json"),
)


def make_cleanup_files(root: Path, files: int) -> int:
    """Empty backup files named (and dated) as ours, half older than 30 days; return how many old."""
    zone = ZoneInfo(ZONE)
    now = datetime.now(zone).replace(microsecond=0)
    old = 0
    for index in range(files):
        folder, prefix, suffix = KIND_NAMES[index % 3]
        n = index // 3
        if index % 2:
            stamp = now - timedelta(days=40, hours=n)  # Well past 30 days, for find's whole days too.
            old += 1
        else:
            stamp = now - timedelta(minutes=5 * n + 5)
        path = root / folder / f"{prefix}{stamp:%Y%m%d_%H%M%S}{suffix}"
        if index < 3:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (stamp.timestamp(), stamp.timestamp()))
    return old


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("scheduled_backup.log"))


# --- output -----------------------------------------------------------------

COLUMNS = ("operation", "size", "ours s", "in-proc s", "reference", "ref s", "ratio", "rows/s", "RSS MB")


def format_row(r: dict) -> str:
    def num(value, spec=".2f"):
        return "-" if value is None else format(value, spec)

    return (
        f"{r['operation']:<16} {r['size']:<6} {num(r['ours_s']):>8} {num(r.get('ours_inprocess_s')):>9} "
        f"{r['reference'][:44]:<44} {num(r['reference_s']):>8} {num(r['ratio'], '.2f'):>6} "
        f"{num(r['rows_per_s'], ',.0f'):>12} {num(r['peak_rss_mb'], '.0f'):>6}"
    )


def machine(bench: Bench) -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = first_line(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"])
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import django

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory, 1),
        "disk": " ".join(
            subprocess.run(
                ["df", "-h", "--output=fstype,size", str(bench.cache)], capture_output=True, text=True
            ).stdout.split()[-2:]
        ),
        "os": f"{platform.system()} {platform.release()} ({os_name})",
        "python": platform.python_version(),
        "sqlite_library": sqlite3.sqlite_version,
        "sqlite3_cli": first_line(["sqlite3", "--version"]).split()[0],
        "django": django.get_version(),
        "peers": bench.peers or bench.peer_problem,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": first_line(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "time_zone": ZONE,
    }


def plot(report: dict, path: Path) -> None:
    """One bar per operation, size and reference on a ratio axis, each with its target."""
    from backup_tasks.web.charts import Bar, ratio_chart

    bars = [
        Bar(
            f"{r['operation']} · {r['size']} · {shorten(r['reference'])}{' (in-process)' if judged(r) != 'ratio' else ''}",
            r[judged(r)],
            target_limit(r),
            r.get("meets_target"),
        )
        for r in report["results"]
        if r.get(judged(r))
    ]
    info = report["machine"]
    title = (
        f"smartAquarium against the references, same run: {info.get('cpu', '?')}, {info.get('cores', '?')} cores,"
        f" commit {info.get('commit', '?')}, {info.get('date', '?')}"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(ratio_chart("bench", title, bars, standalone=True)) + "\n")


def shorten(reference: str, width: int = 52) -> str:
    return reference if len(reference) <= width else reference[: width - 1] + "…"


def judged(result: dict) -> str:
    """The ratio a result's target is on: the whole process's, or in-process where the target says so."""
    return "ratio_inprocess" if result.get("target", "").startswith("ratio_inprocess") else "ratio"


def target_limit(result: dict) -> float | None:
    """The largest ratio that meets the result's target, when its target is a ratio."""
    target = result.get("target", "")
    if target.startswith(("ratio <= ", "ratio_inprocess <= ")):
        return float(target.rsplit(" ", 1)[1])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one day of readings and 1,000 files: under a minute"
    )
    parser.add_argument("--sizes", help="comma-separated sizes (day, month, year); default month,year")
    parser.add_argument("--runs", type=int, help="runs per measurement (default 5 for a month, 3 for a year)")
    parser.add_argument(
        "--output", default=str(BENCH / "results" / "latest.json"), help="where the JSON goes"
    )
    parser.add_argument(
        "--cache-dir", default=str(BENCH / ".cache"), help="cached databases and scratch files"
    )
    parser.add_argument("--peers-dir", default=str(BENCH / ".peers"), help="where the peers are installed")
    parser.add_argument("--keep-outputs", help="copy the first CSV and JSON of ours here")
    parser.add_argument(
        "--peer-timeout", type=float, default=300, help="stop a peer after this many seconds (default 300)"
    )
    parser.add_argument("--only", help=f"comma-separated operations of {','.join(OPERATIONS)} (default all)")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers")
    parser.add_argument("--plot", help="draw the results as an SVG picture here")
    parser.add_argument("--from", dest="source", help="with --plot: draw this JSON instead of measuring")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        default=os.environ.get("BENCH_POSTGRES_URL"),
        help="postgres://user@host:port of a role that may create databases: adds the PostgreSQL "
        "section (default BENCH_POSTGRES_URL, the place for a URL with a password; none: no such section)",
    )
    args = parser.parse_args(argv)
    if args.source:
        if not args.plot:
            parser.error("--from draws an earlier run: give --plot PATH too")
        plot(json.loads(Path(args.source).read_text()), Path(args.plot))
        print(f"Drew {args.source} in {args.plot}")
        return 0
    names = (args.sizes or ("day" if args.quick else "month,year")).split(",")
    sizes = [SIZES[name] for name in names]
    files = 1_000 if args.quick else CLEANUP_FILES

    bench = Bench(args)
    bench.scratch.mkdir(parents=True, exist_ok=True)
    if args.no_peers:
        bench.peer_problem = "skipped (--no-peers)"
    else:
        bench.ensure_peers()
    info = machine(bench)
    print(
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB; Python {info['python']}, "
        f"SQLite {info['sqlite_library']}\n"
    )
    print(" ".join(COLUMNS))
    began = time.perf_counter()
    only = set(args.only.split(",")) if args.only else set(OPERATIONS)
    for size in sizes:
        db, rows = bench.database(size)
        subprocess.run(["cat", str(db)], stdout=subprocess.DEVNULL, check=True)  # Warm the page cache.
        if "snapshot" in only:
            bench.snapshot(size, db, rows)
        for kind in ("csv", "json"):
            if kind in only:
                bench.export(kind, size, db, rows)
        if "windows" in only:
            for kind in ("csv", "json"):
                bench.windows(kind, size, db, rows)
        if "status" in only:
            bench.status(size, db, rows)
        if "postgresql" in only and args.postgres:
            bench.postgresql(size, db, rows, args.postgres)
        if size is sizes[-1]:
            if "cleanup" in only:
                bench.cleanup(size, db, files)
            if "writer" in only:
                bench.writer_during_snapshot(size, db, rows)
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    info["bench_seconds"] = round(time.perf_counter() - began, 1)
    rss_limit = [r for r in bench.results if r["peak_rss_mb"] and r["size"] == sizes[-1].name]
    info["peak_rss_within_target"] = all(r["peak_rss_mb"] <= RSS_TARGET_MB for r in rss_limit)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": info, "results": bench.results}, indent=2) + "\n")
    shutil.rmtree(bench.scratch, ignore_errors=True)
    print(f"\n{len(bench.results)} results in {info['bench_seconds']:.0f} s written to {output}")
    if args.plot:
        plot({"machine": info, "results": bench.results}, Path(args.plot))
        print(f"Drawn in {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
