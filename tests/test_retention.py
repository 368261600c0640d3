"""Grandfather-father-son retention in the plant's calendar, correct across DST."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from backup_tasks.core.retention import Candidate, Policy, plan, protect_newest_good, real_time

BERLIN = ZoneInfo("Europe/Berlin")


def hourly_snapshots(first_utc: datetime, hours: int) -> list[Candidate]:
    """One snapshot per real hour, named in Berlin time as the service names them."""
    candidates, names = [], set()
    for i in range(hours):
        moment = first_utc + timedelta(hours=i)
        local = moment.astimezone(BERLIN).replace(fold=0)
        stamp = local.replace(tzinfo=BERLIN)
        while stamp.strftime("%Y%m%d_%H%M%S") in names:  # the next-second rule for a repeated name
            stamp += timedelta(seconds=1)
        names.add(stamp.strftime("%Y%m%d_%H%M%S"))
        candidates.append(
            Candidate(Path(f"db_backup_{stamp:%Y%m%d_%H%M%S}.sqlite3"), stamp, moment.timestamp() + 3)
        )
    return candidates


def kept(candidates) -> list[str]:
    return sorted(
        c.path.name.removeprefix("db_backup_").removesuffix(".sqlite3") for c in candidates if c.keep
    )


def test_the_repeated_hour_in_october_holds_two_real_hourly_snapshots():
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; local 02:xx happens twice.
    snapshots = hourly_snapshots(datetime(2026, 10, 24, 22, 0, tzinfo=UTC), 6)
    names = [c.path.name for c in snapshots]
    assert names == [
        "db_backup_20261025_000000.sqlite3",
        "db_backup_20261025_010000.sqlite3",
        "db_backup_20261025_020000.sqlite3",
        "db_backup_20261025_020001.sqlite3",
        "db_backup_20261025_030000.sqlite3",
        "db_backup_20261025_040000.sqlite3",
    ]
    now = datetime(2026, 10, 25, 4, 30, tzinfo=BERLIN)

    ordered = plan(snapshots, Policy(hourly=4), now=now, zone=BERLIN, gfs=True)

    assert kept(ordered) == ["20261025_020000", "20261025_020001", "20261025_030000", "20261025_040000"]
    assert real_time(snapshots[2].stamp, snapshots[2].mtime) == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    assert real_time(snapshots[3].stamp, snapshots[3].mtime) == datetime(2026, 10, 25, 1, 0, 1, tzinfo=UTC)


def test_daily_buckets_follow_the_plant_calendar_across_a_dst_week():
    # A week of hourly snapshots around the October change, Wednesday to Tuesday.
    snapshots = hourly_snapshots(datetime(2026, 10, 20, 22, 0, tzinfo=UTC), 7 * 24 + 1)
    now = datetime(2026, 10, 27, 23, 30, tzinfo=BERLIN)

    ordered = plan(snapshots, Policy(hourly=3, daily=7, weekly=2, monthly=1), now=now, zone=BERLIN, gfs=True)

    assert kept(ordered) == [
        "20261021_230000",  # daily 7/7: Wednesday's last
        "20261022_230000",
        "20261023_230000",
        "20261024_230000",
        "20261025_230000",  # the 25-hour Sunday has one daily, and is week 43's newest
        "20261026_230000",
        "20261027_210000",  # hourly
        "20261027_220000",
        "20261027_230000",  # hourly 1/3, daily 1/7, weekly 1/2, monthly 1/1
    ]
    newest = ordered[0]
    assert newest.reasons == ["hourly 1/3", "daily 1/7", "weekly 1/2", "monthly 1/1"]
    sunday = next(c for c in ordered if c.path.name == "db_backup_20261025_230000.sqlite3")
    assert sunday.reasons == ["daily 3/7", "weekly 2/2"]


def test_the_missing_hour_in_march_costs_no_daily_snapshot():
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; that day has 23 hours.
    snapshots = hourly_snapshots(datetime(2026, 3, 27, 23, 0, tzinfo=UTC), 24 + 23 + 24)
    assert not any("20260329_02" in c.path.name for c in snapshots)
    now = datetime(2026, 3, 30, 23, 30, tzinfo=BERLIN)

    ordered = plan(snapshots, Policy(daily=3), now=now, zone=BERLIN, gfs=True)

    assert kept(ordered) == ["20260328_230000", "20260329_230000", "20260330_230000"]


def test_a_damaged_snapshot_never_fills_a_slot_and_the_newest_good_one_stays():
    snapshots = hourly_snapshots(datetime(2026, 1, 10, 0, 0, tzinfo=UTC), 5)
    snapshots[-1].good = False  # newest is damaged
    now = datetime(2026, 3, 1, tzinfo=BERLIN)  # long after: the days rule keeps nothing

    ordered = plan(snapshots, Policy(days=30, hourly=1), now=now, zone=BERLIN, gfs=True)
    protect_newest_good(ordered)

    by_name = {c.path.name: c.reasons for c in ordered}
    assert by_name["db_backup_20260110_050000.sqlite3"] == []  # damaged and old: removed
    assert by_name["db_backup_20260110_040000.sqlite3"] == ["hourly 1/1"]
    assert [name for name, reasons in by_name.items() if reasons] == ["db_backup_20260110_040000.sqlite3"]


def test_the_days_rule_keeps_the_newest_verified_snapshot_even_when_all_are_old():
    snapshots = hourly_snapshots(datetime(2026, 1, 10, 0, 0, tzinfo=UTC), 3)
    ordered = plan(snapshots, Policy(days=30), now=datetime(2026, 6, 1, tzinfo=BERLIN), zone=BERLIN, gfs=True)
    protect_newest_good(ordered)
    assert kept(ordered) == ["20260110_030000"]
    assert ordered[0].reasons == ["newest verified snapshot"]
