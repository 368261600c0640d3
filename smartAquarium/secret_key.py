"""SECRET_KEY without a shared default: from the environment, or made once in a 0600 file.

Read by settings before Django is set up, so it uses nothing but the standard library.
Every failure is one SecretKeyError line saying what to do; manage.py prints it alone.
"""

import os
import secrets
import stat
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Plain Python, no Django set-up: safe to import while the settings load.
from backup_tasks.storage.safefile import fsync_dir

# Only with DEBUG on. check --deploy reports it (it is shorter than 50 characters).
DEVELOPMENT_KEY = "dev-only-insecure-key-change-me-in-production"
# Keys published in this repository: refused with DEBUG off, wherever they come from.
PUBLISHED_KEYS = frozenset({DEVELOPMENT_KEY, "change-me-to-a-long-random-string"})


class SecretKeyError(ImproperlyConfigured):
    """No usable secret key; the message is one line saying what to do."""


def secret_key(*, configured: str, debug: bool, path: Path) -> str:
    """SECRET_KEY from the environment, else the development key (DEBUG) or the key file."""
    if configured:
        if not debug and configured in PUBLISHED_KEYS:
            raise SecretKeyError(
                "SECRET_KEY is the example value published with smartAquarium: remove it to have "
                f"a random key made in {path}, or set a long random value of your own."
            )
        return configured
    if debug:
        return DEVELOPMENT_KEY
    return read_or_create(path)


def read_or_create(path: Path) -> str:
    """The key in path; made first when there is none, once, whoever starts first."""
    try:
        return read(path)
    except FileNotFoundError:
        pass
    create(path)
    return read(path)


def read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretKeyError(
            f"The secret key file {path} cannot be read ({exc.strerror}): let the user running "
            "smartAquarium read it (chown; chmod 600), or set SECRET_KEY."
        ) from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretKeyError(
                f"The secret key file {path} is not a regular file: remove it to have a key made, "
                "or set SECRET_KEY_FILE to the key file."
            )
        # POSIX permissions only: Windows has none to check.
        if os.name == "posix" and info.st_mode & 0o077:
            raise SecretKeyError(
                f"The secret key file {path} is open to other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): run chmod 600 {path}"
            )
        try:
            data = file.read(4096)
        except OSError as exc:
            raise SecretKeyError(
                f"The secret key file {path} cannot be read ({exc.strerror}): set SECRET_KEY, "
                "or remove the file to have a new key made."
            ) from None
    key = data.decode("utf-8", errors="replace").strip()
    if not key:
        raise SecretKeyError(
            f"The secret key file {path} is empty: remove it to have a new key made (everyone "
            "signed in logs in again), or write your key into it."
        )
    return key


def create(path: Path) -> None:
    """Write a new key to a 0600 temporary file, then give it the final name unless it exists.

    os.link never replaces: when gunicorn workers, the Celery worker and manage.py start at
    once, exactly one link succeeds and every process then reads that file.
    """
    try:
        # mkstemp opens with O_CREAT | O_EXCL and mode 0600.
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:
        raise SecretKeyError(
            f"The folder {path.parent} for the secret key file does not exist: create it, set "
            "SECRET_KEY_FILE to a file in a folder that does, or set SECRET_KEY."
        ) from None
    except OSError as exc:
        raise SecretKeyError(
            f"No secret key yet, and none can be made in {path.parent} ({exc.strerror}): let the "
            "user running smartAquarium write there, set SECRET_KEY_FILE elsewhere, or set SECRET_KEY."
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # Another process made it first: everyone uses that one.
        except OSError as exc:
            raise SecretKeyError(
                f"The secret key file {path} cannot be made ({exc.strerror}): set SECRET_KEY, "
                "or SECRET_KEY_FILE to a file on a local disk."
            ) from None
        fsync_dir(path.parent)
    finally:
        os.unlink(temporary)
