"""python manage.py backup_database: the guide's manual backup, status and cleanup,
plus verification, guarded restore, restore drills and a monitoring check."""

import sys
from argparse import ArgumentTypeError
from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.core.errors import BackupError
from backup_tasks.core.units import human_size
from backup_tasks.services import backup, cleanup
from backup_tasks.services.health import backup_health
from backup_tasks.services.status import backup_status, render_status
from backup_tasks.services.verify import verify_backups

DONE_LINES = {
    "db": "Database backed up to {path}",
    "csv": "Readings exported to CSV: {path}",
    "json": "Readings exported to JSON: {path}",
}
PERIODS = ("hourly", "daily", "weekly", "monthly")
# --verify, --restore, --drill and --check each run on their own (argparse keeps them apart).
SOLO_MODES = ("verify", "restore", "drill", "check", "history", "check_history")
SINCE_UNTIL = (
    "--since and --until go with a backup or export, as in: backup_database --type csv --since 2025-01-01"
)
# Options that go with one action only: (option, its action, the line when it comes without it).
BELONGS_TO = (
    ("since", "backup", SINCE_UNTIL),
    ("until", "backup", SINCE_UNTIL),
    ("compress", "backup", "--compress goes with a backup or export, as in: backup_database --compress zstd"),
    ("yes", "restore", "--yes goes with --restore"),
    ("at", "restore", '--at goes with --restore, as in: backup_database --restore --at "2025-03-01 14:00"'),
    ("source", "restore", "--from goes with --restore --at"),
    ("offsite", "history", "--offsite goes with --history, --check-history or --drill"),
    ("days", "cleanup", "--days goes with --cleanup, as in: backup_database --cleanup --days 7"),
    *((f"keep_{period}", "cleanup", f"--keep-{period} goes with --cleanup") for period in PERIODS),
    ("dry_run", "cleanup", "--dry-run goes with --cleanup"),
)
RESTORE_NOTE = (
    "Stop the web server and the Celery worker before restoring (for example "
    "'sudo systemctl stop smartaquarium-worker'), and start them again afterwards."
)


def plant_time(text: str) -> datetime:
    """A date or date-time in the plant's zone, for --since and --until."""
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=conf.plant_zone())
        except ValueError:
            continue
    raise ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DD HH:MM[:SS])")


class ProgressReport:
    """Progress of long exports on stderr, so stdout keeps the guide's lines.

    A terminal gets a bar redrawn in place; a log or pipe gets a plain line
    at each quarter. Short exports show nothing.
    """

    MIN_READINGS = 100_000
    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last_draw = 0.0
        self.next_quarter = 1

    def __call__(self, label: str, done: int, total: int, elapsed: float) -> None:
        if total < self.MIN_READINGS:
            return
        if done == 0:
            self.last_draw, self.next_quarter = 0.0, 1
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f"about {(total - done) / rate:,.0f} s left" if rate and done < total else "done"
        text = f"{label}: {done:,} of {total:,} readings, {rate:,.0f}/s, {left}"
        if self.tty:
            if done < total and elapsed - self.last_draw < 0.2:
                return
            self.last_draw = elapsed
            filled = self.WIDTH * done // total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(
                f"\r[{bar}] {100 * done // total:3d}% {text}\033[K", ending="\n" if done == total else ""
            )
            self.stream.flush()
        elif done * 4 >= total * self.next_quarter:
            self.stream.write(f"{25 * self.next_quarter}% {text}")
            while done * 4 >= total * self.next_quarter:
                self.next_quarter += 1


class Error(CommandError):
    """Printed by Django as 'Error: <message>': one line, no traceback."""


class Command(BaseCommand):
    # Every problem the system checks look for (backup folder, database) is
    # reported by this command in one line of its own words instead.
    requires_system_checks = []
    help = (
        "Back up the database and export readings to CSV and JSON (default: all), "
        "show the backup status, remove old backups, verify or restore backups."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def one_line_error(message):
            if not parser.called_from_command_line:
                raise Error(message)
            parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

        parser.error = one_line_error
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--type",
            choices=["all", "db", "csv", "json"],
            help="what to back up: all (default), db, csv or json",
        )
        parser.add_argument(
            "--since",
            type=plant_time,
            metavar="WHEN",
            help="exports: readings from WHEN on (plant time: YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]')",
        )
        parser.add_argument(
            "--until",
            type=plant_time,
            metavar="WHEN",
            help="exports: readings before WHEN (plant time; exclusive, so --until 2025-02-01 ends with January)",
        )
        parser.add_argument(
            "--compress",
            choices=["none", "gzip", "zstd"],
            help="compress what this run writes (default BACKUP_COMPRESSION, none)",
        )
        parser.add_argument("--status", action="store_true", help="show backup status and statistics")
        parser.add_argument("--cleanup", action="store_true", help="remove backups older than --days days")
        parser.add_argument(
            "--days",
            type=int,
            metavar="N",
            help="with --cleanup: keep N days of backups (default BACKUP_KEEP_DAYS, 30)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="with --cleanup: list what would be removed and why the rest stays",
        )
        for period in PERIODS:
            parser.add_argument(
                f"--keep-{period}",
                type=int,
                metavar="N",
                help=f"with --cleanup: keep the newest snapshot of each of the last N {period} periods "
                f"(default BACKUP_KEEP_{period.upper()}, 0 = off)",
            )
        modes = parser.add_mutually_exclusive_group()
        modes.add_argument(
            "--verify",
            nargs="*",
            metavar="FILE",
            help="check every backup (or the files given) against its checksum and content",
        )
        modes.add_argument(
            "--restore",
            metavar="FILE",
            nargs="?",
            const="",
            help="restore a database snapshot into the live database (a FILE, or --at a time from the history)",
        )
        modes.add_argument(
            "--history",
            action="store_true",
            help="list the restore points of the backup history, newest first",
        )
        modes.add_argument(
            "--drill",
            action="store_true",
            help="restore the newest snapshot into a scratch copy (a file, or a database on PostgreSQL) and check it",
        )
        modes.add_argument(
            "--check",
            action="store_true",
            help="one line for monitoring; exit 0 OK, 1 WARNING, 2 CRITICAL",
        )
        modes.add_argument(
            "--check-history",
            action="store_true",
            help="restic check of the history, reading this week's quarter of its data (--offsite: the offsite one)",
        )
        parser.add_argument("--yes", action="store_true", help="with --restore: do not ask for confirmation")
        parser.add_argument(
            "--at",
            type=plant_time,
            metavar="WHEN",
            help="with --restore: the newest restore point at or before WHEN (plant time, 'YYYY-MM-DD HH:MM')",
        )
        parser.add_argument(
            "--from",
            dest="source",
            choices=["local", "offsite"],
            help="with --restore --at: the repository to restore from (default local)",
        )
        parser.add_argument(
            "--offsite", action="store_true", help="with --history: list the offsite repository"
        )
        parser.add_argument(
            "--max-age",
            type=float,
            default=2.0,
            metavar="HOURS",
            help="with --check: the oldest the newest snapshot may be (default 2)",
        )

    def handle(self, **options):
        given = {name for name, value in options.items() if value is not None and value is not False}
        actions = self._actions(given)
        for option, action, message in BELONGS_TO:
            if (
                option in given
                and action not in actions
                and not (option == "offsite" and {"check_history", "drill"} & set(actions))
            ):
                raise Error(message)
        self._check_values(options)
        trigger = "command: " + (
            " ".join(["backup_database", *sys.argv[2:]])
            if getattr(self, "_called_from_command_line", False)
            else "backup_database (call_command)"
        )
        runs = {
            "verify": self._verify,
            "restore": self._restore,
            "drill": self._drill,
            "check": self._check,
            "history": self._history,
            "check_history": self._check_history,
            "backup": self._backup,
            "cleanup": self._cleanup,
            "status": self._status,
        }
        try:
            for action in actions:
                runs[action](options, trigger)
        except BackupError as exc:
            raise Error(str(exc)) from None

    @staticmethod
    def _actions(given: set[str]) -> list[str]:
        """What this call does, in order: one mode of its own, or backup, cleanup and status."""
        solo = [mode for mode in SOLO_MODES if mode in given]
        if solo:
            if given & {"type", "status", "cleanup"}:
                raise Error(f"--{solo[0]} runs on its own: leave out --type, --status and --cleanup")
            return solo
        # The guide's plain `backup_database` is a complete backup; --status or
        # --cleanup alone do only that, unless --type asks for a backup too.
        backup = ["backup"] if "type" in given or not given & {"status", "cleanup"} else []
        return backup + [action for action in ("cleanup", "status") if action in given]

    @staticmethod
    def _check_values(options: dict) -> None:
        since, until, days = options["since"], options["until"], options["days"]
        if since and until and since >= until:
            raise Error("--since must be before --until")
        if options["dry_run"] and options["type"]:
            raise Error("--dry-run lists what cleanup would remove: leave out --type")
        if days is not None and days < 1:
            raise Error(f"--days must be at least 1, got {days}")

    def _backup(self, options: dict, trigger: str) -> None:
        kind = options["type"] or "all"
        kinds = backup.ALL_KINDS if kind == "all" else (kind,)

        def report(result: backup.BackupResult) -> None:
            self.stdout.write(DONE_LINES[result.kind].format(path=layout.display_str(result.path)))

        backup.complete_backup(
            kinds=kinds,
            trigger=trigger,
            on_result=report,
            start=options["since"],
            end=options["until"],
            compress=options["compress"],
            progress=ProgressReport(self.stderr),
        )
        if kind == "all":
            self.stdout.write("Backup completed!")

    def _cleanup(self, options: dict, trigger: str) -> None:
        self._cleanup_files(options, trigger)
        from backup_tasks.services import history  # deferred: only with the history on

        if not history.enabled():
            return
        for where in (history.LOCAL, history.OFFSITE) if history.offsite() else (history.LOCAL,):
            plan = history.apply_retention(where=where, dry_run=options["dry_run"], trigger=trigger)
            zone = conf.plant_zone()
            verb = "Would forget" if options["dry_run"] else "Forgot"
            for point in plan.forget:
                self.stdout.write(
                    f"{verb} {where} restore point {point.short_id} ({point.time.astimezone(zone):%Y-%m-%d %H:%M:%S} {point.tag('kind')})"
                )
            for point, reasons in plan.keep:
                self.stdout.write(
                    f"Keep {where} restore point {point.short_id} ({point.time.astimezone(zone):%Y-%m-%d %H:%M:%S} {point.tag('kind')}): {', '.join(reasons)}"
                )
            self.stdout.write(
                f"History {where} ({plan.policy}): {'would forget' if options['dry_run'] else 'forgot'} "
                f"{len(plan.forget)} restore points, kept {len(plan.keep)}."
            )

    def _cleanup_files(self, options: dict, trigger: str) -> None:
        dry_run = options["dry_run"]
        keep = {f"keep_{period}": options[f"keep_{period}"] for period in PERIODS}
        result = cleanup.cleanup_old_backups(
            days_to_keep=options["days"], dry_run=dry_run, trigger=trigger, **keep
        )
        if dry_run:
            for shown in layout.display_strs(result.removed):
                self.stdout.write(f"Would remove {shown}")
            for (_, reasons), shown in zip(
                result.keeping, layout.display_strs(p for p, _ in result.keeping), strict=True
            ):
                self.stdout.write(f"Keep {shown}: {', '.join(reasons)}")
            self.stdout.write(
                f"Dry run ({result.policy}): would remove {len(result.removed)} backups "
                f"({human_size(result.freed_bytes)}), keep {result.kept}. Nothing was removed."
            )
            return
        for shown in layout.display_strs(result.removed):
            self.stdout.write(f"Removed {shown}")
        for shown in layout.display_strs(result.removed_temporary):
            self.stdout.write(f"Removed unfinished file {shown}")
        self.stdout.write(
            f"Cleanup complete ({result.policy}): removed {len(result.removed)} backups "
            f"({human_size(result.freed_bytes)} freed), kept {result.kept}."
        )

    def _verify(self, options: dict, trigger: str) -> None:
        files = options["verify"]
        report = verify_backups(paths=[Path(f) for f in files] if files else None, trigger=trigger)
        for check in report.checks:
            self.stdout.write(f"{check.status:<8} {check.path}: {check.detail}")
        self.stdout.write(report.summary())
        if not report.ok:
            raise Error(
                f"{len(report.problems)} of {len(report.checks)} backups failed verification (see above)."
            )

    def _history(self, options: dict, trigger: str) -> None:
        from backup_tasks.services import history  # deferred: only this mode talks to restic

        where = history.OFFSITE if options["offsite"] else history.LOCAL
        entries = history.history(where=where)
        if not entries:
            self.stdout.write(f"No restore points in the {where} history yet.")
            return
        self.stdout.write(f"{'Plant time':<19} {'Kind':<5} {'Size':>10} {'Readings':>12}  Where    Point")
        for entry in entries:
            size = human_size(entry.size) if entry.size is not None else "?"
            rows = f"{entry.rows:,}" if entry.rows is not None else "?"
            self.stdout.write(
                f"{entry.time:%Y-%m-%d %H:%M:%S} {entry.kind:<5} {size:>10} {rows:>12}  "
                f"{entry.where:<8} {entry.point.short_id}"
            )
        self.stdout.write(f"{len(entries)} restore points in the {where} history.")

    def _check_history(self, options: dict, trigger: str) -> None:
        from backup_tasks.services import history  # deferred: only this mode talks to restic

        where = history.OFFSITE if options["offsite"] else history.LOCAL
        result = history.check(where=where, trigger=trigger)
        self.stdout.write(
            f"History check passed: no errors in the {where} history (data read: part {result.subset})."
        )

    def _restore(self, options: dict, trigger: str) -> None:
        if not options["restore"] and not options["at"]:
            raise Error('--restore needs a FILE, or --at "YYYY-MM-DD HH:MM" to restore from the history')
        if options["restore"] and options["at"]:
            raise Error("--restore takes a FILE or --at, not both")
        if options["source"] and not options["at"]:
            raise Error("--from goes with --restore --at")
        at, yes = options["at"], options["yes"]
        path = Path(options["restore"]) if options["restore"] else None
        self.stdout.write(RESTORE_NOTE)

        def confirm(now: int, in_backup: int) -> bool:
            if yes:
                return True
            if not sys.stdin.isatty():
                raise BackupError(
                    "Refusing to restore without confirmation: run it in a terminal, or add --yes. "
                    "Nothing was restored."
                )
            what = layout.display_str(path) if path else f"the restore point at or before {at:%Y-%m-%d %H:%M}"
            self.stdout.write(
                f"This replaces the live database ({now:,} readings) with {what} "
                f"({in_backup:,} readings). A safety snapshot is taken first."
            )
            self.stdout.flush()
            return input("Type 'yes' to restore: ").strip().lower() == "yes"

        # Deferred: the Redis client and Django's migration loader load only when restoring.
        from backup_tasks.queueing.flight import running
        from backup_tasks.services.restore import restore_at, restore_snapshot

        if at is not None:
            result = restore_at(
                moment=at,
                where=options["source"] or "local",
                running_tasks=running,
                trigger=trigger,
                confirm=confirm,
            )
        else:
            result = restore_snapshot(path=path, running_tasks=running, trigger=trigger, confirm=confirm)
        self.stdout.write(
            f"Safety snapshot of the live database: {layout.display_str(result.safety_snapshot)}"
        )
        self.stdout.write(
            f"Restored {layout.display_str(result.path)}: {result.readings_before:,} readings before, "
            f"{result.readings_after:,} after."
        )

    def _drill(self, options: dict, trigger: str) -> None:
        from backup_tasks.services.restore import history_drill, restore_drill  # deferred, as in _restore

        result = restore_drill(trigger=trigger)
        self.stdout.write(
            f"Restore drill passed: {layout.display_str(result.path)} restored to a scratch copy with "
            f"{result.rows:,} readings (newest {result.newest_reading}), integrity ok, matching its record."
        )
        from backup_tasks.services import history  # deferred: only with the history on

        if history.enabled():
            for drill in history_drill(trigger=trigger, offsite=options["offsite"]):
                self.stdout.write(
                    f"Restore drill passed: {drill.path} restored to a scratch copy with {drill.rows:,} "
                    f"readings (newest {drill.newest_reading}), integrity ok, matching its record."
                )

    def _check(self, options: dict, trigger: str) -> None:
        health = backup_health(max_age_hours=options["max_age"])
        self.stdout.write(health.line)
        if health.code:
            self.stdout.flush()
            sys.exit(health.code)

    def _status(self, options: dict, trigger: str) -> None:
        report = backup_status()
        self.stdout.write(render_status(report))
        if report.database_problem:
            raise Error(report.database_problem)
