"""Backup files, streamed to staff who may download them.

Only `<kind folder>/<one of our backup names>` (or its `.sha256`) inside
BACKUP_DIR is served; every other name is a 404 that says nothing more.
Symbolic links are never followed, wherever they point: we never create one,
so one in the backup folders is an accident or an attack. BACKUP_DIR itself
may be a link (a mounted disk, say); below it, the path must resolve to itself.
"""

import os
from pathlib import Path, PurePosixPath

from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.urls import reverse
from django.views.decorators.http import require_safe

from backup_tasks import conf
from backup_tasks.core import layout
from backup_tasks.storage.checksums import SUFFIX
from backup_tasks.storage.log import run_logger
from backup_tasks.storage.safefile import open_regular

DOWNLOAD_PERMISSION = "backup_tasks.download_backup"

CONTENT_TYPES = {
    ".sqlite3": "application/vnd.sqlite3",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".gz": "application/gzip",
    ".zst": "application/zstd",
    SUFFIX: "text/plain; charset=utf-8",
}


def _kind_of(name: str) -> layout.Kind | None:
    """The kind whose folder and file pattern name matches, or None."""
    folder, slash, file_name = name.partition("/")
    if not slash:
        return None
    if file_name.endswith(SUFFIX):
        file_name = file_name[: -len(SUFFIX)]
    for kind in layout.KINDS.values():
        # fullmatch: the patterns end in `$`, which also matches before a final newline.
        if folder == kind.folder and kind.name_re.fullmatch(file_name):
            return kind
    return None


def servable(name: str) -> Path:
    """The file a download name stands for; Http404 unless it is one of our backups, there."""
    if _kind_of(name) is None:
        raise Http404("No such backup file.")
    try:
        root = conf.backup_dir().resolve(strict=True)
        path = root / name
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, unreadable, or a loop of links
        raise Http404("No such backup file.") from None
    # A link anywhere below BACKUP_DIR resolves elsewhere, even to another of our files.
    if real != path or not real.is_file():
        raise Http404("No such backup file.")
    return path


def url_for(path: Path | str) -> str | None:
    """The download URL of a file inside BACKUP_DIR, or None when its name is not one we serve.

    Checks the name only; the download itself checks the file.
    """
    path = Path(path)
    root = conf.backup_dir()
    for base in (root, root.resolve()):
        try:
            relative = path.relative_to(base)
        except ValueError:
            continue
        name = PurePosixPath(*relative.parts).as_posix()
        if _kind_of(name) is not None:
            return reverse("backup_tasks:download", kwargs={"name": name})
        return None
    return None


def _refuse(request, name: str, reason: str) -> None:
    # repr: a requested name may hold newlines or NULs meant to forge log lines.
    run_logger().warning("Download refused to %s: %r (%s)", request.user.get_username(), name, reason)


@require_safe
def download(request, name: str):
    """Stream one backup file as an attachment (GET or HEAD)."""
    if not request.user.has_perm(DOWNLOAD_PERMISSION):
        _refuse(request, name, "no download permission")
        raise PermissionDenied
    try:
        path = servable(name)
        handle = open_regular(path)
    except (Http404, OSError):
        _refuse(request, name, "not a backup file")
        raise Http404("No such backup file.") from None
    size = os.fstat(handle.fileno()).st_size
    run_logger().info(
        "Download%s by %s: %s (%s bytes)",
        " (HEAD)" if request.method == "HEAD" else "",
        request.user.get_username(),
        name,
        f"{size:,}",
    )
    content_type = CONTENT_TYPES.get(Path(path.name).suffix, "application/octet-stream")
    return FileResponse(handle, as_attachment=True, filename=path.name, content_type=content_type)
