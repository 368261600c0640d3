"""Check backups: checksum against the sidecar, then the content itself.

A snapshot must pass its engine's check of a copy (engines.*.verify_copy); an
export must parse and hold as many readings as were recorded when it was written.
"""

import csv
import io
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import zstandard
from django.db import DatabaseError

from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.engines import get_engine
from backup_tasks.engines.base import DamagedCopy, Engine
from backup_tasks.models import BackupRun
from backup_tasks.services.runs import recorded
from backup_tasks.storage import compression, safefile
from backup_tasks.storage.checksums import SUFFIX, file_sha256, recorded_checksum, sidecar, why_no_checksum
from backup_tasks.storage.formats import CSV_HEADER

OK, FAILED, MISSING, UNKNOWN = "OK", "FAILED", "MISSING", "UNKNOWN"


class ContentError(Exception):
    pass


@dataclass
class FileCheck:
    path: str
    status: str
    detail: str
    rows: int | None = None


@dataclass
class VerifyReport:
    checks: list[FileCheck] = field(default_factory=list)

    @property
    def problems(self) -> list[FileCheck]:
        return [check for check in self.checks if check.status != OK]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = {status: 0 for status in (OK, FAILED, MISSING, UNKNOWN)}
        for check in self.checks:
            counts[check.status] += 1
        parts = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
        return f"Verified {len(self.checks)} files: {parts or 'nothing to verify'}."

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def kind_of(path: Path) -> layout.Kind | None:
    name = compression.plain_name(path)
    for kind in layout.KINDS.values():
        if name.endswith(kind.suffixes):
            return kind
    return None


@contextmanager
def text_of(path: Path) -> Iterator[io.TextIOWrapper]:
    """An export's text, decompressed on the fly; damage shows as a ContentError."""
    try:
        with (
            compression.open_reading(path) as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text,
        ):
            yield text
    except UnicodeDecodeError as exc:
        raise ContentError(f"not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise ContentError(f"cannot be decompressed: {exc}") from None


def snapshot_rows(path: Path, alias: str) -> int:
    try:
        with compression.plain_copy(path) as plain:
            engine = get_engine(alias)
            rows = engine.verify_copy(plain).rows
            # Any SQLite file with a readings_reading table would count its rows.
            if problem := foreign_database(engine, plain):
                raise ContentError(problem)
            return rows
    except (BackupError, DamagedCopy) as exc:
        raise ContentError(str(exc)) from None


def foreign_database(engine: Engine, path: Path) -> str | None:
    """Why a sound snapshot file is not a smartAquarium database, or None when it is one."""
    try:
        apps = {app for app, _ in engine.applied_migrations(path)}
    except DamagedCopy:
        return "not a smartAquarium database (it has no migration history)"
    if "readings" not in apps:
        return "a database of another application (no smartAquarium readings)"
    return None


def csv_rows(path: Path) -> int:
    rows = 0
    with text_of(path) as handle:
        reader = csv.reader(handle)
        if next(reader, None) != CSV_HEADER.split(","):
            raise ContentError("the header is not the export's header")
        for line_number, row in enumerate(reader, start=2):
            if len(row) != 6:
                raise ContentError(f"line {line_number} has {len(row)} fields instead of 6")
            rows += 1
    return rows


def json_rows(path: Path) -> int:
    """Parse our one-object-per-line array without loading it whole."""
    rows = 0
    with text_of(path) as handle:
        first = handle.readline()
        if first == "[]\n":
            if handle.read():
                raise ContentError("text after the end of the array")
            return 0
        if first != "[\n":
            raise ContentError("does not start with '['")
        closed = False
        for line_number, line in enumerate(handle, start=2):
            if closed:
                raise ContentError(f"line {line_number}: text after the end of the array")
            if line == "]\n":
                closed = True
                continue
            try:
                item = json.loads(line.rstrip("\n").removesuffix(","))
            except json.JSONDecodeError as exc:
                raise ContentError(f"line {line_number}: {exc.msg}") from None
            if not isinstance(item, dict) or len(item) != 6:
                raise ContentError(f"line {line_number}: not a reading")
            rows += 1
        if not closed:
            raise ContentError("the array is not closed: the file is truncated")
    return rows


EXPORT_ROW_COUNTERS = {"csv": csv_rows, "json": json_rows}


def recorded_rows(path: Path, kind: layout.Kind, alias: str) -> int | None:
    """Readings recorded for this file when it was written (per part for a CSV in parts)."""
    first = layout.first_part(kind, path)
    try:
        run = BackupRun.objects.using(alias).last_success_for(first)
    except DatabaseError:
        return None
    if run is None:
        return None
    parts = run.details.get("parts") if isinstance(run.details, dict) else None
    if parts:
        return next((part["rows"] for part in parts if part["file"] == path.name), None)
    return run.rows if first == path else None


def verify_file(path: Path, *, alias: str = "default", use_records: bool = True) -> FileCheck:
    shown = layout.display_str(path)
    what = safefile.not_regular(path)  # a link is named, not followed: never read through one
    if what == safefile.MISSING:
        recorded_once = safefile.not_regular(sidecar(path)) != safefile.MISSING
        return FileCheck(
            shown, MISSING, "the file is gone (its checksum is still recorded)" if recorded_once else what
        )
    if what:
        return FileCheck(shown, UNKNOWN, what)
    kind = kind_of(path)
    if kind is None:
        return FileCheck(shown, UNKNOWN, "not a backup file (.sqlite3, .dump, .csv or .json)")
    if get_engine(alias).is_live_file(path):
        # Read outside the engine, it would lose this process the database's locks.
        return FileCheck(
            shown, UNKNOWN, "the live database itself, not a backup: 'backup_database --type db' snapshots it"
        )
    expected = recorded_checksum(path)
    try:
        rows = snapshot_rows(path, alias) if kind is layout.DB else EXPORT_ROW_COUNTERS[kind.key](path)
        content_error = None
    except ContentError as exc:
        rows, content_error = None, str(exc)
    if expected is None:
        return FileCheck(shown, UNKNOWN, f"no checksum recorded ({why_no_checksum(path)})", rows)
    if file_sha256(path) != expected:
        reason = f"; {content_error}" if content_error else ""
        return FileCheck(
            shown, FAILED, f"checksum mismatch: the file changed after it was written{reason}", rows
        )
    if content_error:
        return FileCheck(shown, FAILED, content_error, rows)
    wanted = recorded_rows(path, kind, alias) if use_records else None
    if wanted is not None and wanted != rows:
        return FileCheck(
            shown, FAILED, f"{rows:,} readings, but {wanted:,} were recorded when it was written", rows
        )
    what = "integrity ok, " if kind is layout.DB else ""
    return FileCheck(shown, OK, f"{what}{rows:,} readings", rows)


def _all_backup_files(root: Path | None) -> list[Path]:
    files = []
    for kind in layout.KINDS.values():
        files += [path for _, path in layout.backups(kind, root)]
        folder = kind.directory(root)
        if folder.is_dir():
            # A checksum whose file has gone: the backup is missing.
            checksums = (path for suffix in kind.suffixes for path in folder.glob(f"*{suffix}{SUFFIX}"))
            for checksum in sorted(checksums):
                data = checksum.with_name(checksum.name.removesuffix(SUFFIX))
                if layout.stamp_of(kind, data.name) and not data.exists():
                    files.append(data)
    return files


def verify_backups(
    *, paths: list[Path] | None = None, root: Path | None = None, alias: str = "default", trigger: str = ""
) -> VerifyReport:
    """Verify the given files, or every backup in BACKUP_DIR.

    Only our own backups (layout.kind_of_backup) enter the run history. A file
    from elsewhere, a copy on a USB drive or another installation's backup, is
    checked and reported the same way, but it says nothing about this
    installation: a verification of it alone records no run, so --check, the
    dashboard and the failure alerts never judge the plant by it.
    """
    targets = [Path(path) for path in paths] if paths is not None else _all_backup_files(root)
    ours = [layout.kind_of_backup(path, root) is not None for path in targets]
    report = VerifyReport()
    if not any(ours) and paths is not None:
        report.checks = [verify_file(path, alias=alias, use_records=False) for path in targets]
        return report
    with recorded(BackupRun.Kind.VERIFY, trigger=trigger, alias=alias) as run:
        for path, own in zip(targets, ours, strict=True):
            report.checks.append(verify_file(path, alias=alias, use_records=own))
        checked = [check for check, own in zip(report.checks, ours, strict=True) if own]
        problems = [check for check in checked if check.status != OK]
        run.details = {"files": len(checked), "problems": [asdict(p) for p in problems]}
        if problems:
            run.status = BackupRun.Status.FAILED
            run.error = "; ".join(f"{p.status} {p.path}: {p.detail}" for p in problems)[:2000]
    return report
