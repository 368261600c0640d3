"""The restic repositories of the backup history: every restic detail lives here.

restic runs as a subprocess with an argument list and --json where it has one.
The repository's location and key reach it through its environment
(RESTIC_REPOSITORY, RESTIC_PASSWORD_FILE), never through argv or the log; a
location is shown only redacted. Requires restic 0.14 or newer (repository
format 2 with compression).
"""

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from backup_tasks.core.errors import BackupError
from backup_tasks.storage.safefile import fsync_dir

try:
    import fcntl
except ImportError:  # Windows: restic's own repository locks are the only guard
    fcntl = None

MINIMUM_VERSION = (0, 14)
INSTALL_HINT = "install restic 0.14 or newer (Debian/Raspberry Pi OS: sudo apt-get install restic)"
# restic's exit code when it could not read some of the files to back up.
INCOMPLETE = 3
DEFAULT_TIMEOUT = 3600


class RepositoryError(BackupError):
    """restic could not do what was asked; the message says what to do."""


class ResticMissing(RepositoryError):
    pass


class WrongKey(RepositoryError):
    pass


class KeyMissing(RepositoryError):
    pass


class Locked(RepositoryError):
    permanent = False


_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.IGNORECASE)
_SFTP_PASSWORD = re.compile(r"^(?P<head>sftp:[^:@/\s]+):[^@\s]+@")


def redact(location: str) -> str:
    """A repository location fit to show: any user:password in it becomes ***."""
    text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", str(location))
    return _SFTP_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"restic (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(part or 0) for part in match.groups()) if match else None


def restic_program() -> str | None:
    return shutil.which("restic")


def unavailable() -> str | None:
    """Why the history cannot be kept (restic missing or too old), in one line; None: it can."""
    program = restic_program()
    if program is None:
        return f"restic is not installed, so backups are not kept in a history: {INSTALL_HINT}"
    try:
        out = subprocess.run(
            [program, "version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"restic at {program} does not run ({exc}): {INSTALL_HINT}"
    version = _parse_version(out)
    if version is None:
        return f"restic at {program} did not say its version: {INSTALL_HINT}"
    if version[:2] < MINIMUM_VERSION:
        shown = ".".join(map(str, version))
        return f"restic {shown} at {program} is too old for the backup history: {INSTALL_HINT}"
    return None


# -- the key ------------------------------------------------------------------


def read_key(path: Path) -> None:
    """Check that the key file is usable: a regular file, for our user alone, not empty."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyMissing(
            f"The backup repository key {path} cannot be read ({exc.strerror}): let the user running "
            "smartAquarium read it (chown; chmod 600)."
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyMissing(f"The backup repository key {path} is not a regular file: put the key file there.")
    if os.name == "posix" and info.st_mode & 0o077:
        raise KeyMissing(
            f"The backup repository key {path} is open to other users (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): run chmod 600 {path}"
        )
    if info.st_size == 0:
        raise KeyMissing(
            f"The backup repository key {path} is empty: put the key's copy there (it cannot be made anew "
            "for an existing history)."
        )


def create_key(path: Path) -> None:
    """Write a new random key to a 0600 temporary file, then link it into place unless one exists.

    os.link never replaces: of processes starting at once, exactly one key wins.
    """
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise KeyMissing(
            f"No backup repository key yet, and none can be made in {path.parent} ({exc.strerror}): "
            "let the user running smartAquarium write there, or set BACKUP_REPOSITORY_PASSWORD_FILE."
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return
        fsync_dir(path.parent)
    finally:
        os.unlink(temporary)


# -- restore points -------------------------------------------------------------


@dataclass
class Point:
    """One restic snapshot: a restore point."""

    id: str
    time: datetime  # aware, UTC
    tags: list[str]
    paths: list[str]
    hostname: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:8]

    def tag(self, name: str) -> str | None:
        prefix = f"{name}:"
        return next((t[len(prefix) :] for t in self.tags if t.startswith(prefix)), None)


@dataclass
class Added:
    snapshot_id: str
    data_added: int
    files: int
    bytes_processed: int
    duration_s: float


@dataclass
class Stats:
    total_size: int  # logical: what restoring every point would write
    stored_size: int  # what the repository holds, after deduplication and compression
    points: int


@dataclass
class CheckResult:
    ok: bool
    subset: str
    output: str
    problems: list[str] = field(default_factory=list)


def _time(text: str) -> datetime:
    # restic writes RFC 3339 with nanoseconds; Python takes at most microseconds.
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise RepositoryError(f"restic gave a time this version cannot read: {text!r}")
    head, fraction, zone = match.groups()
    fraction = (fraction or "0")[:6].ljust(6, "0")
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{head}.{fraction}{zone}").astimezone(UTC)


class Repository:
    """One restic repository: a location and its key file."""

    def __init__(
        self,
        location: str,
        key_file: Path,
        *,
        cache_dir: Path | None = None,
        max_seconds: float | None = None,
    ) -> None:
        self.location = str(location)
        self.key_file = Path(key_file)
        self.cache_dir = cache_dir
        # The longest any one restic call may take here (a slow offsite must not hold a backup up).
        self.max_seconds = max_seconds

    @property
    def shown(self) -> str:
        return redact(self.location)

    @property
    def is_local(self) -> bool:
        return not re.match(r"^[a-z0-9]+:", self.location) or bool(
            re.match(r"^[a-zA-Z]:[\\/]", self.location)
        )

    # -- running restic --------------------------------------------------------

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(
            RESTIC_REPOSITORY=self.location,
            RESTIC_PASSWORD_FILE=str(self.key_file),
            TZ="UTC",  # --time and the listing in UTC; the plant's zone is ours to apply
            LC_ALL="C",
        )
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        env.update(extra or {})
        return env

    def _run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        ok_codes: tuple[int, ...] = (0,),
        stdout=None,
    ) -> subprocess.CompletedProcess:
        program = restic_program()
        if program is None:
            raise ResticMissing(f"restic is not installed: {INSTALL_HINT}")
        if self.max_seconds is not None:
            timeout = min(timeout, self.max_seconds)
        try:
            result = subprocess.run(
                [program, *args],
                cwd=cwd,
                env=self._env(env),
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=stdout is None,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RepositoryError(
                f"restic {args[0]} on {self.shown} took longer than {timeout:g} s and was stopped: "
                "check the connection to the repository."
            ) from None
        if result.returncode not in ok_codes:
            raise self._error(args[0], result)
        return result

    def _error(self, command: str, result: subprocess.CompletedProcess) -> RepositoryError:
        stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
        text = stderr.strip()
        if "wrong password or no key found" in text:
            return WrongKey(
                f"The key {self.key_file} does not open the backup repository {self.shown}: put the "
                "repository's own key file there. Nothing was written to the repository."
            )
        if "repository is already locked" in text:
            return Locked(
                f"The backup repository {self.shown} is locked by another restic process that is still "
                "running: wait for it to finish."
            )
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "no message")
        last = redact(last.removeprefix("Fatal: "))
        return RepositoryError(f"restic {command} failed on {self.shown} (exit {result.returncode}): {last}")

    @staticmethod
    def _json_lines(text: str) -> list[dict]:
        lines = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return lines

    # -- the repository itself -------------------------------------------------

    def probe(self) -> str:
        """'ready', 'absent' (no repository there yet) or 'wrong key'. Needs the key file."""
        result = self._run(["cat", "config"], ok_codes=(0, 1), timeout=120)
        if result.returncode == 0:
            return "ready"
        if "wrong password or no key found" in result.stderr:
            return "wrong key"
        if "Is there a repository at the following location?" in result.stderr or (
            "unable to open config file" in result.stderr
        ):
            return "absent"
        raise self._error("cat", result)

    def _exists_without_key(self) -> bool:
        """Whether a repository is at the location, asked with a throwaway key (never the real one)."""
        if self.is_local:
            return (Path(self.location) / "config").exists()
        with tempfile.TemporaryDirectory() as folder:
            dummy = Path(folder) / "probe.key"
            dummy.write_text(secrets.token_hex(16))
            return Repository(self.location, dummy, cache_dir=self.cache_dir).probe() != "absent"

    def open(self, *, create: bool, like: "Repository | None" = None) -> None:
        """Make sure the repository is there and the key opens it.

        create: make the key and the repository when neither exists. A key is
        never made for a repository that exists: that is refused.
        """
        try:
            read_key(self.key_file)
        except FileNotFoundError:
            if self._exists_without_key():
                raise KeyMissing(
                    f"The backup repository {self.shown} exists but its key {self.key_file} is missing: "
                    "put the key's copy there. A new key cannot read the history, so none is made."
                ) from None
            if not create:
                raise KeyMissing(
                    f"The key {self.key_file} for the backup repository {self.shown} is missing: "
                    "put the key's copy there."
                ) from None
            create_key(self.key_file)
            read_key(self.key_file)
        state = self.probe()
        if state == "wrong key":
            raise WrongKey(
                f"The key {self.key_file} does not open the backup repository {self.shown}: put the "
                "repository's own key file there. Nothing was written to the repository."
            )
        if state == "absent":
            if not create:
                raise RepositoryError(f"There is no backup repository at {self.shown}.")
            if like is None:
                self._run(["init", "--repository-version", "2"], timeout=600)
            else:
                # The same chunker as the repository it copies from: its data deduplicates here too.
                extra = {
                    "RESTIC_FROM_REPOSITORY": like.location,
                    "RESTIC_FROM_PASSWORD_FILE": str(like.key_file),
                }
                self._run(
                    ["init", "--repository-version", "2", "--copy-chunker-params"], env=extra, timeout=600
                )

    def unlock(self) -> None:
        """Remove locks whose process is gone (restic decides): never another process's live lock."""
        self._run(["unlock"], timeout=600)

    def backup(
        self,
        folder: Path,
        names: Sequence[str],
        *,
        tags: Sequence[str],
        when: datetime,
        host: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Added:
        """Store files of one folder (given by name) as one restore point taken at `when`."""
        args = [
            "backup",
            "--json",
            "--tag",
            ",".join(tags),
            "--time",
            when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "--host",
            host,
            "--",
            *names,
        ]
        result = self._run(args, cwd=folder, timeout=timeout, ok_codes=(0, INCOMPLETE))
        summary = next(
            (m for m in self._json_lines(result.stdout) if m.get("message_type") == "summary"), None
        )
        if result.returncode == INCOMPLETE or summary is None or not summary.get("snapshot_id"):
            raise RepositoryError(
                f"restic could not read every file of the backup into {self.shown}: "
                f"{redact(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no summary')}"
            )
        return Added(
            snapshot_id=summary["snapshot_id"],
            data_added=int(summary.get("data_added", 0)),
            files=int(summary.get("total_files_processed", 0)),
            bytes_processed=int(summary.get("total_bytes_processed", 0)),
            duration_s=float(summary.get("total_duration", 0.0)),
        )

    def points(self, *, tags: Sequence[str] = ()) -> list[Point]:
        """Every restore point, oldest first."""
        args = ["snapshots", "--json"]
        if tags:
            args += ["--tag", ",".join(tags)]
        result = self._run(args, timeout=600)
        found = [
            Point(
                id=item["id"],
                time=_time(item["time"]),
                tags=list(item.get("tags") or []),
                paths=list(item.get("paths") or []),
                hostname=item.get("hostname", ""),
            )
            for item in json.loads(result.stdout or "[]")
        ]
        return sorted(found, key=lambda p: (p.time, p.id))

    def files(self, point_id: str) -> list[tuple[str, int]]:
        """(path in the restore point, size) of every file in it."""
        result = self._run(["ls", "--json", point_id], timeout=600)
        return [
            (item["path"], int(item.get("size", 0)))
            for item in self._json_lines(result.stdout)
            if item.get("struct_type") == "node" and item.get("type") == "file"
        ]

    def dump(self, point_id: str, path: str, target: Path, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Write one file of a restore point to target (which the caller names and checks)."""
        with open(target, "xb") as out:
            self._run(["dump", point_id, path], stdout=out, timeout=timeout)
            out.flush()
            os.fsync(out.fileno())

    def forget(self, point_ids: Sequence[str]) -> None:
        """Forget restore points by id (the data goes with the next prune)."""
        for start in range(0, len(point_ids), 100):
            self._run(["forget", "--", *point_ids[start : start + 100]], timeout=600)

    def prune(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._run(["prune"], timeout=timeout)

    def copy_from(self, source: "Repository", *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        """Copy the restore points this repository lacks from source; only missing data travels.

        restic writes a point's snapshot file after its data, so a copy that
        stops midway leaves no half-made point here; the next copy finishes it.
        """
        extra = {"RESTIC_FROM_REPOSITORY": source.location, "RESTIC_FROM_PASSWORD_FILE": str(source.key_file)}
        result = self._run(["copy"], env=extra, timeout=timeout)
        return re.findall(r"snapshot ([0-9a-f]{8}) saved", result.stdout)

    def check(self, subset: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> CheckResult:
        """restic check (0.14 has no --json: read its text and exit code), reading subset of the packs."""
        args = ["check"] + ([f"--read-data-subset={subset}"] if subset else [])
        result = self._run(args, ok_codes=(0, 1), timeout=timeout)
        if result.returncode != 0 and (
            "repository is already locked" in result.stderr or "wrong password" in result.stderr
        ):
            raise self._error("check", result)  # not a verdict on the data
        output = redact((result.stdout + result.stderr).strip())
        problems = [
            line.strip()
            for line in output.splitlines()
            if re.search(r"error|invalid|missing|damaged|not found|Fatal", line, re.IGNORECASE)
        ]
        ok = result.returncode == 0 and "no errors were found" in output
        if not ok and not problems:
            problems = [output.splitlines()[-1] if output else f"exit {result.returncode}"]
        return CheckResult(ok=ok, subset=subset or "", output=output, problems=problems)

    def stats(self) -> Stats:
        logical = json.loads(self._run(["stats", "--json", "--mode", "restore-size"], timeout=600).stdout)
        stored = json.loads(self._run(["stats", "--json", "--mode", "raw-data"], timeout=600).stdout)
        return Stats(
            total_size=int(logical.get("total_size", 0)),
            stored_size=int(stored.get("total_size", 0)),
            points=int(logical.get("snapshots_count", 0)),
        )

    def disk_bytes(self) -> int | None:
        """Bytes the repository takes on a local disk; None for a remote one."""
        if not self.is_local:
            return None
        root = Path(self.location)
        return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@contextmanager
def exclusive(lock_file: Path, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """One process of ours at a time works on the repositories (backup, copy, forget, prune, check).

    An advisory lock on lock_file that the kernel drops when its process dies,
    so a killed run never leaves it behind. Where there is no fcntl (Windows)
    restic's own repository locks are the only guard.
    """
    if fcntl is None:
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise Locked(
                        f"Another backup has worked on the history for over {timeout:g} s: wait for it to "
                        "finish, then run again."
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
