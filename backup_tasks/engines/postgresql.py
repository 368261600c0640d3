"""PostgreSQL: pg_dump snapshots checked by pg_restore, exports streamed by COPY and formatted in SQL.

The client tools run as subprocesses with an argument list; the password goes
to them in PGPASSWORD, never in argv.
"""

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from django.db import connections

from backup_tasks.core import errors
from backup_tasks.engines.base import DamagedCopy, Engine, RestoreFailed, Snapshot
from readings.models import Reading

MAGIC = b"PGDMP"  # pg_dump's custom format
SQLITE_HEADER = b"SQLite format 3\x00"
VERSIONED_BIN = Path("/usr/lib/postgresql")  # Debian keeps each major version's tools here
TOOLS_HINT = (
    "install the PostgreSQL client tools (Debian/Raspberry Pi OS: sudo apt-get install postgresql-client)"
)
# The tables a dump of this application must hold.
NEEDED_TABLES = (Reading._meta.db_table, "django_migrations")
LOCK_WAIT_S = 10.0  # how long a restore waits for other sessions' locks before it gives up

# Each reading as one finished line, formatted by the server: the same bytes as
# the SQLite engine's printf. round() on numeric rounds half away from zero;
# the float goes to numeric with 15 significant digits, as SQLite's printf
# reads it. A small negative value that rounds to zero keeps its sign ("-0.00")
# as printf writes it. pid_output::text with extra_float_digits = 0 is %.15g.
_TWO = "(CASE WHEN {c} < 0 AND round({c}::numeric, 2) = 0 THEN '-0.00' ELSE round({c}::numeric, 2)::text END)"
_WHEN = "to_char(timestamp AT TIME ZONE %(zone)s, 'YYYY-MM-DD HH24:MI:SS')"
_NUMBERS = {
    "water": _TWO.format(c="water_temperature"),
    "air": _TWO.format(c="air_temperature"),
    "humidity": _TWO.format(c="humidity"),
    "setpoint": _TWO.format(c="setpoint"),
    "pid": "pid_output::text",
}
LINE_SQL = {
    "csv": "{water} || ',' || {air} || ',' || {humidity} || ',' || {setpoint} || ',' || {pid} || ',' || "
    + _WHEN,
    "json": """'{{"water_temperature":' || {water} || ',"air_temperature":' || {air} || ',"humidity":' ||"""
    """ {humidity} || ',"setpoint":' || {setpoint} || ',"pid_output":' || {pid} || ',"timestamp":"' || """
    + _WHEN
    + """ || '"}}'""",
}
LINE_SQL = {key: sql.format(**_NUMBERS) for key, sql in LINE_SQL.items()}


def _major(version_text: str) -> int | None:
    match = re.search(r"(\d+)(?:\.\d+)?", version_text)
    return int(match.group(1)) if match else None


def find_tool(name: str) -> Path | None:
    """The newest installed major version's pg_dump, pg_restore, ...; else the one on PATH.

    Debian keeps them in /usr/lib/postgresql/<major>/bin, not on PATH.
    """
    versions = []
    if VERSIONED_BIN.is_dir():
        for entry in VERSIONED_BIN.iterdir():
            candidate = entry / "bin" / name
            if entry.name.isdigit() and os.access(candidate, os.X_OK):
                versions.append((int(entry.name), candidate))
    if versions:
        return max(versions)[1]
    found = shutil.which(name)
    return Path(found) if found else None


def _last_line(text: str) -> str:
    """The message of a tool's or the server's error on one line (the first 'error:' one, when there is one)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if ": error: " in line:
            return line.split(": error: ", 1)[1]
    return lines[-1] if lines else "no message"


class PostgreSQLEngine(Engine):
    snapshot_suffix = ".dump"
    tools_hint = TOOLS_HINT[0].upper() + TOOLS_HINT[1:] + "."

    # -- connecting -----------------------------------------------------------

    @property
    def database(self) -> str:
        return str(self.settings_dict["NAME"])

    def where(self) -> str:
        host = self.settings_dict.get("HOST") or "local socket"
        port = self.settings_dict.get("PORT") or 5432
        return f"database {self.database} on {host}:{port}"

    def _params(self, database: str | None = None) -> dict:
        params = {"dbname": database or self.database, "connect_timeout": 10}
        for key, setting in (("user", "USER"), ("password", "PASSWORD"), ("host", "HOST"), ("port", "PORT")):
            if self.settings_dict.get(setting):
                params[key] = str(self.settings_dict[setting])
        for key, value in self.settings_dict.get("OPTIONS", {}).items():
            if key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "target_session_attrs"):
                params[key] = str(value)
        return params

    def connect(self, database: str | None = None, *, autocommit: bool = False) -> psycopg.Connection:
        try:
            return psycopg.connect(**self._params(database), autocommit=autocommit)
        except psycopg.Error as exc:
            raise errors.DatabaseMissing(
                f"Cannot connect to the PostgreSQL {self.where()}: {_last_line(str(exc))}. "
                "Check DATABASE_URL and that the server runs."
            ) from None

    def tool_env(self, database: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of pg_dump and pg_restore: where to connect, and the password (never argv)."""
        params = self._params(database)
        env = dict(os.environ)  # PGPASSFILE and the like of the installation stay
        names = {
            "dbname": "PGDATABASE",
            "user": "PGUSER",
            "password": "PGPASSWORD",
            "host": "PGHOST",
            "port": "PGPORT",
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "sslcert": "PGSSLCERT",
            "sslkey": "PGSSLKEY",
            "options": "PGOPTIONS",
            "connect_timeout": "PGCONNECT_TIMEOUT",
        }
        for key, value in params.items():
            if key in names:
                env[names[key]] = str(value)
        # Time stamps as text in UTC: text order is then time order (verify_copy).
        env["PGTZ"] = "UTC"
        env.update(extra)
        return env

    def tool(self, name: str) -> Path:
        path = find_tool(name)
        if path is None:
            raise errors.BackupError(f"{name} is missing: {TOOLS_HINT}.")
        return path

    def _run_tool(self, args: list, *, what: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(arg) for arg in args],
            env=env or self.tool_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )

    def server_major(self, conn: psycopg.Connection) -> int:
        return conn.info.server_version // 10000  # known from connecting: no query, no transaction

    def check_dump_version(self, conn: psycopg.Connection) -> Path:
        """pg_dump, when it is at least as new as the server (an older one refuses or misses things)."""
        pg_dump = self.tool("pg_dump")
        version = subprocess.run([str(pg_dump), "--version"], capture_output=True, text=True).stdout
        client, server = _major(version.split(")")[-1]), self.server_major(conn)
        if client is not None and client < server:
            raise errors.BackupError(
                f"pg_dump {client} is older than the PostgreSQL {server} server: install "
                f"postgresql-client-{server} (pg_dump must be at least the server's version)."
            )
        return pg_dump

    # -- what the engine interface asks ---------------------------------------

    def missing_tools(self) -> list[str]:
        return [name for name in ("pg_dump", "pg_restore") if find_tool(name) is None]

    def check_available(self) -> None:
        conn = self.connect()
        try:
            present = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [Reading._meta.db_table]).fetchone()[
                0
            ]
        finally:
            conn.close()
        if not present:
            raise errors.CorruptDatabase(
                f"The PostgreSQL {self.where()} has no readings table: is DATABASE_URL the smartAquarium "
                "database? Run 'python manage.py migrate' for a new one."
            )

    def size_bytes(self) -> int:
        try:
            conn = self.connect()
        except errors.BackupError:
            return 0
        try:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        finally:
            conn.close()

    def explain(self, exc: Exception) -> str:
        return _last_line(str(exc))

    def count_readings(self) -> int:
        conn = self.connect()
        try:
            return _readings_in(conn)[0]
        except psycopg.errors.UndefinedTable:
            return 0
        finally:
            conn.close()

    def snapshot(self, target: Path, *, with_sha256: bool = False, for_history: bool = False) -> Snapshot:
        """pg_dump --format=custom under an exported snapshot; the readings counted in that same snapshot."""
        conn = self.connect()
        try:
            pg_dump = self.check_dump_version(conn)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            exported = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            try:
                rows, newest = _readings_in(conn)
            except psycopg.errors.UndefinedTable:
                raise errors.CorruptDatabase(
                    f"The PostgreSQL {self.where()} has no readings table: run 'python manage.py migrate'."
                ) from None
            digest = self._dump_and_read(
                # -Z0 for the history: restic compresses, and finds what the last dump shared.
                [
                    pg_dump,
                    "--format=custom",
                    *(["--compress=0"] if for_history else []),
                    f"--snapshot={exported}",
                    "--no-password",
                ],
                target,
            )
            conn.rollback()
        finally:
            conn.close()
        try:
            self._check_toc(self._toc(target))
        except DamagedCopy as exc:
            raise errors.CopyFailed(
                f"The snapshot of the PostgreSQL {self.where()} failed its check ({exc}): "
                "run the snapshot again. Earlier backups were not touched."
            ) from None
        return Snapshot(rows, newest, digest if with_sha256 else None)

    def _dump_and_read(self, dump_args: list, target: Path) -> str:
        """pg_dump into target while pg_restore -f /dev/null reads every byte of the same stream.

        The bytes written, hashed and read back are the same bytes, taken from
        pg_dump's output in one pass: the full read costs no second pass over
        the file, and runs on the other core while pg_dump works. Returns the
        SHA-256 of the file.
        """
        digest = hashlib.sha256()
        env = self.tool_env()
        with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as read_err:
            dumper = subprocess.Popen(
                [str(arg) for arg in dump_args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=dump_err,
            )
            reader = subprocess.Popen(
                [str(self.tool("pg_restore")), "--file=/dev/null"],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=read_err,
            )
            feeding = True
            try:
                with target.open("wb") as out:
                    while block := dumper.stdout.read(1 << 20):
                        out.write(block)
                        digest.update(block)
                        if feeding:
                            try:
                                reader.stdin.write(block)
                            except BrokenPipeError:
                                feeding = False  # it stopped early: its exit status says why
            except OSError as exc:
                dumper.kill()
                reader.kill()
                raise errors.DiskFull(
                    f"Could not write the snapshot in {target.parent} ({exc.strerror}): free up space on the "
                    "backup disk or run 'python manage.py backup_database --cleanup'."
                ) from None
            finally:
                dumper.stdout.close()
                with contextlib.suppress(BrokenPipeError):
                    reader.stdin.close()
                dumper.wait()
                reader.wait()
            if dumper.returncode != 0:
                dump_err.seek(0)
                raise self._tool_failed("pg_dump", dump_err.read().decode(errors="replace"), target)
            if reader.returncode != 0:
                read_err.seek(0)
                raise errors.CopyFailed(
                    f"The snapshot of the PostgreSQL {self.where()} failed its check (its data does not read "
                    f"back: {_last_line(read_err.read().decode(errors='replace'))}): run the snapshot again. "
                    "Earlier backups were not touched."
                )
        return digest.hexdigest()

    def _check_toc(self, toc: str) -> None:
        for table in NEEDED_TABLES:
            if not re.search(rf"^\d+; \d+ \d+ TABLE DATA \S+ {table} ", toc, re.MULTILINE):
                raise DamagedCopy(f"not a smartAquarium database: its table of contents has no {table}")

    def _tool_failed(self, name: str, stderr: str, target: Path | None = None) -> errors.BackupError:
        message = _last_line(stderr)
        if target is not None and ("No space left" in message or "could not write" in message):
            return errors.DiskFull(
                f"Could not write the snapshot in {target.parent} ({message}): free up space on the backup "
                "disk or run 'python manage.py backup_database --cleanup'."
            )
        return errors.BackupError(f"{name} failed on the PostgreSQL {self.where()}: {message}")

    def _toc(self, path: Path) -> str:
        """pg_restore --list of a dump: its table of contents, or DamagedCopy."""
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
        if head.startswith(SQLITE_HEADER):
            raise DamagedCopy(
                "a SQLite database file, not a PostgreSQL dump: this installation runs on PostgreSQL "
                "(see README, 'Moving a SQLite plant to PostgreSQL')"
            )
        if not head.startswith(MAGIC):
            raise DamagedCopy("not a PostgreSQL dump in pg_dump's custom format")
        listed = self._run_tool([self.tool("pg_restore"), "--list", path], what="check")
        if listed.returncode != 0:
            raise DamagedCopy(f"pg_restore cannot read its table of contents: {_last_line(listed.stderr)}")
        return listed.stdout

    def verify_copy(self, path: Path) -> Snapshot:
        """The whole dump read by pg_restore, its readings counted on the way."""
        self._check_toc(self._toc(path))
        process = subprocess.Popen(
            [str(self.tool("pg_restore")), "--file=-", str(path)],
            env=self.tool_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            rows, newest = _count_copy(process.stdout, Reading._meta.db_table)
        finally:
            process.stdout.close()
            stderr = process.stderr.read().decode(errors="replace")
            process.wait()
        if process.returncode != 0:
            raise DamagedCopy(f"its data does not read back: {_last_line(stderr)}")
        return Snapshot(rows, newest)

    def applied_migrations(self, path: Path) -> set[tuple[str, str]]:
        toc = self._toc(path)
        if not re.search(r"^\d+; \d+ \d+ TABLE DATA \S+ django_migrations ", toc, re.MULTILINE):
            raise DamagedCopy("it has no migration history")
        read = subprocess.run(
            [str(self.tool("pg_restore")), "--data-only", "--table=django_migrations", "--file=-", str(path)],
            env=self.tool_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        if read.returncode != 0:
            raise DamagedCopy(f"its migration history does not read back: {_last_line(read.stderr.decode())}")
        applied = set()
        for fields in _copy_rows(read.stdout.decode().splitlines(), "django_migrations"):
            applied.add((fields[1], fields[2]))
        return applied

    # -- restore and drill ----------------------------------------------------

    def blocking_sessions(self) -> list[str]:
        """Sessions holding a lock on a table of this database, which DROP TABLE would wait for."""
        conn = self.connect(autocommit=True)
        try:
            rows = conn.execute(
                """
                SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),
                       coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''),
                       string_agg(DISTINCT l.relation::regclass::text, ', ')
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.relation IS NOT NULL AND l.granted AND l.pid <> pg_backend_pid()
                GROUP BY 1, 2, 3, 4, 5 ORDER BY 1
                """
            ).fetchall()
        finally:
            conn.close()
        return [
            f"pid {pid} ({user}{', ' + app if app else ''} from {addr}, {state}) holding {tables}"
            for pid, user, app, addr, state, tables in rows
        ]

    def restore_into(
        self, source: Path, target: Path | str | None = None, *, keep_tables: Sequence[str] = ()
    ) -> None:
        """pg_restore in one transaction that stops at the first error: all or nothing.

        Into the live database (target None) with --clean; keep_tables are left
        out of the dump's table of contents, so their live rows stay.
        """
        database = str(target) if target is not None else self.database
        if target is None:
            connections[self.alias].close()  # our own session must not block the restore
        args = [
            self.tool("pg_restore"),
            "--no-owner",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
        ]
        if target is None:
            args += ["--clean", "--if-exists"]
        listing = None
        try:
            if keep_tables and target is None:
                toc = self._toc(source)
                kept = [
                    line
                    for line in toc.splitlines()
                    if not any(re.search(rf"\b{re.escape(table)}", line) for table in keep_tables)
                ]
                # In the system's temporary folder: the dump's own may be read-only (a USB copy).
                handle, name = tempfile.mkstemp(prefix="smartaquarium-restore-", suffix=".list")
                listing = Path(name)
                with os.fdopen(handle, "w") as out:
                    out.write("\n".join(kept) + "\n")
                args.append(f"--use-list={listing}")
            restored = self._watched_restore([*args, f"--dbname={database}", source], database)
        except DamagedCopy as exc:
            raise RestoreFailed(str(exc)) from None
        finally:
            if listing is not None:
                listing.unlink(missing_ok=True)
        if restored.returncode != 0:
            raise RestoreFailed(f"pg_restore: {_restore_error(restored.stderr)}")

    def _watched_restore(self, args: list, database: str) -> subprocess.CompletedProcess:
        """Run pg_restore; cancel it when it waits for another session's lock longer than LOCK_WAIT_S.

        A dump sets lock_timeout = 0 itself, so the server's setting cannot bound
        the wait: its session is watched instead. Cancelled, its one transaction
        rolls back and the database stays as it was.
        """
        tag = f"smartaquarium-restore-{os.getpid()}-{time.monotonic_ns()}"
        process = subprocess.Popen(
            [str(arg) for arg in args],
            env=self.tool_env(database, PGAPPNAME=tag),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        blockers: list[str] = []
        waiting_since = None
        with ThreadPoolExecutor(max_workers=1) as pool:
            output = pool.submit(process.communicate)
            watcher = self.connect(autocommit=True)
            try:
                while process.poll() is None:
                    row = watcher.execute(
                        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity"
                        " WHERE application_name = %s AND wait_event_type = 'Lock'",
                        [tag],
                    ).fetchone()
                    if row is None:
                        waiting_since = None
                    elif waiting_since is None:
                        waiting_since = time.monotonic()
                    elif time.monotonic() - waiting_since > LOCK_WAIT_S:
                        blockers = [f"pid {pid}" for pid in row[1]]
                        watcher.execute("SELECT pg_cancel_backend(%s)", [row[0]])
                        break
                    time.sleep(0.2)
            finally:
                watcher.close()
            stdout, stderr = output.result()
        if blockers:
            raise RestoreFailed(
                f"it waited more than {LOCK_WAIT_S:g} s for locks held by {', '.join(blockers)} and was "
                "cancelled; nothing was changed"
            )
        return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)

    def drill(self, plain: Path) -> Snapshot:
        scratch = f"{self.database}_drill_{datetime.now(UTC).strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"[:63]
        admin = self.connect(autocommit=True)
        try:
            try:
                admin.execute(f'CREATE DATABASE "{scratch}"')
            except psycopg.errors.InsufficientPrivilege:
                user = self.settings_dict.get("USER") or "this role"
                raise RestoreFailed(
                    f"the role {user} may not create the scratch database {scratch}: grant it with "
                    f"'ALTER ROLE {user} CREATEDB' (as a superuser)"
                ) from None
            except psycopg.Error as exc:
                raise RestoreFailed(
                    f"cannot create the scratch database {scratch}: {_last_line(str(exc))}"
                ) from None
            try:
                self.restore_into(plain, scratch)
                conn = self.connect(scratch)
                try:
                    rows, newest = _readings_in(conn)
                except psycopg.Error as exc:
                    raise DamagedCopy(f"the restored copy cannot be read: {_last_line(str(exc))}") from None
                finally:
                    conn.close()
                return Snapshot(rows, newest)
            finally:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        finally:
            admin.close()

    def load_readings(self, rows: Iterator[bytes]) -> int:
        """COPY ... FROM STDIN in the ORM connection's transaction, then the id sequence past the last id."""
        table = Reading._meta.db_table
        columns = "id, water_temperature, air_temperature, humidity, setpoint, pid_output, timestamp"
        with connections[self.alias].cursor() as wrapper:
            cursor = wrapper.cursor  # psycopg's own, in the same transaction
            if cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
                raise errors.BackupError(
                    f"The PostgreSQL {self.where()} already holds readings: move into a new, migrated "
                    "database. Nothing was moved."
                )
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                for block in rows:
                    copy.write(block)
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false)"
                f" FROM {table}"
            )
            return cursor.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    # -- exports --------------------------------------------------------------

    def export_lines(
        self,
        line_format: str,
        zone: ZoneInfo,
        start: datetime | None,
        end: datetime | None,
        chunk: int,
        count: Callable[[int], None] | None = None,
    ) -> Iterator[list[str]]:
        """COPY (SELECT line ...) TO STDOUT: the server formats, psycopg streams the lines."""
        conn = self.connect()
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # the count and the lines agree
            conn.read_only = True
            conn.execute("SET LOCAL extra_float_digits = 0")
            clauses, params = [], {"zone": zone.key}
            if start is not None:
                clauses.append("timestamp >= %(start)s")
                params["start"] = start
            if end is not None:
                clauses.append("timestamp < %(end)s")
                params["end"] = end
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            table = Reading._meta.db_table
            if count is not None:
                count(conn.execute(f"SELECT count(*) FROM {table}{where}", params).fetchone()[0])
            query = psycopg.ClientCursor(conn).mogrify(
                f"SELECT {LINE_SQL[line_format]} FROM {table}{where} ORDER BY timestamp, id", params
            )
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT") as copy:
                # psycopg hands over a row at a time: gathered in a bytearray
                # (appending is amortised), cut into lines a chunk at a time,
                # always at the end of a line.
                pending, blocks = bytearray(), 0
                for block in copy:
                    pending += block
                    blocks += 1
                    if blocks >= chunk:
                        cut = pending.rfind(b"\n") + 1
                        if cut:
                            yield pending[:cut].decode().split("\n")[:-1]
                            del pending[:cut]
                        blocks = 0
                if pending:
                    yield pending.decode().rstrip("\n").split("\n")
        except psycopg.Error as exc:
            raise errors.BackupError(
                f"Export from the PostgreSQL {self.where()} failed: {_last_line(str(exc))}"
            ) from None
        finally:
            conn.close()


def _restore_error(stderr: str) -> str:
    """pg_restore's error and the server's words for it, on one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    wanted = [
        line.split(": error: ", 1)[-1]
        for line in lines
        if ": error: " in line or line.startswith(("ERROR:", "DETAIL:", "HINT:"))
    ]
    return " ".join(wanted or lines[-1:]) or "no message"


def _readings_in(conn: psycopg.Connection) -> tuple[int, datetime | None]:
    """How many readings, and the newest one's time: two queries, each answered on its own."""
    table = Reading._meta.db_table
    rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    newest = conn.execute(f"SELECT max(timestamp) FROM {table}").fetchone()[0]
    return rows, newest.astimezone(UTC) if newest else None


def _copy_rows(lines, table: str) -> Iterator[list[str]]:
    """The fields of the rows in a plain-SQL dump's COPY block of one table."""
    inside = False
    for line in lines:
        if not inside:
            inside = line.startswith("COPY ") and re.match(rf"COPY \S*\b{table} ", line) is not None
            continue
        if line == "\\.":
            return
        yield line.split("\t")


def _count_copy(stream, table: str) -> tuple[int, datetime | None]:
    """Count the rows of table's COPY block in pg_restore's output, and find its newest time stamp.

    Reads the whole output, so that pg_restore reads (and checks) all of the dump.
    """
    start = re.compile(rf"^COPY \S*\b{table} \(.*\btimestamp\b.*\) FROM stdin;$".encode())
    rows, newest, columns, inside = 0, b"", None, False
    for line in stream:
        if not inside:
            if line.startswith(b"COPY ") and start.match(line.rstrip(b"\n")):
                names = line[line.index(b"(") + 1 : line.index(b")")].split(b", ")
                columns = [name.strip(b'"') for name in names].index(b"timestamp")
                inside = True
            continue
        if line == b"\\.\n":
            inside = False
            continue
        rows += 1
        stamp = line.rstrip(b"\n").split(b"\t")[columns]
        if stamp > newest:  # one session's text: the same offset throughout, so text order is time order
            newest = stamp
    return rows, _parse_stamp(newest.decode()) if newest else None


def _parse_stamp(text: str) -> datetime:
    """PostgreSQL's timestamptz text ('2025-01-01 10:00:00.5+00') as an aware datetime."""
    if re.search(r"[+-]\d\d$", text):
        text += ":00"
    return datetime.fromisoformat(text).astimezone(UTC)
