"""The backup history: every run's verified files as restore points in restic repositories.

The local repository (BACKUP_REPOSITORY) gets each run's files with their
.sha256, tagged with kind, run and schedule slot; the offsite one
(BACKUP_OFFSITE_REPOSITORY) gets copies of them. Which points stay is decided
by our own planner (core.retention), and restic forgets them by id. Without
restic (or with BACKUP_REPOSITORY=off) there is no history and every backup
works as before.
"""

import contextvars
import random
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.utils import timezone

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.core.retention import Candidate, Policy, plan, protect_newest_good
from backup_tasks.models import BackupRun
from backup_tasks.services.runs import recorded
from backup_tasks.storage import repository
from backup_tasks.storage.checksums import SUFFIX, sidecar
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.repository import Point, Repository
from backup_tasks.storage.safefile import disk_usage

# The schedule slot of the job running now (set by the Celery door), tagged on its points.
current_slot: contextvars.ContextVar[str | None] = contextvars.ContextVar("history_slot", default=None)

LOCAL, OFFSITE = "local", "offsite"
# restic check reads 1/CHECK_PARTS of the packs a week, in turn: every pack within CHECK_PARTS weeks.
CHECK_PARTS = 4


def why_off() -> str | None:
    """Why there is no history, in one line; None when it is on."""
    if conf.repository_location() is None:
        return "The backup history is off (BACKUP_REPOSITORY=off): only plain files are kept."
    return repository.unavailable()


def enabled() -> bool:
    return why_off() is None


def _cache() -> Path:
    return conf.backup_dir() / ".restic-cache"


def local() -> Repository:
    return Repository(conf.repository_location() or "", conf.repository_key_file(), cache_dir=_cache())


def offsite() -> Repository | None:
    location = conf.offsite_location()
    if not location:
        return None
    return Repository(
        location, conf.repository_key_file(), cache_dir=_cache(), max_seconds=conf.offsite_timeout_seconds()
    )


def repository_named(where: str) -> Repository:
    if where == OFFSITE:
        remote = offsite()
        if remote is None:
            raise BackupError("No offsite repository is set: set BACKUP_OFFSITE_REPOSITORY.")
        return remote
    return local()


@contextmanager
def working() -> Iterator[None]:
    """Hold the history for one process of ours (backup, copy, forget, prune, check)."""
    with repository.exclusive(conf.backup_dir() / ".repository.lock"):
        yield


def _unlocked(repo: Repository, action):
    """Run action; when a lock blocks it, let restic remove stale locks (never live ones), try once more."""
    try:
        return action()
    except repository.Locked:
        run_logger().warning("The history %s is locked: removing stale locks and trying again", repo.shown)
        repo.unlock()
        return action()


# -- every run -------------------------------------------------------------------


@dataclass
class Stored:
    snapshot_id: str
    data_added: int
    seconds: float

    def to_dict(self) -> dict:
        return {"snapshot_id": self.snapshot_id, "data_added": self.data_added, "seconds": self.seconds}


def store(
    kind: layout.Kind, files: Sequence[Path], *, when: datetime, run_id: int | None, rows: int
) -> Stored | None:
    """Put a run's verified files and their checksums into the local repository; None: history off."""
    if not enabled():
        return None
    began = time.monotonic()
    repo = local()
    folder = files[0].parent
    names = []
    for path in files:
        names += [path.name, sidecar(path).name]
    tags = [f"kind:{kind.key}", f"run:{run_id or 0}", f"rows:{rows}"]
    tags.append(f"size:{sum(p.stat().st_size for p in files)}")
    if slot := current_slot.get():
        tags.append(f"slot:{slot.replace(',', ' ')}")
    with working():
        repo.open(create=True)
        added = _unlocked(
            repo,
            lambda: repo.backup(folder, names, tags=tags, when=when, host=socket.gethostname()),
        )
    stored = Stored(added.snapshot_id, added.data_added, round(time.monotonic() - began, 3))
    run_logger().info(
        "History: %s stored as restore point %s in %s (%s bytes added, %.2f s)",
        kind.label,
        added.snapshot_id,
        repo.shown,
        f"{added.data_added:,}",
        stored.seconds,
    )
    return stored


def thin_plain(*, root: Path | None = None, alias: str = "default") -> list[Path]:
    """Keep only the newest BACKUP_KEEP_PLAIN plain snapshot files once older ones are in the history.

    A file goes only when a successful run recorded it with its restore point.
    """
    if not enabled():
        return []
    snapshots = layout.backups(layout.DB, root)
    keep = conf.keep_plain()
    removed = []
    for _, path in snapshots[:-keep] if len(snapshots) > keep else []:
        record = BackupRun.objects.using(alias).last_success_for(path)
        if record is None or not (record.details or {}).get("history", {}).get("snapshot_id"):
            continue
        path.unlink(missing_ok=True)
        sidecar(path).unlink(missing_ok=True)
        removed.append(path)
    if removed:
        run_logger().info(
            "History: removed %d plain snapshot files kept in the history (BACKUP_KEEP_PLAIN=%d)",
            len(removed),
            keep,
        )
    return removed


# -- offsite -----------------------------------------------------------------------


@dataclass
class Copied:
    ok: bool
    points: list[str] = field(default_factory=list)
    error: str = ""
    at: str = ""

    def to_dict(self) -> dict:
        return {"ok": self.ok, "points": self.points, "error": self.error, "at": self.at}


def copy_offsite() -> Copied | None:
    """Copy the restore points the offsite repository lacks; never raises (the local backup stands)."""
    remote = offsite()
    if remote is None or not enabled():
        return None
    at = timezone.now().isoformat()
    try:
        with working():
            source = local()
            source.open(create=True)
            remote.open(create=True, like=source)
            copied = _unlocked(
                remote, lambda: remote.copy_from(source, timeout=conf.offsite_timeout_seconds())
            )
    except BackupError as exc:
        run_logger().warning(
            "History: the offsite copy to %s failed, retried next run: %s", remote.shown, exc
        )
        return Copied(ok=False, error=str(exc), at=at)
    run_logger().info("History: %d restore points copied to %s", len(copied), remote.shown)
    return Copied(ok=True, points=copied, at=at)


def last_offsite_copy(alias: str = "default") -> datetime | None:
    """When the offsite repository last caught up with everything."""
    run = (
        BackupRun.objects.using(alias)
        .filter(details__offsite__ok=True)
        .order_by("-finished_at", "-id")
        .only("details")
        .first()
    )
    return datetime.fromisoformat(run.details["offsite"]["at"]) if run else None


# -- listing and fetching ------------------------------------------------------------


@dataclass
class Entry:
    time: datetime  # plant time
    kind: str
    size: int | None
    rows: int | None
    where: str
    point: Point


def _key(point: Point) -> tuple:
    return (point.time.replace(microsecond=0), point.tag("kind"), point.tag("run"))


def history(*, where: str = LOCAL) -> list[Entry]:
    """Restore points, newest first, and where each is (local, offsite or both)."""
    if why := why_off():
        raise BackupError(why)
    zone = conf.plant_zone()
    main = repository_named(where)
    main.open(create=False)
    points = main.points()
    other_keys: set = set()
    other = offsite() if where == LOCAL else local()
    if other is not None:
        try:
            other.open(create=False)
            other_keys = {_key(p) for p in other.points()}
        except BackupError:
            other_keys = set()
    entries = []
    for point in reversed(points):
        size, rows = point.tag("size"), point.tag("rows")
        entries.append(
            Entry(
                time=point.time.astimezone(zone),
                kind=point.tag("kind") or "?",
                size=int(size) if size and size.isdigit() else None,
                rows=int(rows) if rows and rows.isdigit() else None,
                where="both" if _key(point) in other_keys else where,
                point=point,
            )
        )
    return entries


def point_at(moment: datetime, *, where: str = LOCAL, kind: str = "db") -> tuple[Repository, Point]:
    """The newest restore point of a kind at or before moment."""
    if why := why_off():
        raise BackupError(why)
    repo = repository_named(where)
    repo.open(create=False)
    points = [p for p in repo.points(tags=[f"kind:{kind}"]) if p.time <= moment.astimezone(UTC)]
    if not points:
        shown = moment.astimezone(conf.plant_zone()).strftime("%Y-%m-%d %H:%M")
        raise BackupError(
            f"No database restore point at or before {shown} in the {where} history: "
            "see backup_database --history. Nothing was restored."
        )
    return repo, points[-1]


def fetch(repo: Repository, point: Point, folder: Path) -> Path:
    """Write a restore point's snapshot file and its .sha256 into folder; the snapshot's path."""
    files = [path for path, _ in repo.files(point.id)]
    main = [p for p in files if not p.endswith(SUFFIX)]
    if len(main) != 1:
        raise BackupError(
            f"Restore point {point.short_id} holds {len(main)} files instead of one snapshot: "
            "pick another point. Nothing was restored."
        )
    name = main[0].rsplit("/", 1)[-1]
    target = folder / name
    repo.dump(point.id, main[0], target)
    if f"{main[0]}{SUFFIX}" in files:
        repo.dump(point.id, f"{main[0]}{SUFFIX}", folder / f"{name}{SUFFIX}")
    return target


# -- retention ------------------------------------------------------------------------


def policy(where: str = LOCAL) -> Policy:
    """Every hourly point for BACKUP_KEEP_DAYS days, then daily, weekly and monthly ones."""
    prefix = "OFFSITE" if where == OFFSITE else "HISTORY"
    days = conf.keep_days()
    return Policy(
        days=days,
        hourly=days * 24,
        daily=conf.history_keep(prefix, "DAILY"),
        weekly=conf.history_keep(prefix, "WEEKLY"),
        monthly=conf.history_keep(prefix, "MONTHLY"),
    )


@dataclass
class Plan:
    where: str
    policy: str
    keep: list[tuple[Point, list[str]]]
    forget: list[Point]


def retention_plan(points: list[Point], rules: Policy, *, now: datetime, where: str = LOCAL) -> Plan:
    """Which points stay, by our planner: GFS for database snapshots, the days rule for exports."""
    zone = conf.plant_zone()
    keep: list[tuple[Point, list[str]]] = []
    forget: list[Point] = []
    by_id = {p.id: p for p in points}
    for key in layout.KINDS:
        candidates = [
            Candidate(path=Path(p.id), stamp=p.time.astimezone(zone), mtime=p.time.timestamp())
            for p in points
            if p.tag("kind") == key
        ]
        ordered = plan(candidates, rules, now=now, zone=zone, gfs=key == "db")
        protect_newest_good(ordered)
        for candidate in ordered:
            point = by_id[str(candidate.path)]
            if candidate.keep:
                keep.append((point, candidate.reasons))
            else:
                forget.append(point)
    return Plan(where, rules.describe(), keep, forget)


def apply_retention(
    *, where: str = LOCAL, dry_run: bool = False, now: datetime | None = None, trigger: str = ""
) -> Plan:
    """Forget by id what the planner does not keep, then prune (not in a dry run)."""
    if why := why_off():
        raise BackupError(why)
    if dry_run:
        return _retention(where, dry_run=True, now=now)
    with recorded(BackupRun.Kind.HISTORY_RETENTION, trigger=trigger) as run:
        result = _retention(where, dry_run=False, now=now)
        run.file = repository_named(where).shown
        run.details = {"where": where, "forgot": [p.id for p in result.forget], "kept": len(result.keep)}
    return result


def _retention(where: str, *, dry_run: bool, now: datetime | None) -> Plan:
    repo = repository_named(where)
    with working():
        repo.open(create=False)
        result = retention_plan(repo.points(), policy(where), now=now or timezone.now(), where=where)
        if not dry_run and result.forget:
            _unlocked(repo, lambda: repo.forget([p.id for p in result.forget]))
            _unlocked(repo, repo.prune)
            run_logger().info(
                "History: forgot %d restore points in %s and pruned", len(result.forget), repo.shown
            )
    return result


# -- checks ---------------------------------------------------------------------------


def check_subset(now: datetime | None = None) -> str:
    """This week's part of the packs: n/CHECK_PARTS, turning over week by week."""
    week = (now or timezone.now()).isocalendar().week
    return f"{week % CHECK_PARTS + 1}/{CHECK_PARTS}"


def check(*, where: str = LOCAL, subset: str | None = None, trigger: str = "") -> repository.CheckResult:
    """restic check reading this week's part of the packs; a failed check is a failed run (mailed)."""
    if why := why_off():
        raise BackupError(why)
    repo = repository_named(where)
    part = subset if subset is not None else check_subset()
    with recorded(BackupRun.Kind.HISTORY_CHECK, trigger=trigger) as run:
        run.file = repo.shown
        with working():
            repo.open(create=False)
            result = _unlocked(repo, lambda: repo.check(part))
        run.details = {"where": where, "subset": part, "problems": result.problems[:20]}
        if not result.ok:
            raise BackupError(
                f"The {where} history {repo.shown} failed its check (packs {part}): "
                f"{'; '.join(result.problems[:3])}. Run 'restic check --read-data' on it and restore "
                "damaged data from the other repository."
            )
    return result


def drill_points(*, where: str = LOCAL) -> list[Point]:
    """The newest database point and one random older one, for the weekly drill."""
    repo = repository_named(where)
    repo.open(create=False)
    points = repo.points(tags=["kind:db"])
    if not points:
        return []
    chosen = [points[-1]]
    if len(points) > 1:
        chosen.append(random.choice(points[:-1]))
    return chosen


# -- figures ------------------------------------------------------------------------


@dataclass
class Figures:
    location: str
    points: int
    oldest: datetime | None
    newest: datetime | None
    logical_bytes: int
    stored_bytes: int
    disk_bytes: int | None
    offsite: str | None
    offsite_lag_hours: float | None
    days_until_full: float | None = None


def figures(*, alias: str = "default") -> Figures:
    repo = local()
    zone = conf.plant_zone()
    repo.open(create=False)
    points = repo.points()
    stats = repo.stats()
    remote = offsite()
    last = last_offsite_copy(alias)
    lag = (timezone.now() - last).total_seconds() / 3600 if last else None
    return Figures(
        location=repo.shown,
        points=len(points),
        oldest=points[0].time.astimezone(zone) if points else None,
        newest=points[-1].time.astimezone(zone) if points else None,
        logical_bytes=stats.total_size,
        stored_bytes=stats.stored_size,
        disk_bytes=repo.disk_bytes(),
        offsite=remote.shown if remote else None,
        offsite_lag_hours=lag,
        days_until_full=days_until_full(alias=alias),
    )


# Growth is measured over at least this long: the first restore point holds the whole
# database, and a forecast from a few hours of points would be noise.
FORECAST_SPAN = timedelta(days=1)


def days_until_full(*, alias: str = "default", now: datetime | None = None) -> float | None:
    """At the growth of the last 7 days, days until the backup disk is full; None until a day is seen.

    Growth is what the history took in after the window's first job (that job's points
    are the starting size, not growth), before restic's compression: a forecast that
    errs early.
    """
    usage = disk_usage(conf.backup_dir())
    if usage is None:
        return None
    now = now or timezone.now()
    runs = BackupRun.objects.using(alias).succeeded().filter(started_at__gte=now - timedelta(days=7))
    added: list[tuple[datetime, int]] = []
    for started, details in runs.values_list("started_at", "details"):
        stored = (details or {}).get("history")
        if isinstance(stored, dict):
            added.append((started, int(stored.get("data_added") or 0)))
    if not added:
        return None
    first = min(started for started, _ in added)
    if now - first < FORECAST_SPAN:
        return None
    # The first job's files are written within a minute of each other.
    growth = sum(size for started, size in added if started - first > timedelta(minutes=1))
    per_day = growth / ((now - first).total_seconds() / 86400)
    return usage[1] / per_day if per_day else None
