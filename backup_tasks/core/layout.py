"""Where backups go and what they are called: the guide's names, written once.

backups/
├── scheduled_backup.log
├── database/db_backup_YYYYMMDD_HHMMSS.sqlite3      (.dump on PostgreSQL: pg_dump's custom format)
├── csv_exports/readings_YYYYMMDD_HHMMSS.csv       (_part2.csv, ... past Excel's limit)
└── json_exports/readings_YYYYMMDD_HHMMSS.json

each with a .sha256 beside it, and .gz or .zst added when compressed.
"""

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from backup_tasks import conf

STAMP_FORMAT = "%Y%m%d_%H%M%S"
LOG_NAME = "scheduled_backup.log"
# Work in progress: hidden, in the folder of the final file, removed by cleanup
# when a crashed run left one behind.
TEMP_RE = re.compile(r"^\.(?:db_backup|readings)_\d{8}_\d{6}\..+\.tmp\Z")


@dataclass(frozen=True)
class Kind:
    key: str
    folder: str
    prefix: str
    suffix: str
    label: str
    run_kind: str  # BackupRun.Kind value
    # Other endings of the same kind: a snapshot is a .sqlite3 file or a .dump,
    # by the database engine that wrote it.
    other_suffixes: tuple[str, ...] = ()

    @property
    def suffixes(self) -> tuple[str, ...]:
        return (self.suffix, *self.other_suffixes)

    @cached_property
    def name_re(self) -> re.Pattern[str]:
        # A CSV export too long for Excel continues in _part2, _part3, ...,
        # and a compressed backup ends in .gz or .zst.
        endings = "|".join(re.escape(suffix) for suffix in self.suffixes)
        return re.compile(
            rf"^{re.escape(self.prefix)}(\d{{8}}_\d{{6}})(?:_part([1-9]\d*))?({endings})(\.gz|\.zst)?\Z"
        )

    def file_name(self, when: datetime, part: int = 1, compression: str = "", suffix: str = "") -> str:
        """The name of a backup; compression is the ending ('', '.gz' or '.zst'), suffix the
        kind's own ending when not its first one."""
        part_text = f"_part{part}" if part > 1 else ""
        return f"{self.prefix}{when.strftime(STAMP_FORMAT)}{part_text}{suffix or self.suffix}{compression}"

    def directory(self, root: Path | None = None) -> Path:
        return (root or conf.backup_dir()) / self.folder


DB = Kind("db", "database", "db_backup_", ".sqlite3", "Database backup", "snapshot", (".dump",))
CSV = Kind("csv", "csv_exports", "readings_", ".csv", "CSV export", "csv")
JSON = Kind("json", "json_exports", "readings_", ".json", "JSON export", "json")
KINDS = {kind.key: kind for kind in (DB, CSV, JSON)}


def log_path(root: Path | None = None) -> Path:
    return (root or conf.backup_dir()) / LOG_NAME


def stamp_of(kind: Kind, name: str) -> datetime | None:
    """The plant-local time in one of our file names, or None for a foreign file."""
    match = kind.name_re.match(name)
    if not match:
        return None
    text = match.group(1)  # YYYYMMDD_HHMMSS, digits only.
    try:
        # The same as strptime(text, STAMP_FORMAT), several times faster over
        # thousands of files; datetime() rejects impossible dates just as well.
        naive = datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
        )
    except ValueError:
        return None
    return naive.replace(tzinfo=conf.plant_zone())


def kind_of_backup(path: Path, root: Path | None = None) -> Kind | None:
    """The kind of one of our backups: a name of ours in its kind's folder under BACKUP_DIR.

    None for anything else, such as a copy on a USB drive or another installation's file.
    """
    path = Path(path)
    try:
        folder = path.parent.resolve()
    except (OSError, RuntimeError):
        return None
    for kind in KINDS.values():
        if stamp_of(kind, path.name) is not None and folder == kind.directory(root).resolve():
            return kind
    return None


def part_of(kind: Kind, name: str) -> int:
    """1 for a whole file or the first part, N for a _partN file."""
    match = kind.name_re.match(name)
    return int(match.group(2)) if match and match.group(2) else 1


def first_part(kind: Kind, path: Path) -> Path:
    """The file that names an export: its first part."""
    match = kind.name_re.match(path.name)
    stamp = stamp_of(kind, path.name)
    if stamp is None:
        return path
    return path.with_name(kind.file_name(stamp, 1, match.group(4) or "", match.group(3)))


def backups(kind: Kind, root: Path | None = None) -> list[tuple[datetime, Path]]:
    """Our finished files of one kind (every part), oldest first; anything else is ignored."""
    folder = kind.directory(root)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for path in entries:
        stamp = stamp_of(kind, path.name)
        if stamp is not None and path.is_file():
            found.append((stamp, path))
    found.sort(key=lambda item: (item[0].replace(tzinfo=None), part_of(kind, item[1].name), item[1].name))
    return found


def exports(kind: Kind, root: Path | None = None) -> int:
    """How many backups of a kind there are, counting an export in parts once."""
    return sum(1 for _, path in backups(kind, root) if part_of(kind, path.name) == 1)


def display_str(path: Path | str) -> str:
    """A path as the guide prints it: relative to the working directory when inside it.

    Only the folder is resolved: a symbolic link is shown under its own name, not its target's.
    """
    path = Path(path)
    try:
        return str((path.parent.resolve() / path.name).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def display_strs(paths: Iterable[Path | str]) -> Iterator[str]:
    """display_str of many files, resolving each folder once instead of every path.

    For files that are no symbolic links themselves (ours, or removed ones)
    the result is the same: cleanup lists thousands of files in three folders.
    """
    cwd = Path.cwd().resolve()
    folders: dict[Path, Path] = {}
    for original in paths:
        path = Path(original)
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = path.parent.resolve()
        try:
            yield str((folder / path.name).relative_to(cwd))
        except ValueError:
            yield str(original)
