"""Which backups to keep: the guide's "keep N days", or grandfather-father-son.

GFS keeps the newest snapshot in each of the last H hours, D days, W weeks and
M months that have one. Days, weeks and months are the plant's calendar;
hours are real hours, so the hour repeated when clocks go back holds two
hourly snapshots and the hour skipped in spring holds none.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Policy:
    days: int = 30
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @property
    def gfs(self) -> bool:
        return any((self.hourly, self.daily, self.weekly, self.monthly))

    def describe(self) -> str:
        if not self.gfs:
            return f"keep {self.days} days"
        return f"keep {self.hourly} hourly, {self.daily} daily, {self.weekly} weekly, {self.monthly} monthly"


@dataclass
class Candidate:
    path: Path
    stamp: datetime  # plant-local, from the name
    mtime: float
    good: bool = True  # False: damaged or unverifiable, never counts as a kept backup
    reasons: list[str] = field(default_factory=list)

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


def real_time(stamp: datetime, mtime: float) -> datetime:
    """The UTC moment of a plant-local name stamp.

    In the hour repeated when clocks go back a stamp names two moments; the
    file's modification time (written right after) tells which one.
    """
    naive = stamp.replace(tzinfo=None)
    zone = stamp.tzinfo
    options = {naive.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    written = datetime.fromtimestamp(mtime, UTC)
    return min(options, key=lambda moment: abs((written - moment).total_seconds()))


def _buckets(candidate: Candidate, zone: ZoneInfo) -> dict[str, tuple]:
    moment = real_time(candidate.stamp, candidate.mtime)
    local = moment.astimezone(zone)
    iso = local.isocalendar()
    return {
        "hourly": (moment.year, moment.month, moment.day, moment.hour),
        "daily": (local.year, local.month, local.day),
        "weekly": (iso.year, iso.week),
        "monthly": (local.year, local.month),
    }


def plan(
    candidates: list[Candidate], policy: Policy, *, now: datetime, zone: ZoneInfo, gfs: bool
) -> list[Candidate]:
    """Give each candidate its reasons to stay (none: remove it). Returns them newest first.

    `gfs` says whether this kind follows the GFS counts (snapshots) or only the
    days rule (exports, which are pieces of history rather than copies of it).
    """
    ordered = sorted(candidates, key=lambda c: real_time(c.stamp, c.mtime), reverse=True)
    if not (gfs and policy.gfs):
        cutoff = now - timedelta(days=policy.days)
        for candidate in ordered:
            if candidate.stamp >= cutoff:
                candidate.reasons.append(f"newer than {policy.days} days")
        return ordered
    for rule in ("hourly", "daily", "weekly", "monthly"):
        wanted = getattr(policy, rule)
        seen: list[tuple] = []
        for candidate in ordered:
            if len(seen) >= wanted:
                break
            if not candidate.good:
                continue
            bucket = _buckets(candidate, zone)[rule]
            if bucket not in seen:
                seen.append(bucket)
                candidate.reasons.append(f"{rule} {len(seen)}/{wanted}")
    # Damaged files stay for inspection while they are recent, but never fill a slot.
    cutoff = now - timedelta(days=policy.days)
    for candidate in ordered:
        if not candidate.good and candidate.stamp >= cutoff and not candidate.reasons:
            candidate.reasons.append(f"damaged, kept {policy.days} days for inspection")
    return ordered


def protect_newest_good(ordered: list[Candidate]) -> None:
    """Never remove the newest verified snapshot, whatever the policy says."""
    for candidate in ordered:
        if candidate.good:
            if not candidate.keep:
                candidate.reasons.append("newest verified snapshot")
            return
